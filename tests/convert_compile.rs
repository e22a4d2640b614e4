//! `compile --convert TABLE`: the conversion's reviewed file, compiled from the policy, kept
//! compiled while it exists, and removed with the policy's `partitioning`.

mod common;

use common::project::{TestProject, stderr, stdout, text};

const POLICY: &str = "\
table: public.orders
partitioning:
  column: created_at
  interval: 1 day
retention:
  keep: 30 days
";

#[test]
fn compile_writes_the_conversion_file_only_when_asked_and_keeps_it_compiled() {
    for major in [4, 5] {
        let project = TestProject::new()
            .config(&format!("partman_version: {major}"))
            .policy("orders", POLICY)
            .compiled();
        let file = project.generated("public.orders.convert.sql");
        assert!(!file.exists(), "written without --convert");

        let out = project.run(&["compile", "--convert", "public.orders"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            stdout(&out)
                .contains("wrote generated/public.orders.convert.sql (converts the plain table"),
            "{}",
            text(&out)
        );
        let sql = std::fs::read_to_string(&file).unwrap();
        assert!(sql.contains("run by `retentionc convert`"), "{sql}");
        assert!(!sql.contains("Safe to run by hand"), "{sql}");
        for key in [
            "[state]",
            "[prepare_routine]",
            "[prepare]",
            "[capture]",
            "[batch]",
            "[catch_up]",
            "[swap]",
            "[revert]",
            "[finish]",
        ] {
            assert!(sql.contains(key), "no {key} in {sql}");
        }
        let p_type = if major == 4 {
            "p_type := 'native'"
        } else {
            "p_type := 'range'"
        };
        assert!(sql.contains(p_type), "{major}: {sql}");
        assert!(sql.contains("p_keep := '30 days'"), "{sql}");
        assert!(sql.contains("p_twin := 'orders_intermediate'"), "{sql}");
        assert!(sql.contains("p_retired := 'orders_retired'"), "{sql}");
        assert!(
            sql.contains("\"convert_copy\"('public.orders', $1::bigint)"),
            "{sql}"
        );

        // A later compile keeps it, and --check is satisfied.
        project.compile();
        assert!(file.exists());
        let check = project.run(&["compile", "--check"]);
        assert!(check.status.success(), "{}", text(&check));

        // A hand edit makes generated/ stale, like any generated file.
        std::fs::write(
            &file,
            sql.replace("20,000", "20000")
                .replace("step 4", "step four"),
        )
        .unwrap();
        let check = project.run(&["compile", "--check"]);
        assert_eq!(check.status.code(), Some(1), "{}", text(&check));
        project.compile();

        // Without partitioning, there is nothing to convert: compile removes the file.
        project.write_policy(
            "orders",
            "table: public.orders\ndeletes:\n  - name: old\n    where: \"true\"\n",
        );
        let out = project.run(&["compile"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(!file.exists(), "kept without partitioning");
    }
}

#[test]
fn convert_of_a_table_without_a_partitioned_policy_is_an_error() {
    let project = TestProject::new()
        .config("partman_version: 5")
        .policy("orders", POLICY)
        .compiled();
    let out = project.run(&["compile", "--convert", "public.others"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out)
            .contains("--convert public.others: no policy with \"partitioning\" names this table"),
        "{}",
        text(&out)
    );
    let out = project.run(&["compile", "--convert", "public.Orders"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("--convert public.Orders:"),
        "{}",
        text(&out)
    );
    assert!(!project.generated("public.others.convert.sql").exists());
    // `convert` itself needs the reviewed file.
    let out = project.run(&[
        "convert",
        "public.orders",
        "--database-url",
        "postgres://127.0.0.1:1/none",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("run `retentionc compile --convert public.orders`"),
        "{}",
        text(&out)
    );
}
