//! `cargo bench --bench status`: how long `retentionc status` (and `--check`: the same
//! reading and checks) takes, and how many statements it sends, for 100, 1,000 and 5,000
//! managed tables on a throwaway PostgreSQL 15 cluster with pg_partman 5.2.4. The anchor
//! is one catalog query over the same tables (`to_regclass` of every name joined to
//! pg_class): the least any per-table report must cost.
//!
//! Setup per size: daily-partitioned tables with an index on the time column, rows over
//! the last three days (the oldest child holds rows, as in a table retention trims), every
//! other one with a delete rule, a pg_cron schedule on each (the database is the cluster's
//! pg_cron database), all applied through the generated SQL in
//! one psql session, and 20 run_log rows per step. `BENCH_SIZES=100,1000` picks sizes.
//! Target: the statement count does not grow with the tables, and 1,000 tables take
//! under 1 s (asserted here, never in a test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman};
use retentionc::cli::DbArgs;

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 5000]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::shared();
    println!(
        "| managed tables | partitions | setup | status: best of 5 (median) | statements sent | without read_facts(): best of 5 (median) | statements sent | anchor: one catalog query (median) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let started = Instant::now();
        let db = cluster.cron_database(Partman::V5);
        let project_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            project_dir.path().join("retentionc.yaml"),
            "partman_version: 5\n",
        )
        .unwrap();
        let policies = project_dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        // Children from three days back: the rows of the last three days land in them.
        let start = db.scalar("SELECT (current_date - 3)::text");
        let mut ddl = String::new();
        for i in 0..n {
            ddl.push_str(&format!(
                "CREATE TABLE public.t{i:04} (id bigint, at timestamptz NOT NULL, level text) PARTITION BY RANGE (at);\n\
                 CREATE INDEX ON public.t{i:04} (at);\n"
            ));
            let mut policy = format!(
                "table: public.t{i:04}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\n  start: \"{start}\"\nretention:\n  keep: 30 days\nschedule: \"0 3 * * *\"\n"
            );
            if i % 2 == 0 {
                policy.push_str("deletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n");
            }
            std::fs::write(policies.join(format!("t{i:04}.yaml")), policy).unwrap();
        }
        let ddl_path = project_dir.path().join("tables.sql");
        std::fs::write(&ddl_path, ddl).unwrap();
        db.psql(&["-q", "-f", ddl_path.to_str().unwrap()]);
        let project =
            retentionc::policy::load_project(&project_dir.path().join("retentionc.yaml")).unwrap();
        // The generated files without their pg_cron statements (no pg_cron here), one
        // transaction per 100 tables.
        let files = retentionc::render::compile_project(&project.config, &project.policies);
        let mut script = String::from("BEGIN;\n");
        for (i, file) in files.iter().enumerate() {
            for line in file.text.lines() {
                if !line.starts_with("SELECT cron.") {
                    script.push_str(line);
                    script.push('\n');
                }
            }
            if i % 100 == 0 {
                script.push_str("COMMIT;\nBEGIN;\n");
            }
        }
        script.push_str(
            "COMMIT;\n\
             DO $$ DECLARE t text; BEGIN
               FOR t IN SELECT parent_table FROM partman.part_config LOOP
                 EXECUTE format('INSERT INTO %s (id, at, level) SELECT g, now() - g * interval ''6 hours'', ''info'' FROM generate_series(0, 12) g', t);
               END LOOP; END $$;\n\
             INSERT INTO retention.run_log (started_at, table_name, step, outcome)
               SELECT now() - g * interval '1 day', c.parent_table, s.step, 'ok'
                 FROM partman.part_config c, generate_series(1, 20) g,
                      (VALUES ('maintenance'), ('delete:debug')) s(step);\n\
             ANALYZE;\n",
        );
        let script_path = project_dir.path().join("all.sql");
        std::fs::write(&script_path, script).unwrap();
        db.psql(&["-q", "-f", script_path.to_str().unwrap()]);
        let partitions = db.scalar("SELECT count(*) FROM pg_inherits");
        let setup = started.elapsed();
        let names: Vec<String> = (0..n).map(|i| format!("public.t{i:04}")).collect();

        let measure = || {
            runtime.block_on(async {
                let (mut times, mut anchors) = (Vec::new(), Vec::new());
                let (mut sent, mut lapsed) = (0, 0);
                for _ in 0..5 {
                    let t = Instant::now();
                    let client = retentionc::db::connect(
                        &DbArgs::url(db.url.clone()),
                        "retentionc bench",
                    )
                    .await
                    .unwrap();
                    let report = retentionc::status::report(&client, &project).await.unwrap();
                    times.push(t.elapsed());
                    sent = report.statements_sent;
                    lapsed = report.tables.iter().filter(|t| t.lapsed()).count();

                    let t = Instant::now();
                    client
                        .query(
                            "SELECT count(*) FROM unnest($1::text[]) AS t(name) JOIN pg_class c ON c.oid = to_regclass(t.name)",
                            &[&names],
                        )
                        .await
                        .unwrap();
                    anchors.push(t.elapsed());
                }
                times.sort();
                anchors.sort();
                (times, anchors, sent, lapsed)
            })
        };
        let (sorted, anchors, sent, lapsed) = measure();
        // The same status on a database whose retentionc schema predates read_facts():
        // the per-table queries sent as UNION ALLs of 100 tables.
        db.psql(&["-q", "-c", "DROP FUNCTION retention.read_facts(text[])"]);
        let (unions, _, unions_sent, unions_lapsed) = measure();
        println!(
            "| {n} | {partitions} | {:.1} s | {} ({}) | {sent} | {} ({}) | {unions_sent} | {} |",
            setup.as_secs_f64(),
            ms(sorted[0]),
            ms(sorted[sorted.len() / 2]),
            ms(unions[0]),
            ms(unions[unions.len() / 2]),
            ms(anchors[anchors.len() / 2])
        );
        assert_eq!(lapsed, unions_lapsed, "the same findings either way");
        assert_eq!(
            lapsed, 0,
            "a freshly applied and run set holds every promise"
        );
        if n == 1000 {
            assert!(
                sorted[sorted.len() / 2] < Duration::from_secs(1),
                "1,000 tables must report in under 1 s"
            );
        }
        // The pg_cron database is kept for the next size, and emptied then in one
        // transaction: its tables go first, 100 at a time, within the server's lock table.
        let drops: Vec<String> = names
            .chunks(100)
            .map(|chunk| format!("DROP TABLE {} CASCADE", chunk.join(", ")))
            .collect();
        let mut args = vec!["-q"];
        for drop in &drops {
            args.extend(["-c", drop.as_str()]);
        }
        db.psql(&args);
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
