//! The same orchestrator, unchanged, on the Docker provider: a run in a busybox
//! container proves nothing in it is particular to the local provider.
//!
//! Needs a running Docker Engine and the test images, built on first use by
//! `.ci/images/build.sh` (there is no registry to pull from).

use std::path::Path;
use std::process::Command;

use sindri_core::{Deployment, NoProgress, ResolvedSpec, StatusState, dispatch};
use sindri_runs::{Orchestrator, RunRequest};
use sindri_spec::{OnFinish, ProviderKind, ProvidersSpec, Spec};
use sindri_state::{RunState, StateStore};

const IMAGE: &str = "sindri-test/busybox:latest";

fn ensure_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "building the test images failed: {}{}\nThese tests need a running Docker Engine \
         (`sudo systemctl start docker`) and Debian's busybox-static and bash-static.",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes everything labelled for the environment, even when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=sindri.environment={}", self.0);
        for (list, rm) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &filter],
                vec!["network", "rm"],
            ),
        ] {
            let Ok(out) = Command::new("docker").args(&list).output() else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(&rm).args(&ids).output();
            }
        }
    }
}

#[tokio::test]
async fn a_run_in_a_docker_container_reports_exit_code_log_artifacts_and_resyncs() {
    ensure_images();
    let name = format!(
        "t-run-{:x}",
        std::process::id() ^ (sindri_core::unix_now() as u32)
    );
    let _cleanup = Cleanup(name.clone());
    let project = tempfile::tempdir().expect("project");
    let state_dir = tempfile::tempdir().expect("state");
    let state = StateStore::open(state_dir.path()).expect("state");
    std::fs::write(project.path().join("job.sh"), "echo job-v1\n").expect("write");
    std::fs::write(project.path().join("old.txt"), "to be deleted\n").expect("write");
    std::fs::write(project.path().join(".gitignore"), "*.tmp\n").expect("write");
    std::fs::write(project.path().join("scratch.tmp"), "ignored\n").expect("write");
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": name,
        "deployment": {"provider": "docker", "image": IMAGE},
        "run": {
            "command": "sh job.sh; echo err-line >&2; mkdir -p out; echo artifact > out/a.txt; \
                        ls; exit 3",
            "artifacts": ["out/"],
            "on_finish": "destroy",
        },
    }))
    .expect("spec");
    let rs = ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let provider = sindri_providers::registry()
        .create(ProviderKind::Docker, &ProvidersSpec::default())
        .expect("docker provider");
    let orch = Orchestrator::new(provider.as_ref(), &state, &NoProgress);

    let req = RunRequest::new(&rs, provider.kind(), Vec::new()).expect("request");
    assert_eq!(req.on_finish, OnFinish::Destroy);
    let run = orch.prepare(&rs, &req).expect("prepare");
    let launched = orch
        .launch(&rs, &req, run)
        .await
        .unwrap_or_else(|e| panic!("launch: {e} (hint: {:?})", e.hint()));
    let sync = launched.sync.clone().expect("synced");
    assert_eq!(sync.sent, vec![".gitignore", "job.sh", "old.txt"]);
    let mut log = Vec::new();
    let followed = orch.follow(&launched.run, &mut log).await.expect("follow");
    let log = String::from_utf8_lossy(&log).into_owned();
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Failed, Some(3))
    );
    assert!(
        log.contains("job-v1\n") && log.contains("err-line\n"),
        "{log}"
    );
    assert!(
        !log.contains("scratch.tmp"),
        "a .gitignore'd file was sent: {log}"
    );

    let artifacts = orch
        .collect_artifacts(&followed.run, None)
        .await
        .expect("artifacts");
    assert_eq!(
        std::fs::read_to_string(artifacts.dir.join("out/a.txt")).expect("artifact"),
        "artifact\n"
    );

    // A re-run in the same container: one edited file sent, one deleted file removed.
    std::fs::write(project.path().join("job.sh"), "echo job-v2\n").expect("write");
    std::fs::remove_file(project.path().join("old.txt")).expect("rm");
    let run = orch.prepare(&rs, &req).expect("prepare");
    let second = orch.launch(&rs, &req, run).await.expect("second launch");
    assert!(!second.deployed, "the running container is reused");
    let sync = second.sync.clone().expect("synced");
    assert_eq!(
        (sync.sent.clone(), sync.deleted.clone()),
        (vec!["job.sh".to_string()], vec!["old.txt".to_string()])
    );
    let mut log = Vec::new();
    let followed = orch.follow(&second.run, &mut log).await.expect("follow");
    let log = String::from_utf8_lossy(&log).into_owned();
    assert!(log.contains("job-v2\n"), "{log}");
    assert!(
        !log.contains("old.txt"),
        "the deleted file is still in the container: {log}"
    );

    let finish = orch
        .finish(&followed.run, req.on_finish)
        .await
        .expect("finish");
    assert_eq!(finish.action, "destroyed");
    assert!(
        state
            .get_deployment(&rs.project, rs.name())
            .expect("state")
            .is_none()
    );
    let probe = Deployment::creating(
        rs.name(),
        ProviderKind::Docker,
        &rs.project,
        &rs.spec_hash(),
    );
    let live = dispatch::status(provider.as_ref(), &probe)
        .await
        .expect("status");
    assert_eq!(
        live.state,
        StatusState::Missing,
        "on_finish: destroy removed the container"
    );
}

/// Names of the live processes in the container, read through `exec`.
async fn processes(provider: &dyn sindri_core::Provider, d: &Deployment) -> String {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl tokio::io::AsyncWrite for Sink {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
    let io = sindri_core::ExecIo {
        stdin: None,
        stdout: Box::new(Sink(out.clone())),
        stderr: Box::new(tokio::io::sink()),
        tty: None,
    };
    // Command lines of the live (not zombie) processes; the job's `sleep 300` is told
    // apart from the container's own keep-alive `sleep 3600`.
    let cmd = sindri_core::ExecCommand::shell(
        "for p in /proc/[0-9]*; do read -r l < $p/stat 2>/dev/null || continue; \
         case \"${l##*) }\" in Z*) continue;; esac; tr '\\0' ' ' < $p/cmdline; echo; done",
    );
    dispatch::exec(provider, d, &cmd, io).await.expect("exec");
    String::from_utf8_lossy(&out.lock().expect("lock")).into_owned()
}

#[tokio::test]
async fn cancel_and_max_duration_work_inside_a_container() {
    ensure_images();
    let name = format!(
        "t-runc-{:x}",
        std::process::id() ^ (sindri_core::unix_now() as u32)
    );
    let _cleanup = Cleanup(name.clone());
    let project = tempfile::tempdir().expect("project");
    let state_dir = tempfile::tempdir().expect("state");
    let state = StateStore::open(state_dir.path()).expect("state");
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": name,
        "deployment": {"provider": "docker", "image": IMAGE},
        "run": {"command": "sleep 300 & wait", "max_duration": "2s"},
    }))
    .expect("spec");
    let rs = ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let provider = sindri_providers::registry()
        .create(ProviderKind::Docker, &ProvidersSpec::default())
        .expect("docker provider");
    let orch = Orchestrator::new(provider.as_ref(), &state, &NoProgress);
    let req = RunRequest::new(&rs, provider.kind(), Vec::new()).expect("request");

    // max_duration: nothing follows; the supervisor in the container stops the job.
    let run = orch.prepare(&rs, &req).expect("prepare");
    let timed = orch.launch(&rs, &req, run).await.expect("launch");
    let mut view = orch.refresh(&timed.run).await.expect("refresh");
    for _ in 0..100 {
        if view.run.state != RunState::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        view = orch.refresh(&timed.run).await.expect("refresh");
    }
    assert_eq!(
        view.run.state,
        RunState::Interrupted,
        "{:?}",
        view.run.details
    );
    assert!(
        view.run
            .details
            .get("reason")
            .is_some_and(|r| r.starts_with("timeout")),
        "{:?}",
        view.run.details
    );
    assert!(
        !processes(provider.as_ref(), &timed.deployment)
            .await
            .contains("sleep 300"),
        "the job's processes outlived max_duration"
    );

    // cancel: the whole process group goes.
    let no_limit = RunRequest::new(
        &rs,
        provider.kind(),
        vec!["sh".into(), "-c".into(), "sleep 300 & wait".into()],
    )
    .map(|mut r| {
        r.run.max_duration = None;
        r
    })
    .expect("request");
    let run = orch.prepare(&rs, &no_limit).expect("prepare");
    let launched = orch.launch(&rs, &no_limit, run).await.expect("launch");
    let mut seen = false;
    for _ in 0..50 {
        if processes(provider.as_ref(), &launched.deployment)
            .await
            .contains("sleep 300")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the job never started");
    let cancelled = orch
        .cancel(&launched.run, std::time::Duration::from_secs(5))
        .await
        .expect("cancel");
    assert_eq!(cancelled.run.state, RunState::Cancelled);
    assert!(
        !processes(provider.as_ref(), &launched.deployment)
            .await
            .contains("sleep 300"),
        "cancel left the job's child running"
    );
    orch.finish(&cancelled.run, OnFinish::Destroy)
        .await
        .expect("destroy");
}
