//! A missing privilege, as the GRANT that would give it: read from PostgreSQL's
//! "permission denied for <kind> <name>" message, so that an error names the statement a
//! DBA runs instead of a PL/pgSQL context.

use crate::policy::ident::quote_ident;

/// The GRANT that gives `role` what a "permission denied for ..." `message` lacks.
pub fn grant_for(message: &str, role: &str) -> Option<String> {
    let rest = message
        .lines()
        .next()?
        .strip_prefix("permission denied for ")?;
    let (kind, name) = rest.split_once(' ')?;
    let name = name.trim();
    let role = quote_ident(role);
    Some(match kind {
        "schema" => format!("GRANT USAGE ON SCHEMA {} TO {role}", quote_ident(name)),
        "function" | "procedure" => {
            format!("GRANT EXECUTE ON {} {name} TO {role}", kind.to_uppercase())
        }
        "table" | "relation" => {
            // retentionc's log is read, written and updated; pg_partman's configuration
            // is read, updated and pruned by its maintenance; anything else is read.
            let privileges = match name {
                "run_log" => "SELECT, INSERT, UPDATE",
                "part_config" | "part_config_sub" => "SELECT, UPDATE, DELETE",
                _ => "SELECT",
            };
            format!("GRANT {privileges} ON TABLE {name} TO {role}")
        }
        "sequence" => format!("GRANT USAGE ON SEQUENCE {name} TO {role}"),
        "database" => format!("GRANT CONNECT ON DATABASE {} TO {role}", quote_ident(name)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_denial_names_its_grant() {
        assert_eq!(
            grant_for("permission denied for schema partman", "app_owner").as_deref(),
            Some("GRANT USAGE ON SCHEMA \"partman\" TO \"app_owner\"")
        );
        assert_eq!(
            grant_for("permission denied for table run_log", "App").as_deref(),
            Some("GRANT SELECT, INSERT, UPDATE ON TABLE run_log TO \"App\"")
        );
        assert_eq!(
            grant_for("permission denied for function maintain", "r").as_deref(),
            Some("GRANT EXECUTE ON FUNCTION maintain TO \"r\"")
        );
        assert_eq!(grant_for("division by zero", "r"), None);
    }
}
