//! The local provider: the shared conformance suite, and what is particular to running
//! on this machine (in-place environments, directories sindri does not own, process
//! exit codes, run logs, destroy stopping jobs).
//!
//! Every test keeps its environments under a temporary state directory of its own.
#![cfg(feature = "local")]

use std::path::{Path, PathBuf};

use sindri_core::{
    DeployOptions, Deployment, DestroyOptions, ErrorKind, ExecCommand, LogOptions, ResolvedSpec,
    StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, SharedBuffer, exec_capture};
use sindri_providers::local::LocalProvider;
use sindri_spec::{LocalSettings, Spec};

/// A provider with its own state directory, a project directory with a config file
/// path, and a spec whose `home` is a scratch directory (the conformance suite copies
/// files under `home`, which for this provider is a path on this machine).
struct Fixture {
    provider: LocalProvider,
    spec: ResolvedSpec,
    root: PathBuf,
    project: tempfile::TempDir,
    _state: tempfile::TempDir,
    _home: tempfile::TempDir,
}

fn fixture(name: &str, in_place: bool, extra: serde_json::Value) -> Fixture {
    let state = tempfile::tempdir().expect("state dir");
    let project = tempfile::tempdir().expect("project dir");
    let home = tempfile::tempdir().expect("home dir");
    let mut deployment = serde_json::json!({
        "provider": "local",
        "home": home.path().display().to_string(),
    });
    if let (Some(d), Some(e)) = (deployment.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": name,
        "deployment": deployment,
    }))
    .expect("valid spec");
    let spec = ResolvedSpec::new(spec, &project.path().join("sindri.yaml"));
    let root = state.path().join("local");
    Fixture {
        provider: LocalProvider::new(root.clone(), LocalSettings { in_place }),
        spec,
        root,
        project,
        _state: state,
        _home: home,
    }
}

async fn deploy(f: &Fixture) -> Deployment {
    dispatch::deploy(
        &f.provider,
        &f.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("deploy")
}

#[tokio::test]
async fn conformance_lifecycle() {
    let f = fixture("lifecycle", false, serde_json::json!({}));
    conformance::lifecycle(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let f = fixture("idempotent", false, serde_json::json!({}));
    conformance::idempotent_deploy(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let f = fixture("destroy-twice", false, serde_json::json!({}));
    conformance::destroy_twice(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_not_found() {
    let f = fixture("not-found", false, serde_json::json!({}));
    conformance::not_found(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let f = fixture("unsupported", false, serde_json::json!({}));
    conformance::unsupported_ops_refused(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_list_owned() {
    let f = fixture("list-owned", false, serde_json::json!({}));
    conformance::list_owned(&f.provider, &f.spec).await;
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let f = fixture("plan", false, serde_json::json!({}));
    conformance::plan_changes_nothing(&f.provider, &f.spec).await;
    assert!(!f.root.exists(), "plan created nothing, not even the root");
}

#[tokio::test]
async fn in_place_runs_in_the_project_directory_and_destroy_never_removes_it() {
    let f = fixture("in-place", true, serde_json::json!({}));
    std::fs::write(f.project.path().join("train.py"), "print('hi')\n").expect("write");
    let d = deploy(&f).await;
    let pwd = exec_capture(
        &f.provider,
        &d,
        &ExecCommand {
            workdir: d.detail("run_workdir").map(str::to_string),
            ..ExecCommand::new(["sh", "-c", "pwd; cat train.py"])
        },
        None,
    )
    .await
    .expect("exec");
    let project = f.project.path().canonicalize().expect("canonical");
    assert_eq!(pwd.out(), format!("{}\nprint('hi')\n", project.display()));
    assert_eq!(d.detail("run_in_place"), Some("true"));

    let report = dispatch::destroy(&f.provider, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy");
    assert!(
        f.project.path().join("train.py").is_file(),
        "the project directory survives destroy"
    );
    assert!(
        report.kept.iter().any(|k| k.contains("project directory")),
        "{report:?}"
    );
    let s = dispatch::status(&f.provider, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Missing);
}

#[tokio::test]
async fn a_directory_sindri_did_not_create_is_never_used_or_removed() {
    let f = fixture("foreign", false, serde_json::json!({}));
    let dir = f.provider.env_dir(&f.spec.project, f.spec.name());
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("precious.txt"), "mine").expect("write");

    let e = dispatch::deploy(
        &f.provider,
        &f.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("deploy over a foreign directory");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let d = conformance::never_deployed(&f.provider, &f.spec);
    let e = dispatch::destroy(&f.provider, &d, DestroyOptions { volumes: true })
        .await
        .expect_err("destroy of a foreign directory");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(dir.join("precious.txt").is_file());
    let owned = dispatch::list_owned(&f.provider).await.expect("list_owned");
    assert!(owned.is_empty(), "{owned:?}");
}

#[tokio::test]
async fn exec_reports_exit_codes_signals_missing_programs_and_spec_env() {
    let f = fixture(
        "exec",
        false,
        serde_json::json!({"env": {"GREETING": "hello from the spec"}}),
    );
    let d = deploy(&f).await;

    let env = exec_capture(
        &f.provider,
        &d,
        &ExecCommand::shell("echo \"$GREETING\"; pwd"),
        None,
    )
    .await
    .expect("exec");
    let dir = f.provider.env_dir(&f.spec.project, f.spec.name());
    assert_eq!(
        env.out(),
        format!("hello from the spec\n{}\n", dir.display()),
        "deployment.env applies; the default cwd is the environment directory"
    );

    let killed = exec_capture(&f.provider, &d, &ExecCommand::shell("kill -KILL $$"), None)
        .await
        .expect("exec");
    assert_eq!(
        killed.code,
        128 + 9,
        "a signal death is 128+N, as shells report it"
    );

    let missing = exec_capture(
        &f.provider,
        &d,
        &ExecCommand::new(["no-such-program-xyz"]),
        None,
    )
    .await
    .expect("a missing program is an exit code, not an error");
    assert_eq!(missing.code, 127);
    assert!(
        missing.err().contains("no-such-program-xyz"),
        "{}",
        missing.err()
    );

    let e = exec_capture(
        &f.provider,
        &d,
        &ExecCommand {
            workdir: Some("no/such/dir".into()),
            ..ExecCommand::new(["true"])
        },
        None,
    )
    .await
    .expect_err("missing workdir");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    dispatch::destroy(&f.provider, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

/// Writes a run directory as the run supervisor does.
fn fake_run(dir: &Path, id: &str, log: &str, exit_code: Option<i32>) -> PathBuf {
    let run = dir.join("runs").join(id);
    std::fs::create_dir_all(&run).expect("mkdir");
    std::fs::write(run.join("log"), log).expect("write log");
    if let Some(c) = exit_code {
        std::fs::write(run.join("exit_code"), format!("{c}\n")).expect("write exit code");
    }
    run
}

#[tokio::test]
async fn logs_show_the_latest_run_and_follow_ends_with_its_exit_code() {
    let f = fixture("logs", false, serde_json::json!({}));
    let d = deploy(&f).await;
    let dir = f.provider.env_dir(&f.spec.project, f.spec.name());

    let mut empty = SharedBuffer::default();
    dispatch::logs(&f.provider, &d, LogOptions::default(), &mut empty)
        .await
        .expect("logs without runs");
    assert_eq!(empty.text(), "");

    fake_run(&dir, "01aaaaaaaaaaaaaaaaaa", "old run\n", Some(0));
    let run = fake_run(&dir, "01bbbbbbbbbbbbbbbbbb", "one\ntwo\nthree\n", None);
    let mut tail = SharedBuffer::default();
    dispatch::logs(
        &f.provider,
        &d,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
        &mut tail,
    )
    .await
    .expect("logs --tail 2");
    assert_eq!(tail.text(), "two\nthree\n", "the newest run's last lines");

    // Follow: the run finishes while being followed; the stream ends on its own.
    let writer = {
        let run = run.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(run.join("log"))
                .expect("open");
            std::io::Write::write_all(&mut log, b"four\n").expect("append");
            std::fs::write(run.join("exit_code"), "0\n").expect("exit code");
        })
    };
    let mut followed = SharedBuffer::default();
    dispatch::logs(
        &f.provider,
        &d,
        LogOptions {
            follow: true,
            tail: None,
        },
        &mut followed,
    )
    .await
    .expect("logs --follow");
    writer.await.expect("writer");
    assert_eq!(followed.text(), "one\ntwo\nthree\nfour\n");
    dispatch::destroy(&f.provider, &d, DestroyOptions::default())
        .await
        .expect("destroy");
}

/// True while `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn destroy_stops_a_job_still_running_in_the_environment() {
    let f = fixture("destroy-running", false, serde_json::json!({}));
    let d = deploy(&f).await;
    let dir = f.provider.env_dir(&f.spec.project, f.spec.name());
    let run = fake_run(&dir, "01cccccccccccccccccc", "", None);
    // A job in its own process group, recorded as the supervisor records one.
    let started = exec_capture(
        &f.provider,
        &d,
        &ExecCommand::shell(&format!(
            "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {}/pid; cat {}/pid",
            run.display(),
            run.display()
        )),
        None,
    )
    .await
    .expect("start job");
    let pid: u32 = started.out().trim().parse().expect("pid");
    assert!(alive(pid), "the job runs before destroy");
    let report = dispatch::destroy(&f.provider, &d, DestroyOptions::default())
        .await
        .expect("destroy");
    assert!(
        report.removed.iter().any(|r| r.contains("process group")),
        "{report:?}"
    );
    assert!(!alive(pid), "destroy left job {pid} running");
    assert!(!dir.exists());
}
