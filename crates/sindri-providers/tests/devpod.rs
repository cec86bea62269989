//! The DevPod provider against a faithful fake `devpod` (tests/support/devpod): the
//! shared conformance suite, the exact argv sindri sends DevPod, secrets that never
//! reach an argv or DevPod's state, updates with `--recreate`, ownership conflicts,
//! builds, logs, GPUs and destroy reports, and what happens without any `devpod`.
//!
//! The fake runs every workspace as a real container on this machine's Docker Engine,
//! so exec, copies and exit codes are real. The real DevPod is not installed here.
#![cfg(feature = "devpod")]

#[path = "support/devpod/mod.rs"]
mod fake;

use std::collections::BTreeMap;
use std::process::Command;

use fake::{FakeDevpod, IMAGE, TestEnv, add_secret, container_of, make_spec, volumes_named};
use sindri_core::{
    CheckStatus, DeployOptions, Deployment, DestroyOptions, ErrorKind, ExecCommand, LogOptions,
    PlanAction, Provider, StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, SharedBuffer, exec_capture};
use sindri_providers::devpod::{DevpodProvider, INSTALL_URL, devcontainer_path};
use sindri_spec::DevpodSettings;

async fn deploy(p: &DevpodProvider, spec: &sindri_core::ResolvedSpec) -> Deployment {
    dispatch::deploy(p, spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_or_else(|e| panic!("deploy failed: {e} (hint: {:?})", e.hint()))
}

async fn out(p: &DevpodProvider, d: &Deployment, line: &str) -> String {
    let c = exec_capture(p, d, &ExecCommand::shell(line), None)
        .await
        .expect("exec");
    assert_eq!(c.code, 0, "`{line}` failed: {c:?}");
    c.out()
}

/// The value following `flag` in `argv`.
fn flag<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

// ------------------------------------------------------------------ conformance

#[tokio::test]
async fn conformance_lifecycle() {
    let e = TestEnv::new("lifecycle");
    conformance::lifecycle(&e.provider(), &e.spec).await;
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let e = TestEnv::new("idempotent");
    conformance::idempotent_deploy(&e.provider(), &e.spec).await;
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let e = TestEnv::new("destroy-twice");
    conformance::destroy_twice(&e.provider(), &e.spec).await;
}

#[tokio::test]
async fn conformance_not_found() {
    let e = TestEnv::new("not-found");
    conformance::not_found(&e.provider(), &e.spec).await;
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let e = TestEnv::new("unsupported");
    conformance::unsupported_ops_refused(&e.provider(), &e.spec).await;
    assert!(
        e.fake.calls_of("up").is_empty(),
        "refused specs never reach `devpod up`"
    );
}

#[tokio::test]
async fn conformance_list_owned() {
    let e = TestEnv::new("list-owned");
    conformance::list_owned(&e.provider(), &e.spec).await;
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let e = TestEnv::new("plan");
    conformance::plan_changes_nothing(&e.provider(), &e.spec).await;
    assert!(
        !e.project.path().join(".sindri").exists(),
        "plan wrote nothing into the project"
    );
    assert!(e.fake.calls_of("up").is_empty(), "plan ran no `devpod up`");
}

// ------------------------------------------------------------------ argv and secrets

#[tokio::test]
async fn deploy_sends_the_documented_flags_and_secrets_reach_no_argv_and_no_devpod_state() {
    const TOKEN: &str = "tok-3f9a1c-never-on-argv";
    const CERT: &str = "cert-77b2e0-never-on-argv";
    const FILE_SECRET: &str = "file-secret-c41d";
    let mut e = TestEnv::with(
        "argv",
        serde_json::json!({"env": {"GREETING": "hello world"}}),
        serde_json::json!({"secrets": [
            {"name": "API_TOKEN", "source": "env"},
            {"name": "CERT", "source": "vault", "path": "secret/data/x", "key": "cert", "mount": "/run/sindri-test/cert.pem"},
            {"name": "FILE_TOKEN", "source": "file", "path": "token.txt", "mount": "/run/file-token"},
        ]}),
    );
    std::fs::write(e.project.path().join("token.txt"), FILE_SECRET).expect("token file");
    add_secret(&mut e.spec, "API_TOKEN", TOKEN, None);
    add_secret(&mut e.spec, "CERT", CERT, Some("/run/sindri-test/cert.pem"));
    add_secret(
        &mut e.spec,
        "FILE_TOKEN",
        FILE_SECRET,
        Some("/run/file-token"),
    );
    e.fake.set_providers(&["docker"]);
    let settings = DevpodSettings {
        provider: Some("docker".into()),
        ide: None,
        options: BTreeMap::from([("DOCKER_PATH".to_string(), "docker".to_string())]),
    };
    let p = e.fake.provider(settings);
    let d = deploy(&p, &e.spec).await;
    assert_eq!(d.resource_id.as_deref(), Some(e.id().as_str()));

    let ups = e.fake.calls_of("up");
    assert_eq!(ups.len(), 1, "one `devpod up`: {ups:?}");
    let up = &ups[0];
    let project = e.project.path().canonicalize().expect("canonical project");
    assert_eq!(
        up[1],
        project.display().to_string(),
        "the source is the project directory"
    );
    assert_eq!(flag(up, "--id"), Some(e.id().as_str()));
    assert_eq!(e.id(), format!("sindri-{}", e.name));
    assert_eq!(flag(up, "--ide"), Some("none"));
    assert_eq!(
        flag(up, "--devcontainer-path"),
        Some(devcontainer_path(&e.name).as_str())
    );
    assert_eq!(flag(up, "--provider"), Some("docker"));
    assert_eq!(flag(up, "--provider-option"), Some("DOCKER_PATH=docker"));
    assert!(
        !up.contains(&"--recreate".to_string()),
        "a first deploy does not recreate: {up:?}"
    );
    assert!(
        !up.iter()
            .any(|a| a.starts_with("--workspace-env") || a.starts_with("--init-env")),
        "no env flags: {up:?}"
    );

    assert_eq!(
        out(&p, &d, "printf %s \"$API_TOKEN\"").await,
        TOKEN,
        "env secrets reach exec"
    );
    assert_eq!(
        out(&p, &d, "cat /run/sindri-test/cert.pem").await,
        CERT,
        "mounted secrets are files"
    );
    assert_eq!(
        out(&p, &d, "cat /run/file-token").await,
        FILE_SECRET,
        "file secrets are bind mounts"
    );
    assert_eq!(
        out(&p, &d, "stat -c %a /root/.sindri/secrets.env")
            .await
            .trim(),
        "600"
    );
    assert_eq!(
        out(&p, &d, "printf %s \"$GREETING\"").await,
        "hello world",
        "deployment.env is containerEnv"
    );

    for call in e.fake.calls() {
        for arg in &call {
            assert!(
                !arg.contains(TOKEN) && !arg.contains(CERT),
                "a secret value reached devpod's argv: {call:?}"
            );
        }
    }
    for call in e.fake.calls_of("ssh") {
        assert!(
            call.contains(&"--agent-forwarding=false".to_string()),
            "{call:?}"
        );
        assert!(
            call.contains(&"--start-services=false".to_string()),
            "{call:?}"
        );
        assert!(
            flag(&call, "--command").is_some_and(|c| c.starts_with("sh -c ")),
            "{call:?}"
        );
    }
    let devcontainer = std::fs::read_to_string(project.join(devcontainer_path(&e.name)))
        .expect("devcontainer.json");
    assert!(
        !devcontainer.contains("API_TOKEN"),
        "secrets are not in remoteEnv: {devcontainer}"
    );
    assert!(
        devcontainer.contains("sindri.managed=true"),
        "ownership labels are run args: {devcontainer}"
    );
    assert_no_file_contains(&e.fake.home(), &[TOKEN, CERT]);
    assert_no_file_contains(&project, &[TOKEN, CERT]);
}

/// Panics when a file under `dir` contains one of `needles`.
fn assert_no_file_contains(dir: &std::path::Path, needles: &[&str]) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            assert_no_file_contains(&path, needles);
        } else if let Ok(text) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&text);
            for n in needles {
                assert!(
                    !text.contains(n),
                    "{} contains a secret value",
                    path.display()
                );
            }
        }
    }
}

// ------------------------------------------------------------------ updates

#[tokio::test]
async fn an_unchanged_spec_runs_nothing_and_a_changed_one_recreates_keeping_home() {
    let mut e = TestEnv::new("update");
    let p = e.provider();
    let first = deploy(&p, &e.spec).await;
    let container = container_of(&e.id()).expect("a container");
    out(&p, &first, "echo kept > /root/note.txt").await;

    e.fake.clear_calls();
    let again = deploy(&p, &e.spec).await;
    assert_eq!(again.resource_id, first.resource_id);
    assert!(
        e.fake.calls_of("up").is_empty(),
        "an unchanged running workspace is left alone"
    );
    assert_eq!(container_of(&e.id()).as_deref(), Some(container.as_str()));

    e.spec = make_spec(
        &e.name,
        e.project.path(),
        serde_json::json!({"env": {"NEW_VAR": "v2"}}),
        serde_json::json!({}),
    );
    let plan = dispatch::plan(&p, &e.spec, Some(&again))
        .await
        .expect("plan");
    assert!(
        plan.steps.iter().any(|s| s.action == PlanAction::Replace
            && s.reason
                .as_deref()
                .is_some_and(|r| r.contains("--recreate"))),
        "{:?}",
        plan.steps
    );
    let changed = deploy(&p, &e.spec).await;
    let ups = e.fake.calls_of("up");
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(
        ups[0].contains(&"--recreate".to_string()),
        "a changed spec recreates: {:?}",
        ups[0]
    );
    assert_ne!(
        container_of(&e.id()).as_deref(),
        Some(container.as_str()),
        "the container was replaced"
    );
    assert_eq!(changed.spec_hash, e.spec.spec_hash());
    assert_eq!(out(&p, &changed, "printf %s \"$NEW_VAR\"").await, "v2");
    assert_eq!(
        out(&p, &changed, "cat /root/note.txt").await,
        "kept\n",
        "home survives --recreate"
    );
}

#[tokio::test]
async fn a_changed_devpod_provider_deletes_and_creates_the_workspace_again() {
    let e = TestEnv::new("switch");
    e.fake.set_providers(&["docker", "other"]);
    let p = e.fake.provider(DevpodSettings {
        provider: Some("docker".into()),
        ..Default::default()
    });
    deploy(&p, &e.spec).await;
    e.fake.clear_calls();
    let q = e.fake.provider(DevpodSettings {
        provider: Some("other".into()),
        ..Default::default()
    });
    let plan = dispatch::plan(&q, &e.spec, None).await.expect("plan");
    assert!(
        plan.steps.iter().any(|s| s.action == PlanAction::Replace
            && s.reason
                .as_deref()
                .is_some_and(|r| r.contains("docker to other"))),
        "{:?}",
        plan.steps
    );
    let d = deploy(&q, &e.spec).await;
    let calls: Vec<String> = e.fake.calls().iter().map(|c| c[0].clone()).collect();
    let del = calls.iter().position(|c| c == "delete").expect("a delete");
    let up = calls.iter().rposition(|c| c == "up").expect("an up");
    assert!(del < up, "delete, then up: {calls:?}");
    assert_eq!(d.detail("devpod_provider"), Some("other"));
}

#[tokio::test]
async fn an_interrupted_deploy_is_finished_by_the_next_one() {
    let e = TestEnv::with(
        "resume",
        serde_json::json!({"image": "sindri-test/does-not-exist:1"}),
        serde_json::json!({}),
    );
    let p = e.provider();
    let err = dispatch::deploy(&p, &e.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("an image that cannot be pulled");
    assert_eq!(err.kind(), ErrorKind::Platform, "{err}");
    assert!(
        err.message().contains("cannot pull"),
        "DevPod's own words are kept: {err}"
    );
    let owned = dispatch::list_owned(&p).await.expect("list_owned");
    let half = owned
        .iter()
        .find(|d| d.name == e.name)
        .expect("the half-made workspace is found");
    assert_eq!(half.state, sindri_core::DeploymentState::Creating);

    let fixed = make_spec(
        &e.name,
        e.project.path(),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    e.fake.clear_calls();
    let d = deploy(&p, &fixed).await;
    assert_eq!(d.state, sindri_core::DeploymentState::Ready);
    assert!(e.fake.calls_of("up")[0].contains(&"--recreate".to_string()));
    assert_eq!(out(&p, &d, "echo up").await, "up\n");
}

// ------------------------------------------------------------------ ownership

#[tokio::test]
async fn workspaces_sindri_did_not_make_are_never_touched() {
    let e = TestEnv::new("foreign");
    let other = tempfile::tempdir().expect("other project");
    std::fs::create_dir_all(other.path().join(".devcontainer")).expect("mkdir");
    std::fs::write(
        other.path().join(".devcontainer/devcontainer.json"),
        serde_json::json!({"image": IMAGE}).to_string(),
    )
    .expect("devcontainer");
    let made = e.fake.run(&[
        "up",
        &other.path().display().to_string(),
        "--id",
        &e.id(),
        "--ide",
        "none",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let theirs = container_of(&e.id()).expect("their container");

    let p = e.provider();
    let err = dispatch::deploy(&p, &e.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("devpod delete")));
    let d = conformance::never_deployed(&p, &e.spec);
    let s = dispatch::status(&p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Missing);
    assert!(s.message.is_some_and(|m| m.contains("did not create")));
    let err = dispatch::destroy(&p, &d, DestroyOptions { volumes: true })
        .await
        .expect_err("destroy refuses");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        !dispatch::list_owned(&p)
            .await
            .expect("list")
            .iter()
            .any(|o| o.name == e.name)
    );
    assert_eq!(
        container_of(&e.id()),
        Some(theirs),
        "their container is untouched"
    );
    assert!(e.fake.calls_of("delete").is_empty());
}

#[tokio::test]
async fn the_same_name_in_another_project_is_a_conflict() {
    let e = TestEnv::new("two-projects");
    let p = e.provider();
    let d = deploy(&p, &e.spec).await;
    let second = tempfile::tempdir().expect("second project");
    let spec2 = make_spec(
        &e.name,
        second.path(),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    assert_ne!(spec2.project, e.spec.project);
    let err = dispatch::deploy(&p, &spec2, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.message().contains(&e.spec.project),
        "names the owning project: {err}"
    );
    assert_eq!(out(&p, &d, "echo still").await, "still\n");
}

// ------------------------------------------------------------------ build, logs, gpu, destroy

#[tokio::test]
async fn a_build_uses_the_projects_dockerfile() {
    let e = TestEnv::with(
        "build",
        serde_json::json!({"image": null, "build": {"dockerfile": "docker/Dockerfile", "context": ".", "args": {"WHO": "devpod"}}}),
        serde_json::json!({}),
    );
    std::fs::create_dir_all(e.project.path().join("docker")).expect("mkdir");
    std::fs::write(
        e.project.path().join("docker/Dockerfile"),
        format!("FROM {IMAGE}\nARG WHO\nCOPY marker.txt /marker.txt\nRUN echo \"built by $WHO\" > /built.txt\n"),
    )
    .expect("Dockerfile");
    std::fs::write(e.project.path().join("marker.txt"), "from the context\n").expect("marker");
    let p = e.provider();
    let d = deploy(&p, &e.spec).await;
    assert_eq!(out(&p, &d, "cat /built.txt").await, "built by devpod\n");
    assert_eq!(
        out(&p, &d, "cat /marker.txt").await,
        "from the context\n",
        "the context is the project"
    );
}

#[tokio::test]
async fn logs_show_the_container_output_with_tail() {
    let e = TestEnv::new("logs");
    let p = e.provider();
    let d = deploy(&p, &e.spec).await;
    let mut all = SharedBuffer::default();
    dispatch::logs(&p, &d, LogOptions::default(), &mut all)
        .await
        .expect("logs");
    assert!(all.text().contains("Container started"), "{:?}", all.text());
    let mut none = SharedBuffer::default();
    dispatch::logs(
        &p,
        &d,
        LogOptions {
            follow: false,
            tail: Some(0),
        },
        &mut none,
    )
    .await
    .expect("logs");
    assert_eq!(none.text(), "");
    assert!(e.fake.calls_of("logs").iter().all(|c| c[1] == e.id()));
}

#[tokio::test]
async fn a_gpu_request_is_passed_on_and_a_missing_gpu_is_a_warning() {
    let e = TestEnv::with(
        "gpu",
        serde_json::json!({"resources": {"gpu": {"count": 1}}}),
        serde_json::json!({}),
    );
    let p = e.provider();
    let rec = Recorder::new();
    dispatch::deploy(&p, &e.spec, DeployOptions::default(), &rec)
        .await
        .expect("deploy");
    let warnings = rec.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("nvidia-smi") && w.contains("providers.devpod.options")),
        "{warnings:?}"
    );
    let dc = std::fs::read_to_string(
        e.project
            .path()
            .canonicalize()
            .expect("canon")
            .join(devcontainer_path(&e.name)),
    )
    .expect("devcontainer");
    let v: serde_json::Value = serde_json::from_str(&dc).expect("json");
    assert_eq!(v["hostRequirements"]["gpu"], true);
}

#[tokio::test]
async fn destroy_reports_the_volumes_devpods_docker_provider_leaves() {
    let e = TestEnv::with(
        "volumes",
        serde_json::json!({"volumes": [{"name": "data", "path": "/data"}]}),
        serde_json::json!({}),
    );
    let p = e.provider();
    let d = deploy(&p, &e.spec).await;
    out(&p, &d, "echo x > /data/x").await;
    let report = dispatch::destroy(&p, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy");
    let home = format!("{}-home", e.name);
    let data = format!("{}-data", e.name);
    for v in [&home, &data] {
        assert!(
            report
                .kept
                .iter()
                .any(|k| k.contains(v.as_str()) && k.contains("docker volume rm")),
            "{report:?}"
        );
    }
    assert!(
        report.removed.iter().any(|r| r.contains(&e.id())),
        "{report:?}"
    );
    let left = volumes_named(&format!("{}-", e.name));
    assert!(
        left.contains(&home) && left.contains(&data),
        "the report is true: {left:?}"
    );
    assert!(container_of(&e.id()).is_none());
    assert!(
        !e.project
            .path()
            .join(".sindri/devpod")
            .join(&e.name)
            .exists()
    );
}

#[tokio::test]
async fn a_missing_remote_file_is_not_found_and_exit_codes_pass_through() {
    let e = TestEnv::new("codes");
    let p = e.provider();
    let d = deploy(&p, &e.spec).await;
    let dir = tempfile::tempdir().expect("dir");
    let err = dispatch::copy_out(&p, &d, "/no/such/file", &dir.path().join("x"))
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let c = exec_capture(&p, &d, &ExecCommand::new(["sh", "-c", "exit 42"]), None)
        .await
        .expect("exec");
    assert_eq!(c.code, 42);
    let c = exec_capture(&p, &d, &ExecCommand::new(["no-such-program"]), None)
        .await
        .expect("exec");
    assert_eq!(c.code, 127, "{c:?}");
}

// ------------------------------------------------------------------ the fake itself

#[test]
fn the_fake_validates_arguments_as_devpod_does() {
    let fake = FakeDevpod::new();
    let o = fake.run(&["up", "--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "fatal unknown flag: --bogus\n"
    );
    let o = fake.run(&["status", "sindri-nope", "--output", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("workspace sindri-nope doesn't exist"));
    let o = fake.run(&["up", ".", "--id", "Bad_Name"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("smaller case letters"));
    let o = fake.run(&["up", ".", "--id", &"a".repeat(49)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than 48"));
    let o = fake.run(&["up", ".", "--ide", "emacs"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unrecognized ide 'emacs'"));
    let o = fake.run(&["ssh", "x", "--agent-forwarding=maybe"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid argument \"maybe\""));
    let o = fake.run(&["up", ".", "--provider", "aws"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("couldn't find provider with name aws"));
    let o = fake.run(&["list", "--output", "json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[]");
}

// ------------------------------------------------------------------ without devpod

#[tokio::test]
async fn without_devpod_check_fails_with_the_install_hint_and_deploy_touches_nothing() {
    let project = tempfile::tempdir().expect("project");
    let spec = make_spec(
        "dp-missing",
        project.path(),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    let p = DevpodProvider::with_binary(
        DevpodSettings::default(),
        project.path().join("no-devpod-here"),
    );
    assert_unavailable_everywhere(&p, &spec, project.path()).await;
}

async fn assert_unavailable_everywhere(
    p: &DevpodProvider,
    spec: &sindri_core::ResolvedSpec,
    project: &std::path::Path,
) {
    let checks = p.check().await;
    let cli = checks
        .iter()
        .find(|c| c.name == "devpod CLI")
        .expect("a devpod check");
    assert_eq!(cli.status, CheckStatus::Fail, "{cli:?}");
    assert!(
        cli.hint.as_deref().is_some_and(|h| h.contains(INSTALL_URL)),
        "{cli:?}"
    );
    let err = dispatch::deploy(p, spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("no devpod");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.hint().is_some_and(|h| h.contains(INSTALL_URL)));
    assert!(
        !project.join(".sindri").exists(),
        "deploy wrote nothing before failing"
    );
    let d = conformance::never_deployed(p, spec);
    let err = dispatch::status(p, &d).await.expect_err("no devpod");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let plan = dispatch::plan(p, spec, None)
        .await
        .expect("plan works without devpod");
    assert!(plan.steps.iter().any(|s| s.action == PlanAction::Create));
}

/// Runs the ignored test `name` of this binary in a child process with `env` set and
/// `remove` unset, so the lookup through `SINDRI_DEVPOD_BIN` and `PATH` is tested for
/// real without changing this process's environment.
fn run_child(name: &str, env: &[(&str, String)], remove: &[&str]) {
    let exe = std::env::current_exe().expect("test binary");
    let mut c = Command::new(exe);
    c.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    for k in remove {
        c.env_remove(k);
    }
    let o = c.output().expect("run the child test");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("1 passed"),
        "child test {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_registry_finds_devpod_through_sindri_devpod_bin_and_path_or_says_how_to_install_it() {
    let fake = FakeDevpod::new();
    run_child(
        "child_with_sindri_devpod_bin",
        &[
            ("SINDRI_DEVPOD_CHILD", "bin".into()),
            ("SINDRI_DEVPOD_BIN", fake.bin().display().to_string()),
        ],
        &[],
    );
    let empty = tempfile::tempdir().expect("empty PATH dir");
    run_child(
        "child_without_devpod",
        &[
            ("SINDRI_DEVPOD_CHILD", "none".into()),
            ("PATH", empty.path().display().to_string()),
        ],
        &["SINDRI_DEVPOD_BIN"],
    );
    let path = format!(
        "{}:{}",
        fake.bin().parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_child(
        "child_with_devpod_on_path",
        &[("SINDRI_DEVPOD_CHILD", "path".into()), ("PATH", path)],
        &["SINDRI_DEVPOD_BIN"],
    );
}

fn registry_provider() -> std::sync::Arc<dyn Provider> {
    sindri_providers::registry()
        .create(
            sindri_spec::ProviderKind::Devpod,
            &sindri_spec::ProvidersSpec::default(),
        )
        .expect("the registry builds the devpod provider")
}

/// Run by the test above in a child process; does nothing when run on its own.
#[tokio::test]
#[ignore = "run in a child process by the_registry_finds_devpod_…"]
async fn child_with_sindri_devpod_bin() {
    if std::env::var("SINDRI_DEVPOD_CHILD").as_deref() != Ok("bin") {
        return;
    }
    let checks = registry_provider().check().await;
    let cli = checks
        .iter()
        .find(|c| c.name == "devpod CLI")
        .expect("check");
    assert_eq!(cli.status, CheckStatus::Ok, "{cli:?}");
    assert!(cli.detail.contains("v0.6.15"), "{cli:?}");
}

/// Run by the test above in a child process; does nothing when run on its own.
#[tokio::test]
#[ignore = "run in a child process by the_registry_finds_devpod_…"]
async fn child_with_devpod_on_path() {
    if std::env::var("SINDRI_DEVPOD_CHILD").as_deref() != Ok("path") {
        return;
    }
    let checks = registry_provider().check().await;
    let cli = checks
        .iter()
        .find(|c| c.name == "devpod CLI")
        .expect("check");
    assert_eq!(cli.status, CheckStatus::Ok, "{cli:?}");
}

/// Run by the test above in a child process; does nothing when run on its own.
#[tokio::test]
#[ignore = "run in a child process by the_registry_finds_devpod_…"]
async fn child_without_devpod() {
    if std::env::var("SINDRI_DEVPOD_CHILD").as_deref() != Ok("none") {
        return;
    }
    let p = registry_provider();
    let checks = p.check().await;
    let cli = checks
        .iter()
        .find(|c| c.name == "devpod CLI")
        .expect("check");
    assert_eq!(cli.status, CheckStatus::Fail, "{cli:?}");
    assert!(cli.detail.contains("not on PATH"), "{cli:?}");
    assert!(cli.hint.as_deref().is_some_and(|h| h.contains(INSTALL_URL)));
    let project = tempfile::tempdir().expect("project");
    let spec = make_spec(
        "dp-none",
        project.path(),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    let err = dispatch::deploy(
        p.as_ref(),
        &spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("no devpod");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!project.path().join(".sindri").exists());
}
