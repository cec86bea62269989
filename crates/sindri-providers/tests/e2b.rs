//! The E2B provider against fakes of E2B's API and of envd that check every request
//! against the published descriptions (openapi.yml, envd.yaml, process.proto,
//! filesystem.proto): the conformance suite, exec and connect over Connect RPC, file
//! copies, the sandbox it creates, and faults.
#![cfg(feature = "e2b")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sindri_core::{
    DeployOptions, DestroyOptions, ErrorKind, ExecCommand, ExecIo, Operation, PlanAction, Provider,
    ResolvedSecret, ResolvedSpec, SecretValue, StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, SharedBuffer, exec_capture};
use sindri_providers::e2b::{E2bConfig, E2bProvider};
use sindri_providers::http::RetryPolicy;
use spec_server::e2b::{API_KEY, E2b};
use spec_server::server::Fault;

struct Env {
    e2b: E2b,
    provider: Arc<dyn Provider>,
    spec: ResolvedSpec,
    dir: tempfile::TempDir,
}

fn config(e2b: &E2b, key: &str) -> E2bConfig {
    let mut c = E2bConfig::from_lookup(|k| match k {
        "E2B_API_KEY" => Some(key.to_string()),
        "E2B_API_URL" => Some(e2b.api.url.clone()),
        "E2B_SANDBOX_URL" => Some(e2b.envd.url.clone()),
        _ => None,
    })
    .expect("config");
    c.http.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    };
    c
}

fn load(dir: &Path, yaml: &str) -> ResolvedSpec {
    let path = dir.join("sindri.yaml");
    std::fs::write(&path, yaml).expect("write sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    ResolvedSpec::new(spec, &path)
}

/// A spec whose home is a directory of this test (the fake envd works on this
/// machine's file system), with extra `deployment` and `providers.e2b` lines.
async fn setup_with(name: &str, deployment: &str, e2b: &str) -> Env {
    let fake = E2b::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let yaml = format!(
        "name: {name}\ndeployment:\n  provider: e2b\n  image: ubuntu:24.04\n  home: {}\n{deployment}providers:\n  e2b:\n    template: base\n{e2b}",
        home.display()
    );
    let spec = load(dir.path(), &yaml);
    let settings = spec.spec.providers.e2b.clone().unwrap_or_default();
    let provider: Arc<dyn Provider> = Arc::new(E2bProvider::new(settings, config(&fake, API_KEY)));
    Env {
        e2b: fake,
        provider,
        spec,
        dir,
    }
}

async fn setup(name: &str) -> Env {
    setup_with(name, "", "").await
}

async fn deploy(env: &Env) -> sindri_core::Deployment {
    dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("deploy failed: {e} (hint: {:?})", e.hint()))
}

#[tokio::test]
async fn conformance_lifecycle() {
    let env = setup("e2b-life").await;
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
    assert!(env.e2b.state().sandboxes.is_empty());
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let env = setup("e2b-idem").await;
    conformance::idempotent_deploy(env.provider.as_ref(), &env.spec).await;
    assert_eq!(
        env.e2b.state().creates.len(),
        1,
        "the second deploy created nothing"
    );
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let env = setup("e2b-destroy").await;
    conformance::destroy_twice(env.provider.as_ref(), &env.spec).await;
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_not_found() {
    let env = setup("e2b-nf").await;
    conformance::not_found(env.provider.as_ref(), &env.spec).await;
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let env = setup("e2b-unsup").await;
    conformance::unsupported_ops_refused(env.provider.as_ref(), &env.spec).await;
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_list_owned() {
    let env = setup("e2b-owned").await;
    conformance::list_owned(env.provider.as_ref(), &env.spec).await;
    env.e2b.assert_clean();
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let env = setup("e2b-plan").await;
    conformance::plan_changes_nothing(env.provider.as_ref(), &env.spec).await;
    assert!(env.e2b.state().creates.is_empty());
    env.e2b.assert_clean();
}

#[tokio::test]
async fn a_gpu_request_is_refused_before_anything_is_sent() {
    let env = setup_with(
        "e2b-gpu",
        "  resources: {gpu: {count: 1, type: a100}}\n",
        "",
    )
    .await;
    for r in [
        dispatch::plan(env.provider.as_ref(), &env.spec, None)
            .await
            .map(|_| ()),
        dispatch::deploy(
            env.provider.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .map(|_| ()),
    ] {
        let e = r.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("offers no GPUs"), "{e}");
    }
    assert!(env.e2b.api.requests().is_empty(), "no request reached E2B");
    assert!(env.e2b.envd.requests().is_empty());
}

#[tokio::test]
async fn stop_is_refused_with_advice_to_suspend() {
    let env = setup("e2b-stop").await;
    let d = deploy(&env).await;
    let before = env.e2b.api.requests().len();
    let e = dispatch::stop(env.provider.as_ref(), &d)
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Unsupported(Operation::Stop));
    assert!(
        e.hint().unwrap().contains("sindri suspend"),
        "{:?}",
        e.hint()
    );
    assert_eq!(
        env.e2b.api.requests().len(),
        before,
        "refused before any request"
    );
}

#[tokio::test]
async fn the_sandbox_carries_template_timeout_metadata_env_and_secrets() {
    let env = setup_with(
        "e2b-shape",
        "  env: {MODE: dev}\n  ports: [\"3000\"]\n",
        "    timeout: 2h\n    auto_pause: true\n",
    )
    .await;
    let mount = env.dir.path().join("home/.config/token");
    let mut spec = env.spec.clone();
    spec.secrets = vec![
        ResolvedSecret {
            name: "API_TOKEN".into(),
            value: SecretValue::new("tok-123"),
            mount: None,
        },
        ResolvedSecret {
            name: "FILE_SECRET".into(),
            value: SecretValue::new("file-456"),
            mount: Some(mount.display().to_string()),
        },
    ];
    let d = dispatch::deploy(
        env.provider.as_ref(),
        &spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("deploy");
    let create = env.e2b.state().creates[0].clone();
    assert_eq!(create["templateID"], json!("base"));
    assert_eq!(create["timeout"], json!(7200));
    assert_eq!(create["autoPause"], json!(true));
    assert_eq!(create["metadata"]["sindri.managed"], json!("true"));
    assert_eq!(create["metadata"]["sindri.environment"], json!("e2b-shape"));
    assert_eq!(create["metadata"]["sindri.project"], json!(spec.project));
    assert_eq!(
        create["metadata"]["sindri.spec-hash"],
        json!(spec.spec_hash())
    );
    assert_eq!(
        create["envVars"],
        json!({"MODE": "dev", "API_TOKEN": "tok-123"})
    );
    assert!(
        !create.to_string().contains("file-456"),
        "file secrets are not in the environment"
    );

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::read_to_string(&mount).unwrap(), "file-456");
    assert_eq!(
        std::fs::metadata(&mount).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::shell("echo $MODE $API_TOKEN"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out.out(),
        "dev tok-123\n",
        "the sandbox's environment reaches commands"
    );

    let s = dispatch::status(env.provider.as_ref(), &d).await.unwrap();
    let id = d.resource_id.clone().unwrap();
    assert_eq!(s.endpoints[0].address, format!("https://3000-{id}.e2b.app"));
    assert_eq!(s.details.get("template").map(String::as_str), Some("base"));
    env.e2b.assert_clean();
}

#[tokio::test]
async fn connect_opens_a_pty_passes_input_and_resizes() {
    let env = setup("e2b-pty").await;
    let d = deploy(&env).await;
    let (tx, rx) = tokio::sync::watch::channel((100u16, 30u16));
    let out = SharedBuffer::default();
    let (mut input_w, input_r) = tokio::io::duplex(64);
    let io = ExecIo {
        stdin: Some(Box::new(input_r)),
        stdout: Box::new(out.clone()),
        stderr: Box::new(tokio::io::sink()),
        tty: Some(rx),
    };
    let p = env.provider.clone();
    let d2 = d.clone();
    let session = tokio::spawn(async move { dispatch::connect(p.as_ref(), &d2, io).await });
    use tokio::io::AsyncWriteExt;
    input_w.write_all(b"echo typed-in\n").await.unwrap();
    // Wait until the shell has answered, then resize and end it.
    for _ in 0..100 {
        if out.text().contains("typed-in") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send((132, 43)).unwrap();
    for _ in 0..100 {
        if !env.e2b.state().resizes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    input_w.write_all(b"exit 5\n").await.unwrap();
    let code = session.await.unwrap().expect("connect");
    assert_eq!(code, 5, "the shell's exit code");
    assert!(out.text().contains("typed-in"), "{}", out.text());
    let resizes = env.e2b.state().resizes.clone();
    assert_eq!(
        resizes.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        vec![(132, 43)]
    );
    let start = env
        .e2b
        .envd
        .requests()
        .into_iter()
        .find(|r| r.op == "/process.Process/Start")
        .expect("a Start");
    let msg: serde_json::Value = serde_json::from_slice(&start.body[5..]).unwrap();
    assert_eq!(
        msg["pty"],
        json!({"size": {"cols": 100, "rows": 30}}),
        "the PTY starts at the terminal's size"
    );
    env.e2b.assert_clean();
}

#[tokio::test]
async fn large_input_streams_through_in_pieces_and_comes_back_intact() {
    let env = setup("e2b-stdin").await;
    let d = deploy(&env).await;
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["cat"]),
        Some(&input),
    )
    .await
    .unwrap();
    assert_eq!(out.code, 0);
    assert!(out.stdout == input, "binary input survives the round trip");
    assert!(env.e2b.state().inputs >= 7, "sent in 32 KiB pieces");
    env.e2b.assert_clean();
}

#[tokio::test]
async fn copies_keep_the_executable_bit_and_missing_paths_are_not_found() {
    let env = setup("e2b-copy").await;
    let d = deploy(&env).await;
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::fs::write(src.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let remote = format!("{}/proj", env.spec.spec.deployment.home);
    let stats = dispatch::copy_in(env.provider.as_ref(), &d, &src, &remote)
        .await
        .unwrap();
    assert_eq!((stats.files, stats.bytes), (1, 19));
    assert!(
        Path::new(&remote).join("empty-dir").is_dir(),
        "empty directories are created"
    );
    let out = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new([format!("{remote}/run.sh")]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out.out(), "ran\n", "the copied script is executable");
    let back = env.dir.path().join("back");
    dispatch::copy_out(env.provider.as_ref(), &d, &remote, &back)
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(back.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let e = dispatch::copy_out(env.provider.as_ref(), &d, "/nonexistent/x", &back.join("x"))
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    env.e2b.assert_clean();
}

#[tokio::test]
async fn suspend_pauses_and_start_resumes() {
    let env = setup("e2b-pause").await;
    let d = deploy(&env).await;
    dispatch::suspend(env.provider.as_ref(), &d).await.unwrap();
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Suspended).await;
    dispatch::suspend(env.provider.as_ref(), &d)
        .await
        .expect("pausing a paused sandbox is fine");
    let e = exec_capture(env.provider.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .expect_err("paused");
    assert!(e.hint().unwrap().contains("sindri start"), "{:?}", e.hint());
    let plan = dispatch::plan(env.provider.as_ref(), &env.spec, Some(&d))
        .await
        .unwrap();
    assert!(
        plan.steps.iter().any(|s| s.action == PlanAction::Update),
        "deploy would resume it: {:?}",
        plan.steps
    );
    dispatch::start(env.provider.as_ref(), &d).await.unwrap();
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Running).await;
    let connect = env
        .e2b
        .api
        .requests()
        .into_iter()
        .find(|r| r.op == "POST /sandboxes/{sandboxID}/connect")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&connect.body).unwrap();
    assert_eq!(
        body,
        json!({"timeout": 3600}),
        "resumed with the deployed lifetime"
    );
    let mut logs = SharedBuffer::default();
    dispatch::logs(
        env.provider.as_ref(),
        &d,
        sindri_core::LogOptions {
            follow: false,
            tail: Some(10),
        },
        &mut logs,
    )
    .await
    .unwrap();
    let text = logs.text();
    let (created, resumed) = (
        text.find("sandbox created").unwrap(),
        text.find("sandbox resumed").unwrap(),
    );
    assert!(created < resumed, "logs are in time order: {text}");
    env.e2b.assert_clean();
}

#[tokio::test]
async fn a_changed_spec_replaces_the_sandbox_and_says_so() {
    let env = setup("e2b-replace").await;
    let first = deploy(&env).await;
    let changed = load(
        env.dir.path(),
        &format!(
            "name: e2b-replace\ndeployment:\n  provider: e2b\n  image: ubuntu:24.04\n  home: {}\n  env: {{V: \"two\"}}\nproviders:\n  e2b:\n    template: base\n",
            env.spec.spec.deployment.home
        ),
    );
    let plan = dispatch::plan(env.provider.as_ref(), &changed, Some(&first))
        .await
        .unwrap();
    assert_eq!(plan.steps[0].action, PlanAction::Replace);
    let rec = Recorder::new();
    let second = dispatch::deploy(
        env.provider.as_ref(),
        &changed,
        DeployOptions::default(),
        &rec,
    )
    .await
    .unwrap();
    assert_ne!(first.resource_id, second.resource_id);
    assert!(
        rec.warnings()
            .iter()
            .any(|w| w.contains("its files are lost")),
        "{:?}",
        rec.warnings()
    );
    assert_eq!(
        env.e2b.state().sandboxes.len(),
        1,
        "the old sandbox was killed"
    );
    env.e2b.assert_clean();
}

#[tokio::test]
async fn list_owned_follows_pagination() {
    let env = setup("e2b-page").await;
    env.e2b.state().page_size = 1;
    let mut ids = Vec::new();
    for name in ["e2b-page-a", "e2b-page-b", "e2b-page-c"] {
        let spec = load(
            env.dir.path(),
            &format!(
                "name: {name}\ndeployment:\n  provider: e2b\nproviders:\n  e2b:\n    template: base\n"
            ),
        );
        ids.push(
            dispatch::deploy(
                env.provider.as_ref(),
                &spec,
                DeployOptions::default(),
                &Recorder::new(),
            )
            .await
            .unwrap()
            .resource_id,
        );
    }
    let owned = dispatch::list_owned(env.provider.as_ref()).await.unwrap();
    assert_eq!(owned.len(), 3, "{owned:?}");
    for id in ids {
        assert!(owned.iter().any(|o| o.resource_id == id));
    }
    assert!(env.e2b.api.count("GET /v2/sandboxes") >= 3);
    env.e2b.assert_clean();
}

#[tokio::test]
async fn faults_are_retried_or_reported_cleanly() {
    let env = setup("e2b-faults").await;
    env.e2b.api.inject(
        "GET /v2/sandboxes",
        1,
        Fault::Status(
            429,
            json!({"code": 429, "message": "rate limited"}),
            vec![("Retry-After".into(), "1".into())],
        ),
    );
    env.e2b
        .api
        .inject("GET /sandboxes/{sandboxID}", 1, Fault::Drop);
    env.e2b.api.inject(
        "GET /sandboxes/{sandboxID}",
        1,
        Fault::Status(502, json!({"code": 502, "message": "bad gateway"}), vec![]),
    );
    let d = deploy(&env).await;
    assert!(d.resource_id.is_some());

    env.e2b.state().no_capacity = true;
    let other = load(
        env.dir.path(),
        "name: e2b-full\ndeployment:\n  provider: e2b\nproviders:\n  e2b:\n    template: base\n",
    );
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &other,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("no capacity");
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert_eq!(
        env.e2b.api.count("POST /sandboxes"),
        2,
        "a create is not repeated"
    );

    env.e2b.state().no_capacity = false;
    let missing = load(
        env.dir.path(),
        "name: e2b-tpl\ndeployment:\n  provider: e2b\nproviders:\n  e2b:\n    template: no-such-template\n",
    );
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &missing,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("unknown template");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.hint().unwrap().contains("e2b template build"),
        "{:?}",
        e.hint()
    );
    env.e2b.assert_clean();
}

#[tokio::test]
async fn a_connection_cut_in_the_middle_of_a_command_is_a_clean_error_naming_it() {
    let env = setup("e2b-cut").await;
    let d = deploy(&env).await;
    // The event stream carries the start and the first line; then the connection goes.
    env.e2b
        .envd
        .inject("/process.Process/Start", 1, Fault::Truncate(2));
    let out = SharedBuffer::default();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(out.clone()),
        stderr: Box::new(tokio::io::sink()),
        tty: None,
    };
    let e = dispatch::exec(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["sh", "-c", "echo first; sleep 0.3; echo second"]),
        io,
    )
    .await
    .expect_err("the stream was cut");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        e.message().contains("run `sh` in sandbox")
            && e.message().contains("dropped before the command ended"),
        "{e}"
    );
    assert!(
        e.hint().is_some_and(|h| h.contains("sindri status")),
        "{:?}",
        e.hint()
    );
    assert_eq!(
        out.text(),
        "first\n",
        "what arrived before the cut was passed on"
    );
    assert_eq!(
        env.e2b.envd.count("/process.Process/Start"),
        1,
        "a command is never started twice"
    );
    let again = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["echo", "again"]),
        None,
    )
    .await
    .expect("the sandbox still answers");
    assert_eq!(again.out(), "again\n");
    env.e2b.assert_clean();
}

#[tokio::test]
async fn envd_calls_that_fail_are_repeated_where_safe_and_named_where_not() {
    let env = setup("e2b-envd-faults").await;
    let d = deploy(&env).await;
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("sub/big.bin"), &big).unwrap();
    let remote = format!("{}/proj", env.spec.spec.deployment.home);

    // Unary calls that only read or create what may exist are sent again after a
    // failed answer from the proxy in front of envd or a dropped connection; an
    // upload writes the same bytes again.
    let proxy_error = || Fault::Status(502, json!({"message": "bad gateway"}), vec![]);
    env.e2b
        .envd
        .inject("/filesystem.Filesystem/MakeDir", 1, proxy_error());
    env.e2b.envd.inject("POST /files", 1, Fault::Drop);
    let stats = dispatch::copy_in(env.provider.as_ref(), &d, &src, &remote)
        .await
        .expect("copy in through a 502 and a dropped upload");
    assert_eq!((stats.files, stats.bytes), (2, 100_006));
    assert_eq!(std::fs::read(format!("{remote}/sub/big.bin")).unwrap(), big);

    env.e2b
        .envd
        .inject("/filesystem.Filesystem/Stat", 1, Fault::Drop);
    env.e2b
        .envd
        .inject("/filesystem.Filesystem/ListDir", 1, proxy_error());
    // A download cut off half way is started again.
    env.e2b.envd.inject("GET /files", 1, Fault::Truncate(0));
    let back = env.dir.path().join("back");
    dispatch::copy_out(env.provider.as_ref(), &d, &remote, &back)
        .await
        .expect("copy out through a dropped stat, a 502 and a cut download");
    assert_eq!(std::fs::read(back.join("sub/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "alpha\n"
    );

    // A download cut off every time fails naming the file, and leaves nothing behind.
    env.e2b.envd.inject("GET /files", 100, Fault::Truncate(0));
    let target = env.dir.path().join("single.bin");
    let e = dispatch::copy_out(
        env.provider.as_ref(),
        &d,
        &format!("{remote}/sub/big.bin"),
        &target,
    )
    .await
    .expect_err("every download was cut");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        e.message().contains("download") && e.message().contains("big.bin"),
        "{e}"
    );
    assert!(!target.exists(), "no partial file is left at the target");
    assert!(
        std::fs::read_dir(env.dir.path()).unwrap().all(|f| !f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial")),
        "nor beside it"
    );

    // Input is not sent twice: a failed SendInput ends the command with an error
    // naming it, instead of leaving it waiting for input forever.
    env.e2b
        .envd
        .inject("/process.Process/SendInput", 1, proxy_error());
    let e = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["cat"]),
        Some(b"data"),
    )
    .await
    .expect_err("the input was lost");
    assert!(
        e.message().contains("run `cat` in sandbox")
            && e.message().contains("input could not be delivered"),
        "{e}"
    );
    assert_eq!(
        env.e2b.envd.count("/process.Process/SendInput"),
        1,
        "the input was not sent twice"
    );
    env.e2b.assert_clean();
}

#[tokio::test]
async fn a_plain_500_is_retried_for_reads_and_deletes_and_reported_for_a_create() {
    let env = setup("e2b-500").await;
    let boom = || {
        Fault::Status(
            500,
            json!({"code": 500, "message": "internal error"}),
            vec![],
        )
    };
    env.e2b.api.inject("POST /sandboxes", 1, boom());
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("500 on create");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        e.message()
            .contains("create a sandbox from template `base`"),
        "{e}"
    );
    assert!(
        e.hint()
            .is_some_and(|h| h.contains("may or may not have taken effect")),
        "{:?}",
        e.hint()
    );
    assert_eq!(
        env.e2b.api.count("POST /sandboxes"),
        1,
        "a create is not repeated"
    );

    env.e2b.api.inject("GET /sandboxes/{sandboxID}", 1, boom());
    let d = deploy(&env).await;
    env.e2b
        .api
        .inject("DELETE /sandboxes/{sandboxID}", 1, boom());
    let r = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default())
        .await
        .expect("a kill is safe to repeat");
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert_eq!(env.e2b.api.count("DELETE /sandboxes/{sandboxID}"), 2);
    assert!(env.e2b.state().sandboxes.is_empty());
    env.e2b.assert_clean();
}

#[tokio::test]
async fn an_old_envd_is_told_the_user_on_every_call() {
    // envd before 0.4 runs nothing as a default user: E2B's SDKs name `user` in a
    // Basic Authorization header, and in `username` for file transfers.
    let env = setup("e2b-old-envd").await;
    env.e2b.state().envd_version = "0.3.9".into();
    let d = deploy(&env).await;
    let out = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["echo", "hi"]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out.out(), "hi\n");
    let file = env.dir.path().join("note.txt");
    std::fs::write(&file, "note\n").unwrap();
    let remote = format!("{}/note.txt", env.spec.spec.deployment.home);
    dispatch::copy_in(env.provider.as_ref(), &d, &file, &remote)
        .await
        .unwrap();
    dispatch::copy_out(
        env.provider.as_ref(),
        &d,
        &remote,
        &env.dir.path().join("back.txt"),
    )
    .await
    .unwrap();
    {
        let st = env.e2b.state();
        assert!(
            !st.users.is_empty() && st.users.iter().all(|u| u == "user"),
            "{:?}",
            st.users
        );
        assert_eq!(
            st.file_users,
            vec!["user", "user"],
            "upload and download name the user"
        );
    }
    let envd_calls = env.e2b.envd.requests().len();
    let with_user = env
        .e2b
        .envd
        .requests()
        .iter()
        .filter(|r| {
            r.headers.get("authorization").is_some() || r.query.iter().any(|(k, _)| k == "username")
        })
        .count();
    assert_eq!(with_user, envd_calls, "every envd call names the user");

    // A current envd is left to pick its default user.
    let new = setup("e2b-new-envd").await;
    let d = deploy(&new).await;
    exec_capture(new.provider.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .unwrap();
    assert!(new.e2b.state().users.is_empty());
    env.e2b.assert_clean();
    new.e2b.assert_clean();
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_does_not_show_it() {
    let fake = E2b::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = load(dir.path(), "name: e2b-auth\ndeployment:\n  provider: e2b\n");
    let p = E2bProvider::new(Default::default(), config(&fake, "e2b_wrong_key_0001"));
    let e = dispatch::deploy(&p, &spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("401");
    assert_eq!(e.kind(), ErrorKind::Auth);
    let text = format!("{e} {:?} {e:?}", e.hint());
    assert!(
        text.contains("Invalid API key: ***"),
        "the server's echo is redacted: {text}"
    );
    assert!(!text.contains("e2b_wrong_key_0001"), "{text}");
    assert!(text.contains("E2B_API_KEY"));
}

#[tokio::test]
async fn destroy_kills_every_sandbox_of_the_environment_and_only_those() {
    let env = setup("e2b-kill").await;
    let d = deploy(&env).await;
    let other = load(
        env.dir.path(),
        "name: e2b-other\ndeployment:\n  provider: e2b\nproviders:\n  e2b:\n    template: base\n",
    );
    let o = dispatch::deploy(
        env.provider.as_ref(),
        &other,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let r = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        r.removed,
        vec![format!("sandbox {}", d.resource_id.clone().unwrap())]
    );
    let st = env.e2b.state();
    assert!(
        st.sandboxes.contains_key(o.resource_id.as_deref().unwrap()),
        "another environment's sandbox survives"
    );
    drop(st);
    env.e2b.assert_clean();
}

#[tokio::test]
async fn the_fakes_reject_what_the_published_descriptions_reject() {
    let fake = E2b::start().await;
    let api = &fake.api.url;
    let (s, _) = raw(
        api,
        "POST",
        "/sandboxes",
        &[("X-API-Key", API_KEY)],
        "application/json",
        br#"{"timeout": 10}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400, "templateID is required");
    let (s, _) = raw(
        api,
        "POST",
        "/sandboxes",
        &[],
        "application/json",
        br#"{"templateID": "base"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 401, "no API key");
    let (s, _) = raw(
        api,
        "GET",
        "/v2/sandboxes?state=sleeping",
        &[("X-API-Key", API_KEY)],
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(s, 400, "state is an enum");
    let envd = &fake.envd.url;
    let (s, _) = raw(
        envd,
        "POST",
        "/process.Process/SendInput",
        &[("Connect-Protocol-Version", "1")],
        "application/json",
        br#"{"process": {"pid": "seven"}}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400, "pid is a uint32");
    let (s, _) = raw(
        envd,
        "POST",
        "/process.Process/SendInput",
        &[("Connect-Protocol-Version", "1")],
        "application/json",
        br#"{"process": {"pid": 1, "tag": "x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400, "a oneof takes one field");
    let (s, _) = raw(
        envd,
        "POST",
        "/process.Process/Start",
        &[],
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, 415, "streaming calls are enveloped");
    let (s, _) = raw(
        envd,
        "POST",
        "/process.Process/Nope",
        &[],
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, 404, "unknown RPC");
    let api = fake.api.take_violations();
    let envd = fake.envd.take_violations();
    assert_eq!(api.len() + envd.len(), 7, "{api:?} {envd:?}");
}

async fn raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    ct: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !ct.is_empty() {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn a_failed_create_never_echoes_secret_values() {
    let env = setup("e2b-echo").await;
    let mut spec = env.spec.clone();
    spec.secrets = vec![ResolvedSecret {
        name: "API_TOKEN".into(),
        value: SecretValue::new("tok-echoed-back"),
        mount: None,
    }];
    env.e2b.api.inject(
        "POST /sandboxes",
        1,
        Fault::Status(
            400,
            json!({"code": 400, "message": "invalid envVars: API_TOKEN=tok-echoed-back"}),
            vec![],
        ),
    );
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("rejected");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let text = format!("{e} {:?}", e.hint());
    assert!(text.contains("API_TOKEN=***"), "{text}");
    assert!(!text.contains("tok-echoed-back"), "{text}");
}
