//! `retentionc convert` on a real PostgreSQL 15, with pg_partman 4.7.2 and 5.2.4: a plain
//! table becomes the partitioned table its policy describes while writers keep inserting,
//! updating and deleting, and every row ends up as the writers left it (a ledger of every
//! write is checked against the result); the structure is carried over (checked in the
//! catalog); the fill goes oldest first (heap order when the time column has no index); a
//! conversion stopped with Ctrl-C or killed with SIGKILL resumes; the swap waits out a
//! session that holds the table, without holding writers up longer than lock_timeout; what
//! cannot be converted safely is refused before anything changes; --revert undoes it all.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, stderr, stdout, text, wait_at_most};

const POLICY: &str = "\
table: public.orders
partitioning:
  column: created_at
  interval: 1 day
  premake: 4
retention:
  keep: 30 days
  expired: drop
";

/// The table of every test: a bigint identity primary key, a unique index, a check
/// constraint, an index on the time column, a grant, comments and an owner other than the
/// converting role. `rows` rows over the last 60 days, made by the server, in an order that
/// is not time order: row i is (i % 60) days old, so consecutive rows are days apart. In
/// each day, half the rows share one time to the microsecond (an hour past the day), the
/// others are spread over the next two hours.
fn create_orders(db: &TestDb, rows: i64) {
    db.psql(&[
        "-q",
        "-c",
        // Roles are cluster-wide and tests share a cluster: two tests may make the same role
        // at once, and the one that loses the race finds it made.
        "DO $$ BEGIN
             BEGIN CREATE ROLE orders_reader; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
             BEGIN CREATE ROLE orders_owner; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
         END $$",
        "-c",
        "CREATE TABLE public.orders (
             id         bigint GENERATED ALWAYS AS IDENTITY,
             created_at timestamptz NOT NULL DEFAULT now(),
             email      text NOT NULL,
             amount     integer NOT NULL CONSTRAINT orders_amount_check CHECK (amount >= 0),
             note       text
         )",
        "-c",
        &format!(
            "INSERT INTO public.orders (created_at, email, amount, note)
             SELECT now() - (i % 60) * interval '1 day' - interval '1 hour'
                        - CASE WHEN (i / 60) % 2 = 0 THEN (i % 7919) * interval '1 second' ELSE interval '0' END,
                    'o' || i, i % 100, 'n'
               FROM generate_series(1, {rows}) i"
        ),
        // Indexes after the rows: building them is faster than maintaining them.
        "-c",
        "ALTER TABLE public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id)",
        "-c",
        "CREATE UNIQUE INDEX orders_email_key ON public.orders (email)",
        "-c",
        "CREATE INDEX orders_created_at_idx ON public.orders (created_at)",
        "-c",
        "GRANT SELECT, INSERT ON public.orders TO orders_reader",
        "-c",
        "COMMENT ON TABLE public.orders IS 'customer orders'",
        "-c",
        "COMMENT ON COLUMN public.orders.email IS 'who ordered'",
        "-c",
        "ALTER TABLE public.orders OWNER TO orders_owner",
        "-c",
        "VACUUM ANALYZE public.orders",
    ]);
}

fn project(db: &TestDb) -> TestProject {
    let project = TestProject::for_db(db)
        .config("lock_timeout: 1s")
        .policy("orders", POLICY);
    let out = project.run(&["compile", "--convert", "public.orders"]);
    assert!(out.status.success(), "{}", text(&out));
    project
}

/// One write the writer made and saw committed.
#[derive(Debug, Clone)]
enum Write {
    Upsert { id: i64, amount: i32 },
    Delete { id: i64 },
}

struct Writer {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<WriterLog>,
}

#[derive(Debug, Default)]
struct WriterLog {
    writes: Vec<Write>,
    /// The slowest write, and when it started (relative to the writer's start).
    slowest: Duration,
    slowest_at: Duration,
    error: Option<String>,
}

impl WriterLog {
    /// The final state of every row the writer touched: `Some(amount)`, or `None` if deleted.
    fn final_rows(&self) -> BTreeMap<i64, Option<i32>> {
        let mut rows = BTreeMap::new();
        for write in &self.writes {
            match write {
                Write::Upsert { id, amount } => rows.insert(*id, Some(*amount)),
                Write::Delete { id } => rows.insert(*id, None),
            };
        }
        rows
    }
}

/// A writer on its own connection: inserts, and now and then updates (moving the row's
/// time a little, so its partition key changes) or deletes a row, one transaction each,
/// until stopped. Original rows it touches are from the last 10 days (`i % 60 < 10`).
fn start_writer(db: &TestDb, original_rows: i64, tag: &'static str) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let url = db.url.clone();
    let stopped = Arc::clone(&stop);
    let handle = tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut log = WriterLog::default();
        let started = Instant::now();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut inserted: Vec<i64> = Vec::new();
        let mut counter = 0i64;
        while !stopped.load(Ordering::Relaxed) {
            counter += 1;
            let amount = (counter % 1000) as i32;
            let op = random(10);
            let at = Instant::now();
            // A row to update or delete: one of the writer's own, or a recent original.
            let target = if op >= 7 && !inserted.is_empty() && random(2) == 0 {
                inserted[random(inserted.len() as u64) as usize]
            } else {
                60 * random((original_rows / 60).max(1) as u64) as i64 + random(10) as i64 + 60
            };
            let result = match op {
                0..=6 => client
                    .query_one(
                        "INSERT INTO public.orders (email, amount, note) VALUES ($1, $2, 'w') RETURNING id",
                        &[&format!("{tag}{counter}"), &amount],
                    )
                    .await
                    .map(|row| {
                        let id: i64 = row.get(0);
                        inserted.push(id);
                        Some(Write::Upsert { id, amount })
                    }),
                7 | 8 => client
                    .execute(
                        "UPDATE public.orders SET amount = $2, created_at = created_at + interval '1 minute' WHERE id = $1",
                        &[&target, &amount],
                    )
                    .await
                    .map(|n| (n == 1).then_some(Write::Upsert { id: target, amount })),
                _ => client
                    .execute("DELETE FROM public.orders WHERE id = $1", &[&target])
                    .await
                    .map(|n| (n == 1).then_some(Write::Delete { id: target })),
            };
            let took = at.elapsed();
            if took > log.slowest {
                log.slowest = took;
                log.slowest_at = at - started;
            }
            match result {
                Ok(Some(write)) => log.writes.push(write),
                Ok(None) => {}
                Err(e) => {
                    log.error = Some(format!("{e:?}"));
                    break;
                }
            }
        }
        log
    });
    Writer { stop, handle }
}

impl Writer {
    async fn stop(self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        let log = self.handle.await.unwrap();
        assert!(log.error.is_none(), "a write failed: {:?}", log.error);
        log
    }
}

/// Every row of public.orders is what the writer left, or the original row as the retired
/// table holds it (original rows the policy would not expire at once): no row lost, none
/// resurrected, none twice.
async fn assert_rows_match_the_ledger(db: &TestDb, original_rows: i64, log: &WriterLog) {
    let client = db.client().await;
    let touched = log.final_rows();
    let ids: Vec<i64> = touched.keys().copied().collect();
    let amounts: Vec<Option<i32>> = touched.values().copied().collect();
    client
        .batch_execute("CREATE TEMP TABLE ledger (id bigint PRIMARY KEY, amount integer)")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO ledger SELECT * FROM unnest($1::bigint[], $2::integer[])",
            &[&ids, &amounts],
        )
        .await
        .unwrap();
    let cutoff: String = client
        .query_one(
            "SELECT cutoff FROM retention.conversions WHERE table_name = 'public.orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let expected = format!(
        "SELECT * FROM (SELECT id, amount FROM public.orders_retired
          WHERE id <= {original_rows} AND created_at >= '{cutoff}'::timestamptz
            AND id NOT IN (SELECT id FROM ledger)
         UNION ALL
         SELECT id, amount FROM ledger WHERE amount IS NOT NULL) e"
    );
    let missing: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM ({expected} EXCEPT ALL SELECT id, amount FROM public.orders) m"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let extra: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let sample: Vec<String> = client
        .query(
            &format!(
                "(SELECT 'missing ' || id || ' ' || amount FROM ({expected} EXCEPT ALL SELECT id, amount FROM public.orders) m LIMIT 5)
                 UNION ALL
                 (SELECT 'extra ' || id || ' ' || amount FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x LIMIT 5)"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    if (missing, extra) != (0, 0) {
        let detail: Vec<String> = client
            .query(
                &format!(
                    "SELECT 'orders ' || o::text FROM public.orders o WHERE id IN (SELECT id FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x LIMIT 3)
                     UNION ALL SELECT 'ledger ' || l::text FROM ledger l WHERE id IN (SELECT id FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x LIMIT 3)
                     UNION ALL SELECT 'retired ' || r::text FROM public.orders_retired r WHERE id IN (SELECT id FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x LIMIT 3)"
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let writes: Vec<String> = log.writes.iter().filter(|w| matches!(w, Write::Upsert { id, .. } | Write::Delete { id } if sample.iter().any(|s| s.contains(&format!(" {id} "))))).map(|w| format!("{w:?}")).collect();
        panic!(
            "rows differ from the ledger ({} writes): missing {missing}, extra {extra}: {sample:?}\n{detail:#?}\n{writes:#?}",
            log.writes.len()
        );
    }
    let (rows, distinct): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), count(DISTINCT id) FROM public.orders",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(rows, distinct, "a row is there twice");
    assert!(rows > 0);
}

/// What the catalog says about public.orders after the swap: every property carried over.
fn assert_structure_carried_over(db: &TestDb) {
    let q = |sql: &str| db.scalar(sql);
    assert_eq!(
        q("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
        "p"
    );
    assert_eq!(
        q("SELECT pg_get_partkeydef('public.orders'::regclass)"),
        "RANGE (created_at)"
    );
    assert_eq!(
        q(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND conname = 'orders_pkey'"
        ),
        "PRIMARY KEY (id, created_at)"
    );
    assert_eq!(
        q("SELECT pg_get_indexdef('public.orders_email_key'::regclass)"),
        "CREATE UNIQUE INDEX orders_email_key ON ONLY public.orders USING btree (email, created_at)"
    );
    assert_eq!(
        q("SELECT pg_get_indexdef('public.orders_created_at_idx'::regclass)"),
        "CREATE INDEX orders_created_at_idx ON ONLY public.orders USING btree (created_at)"
    );
    assert_eq!(
        q(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND conname = 'orders_amount_check'"
        ),
        "CHECK ((amount >= 0))"
    );
    assert_eq!(
        q(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attname = 'id'"
        ),
        "a"
    );
    assert_eq!(
        q(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.orders'::regclass AND adnum = 2"
        ),
        "now()"
    );
    assert_eq!(
        q(
            "SELECT has_table_privilege('orders_reader', 'public.orders', 'SELECT') AND has_table_privilege('orders_reader', 'public.orders', 'INSERT') AND NOT has_table_privilege('orders_reader', 'public.orders', 'DELETE')"
        ),
        "t"
    );
    assert_eq!(
        q("SELECT obj_description('public.orders'::regclass, 'pg_class')"),
        "customer orders"
    );
    assert_eq!(
        q("SELECT col_description('public.orders'::regclass, 3)"),
        "who ordered"
    );
    assert_eq!(
        q("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.orders'::regclass"),
        "orders_owner"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM pg_partition_tree('public.orders') t JOIN pg_class c ON c.oid = t.relid WHERE pg_get_userbyid(c.relowner) <> 'orders_owner'"
        ),
        "0",
        "partitions belong to the table's owner"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM pg_partition_tree('public.orders') t JOIN pg_class c ON c.oid = t.relid WHERE t.relid <> 'public.orders'::regclass AND c.relname NOT LIKE 'orders\\_p%' AND c.relname <> 'orders_default'"
        ),
        "0",
        "partitions are named after the table"
    );
    assert_eq!(
        q("SELECT parent_table FROM partman.part_config"),
        "public.orders"
    );
    // The identity goes on after every id the original gave.
    let next: i64 =
        q("INSERT INTO public.orders (email, amount) VALUES ('after the swap', 1) RETURNING id")
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
    let highest: i64 = q("SELECT max(id) FROM public.orders_retired")
        .parse()
        .unwrap();
    assert!(next > highest, "identity restarted: {next} <= {highest}");
    // The original is kept, renamed, with its own names out of the way.
    assert_eq!(
        q("SELECT relkind FROM pg_class WHERE oid = 'public.orders_retired'::regclass"),
        "r"
    );
    assert_eq!(
        q(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.orders_retired'::regclass AND contype = 'p'"
        ),
        "PRIMARY KEY (id)"
    );
}

const TWO_MILLION: i64 = 2_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_rows_convert_oldest_first_under_writes_through_ctrl_c_a_kill_and_a_held_lock_pg_partman_4()
 {
    two_million_rows_convert_oldest_first_under_writes_through_ctrl_c_a_kill_and_a_held_lock(
        Partman::V4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_rows_convert_oldest_first_under_writes_through_ctrl_c_a_kill_and_a_held_lock_pg_partman_5()
 {
    two_million_rows_convert_oldest_first_under_writes_through_ctrl_c_a_kill_and_a_held_lock(
        Partman::V5,
    )
    .await;
}

async fn two_million_rows_convert_oldest_first_under_writes_through_ctrl_c_a_kill_and_a_held_lock(
    partman: Partman,
) {
    let test_started = Instant::now();
    let db = Cluster::shared().database(partman);
    create_orders(&db, TWO_MILLION);
    let project = project(&db);

    let plan = project.run(&["plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let shown = stdout(&plan);
    assert!(shown.contains("~ public.orders: convert the plain table to a pg_partman partitioned table on created_at"), "{shown}");
    assert!(
        shown.contains("orders_pkey (id) -> (id, created_at)"),
        "{shown}"
    );
    assert!(
        shown.contains("orders_email_key (email) -> (email, created_at)"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "copy the rows in committed batches, oldest first (ranges of created_at on the index orders_created_at_idx)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("public.orders.convert.sql [state,"),
        "{shown}"
    );

    // Without --convert, apply installs the rest and leaves the table alone.
    let apply = project.run(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        stderr(&apply).contains("note: not converting public.orders"),
        "{}",
        text(&apply)
    );
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
        "r"
    );
    assert_eq!(
        db.scalar("SELECT to_regclass('public.orders_intermediate') IS NULL"),
        "t"
    );

    let writer = start_writer(&db, TWO_MILLION, "w");
    let fill = [
        "convert",
        "public.orders",
        "--no-swap",
        "--batch-rows",
        "5000",
    ];
    let spawn = || {
        project
            .command(&fill)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Ctrl-C in the middle of the fill: the running batch is cancelled and rolls back, the
    // process ends at once and says how to go on.
    let mut child = spawn();
    wait_for_the_fill(&db, &mut child, 0.15).await;
    signal(&child, "-INT");
    let (interrupted, took) = wait_at_most(child, Duration::from_secs(30), "convert after Ctrl-C");
    assert!(
        took < Duration::from_secs(5),
        "Ctrl-C took {took:?} to end convert"
    );
    assert_eq!(
        interrupted.status.code(),
        Some(130),
        "{}",
        text(&interrupted)
    );
    assert!(
        stderr(&interrupted).contains(
            "interrupted: committed batches stay; run `retentionc convert public.orders` again to go on"
        ),
        "{}",
        text(&interrupted)
    );
    assert_progress_line(&stderr(&interrupted));
    assert_eq!(
        db.scalar("SELECT fill_order FROM retention.conversions"),
        "time"
    );
    let after_ctrl_c = copied_through(&db);

    // Run again, it resumes where the last committed batch left off; killed (SIGKILL)
    // further on.
    let mut child = spawn();
    wait_for_the_fill(&db, &mut child, 0.5).await;
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(!killed.status.success());
    assert!(
        stdout(&killed).contains(&format!(
            "resuming the fill at created_at up to {after_ctrl_c}\n"
        )),
        "not resumed at {after_ctrl_c}: {}",
        text(&killed)
    );
    // The killed session's server process ends once it notices.
    for _ in 0..300 {
        if db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentionc convert'",
        ) == "0"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_kill = copied_through(&db);
    assert_eq!(
        db.scalar(&format!(
            "SELECT '{after_kill}'::timestamptz > '{after_ctrl_c}'::timestamptz"
        )),
        "t",
        "the killed run committed nothing"
    );
    let resumed = project.run(&fill);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(
        stdout(&resumed).contains(&format!(
            "resuming the fill at created_at up to {after_kill}\n"
        )),
        "not resumed at {after_kill}: {}",
        text(&resumed)
    );
    assert!(
        stdout(&resumed).contains("copied and caught up"),
        "{}",
        text(&resumed)
    );
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
        "r"
    );

    // Another session holds the table (a long report, say) for longer than lock_timeout
    // (1 s): the swap gives up within lock_timeout each time, retries, and gets through.
    let blocker = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN; LOCK TABLE public.orders IN ACCESS SHARE MODE")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.batch_execute("COMMIT").await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swap_started = Instant::now();
    let swapped = project.run(&["convert", "public.orders"]);
    assert!(swapped.status.success(), "{}", text(&swapped));
    blocker.await.unwrap();
    assert!(
        stderr(&swapped)
            .contains("swap attempt 1 of 10 could not lock the table within lock_timeout"),
        "{}",
        text(&swapped)
    );
    assert!(
        swap_started.elapsed() >= Duration::from_secs(3),
        "the swap did not wait for the blocker"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = writer.stop().await;
    assert!(
        log.writes.len() > 100,
        "the writer wrote {} times",
        log.writes.len()
    );
    // Writers queued behind the swap's lock request waited at most lock_timeout (1 s) per
    // attempt, never the 4 s the blocker held the table (generous room for a busy machine).
    assert!(
        log.slowest < Duration::from_millis(2500),
        "a write took {:?} (at {:?})",
        log.slowest,
        log.slowest_at
    );

    assert_rows_match_the_ledger(&db, TWO_MILLION, &log).await;
    assert_filled_oldest_first(&db, TWO_MILLION, &log, 50).await;
    assert_structure_carried_over(&db);

    // Then apply sets the policy's retention on the converted table.
    let apply = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert_eq!(
        db.scalar("SELECT retention FROM partman.part_config WHERE parent_table = 'public.orders'"),
        "30 days"
    );
    let finish = project.run(&["convert", "public.orders", "--finish"]);
    assert!(finish.status.success(), "{}", text(&finish));
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND tgname LIKE 'retentionc%'"),
        "0"
    );
    assert_eq!(
        db.scalar("SELECT to_regclass('public.orders_retired') IS NOT NULL"),
        "t"
    );
    eprintln!(
        "{partman:?}: 2,000,000 rows converted in {:.0} s, setup included",
        test_started.elapsed().as_secs_f64()
    );
}

/// Waits until the fill `child` runs has done `share` (0 to 1) of its rows, and not all.
async fn wait_for_the_fill(db: &TestDb, child: &mut std::process::Child, share: f64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "the fill never got to {share} of the rows"
        );
        // Nothing to read before the conversion made its state table.
        let done = db.psql_output(&[
            "-At",
            "-c",
            "SELECT coalesce((SELECT progress_share FROM retention.conversions WHERE phase = 'filling'), 0)",
        ]);
        let done: f64 = String::from_utf8_lossy(&done.stdout)
            .trim()
            .parse()
            .unwrap_or(0.0);
        if done >= share {
            assert!(done < 1.0, "the fill ended before it could be stopped");
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("convert ended early ({status})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The newest time value the fill copied, as the conversion records it.
fn copied_through(db: &TestDb) -> String {
    let through = db.scalar(
        "SELECT copied_through FROM retention.conversions WHERE table_name = 'public.orders'",
    );
    assert!(!through.is_empty(), "no batch committed");
    through
}

fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Off a terminal, the fill writes a progress line after its first batch: the share done,
/// where it stands, the rows copied and the time left.
fn assert_progress_line(stderr: &str) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("public.orders: ") && l.contains(" rows copied in "))
        .unwrap_or_else(|| panic!("no progress line in:\n{stderr}"));
    assert!(line.contains("% (created_at up to "), "{line}");
    let rows: u64 = line
        .split("), ")
        .nth(1)
        .and_then(|rest| rest.split(" rows copied").next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {line}"));
    assert!(rows > 0, "{line}");
    let left = line
        .split(", about ")
        .nth(1)
        .unwrap_or_else(|| panic!("no time left in {line}"));
    assert!(left.ends_with(" left"), "{line}");
}

/// The fill went oldest first: the original rows no writer touched (each copied by one
/// batch, and never replayed), grouped by the transaction that copied them (one per batch,
/// in the order they ran), are each newer than every row of the batches before. Batches in
/// heap order would each hold rows of all 60 days.
async fn assert_filled_oldest_first(
    db: &TestDb,
    original_rows: i64,
    log: &WriterLog,
    at_least_batches: i64,
) {
    let touched: Vec<i64> = log.final_rows().keys().copied().collect();
    let client = db.client().await;
    let row = client
        .query_one(
            "WITH batch AS (
                 SELECT xmin::text::bigint AS xid, min(created_at) AS oldest, max(created_at) AS newest
                   FROM public.orders
                  WHERE id <= $1 AND id NOT IN (SELECT unnest($2::bigint[]))
                  GROUP BY 1)
             SELECT count(*), count(*) FILTER (WHERE oldest <= newest_before)
               FROM (SELECT oldest,
                            max(newest) OVER (ORDER BY xid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS newest_before
                       FROM batch) b",
            &[&original_rows, &touched],
        )
        .await
        .unwrap();
    let (batches, out_of_order): (i64, i64) = (row.get(0), row.get(1));
    assert!(batches >= at_least_batches, "only {batches} batches");
    assert_eq!(
        out_of_order, 0,
        "{out_of_order} of {batches} batches copied rows older than an earlier batch's"
    );
}

/// After a revert, public.orders is the plain original again, holding every original row
/// (none was ever removed from it) and every write, including those made after the swap.
async fn assert_original_holds_every_write(db: &TestDb, original_rows: i64, log: &WriterLog) {
    let client = db.client().await;
    let touched = log.final_rows();
    let ids: Vec<i64> = touched.keys().copied().collect();
    let amounts: Vec<Option<i32>> = touched.values().copied().collect();
    client
        .batch_execute("CREATE TEMP TABLE ledger (id bigint PRIMARY KEY, amount integer)")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO ledger SELECT * FROM unnest($1::bigint[], $2::integer[])",
            &[&ids, &amounts],
        )
        .await
        .unwrap();
    let expected = format!(
        "SELECT * FROM (SELECT i AS id, (i % 100)::integer AS amount FROM generate_series(1, {original_rows}) i
          WHERE i NOT IN (SELECT id FROM ledger)
         UNION ALL
         SELECT id, amount FROM ledger WHERE amount IS NOT NULL) e"
    );
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM ({expected} EXCEPT ALL SELECT id, amount FROM public.orders) m),
                        (SELECT count(*) FROM (SELECT id, amount FROM public.orders EXCEPT ALL {expected}) x)"
            ),
            &[],
        )
        .await
        .unwrap();
    let (missing, extra): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (missing, extra),
        (0, 0),
        "the reverted table differs from the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_under_writes_keeps_every_row_and_a_revert_after_the_swap_keeps_every_write() {
    const ROWS: i64 = 60_000;
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_orders(&db, ROWS);
        let project = project(&db);
        let apply = project.run(&["apply", "--auto-approve"]);
        assert!(apply.status.success(), "{partman:?}: {}", text(&apply));

        let writer = start_writer(&db, ROWS, "a");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let converted = project.run(&["convert", "public.orders", "--batch-rows", "2000"]);
        assert!(
            converted.status.success(),
            "{partman:?}: {}",
            text(&converted)
        );
        assert!(
            stdout(&converted).contains("public.orders: swapped"),
            "{}",
            text(&converted)
        );
        // Writes go on after the swap, into the partitioned table.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before_revert = writer.stop().await;
        assert_rows_match_the_ledger(&db, ROWS, &before_revert).await;
        assert_filled_oldest_first(&db, ROWS, &before_revert, 10).await;
        assert_structure_carried_over(&db);

        let writer = start_writer(&db, ROWS, "b");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reverted = project.run(&["convert", "public.orders", "--revert"]);
        assert!(
            reverted.status.success(),
            "{partman:?}: {}",
            text(&reverted)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = writer.stop().await;
        let mut all = before_revert;
        all.writes.extend(after.writes);
        // The structure-check insert is a write too.
        let extra: i64 = db
            .scalar("SELECT id FROM public.orders WHERE email = 'after the swap'")
            .parse()
            .unwrap();
        all.writes.push(Write::Upsert {
            id: extra,
            amount: 1,
        });
        assert_original_holds_every_write(&db, ROWS, &all).await;
        assert_eq!(
            db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
            "r"
        );
        assert_eq!(
            db.scalar("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND conname = 'orders_pkey'"),
            "PRIMARY KEY (id)"
        );
        assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "0");
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'orders\\_%' AND relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace"),
            "0",
            "no partitioned copy, partition or retired table is left"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND NOT tgisinternal"),
            "0"
        );
        let next: i64 = db
            .scalar("INSERT INTO public.orders (email, amount) VALUES ('after the revert', 1) RETURNING id")
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            next > extra,
            "the original's identity went back: {next} <= {extra}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_before_the_swap_leaves_the_table_as_it_was() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_orders(&db, 5_000);
        let project = project(&db);
        assert!(project.run(&["apply", "--auto-approve"]).status.success());
        let before =
            db.scalar("SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM public.orders o");
        let filled = project.run(&["convert", "public.orders", "--no-swap"]);
        assert!(filled.status.success(), "{partman:?}: {}", text(&filled));
        assert_eq!(
            db.scalar("SELECT to_regclass('public.orders_intermediate') IS NOT NULL"),
            "t"
        );
        let plan = project.run(&["plan"]);
        assert!(
            stdout(&plan).contains("resume the conversion"),
            "{}",
            text(&plan)
        );
        let reverted = project.run(&["convert", "public.orders", "--revert"]);
        assert!(
            reverted.status.success(),
            "{partman:?}: {}",
            text(&reverted)
        );
        assert_eq!(
            db.scalar("SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM public.orders o"),
            before
        );
        assert_eq!(
            db.scalar("SELECT to_regclass('public.orders_intermediate') IS NULL"),
            "t"
        );
        assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "0");
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'partman'::regnamespace AND relname LIKE 'template%'"),
            "0"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND NOT tgisinternal"),
            "0"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'retention'::regnamespace AND relname LIKE 'convert\\_%'"),
            "0",
            "the conversion's log is gone"
        );
        // And it can be converted after all.
        let converted = project.run(&["convert", "public.orders"]);
        assert!(
            converted.status.success(),
            "{partman:?}: {}",
            text(&converted)
        );
        assert_eq!(
            db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
            "p"
        );
    }
}

/// Without an index on the time column the fill goes in heap order, and plan says so and how
/// to make it oldest first (building an index on a big table is the DBA's call); every row
/// is copied all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_index_on_the_time_column_the_fill_goes_in_heap_order_and_plan_says_so() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_orders(&db, 5_000);
        db.psql(&["-q", "-c", "DROP INDEX public.orders_created_at_idx"]);
        let project = project(&db);
        assert!(project.run(&["apply", "--auto-approve"]).status.success());
        let plan = project.run(&["plan"]);
        assert!(
            stdout(&plan).contains(
                "copy the rows in committed batches, in heap order (no index on created_at to walk oldest first; CREATE INDEX CONCURRENTLY ON public.orders (created_at) before the conversion starts makes it oldest first)"
            ),
            "{partman:?}: {}",
            text(&plan)
        );
        let kept = db.scalar(
            "SELECT count(*) FROM public.orders WHERE created_at >= now() - interval '31 days'",
        );
        let converted = project.run(&["convert", "public.orders", "--batch-rows", "500"]);
        assert!(
            converted.status.success(),
            "{partman:?}: {}",
            text(&converted)
        );
        assert_eq!(
            db.scalar("SELECT fill_order FROM retention.conversions"),
            "heap"
        );
        assert_eq!(
            db.scalar("SELECT count(*) || ' ' || count(DISTINCT id) FROM public.orders"),
            format!("{kept} {kept}")
        );
    }
}

/// Tables that cannot be converted safely, each with the words its refusal must contain.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "referenced",
        "CREATE TABLE public.referenced (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE TABLE public.child_rows (id bigint PRIMARY KEY, parent bigint REFERENCES public.referenced (id))",
        "foreign key child_rows_parent_fkey of public.child_rows references public.referenced",
    ),
    (
        "viewed",
        "CREATE TABLE public.viewed (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE VIEW public.viewed_recent AS SELECT * FROM public.viewed",
        "public.viewed_recent depends on public.viewed",
    ),
    (
        "ruled",
        "CREATE TABLE public.ruled (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE RULE ruled_no_delete AS ON DELETE TO public.ruled DO INSTEAD NOTHING",
        "has the rule ruled_no_delete",
    ),
    (
        "published",
        "CREATE TABLE public.published (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE PUBLICATION published_pub FOR TABLE public.published",
        "published by the publication published_pub",
    ),
    (
        "triggered",
        "CREATE TABLE public.triggered (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER triggered_touch BEFORE INSERT ON public.triggered FOR EACH ROW EXECUTE FUNCTION public.touch()",
        "has the trigger triggered_touch",
    ),
    (
        "nullable",
        "CREATE TABLE public.nullable (id bigint PRIMARY KEY, at timestamptz)",
        "column at of public.nullable allows NULL",
    ),
    (
        "inheriting",
        "CREATE TABLE public.inherited (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         CREATE TABLE public.inheriting () INHERITS (public.inherited);
         ALTER TABLE public.inheriting ADD PRIMARY KEY (id)",
        "public.inheriting inherits from public.inherited",
    ),
    (
        "secured",
        "CREATE TABLE public.secured (id bigint PRIMARY KEY, at timestamptz NOT NULL);
         ALTER TABLE public.secured ENABLE ROW LEVEL SECURITY",
        "has row-level security",
    ),
    (
        "unlogged",
        "CREATE UNLOGGED TABLE public.unlogged (id bigint PRIMARY KEY, at timestamptz NOT NULL)",
        "public.unlogged is unlogged",
    ),
    (
        "keyless",
        "CREATE TABLE public.keyless (id bigint, at timestamptz NOT NULL)",
        "public.keyless has no primary key",
    ),
    (
        "generated_key",
        "CREATE TABLE public.generated_key (n bigint NOT NULL, at timestamptz NOT NULL,
             id bigint GENERATED ALWAYS AS (n * 2) STORED PRIMARY KEY)",
        "primary key column id of public.generated_key is a generated column",
    ),
    (
        "excluded",
        "CREATE EXTENSION IF NOT EXISTS btree_gist;
         CREATE TABLE public.excluded (id bigint PRIMARY KEY, at timestamptz NOT NULL, room int,
             EXCLUDE USING gist (room WITH =, at WITH =))",
        "has the exclusion constraint",
    ),
    (
        "tuned",
        "CREATE TABLE public.tuned (id bigint PRIMARY KEY, at timestamptz NOT NULL) WITH (fillfactor = 70)",
        "has storage parameters (fillfactor=70)",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_converted_safely_is_refused_before_anything_changes_pg_partman_4() {
    what_cannot_be_converted_safely_is_refused_before_anything_changes(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_converted_safely_is_refused_before_anything_changes_pg_partman_5() {
    what_cannot_be_converted_safely_is_refused_before_anything_changes(Partman::V5).await;
}

async fn what_cannot_be_converted_safely_is_refused_before_anything_changes(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let mut project = TestProject::for_db(&db).config("lock_timeout: 1s");
    for (table, ddl, _) in REFUSED {
        db.psql(&["-q", "-c", ddl]);
        project = project.policy(
            table,
            &format!("table: public.{table}\npartitioning:\n  column: at\n  interval: 1 day\nretention:\n  keep: 30 days\n"),
        );
    }
    let mut compile = vec!["compile".to_string()];
    for (table, _, _) in REFUSED {
        compile.push("--convert".into());
        compile.push(format!("public.{table}"));
    }
    let args: Vec<&str> = compile.iter().map(String::as_str).collect();
    let out = project.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let catalog_before = db.scalar(
        "SELECT md5(string_agg(c.oid::text || c.relname || c.relkind::text, ',' ORDER BY c.oid)) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
    );

    // plan names every refusal at the policy's partitioning key.
    let plan = project.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    let errors = stderr(&plan);
    for (table, _, expected) in REFUSED {
        assert!(
            errors.contains(&format!("policies/{table}.yaml")) && errors.contains(expected),
            "no refusal for {table} ({expected}) in:\n{errors}"
        );
    }
    assert!(
        errors
            .contains("partitioning: public.referenced is a plain table, and cannot be converted"),
        "{errors}"
    );

    // convert refuses each too, and changes nothing.
    for (table, _, expected) in REFUSED {
        let out = project.run(&["convert", &format!("public.{table}")]);
        assert_eq!(out.status.code(), Some(1), "{table}: {}", text(&out));
        assert!(stderr(&out).contains(expected), "{table}: {}", text(&out));
    }
    assert_eq!(
        db.scalar(
            "SELECT md5(string_agg(c.oid::text || c.relname || c.relkind::text, ',' ORDER BY c.oid)) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
        ),
        catalog_before,
        "a refused conversion changed the catalog"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "0");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'retentionc%'"),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_made_during_the_fill_stops_the_swap_pg_partman_4() {
    a_view_made_during_the_fill_stops_the_swap(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_made_during_the_fill_stops_the_swap_pg_partman_5() {
    a_view_made_during_the_fill_stops_the_swap(Partman::V5).await;
}

/// The refusal is checked again by the conversion itself, in the database, whatever plan
/// said: a view made after plan stops the swap, and nothing is swapped.
async fn a_view_made_during_the_fill_stops_the_swap(partman: Partman) {
    let db = Cluster::shared().database(partman);
    create_orders(&db, 5_000);
    let project = project(&db);
    assert!(project.run(&["apply", "--auto-approve"]).status.success());
    let filled = project.run(&["convert", "public.orders", "--no-swap"]);
    assert!(filled.status.success(), "{}", text(&filled));
    db.psql(&[
        "-q",
        "-c",
        "CREATE VIEW public.orders_today AS SELECT * FROM public.orders",
    ]);
    let swapped = project.run(&["convert", "public.orders"]);
    assert_eq!(swapped.status.code(), Some(1), "{}", text(&swapped));
    assert!(
        stderr(&swapped).contains("orders_today depends on public.orders"),
        "{}",
        text(&swapped)
    );
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
        "r"
    );
}

/// `apply --convert`: retentionc's schema, then the conversion, then the converted table's
/// retention, in one command; the apply history records the table only once it has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_convert_installs_converts_and_sets_retention_in_one_go() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_orders(&db, 5_000);
        let project = project(&db);
        let out = project.run(&["apply", "--auto-approve", "--convert", "--allow-data-loss"]);
        assert!(out.status.success(), "{partman:?}: {}", text(&out));
        assert!(
            stdout(&out).contains("public.orders: swapped"),
            "{}",
            text(&out)
        );
        assert_eq!(
            db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.orders'::regclass"),
            "p"
        );
        assert_eq!(
            db.scalar(
                "SELECT retention FROM partman.part_config WHERE parent_table = 'public.orders'"
            ),
            "30 days"
        );
        // The retention settings are a change of their own, not drift.
        assert!(!stdout(&out).contains("[drift]"), "{}", text(&out));
        let plan = project.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{partman:?}: {}", text(&plan));
    }
}
