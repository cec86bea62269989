//! The records only the state store knows about: events, runs and installed extensions.
//!
//! Deployments use [`sindri_core::Deployment`], shared with the providers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sindri_core::unix_now;
use sindri_spec::ProviderKind;

/// One entry of a deployment's history, as shown by `sindri events`/`status`.
///
/// Events outlive their deployment: destroying an environment keeps its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Store-assigned, increasing; orders events recorded in the same second.
    pub id: i64,
    /// The deployment's project.
    pub project: String,
    /// The deployment's environment name.
    pub name: String,
    /// Unix seconds when recorded.
    pub at: i64,
    /// A short machine-friendly word, e.g. `deploy`, `stop`, `destroy`, `error`.
    pub kind: String,
    /// What happened, in words. Never a secret.
    pub message: String,
}

/// Where a `sindri run` is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Recorded, not yet started on the environment.
    Pending,
    /// The command is running.
    Running,
    /// The command exited with status 0.
    Succeeded,
    /// The command exited non-zero, or could not be started.
    Failed,
    /// Stopped on the user's request.
    Cancelled,
    /// Lost its machine (spot reclaim, crash) and was not (yet) resumed.
    Interrupted,
}

impl RunState {
    /// Every state, in life-cycle order.
    pub const ALL: [RunState; 6] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Interrupted,
    ];

    /// The state's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<RunState> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True once the run will not change by itself any more (an interrupted run
    /// only moves again when the orchestrator resumes it).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunState::Pending | RunState::Running)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `sindri run`: what ran where, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique and sortable by creation time (see [`new_run_id`]); users may type any
    /// unique prefix of it, as with git commits.
    pub id: String,
    /// The project the run belongs to.
    pub project: String,
    /// The environment it ran on.
    pub environment: String,
    /// The provider of that environment.
    pub provider: ProviderKind,
    /// The command line, as the user gave it. Never contains resolved secrets.
    pub command: String,
    /// Where the run is.
    pub state: RunState,
    /// The command's exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Unix seconds when recorded.
    pub started_at: i64,
    /// Unix seconds when it finished.
    pub ended_at: Option<i64>,
    /// How many times the orchestrator relaunched it after an interruption.
    pub restarts: u32,
    /// What it cost so far, in USD, when the provider says.
    pub cost_estimate_usd: Option<f64>,
    /// Where its log was saved locally.
    pub log_path: Option<String>,
    /// Orchestrator facts needed later (checkpoint path, region). Never secrets.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

impl RunRecord {
    /// A fresh `pending` run with a new id, started now.
    pub fn new(
        project: &str,
        environment: &str,
        provider: ProviderKind,
        command: &str,
    ) -> RunRecord {
        RunRecord {
            id: new_run_id(),
            project: project.to_string(),
            environment: environment.to_string(),
            provider,
            command: command.to_string(),
            state: RunState::Pending,
            exit_code: None,
            started_at: unix_now(),
            ended_at: None,
            restarts: 0,
            cost_estimate_usd: None,
            log_path: None,
            details: BTreeMap::new(),
        }
    }
}

/// Which runs [`crate::StateStore::list_runs`] returns; `None` fields match everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFilter<'a> {
    /// Only runs of this project.
    pub project: Option<&'a str>,
    /// Only runs on environments of this name.
    pub environment: Option<&'a str>,
}

/// An extension sindri installed into an environment, so a redeploy can skip it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledExtension {
    /// The project.
    pub project: String,
    /// The environment it is installed in.
    pub environment: String,
    /// The extension's name.
    pub extension: String,
    /// The installed version.
    pub version: String,
    /// Unix seconds when installed.
    pub installed_at: i64,
    /// Unix seconds when its validation last passed, if it ever did.
    pub validated_at: Option<i64>,
}

/// Lower-case Crockford base32: no `i`, `l`, `o`, `u`, so ids survive being read aloud
/// or retyped.
const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters of the time part of a run id (50 bits, enough for milliseconds until
/// the year 37000).
const ID_TIME_CHARS: usize = 10;

/// Characters of the random part of a run id (50 bits).
const ID_RANDOM_CHARS: usize = 10;

/// A new run id: 10 characters of milliseconds since the epoch then 10 random ones,
/// in lower-case Crockford base32 (like a ULID, shorter and lower-case).
///
/// Ids sort by creation time, so "the last run" is the greatest id; the random part
/// keeps ids created in the same millisecond by different processes apart.
pub fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    run_id_from(millis, fastrand::u64(..))
}

/// The id for a run created at `millis` with random bits `random`.
fn run_id_from(millis: u64, random: u64) -> String {
    let mut id = String::with_capacity(ID_TIME_CHARS + ID_RANDOM_CHARS);
    push_base32(&mut id, millis, ID_TIME_CHARS);
    push_base32(&mut id, random, ID_RANDOM_CHARS);
    id
}

/// Appends the low `5 * chars` bits of `value`, most significant first.
fn push_base32(out: &mut String, value: u64, chars: usize) {
    for i in (0..chars).rev() {
        let digit = ((value >> (5 * i)) & 0x1f) as usize;
        out.push(char::from(ID_ALPHABET[digit]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_twenty_crockford_characters() {
        let id = new_run_id();
        assert_eq!(id.len(), ID_TIME_CHARS + ID_RANDOM_CHARS, "{id}");
        assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
    }

    #[test]
    fn run_ids_sort_by_creation_time_whatever_the_random_part() {
        // 2026-01-01T00:00:00.000Z and one millisecond later.
        let earlier = run_id_from(1_767_225_600_000, u64::MAX);
        let later = run_id_from(1_767_225_600_001, 0);
        assert!(earlier < later, "{earlier} should sort before {later}");
    }

    #[test]
    fn run_ids_made_together_differ() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn base32_encodes_most_significant_first() {
        let mut s = String::new();
        push_base32(&mut s, 32 * 32 + 2 * 32 + 31, 4);
        assert_eq!(s, "012z");
    }

    #[test]
    fn run_state_names_round_trip() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RunState::parse("done"), None);
        assert!(!RunState::Running.is_finished());
        assert!(RunState::Cancelled.is_finished());
    }
}
