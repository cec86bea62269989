//! Spot interruption, end to end on this machine: the run supervisor polls AWS's own
//! interruption check (`sindri_providers::aws::INTERRUPTION_CHECK_SCRIPT`, as user-data
//! installs it) against a fake IMDSv2 on loopback. When the notice comes mid-job it
//! saves the checkpoints to `run.checkpoint_store` and stops the job; the orchestrator
//! replaces the machine (here: destroys and redeploys the local environment, as it
//! would a reclaimed spot instance), restores the checkpoint and relaunches, and the
//! resumed job finishes from where it was. The relaunch runs on the local provider,
//! not on moto: moto's instances run no programs.

mod machine;
mod support;

use std::time::Duration;

use machine::{CloudLike, Imds, NOTICE, write_exec};
use sindri_core::{NoProgress, ResolvedSpec};
use sindri_providers::local::LocalProvider;
use sindri_runs::{Orchestrator, RunRequest, run_keys};
use sindri_spec::{LocalSettings, Spec};
use sindri_state::{RunState, StateStore};
use support::wait_for_file;

/// Three epochs; a checkpoint after each. The first try waits after epoch 2 to be
/// interrupted; a resumed try says where it resumed.
const TRAIN: &str = r#"mkdir -p ckpt
[ -f ckpt/epoch ] || touch first-try-was-here
start=0
if [ -f ckpt/epoch ]; then start=$(cat ckpt/epoch); echo "resumed from epoch $start"; fi
i=$start
while [ "$i" -lt 3 ]; do
  i=$((i + 1))
  echo "$i" > ckpt/epoch
  echo "epoch $i"
  if [ "$i" -eq 2 ] && [ "$start" -eq 0 ]; then touch "$MARKS/epoch-2"; sleep 300; fi
done
echo "training done"
"#;

#[tokio::test]
async fn an_interrupted_spot_run_is_checkpointed_relaunched_and_resumed() {
    let imds = Imds::start().await;
    let state_dir = tempfile::tempdir().expect("state");
    let project = tempfile::tempdir().expect("project");
    let store = tempfile::tempdir().expect("checkpoint store");
    let marks = tempfile::tempdir().expect("marks");
    let bin = tempfile::tempdir().expect("bin");
    let check = bin.path().join("sindri-interruption-check");
    write_exec(&check, sindri_providers::aws::INTERRUPTION_CHECK_SCRIPT);

    let state = StateStore::open(state_dir.path()).expect("state store");
    let mut provider = CloudLike::new(LocalProvider::new(
        state_dir.path().join("local"),
        LocalSettings::default(),
    ));
    provider.interruption_check = Some(check.display().to_string());
    std::fs::write(project.path().join("train.sh"), TRAIN).expect("train.sh");
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": "spot-train",
        "deployment": {"provider": "local", "env": {
            "SINDRI_IMDS_ENDPOINT": imds.endpoint(),
            "MARKS": marks.path().display().to_string(),
        }},
        "run": {
            "command": "sh train.sh",
            "checkpoints": "ckpt",
            "checkpoint_store": format!("file://{}", store.path().display()),
            "max_restarts": 2,
        },
    }))
    .expect("spec");
    let rs = ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let orch = Orchestrator::new(&provider, &state, &NoProgress);
    let req = RunRequest::new(&rs, rs.spec.deployment.provider, Vec::new()).expect("request");
    let run = orch.prepare(&rs, &req).expect("prepare");
    let first = orch.launch(&rs, &req, run).await.expect("launch");

    let following = async {
        let mut log = Vec::new();
        let followed = orch.follow(&first.run, &mut log).await.expect("follow");
        (followed, String::from_utf8_lossy(&log).into_owned())
    };
    let interrupt = async {
        wait_for_file(&marks.path().join("epoch-2"), 150).await;
        imds.announce(true);
    };
    let ((interrupted, log), ()) = tokio::join!(following, interrupt);
    // The next machine is a new instance: its metadata has no notice.
    imds.announce(false);

    assert_eq!(interrupted.run.state, RunState::Interrupted);
    assert_eq!(interrupted.run.exit_code, Some(143), "stopped with SIGTERM");
    assert_eq!(
        interrupted
            .run
            .details
            .get(run_keys::INTERRUPTION)
            .map(String::as_str),
        Some(NOTICE)
    );
    assert!(
        interrupted
            .run
            .details
            .get(run_keys::REASON)
            .is_some_and(|r| r.starts_with("interrupted")),
        "{:?}",
        interrupted.run.details
    );
    assert!(
        log.contains("epoch 2\n") && !log.contains("epoch 3"),
        "{log}"
    );
    let saved = store.path().join(&interrupted.run.id).join("epoch");
    assert_eq!(
        std::fs::read_to_string(&saved).expect("the checkpoint reached the store"),
        "2\n"
    );
    let hits = imds.hits();
    assert!(
        hits.iter()
            .any(|h| h.method == "PUT" && h.path == "/latest/api/token" && h.status == 200),
        "an IMDSv2 token was asked for: {hits:?}"
    );
    assert!(
        hits.iter().any(|h| h.status == 200
            && h.path == "/latest/meta-data/spot/instance-action"
            && h.token.is_some()),
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| h.status != 401), "{hits:?}");

    assert!(Orchestrator::should_relaunch(&interrupted.run, &req));
    let second = orch
        .relaunch(&rs, &req, interrupted.run.clone())
        .await
        .expect("relaunch");
    assert_eq!(second.run.restarts, 1);
    assert_eq!(second.run.id, interrupted.run.id, "the same run, resumed");
    assert!(second.deployed, "the reclaimed machine was replaced");
    let workdir = std::path::PathBuf::from(&second.run.details[run_keys::WORKDIR]);
    assert!(
        !workdir.join("first-try-was-here").exists(),
        "the first machine's disk is gone: {}",
        workdir.display()
    );
    let mut log = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(120), orch.follow(&second.run, &mut log))
        .await
        .expect("the resumed run ends")
        .expect("follow");
    let log = String::from_utf8_lossy(&log);
    assert_eq!(
        log, "resumed from epoch 2\nepoch 3\ntraining done\n",
        "the resumed job saw the checkpoint and finished"
    );
    assert_eq!(
        (done.run.state, done.run.exit_code, done.run.restarts),
        (RunState::Succeeded, Some(0), 1)
    );
    assert!(!Orchestrator::should_relaunch(&done.run, &req));
    let recorded = state
        .get_run(&done.run.id)
        .expect("state")
        .expect("recorded");
    assert_eq!(recorded.restarts, 1);
    let local_log =
        std::fs::read_to_string(recorded.log_path.expect("log path")).expect("local log");
    assert!(
        local_log.starts_with("epoch 1\nepoch 2\n") && local_log.ends_with("training done\n"),
        "the local log keeps both tries: {local_log}"
    );
}

#[tokio::test]
async fn without_max_restarts_an_interrupted_run_is_not_relaunched() {
    let state_dir = tempfile::tempdir().expect("state");
    let project = tempfile::tempdir().expect("project");
    let state = StateStore::open(state_dir.path()).expect("state store");
    let bin = tempfile::tempdir().expect("bin");
    // A check that always reports a notice, as a doomed instance's metadata does.
    let check = bin.path().join("check");
    write_exec(&check, &format!("#!/bin/sh\nprintf '%s\\n' '{NOTICE}'\n"));
    let mut provider = CloudLike::new(LocalProvider::new(
        state_dir.path().join("local"),
        LocalSettings::default(),
    ));
    provider.interruption_check = Some(check.display().to_string());
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": "no-restarts",
        "deployment": {"provider": "local"},
        "run": {"command": "sleep 300"},
    }))
    .expect("spec");
    let rs = ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let orch = Orchestrator::new(&provider, &state, &NoProgress);
    let req = RunRequest::new(&rs, rs.spec.deployment.provider, Vec::new()).expect("request");
    let run = orch.prepare(&rs, &req).expect("prepare");
    let launched = orch.launch(&rs, &req, run).await.expect("launch");
    let mut log = Vec::new();
    let followed = orch.follow(&launched.run, &mut log).await.expect("follow");
    assert_eq!(followed.run.state, RunState::Interrupted);
    assert!(followed.run.details.contains_key(run_keys::INTERRUPTION));
    assert!(
        !Orchestrator::should_relaunch(&followed.run, &req),
        "run.max_restarts is 0"
    );
}

#[tokio::test]
async fn a_watched_machine_that_vanishes_before_its_exit_code_is_read_is_relaunched() {
    let state_dir = tempfile::tempdir().expect("state");
    let project = tempfile::tempdir().expect("project");
    let state = StateStore::open(state_dir.path()).expect("state store");
    let bin = tempfile::tempdir().expect("bin");
    let quiet = bin.path().join("check");
    write_exec(&quiet, "#!/bin/sh\nexit 1\n");
    let spec = |name: &str| {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": name,
            "deployment": {"provider": "local"},
            "run": {"command": "sleep 300", "max_restarts": 1},
        }))
        .expect("spec");
        ResolvedSpec::new(spec, &project.path().join("sindri.yaml"))
    };
    for (name, watched) in [("watched", true), ("unwatched", false)] {
        let mut provider = CloudLike::new(LocalProvider::new(
            state_dir.path().join("local"),
            LocalSettings::default(),
        ));
        if watched {
            provider.interruption_check = Some(quiet.display().to_string());
        }
        let rs = spec(name);
        let orch = Orchestrator::new(&provider, &state, &NoProgress);
        let req = RunRequest::new(&rs, rs.spec.deployment.provider, Vec::new()).expect("req");
        let run = orch.prepare(&rs, &req).expect("prepare");
        let launched = orch.launch(&rs, &req, run).await.expect("launch");
        let dir = support::run_dir(&launched);
        wait_for_file(&dir.join("pid"), 50).await;
        // Reclaimed with no notice seen: everything on the machine dies at once, and
        // the machine goes.
        let (sup, job) = (
            support::read_pid(&dir.join("supervisor_pid")),
            support::read_pid(&dir.join("pid")),
        );
        let killed = std::process::Command::new("sh")
            .args(["-c", &format!("kill -KILL {sup} -{job}")])
            .status()
            .expect("kill");
        assert!(killed.success());
        sindri_core::dispatch::destroy(&provider, &launched.deployment, Default::default())
            .await
            .expect("the machine goes");
        let view = orch.refresh(&launched.run).await.expect("refresh");
        assert_eq!(view.run.state, RunState::Interrupted);
        assert_eq!(view.run.exit_code, None);
        assert_eq!(
            Orchestrator::should_relaunch(&view.run, &req),
            watched,
            "{name}: {:?}",
            view.run.details
        );
    }
}
