//! A saved plan edited as an attacker would, applied through the binary
//! (`retentionc apply --plan FILE --auto-approve`) on pg_partman 4.7.2 and 5.2.4, with a
//! writer inserting throughout: a statement added without a file (`ALTER ROLE ...
//! SUPERUSER`), a `DROP TABLE` of a table no policy names (as a statement and as a change),
//! a statement's text changed by one byte, a retention shortened in the plan but not in the
//! policy, a destructive change marked harmless, a summary that hides what the change does. Each is refused, exit 1, with a message
//! saying why, and changes nothing: the role stays without SUPERUSER, the unmanaged table
//! and its rows stay, part_config and apply_history are as before, no insert fails or is
//! lost. The same plans unedited apply.

mod common;

use std::path::PathBuf;

use common::cluster::{Cluster, Partman, TestDb, quote_ident};
use common::data::{Writer, create_table, history_count, part_config, policy_yaml};
use common::project::{TestProject, blocking, stderr, text};
use serde_json::{Value, json};

const TABLE: &str = "public.events";

/// Edits a saved plan's JSON, given the role to make superuser.
type PlanEdit = Box<dyn Fn(&mut Value, &str)>;

/// An edit of a saved plan, and what the refusal must say.
struct Edit {
    what: &'static str,
    edit: PlanEdit,
    refusal: &'static str,
}

fn edit(
    what: &'static str,
    refusal: &'static str,
    edit: impl Fn(&mut Value, &str) + 'static,
) -> Edit {
    Edit {
        what,
        edit: Box::new(edit),
        refusal,
    }
}

/// The first change of the plan that touches `table`.
fn change_of<'v>(plan: &'v mut Value, table: &str) -> &'v mut Value {
    plan["changes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["table"] == table)
        .unwrap_or_else(|| panic!("no change of {table}"))
}

fn statements(change: &mut Value) -> &mut Vec<Value> {
    change["statements"].as_array_mut().unwrap()
}

/// The database as the refusals must leave it.
struct Untouched<'d> {
    db: &'d TestDb,
    victim: String,
    part_config: String,
    history: i64,
}

impl Untouched<'_> {
    fn check(&self, context: &str) {
        let db = self.db;
        assert_eq!(
            db.scalar(&format!(
                "SELECT rolsuper FROM pg_roles WHERE rolname = '{}'",
                self.victim
            )),
            "f",
            "{context}: the role became superuser"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM public.unmanaged"),
            "3",
            "{context}: public.unmanaged or its rows are gone"
        );
        assert_eq!(part_config(db, TABLE), self.part_config, "{context}");
        assert_eq!(
            history_count(db),
            self.history,
            "{context}: apply_history grew"
        );
    }
}

/// Saves `plan --out` of the project as it is, checking that it plans changes.
fn saved_plan(project: &TestProject, name: &str) -> (PathBuf, Value) {
    let path = project.root().join(name);
    let out = project.run(&[
        "plan",
        "--out",
        path.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, plan)
}

/// Writes each edit of `reviewed` to a file of its own and applies it, expecting refusal.
fn assert_each_refused(
    project: &TestProject,
    reviewed: &Value,
    edits: &[Edit],
    extra_args: &[&str],
    untouched: &Untouched,
    context: &str,
) {
    for (
        index,
        Edit {
            what,
            edit,
            refusal,
        },
    ) in edits.iter().enumerate()
    {
        let mut plan = reviewed.clone();
        edit(&mut plan, &untouched.victim);
        assert_ne!(
            &plan, reviewed,
            "{context}: {what}: the edit changed nothing"
        );
        let path = project.root().join(format!("edited-{index}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
        let mut args = vec!["apply", "--plan", path.to_str().unwrap(), "--auto-approve"];
        args.extend_from_slice(extra_args);
        let out = blocking(|| project.run(&args));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{context}: {what}: {}",
            text(&out)
        );
        let err = stderr(&out);
        eprintln!("{context}: {what}: {err}");
        assert!(
            err.contains(refusal),
            "{context}: {what}: expected \"{refusal}\": {}",
            text(&out)
        );
        untouched.check(&format!("{context}: {what}"));
    }
}

async fn edited_plans_are_refused(partman: Partman) {
    let context = partman.to_string();
    let db = Cluster::shared().database(partman);
    let victim = format!("victim_{}_{}", std::process::id(), partman.major());
    db.psql(&[
        "-c",
        &format!("CREATE ROLE {} NOLOGIN NOSUPERUSER", quote_ident(&victim)),
        "-c",
        "CREATE TABLE public.unmanaged (id int PRIMARY KEY)",
        "-c",
        "INSERT INTO public.unmanaged VALUES (1), (2), (3)",
    ]);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout("2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
    let out = project.run(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "{context}: {}", text(&out));
    let writer = Writer::start(&db, TABLE).await;

    // A longer retention: one retention_settings change, not destructive.
    project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
    let (reviewed_path, reviewed) = saved_plan(&project, "plan.json");
    let untouched = Untouched {
        db: &db,
        victim: victim.clone(),
        part_config: "2 days | f | 4 | t".into(),
        history: 1,
    };
    let edits = [
        edit(
            "a statement without a file making a role superuser",
            "not a plan saved by `retentionc plan --out`",
            |plan, victim| {
                statements(change_of(plan, TABLE)).push(json!({
                    "key": "retention",
                    "file": null,
                    "sql": format!("ALTER ROLE {victim} SUPERUSER"),
                }))
            },
        ),
        edit(
            "a statement of a reviewed file's key making a role superuser",
            "the statements of the plan's change to public.events differ from the reviewed files' statements",
            |plan, victim| {
                let change = change_of(plan, TABLE);
                let mut extra = statements(change)[0].clone();
                extra["sql"] = json!(format!("ALTER ROLE {victim} SUPERUSER;"));
                statements(change).push(extra);
            },
        ),
        edit(
            "DROP TABLE of an unmanaged table as a statement",
            "the statements of the plan's change to public.events differ from the reviewed files' statements",
            |plan, _| {
                let change = change_of(plan, TABLE);
                let mut extra = statements(change)[0].clone();
                extra["sql"] = json!("DROP TABLE public.unmanaged;");
                statements(change).push(extra);
            },
        ),
        edit(
            "DROP TABLE of an unmanaged table as a change of its own",
            "the plan holds 2 change(s), and the policies and the database give 1",
            |plan, _| {
                plan["changes"].as_array_mut().unwrap().push(json!({
                    "table": "public.unmanaged",
                    "kind": "policy_removed",
                    "summary": "release public.unmanaged",
                    "destructive": false,
                    "impact": null,
                    "statements": [{
                        "key": "retention",
                        "file": "_removed/public.unmanaged.sql",
                        "sql": "DROP TABLE public.unmanaged;",
                    }],
                    "settings": [],
                    "body_diff": null,
                    "drift": false,
                }));
            },
        ),
        edit(
            "one byte of a statement changed",
            "the statements of the plan's change to public.events differ from the reviewed files' statements",
            |plan, _| {
                let change = change_of(plan, TABLE);
                let statement = statements(change)
                    .iter_mut()
                    .find(|s| s["sql"].as_str().unwrap().contains("5 days"))
                    .expect("a statement setting the retention");
                let sql = statement["sql"]
                    .as_str()
                    .unwrap()
                    .replacen("5 days", "1 days", 1);
                statement["sql"] = json!(sql);
            },
        ),
        edit(
            "the retention shortened in the plan, not in the policy",
            "run plan again",
            |plan, _| {
                // Everything the plan says of the retention, consistently: summary, setting, SQL.
                let text = serde_json::to_string(change_of(plan, TABLE)).unwrap();
                *change_of(plan, TABLE) =
                    serde_json::from_str(&text.replace("5 days", "1 hour")).unwrap();
            },
        ),
        edit(
            "the retention setting alone shortened",
            "the plan's change to public.events does not say what the policies and the database give",
            |plan, _| {
                let change = change_of(plan, TABLE);
                let setting = change["settings"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|s| s["column"] == "retention")
                    .expect("the retention setting");
                setting["new"] = json!("1 hour");
            },
        ),
    ];
    assert_each_refused(&project, &reviewed, &edits, &[], &untouched, &context);
    // The plan as saved applies.
    let out = blocking(|| {
        project.run(&[
            "apply",
            "--plan",
            reviewed_path.to_str().unwrap(),
            "--auto-approve",
        ])
    });
    assert!(out.status.success(), "{context}: {}", text(&out));
    assert_eq!(part_config(&db, TABLE), "5 days | f | 4 | t", "{context}");

    // A shorter retention: destructive, so it needs --allow-data-loss; marked harmless in
    // the file, it is refused all the same.
    project.write_policy_compiled("events", &policy_yaml(TABLE, "3 hours", ""));
    let (reviewed_path, reviewed) = saved_plan(&project, "destructive.json");
    assert_eq!(
        change_of(&mut reviewed.clone(), TABLE)["destructive"],
        true,
        "{context}"
    );
    let untouched = Untouched {
        part_config: "5 days | f | 4 | t".into(),
        history: 2,
        ..untouched
    };
    let harmless = [edit(
        "a destructive change marked harmless",
        "the plan's change to public.events does not say what the policies and the database give",
        |plan, _| {
            for change in plan["changes"].as_array_mut().unwrap() {
                change["destructive"] = json!(false);
                change["impact"] = Value::Null;
            }
        },
    )];
    assert_each_refused(&project, &reviewed, &harmless, &[], &untouched, &context);
    // Given consent for data loss, the edited files are still not what the database gives,
    // nor a summary that hides what the change does from whoever gives that consent.
    let misleading = edit(
        "the summary saying the retention gets longer",
        "the plan's change to public.events does not say what the policies and the database give",
        |plan, _| {
            let change = change_of(plan, TABLE);
            let summary = change["summary"]
                .as_str()
                .unwrap()
                .replace("3 hours", "30 days");
            change["summary"] = json!(summary);
        },
    );
    assert_each_refused(
        &project,
        &reviewed,
        &[harmless.into_iter().next().unwrap(), misleading],
        &["--allow-data-loss"],
        &untouched,
        &format!("{context} --allow-data-loss"),
    );
    let reviewed_arg = reviewed_path.to_str().unwrap();
    let out = blocking(|| project.run(&["apply", "--plan", reviewed_arg, "--auto-approve"]));
    assert_eq!(out.status.code(), Some(1), "{context}: {}", text(&out));
    assert!(
        stderr(&out).contains("--allow-data-loss"),
        "{context}: {}",
        text(&out)
    );
    untouched.check(&format!("{context}: unedited, without --allow-data-loss"));
    let out = blocking(|| {
        project.run(&[
            "apply",
            "--plan",
            reviewed_arg,
            "--auto-approve",
            "--allow-data-loss",
        ])
    });
    assert!(out.status.success(), "{context}: {}", text(&out));
    assert_eq!(part_config(&db, TABLE), "3 hours | f | 4 | t", "{context}");

    writer.finish(&db, TABLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_plans_are_refused_pg_partman_4() {
    edited_plans_are_refused(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_plans_are_refused_pg_partman_5() {
    edited_plans_are_refused(Partman::V5).await;
}
