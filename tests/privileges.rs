//! Least privilege, proven with real roles made from docs/privileges.md's own SQL.
//!
//! On a realistic project (a partitioned table owned by an application role, retention into
//! an archive schema, a delete rule, a pg_cron schedule) in a database that revoked CONNECT
//! and schema `public` from PUBLIC, applied by a superuser, for pg_partman 4.7.2 and 5.2.4:
//! - the read-only role of the doc runs `plan` (no changes: no false drift, schedules
//!   included), `status --check`, `run --dry-run`, and plans a new delete rule;
//! - the run role of the doc (a non-superuser member of the owner) runs `run`, as the owner
//!   with the grants apply gave it (the doc's owner block is exactly what apply grants);
//! - each documented grant taken away in turn: the commands that need it (the doc's comment
//!   says which) fail in one line naming that GRANT and the step, with no PL/pgSQL context,
//!   changing nothing; the commands that do not need it still work;
//! - apply by a role that is not a superuser (the table owner, the run role) stops at the
//!   refused step, says apply needs a superuser, and changes nothing;
//! - a trigger that undoes run's SET ROLE (RESET ROLE) gets only the run role's rights;
//! - the pg_cron job runs as the owner and succeeds with those grants, and fails for an
//!   owner without CONNECT (one wait for a real job run per pg_partman major).

mod common;

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, CronDb, Partman, TestDb, quote_ident};
use common::project::{TestProject, stderr, stdout, text};

/// One statement of a SQL block of docs/privileges.md, with its names replaced.
#[derive(Debug, Clone)]
struct DocStatement {
    sql: String,
    /// What its comment says needs it (`plan`, `status`, `maintenance`, ...).
    needed_by: Vec<String>,
    /// The comment's parenthesis, if any.
    note: String,
}

impl DocStatement {
    fn needed_by(&self, what: &str) -> bool {
        self.needed_by.iter().any(|n| n == what)
    }

    /// The statement that takes the grant back.
    fn revoke(&self) -> String {
        let rest = self
            .sql
            .strip_prefix("GRANT ")
            .unwrap_or_else(|| panic!("not a GRANT: {}", self.sql));
        let (what, grantee) = rest.rsplit_once(" TO ").expect("GRANT ... TO ...");
        format!("REVOKE {what} FROM {grantee}")
    }
}

/// The SQL block that follows `heading` in docs/privileges.md, statement by statement,
/// with the doc's names replaced by `names` (whole identifiers only).
fn doc_block(heading: &str, names: &BTreeMap<&str, String>) -> Vec<DocStatement> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/privileges.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let after = doc
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/privileges.md has no heading {heading:?}"))
        .1;
    let block = after
        .split_once("```sql\n")
        .expect("a SQL block after the heading")
        .1
        .split_once("\n```")
        .expect("the SQL block ends")
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .map(|line| {
            let (sql, comment) = line.split_once(';').expect("a statement ends with ;");
            let comment = comment.trim().trim_start_matches("--").trim();
            let (tags, note) = match comment.split_once(" (") {
                Some((tags, note)) => (tags, note.trim_end_matches(')')),
                None => (comment, ""),
            };
            DocStatement {
                sql: rename(sql.trim(), names),
                needed_by: tags
                    .split(", ")
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
                note: note.to_string(),
            }
        })
        .collect()
}

fn rename(sql: &str, names: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in sql.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        out.push_str(
            names
                .get(word.as_str())
                .map_or(word.as_str(), String::as_str),
        );
        word.clear();
        out.push(c);
    }
    out.pop();
    out
}

static ROLES: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        ROLES.fetch_add(1, Ordering::Relaxed)
    )
}

/// `YYYY-MM-DD HH24:00:00+00` of now shifted by `hours`.
fn hour(db: &TestDb, hours: i64) -> String {
    db.scalar(&format!(
        "SELECT to_char(date_trunc('hour', now()) + make_interval(hours => {hours}), 'YYYY-MM-DD HH24:MI:SSOF')"
    ))
}

fn events_policy(db: &TestDb, schedule: &str) -> String {
    format!(
        "table: public.events\n\
         partitioning:\n  column: at\n  interval: 1 hour\n  premake: 2\n  start: \"{}\"\n\
         retention:\n  keep: 3 hours\n  expired: archive\n  archive_schema: archive\n\
         deletes:\n  - name: debug\n    where: \"kind = 'debug'\"\n    older_than: 1 hour\n    column: at\n\
         schedule: \"{schedule}\"\n",
        hour(db, -7)
    )
}

/// The realistic project, applied by the superuser: public.events owned by `owner` (which
/// can log in: it has a schedule), in a database where PUBLIC may neither connect nor use
/// schema public.
struct Setup {
    db: CronDb,
    project: TestProject,
    names: BTreeMap<&'static str, String>,
}

impl Setup {
    fn new(partman: Partman) -> Setup {
        let db = Cluster::shared().cron_database(partman);
        let owner = unique("app_owner");
        let names = BTreeMap::from([
            ("app", db.name.clone()),
            ("app_owner", owner.clone()),
            ("retentionc_plan", unique("retentionc_plan")),
            ("retentionc_run", unique("retentionc_run")),
        ]);
        db.psql(&[
            "-c",
            &format!(
                "REVOKE ALL ON DATABASE {} FROM PUBLIC",
                quote_ident(&db.name)
            ),
            "-c",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            "-c",
            &format!("CREATE ROLE {owner} LOGIN"),
            "-c",
            "CREATE TABLE public.events (id bigserial NOT NULL, at timestamptz NOT NULL, kind text NOT NULL) PARTITION BY RANGE (at)",
            "-c",
            &format!("ALTER TABLE public.events OWNER TO {owner}"),
            "-c",
            &format!("ALTER SEQUENCE public.events_id_seq OWNER TO {owner}"),
        ]);
        // A schedule that does not fire while the test runs (03:00 on 1 January).
        let project = TestProject::for_db(&db)
            .config("lock_timeout: 2s")
            .policy("events", &events_policy(&db, "0 3 1 1 *"))
            .compiled();
        let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert!(out.status.success(), "apply failed:\n{}", text(&out));
        Setup { db, project, names }
    }

    fn name(&self, doc_name: &str) -> &str {
        &self.names[doc_name]
    }

    fn block(&self, heading: &str) -> Vec<DocStatement> {
        doc_block(heading, &self.names)
    }

    /// Runs the block's statements as the superuser.
    fn create(&self, statements: &[DocStatement]) {
        for s in statements {
            self.db.psql(&["-c", &s.sql]);
        }
    }

    fn as_role(&self, doc_role: &str) -> TestProject {
        self.project_as(&self.project, doc_role)
    }

    fn project_as(&self, project: &TestProject, doc_role: &str) -> TestProject {
        let url = self
            .db
            .cluster
            .url_as(self.name(doc_role), None, &self.db.name);
        let copy = TestProject::new().with_url(&url);
        copy_project(project.root(), copy.root());
        copy
    }

    /// What any command could change: partitions and where they are, rows, pg_partman's
    /// settings, the apply history and the jobs.
    fn state(&self) -> String {
        self.db.scalar(
            "SELECT concat_ws(' | ',
                (SELECT string_agg(n.nspname || '.' || c.relname || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY 1)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relname LIKE 'events%' AND c.relkind IN ('r', 'p')),
                (SELECT count(*) FROM public.events),
                (SELECT retention || ' ' || coalesce(retention_schema, '') FROM partman.part_config WHERE parent_table = 'public.events'),
                (SELECT count(*) FROM retention.apply_history),
                (SELECT string_agg(jobname || ' ' || schedule || ' ' || username, ',') FROM cron.job))",
        )
    }
}

/// Copies retentionc.yaml, policies/ and generated/ into another project folder.
fn copy_project(from: &std::path::Path, to: &std::path::Path) {
    for dir in ["policies", "generated", "generated/_removed"] {
        let source = from.join(dir);
        if !source.is_dir() {
            continue;
        }
        std::fs::create_dir_all(to.join(dir)).unwrap();
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(dir).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::copy(from.join("retentionc.yaml"), to.join("retentionc.yaml")).unwrap();
}

/// The lines of a failed command's output that say why: stderr, and for commands that
/// report per table, the failure lines of stdout.
fn failure_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .chain(stdout(out).lines())
        .filter(|l| l.contains("FAILED") || l.contains("error") || l.contains("cannot"))
        .map(String::from)
        .collect()
}

/// `out` failed, in lines that name `grant` after a step, with no PL/pgSQL context.
fn assert_refused_naming(out: &Output, grant: &str, context: &str) {
    assert!(
        !out.status.success(),
        "{context}: succeeded without {grant}\n{}",
        text(out)
    );
    let all = format!("{}{}", stdout(out), stderr(out));
    for dump in ["CONTEXT", "PL/pgSQL", "SQL statement", "\nDETAIL"] {
        assert!(
            !all.contains(dump),
            "{context}: a context dump ({dump}):\n{}",
            text(out)
        );
    }
    let lines = failure_lines(out);
    let naming: Vec<&String> = lines.iter().filter(|l| l.contains(grant)).collect();
    assert!(
        !naming.is_empty() && naming.len() <= 2,
        "{context}: no line (or too many) names {grant}:\n{}",
        text(out)
    );
    for line in naming {
        // The step comes first: "reading run_log: permission denied ...", "maintenance: FAILED".
        let step = line
            .split(": permission denied")
            .next()
            .unwrap()
            .trim_start_matches("error:")
            .trim();
        assert!(
            line.contains(": FAILED") || (!step.is_empty() && step.len() < line.len()),
            "{context}: the line names no step: {line}"
        );
    }
}

/// The read-only commands: what the doc's comments call them, and how they are run.
const READ_ONLY: [(&str, &[&str]); 5] = [
    ("plan", &["plan", "--detailed-exitcode"]),
    ("status", &["status"]),
    ("status", &["status", "--check"]),
    ("run --dry-run", &["run", "--dry-run"]),
    ("plan of a new delete rule", &["plan"]),
];

/// The project with a second delete rule (what plan must estimate with EXPLAIN).
fn with_new_rule(setup: &Setup) -> TestProject {
    let project = setup.as_role("retentionc_plan");
    let policy = events_policy(&setup.db, "0 3 1 1 *").replace(
        "schedule:",
        "  - name: info\n    where: \"kind = 'info'\"\n    older_than: 2 hours\n    column: at\nschedule:",
    );
    project.write_policy("events", &policy);
    project.compile();
    project
}

fn read_only_run(setup: &Setup, new_rule: &TestProject, command: &str, args: &[&str]) -> Output {
    if command == "plan of a new delete rule" {
        new_rule.run(args)
    } else {
        setup.as_role("retentionc_plan").run(args)
    }
}

fn assert_read_only_works(
    setup: &Setup,
    new_rule: &TestProject,
    (command, args): (&str, &[&str]),
    context: &str,
) {
    let out = read_only_run(setup, new_rule, command, args);
    match command {
        "plan" => {
            assert_eq!(out.status.code(), Some(0), "{context}: {}", text(&out));
            assert!(
                stdout(&out).contains("No changes"),
                "{context}: false drift:\n{}",
                text(&out)
            );
        }
        "plan of a new delete rule" => {
            assert!(out.status.success(), "{context}: {}", text(&out));
            assert!(
                stdout(&out).contains("delete rule info matches about"),
                "{context}: {}",
                text(&out)
            );
        }
        _ => assert!(out.status.success(), "{context}: {}", text(&out)),
    }
}

async fn every_command_needs_exactly_the_documented_grants(partman: Partman) {
    let setup = Setup::new(partman);
    let db = &setup.db;
    // Rows every 10 minutes over the last 6 hours, half of them debug; the newest
    // partition dropped, so that maintenance has one to make.
    db.psql(&[
        "-c",
        "INSERT INTO public.events (at, kind) SELECT now() - make_interval(mins => m), \
           CASE WHEN (m / 10) % 2 = 0 THEN 'debug' ELSE 'info' END FROM generate_series(1, 360, 10) m",
        "-c",
        "ANALYZE public.events",
    ]);
    let newest = db.scalar(
        "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
          WHERE i.inhparent = 'public.events'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT' \
          ORDER BY pg_get_expr(c.relpartbound, c.oid) DESC LIMIT 1",
    );
    db.psql(&["-c", &format!("DROP TABLE {newest}")]);

    // The owner has exactly what the doc's owner block says: what apply granted.
    let owner_block = setup.block("### The table owner (granted by `apply`)");
    let owner = setup.name("app_owner");
    let granted = |statement: &DocStatement| -> bool {
        db.psql_output(&[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "BEGIN",
            "-c",
            &statement.revoke(),
            "-c",
            "ROLLBACK",
        ])
        .status
        .success()
    };
    for statement in owner_block.iter().filter(|s| s.sql.starts_with("GRANT")) {
        assert!(granted(statement), "apply did not grant: {}", statement.sql);
    }
    let library_grants = library_owner_grants(&setup);
    let documented: Vec<&str> = owner_block
        .iter()
        .filter(|s| s.sql.starts_with("GRANT"))
        .map(|s| s.sql.as_str())
        .collect();
    assert_eq!(
        library_grants, documented,
        "the doc's owner block is not what apply grants"
    );

    // Read-only commands: each works with the doc's grants, each grant is needed by
    // exactly the commands its comment names.
    let plan_block = setup.block("### `plan`, `status`, `run --dry-run` (read only)");
    setup.create(&plan_block);
    let new_rule = with_new_rule(&setup);
    let before = setup.state();
    for entry in READ_ONLY {
        assert_read_only_works(&setup, &new_rule, entry, "with every grant");
    }
    for statement in plan_block.iter().filter(|s| s.sql.starts_with("GRANT")) {
        for tag in &statement.needed_by {
            assert!(
                READ_ONLY.iter().any(|(c, _)| c == tag),
                "unknown command {tag:?} in the doc: {}",
                statement.sql
            );
        }
        db.psql(&["-c", &statement.revoke()]);
        for (command, args) in READ_ONLY {
            let context = format!("{} without {}", args.join(" "), statement.sql);
            // Planning a new rule needs all that plan needs, and SELECT on the table.
            let needed = statement.needed_by(command)
                || (command == "plan of a new delete rule" && statement.needed_by("plan"));
            if needed {
                let out = read_only_run(&setup, &new_rule, command, args);
                assert_refused_naming(&out, &statement.sql, &context);
            } else {
                assert_read_only_works(&setup, &new_rule, (command, args), &context);
            }
        }
        db.psql(&["-c", &statement.sql]);
        assert_eq!(
            setup.state(),
            before,
            "a read-only command changed something"
        );
    }

    // run: each owner grant, and the run role's, taken away in turn fails the table
    // before anything of it runs.
    let run_block = setup.block("### `run`");
    setup.create(&run_block);
    let runner = setup.as_role("retentionc_run");
    let run_log_rows =
        || db.scalar("SELECT count(*) FROM retention.run_log WHERE outcome <> 'failed'");
    let ok_rows = run_log_rows();
    let step_prefix = |tag: &str| match tag {
        "maintenance" => "public.events: maintenance: FAILED",
        "delete rules" => "public.events: delete debug: FAILED",
        other => panic!("unknown step {other:?} in the doc's owner block"),
    };
    for statement in owner_block
        .iter()
        .chain(run_block.iter().filter(|s| s.sql.starts_with("GRANT")))
    {
        let context = format!("run without {}", statement.sql);
        if statement.needed_by("the pg_cron job") {
            continue; // the job logs in; run sets its role (below, with a real job run)
        }
        let (take, give) = if statement.sql.starts_with("ALTER TABLE") {
            // A partition another role owns: made so here, then given back.
            let child = db.scalar(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_inherits i \
                   JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE i.inhparent = 'public.events'::regclass ORDER BY c.relname LIMIT 1",
            );
            (
                format!("ALTER TABLE {child} OWNER TO postgres"),
                format!("ALTER TABLE {child} OWNER TO {owner}"),
            )
        } else {
            (statement.revoke(), statement.sql.clone())
        };
        db.psql(&["-c", &take]);
        let inherited = statement.note.starts_with("unless inherited from an owner");
        if inherited {
            // The owner has CONNECT (its table has a schedule), and the run role inherits it.
            let url = db
                .cluster
                .url_as(setup.name("retentionc_run"), None, &db.name);
            let connected = tokio_postgres::connect(&url, tokio_postgres::NoTls).await;
            assert!(connected.is_ok(), "{context}: {:?}", connected.err());
        } else {
            let out = runner.run(&["run"]);
            let expected = if statement.sql.starts_with("ALTER TABLE") {
                give.clone()
            } else {
                statement.sql.clone()
            };
            assert_refused_naming(&out, &expected, &context);
            let report = stdout(&out);
            let steps: Vec<&str> = if statement.needed_by("run") {
                vec!["maintenance", "delete rules"]
            } else {
                statement.needed_by.iter().map(String::as_str).collect()
            };
            for step in steps {
                let line = report
                    .lines()
                    .find(|l| l.starts_with(step_prefix(step)))
                    .unwrap_or_else(|| panic!("{context}: no {step} line\n{}", text(&out)));
                assert!(
                    line.contains(&expected),
                    "{context}: the {step} line does not name it: {line}"
                );
            }
            assert_eq!(run_log_rows(), ok_rows, "{context}: a step ran");
        }
        db.psql(&["-c", &give]);
        assert_eq!(setup.state(), before, "{context}: changed something");
    }

    // apply as a role that is not a superuser: the table's owner (the old advice) and
    // the run role, a member of it; with the read-only grants too, so that it plans.
    let stricter = events_policy(db, "0 3 1 1 *").replace("keep: 3 hours", "keep: 4 hours");
    for role in ["app_owner", "retentionc_run"] {
        let applier = setup.project_as(&setup.project, role);
        applier.write_policy("events", &stricter);
        applier.compile();
        let out = applier.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert_refused_naming(&out, "apply needs a superuser", &format!("apply as {role}"));
        assert_eq!(setup.state(), before, "apply as {role} changed something");
        let name = setup.name(role).to_string();
        db.psql(&[
            "-c",
            &format!("GRANT {} TO {name}", setup.name("retentionc_plan")),
        ]);
        let out = applier.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert_refused_naming(&out, "apply needs a superuser", &format!("apply as {role}"));
        assert!(
            stderr(&out).contains("public.events [retention] (generated/public.events.sql) failed"),
            "apply as {role} does not name the statement:\n{}",
            text(&out)
        );
        assert_eq!(setup.state(), before, "apply as {role} changed something");
        db.psql(&[
            "-c",
            &format!("REVOKE {} FROM {name}", setup.name("retentionc_plan")),
        ]);
    }

    // With every grant back: run does everything, as the owner. A trigger of the owner's
    // that undoes SET ROLE (RESET ROLE) gets the run role's rights, which cannot make
    // anyone superuser: why run is not run by a superuser.
    db.psql(&[
        "-c",
        "CREATE TABLE public.escape_log (who text NOT NULL, outcome text NOT NULL)",
        "-c",
        &format!("ALTER TABLE public.escape_log OWNER TO {owner}"),
        "-c",
        &format!(
            "CREATE FUNCTION public.escape() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               RESET ROLE; \
               BEGIN \
                 EXECUTE 'ALTER ROLE {owner} SUPERUSER'; \
                 INSERT INTO public.escape_log VALUES (current_user, 'became superuser'); \
               EXCEPTION WHEN insufficient_privilege THEN \
                 INSERT INTO public.escape_log VALUES (current_user, 'refused'); \
               END; \
               RETURN OLD; \
             END $$"
        ),
        "-c",
        &format!("ALTER FUNCTION public.escape() OWNER TO {owner}"),
        "-c",
        "CREATE TRIGGER escape BEFORE DELETE ON public.events FOR EACH ROW EXECUTE FUNCTION public.escape()",
    ]);
    let out = runner.run(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        db.scalar("SELECT string_agg(DISTINCT who || ' ' || outcome, ', ') FROM public.escape_log"),
        format!("{} refused", setup.name("retentionc_run")),
        "RESET ROLE under run"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{owner}'"
        )),
        "f"
    );
    db.psql(&["-c", "DROP TRIGGER escape ON public.events"]);
    // Made (the partition dropped above, one more if the hour turned meanwhile), moved
    // to the archive, none dropped or detached.
    let report = stdout(&out);
    let counts: Vec<u32> = report
        .lines()
        .find_map(|l| l.strip_prefix("public.events: maintenance: "))
        .unwrap_or_else(|| panic!("no maintenance line:\n{}", text(&out)))
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        matches!(counts[..], [created, 0, 0, moved] if created >= 1 && moved >= 1)
            && report.contains("public.events: ok"),
        "{}",
        text(&out)
    );
    let deleted: i64 = db
        .scalar("SELECT rows_deleted FROM retention.run_log WHERE step = 'delete:debug' AND outcome = 'ok'")
        .parse()
        .unwrap();
    assert!(deleted > 0, "the delete rule deleted nothing");
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'archive' AND pg_get_userbyid(c.relowner) = '{owner}'"
        )),
        db.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'archive' AND c.relkind = 'r'"),
        "moved partitions belong to the owner"
    );
    // And plan, read-only, still sees no change.
    for entry in READ_ONLY
        .iter()
        .filter(|(c, _)| *c == "plan" || *c == "status")
    {
        assert_read_only_works(&setup, &new_rule, *entry, "after run");
    }

    the_job_runs_as_the_owner_with_its_grants(&setup).await;
}

/// What the library says apply grants the owner of the test's policy, as the doc writes it.
fn library_owner_grants(setup: &Setup) -> Vec<String> {
    let project = setup.project.load();
    let policy = &project.policies[0];
    let owner = setup.name("app_owner");
    retentionc::db::privileges::owner_grants(&project.config, policy)
        .iter()
        .map(|g| {
            let object = match g.kind {
                retentionc::db::privileges::ObjectKind::Database => setup.db.name.clone(),
                retentionc::db::privileges::ObjectKind::Schema => g.schema.clone(),
                _ => format!("{}.{}", g.schema, g.name),
            };
            let args = g.args.map(|a| format!("({a})")).unwrap_or_default();
            format!(
                "GRANT {} ON {} {object}{args} TO {owner}",
                g.privileges,
                g.kind.keyword()
            )
        })
        .collect()
}

/// The schedule made every minute: the job runs as the owner with the grants apply gave
/// it; a second table's owner without CONNECT (the database refuses it to PUBLIC) fails.
async fn the_job_runs_as_the_owner_with_its_grants(setup: &Setup) {
    let db = &setup.db;
    let owner = setup.name("app_owner");
    let other = unique("audit_owner");
    db.psql(&[
        "-c",
        &format!("CREATE ROLE {other} LOGIN"),
        "-c",
        "CREATE TABLE public.audit (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
        "-c",
        &format!("ALTER TABLE public.audit OWNER TO {other}"),
    ]);
    setup
        .project
        .write_policy("events", &events_policy(db, "* * * * *"));
    setup.project.write_policy(
        "audit",
        "table: public.audit\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 2\nretention:\n  keep: 3 hours\nschedule: \"* * * * *\"\n",
    );
    setup.project.compile();
    let out = setup
        .project
        .run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "apply failed:\n{}", text(&out));
    db.psql(&[
        "-c",
        &format!(
            "REVOKE CONNECT ON DATABASE {} FROM {other}",
            quote_ident(&db.name)
        ),
    ]);
    // Plan, read-only, sees the jobs as they are: no false drift. It does see the owner's
    // CONNECT taken away, which the policy's [privileges] statement would grant again.
    let out =
        setup
            .as_role("retentionc_plan")
            .run(&["plan", "--detailed-exitcode", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["table"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [("public.audit", "owner_rights")],
        "{}",
        text(&out)
    );
    assert!(
        plan["changes"][0]["notes"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("missing: GRANT CONNECT ON DATABASE")),
        "{}",
        text(&out)
    );
    let rows_before = db.scalar("SELECT count(*) FROM public.events");
    db.psql(&[
        "-c",
        "INSERT INTO public.events (at, kind) SELECT now() - interval '90 minutes', 'debug' FROM generate_series(1, 5)",
    ]);

    // The first finished run of each job.
    let deadline = Instant::now() + Duration::from_secs(80);
    let runs = loop {
        let runs = db.scalar(
            "SELECT string_agg(run, E'\\n' ORDER BY jobname) FROM ( \
               SELECT DISTINCT ON (j.jobname) j.jobname, \
                      j.jobname || ' ' || d.username || ' ' || d.status || ' ' || replace(coalesce(d.return_message, ''), E'\\n', ' ') AS run \
                 FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid \
                WHERE d.status IN ('succeeded', 'failed') ORDER BY j.jobname, d.runid) r",
        );
        if runs.lines().count() >= 2 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled runs within 80 s: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut lines = runs.lines();
    let audit = lines.next().unwrap();
    let events = lines.next().unwrap();
    assert!(
        events.starts_with(&format!("retentionc:public.events {owner} succeeded")),
        "the job of public.events: {events}"
    );
    assert!(
        audit.starts_with(&format!("retentionc:public.audit {other} failed"))
            && audit.contains("permission denied for database"),
        "the job of public.audit, whose owner may not connect: {audit}"
    );
    assert_eq!(
        db.scalar(
            "SELECT string_agg(DISTINCT step || ' ' || outcome, ', ') FROM retention.run_log \
              WHERE run_by = 'pg_cron' AND table_name = 'public.events'"
        ),
        "delete:debug ok, maintenance ok"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.events WHERE kind = 'debug' AND at < now() - interval '61 minutes'"),
        "0",
        "the job did not delete the old debug rows ({rows_before} rows before)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_needs_exactly_the_documented_grants_pg_partman_4() {
    every_command_needs_exactly_the_documented_grants(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_needs_exactly_the_documented_grants_pg_partman_5() {
    every_command_needs_exactly_the_documented_grants(Partman::V5).await;
}

#[test]
fn doc_names_are_replaced_as_whole_identifiers() {
    let names = BTreeMap::from([("app", "db1".to_string()), ("app_owner", "o1".to_string())]);
    assert_eq!(
        rename("GRANT CONNECT ON DATABASE app TO app_owner", &names),
        "GRANT CONNECT ON DATABASE db1 TO o1"
    );
    assert_eq!(rename("public.app_logs", &names), "public.app_logs");
}
