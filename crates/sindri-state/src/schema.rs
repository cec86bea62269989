//! The database schema, as a list of forward-only migrations.
//!
//! Migration `n` (1-based) takes a database from `PRAGMA user_version = n - 1` to `n`.
//! The list is append-only: a released migration is never edited or removed, because
//! users' state files were built by it. A new table or column is a new entry at the
//! end. Every pending migration runs in one IMMEDIATE transaction together with the
//! version bump, so a crash or a concurrent `sindri` never sees half a schema.

use rusqlite::{Connection, TransactionBehavior};

/// Each migration's SQL, in order.
const MIGRATIONS: &[&str] = &[
    // 1: deployments and their event history.
    "
    CREATE TABLE deployments (
        project     TEXT NOT NULL,
        name        TEXT NOT NULL,
        provider    TEXT NOT NULL,
        resource_id TEXT,
        spec_hash   TEXT NOT NULL,
        state       TEXT NOT NULL,
        details     TEXT NOT NULL DEFAULT '{}', -- JSON object of strings
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (project, name)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX deployments_by_name ON deployments (name);

    -- Not tied to deployments by a foreign key: history outlives the deployment.
    -- AUTOINCREMENT so an id is never reused after the newest events are pruned.
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        name    TEXT NOT NULL,
        at      INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        message TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_by_deployment ON events (project, name, id);
    ",
    // 2: runs (`sindri run`).
    "
    CREATE TABLE runs (
        id                TEXT NOT NULL PRIMARY KEY, -- time-sortable, see new_run_id
        project           TEXT NOT NULL,
        environment       TEXT NOT NULL,
        provider          TEXT NOT NULL,
        command           TEXT NOT NULL,
        state             TEXT NOT NULL,
        exit_code         INTEGER,
        started_at        INTEGER NOT NULL,
        ended_at          INTEGER,
        restarts          INTEGER NOT NULL DEFAULT 0,
        cost_estimate_usd REAL,
        log_path          TEXT,
        details           TEXT NOT NULL DEFAULT '{}' -- JSON object of strings
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX runs_by_project ON runs (project, id);
    CREATE INDEX runs_by_environment ON runs (environment, id);
    ",
    // 3: extensions installed into environments.
    "
    CREATE TABLE extensions (
        project      TEXT NOT NULL,
        environment  TEXT NOT NULL,
        extension    TEXT NOT NULL,
        version      TEXT NOT NULL,
        installed_at INTEGER NOT NULL,
        validated_at INTEGER,
        PRIMARY KEY (project, environment, extension)
    ) STRICT, WITHOUT ROWID;
    ",
];

/// The schema version this build writes and understands; a state file with a greater
/// `user_version` was written by a newer sindri and is refused.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What [`migrate`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// The schema is now [`SCHEMA_VERSION`] (possibly migrated by a concurrent process).
    Current,
    /// A newer sindri migrated the file while we waited for the lock.
    Newer(i64),
}

/// Applies every migration after the file's `user_version`, in one IMMEDIATE
/// transaction.
///
/// The version is read again inside the transaction: several `sindri` processes
/// opening a fresh file at once all get here, and only the first one to take the
/// write lock may migrate.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<Migrated> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Ok(Migrated::Newer(version));
    }
    let start = usize::try_from(version).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(Migrated::Current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_fresh_database_gets_every_table_and_the_latest_version() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&conn).unwrap(), Migrated::Current);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            tables(&conn),
            ["deployments", "events", "extensions", "runs"]
        );
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        assert_eq!(migrate(&conn).unwrap(), Migrated::Current);
        assert_eq!(tables(&conn).len(), 4);
    }

    #[test]
    fn a_newer_version_is_reported_not_touched() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert_eq!(migrate(&conn).unwrap(), Migrated::Newer(SCHEMA_VERSION + 1));
        assert!(tables(&conn).is_empty());
    }
}
