//! No machine is left billing: when a run's job ends and no sindri follows it, the
//! supervisor on the machine applies `on_finish` itself with the command the provider
//! gave (`Provider::self_end`), here AWS's shutdown with a stand-in `shutdown` on
//! PATH. A sindri that follows the run holds that end while it copies artifacts and
//! then applies `on_finish` itself, once. Real processes on this machine.

mod machine;
mod support;

use std::path::Path;
use std::time::Duration;

use machine::{CloudLike, Stubs};
use sindri_core::{NoProgress, ResolvedSpec};
use sindri_providers::local::LocalProvider;
use sindri_runs::{Launched, Orchestrator, RunRequest, run_keys};
use sindri_spec::{LocalSettings, OnFinish, Spec};
use sindri_state::{RunState, StateStore};
use support::{alive, read_pid, run_dir, wait_for_file};

struct World {
    _state_dir: tempfile::TempDir,
    project: tempfile::TempDir,
    state: StateStore,
    provider: CloudLike,
    stubs: Stubs,
}

impl World {
    fn new() -> World {
        World::with_end(Some(sindri_providers::aws::SHUTDOWN_COMMAND.to_string()))
    }

    /// A world whose provider gives `end_command` to end its machines.
    fn with_end(end_command: Option<String>) -> World {
        let state_dir = tempfile::tempdir().expect("state dir");
        let project = tempfile::tempdir().expect("project");
        let state = StateStore::open(state_dir.path()).expect("state");
        let mut provider = CloudLike::new(LocalProvider::new(
            state_dir.path().join("local"),
            LocalSettings::default(),
        ));
        provider.end_command = end_command;
        World {
            _state_dir: state_dir,
            project,
            state,
            provider,
            stubs: Stubs::shutdown(),
        }
    }

    fn spec(&self, name: &str, run: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": name,
            "deployment": {"provider": "local", "env": {"PATH": self.stubs.path()}},
            "run": run,
        }))
        .expect("spec");
        ResolvedSpec::new(spec, &self.project.path().join("sindri.yaml"))
    }

    fn orchestrator(&self) -> Orchestrator<'_> {
        Orchestrator::new(&self.provider, &self.state, &NoProgress)
    }

    async fn launch(&self, rs: &ResolvedSpec, detach: bool) -> (RunRequest, Launched) {
        let mut req = RunRequest::new(rs, rs.spec.deployment.provider, Vec::new()).expect("req");
        req.detach = detach;
        let orch = self.orchestrator();
        let run = orch.prepare(rs, &req).expect("prepare");
        let launched = orch
            .launch(rs, &req, run)
            .await
            .unwrap_or_else(|e| panic!("launch: {e} ({:?})", e.hint()));
        (req, launched)
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Waits (bounded) until process `pid` is gone.
async fn wait_gone(pid: u32) {
    for _ in 0..300 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("process {pid} is still alive");
}

#[tokio::test]
async fn a_run_nobody_follows_stops_its_machine_when_the_job_ends() {
    let w = World::new();
    let rs = w.spec(
        "self-stop",
        serde_json::json!({"command": "echo trained", "on_finish": "stop"}),
    );
    let (_, launched) = w.launch(&rs, true).await;
    assert_eq!(
        launched
            .run
            .details
            .get(run_keys::SELF_END)
            .map(String::as_str),
        Some("stop"),
        "{:?}",
        launched.run.details
    );
    // Nothing follows, polls or signals the run from here: only files are watched.
    wait_for_file(&w.stubs.calls_path(), 100).await;
    assert_eq!(w.stubs.calls(), "shutdown -h now\n");
    let dir = run_dir(&launched);
    assert_eq!(read(&dir.join("exit_code")), "0\n");
    assert_eq!(read(&dir.join("self_end")), "stop\n");
    assert_eq!(*w.provider.asked.lock().unwrap(), vec![OnFinish::Stop]);

    let view = w
        .orchestrator()
        .refresh(&launched.run)
        .await
        .expect("refresh");
    assert_eq!(view.run.state, RunState::Succeeded);
    assert_eq!(
        view.run
            .details
            .get(run_keys::SELF_ENDED)
            .map(String::as_str),
        Some("stop")
    );
}

#[tokio::test]
async fn a_max_duration_kill_is_followed_by_the_machine_ending_itself() {
    let w = World::new();
    let rs = w.spec(
        "self-timeout",
        serde_json::json!({"command": "sleep 60", "max_duration": "2s", "on_finish": "destroy"}),
    );
    let (_, launched) = w.launch(&rs, true).await;
    let dir = run_dir(&launched);
    wait_for_file(&dir.join("pid"), 50).await;
    let job = read_pid(&dir.join("pid"));
    wait_for_file(&w.stubs.calls_path(), 150).await;
    assert_eq!(w.stubs.calls(), "shutdown -h now\n");
    assert!(!alive(job), "the job was stopped first");
    assert_eq!(read(&dir.join("reason")), "timeout\n");
    assert_eq!(read(&dir.join("exit_code")), "143\n");
    assert_eq!(read(&dir.join("self_end")), "destroy\n");
    let log = read(&dir.join("supervisor.log"));
    let killed = log.find("max_duration").expect("the timeout is logged");
    let ended = log.find("on_finish: destroy").expect("the end is logged");
    assert!(killed < ended, "{log}");
}

#[tokio::test]
async fn a_followed_run_leaves_on_finish_to_sindri_which_applies_it_once() {
    let w = World::new();
    let rs = w.spec(
        "followed",
        serde_json::json!({"command": "echo hi", "on_finish": "destroy", "artifacts": ["out.txt"]}),
    );
    let (req, launched) = w.launch(&rs, false).await;
    let dir = run_dir(&launched);
    let orch = w.orchestrator();
    let mut log = Vec::new();
    let followed = orch.follow(&launched.run, &mut log).await.expect("follow");
    assert_eq!(followed.run.exit_code, Some(0));
    let supervisor = read_pid(&dir.join("supervisor_pid"));
    assert!(
        alive(supervisor),
        "the supervisor waits while sindri holds the end"
    );
    // Copying artifacts takes as long as it takes: the hold is renewed meanwhile.
    orch.collect_artifacts(&followed.run, None)
        .await
        .expect("artifacts");
    let finish = orch
        .finish(&followed.run, req.on_finish)
        .await
        .expect("finish");
    assert_eq!(finish.action, "destroyed");
    wait_gone(supervisor).await;
    assert_eq!(
        w.stubs.calls(),
        "",
        "sindri applied on_finish; the machine did not do it again"
    );
}

#[tokio::test]
async fn a_sindri_that_vanishes_after_the_job_ends_still_leaves_no_machine_billing() {
    let w = World::new();
    let rs = w.spec(
        "vanished",
        serde_json::json!({"command": "echo hi", "on_finish": "stop"}),
    );
    let (_, launched) = w.launch(&rs, false).await;
    let dir = run_dir(&launched);
    let mut log = Vec::new();
    w.orchestrator()
        .follow(&launched.run, &mut log)
        .await
        .expect("follow");
    assert_eq!(w.stubs.calls(), "", "held while sindri follows");
    // The laptop closes here: no artifacts, no on_finish. Its last hold runs out (cut
    // short from a minute to two seconds for the test).
    let soon = sindri_core::unix_now() + 2;
    std::fs::write(dir.join("end_hold"), format!("{soon}\n")).expect("hold");
    wait_for_file(&w.stubs.calls_path(), 100).await;
    assert_eq!(w.stubs.calls(), "shutdown -h now\n");
}

#[tokio::test]
async fn a_provider_without_a_way_to_end_its_machines_gets_nothing_to_run() {
    let w = World::with_end(None);
    let rs = w.spec(
        "no-hook",
        serde_json::json!({"command": "true", "on_finish": "stop"}),
    );
    let (_, launched) = w.launch(&rs, true).await;
    assert!(!launched.run.details.contains_key(run_keys::SELF_END));
    let dir = run_dir(&launched);
    wait_for_file(&dir.join("exit_code"), 100).await;
    let supervisor = read_pid(&dir.join("supervisor_pid"));
    wait_gone(supervisor).await;
    assert!(!dir.join("self_end").exists());
    assert_eq!(w.stubs.calls(), "");
}

#[tokio::test]
async fn what_sindri_decides_at_the_end_wins_over_the_machines_own_policy() {
    let w = World::new();
    let rs = w.spec(
        "kept",
        serde_json::json!({"command": "echo hi", "on_finish": "stop"}),
    );
    let (_, launched) = w.launch(&rs, false).await;
    let dir = run_dir(&launched);
    let orch = w.orchestrator();
    let mut log = Vec::new();
    let followed = orch.follow(&launched.run, &mut log).await.expect("follow");
    let supervisor = read_pid(&dir.join("supervisor_pid"));
    let finish = orch
        .finish(&followed.run, OnFinish::Keep)
        .await
        .expect("finish");
    assert_eq!(finish.action, "kept");
    wait_gone(supervisor).await;
    assert_eq!(
        read(&dir.join("self_end_skipped")),
        "sindri applied on_finish itself (on_finish: keep)\n"
    );
    assert!(!dir.join("self_end").exists());
    assert_eq!(w.stubs.calls(), "", "the machine was kept");
}
