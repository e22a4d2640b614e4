//! Why plan refuses to plan: each a value carrying its facts.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// generated/ is not what compile writes now (a reviewer read something else).
    #[error(
        "{} is not what `retentionc compile` writes ({}): run `retentionc compile`, review and commit the result, then plan again (or `plan --compile` to plan from the policies locally)",
        .dir.display(),
        .stale.join(", ")
    )]
    GeneratedStale { dir: PathBuf, stale: Vec<String> },

    /// A table retentionc made objects for, whose policy is gone, has no removal file.
    #[error(
        "{table}: retentionc made objects for this table, which no policy names now, and {} does not exist: run `retentionc compile --remove {table}`, review and commit it, then plan again",
        .path.display()
    )]
    RemovalFileMissing { table: String, path: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generated_files_are_listed_with_what_to_run() {
        let e = PlanError::GeneratedStale {
            dir: "generated".into(),
            stale: vec!["public.events.sql".into(), "_bootstrap.sql".into()],
        };
        assert_eq!(
            e.to_string(),
            "generated is not what `retentionc compile` writes (public.events.sql, _bootstrap.sql): run `retentionc compile`, review and commit the result, then plan again (or `plan --compile` to plan from the policies locally)"
        );
    }

    #[test]
    fn a_missing_removal_file_names_the_table_the_file_and_the_command() {
        let e = PlanError::RemovalFileMissing {
            table: "public.gone".into(),
            path: "generated/_removed/public.gone.sql".into(),
        };
        assert_eq!(
            e.to_string(),
            "public.gone: retentionc made objects for this table, which no policy names now, and generated/_removed/public.gone.sql does not exist: run `retentionc compile --remove public.gone`, review and commit it, then plan again"
        );
    }
}
