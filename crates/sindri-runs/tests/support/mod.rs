//! Fixtures for the run tests: a project directory, a state store and the local
//! provider, each in temporary directories of their own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sindri_core::{NoProgress, ResolvedSpec};
use sindri_providers::local::LocalProvider;
use sindri_runs::{Followed, Launched, Orchestrator, RunRequest, run_keys};
use sindri_spec::{LocalSettings, Spec};
use sindri_state::StateStore;

/// A project, a state directory and a local provider keeping its environments there.
pub struct Rig {
    pub state_dir: tempfile::TempDir,
    pub project: tempfile::TempDir,
    pub state: StateStore,
    pub provider: LocalProvider,
}

impl Rig {
    /// A fresh rig; `in_place` is `providers.local.in_place`.
    pub fn new(in_place: bool) -> Rig {
        let state_dir = tempfile::tempdir().expect("state dir");
        let project = tempfile::tempdir().expect("project dir");
        let state = StateStore::open(state_dir.path()).expect("state store");
        let provider =
            LocalProvider::new(state_dir.path().join("local"), LocalSettings { in_place });
        Rig {
            state_dir,
            project,
            state,
            provider,
        }
    }

    /// A spec named `name` for the local provider, with this `run` section.
    pub fn spec(&self, name: &str, run: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": name,
            "deployment": {"provider": "local"},
            "run": run,
        }))
        .expect("valid spec");
        ResolvedSpec::new(spec, &self.project.path().join("sindri.yaml"))
    }

    /// Writes a project file.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.project.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    /// The orchestrator over this rig's provider and state.
    pub fn orchestrator(&self) -> Orchestrator<'_> {
        Orchestrator::new(&self.provider, &self.state, &NoProgress)
    }

    /// The environment directory of `rs`.
    pub fn env_dir(&self, rs: &ResolvedSpec) -> PathBuf {
        self.provider.env_dir(&rs.project, rs.name())
    }
}

/// Prepares and launches the run of `rs`'s `run` section.
pub async fn launch(orch: &Orchestrator<'_>, rs: &ResolvedSpec) -> (RunRequest, Launched) {
    launch_with(orch, rs, Vec::new()).await
}

/// Prepares and launches a run of `command` (or the spec's).
pub async fn launch_with(
    orch: &Orchestrator<'_>,
    rs: &ResolvedSpec,
    command: Vec<String>,
) -> (RunRequest, Launched) {
    let provider_kind = rs.spec.deployment.provider;
    let req = RunRequest::new(rs, provider_kind, command).expect("request");
    let run = orch.prepare(rs, &req).expect("prepare");
    let launched = orch
        .launch(rs, &req, run)
        .await
        .unwrap_or_else(|e| panic!("launch failed: {e} (hint: {:?})", e.hint()));
    (req, launched)
}

/// Follows a run to its end; returns how it ended and the log text.
pub async fn follow(orch: &Orchestrator<'_>, launched: &Launched) -> (Followed, String) {
    let mut log: Vec<u8> = Vec::new();
    let followed = orch
        .follow(&launched.run, &mut log)
        .await
        .unwrap_or_else(|e| panic!("follow failed: {e}"));
    (followed, String::from_utf8_lossy(&log).into_owned())
}

/// The run directory of a launched run (a path on this machine for `local`).
pub fn run_dir(launched: &Launched) -> PathBuf {
    PathBuf::from(
        launched
            .run
            .details
            .get(run_keys::RUN_DIR)
            .expect("run dir recorded"),
    )
}

/// Waits for `path` to exist, checking every 200 ms, at most `attempts` times.
pub async fn wait_for_file(path: &Path, attempts: u32) {
    for _ in 0..attempts {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{} never appeared", path.display());
}

/// True while `pid` is a live (not zombie) process on this machine.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Reads a pid file.
pub fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid in {}: {e}", path.display()))
}
