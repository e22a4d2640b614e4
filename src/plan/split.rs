//! How apply divides a plan into transactions, so that it fits the server's lock table.
//!
//! A transaction holds every lock it takes until it ends, and all sessions share one lock
//! table, sized for `max_locks_per_transaction` x (`max_connections` +
//! `max_prepared_transactions`) locks. Registering a table with pg_partman locks the parent
//! and every partition it creates (each with its TOAST table and index, and a copy of each
//! index of the parent), so one transaction that registers a thousand tables runs out of
//! shared memory on a server with default settings. Plan estimates what each change locks
//! and packs consecutive changes into transactions of at most half the lock table (the
//! other half stays for the sessions the application runs), never splitting one table's
//! changes: each transaction leaves the database consistent. Pure: the server's settings,
//! partitions and indexes come from the live state.

use serde::{Deserialize, Serialize};

use crate::catalog::{Live, LockSettings};
use crate::model::{Policy, Project};
use crate::plan::impact::bound_time;
use crate::plan::{Change, ChangeKind};

/// Locks every transaction of an apply takes besides its changes' (the catalog read by
/// plan under apply's lock, retentionc's own tables, the history row).
pub const TRANSACTION_OVERHEAD: u64 = 64;

/// What retentionc's own file locks when it runs whole (schema, tables, indexes,
/// sequences, routines).
const BOOTSTRAP_LOCKS: u64 = 64;

/// Objects locked per new partition besides copies of the parent's indexes: the
/// partition, its TOAST table and the TOAST table's index.
const LOCKS_PER_PARTITION: u64 = 3;

/// How apply will run a plan's changes, transaction by transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyTransactions {
    /// The server's lock settings the split was made for.
    pub lock_settings: LockSettings,
    /// Locks the server's lock table is sized for (`lock_settings`).
    pub lock_capacity: u64,
    /// Most locks one transaction of this apply is planned to hold: half the capacity.
    pub budget: u64,
    /// Estimated locks of all the changes together.
    pub estimated_locks: u64,
    /// Consecutive runs of the plan's changes, in order; together, every change.
    pub transactions: Vec<TransactionPart>,
}

/// One transaction of a split apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionPart {
    /// Index of its first change in the plan's `changes`.
    pub first_change: usize,
    /// How many changes it makes.
    pub changes: usize,
    /// Locks it is estimated to hold, its overhead included.
    pub estimated_locks: u64,
}

impl ApplyTransactions {
    pub fn is_split(&self) -> bool {
        self.transactions.len() > 1
    }

    /// What a reviewer should know before apply runs: nothing when one transaction holds
    /// the changes; otherwise how many transactions, and why.
    pub fn notes(&self, changes: &[Change]) -> Vec<String> {
        let mut notes = Vec::new();
        let settings = &self.lock_settings;
        let sizing = format!(
            "{} locks: half of this server's {} = max_locks_per_transaction {} x (max_connections {} + max_prepared_transactions {})",
            group(self.budget),
            group(self.lock_capacity),
            settings.max_locks_per_transaction,
            settings.max_connections,
            settings.max_prepared_transactions
        );
        if self.is_split() {
            notes.push(format!(
                "The changes need about {} locks, more than one transaction should hold ({sizing}): apply runs them in {} transactions, each leaving the database consistent (a table's changes are never split), under one lock that keeps other applies out; an apply stopped between them continues where it stopped when run again.",
                group(self.estimated_locks),
                self.transactions.len()
            ));
        }
        if let Some(part) = self.oversized() {
            let table = changes
                .get(part.first_change)
                .map_or("?", |c| c.table.as_str());
            notes.push(format!(
                "warning: the changes of {table} alone need about {} locks, more than one transaction should hold ({sizing}); apply runs them in a transaction of their own, which may fail with \"out of shared memory\": raise max_locks_per_transaction if it does.",
                group(part.estimated_locks)
            ));
        }
        notes
    }

    /// A transaction that needs more than the budget alone (one table's changes, which are
    /// never split): it may run out of shared memory while others hold locks.
    pub fn oversized(&self) -> Option<&TransactionPart> {
        self.transactions
            .iter()
            .find(|t| t.estimated_locks > self.budget)
    }
}

fn group(n: u64) -> String {
    crate::run::progress::group(n as i64)
}

/// The transactions `changes` need on the server `live` describes; None when there is no
/// change, or the server's lock settings are unknown.
pub fn transactions(
    changes: &[Change],
    project: &Project,
    live: &Live,
) -> Option<ApplyTransactions> {
    let lock_settings = live.lock_settings?;
    if changes.is_empty() {
        return None;
    }
    let lock_capacity = lock_settings.capacity();
    let budget = (lock_capacity / 2).max(TRANSACTION_OVERHEAD + 1);
    let mut parts: Vec<TransactionPart> = Vec::new();
    let mut index = 0;
    while index < changes.len() {
        // One table's changes go together (the plan lists them one after another).
        let table = &changes[index].table;
        let end = changes[index..]
            .iter()
            .position(|c| &c.table != table)
            .map_or(changes.len(), |n| index + n);
        let locks: u64 = changes[index..end]
            .iter()
            .map(|c| estimated_locks(c, project, live))
            .sum();
        match parts.last_mut() {
            Some(last) if last.estimated_locks + locks <= budget => {
                last.changes += end - index;
                last.estimated_locks += locks;
            }
            _ => parts.push(TransactionPart {
                first_change: index,
                changes: end - index,
                estimated_locks: TRANSACTION_OVERHEAD + locks,
            }),
        }
        index = end;
    }
    let estimated_locks = parts
        .iter()
        .map(|p| p.estimated_locks - TRANSACTION_OVERHEAD)
        .sum::<u64>()
        + TRANSACTION_OVERHEAD;
    Some(ApplyTransactions {
        lock_settings,
        lock_capacity,
        budget,
        estimated_locks,
        transactions: parts,
    })
}

/// Locks one change is expected to hold until its transaction ends (an estimate that
/// errs on the high side).
pub fn estimated_locks(change: &Change, project: &Project, live: &Live) -> u64 {
    let policy = project.policy(&change.table);
    let indexes = live.indexes.get(&change.table).copied().unwrap_or(0).max(0) as u64;
    let per_partition = LOCKS_PER_PARTITION + indexes;
    let existing = live.children.get(&change.table).map_or(0, Vec::len) as u64;
    let mut locks = match change.kind {
        ChangeKind::Bootstrap => BOOTSTRAP_LOCKS,
        ChangeKind::Register => {
            // The parent, part_config, pg_partman's template table and each partition made.
            let made = policy.map_or(0, |p| partitions_made(p, live)) + 1;
            4 + made * per_partition
        }
        ChangeKind::AdoptTable => {
            // The partitions there are, read; premake new ones ahead of the newest, the
            // default and the template made.
            let premake = policy
                .and_then(|p| p.partitioning.as_ref())
                .map_or(0, |p| u64::from(p.premake));
            4 + existing + (premake + 2) * per_partition
        }
        // A conversion runs step by step outside apply's transactions (`crate::convert`).
        ChangeKind::ConvertTable => return 0,
        _ => 4,
    };
    // The owner's privileges statement reads the partition tree, which locks every
    // partition there is already.
    if change.statements.iter().any(|s| s.key == "privileges") {
        locks += existing;
    }
    locks
}

/// Partitions pg_partman's create_parent makes for a policy registered now: from `start`
/// (else `premake` intervals back) to `premake` intervals ahead, and the default partition.
fn partitions_made(policy: &Policy, live: &Live) -> u64 {
    let Some(partitioning) = &policy.partitioning else {
        return 0;
    };
    let premake = u64::from(partitioning.premake);
    let step = partitioning
        .interval
        .approx_duration()
        .as_secs_f64()
        .max(1.0);
    let back = match partitioning
        .start
        .as_deref()
        .and_then(|s| bound_time(s, crate::model::Epoch::None))
    {
        Some(start) => {
            let seconds = (live.now - start).num_seconds().max(0) as f64;
            (seconds / step).ceil() as u64
        }
        None => premake,
    };
    back + 1 + premake + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlannedStatement;

    fn change(table: &str, kind: ChangeKind, keys: &[&str]) -> Change {
        Change {
            table: table.into(),
            kind,
            summary: String::new(),
            destructive: false,
            impact: None,
            statements: keys
                .iter()
                .map(|k| PlannedStatement {
                    key: (*k).into(),
                    file: format!("{table}.sql"),
                    sql: String::new(),
                })
                .collect(),
            settings: Vec::new(),
            body_diff: None,
            drift: false,
            notes: Vec::new(),
            conversion: None,
        }
    }

    fn live(max_locks: i64) -> Live {
        Live {
            lock_settings: Some(LockSettings {
                max_locks_per_transaction: max_locks,
                max_connections: 10,
                max_prepared_transactions: 0,
            }),
            ..Live::default()
        }
    }

    fn project() -> Project {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::policy::load_project(&root.join("retentionc.yaml"))
            .expect("the example project loads")
    }

    #[test]
    fn a_tables_changes_stay_together_and_every_change_is_in_one_transaction() {
        let project = project();
        // Budget: 10 x 20 / 2 = 100 locks; each table's two changes need 4 + 4.
        let changes: Vec<Change> = (0..30)
            .flat_map(|i| {
                let table = format!("public.t{i:02}");
                [
                    change(&table, ChangeKind::RetentionSettings, &["retention"]),
                    change(&table, ChangeKind::AddSchedule, &["schedule"]),
                ]
            })
            .collect();
        let split = transactions(&changes, &project, &live(20)).unwrap();
        assert_eq!(split.lock_capacity, 200);
        assert_eq!(split.budget, 100);
        assert!(split.is_split());
        let mut next = 0;
        for part in &split.transactions {
            assert_eq!(part.first_change, next, "transactions are consecutive");
            assert!(part.estimated_locks <= split.budget, "{part:?}");
            assert_eq!(
                part.changes % 2,
                0,
                "a table's changes are never split: {part:?}"
            );
            next += part.changes;
        }
        assert_eq!(next, changes.len(), "every change is in a transaction");
        // (100 - 64 overhead) / 8 = 4 tables a transaction.
        assert_eq!(split.transactions[0].changes, 8);
        assert_eq!(split.transactions.len(), 8);
        assert!(split.oversized().is_none());
    }

    #[test]
    fn one_transaction_when_the_lock_table_holds_everything() {
        let project = project();
        let changes = vec![
            change("retention", ChangeKind::Bootstrap, &["bootstrap.schema"]),
            change("public.a", ChangeKind::RetentionSettings, &["retention"]),
        ];
        let split = transactions(&changes, &project, &live(64)).unwrap();
        assert!(!split.is_split());
        assert_eq!(split.transactions[0].changes, 2);
        assert_eq!(
            split.estimated_locks,
            TRANSACTION_OVERHEAD + BOOTSTRAP_LOCKS + 4
        );
        assert!(transactions(&[], &project, &live(64)).is_none());
        assert!(transactions(&changes, &project, &Live::default()).is_none());
    }

    #[test]
    fn a_registration_counts_the_partitions_it_makes_and_their_indexes() {
        let project = project();
        let policy = project
            .policies
            .iter()
            .find(|p| p.partitioning.as_ref().is_some_and(|p| p.start.is_none()))
            .expect("a partitioned policy without start");
        let table = policy.table.to_string();
        let premake = u64::from(policy.partitioning.as_ref().unwrap().premake);
        let mut live = live(64);
        let register = change(
            &table,
            ChangeKind::Register,
            &["setup", "retention", "privileges"],
        );
        // premake back, the current one, premake ahead, the default, the template.
        let made = 2 * premake + 3;
        assert_eq!(estimated_locks(&register, &project, &live), 4 + made * 3);
        live.indexes.insert(table.clone(), 2);
        assert_eq!(estimated_locks(&register, &project, &live), 4 + made * 5);
    }

    #[test]
    fn an_adoption_counts_the_partitions_there_are_and_a_conversion_none() {
        let project = project();
        let policy = project
            .policies
            .iter()
            .find(|p| p.partitioning.is_some())
            .expect("a partitioned policy");
        let table = policy.table.to_string();
        let premake = u64::from(policy.partitioning.as_ref().unwrap().premake);
        let mut live = live(64);
        let child = crate::catalog::ChildPartition {
            name: "public.child".into(),
            bound: "FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')".into(),
            estimated_rows: 0.0,
        };
        live.children.insert(table.clone(), vec![child; 10]);
        let adopt = change(&table, ChangeKind::AdoptTable, &["adopt"]);
        assert_eq!(
            estimated_locks(&adopt, &project, &live),
            4 + 10 + (premake + 2) * 3
        );
        let convert = change(&table, ChangeKind::ConvertTable, &[]);
        assert_eq!(estimated_locks(&convert, &project, &live), 0);
    }

    #[test]
    fn a_table_too_big_for_the_budget_gets_a_transaction_of_its_own() {
        let project = project();
        let policy = project
            .policies
            .iter()
            .find(|p| p.partitioning.is_some())
            .expect("a partitioned policy");
        let table = policy.table.to_string();
        let changes = vec![
            change("public.a", ChangeKind::RetentionSettings, &["retention"]),
            change(&table, ChangeKind::Register, &["setup"]),
            change("public.z", ChangeKind::RetentionSettings, &["retention"]),
        ];
        // Budget 70: each small change fits with the overhead (68), the registration not.
        let split = transactions(&changes, &project, &live(14)).unwrap();
        assert_eq!(split.budget, 70);
        assert_eq!(split.transactions.len(), 3);
        assert_eq!(split.oversized(), Some(&split.transactions[1]));
    }

    /// One change of each of `tables` tables (`public.t000`, ...), 4 locks each.
    fn retention_changes(tables: usize) -> Vec<Change> {
        (0..tables)
            .map(|i| {
                change(
                    &format!("public.t{i:03}"),
                    ChangeKind::RetentionSettings,
                    &["retention"],
                )
            })
            .collect()
    }

    #[test]
    fn a_transaction_may_fill_the_budget_exactly() {
        let project = project();
        // Budget 100: the overhead (64) and nine changes of 4 locks fill it exactly.
        let split = transactions(&retention_changes(9), &project, &live(20)).unwrap();
        assert_eq!(split.budget, 100);
        assert_eq!(split.transactions.len(), 1);
        assert_eq!(split.transactions[0].estimated_locks, 100);
        assert!(split.oversized().is_none(), "{split:?}");
        assert!(split.notes(&retention_changes(9)).is_empty());
        // A tenth does not fit.
        let split = transactions(&retention_changes(10), &project, &live(20)).unwrap();
        assert_eq!(
            split
                .transactions
                .iter()
                .map(|t| (t.first_change, t.changes, t.estimated_locks))
                .collect::<Vec<_>>(),
            [(0, 9, 100), (9, 1, 68)]
        );
    }

    #[test]
    fn a_tiny_lock_table_still_leaves_room_for_one_change_besides_the_overhead() {
        // 10 x 10 / 2 = 50 locks, less than the overhead: the budget is the overhead + 1.
        let split = transactions(&retention_changes(2), &project(), &live(10)).unwrap();
        assert_eq!(split.lock_capacity, 100);
        assert_eq!(split.budget, TRANSACTION_OVERHEAD + 1);
    }

    #[test]
    fn notes_explain_a_split_with_the_servers_settings_and_warn_of_an_oversized_table() {
        let project = project();
        // Budget 1,000 of 2,000: 300 changes of 4 locks and the overhead need 1,264.
        let changes = retention_changes(300);
        let split = transactions(&changes, &project, &live(200)).unwrap();
        assert_eq!(split.estimated_locks, 1264);
        let notes = split.notes(&changes);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "The changes need about 1,264 locks, more than one transaction should hold \
                 (1,000 locks: half of this server's 2,000 = max_locks_per_transaction 200 x \
                 (max_connections 10 + max_prepared_transactions 0)): apply runs them in 2 transactions,"
            ),
            "{notes:?}"
        );

        let table = project
            .policies
            .iter()
            .find(|p| p.partitioning.is_some())
            .expect("a partitioned policy")
            .table
            .to_string();
        let changes = vec![
            change("public.a", ChangeKind::RetentionSettings, &["retention"]),
            change(&table, ChangeKind::Register, &["setup"]),
        ];
        let split = transactions(&changes, &project, &live(14)).unwrap();
        let notes = split.notes(&changes);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[1].starts_with(&format!(
                "warning: the changes of {table} alone need about {} locks, more than one transaction should hold (70 locks: half of this server's 140 = ",
                split.transactions[1].estimated_locks
            )),
            "{notes:?}"
        );
    }

    #[test]
    fn the_privileges_statement_counts_the_partitions_there_are() {
        let project = project();
        let policy = project
            .policies
            .iter()
            .find(|p| p.partitioning.as_ref().is_some_and(|p| p.start.is_none()))
            .expect("a partitioned policy without start");
        let table = policy.table.to_string();
        let made = 2 * u64::from(policy.partitioning.as_ref().unwrap().premake) + 3;
        let mut live = live(64);
        let child = crate::catalog::ChildPartition {
            name: "public.child".into(),
            bound: "FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')".into(),
            estimated_rows: 0.0,
        };
        live.children.insert(table.clone(), vec![child; 5]);
        let with = change(&table, ChangeKind::Register, &["setup", "privileges"]);
        assert_eq!(estimated_locks(&with, &project, &live), 4 + made * 3 + 5);
        let without = change(&table, ChangeKind::Register, &["setup"]);
        assert_eq!(estimated_locks(&without, &project, &live), 4 + made * 3);
    }

    #[test]
    fn a_registration_from_start_counts_the_partitions_from_start_to_now() {
        let config = crate::config::parse_config(
            std::path::Path::new("retentionc.yaml"),
            "",
            std::path::PathBuf::from("."),
        )
        .unwrap();
        let text = "table: public.started\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 4\n  start: \"2026-11-25 01:30:00\"\nretention:\n  keep: 2 days\n";
        let (policies, errors) = crate::policy::parse_policy_text(
            std::path::Path::new("policies/started.yaml"),
            text,
            &config,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let project = Project { config, policies };
        let mut live = live(64);
        live.now = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        // 10.5 hours back: 11 partitions, the current one, 4 ahead, the default, the
        // template.
        let register = change("public.started", ChangeKind::Register, &["setup"]);
        assert_eq!(
            estimated_locks(&register, &project, &live),
            4 + (11 + 1 + 4 + 1 + 1) * 3
        );
    }
}
