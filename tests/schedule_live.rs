//! A policy's pg_cron job runs the same maintenance and prune code as `retentionc run`:
//! wait for a scheduled run in the harness's cron database and check its effect.
//!
//! pg_cron 1.4 (Debian 12) takes only cron syntax, whole minutes (`'5 seconds'` arrived in
//! 1.5 and is refused), so this test waits for the next minute boundary: up to ~75 s.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman};
use common::data::{Writer, db_time};
use common::project::TestProject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_expires_partitions_and_runs_the_delete_rules() {
    let db = Cluster::shared().cron_database(Partman::V5);
    db.psql(&["-c", "CREATE TABLE public.events (id bigserial, mtime timestamptz NOT NULL, note text) PARTITION BY RANGE (mtime)"]);
    let policy = format!(
        "table: public.events\npartitioning:\n  column: mtime\n  interval: 1 second\n  premake: 90\n  start: \"{}\"\nretention:\n  keep: 2 seconds\ndeletes:\n  - name: junk\n    where: \"note = 'junk'\"\n    batch_size: 10\nschedule: \"* * * * *\"\n",
        db_time(&db, -20)
    );
    let _project = TestProject::for_db(&db)
        .lock_timeout("2s")
        .policy("events.yaml", &policy)
        .compiled()
        .installed_with_psql(&db);
    assert_eq!(
        db.scalar("SELECT command FROM cron.job WHERE jobname = 'retentionc:public.events'"),
        "CALL \"retention\".\"prune_events\"(p_run_maintenance => true)"
    );
    db.psql(&["-c", "INSERT INTO public.events (mtime, note) SELECT now() - make_interval(secs => s), 'old' FROM generate_series(5, 15) s"]);
    let inserter = Writer::start_sql(&db, "INSERT INTO public.events (mtime, note) VALUES (now(), CASE WHEN random() < 0.5 THEN 'junk' ELSE 'keep' END)", Duration::from_millis(10)).await;
    let old_children: i64 = db
        .scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass")
        .parse()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(80);
    let details = loop {
        let details = db.scalar("SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1");
        if !details.is_empty() {
            break details;
        }
        assert!(Instant::now() < deadline, "no scheduled run within 80 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let inserted = inserter.stop().await.rows;
    assert!(
        details.starts_with("succeeded"),
        "the job failed: {details}"
    );

    // pg_cron's background workers have no application_name; run_log records them as pg_cron.
    let log = db.scalar(
        "SELECT string_agg(step || ' ' || outcome || ' [' || run_by || ']', ', ' ORDER BY id) FROM retention.run_log",
    );
    assert_eq!(
        log, "maintenance ok [pg_cron], delete:junk ok [pg_cron]",
        "run_log"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.events WHERE note = 'old'"),
        "0",
        "expired partitions were not dropped"
    );
    let removed: i64 = db
        .scalar("SELECT partitions_removed FROM retention.run_log WHERE step = 'maintenance'")
        .parse()
        .unwrap();
    assert!(
        removed >= 10,
        "only {removed} partitions removed of {old_children}"
    );
    // The rule ran at the job's start: junk inserted before then is gone, and the rows kept.
    let cutoff = db.scalar("SELECT started_at FROM retention.run_log WHERE step = 'delete:junk'");
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM public.events WHERE note = 'junk' AND mtime < '{cutoff}'::timestamptz - interval '1 second'")), "0");
    let kept: u64 = db
        .scalar("SELECT count(*) FROM public.events WHERE note = 'keep'")
        .parse()
        .unwrap();
    assert!(kept > 0 && kept < inserted, "kept {kept} of {inserted}");
}
