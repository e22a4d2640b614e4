//! A validated policy -> policy YAML text that reads back as the same policy.
//!
//! Every value is written in the format's own spelling (`30 days`, not `P30D`) and every
//! string through `yaml::scalar`, so that any text (a `where` holding quotes, `#` or line
//! breaks) reads back unchanged. Defaults are written out where they matter for review
//! (`premake`, `expired`, `batch_size`); a rule's column is always written, as it is the
//! column the rule uses.

use std::fmt::Write as _;

use crate::model::{Epoch, Expired, Policy};
use crate::policy::yaml::scalar;

/// The YAML text of one policy document (no `---`).
pub fn policy_yaml(policy: &Policy) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "table: {}", scalar(&policy.table.to_string()));
    if let Some(p) = &policy.partitioning {
        let _ = writeln!(text, "partitioning:");
        let _ = writeln!(text, "  column: {}", scalar(p.column.as_str()));
        let _ = writeln!(text, "  interval: {}", scalar(&p.interval.to_string()));
        let _ = writeln!(text, "  premake: {}", p.premake);
        if let Some(start) = &p.start {
            let _ = writeln!(text, "  start: {}", scalar(start));
        }
        if p.epoch != Epoch::None {
            let _ = writeln!(text, "  epoch: {}", p.epoch.as_str());
        }
        if !p.default_partition {
            let _ = writeln!(text, "  default_partition: false");
        }
        if !p.infinite_time_partitions {
            let _ = writeln!(text, "  infinite_time_partitions: false");
        }
    }
    if let Some(r) = &policy.retention {
        let _ = writeln!(text, "retention:");
        let _ = writeln!(text, "  keep: {}", scalar(&r.keep.to_string()));
        let _ = writeln!(text, "  expired: {}", r.expired.name());
        if let Expired::Archive { schema } = &r.expired {
            let _ = writeln!(text, "  archive_schema: {}", scalar(schema.as_str()));
        }
        if r.keep_index {
            let _ = writeln!(text, "  keep_index: true");
        }
    }
    if !policy.deletes.is_empty() {
        let _ = writeln!(text, "deletes:");
        for rule in &policy.deletes {
            let _ = writeln!(text, "  - name: {}", scalar(rule.name.as_str()));
            let _ = writeln!(text, "    where: {}", scalar(&rule.condition.canonical));
            if let Some(older_than) = &rule.older_than {
                let _ = writeln!(text, "    older_than: {}", scalar(&older_than.to_string()));
            }
            if let Some(column) = &rule.column {
                let _ = writeln!(text, "    column: {}", scalar(column.as_str()));
            }
            let _ = writeln!(text, "    batch_size: {}", rule.batch_size);
        }
    }
    if let Some(schedule) = &policy.schedule {
        let _ = writeln!(text, "schedule: {}", scalar(schedule));
    }
    if let Some(zone) = &policy.time_zone {
        let _ = writeln!(text, "time_zone: {}", scalar(zone));
    }
    text
}
