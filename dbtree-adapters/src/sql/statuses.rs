//! Instance status sets in SQL: generated from core's `InstanceStatus` predicates, never restated.

use dbtree_core::instance::InstanceStatus;

/// The stored names of every status for which `member` holds, in [`InstanceStatus::ALL`] order.
/// Queries bind this list (`= ANY($n)` on PostgreSQL, `IN (SELECT value FROM json_each(?n))` on
/// SQLite), so `is_live` and `holds_resources` are decided in one place.
pub(crate) fn status_names(member: fn(InstanceStatus) -> bool) -> Vec<&'static str> {
    InstanceStatus::ALL
        .into_iter()
        .filter(|s| member(*s))
        .map(InstanceStatus::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use super::*;

    /// Each backend's first migration and how its status column starts.
    const MIGRATIONS: [(&str, &str, &str); 2] = [
        (
            "postgres",
            include_str!("../../migrations/postgres/0001_initial.sql"),
            "status text NOT NULL CHECK",
        ),
        (
            "sqlite",
            include_str!("../../migrations/sqlite/0001_initial.sql"),
            "status TEXT NOT NULL CHECK",
        ),
    ];

    /// The quoted names in the first `IN (...)` after `marker` (whitespace folded).
    fn names_after(sql: &str, marker: &str) -> Vec<String> {
        let folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let start = folded
            .find(marker)
            .unwrap_or_else(|| panic!("`{marker}` not in the migration"));
        let rest = &folded[start..];
        let open = rest.find("IN (").expect("an IN list") + 4;
        let close = open + rest[open..].find(')').expect("a closed IN list");
        rest[open..close]
            .split(',')
            .map(|n| n.trim().trim_matches('\'').to_owned())
            .collect()
    }

    #[test]
    fn the_sets_are_cores() {
        assert_eq!(
            status_names(InstanceStatus::is_live),
            ["provisioning", "running", "stopped", "paused"]
        );
        assert_eq!(
            status_names(InstanceStatus::holds_resources),
            ["provisioning", "running", "deleting"]
        );
    }

    /// Applied migrations are checksummed by sqlx and cannot change, so they are compared: the
    /// partial unique index on live names and the status check must list exactly core's sets.
    #[test]
    fn the_migrations_list_cores_statuses() {
        let everything: Vec<String> = InstanceStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        for (backend, sql, status_column) in MIGRATIONS {
            assert_eq!(
                names_after(sql, "CREATE UNIQUE INDEX instances_live_name"),
                status_names(InstanceStatus::is_live),
                "{backend}: the live-name index must cover exactly the live statuses"
            );
            assert_eq!(
                names_after(sql, status_column),
                everything,
                "{backend}: the status check must allow exactly every status"
            );
            let visible_index = "CREATE INDEX instances_status ON instances (status) WHERE";
            let hidden: Vec<_> = InstanceStatus::ALL
                .into_iter()
                .filter(|s| !s.is_visible())
                .map(|s| format!("{visible_index} status <> '{}';", s.as_str()))
                .collect();
            let folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(hidden.len(), 1, "one hidden status");
            assert!(
                folded.contains(&hidden[0]),
                "{backend}: the status index must leave out exactly the hidden statuses"
            );
        }
    }

    /// No store restates a status set as a literal list.
    #[test]
    fn no_store_writes_a_status_list() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for dir in ["postgres", "sqlite"] {
            let mut files: Vec<_> = std::fs::read_dir(src.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.push(src.join(format!("{dir}.rs")));
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    !folded.contains("status IN ('"),
                    "{} restates a status list; bind sql::status_names instead",
                    file.display()
                );
            }
        }
    }
}
