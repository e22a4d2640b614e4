//! Which server notices a user must see, and how: one line each, naming the table the
//! statement worked on. Every WARNING is shown (pg_partman's "No child tables created",
//! "Attempt to drop final partition", "outside PostgreSQL's supported time range"), and
//! the NOTICEs by which pg_partman says it did not do something ("drop_partition_time
//! already running."); the rest ("schema ... already exists, skipping") is chatter.

use tokio_postgres::error::DbError;

use crate::policy::error::escape_controls;

/// NOTICE texts of pg_partman that mean work was left undone.
const NOTICES_THAT_MATTER: [&str; 3] = ["already running", "only supports", "Unable to obtain"];

/// The line to print for `notice`, raised while working on `table`, when it is one to show:
/// `warning: public.events: <message>`, its line breaks and runs of spaces made one space
/// and control characters escaped, so that it stays one line and a terminal reads no
/// escape sequence.
pub fn line(table: &str, notice: &DbError) -> Option<String> {
    let label = match notice.severity() {
        "WARNING" => "warning",
        "NOTICE"
            if NOTICES_THAT_MATTER
                .iter()
                .any(|m| notice.message().contains(m)) =>
        {
            "notice"
        }
        _ => return None,
    };
    let message = notice
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Some(format!("{label}: {table}: {}", escape_controls(&message)))
}
