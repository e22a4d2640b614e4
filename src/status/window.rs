//! How old data, and how old a step's last successful run, may be before `status`
//! calls it a lapse. Pure; the reasons are in docs/run-status.md.
//!
//! - partitioned retention: `keep` + one partition interval + the schedule's period (a
//!   partition goes whole once its newest row is past `keep`, at the next run);
//! - a delete rule with `older_than`: `older_than` + the schedule's period;
//! - a rule without `older_than`: rows matching it may wait one period for the next run;
//! - a scheduled step is stale when its last successful run started more than two
//!   periods ago (one missed or skipped firing is tolerated: a run in progress has not
//!   written its row yet).
//!
//! Without a schedule the period is zero: runs are started by hand or by another
//! scheduler, and the data checks alone tell whether they keep up.

use crate::model::{DeleteRule, Ident, Interval, Policy};

use super::schedule;

/// The schedule's period (zero without a schedule), and a note when it had to be assumed.
pub fn period(policy: &Policy) -> (Interval, Option<String>) {
    match &policy.schedule {
        Some(cron) => schedule::period(cron),
        None => (Interval::default(), None),
    }
}

/// keep + one partition interval + the schedule's period.
pub fn retention_allowed(policy: &Policy) -> Option<Interval> {
    let keep = policy.retention.as_ref()?.keep;
    let interval = policy.partitioning.as_ref()?.interval;
    Some(keep.plus(&interval).plus(&period(policy).0))
}

/// older_than + the schedule's period; None for a rule without `older_than`.
pub fn rule_allowed(policy: &Policy, rule: &DeleteRule) -> Option<Interval> {
    Some(rule.older_than?.plus(&period(policy).0))
}

/// The time column a rule's `older_than` is measured on.
pub fn rule_column<'p>(policy: &'p Policy, rule: &'p DeleteRule) -> Option<&'p Ident> {
    rule.column
        .as_ref()
        .or(policy.partitioning.as_ref().map(|p| &p.column))
}

/// Two periods: how long a scheduled step may go without a successful run.
pub fn stale_after(policy: &Policy) -> Option<Interval> {
    policy.schedule.as_ref()?;
    let (period, _) = period(policy);
    Some(period.plus(&period))
}
