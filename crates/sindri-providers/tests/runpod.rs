//! The RunPod provider against a fake REST API that checks every request (and every
//! answer it gives) against RunPod's published OpenAPI description, with pods whose
//! SSH is a real OpenSSH server started by each test on 127.0.0.1 (`/usr/sbin/sshd`;
//! the test fails saying how to install it when missing). The fake installs the key
//! the provider sends in `PUBLIC_KEY` as RunPod's images do, so exec and copies go
//! through the whole provider stack: API, key, SSH.
#![cfg(feature = "runpod")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;
#[path = "support/aws/sshd.rs"]
mod sshd;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sindri_core::{
    DeployOptions, DestroyOptions, ErrorKind, ExecCommand, Operation, PlanAction, Provider,
    ResolvedSecret, ResolvedSpec, SecretValue, StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, exec_capture};
use sindri_providers::http::RetryPolicy;
use sindri_providers::runpod::{RunpodConfig, RunpodProvider};
use sindri_providers::ssh::SshOptions;
use spec_server::runpod::{Runpod, TOKEN, price};
use spec_server::server::Fault;
use sshd::Sshd;

struct Env {
    rp: Runpod,
    sshd: Sshd,
    provider: Arc<dyn Provider>,
    spec: ResolvedSpec,
    dir: tempfile::TempDir,
    key_text: String,
}

impl Env {
    fn creates(&self) -> Vec<Value> {
        self.rp.state().creates.clone()
    }

    /// A provider for the same fake with another spec directory's settings.
    fn respec(&mut self, deployment_extra: &str, runpod: &str) {
        self.spec = load(
            self.dir.path(),
            &yaml(
                &self.spec.spec.name,
                self.dir.path(),
                deployment_extra,
                runpod,
            ),
        );
    }
}

fn yaml(name: &str, dir: &Path, deployment_extra: &str, runpod: &str) -> String {
    format!(
        "name: {name}\ndeployment:\n  provider: runpod\n  image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04\n  home: {}\n{deployment_extra}providers:\n  runpod:\n    cloud_type: SECURE\n{runpod}",
        dir.join("home").display()
    )
}

fn load(dir: &Path, text: &str) -> ResolvedSpec {
    let path = dir.join("sindri.yaml");
    std::fs::write(&path, text).expect("write sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    ResolvedSpec::new(spec, &path)
}

fn config(api: &str, user_home: &Path, state: &Path, ssh_user: &str) -> RunpodConfig {
    let (api, home) = (api.to_string(), user_home.to_string_lossy().into_owned());
    let mut c = RunpodConfig::from_lookup(|k| match k {
        "RUNPOD_API_URL" => Some(api.clone()),
        "RUNPOD_API_KEY" => Some(TOKEN.to_string()),
        "HOME" => Some(home.clone()),
        _ => None,
    })
    .expect("config");
    c.http.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    };
    c.ssh = Some(SshOptions::in_state_dir(state));
    c.ssh_user = ssh_user.to_string();
    c.poll_interval = Duration::from_millis(20);
    c.max_polls = 100;
    c
}

/// A fake RunPod whose pods' SSH is a fresh sshd, and a provider for a spec with
/// `deployment` and `providers.runpod` extras (YAML lines indented for their section).
async fn setup_with(name: &str, deployment_extra: &str, runpod: &str) -> Env {
    let server = Sshd::start();
    // Only the key the provider hands the pod gets in.
    let authorized = server.dir.path().join("authorized_keys");
    std::fs::write(&authorized, "").expect("empty authorized_keys");
    let rp = Runpod::start(server.port, Some(authorized)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let user_home = dir.path().join("user");
    std::fs::create_dir_all(user_home.join(".ssh")).expect("user ~/.ssh");
    std::fs::create_dir_all(dir.path().join("home")).expect("pod home");
    let key = user_home.join(".ssh/id_ed25519");
    std::fs::copy(&server.identity, &key).expect("copy the key");
    std::fs::copy(
        server.identity.with_extension("pub"),
        key.with_extension("pub"),
    )
    .expect("copy the public key");
    let key_text = std::fs::read_to_string(key.with_extension("pub"))
        .expect("read key")
        .trim()
        .to_string();
    let spec = load(
        dir.path(),
        &yaml(name, dir.path(), deployment_extra, runpod),
    );
    let state = dir.path().join("state");
    let provider: Arc<dyn Provider> = Arc::new(RunpodProvider::new(
        spec.spec.providers.runpod.clone().unwrap_or_default(),
        config(&rp.api(), &user_home, &state, &server.user),
    ));
    Env {
        rp,
        sshd: server,
        provider,
        spec,
        dir,
        key_text,
    }
}

const GPU: &str = "  resources:\n    gpu: {count: 1, type: l40s}\n";

async fn setup(name: &str) -> Env {
    setup_with(name, GPU, "").await
}

async fn deploy(env: &Env, progress: &Recorder) -> sindri_core::Result<sindri_core::Deployment> {
    dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        progress,
    )
    .await
}

fn ok<T>(r: sindri_core::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e} (hint: {:?})", e.hint()))
}

#[tokio::test]
async fn conformance_lifecycle() {
    let env = setup("rp-life").await;
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
    env.rp.server.assert_clean();
    assert_eq!(env.creates().len(), 1);
    assert!(env.rp.state().pods.is_empty(), "destroy terminated the pod");
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let env = setup("rp-idem").await;
    conformance::idempotent_deploy(env.provider.as_ref(), &env.spec).await;
    assert_eq!(env.creates().len(), 1, "the second deploy rented nothing");
    assert!(env.rp.state().updates.is_empty(), "nor changed the pod");
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let env = setup("rp-twice").await;
    conformance::destroy_twice(env.provider.as_ref(), &env.spec).await;
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn conformance_not_found() {
    let env = setup("rp-nf").await;
    conformance::not_found(env.provider.as_ref(), &env.spec).await;
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn conformance_list_owned() {
    let env = setup("rp-owned").await;
    conformance::list_owned(env.provider.as_ref(), &env.spec).await;
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let mut env = setup("rp-plan").await;
    env.spec.secrets.push(ResolvedSecret {
        name: "API_TOKEN".into(),
        value: SecretValue::new("plan-secret-3f9a"),
        mount: None,
    });
    conformance::plan_changes_nothing(env.provider.as_ref(), &env.spec).await;
    assert!(env.creates().is_empty());
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let env = setup("rp-unsup").await;
    conformance::unsupported_ops_refused(env.provider.as_ref(), &env.spec).await;
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn the_pod_is_created_from_the_spec_and_secrets_arrive_only_over_ssh() {
    let mut env = setup_with(
        "rp-body",
        "  ports: [8888]\n  env: {GREETING: hello there}\n  resources:\n    disk: 40GiB\n    gpu: {count: 2, type: l40s}\n",
        "    spot: true\n    container_disk: 30GiB\n    network_volume_id: nv-abc123\n",
    )
    .await;
    let mounted = env.dir.path().join("secret-file");
    env.spec.secrets = vec![
        ResolvedSecret {
            name: "API_TOKEN".into(),
            value: SecretValue::new("tok-71e2-very-secret"),
            mount: None,
        },
        ResolvedSecret {
            name: "CERT".into(),
            value: SecretValue::new("-----cert-9a8b-----"),
            mount: Some(mounted.to_string_lossy().into_owned()),
        },
    ];
    let progress = Recorder::new();
    let d = ok(deploy(&env, &progress).await, "deploy");
    let creates = env.creates();
    assert_eq!(creates.len(), 1);
    let b = &creates[0];
    assert_eq!(b["name"], format!("sindri-{}", env.spec.name()));
    assert_eq!(b["gpuTypeIds"], json!(["NVIDIA L40S"]));
    assert_eq!(b["gpuCount"], 2);
    assert_eq!(b["cloudType"], "SECURE");
    assert_eq!(b["interruptible"], true);
    assert_eq!(b["containerDiskInGb"], 30);
    assert_eq!(b["networkVolumeId"], "nv-abc123");
    assert!(
        b.get("volumeInGb").is_none(),
        "a network volume replaces the pod volume"
    );
    assert_eq!(
        b["imageName"],
        "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
    );
    assert_eq!(b["ports"], json!(["22/tcp", "8888/tcp"]));
    assert_eq!(b["env"]["PUBLIC_KEY"], env.key_text.as_str());
    assert_eq!(b["env"]["GREETING"], "hello there");
    assert_eq!(b["env"]["SINDRI_PROJECT"], env.spec.project.as_str());
    // Secret values never reach the API.
    for r in env.rp.server.requests() {
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("tok-71e2") && !text.contains("cert-9a8b"),
            "{} {} carries a secret",
            r.method,
            r.path
        );
    }
    let out = ok(
        exec_capture(
            env.provider.as_ref(),
            &d,
            &ExecCommand::shell("printf '%s|%s' \"$API_TOKEN\" \"$GREETING\""),
            None,
        )
        .await,
        "exec",
    );
    assert_eq!(out.out(), "tok-71e2-very-secret|hello there", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&mounted).expect("mounted secret"),
        "-----cert-9a8b-----"
    );
    let env_file = env.dir.path().join("home/.sindri/env");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&env_file)
            .expect("env file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the env file is private");
    // The endpoint for the published port, from RunPod's mapping.
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert!(
        s.endpoints
            .iter()
            .any(|e| e.name == "port 8888/tcp" && e.address.starts_with("tcp://127.0.0.1:")),
        "{:?}",
        s.endpoints
    );
    assert!(
        s.endpoints.iter().any(|e| e.name == "ssh"),
        "{:?}",
        s.endpoints
    );
    ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true }).await,
        "destroy",
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn capacity_falls_through_the_gpu_types_and_says_what_was_tried() {
    let env = setup_with(
        "rp-cap",
        "",
        "    gpu_types: [NVIDIA H100 80GB HBM3, NVIDIA L40S, NVIDIA A40]\n",
    )
    .await;
    env.rp.state().full_types.extend([
        "NVIDIA H100 80GB HBM3".to_string(),
        "NVIDIA L40S".to_string(),
    ]);
    let progress = Recorder::new();
    let d = ok(deploy(&env, &progress).await, "deploy");
    let tried: Vec<Value> = env
        .creates()
        .iter()
        .map(|b| b["gpuTypeIds"][0].clone())
        .collect();
    assert_eq!(
        tried,
        vec![
            json!("NVIDIA H100 80GB HBM3"),
            json!("NVIDIA L40S"),
            json!("NVIDIA A40")
        ]
    );
    let warnings = progress.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("NVIDIA H100 80GB HBM3")
            && warnings[0].contains("no longer any instances")
            && warnings[0].contains("trying NVIDIA L40S"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("NVIDIA L40S") && warnings[1].contains("trying NVIDIA A40"),
        "{warnings:?}"
    );
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert_eq!(s.cost_per_hour, Some(price(Some("NVIDIA A40"))));
    ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default()).await,
        "destroy",
    );

    env.rp.state().full_types.insert("NVIDIA A40".into());
    let e = deploy(&env, &Recorder::new())
        .await
        .expect_err("every type is full");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    for t in ["NVIDIA H100 80GB HBM3", "NVIDIA L40S", "NVIDIA A40"] {
        assert!(e.message().contains(t), "the error names {t}: {e}");
    }
    assert!(
        e.hint().unwrap_or("").contains("gpu_types"),
        "{:?}",
        e.hint()
    );
    assert!(env.rp.state().pods.is_empty(), "nothing is left behind");
    assert_eq!(
        env.creates().len(),
        6,
        "each type was asked once per deploy, never retried"
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn rate_limits_server_errors_and_timeouts_are_retried() {
    let env = setup("rp-retry").await;
    env.rp.server.inject(
        "ListPods",
        1,
        Fault::Status(
            429,
            json!({"error": "rate limited"}),
            vec![("retry-after".into(), "0".into())],
        ),
    );
    env.rp.server.inject(
        "GetPod",
        2,
        Fault::Status(502, json!({"error": "bad gateway"}), vec![]),
    );
    // A read that never answers in time is given up on and asked again.
    env.rp
        .state()
        .slow
        .push(("GetPod".into(), 1, Duration::from_secs(60)));
    let mut c = config_of(&env);
    c.http.request_timeout = Duration::from_secs(3);
    let provider = RunpodProvider::new(Default::default(), c);
    let d = ok(
        dispatch::deploy(
            &provider,
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await,
        "deploy through 429, 502 and a timeout",
    );
    assert_eq!(
        env.rp.server.count("ListPods"),
        2,
        "the 429 was retried once"
    );
    assert_eq!(env.creates().len(), 1);
    env.rp.server.inject("StopPod", 1, Fault::Drop);
    ok(
        dispatch::stop(&provider, &d).await,
        "stop after a dropped connection",
    );
    assert_eq!(
        env.rp.server.count("StopPod"),
        2,
        "stop is safe to repeat, so it was"
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn a_failed_create_is_not_repeated_and_the_next_deploy_resumes() {
    let env = setup("rp-resume").await;
    env.rp.server.inject(
        "CreatePod",
        1,
        Fault::Status(500, json!({"error": "internal error"}), vec![]),
    );
    let e = deploy(&env, &Recorder::new())
        .await
        .expect_err("500 on create");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(
        e.hint().unwrap_or("").contains("may or may not"),
        "{:?}",
        e.hint()
    );
    assert_eq!(
        env.rp.server.count("CreatePod"),
        1,
        "a create is never blindly repeated"
    );
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy again");
    assert_eq!(env.rp.state().pods.len(), 1);
    // A pod left by an interrupted deploy is found, not duplicated.
    let again = ok(deploy(&env, &Recorder::new()).await, "deploy a third time");
    assert_eq!(again.resource_id, d.resource_id);
    assert_eq!(
        env.rp.server.count("CreatePod"),
        2,
        "the failed create and the one that worked"
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn a_pod_runpod_no_longer_knows_is_already_gone_for_destroy() {
    // RunPod answers an id it does not know with 400 "Invalid Pod ID" (as its
    // description declares for DeletePod): a pod terminated between the look and
    // the delete is gone, not a failure.
    let env = setup("rp-gone").await;
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy");
    let id = d.resource_id.clone().unwrap_or_default();
    env.rp.server.inject(
        "DeletePod",
        1,
        Fault::Status(
            400,
            json!({"error": format!("Invalid Pod ID: {id}")}),
            vec![],
        ),
    );
    let r = ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default()).await,
        "destroy of a pod RunPod no longer knows",
    );
    assert!(r.removed.is_empty(), "nothing was left to remove: {r:?}");
    assert_eq!(env.rp.server.count("DeletePod"), 1, "a 400 is not retried");

    // A stop that meets the same answer is a clean "not found", not a bad request.
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy again");
    let id = d.resource_id.clone().unwrap_or_default();
    env.rp.server.inject(
        "StopPod",
        1,
        Fault::Status(
            400,
            json!({"error": format!("Invalid Pod ID: {id}")}),
            vec![],
        ),
    );
    let e = dispatch::stop(env.provider.as_ref(), &d)
        .await
        .expect_err("no such pod");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains(&format!("stop pod {id}")), "{e}");
    assert!(
        e.hint().is_some_and(|h| h.contains("no longer knows")),
        "{:?}",
        e.hint()
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn the_fake_rejects_what_the_published_api_rejects() {
    // The contract is not a rubber stamp: each of these requests breaks the
    // description and is answered and recorded as a violation.
    use spec_server::client::send;
    let rp = Runpod::start(22, None).await;
    let auth = format!("Bearer {TOKEN}");
    let h = [("Authorization", auth.as_str())];
    let url = &rp.server.url;
    let (status, _) = send(url, "GET", "/v1/podz", &h, "").await;
    assert_eq!(status, 404, "a wrong path");
    let (status, _) = send(url, "GET", "/v1/pods?includeMachines=true", &h, "").await;
    assert_eq!(status, 400, "an unknown query parameter");
    let (status, _) = send(
        url,
        "POST",
        "/v1/pods",
        &h,
        r#"{"imageNmae": "ubuntu:24.04", "gpuCount": 1}"#,
    )
    .await;
    assert_eq!(status, 400, "a misspelt field");
    let (status, _) = send(url, "POST", "/v1/pods", &h, r#"{"gpuCount": "two"}"#).await;
    assert_eq!(status, 400, "a wrong type");
    let (status, _) = send(url, "DELETE", "/v1/pods/abc/stop", &h, "").await;
    assert_eq!(status, 405, "a wrong method");
    let (status, _) = send(url, "GET", "/v1/pods", &[], "").await;
    assert_eq!(status, 401, "no credential");
    let seen = rp.server.take_violations();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    for (v, want) in seen.iter().zip([
        "no path `/podz`",
        "unknown query parameter `includeMachines`",
        "imageNmae",
        "gpuCount",
        "has no DELETE",
        "no credential",
    ]) {
        assert!(v.contains(want), "{v} should mention {want}");
    }

    // And the fake's own answers are held to the description, statuses included.
    use spec_server::server::Contract;
    let c = spec_server::runpod::contract();
    assert!(
        c.check_reply("DeletePod", 404, "application/json", b"{}")[0]
            .contains("status 404 is not an answer DeletePod declares"),
        "DeletePod declares 204, 400 and 401 only"
    );
    assert!(
        c.check_reply("DeletePod", 400, "application/json", b"{}")
            .is_empty()
    );
    assert!(
        c.check_reply("StartPod", 503, "application/json", b"{}")
            .is_empty(),
        "any service may be unavailable"
    );
}

#[tokio::test]
async fn cost_per_hour_comes_from_runpod_for_resources_list() {
    let env = setup("rp-cost").await;
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy");
    // What `sindri resources list` does: list_owned, then status of each for its cost.
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    let found = owned
        .iter()
        .find(|o| o.name == env.spec.name())
        .expect("listed");
    let s = ok(
        dispatch::status(env.provider.as_ref(), found).await,
        "status",
    );
    assert_eq!(s.state, StatusState::Running);
    assert_eq!(s.cost_per_hour, Some(price(Some("NVIDIA L40S"))));
    // The data center is in the pod's machine, which RunPod sends only when asked.
    assert_eq!(found.detail("data_center"), Some("EU-RO-1"));
    assert_eq!(
        s.details.get("data_center").map(String::as_str),
        Some("EU-RO-1")
    );
    for r in env.rp.server.requests() {
        if r.op == "GetPod" || r.op == "ListPods" {
            assert!(
                r.query.contains(&("includeMachine".into(), "true".into())),
                "{} {:?}",
                r.op,
                r.query
            );
        }
    }
    ok(dispatch::stop(env.provider.as_ref(), &d).await, "stop");
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert_eq!(s.state, StatusState::Stopped);
    assert_eq!(s.cost_per_hour, None, "a stopped pod's GPU does not bill");
    assert!(s.message.unwrap_or_default().contains("volume still does"));
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn spec_changes_update_in_place_or_replace_the_pod() {
    let mut env = setup("rp-change").await;
    let first = ok(deploy(&env, &Recorder::new()).await, "deploy");
    env.respec(
        "  env: {NEW_VAR: '1'}\n  resources:\n    gpu: {count: 1, type: l40s}\n",
        "",
    );
    let plan = ok(
        dispatch::plan(env.provider.as_ref(), &env.spec, Some(&first)).await,
        "plan",
    );
    assert_eq!(plan.steps[0].action, PlanAction::Update, "{:?}", plan.steps);
    let p2 = env.provider.clone();
    let second = ok(
        dispatch::deploy(
            p2.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await,
        "redeploy",
    );
    assert_eq!(
        second.resource_id, first.resource_id,
        "an env change keeps the pod"
    );
    let updates = env.rp.state().updates.clone();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["env"]["NEW_VAR"], "1");
    assert!(
        updates[0].get("gpuCount").is_none(),
        "only what PATCH takes is sent"
    );
    let out = ok(
        exec_capture(
            p2.as_ref(),
            &second,
            &ExecCommand::shell("echo $NEW_VAR"),
            None,
        )
        .await,
        "exec",
    );
    assert_eq!(out.out(), "1\n");

    // A rotated secret travels over SSH; the pod is not updated (which would restart it).
    env.spec.secrets = vec![ResolvedSecret {
        name: "ROTATED".into(),
        value: SecretValue::new("second-value-0c4e"),
        mount: None,
    }];
    let rotated = ok(
        dispatch::deploy(
            p2.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await,
        "deploy a new secret",
    );
    assert_eq!(rotated.resource_id, first.resource_id);
    assert_eq!(
        env.rp.state().updates.len(),
        1,
        "no second update for a secret"
    );
    let out = ok(
        exec_capture(
            p2.as_ref(),
            &rotated,
            &ExecCommand::shell("echo $ROTATED"),
            None,
        )
        .await,
        "exec",
    );
    assert_eq!(out.out(), "second-value-0c4e\n");
    env.spec.secrets.clear();

    env.respec("  resources:\n    gpu: {count: 2, type: l40s}\n", "");
    let plan = ok(
        dispatch::plan(p2.as_ref(), &env.spec, Some(&second)).await,
        "plan",
    );
    assert_eq!(
        plan.steps[0].action,
        PlanAction::Replace,
        "{:?}",
        plan.steps
    );
    let progress = Recorder::new();
    let third = ok(
        dispatch::deploy(p2.as_ref(), &env.spec, DeployOptions::default(), &progress).await,
        "redeploy",
    );
    assert_ne!(
        third.resource_id, first.resource_id,
        "a GPU change needs a new pod"
    );
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("pod volume is lost")),
        "{:?}",
        progress.warnings()
    );
    assert_eq!(
        env.rp.state().terminated,
        vec![first.resource_id.clone().unwrap_or_default()]
    );
    env.rp.server.assert_clean();
}

fn config_of(env: &Env) -> RunpodConfig {
    config(
        &env.rp.api(),
        &env.dir.path().join("user"),
        &env.dir.path().join("state"),
        &env.sshd.user,
    )
}

#[tokio::test]
async fn pods_without_sindris_markers_are_never_touched() {
    let env = setup("rp-foreign").await;
    let name = env.spec.name().to_string();
    let (same_name, other_project) = {
        let mut st = env.rp.state();
        (
            st.add_foreign(&format!("sindri-{name}"), json!({"SOMEONE": "else"})),
            st.add_foreign(
                &format!("sindri-{name}"),
                json!({"SINDRI_MANAGED": "true", "SINDRI_ENVIRONMENT": name, "SINDRI_PROJECT": "000000000000", "SINDRI_SPEC_HASH": "x"}),
            ),
        )
    };
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy");
    assert_ne!(d.resource_id.as_deref(), Some(same_name.as_str()));
    assert_ne!(d.resource_id.as_deref(), Some(other_project.as_str()));
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    assert_eq!(
        owned.len(),
        2,
        "the other project's pod is listed as its own: {owned:?}"
    );
    assert!(owned.iter().any(|o| o.project == "000000000000"));
    assert!(
        !owned
            .iter()
            .any(|o| o.resource_id.as_deref() == Some(same_name.as_str()))
    );
    ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true }).await,
        "destroy",
    );
    let left: Vec<String> = env.rp.state().pods.keys().cloned().collect();
    assert_eq!(
        left.len(),
        2,
        "only sindri's pod of this project was terminated"
    );
    assert!(left.contains(&same_name) && left.contains(&other_project));
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn start_without_free_gpus_is_a_capacity_error_with_a_way_out() {
    let env = setup("rp-start").await;
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy");
    ok(dispatch::stop(env.provider.as_ref(), &d).await, "stop");
    env.rp.state().full_on_start = true;
    let e = dispatch::start(env.provider.as_ref(), &d)
        .await
        .expect_err("no GPUs free");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(
        e.hint().unwrap_or("").contains("sindri destroy"),
        "{:?}",
        e.hint()
    );
    assert!(
        dispatch::suspend(env.provider.as_ref(), &d)
            .await
            .is_err_and(|e| e.kind() == ErrorKind::Unsupported(Operation::Suspend))
    );
    env.rp.server.assert_clean();
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let env = setup("rp-auth").await;
    let mut c = config_of(&env);
    c.api_key = Some(SecretValue::new("rpa_WRONG_0123456789"));
    let p = RunpodProvider::new(Default::default(), c);
    let e = dispatch::list_owned(&p).await.expect_err("wrong key");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!format!("{e} {:?}", e.hint()).contains("rpa_WRONG"), "{e}");
    assert!(e.hint().unwrap_or("").contains("RUNPOD_API_KEY"));
    let mut c = config_of(&env);
    c.api_key = None;
    let p = RunpodProvider::new(Default::default(), c);
    let e = dispatch::list_owned(&p).await.expect_err("no key");
    assert_eq!(e.kind(), ErrorKind::Auth);
    let checks = p.check().await;
    assert_eq!(
        checks[0].status,
        sindri_core::CheckStatus::Fail,
        "{checks:?}"
    );
}

#[tokio::test]
async fn the_registry_builds_runpod_without_io() {
    let r = sindri_providers::registry();
    assert!(r.kinds().contains(&sindri_spec::ProviderKind::Runpod));
    let p = r
        .create(sindri_spec::ProviderKind::Runpod, &Default::default())
        .expect("built from settings alone");
    assert!(p.capabilities().gpu && p.capabilities().start_stop);
}

#[tokio::test]
async fn a_restarted_pod_with_new_host_keys_is_reached_again() {
    let mut env = setup("rp-rekey").await;
    let d = ok(deploy(&env, &Recorder::new()).await, "deploy");
    let out = ok(
        exec_capture(
            env.provider.as_ref(),
            &d,
            &ExecCommand::new(["echo", "one"]),
            None,
        )
        .await,
        "exec",
    );
    assert_eq!(out.out(), "one\n");
    ok(dispatch::stop(env.provider.as_ref(), &d).await, "stop");
    // The restarted container has new host keys (RunPod's images make them at start)
    // behind the same address and port.
    let port = env.sshd.port;
    let client_key = env.dir.path().join("user/.ssh/id_ed25519");
    env.sshd.stop();
    env.sshd = Sshd::start_on(port, Some(&client_key));
    ok(dispatch::start(env.provider.as_ref(), &d).await, "start");
    let out = ok(
        exec_capture(
            env.provider.as_ref(),
            &d,
            &ExecCommand::new(["echo", "two"]),
            None,
        )
        .await,
        "exec after a restart with new host keys",
    );
    assert_eq!(out.out(), "two\n");
    env.rp.server.assert_clean();
}
