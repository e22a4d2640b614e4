//! `run --dry-run` tells what the next run will really remove: partitions by pg_partman's
//! rule, and a delete rule's rows without those of partitions the same run drops first;
//! `--exact` counts them.

mod common;

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, stdout, text};

const LOGS: &str = "\
table: public.logs
partitioning:
  column: logged_at
  interval: 1 hour
  premake: 2
  start: START
retention:
  keep: 10 hours
deletes:
  - name: debug_rows
    where: \"level = 'debug'\"
    older_than: 1 hour
";

/// public.logs in hourly partitions with 20 hours of rows, a third of them debug.
fn logs(db: &TestDb) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.logs (id bigserial, logged_at timestamptz NOT NULL, level text NOT NULL) PARTITION BY RANGE (logged_at)",
    ]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '21 hours', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let project = TestProject::for_db(db)
        .config("lock_timeout: 2s")
        .policy("logs", &LOGS.replace("START", &format!("\"{start}\"")))
        .compiled();
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out));
    db.psql(&[
        "-c",
        "INSERT INTO public.logs (logged_at, level) \
         SELECT now() - (n % 1200) * interval '1 minute', CASE WHEN n % 3 = 0 THEN 'debug' ELSE 'info' END \
           FROM generate_series(1, 24000) n",
        "-c",
        "ANALYZE public.logs",
    ]);
    project
}

fn number_after(report: &str, prefix: &str) -> i64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{report}"));
    line[prefix.len()..]
        .trim_start_matches('~')
        .split_whitespace()
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn a_dry_run_counts_what_the_run_then_deletes() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        let project = logs(&db);
        let all_old_debug: i64 = db
            .scalar("SELECT count(*) FROM public.logs WHERE level = 'debug' AND logged_at < now() - interval '1 hour'")
            .parse()
            .unwrap();

        let exact = project.run(&["run", "--dry-run", "--exact"]);
        assert!(exact.status.success(), "{partman}: {}", text(&exact));
        let report = stdout(&exact);
        let counted = number_after(&report, "public.logs: delete debug_rows would delete ");
        assert!(report.contains("rows (counted)"), "{partman}: {report}");
        // The partitions older than 10 hours go first: the rule deletes only what is left.
        assert!(
            counted < all_old_debug * 3 / 5,
            "{partman}: {counted} of {all_old_debug}\n{report}"
        );
        let estimate = project.run(&["run", "--dry-run"]);
        let estimated = number_after(
            &stdout(&estimate),
            "public.logs: delete debug_rows would delete ",
        );
        assert!(
            estimated > counted / 2 && estimated < counted * 2,
            "{partman}: estimated {estimated}, counted {counted}"
        );

        let before: i64 = db
            .scalar("SELECT count(*) FROM public.logs")
            .parse()
            .unwrap();
        let in_expired: i64 = report
            .lines()
            .find_map(|l| {
                l.strip_prefix("public.logs:   ")?
                    .strip_suffix(" rows in all")
            })
            .unwrap_or_else(|| panic!("{partman}: {report}"))
            .replace(',', "")
            .parse()
            .unwrap();
        let run = project.run(&["run"]);
        assert!(run.status.success(), "{partman}: {}", text(&run));
        let deleted: i64 = db
            .scalar(
                "SELECT sum(rows_deleted) FROM retention.run_log WHERE step = 'delete:debug_rows'",
            )
            .parse()
            .unwrap();
        assert_eq!(
            deleted, counted,
            "{partman}: counted {counted}, deleted {deleted}"
        );
        // Every row that went was counted: in the dropped partitions, or by the rule.
        let after: i64 = db
            .scalar("SELECT count(*) FROM public.logs")
            .parse()
            .unwrap();
        assert_eq!(before - after, in_expired + counted, "{partman}\n{report}");
    }
}
