//! Runs end to end on the local provider: real processes, real files.

mod support;

use std::time::Duration;

use sindri_core::ErrorKind;
use sindri_runs::run_keys;
use sindri_state::RunState;
use support::{Rig, alive, follow, launch, launch_with, read_pid, run_dir, wait_for_file};

#[tokio::test]
async fn a_failing_job_reports_its_exit_code_log_artifacts_and_checkpoints() {
    let rig = Rig::new(false);
    let store = tempfile::tempdir().expect("store");
    rig.write("train.py", "# the training script\n");
    let rs = rig.spec(
        "fail3",
        serde_json::json!({
            "command": "echo to-stdout; echo to-stderr >&2; mkdir -p outputs ckpt; \
                        echo weights > outputs/model.txt; echo step-1 > ckpt/step1; \
                        test -f train.py && echo synced; exit 3",
            "artifacts": ["outputs/", "missing.bin"],
            "checkpoints": "ckpt",
            "checkpoint_store": format!("file://{}", store.path().display()),
        }),
    );
    let orch = rig.orchestrator();
    let (req, launched) = launch(&orch, &rs).await;
    assert_eq!(launched.run.state, RunState::Running);
    assert!(launched.deployed, "the first run deploys the environment");

    let (followed, log) = follow(&orch, &launched).await;
    assert_eq!(followed.run.state, RunState::Failed);
    assert_eq!(followed.run.exit_code, Some(3));
    assert!(followed.run.ended_at.is_some());
    for line in ["to-stdout\n", "to-stderr\n", "synced\n"] {
        assert!(log.contains(line), "log lacks {line:?}: {log:?}");
    }
    let recorded = rig
        .state
        .get_run(&launched.run.id)
        .expect("state")
        .expect("recorded");
    assert_eq!(
        (recorded.state, recorded.exit_code),
        (RunState::Failed, Some(3))
    );
    let local_copy =
        std::fs::read_to_string(recorded.log_path.expect("log path")).expect("local log");
    assert_eq!(local_copy, log, "the local copy of the log is complete");

    let artifacts = orch
        .collect_artifacts(&followed.run, None)
        .await
        .expect("artifacts");
    assert_eq!(
        std::fs::read_to_string(artifacts.dir.join("outputs/model.txt"))
            .expect("artifact copied back"),
        "weights\n"
    );
    assert!(
        artifacts
            .dir
            .starts_with(rig.project.path().join("runs").join(&launched.run.id)),
        "{}",
        artifacts.dir.display()
    );
    assert_eq!(artifacts.missing, vec!["missing.bin".to_string()]);

    let checkpoint = store.path().join(&launched.run.id).join("step1");
    assert_eq!(
        std::fs::read_to_string(&checkpoint).expect("checkpoint uploaded"),
        "step-1\n"
    );

    let finish = orch
        .finish(&followed.run, req.on_finish)
        .await
        .expect("finish");
    assert_eq!(
        (finish.policy, finish.action),
        ("keep", "kept"),
        "local keeps by default"
    );
    assert!(rig.env_dir(&rs).is_dir());
}

#[tokio::test]
async fn a_rerun_sends_only_changed_files_and_removes_deleted_ones() {
    let rig = Rig::new(false);
    rig.write("a.py", "a = 1\n");
    rig.write("b.py", "b = 1\n");
    rig.write("lib/c.py", "c = 1\n");
    rig.write(".gitignore", "data/\n*.log\n");
    rig.write("data/huge.bin", "ignored by .gitignore");
    rig.write("debug.log", "ignored by .gitignore");
    rig.write("scratch/notes.txt", "excluded by run.exclude");
    let rs = rig.spec(
        "resync",
        serde_json::json!({"command": "true", "exclude": ["scratch/"]}),
    );
    let orch = rig.orchestrator();
    let (_, first) = launch(&orch, &rs).await;
    follow(&orch, &first).await;
    let sync = first.sync.clone().expect("a copy environment syncs");
    assert!(sync.full);
    assert_eq!(sync.sent, vec![".gitignore", "a.py", "b.py", "lib/c.py"]);
    let work = rig.env_dir(&rs).join("work");
    for never in ["data/huge.bin", "debug.log", "scratch/notes.txt"] {
        assert!(!work.join(never).exists(), "{never} was sent");
    }

    rig.write("a.py", "a = 2  # edited\n");
    std::fs::remove_file(rig.project.path().join("lib/c.py")).expect("rm");
    let (_, second) = launch(&orch, &rs).await;
    follow(&orch, &second).await;
    let sync = second.sync.clone().expect("sync report");
    assert!(!sync.full, "the manifest in the environment was found");
    assert_eq!(sync.sent, vec!["a.py"], "only the edited file is sent");
    assert_eq!(sync.files_sent, 1);
    assert_eq!(sync.bytes_sent, "a = 2  # edited\n".len() as u64);
    assert_eq!(sync.deleted, vec!["lib/c.py"]);
    assert!(
        !work.join("lib/c.py").exists(),
        "the deleted file is gone remotely"
    );
    assert!(
        !work.join("lib").exists(),
        "the directory it left empty is gone too"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("a.py")).expect("read"),
        "a = 2  # edited\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("b.py")).expect("read"),
        "b = 1\n"
    );
    assert!(!second.deployed, "an unchanged environment is reused");

    // The manifest lives in the environment: a lost local state still syncs
    // incrementally.
    let fresh_state = tempfile::tempdir().expect("state");
    let store = sindri_state::StateStore::open(fresh_state.path()).expect("store");
    let orch2 = sindri_runs::Orchestrator::new(&rig.provider, &store, &sindri_core::NoProgress);
    let (_, third) = launch(&orch2, &rs).await;
    follow(&orch2, &third).await;
    let sync = third.sync.expect("sync report");
    assert!(
        !sync.full && sync.sent.is_empty() && sync.deleted.is_empty(),
        "{sync:?}"
    );
    assert_eq!(sync.transfer.files, 0, "nothing was copied");
}

#[tokio::test]
async fn a_detached_run_is_followed_to_its_end_later() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "detach",
        serde_json::json!({"command": ["sh", "-c", "echo begin; sleep 2; echo end; exit 0"]}),
    );
    let (_, launched) = launch(&rig.orchestrator(), &rs).await;
    let id = launched.run.id.clone();
    drop(launched);

    // Later, from nothing but the state: find the run by a prefix of its id.
    let orch = rig.orchestrator();
    let run = rig
        .state
        .get_run_by_prefix(&id[..12])
        .expect("lookup")
        .expect("found");
    assert_eq!(run.state, RunState::Running);
    let mut log = Vec::new();
    let followed = orch.follow(&run, &mut log).await.expect("follow");
    assert_eq!(String::from_utf8_lossy(&log), "begin\nend\n");
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Succeeded, Some(0))
    );
}

#[tokio::test]
async fn cancel_stops_the_whole_process_group() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "cancel",
        serde_json::json!({"command": "sleep 300 & echo $! > child.pid; wait"}),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let work = rig.env_dir(&rs).join("work");
    wait_for_file(&work.join("child.pid"), 100).await;
    let child = read_pid(&work.join("child.pid"));
    wait_for_file(&run_dir(&launched).join("pid"), 50).await;
    let leader = read_pid(&run_dir(&launched).join("pid"));
    assert!(alive(child) && alive(leader), "the job and its child run");

    let report = orch
        .cancel(&launched.run, Duration::from_secs(10))
        .await
        .expect("cancel");
    assert_eq!(report.outcome, "terminated", "SIGTERM was enough");
    assert_eq!(report.run.state, RunState::Cancelled);
    assert_eq!(
        report.run.exit_code,
        Some(128 + 15),
        "the supervisor recorded the SIGTERM death"
    );
    assert!(!alive(leader), "the job is gone");
    assert!(!alive(child), "the job's child is gone too");
    let again = orch
        .cancel(&report.run, Duration::from_secs(1))
        .await
        .expect("cancel twice");
    assert_eq!(again.outcome, "finished");
}

#[tokio::test]
async fn cancel_kills_what_ignores_sigterm_after_the_grace_period() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "cancel-kill",
        serde_json::json!({"command": "trap '' TERM; sleep 300 & echo $! > child.pid; while :; do wait; done"}),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let work = rig.env_dir(&rs).join("work");
    wait_for_file(&work.join("child.pid"), 100).await;
    let child = read_pid(&work.join("child.pid"));
    let report = orch
        .cancel(&launched.run, Duration::from_secs(1))
        .await
        .expect("cancel");
    assert_eq!(report.outcome, "killed", "SIGKILL was needed");
    assert_eq!(report.run.state, RunState::Cancelled);
    assert!(!alive(child), "the child that ignored SIGTERM is gone");
}

#[tokio::test]
async fn max_duration_is_enforced_by_the_supervisor_alone() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "timeout",
        serde_json::json!({"command": "sleep 60", "max_duration": "2s"}),
    );
    let (_, launched) = launch(&rig.orchestrator(), &rs).await;
    let dir = run_dir(&launched);
    wait_for_file(&dir.join("pid"), 50).await;
    let leader = read_pid(&dir.join("pid"));
    // Nothing here follows, polls or signals the run: only the files are watched.
    wait_for_file(&dir.join("exit_code"), 150).await;
    assert_eq!(
        std::fs::read_to_string(dir.join("reason")).expect("reason"),
        "timeout\n"
    );
    assert!(!alive(leader), "the job was stopped");
    let view = rig
        .orchestrator()
        .refresh(&launched.run)
        .await
        .expect("refresh");
    assert_eq!(view.run.state, RunState::Interrupted);
    assert_eq!(view.run.exit_code, Some(128 + 15));
    assert!(
        view.run
            .details
            .get(run_keys::REASON)
            .is_some_and(|r| r.starts_with("timeout")),
        "{:?}",
        view.run.details
    );
}

#[tokio::test]
async fn a_dead_supervisor_without_an_exit_code_is_an_interruption() {
    let rig = Rig::new(false);
    let rs = rig.spec("lost", serde_json::json!({"command": "sleep 300"}));
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let dir = run_dir(&launched);
    wait_for_file(&dir.join("pid"), 50).await;
    let supervisor = read_pid(&dir.join("supervisor_pid"));
    let leader = read_pid(&dir.join("pid"));
    // What a crash or reboot does: everything dies at once, nothing is recorded.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -KILL {supervisor} -{leader}")])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut log = Vec::new();
    let followed = orch
        .follow(&launched.run, &mut log)
        .await
        .expect("follow ends");
    assert_eq!(followed.run.state, RunState::Interrupted);
    assert_eq!(followed.run.exit_code, None, "no exit code was invented");
    assert!(!dir.join("exit_code").exists());
}

#[tokio::test]
async fn a_second_run_is_refused_while_the_first_runs() {
    let rig = Rig::new(false);
    let rs = rig.spec("busy", serde_json::json!({"command": "sleep 300"}));
    let orch = rig.orchestrator();
    let (req, first) = launch(&orch, &rs).await;
    let run = orch.prepare(&rs, &req).expect("prepare");
    let id = run.id.clone();
    let e = orch
        .launch(&rs, &req, run)
        .await
        .expect_err("a concurrent run");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.hint().unwrap_or("").contains("--name"), "{:?}", e.hint());
    let refused = rig.state.get_run(&id).expect("state").expect("recorded");
    assert_eq!(refused.state, RunState::Failed);
    orch.cancel(&first.run, Duration::from_secs(5))
        .await
        .expect("cancel");
}

#[tokio::test]
async fn in_place_runs_use_the_project_directory_and_sync_nothing() {
    let rig = Rig::new(true);
    rig.write("input.txt", "from the project\n");
    let rs = rig.spec(
        "in-place",
        serde_json::json!({"command": "cat input.txt; echo result > output.txt"}),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    assert!(launched.sync.is_none());
    let (followed, log) = follow(&orch, &launched).await;
    assert_eq!(followed.run.state, RunState::Succeeded);
    assert_eq!(log, "from the project\n");
    assert_eq!(
        std::fs::read_to_string(rig.project.path().join("output.txt")).expect("written in place"),
        "result\n"
    );
    assert!(
        !rig.project
            .path()
            .join(sindri_runs::sync::MANIFEST_NAME)
            .exists()
    );
}

#[tokio::test]
async fn a_command_that_does_not_exist_fails_with_127() {
    let rig = Rig::new(false);
    let rs = rig.spec("nocmd", serde_json::json!({"command": "true"}));
    let orch = rig.orchestrator();
    let (_, launched) = launch_with(&orch, &rs, vec!["no-such-program-xyz".into()]).await;
    let (followed, log) = follow(&orch, &launched).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Failed, Some(127))
    );
    assert!(log.contains("no-such-program-xyz"), "{log}");
}

#[tokio::test]
async fn a_state_directory_inside_the_workdir_is_never_synced() {
    let project = tempfile::tempdir().expect("project");
    let state_dir = project.path().join(".sindri-state");
    let state = sindri_state::StateStore::open(&state_dir).expect("state");
    let provider = sindri_providers::local::LocalProvider::new(
        state_dir.join("local"),
        sindri_spec::LocalSettings::default(),
    );
    std::fs::write(project.path().join("main.py"), "print(1)\n").expect("write");
    let spec: sindri_spec::Spec = serde_json::from_value(serde_json::json!({
        "name": "nested-state",
        "deployment": {"provider": "local"},
        "run": {"command": "true"},
    }))
    .expect("spec");
    let rs = sindri_core::ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let orch = sindri_runs::Orchestrator::new(&provider, &state, &sindri_core::NoProgress);
    for _ in 0..2 {
        let (_, launched) = launch(&orch, &rs).await;
        let sync = launched.sync.clone().expect("sync");
        assert!(
            sync.sent.iter().all(|p| !p.starts_with(".sindri-state")),
            "the state directory was sent: {:?}",
            sync.sent
        );
        follow(&orch, &launched).await;
    }
}

#[tokio::test]
async fn editing_only_the_run_section_reuses_the_environment() {
    let rig = Rig::new(false);
    let orch = rig.orchestrator();
    let first = rig.spec("reuse", serde_json::json!({"command": "echo one"}));
    let (_, launched) = launch(&orch, &first).await;
    assert!(launched.deployed);
    follow(&orch, &launched).await;
    let edited = rig.spec(
        "reuse",
        serde_json::json!({"command": "echo two", "artifacts": ["x"], "max_duration": "1h"}),
    );
    // The run section is not part of what the environment is.
    assert_eq!(first.spec_hash(), edited.spec_hash());
    let (_, again) = launch(&orch, &edited).await;
    assert!(!again.deployed, "a new command is not a new environment");
    let (_, log) = follow(&orch, &again).await;
    assert_eq!(log, "two\n");
}

/// A moto S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (install moto: pip install 'moto[server]')");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto did not start on port {port}: install it with `pip install 'moto[server]'`");
    }

    fn aws(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("aws")
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .envs(aws_env())
            .output()
            .expect("the aws CLI runs (install it: pip install awscli)")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aws_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]
}

#[tokio::test]
async fn checkpoints_reach_an_s3_store_through_the_aws_cli() {
    let moto = Moto::start();
    let mb = moto.aws(&["s3", "mb", "s3://ckpt"]);
    assert!(
        mb.status.success(),
        "{}",
        String::from_utf8_lossy(&mb.stderr)
    );

    let rig = Rig::new(false);
    let mut env = serde_json::Map::new();
    env.insert("AWS_ENDPOINT_URL".into(), moto.endpoint.clone().into());
    for (k, v) in aws_env() {
        env.insert(k.into(), v.into());
    }
    let spec: sindri_spec::Spec = serde_json::from_value(serde_json::json!({
        "name": "s3-ckpt",
        "deployment": {"provider": "local", "env": env},
        "run": {
            "command": "mkdir -p ckpt && echo epoch-1 > ckpt/epoch1.pt",
            "checkpoints": "ckpt",
            "checkpoint_store": "s3://ckpt/runs",
        },
    }))
    .expect("spec");
    let rs = sindri_core::ResolvedSpec::new(spec, &rig.project.path().join("sindri.yaml"));
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let (followed, _) = follow(&orch, &launched).await;
    assert_eq!(followed.run.state, RunState::Succeeded);
    assert!(
        !followed
            .run
            .details
            .contains_key(run_keys::CHECKPOINT_ERROR),
        "{:?}",
        followed.run.details
    );
    let listed = moto.aws(&["s3", "ls", &format!("s3://ckpt/runs/{}/", followed.run.id)]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("epoch1.pt"),
        "the checkpoint is not in the bucket: {}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
}

#[tokio::test]
async fn a_failed_checkpoint_upload_is_recorded_and_never_fails_the_run() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "ckpt-fail",
        serde_json::json!({
            "command": "mkdir -p ckpt && echo x > ckpt/a",
            "checkpoints": "ckpt",
            "checkpoint_store": "/proc/sindri-cannot-write-here",
        }),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let (followed, _) = follow(&orch, &launched).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Succeeded, Some(0))
    );
    assert!(
        followed
            .run
            .details
            .contains_key(run_keys::CHECKPOINT_ERROR),
        "{:?}",
        followed.run.details
    );
}

/// `on_finish: stop` exists to end billing; a provider that cannot stop (local here,
/// Lyceum and one-time spot instances in the cloud) is destroyed instead, and the
/// report says why, rather than left running.
#[tokio::test]
async fn stop_on_a_provider_that_cannot_stop_destroys_instead_of_leaving_it_running() {
    let rig = Rig::new(false);
    let rs = rig.spec(
        "nostop",
        serde_json::json!({"command": "echo done", "on_finish": "stop"}),
    );
    let orch = rig.orchestrator();
    let (_req, launched) = launch(&orch, &rs).await;
    let (followed, _log) = follow(&orch, &launched).await;
    assert_eq!(followed.run.exit_code, Some(0));
    assert!(
        rig.env_dir(&rs).exists(),
        "the environment exists before on_finish"
    );
    let report = orch
        .finish(&followed.run, sindri_spec::OnFinish::Stop)
        .await
        .expect("finish");
    assert_eq!(report.action, "destroyed", "{:?}", report.note);
    assert!(
        report.note.as_deref().unwrap_or("").contains("cannot stop"),
        "{:?}",
        report.note
    );
    assert!(!rig.env_dir(&rs).exists(), "nothing is left running");
    assert!(
        rig.state
            .get_deployment(&rs.project, rs.name())
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_relaunch_restores_the_last_checkpoint_from_s3() {
    let moto = Moto::start();
    let mb = moto.aws(&["s3", "mb", "s3://resume"]);
    assert!(
        mb.status.success(),
        "{}",
        String::from_utf8_lossy(&mb.stderr)
    );
    let rig = Rig::new(false);
    let mut env = serde_json::Map::new();
    env.insert("AWS_ENDPOINT_URL".into(), moto.endpoint.clone().into());
    for (k, v) in aws_env() {
        env.insert(k.into(), v.into());
    }
    let spec: sindri_spec::Spec = serde_json::from_value(serde_json::json!({
        "name": "s3-resume",
        "deployment": {"provider": "local", "env": env},
        "run": {
            "command": "if [ -f ckpt/step ]; then echo \"resumed at $(cat ckpt/step)\"; else mkdir -p ckpt && echo 7 > ckpt/step && echo fresh; fi",
            "checkpoints": "ckpt",
            "checkpoint_store": "s3://resume/runs",
            "max_restarts": 1,
        },
    }))
    .expect("spec");
    let rs = sindri_core::ResolvedSpec::new(spec, &rig.project.path().join("sindri.yaml"));
    let orch = rig.orchestrator();
    let (req, launched) = launch(&orch, &rs).await;
    let (first, log) = follow(&orch, &launched).await;
    assert_eq!(
        (first.run.state, log.as_str()),
        (RunState::Succeeded, "fresh\n")
    );
    // As after an interruption: a new machine, whose disk has no checkpoint.
    let again = orch
        .relaunch(&rs, &req, first.run.clone())
        .await
        .expect("relaunch");
    assert_eq!(again.run.restarts, 1);
    let (second, log) = follow(&orch, &again).await;
    assert_eq!(second.run.state, RunState::Succeeded);
    assert_eq!(log, "resumed at 7\n", "the checkpoint came back from S3");
}
