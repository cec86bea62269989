//! The state store: one SQLite file shared by every `sindri` process of a user.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use sindri_core::{Deployment, DeploymentState, Error, ErrorKind, Result, unix_now};
use sindri_spec::ProviderKind;

use crate::paths::{STATE_FILE_NAME, default_state_dir};
use crate::records::{Event, InstalledExtension, RunFilter, RunRecord, RunState};
use crate::schema::{Migrated, SCHEMA_VERSION, migrate};

/// How long a command waits for another `sindri` holding the write lock before it
/// gives up. Writes take milliseconds, so only a hung process reaches this.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many candidates an ambiguous run-id prefix error lists.
const AMBIGUOUS_CANDIDATES: usize = 5;

/// sindri's local state: deployments, their event history, runs and installed
/// extensions, in one SQLite file (`state.db` in the state directory).
///
/// Safe under concurrent CLI calls: the file is in WAL mode (readers never wait for
/// writers), every write is an IMMEDIATE transaction (writers queue up instead of
/// failing half way), and a writer waits up to [`BUSY_TIMEOUT`] for the lock.
/// A store is `Send + Sync`; calls from several threads are serialised on its one
/// connection.
///
/// **Secrets never go in here.** The state file is plain, unencrypted SQLite readable
/// by anyone who can read the user's files and is kept across deploys; records hold
/// references and provider facts (ids, regions, addresses), never resolved secret
/// values, tokens or passwords. Callers must redact before storing.
///
/// Every error is [`ErrorKind::Internal`] and names the state file, except where a
/// method documents otherwise (a missing record to update is `NotFound`, an ambiguous
/// run-id prefix is `Invalid`).
pub struct StateStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The columns of `deployments`, in the order [`deployment_row`] reads them.
const DEPLOYMENT_COLUMNS: &str =
    "project, name, provider, resource_id, spec_hash, state, details, created_at, updated_at";

/// The columns of `runs`, in the order [`run_row`] reads them.
const RUN_COLUMNS: &str = "id, project, environment, provider, command, state, exit_code, \
     started_at, ended_at, restarts, cost_estimate_usd, log_path, details";

impl StateStore {
    /// Opens the state in the default directory: `SINDRI_STATE_DIR`, else
    /// `$XDG_STATE_HOME/sindri`, else `~/.local/state/sindri`.
    pub fn open_default() -> Result<StateStore> {
        StateStore::open(&default_state_dir()?)
    }

    /// Opens the default state only if its file already exists, for commands that
    /// promise to change nothing (`plan`): they must not even create the directory.
    pub fn open_existing_default() -> Result<Option<StateStore>> {
        let dir = default_state_dir()?;
        if dir.join(STATE_FILE_NAME).is_file() {
            StateStore::open(&dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens (creating if needed, with mode 0700) the state directory `dir` and its
    /// `state.db`, migrating an older schema.
    ///
    /// Refuses, without changing the file, a file that is not a SQLite database and
    /// one whose schema is newer than this build knows. When the schema is current,
    /// opening costs a few system calls and three pragmas: no migration work.
    pub fn open(dir: &Path) -> Result<StateStore> {
        ensure_dir(dir)?;
        let path = dir.join(STATE_FILE_NAME);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| db_error(&path, "opening the file", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_error(&path, "setting the busy timeout", e))?;

        // Read the version before anything writes: a foreign or newer file must be
        // left exactly as it was.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| db_error(&path, "reading the schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(newer_schema_error(&path, version));
        }
        ensure_wal(&conn, &path)?;
        // In WAL mode NORMAL keeps the file consistent after a crash; only the last
        // commits before a power cut can be lost, and fsync per command is avoided.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_error(&path, "setting synchronous mode", e))?;
        if version < SCHEMA_VERSION {
            match migrate(&conn).map_err(|e| {
                db_error(
                    &path,
                    &format!("migrating the schema from version {version} to {SCHEMA_VERSION}"),
                    e,
                )
            })? {
                Migrated::Current => {}
                Migrated::Newer(found) => return Err(newer_schema_error(&path, found)),
            }
        }
        Ok(StateStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The state file (`<dir>/state.db`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    // ----- deployments -------------------------------------------------------------

    /// Records a deployment, replacing the one with the same (project, name).
    ///
    /// The first `created_at` recorded is kept on replacement: it says when the
    /// environment was first deployed, not when it was last redeployed.
    pub fn upsert_deployment(&self, deployment: &Deployment) -> Result<()> {
        let details = to_json(&deployment.details);
        self.write(
            &format!(
                "saving deployment {}/{}",
                deployment.project, deployment.name
            ),
            |conn| {
                conn.prepare_cached(
                    "INSERT INTO deployments (project, name, provider, resource_id, spec_hash, \
                     state, details, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (project, name) DO UPDATE SET provider = excluded.provider, \
                     resource_id = excluded.resource_id, spec_hash = excluded.spec_hash, \
                     state = excluded.state, details = excluded.details, \
                     updated_at = excluded.updated_at",
                )?
                .execute((
                    &deployment.project,
                    &deployment.name,
                    deployment.provider.as_str(),
                    &deployment.resource_id,
                    &deployment.spec_hash,
                    deployment.state.as_str(),
                    &details,
                    deployment.created_at,
                    deployment.updated_at,
                ))
            },
        )?;
        Ok(())
    }

    /// The deployment `name` of `project`, if recorded.
    pub fn get_deployment(&self, project: &str, name: &str) -> Result<Option<Deployment>> {
        let doing = format!("reading deployment {project}/{name}");
        let conn = self.conn();
        let raw = conn
            .prepare_cached(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE project = ?1 AND name = ?2"
            ))
            .and_then(|mut s| s.query_row((project, name), deployment_row).optional())
            .map_err(|e| self.db_error(&doing, e))?;
        raw.map(|r| self.deployment_from(r)).transpose()
    }

    /// Every deployment named `name`, in any project, ordered by project; lets
    /// commands run outside the project directory find an environment by name.
    pub fn find_deployments_by_name(&self, name: &str) -> Result<Vec<Deployment>> {
        let rows = self.query(
            &format!("finding deployments named {name}"),
            &format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = ?1 ORDER BY project"
            ),
            &[Value::from(name.to_string())],
            deployment_row,
        )?;
        rows.into_iter().map(|r| self.deployment_from(r)).collect()
    }

    /// Every deployment, ordered by project then name.
    pub fn list_deployments(&self) -> Result<Vec<Deployment>> {
        let rows = self.query(
            "listing deployments",
            &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY project, name"),
            &[],
            deployment_row,
        )?;
        rows.into_iter().map(|r| self.deployment_from(r)).collect()
    }

    /// Sets a deployment's state and its `updated_at` to now.
    ///
    /// A [`ErrorKind::NotFound`] error when no such deployment is recorded.
    pub fn set_deployment_state(
        &self,
        project: &str,
        name: &str,
        state: DeploymentState,
    ) -> Result<()> {
        let changed = self.write(
            &format!("setting deployment {project}/{name} to {}", state.as_str()),
            |conn| {
                conn.prepare_cached(
                    "UPDATE deployments SET state = ?3, updated_at = ?4 \
                     WHERE project = ?1 AND name = ?2",
                )?
                .execute((project, name, state.as_str(), unix_now()))
            },
        )?;
        if changed == 0 {
            return Err(self.no_deployment(project, name));
        }
        Ok(())
    }

    /// Forgets a deployment and the extensions recorded as installed in it, in one
    /// transaction; true if it was recorded.
    ///
    /// Its events are kept on purpose: they are the environment's history (when it
    /// was created, why it failed, when it was destroyed) and stay readable with
    /// [`StateStore::events`] after the deployment is gone.
    pub fn delete_deployment(&self, project: &str, name: &str) -> Result<bool> {
        let deleted = self.write(&format!("deleting deployment {project}/{name}"), |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM deployments WHERE project = ?1 AND name = ?2")?
                .execute((project, name))?;
            // What was installed in a destroyed environment is gone with it; keeping
            // the rows would make the next deploy skip installing them.
            conn.prepare_cached("DELETE FROM extensions WHERE project = ?1 AND environment = ?2")?
                .execute((project, name))?;
            Ok(deleted)
        })?;
        Ok(deleted > 0)
    }

    // ----- events -------------------------------------------------------------------

    /// Appends an event to the history of deployment `name` of `project`, stamped now,
    /// and returns it.
    ///
    /// The deployment need not be recorded (e.g. "destroy finished" after
    /// [`StateStore::delete_deployment`]). `message` is shown to people: no secrets.
    pub fn record_event(
        &self,
        project: &str,
        name: &str,
        kind: &str,
        message: &str,
    ) -> Result<Event> {
        let at = unix_now();
        let id = self.write(
            &format!("recording a {kind} event for {project}/{name}"),
            |conn| {
                conn.prepare_cached(
                    "INSERT INTO events (project, name, at, kind, message) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute((project, name, at, kind, message))?;
                Ok(conn.last_insert_rowid())
            },
        )?;
        Ok(Event {
            id,
            project: project.to_string(),
            name: name.to_string(),
            at,
            kind: kind.to_string(),
            message: message.to_string(),
        })
    }

    /// The newest `limit` events of deployment `name` of `project`, oldest first
    /// (the order to print a history in). Includes events of a deleted deployment.
    pub fn events(&self, project: &str, name: &str, limit: usize) -> Result<Vec<Event>> {
        let mut events = self.query(
            &format!("reading events of {project}/{name}"),
            "SELECT id, project, name, at, kind, message FROM events \
             WHERE project = ?1 AND name = ?2 ORDER BY id DESC LIMIT ?3",
            &[
                Value::from(project.to_string()),
                Value::from(name.to_string()),
                Value::from(sql_limit(limit)),
            ],
            |r| {
                Ok(Event {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    name: r.get(2)?,
                    at: r.get(3)?,
                    kind: r.get(4)?,
                    message: r.get(5)?,
                })
            },
        )?;
        events.reverse();
        Ok(events)
    }

    // ----- runs ---------------------------------------------------------------------

    /// Records a new run. Fails if a run with its id exists.
    pub fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let details = to_json(&run.details);
        self.write(&format!("recording run {}", run.id), |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO runs ({RUN_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))?
            .execute(run_params(run, &details))
        })?;
        Ok(())
    }

    /// Replaces every field of the run with `run.id`.
    ///
    /// A [`ErrorKind::NotFound`] error when no such run is recorded.
    pub fn update_run(&self, run: &RunRecord) -> Result<()> {
        let details = to_json(&run.details);
        let changed = self.write(&format!("updating run {}", run.id), |conn| {
            conn.prepare_cached(
                "UPDATE runs SET project = ?2, environment = ?3, provider = ?4, command = ?5, \
                 state = ?6, exit_code = ?7, started_at = ?8, ended_at = ?9, restarts = ?10, \
                 cost_estimate_usd = ?11, log_path = ?12, details = ?13 WHERE id = ?1",
            )?
            .execute(run_params(run, &details))
        })?;
        if changed == 0 {
            return Err(Error::not_found(format!(
                "no run `{}` in the state file {}",
                run.id,
                self.path.display()
            ))
            .with_hint("record it with insert_run first"));
        }
        Ok(())
    }

    /// The run with exactly this id.
    pub fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let doing = format!("reading run {id}");
        let conn = self.conn();
        let raw = conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], run_row).optional())
            .map_err(|e| self.db_error(&doing, e))?;
        raw.map(|r| self.run_from(r)).transpose()
    }

    /// The one run whose id starts with `prefix`, like git's short commit ids.
    ///
    /// `Ok(None)` when no run matches; an [`ErrorKind::Invalid`] error, listing some
    /// candidates, when several do or `prefix` is empty.
    pub fn get_run_by_prefix(&self, prefix: &str) -> Result<Option<RunRecord>> {
        if prefix.is_empty() {
            return Err(Error::invalid("a run id cannot be empty")
                .with_hint("`sindri run list` shows the ids of recent runs"));
        }
        // Ids with a given prefix are contiguous in the primary-key order starting at
        // the prefix itself, so this is an index range scan, not a table scan.
        let rows = self.query(
            &format!("looking up run id prefix {prefix}"),
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id >= ?1 ORDER BY id LIMIT ?2"),
            &[
                Value::from(prefix.to_string()),
                Value::from(AMBIGUOUS_CANDIDATES as i64 + 1),
            ],
            run_row,
        )?;
        let mut matching: Vec<RawRun> = rows
            .into_iter()
            .take_while(|r| r.id.starts_with(prefix))
            .collect();
        match matching.len() {
            0 => Ok(None),
            1 => matching.pop().map(|r| self.run_from(r)).transpose(),
            n => {
                let mut ids: Vec<&str> = matching
                    .iter()
                    .take(AMBIGUOUS_CANDIDATES)
                    .map(|r| r.id.as_str())
                    .collect();
                if n > AMBIGUOUS_CANDIDATES {
                    ids.push("…");
                }
                Err(Error::invalid(format!(
                    "run id prefix `{prefix}` is ambiguous: it matches {}",
                    ids.join(", ")
                ))
                .with_hint("type more characters of the id"))
            }
        }
    }

    /// Runs matching `filter`, newest first, at most `limit`.
    pub fn list_runs(&self, filter: &RunFilter<'_>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(project) = filter.project {
            params.push(Value::from(project.to_string()));
            conditions.push(format!("project = ?{}", params.len()));
        }
        if let Some(environment) = filter.environment {
            params.push(Value::from(environment.to_string()));
            conditions.push(format!("environment = ?{}", params.len()));
        }
        params.push(Value::from(sql_limit(limit)));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {where_clause} ORDER BY id DESC LIMIT ?{}",
            params.len()
        );
        let rows = self.query("listing runs", &sql, &params, run_row)?;
        rows.into_iter().map(|r| self.run_from(r)).collect()
    }

    /// The most recently started run of `project`.
    pub fn last_run(&self, project: &str) -> Result<Option<RunRecord>> {
        let rows = self.query(
            &format!("reading the last run of {project}"),
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE project = ?1 ORDER BY id DESC LIMIT 1"),
            &[Value::from(project.to_string())],
            run_row,
        )?;
        rows.into_iter()
            .next()
            .map(|r| self.run_from(r))
            .transpose()
    }

    // ----- extensions ---------------------------------------------------------------

    /// Records an extension as installed, replacing the record for the same
    /// (project, environment, extension).
    pub fn record_extension(&self, extension: &InstalledExtension) -> Result<()> {
        self.write(
            &format!(
                "recording extension {} in {}/{}",
                extension.extension, extension.project, extension.environment
            ),
            |conn| {
                conn.prepare_cached(
                    "INSERT INTO extensions (project, environment, extension, version, \
                     installed_at, validated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (project, environment, extension) DO UPDATE SET \
                     version = excluded.version, installed_at = excluded.installed_at, \
                     validated_at = excluded.validated_at",
                )?
                .execute((
                    &extension.project,
                    &extension.environment,
                    &extension.extension,
                    &extension.version,
                    extension.installed_at,
                    extension.validated_at,
                ))
            },
        )?;
        Ok(())
    }

    /// The extensions recorded as installed in `environment` of `project`, by name.
    pub fn extensions(&self, project: &str, environment: &str) -> Result<Vec<InstalledExtension>> {
        self.query(
            &format!("reading extensions of {project}/{environment}"),
            "SELECT project, environment, extension, version, installed_at, validated_at \
             FROM extensions WHERE project = ?1 AND environment = ?2 ORDER BY extension",
            &[
                Value::from(project.to_string()),
                Value::from(environment.to_string()),
            ],
            |r| {
                Ok(InstalledExtension {
                    project: r.get(0)?,
                    environment: r.get(1)?,
                    extension: r.get(2)?,
                    version: r.get(3)?,
                    installed_at: r.get(4)?,
                    validated_at: r.get(5)?,
                })
            },
        )
    }

    /// Forgets one installed extension; true if it was recorded.
    pub fn remove_extension(
        &self,
        project: &str,
        environment: &str,
        extension: &str,
    ) -> Result<bool> {
        let deleted = self.write(
            &format!("removing extension {extension} from {project}/{environment}"),
            |conn| {
                conn.prepare_cached(
                    "DELETE FROM extensions \
                     WHERE project = ?1 AND environment = ?2 AND extension = ?3",
                )?
                .execute((project, environment, extension))
            },
        )?;
        Ok(deleted > 0)
    }

    // ----- plumbing -----------------------------------------------------------------

    /// The connection. A panic while it was held cannot leave a transaction open (the
    /// transaction guard rolls back on unwind), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in an IMMEDIATE transaction: the write lock is taken up front (waiting
    /// up to [`BUSY_TIMEOUT`]), so a concurrent writer can never make it fail half way.
    fn write<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.conn();
        let run = || {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.db_error(doing, e))
    }

    /// Runs a read query and collects its rows.
    fn query<T>(
        &self,
        doing: &str,
        sql: &str,
        params: &[Value],
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.conn();
        let run = || {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), map)?;
            rows.collect::<rusqlite::Result<Vec<T>>>()
        };
        run().map_err(|e| self.db_error(doing, e))
    }

    fn db_error(&self, doing: &str, e: rusqlite::Error) -> Error {
        db_error(&self.path, doing, e)
    }

    fn no_deployment(&self, project: &str, name: &str) -> Error {
        Error::not_found(format!(
            "no deployment `{name}` of project `{project}` in the state file {}",
            self.path.display()
        ))
        .with_hint("`sindri list` shows the recorded deployments")
    }

    /// A stored value this build cannot read: written by a newer sindri (a new
    /// provider or state) or edited by hand.
    fn bad_value(&self, what: &str, found: &str, expected: &str) -> Error {
        Error::internal(format!(
            "state database {}: {what} is `{found}`, expected {expected}",
            self.path.display()
        ))
        .with_hint("the file was probably written by a newer sindri; upgrade sindri")
    }

    fn deployment_from(&self, raw: RawDeployment) -> Result<Deployment> {
        let what = |field: &str| format!("the {field} of deployment {}/{}", raw.project, raw.name);
        let provider = ProviderKind::parse(&raw.provider)
            .ok_or_else(|| self.bad_value(&what("provider"), &raw.provider, "a provider name"))?;
        let state = DeploymentState::parse(&raw.state)
            .ok_or_else(|| self.bad_value(&what("state"), &raw.state, "a deployment state"))?;
        let details = self.details_from(&raw.details, &what("details"))?;
        Ok(Deployment {
            name: raw.name,
            provider,
            project: raw.project,
            resource_id: raw.resource_id,
            spec_hash: raw.spec_hash,
            state,
            details,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }

    fn run_from(&self, raw: RawRun) -> Result<RunRecord> {
        let what = |field: &str| format!("the {field} of run {}", raw.id);
        let provider = ProviderKind::parse(&raw.provider)
            .ok_or_else(|| self.bad_value(&what("provider"), &raw.provider, "a provider name"))?;
        let state = RunState::parse(&raw.state)
            .ok_or_else(|| self.bad_value(&what("state"), &raw.state, "a run state"))?;
        let exit_code = raw
            .exit_code
            .map(|c| {
                i32::try_from(c).map_err(|_| {
                    self.bad_value(&what("exit code"), &c.to_string(), "a 32-bit integer")
                })
            })
            .transpose()?;
        let restarts = u32::try_from(raw.restarts).map_err(|_| {
            self.bad_value(
                &what("restart count"),
                &raw.restarts.to_string(),
                "a count from 0 to 4294967295",
            )
        })?;
        let details = self.details_from(&raw.details, &what("details"))?;
        Ok(RunRecord {
            id: raw.id,
            project: raw.project,
            environment: raw.environment,
            provider,
            command: raw.command,
            state,
            exit_code,
            started_at: raw.started_at,
            ended_at: raw.ended_at,
            restarts,
            cost_estimate_usd: raw.cost_estimate_usd,
            log_path: raw.log_path,
            details,
        })
    }

    fn details_from(&self, json: &str, what: &str) -> Result<BTreeMap<String, String>> {
        serde_json::from_str(json).map_err(|e| {
            self.bad_value(what, json, "a JSON object of strings")
                .with_source(e)
        })
    }
}

/// A `deployments` row before its text fields are parsed, so a bad value can be
/// reported with the state file's path.
struct RawDeployment {
    project: String,
    name: String,
    provider: String,
    resource_id: Option<String>,
    spec_hash: String,
    state: String,
    details: String,
    created_at: i64,
    updated_at: i64,
}

fn deployment_row(r: &Row<'_>) -> rusqlite::Result<RawDeployment> {
    Ok(RawDeployment {
        project: r.get(0)?,
        name: r.get(1)?,
        provider: r.get(2)?,
        resource_id: r.get(3)?,
        spec_hash: r.get(4)?,
        state: r.get(5)?,
        details: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// A `runs` row before its fields are checked.
struct RawRun {
    id: String,
    project: String,
    environment: String,
    provider: String,
    command: String,
    state: String,
    exit_code: Option<i64>,
    started_at: i64,
    ended_at: Option<i64>,
    restarts: i64,
    cost_estimate_usd: Option<f64>,
    log_path: Option<String>,
    details: String,
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        id: r.get(0)?,
        project: r.get(1)?,
        environment: r.get(2)?,
        provider: r.get(3)?,
        command: r.get(4)?,
        state: r.get(5)?,
        exit_code: r.get(6)?,
        started_at: r.get(7)?,
        ended_at: r.get(8)?,
        restarts: r.get(9)?,
        cost_estimate_usd: r.get(10)?,
        log_path: r.get(11)?,
        details: r.get(12)?,
    })
}

/// A run's fields as statement parameters `?1`..`?13`, in [`RUN_COLUMNS`] order.
fn run_params(run: &RunRecord, details: &str) -> [Value; 13] {
    [
        Value::from(run.id.clone()),
        Value::from(run.project.clone()),
        Value::from(run.environment.clone()),
        Value::from(run.provider.as_str().to_string()),
        Value::from(run.command.clone()),
        Value::from(run.state.as_str().to_string()),
        Value::from(run.exit_code),
        Value::from(run.started_at),
        Value::from(run.ended_at),
        Value::from(i64::from(run.restarts)),
        Value::from(run.cost_estimate_usd),
        Value::from(run.log_path.clone()),
        Value::from(details.to_string()),
    ]
}

/// A string map as JSON. Serialising a map of strings cannot fail.
fn to_json(details: &BTreeMap<String, String>) -> String {
    serde_json::to_string(details).unwrap_or_else(|_| "{}".to_string())
}

/// A `LIMIT` value; anything beyond `i64::MAX` means "all".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Creates the state directory (0700: state names the user's projects and
/// resources) unless it exists.
fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::internal(format!(
            "cannot create sindri's state directory {}: {e}",
            dir.display()
        ))
        .with_hint(
            "make sure every parent of that path is a writable directory, or set \
             SINDRI_STATE_DIR to one",
        )
        .with_source(e)
    })
}

/// Switches the file to WAL unless it already is (the mode is stored in the file, so
/// this happens once per file).
///
/// The switch needs the file to itself, and SQLite reports `SQLITE_BUSY` for it at
/// once instead of calling the busy handler; several processes opening a fresh file
/// together hit that, so it is retried here for up to [`BUSY_TIMEOUT`]. Each retry
/// first checks whether another process has switched the file meanwhile.
fn ensure_wal(conn: &Connection, path: &Path) -> Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(|e| db_error(path, "reading the journal mode", e))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::internal(format!(
                    "state database {}: cannot switch to WAL mode (SQLite kept journal mode `{mode}`)",
                    path.display()
                ))
                .with_hint(
                    "WAL needs shared memory, which network file systems often lack; set \
                     SINDRI_STATE_DIR to a directory on a local disk",
                ));
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(db_error(path, "switching to WAL mode", e)),
        }
    }
}

/// True for the errors another connection's lock causes.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn newer_schema_error(path: &Path, found: i64) -> Error {
    Error::internal(format!(
        "state database {} has schema version {found}, but this sindri understands \
         versions up to {SCHEMA_VERSION}; refusing to use it (the file was not changed)",
        path.display()
    ))
    .with_hint(
        "a newer sindri wrote it: upgrade sindri, or set SINDRI_STATE_DIR to another \
         directory to keep separate state for this version",
    )
}

/// A SQLite failure as sindri's error: the file, what sindri was doing, SQLite's
/// words, and a hint when the cause is one the user can fix.
fn db_error(path: &Path, doing: &str, e: rusqlite::Error) -> Error {
    let shown = path.display();
    let (message, hint) = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => (
            format!("{shown} is not a sindri state database: {doing} failed: {e}"),
            Some(format!(
                "move {shown} aside (keep it if it may hold data you need) and run the command \
                 again; sindri starts a fresh state file"
            )),
        ),
        Some(ErrorCode::DatabaseCorrupt) => (
            format!("state database {shown} is damaged: {doing} failed: {e}"),
            Some(format!(
                "move {shown} aside and run the command again; sindri starts a fresh state \
                 file, and `sindri resources list` still finds what it created by its labels"
            )),
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
            format!("state database {shown}: {doing} failed: {e}"),
            Some(format!(
                "another sindri process held the state database for more than {} s; wait \
                 for it to finish (or stop it) and run the command again",
                BUSY_TIMEOUT.as_secs()
            )),
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => (
            format!("state database {shown}: {doing} failed: {e}"),
            Some(
                "check that the state directory and state.db are writable by you, or set \
                 SINDRI_STATE_DIR to a writable directory"
                    .to_string(),
            ),
        ),
        Some(ErrorCode::DiskFull) => (
            format!("state database {shown}: {doing} failed: {e}"),
            Some("free some disk space on the file system that holds it".to_string()),
        ),
        _ => (format!("state database {shown}: {doing} failed: {e}"), None),
    };
    let err = Error::new(ErrorKind::Internal, message);
    let err = match hint {
        Some(h) => err.with_hint(h),
        None => err,
    };
    err.with_source(e)
}
