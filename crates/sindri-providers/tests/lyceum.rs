//! The Lyceum provider against a strict fake of Lyceum's VM API (requests checked
//! against what is known of the API, answers built from and checked against the
//! recorded real responses in shared/api-specs/lyceum), with VMs whose SSH is a real
//! OpenSSH server started by each test on 127.0.0.1 (`/usr/sbin/sshd`; the test fails
//! saying how to install it when missing). The fake installs `user_public_key` as
//! Lyceum does and reports the address as `host:port`, so exec and copies go through
//! the whole provider stack.
#![cfg(feature = "lyceum")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;
#[path = "support/aws/sshd.rs"]
mod sshd;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sindri_core::{
    DeployOptions, Deployment, DestroyOptions, ErrorKind, ExecCommand, Operation, PlanAction,
    Provider, ResolvedSecret, ResolvedSpec, SecretValue, StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, exec_capture};
use sindri_providers::http::RetryPolicy;
use sindri_providers::lyceum::{LyceumConfig, LyceumProvider, STOP_NOTE};
use sindri_providers::ssh::SshOptions;
use sindri_spec::ProviderKind;
use spec_server::lyceum::{AnyRequestFails, Lyceum, TOKEN};
use spec_server::server::{Fault, TestServer};
use sshd::Sshd;

struct Env {
    ly: Lyceum,
    sshd: Sshd,
    provider: Arc<dyn Provider>,
    spec: ResolvedSpec,
    dir: tempfile::TempDir,
    key_text: String,
}

fn yaml(name: &str, dir: &Path, deployment_extra: &str, lyceum: &str) -> String {
    format!(
        "name: {name}\ndeployment:\n  provider: lyceum\n  home: {}\n{deployment_extra}providers:\n  lyceum:\n    ssh_public_key: keys/id_ed25519.pub\n{lyceum}",
        dir.join("home").display()
    )
}

fn load(dir: &Path, text: &str) -> ResolvedSpec {
    let path = dir.join("sindri.yaml");
    std::fs::write(&path, text).expect("write sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    ResolvedSpec::new(spec, &path)
}

fn config(api: &str, dir: &Path, ssh_user: &str) -> LyceumConfig {
    let (api, home) = (
        api.to_string(),
        dir.join("user").to_string_lossy().into_owned(),
    );
    let mut c = LyceumConfig::from_lookup(|k| match k {
        "LYCEUM_API_URL" => Some(api.clone()),
        "LYCEUM_API_KEY" => Some(TOKEN.to_string()),
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
    c.ssh = Some(SshOptions::in_state_dir(&dir.join("state")));
    c.ssh_user = ssh_user.to_string();
    c.env_dir = dir.join("home/.sindri").to_string_lossy().into_owned();
    c.poll_interval = Duration::from_millis(20);
    c.max_polls = 100;
    c
}

const GPU: &str = "  resources:\n    gpu: {count: 1, type: l40s}\n";

async fn setup_with(name: &str, deployment_extra: &str, lyceum: &str) -> Env {
    let server = Sshd::start();
    let authorized = server.dir.path().join("authorized_keys");
    std::fs::write(&authorized, "").expect("empty authorized_keys");
    let ly = Lyceum::start(&format!("127.0.0.1:{}", server.port), Some(authorized)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["keys", "home", "user"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    let key = dir.path().join("keys/id_ed25519");
    std::fs::copy(&server.identity, &key).expect("copy the key");
    std::fs::copy(
        server.identity.with_extension("pub"),
        key.with_extension("pub"),
    )
    .expect("copy the public key");
    let key_text = std::fs::read_to_string(key.with_extension("pub"))
        .expect("read")
        .trim()
        .to_string();
    let spec = load(
        dir.path(),
        &yaml(name, dir.path(), deployment_extra, lyceum),
    );
    let provider: Arc<dyn Provider> = Arc::new(LyceumProvider::new(
        spec.spec.providers.lyceum.clone().unwrap_or_default(),
        config(&ly.api(), dir.path(), &server.user),
    ));
    Env {
        ly,
        sshd: server,
        provider,
        spec,
        dir,
        key_text,
    }
}

async fn setup(name: &str) -> Env {
    setup_with(name, GPU, "").await
}

impl Env {
    fn respec(&mut self, deployment_extra: &str, lyceum: &str) {
        self.spec = load(
            self.dir.path(),
            &yaml(
                &self.spec.spec.name,
                self.dir.path(),
                deployment_extra,
                lyceum,
            ),
        );
    }

    async fn deploy(&self, progress: &Recorder) -> sindri_core::Result<Deployment> {
        dispatch::deploy(
            self.provider.as_ref(),
            &self.spec,
            DeployOptions::default(),
            progress,
        )
        .await
    }
}

fn ok<T>(r: sindri_core::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e} (hint: {:?})", e.hint()))
}

#[tokio::test]
async fn conformance_lifecycle() {
    let env = setup("ly-life").await;
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
    env.ly.server.assert_clean();
    assert_eq!(env.ly.state().creates.len(), 1);
    assert!(env.ly.state().live().is_empty(), "destroy ended the VM");
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let env = setup("ly-idem").await;
    conformance::idempotent_deploy(env.provider.as_ref(), &env.spec).await;
    assert_eq!(
        env.ly.state().creates.len(),
        1,
        "the second deploy rented nothing"
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let env = setup("ly-twice").await;
    conformance::destroy_twice(env.provider.as_ref(), &env.spec).await;
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn conformance_not_found() {
    let env = setup("ly-nf").await;
    conformance::not_found(env.provider.as_ref(), &env.spec).await;
    env.ly.server.assert_clean();
}

/// The conformance suite's `list_owned` contract: Lyceum keeps nothing but the display
/// name, which holds no hash (docs/adr/0008), so a record rebuilt from the platform
/// says "unknown" (empty).
#[tokio::test]
async fn conformance_list_owned() {
    let env = setup("ly-owned").await;
    conformance::list_owned_keeping(env.provider.as_ref(), &env.spec, false).await;
    env.ly.server.assert_clean();
}

/// A record rebuilt from the VM's name alone: the next plan delivers env and secrets
/// again rather than trust a hash it does not have.
#[tokio::test]
async fn a_record_rebuilt_from_the_name_plans_to_deliver_again() {
    let env = setup("ly-rebuilt").await;
    let d = ok(env.deploy(&Recorder::new()).await, "deploy");
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    let found = owned
        .iter()
        .find(|o| o.name == d.name && o.project == d.project)
        .unwrap_or_else(|| panic!("list_owned misses the VM: {owned:?}"));
    assert_eq!(
        found.detail("display_name"),
        Some(format!("sindri-ly-rebuilt-{}", env.spec.project).as_str())
    );
    let plan = ok(
        dispatch::plan(env.provider.as_ref(), &env.spec, Some(found)).await,
        "plan from the rebuilt record",
    );
    assert_eq!(plan.steps[0].action, PlanAction::Update, "{:?}", plan.steps);
    assert!(
        plan.steps[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("not recorded on this machine")),
        "{:?}",
        plan.steps
    );
    ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true }).await,
        "destroy",
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let mut env = setup("ly-plan").await;
    env.spec.secrets.push(ResolvedSecret {
        name: "API_TOKEN".into(),
        value: SecretValue::new("plan-secret-77ab"),
        mount: None,
    });
    conformance::plan_changes_nothing(env.provider.as_ref(), &env.spec).await;
    assert!(env.ly.state().creates.is_empty());
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let env = setup("ly-unsup").await;
    conformance::unsupported_ops_refused(env.provider.as_ref(), &env.spec).await;
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn stop_start_and_suspend_are_refused_before_any_request() {
    let server = TestServer::start(
        Some(Arc::new(AnyRequestFails)),
        Arc::new(spec_server::server::FnFake(|_| async {
            spec_server::server::Reply::Empty(500)
        })),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let p = LyceumProvider::new(
        Default::default(),
        config(
            &format!("{}/api/v2/external", server.url),
            dir.path(),
            "lyceum",
        ),
    );
    let mut d = Deployment::creating(
        "train",
        ProviderKind::Lyceum,
        "0123456789ab",
        "0011223344556677",
    );
    d.resource_id = Some("9918b72c1dce41a6875abaf5d5ab64e9".into());
    for (op, r) in [
        (Operation::Stop, dispatch::stop(&p, &d).await),
        (Operation::Start, dispatch::start(&p, &d).await),
        (Operation::Suspend, dispatch::suspend(&p, &d).await),
    ] {
        let e = r.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported(op), "{e}");
        assert_eq!(
            e.hint(),
            Some(STOP_NOTE),
            "{op}: the refusal says destroy ends billing"
        );
    }
    assert!(STOP_NOTE.contains("`sindri destroy` ends billing"));
    assert!(
        server.requests().is_empty(),
        "nothing was sent: {:?}",
        server.requests()
    );
    server.assert_clean();
}

#[tokio::test]
async fn the_vm_request_carries_key_hardware_spot_and_identity() {
    let mut env = setup_with(
        "ly-body",
        "  image: ubuntu:24.04\n  env: {GREETING: hi there}\n  resources:\n    gpu: {count: 2, type: H100}\n",
        "    spot: true\n",
    )
    .await;
    env.spec.secrets.push(ResolvedSecret {
        name: "API_TOKEN".into(),
        value: SecretValue::new("tok-55c1-secret"),
        mount: None,
    });
    let progress = Recorder::new();
    let d = ok(env.deploy(&progress).await, "deploy");
    let body = env.ly.state().creates[0].clone();
    assert_eq!(
        body,
        json!({
            "user_public_key": env.key_text,
            "hardware_profile": "h100",
            "instance_specs": {"gpu_count": 2},
            "instance_type": "spot",
            "display_name": format!("sindri-{}-{}", env.spec.name(), env.spec.project),
        })
    );
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("deployment.image is not used")),
        "{:?}",
        progress.warnings()
    );
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("bills until destroyed")),
        "{:?}",
        progress.warnings()
    );
    let lists: Vec<_> = env
        .ly
        .server
        .requests()
        .into_iter()
        .filter(|r| r.op == "list")
        .collect();
    assert!(!lists.is_empty());
    for r in &lists {
        assert!(
            r.query
                .contains(&("include_terminated".into(), "false".into())),
            "{:?}",
            r.query
        );
    }
    for r in env.ly.server.requests() {
        assert!(
            !String::from_utf8_lossy(&r.body).contains("tok-55c1"),
            "a secret reached the API"
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
    assert_eq!(out.out(), "tok-55c1-secret|hi there");
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn availability_is_checked_before_renting() {
    let mut env = setup("ly-avail").await;
    env.ly.state().set_free("l40s", "on-demand", &[]);
    let e = env
        .deploy(&Recorder::new())
        .await
        .expect_err("no l40s free");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(e.message().contains("on-demand l40s x1"), "{e}");
    assert!(
        e.message().contains("free now:") && e.message().contains("on-demand a100 x1/2/8"),
        "the error lists what is free: {e}"
    );
    assert_eq!(env.ly.server.count("create"), 0, "nothing was asked for");

    env.respec(GPU, "    spot: true\n");
    let e = env
        .deploy(&Recorder::new())
        .await
        .expect_err("no spot l40s at all");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("does not offer spot l40s"), "{e}");

    env.respec("  resources:\n    gpu: {count: 3, type: l40s}\n", "");
    let e = env.deploy(&Recorder::new()).await.expect_err("3 GPUs");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert_eq!(env.ly.server.count("create"), 0);
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn could_not_be_provisioned_is_a_capacity_error_and_not_retried() {
    let env = setup("ly-full").await;
    env.ly.state().full = true;
    let e = env.deploy(&Recorder::new()).await.expect_err("full");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(e.message().contains("could not be provisioned"), "{e}");
    assert_eq!(env.ly.server.count("create"), 1, "capacity is not retried");
    assert!(env.ly.state().live().is_empty());
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn ready_without_an_address_means_keep_waiting() {
    let env = setup("ly-noip").await;
    env.ly.state().life = vec![
        ("provisioning", false),
        ("ready", false),
        ("ready", false),
        ("ready", false),
        ("ready", true),
    ];
    let d = ok(
        dispatch::deploy(
            env.provider.as_ref(),
            &env.spec,
            DeployOptions { wait: false },
            &Recorder::new(),
        )
        .await,
        "deploy without waiting",
    );
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert_eq!(s.state, StatusState::Starting);
    assert_eq!(s.cost_per_hour, None, "not billing before ready");
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert_eq!(
        s.state,
        StatusState::Starting,
        "ready without an IP is not running"
    );
    assert!(
        s.message
            .clone()
            .unwrap_or_default()
            .contains("no IP address yet"),
        "{s:?}"
    );
    let d = ok(
        env.deploy(&Recorder::new()).await,
        "deploy waits for the address",
    );
    let s = ok(dispatch::status(env.provider.as_ref(), &d).await, "status");
    assert_eq!(s.state, StatusState::Running);
    let ssh = format!("ssh://{}@127.0.0.1:{}", env.sshd.user, env.sshd.port);
    assert!(
        s.endpoints.iter().any(|e| e.address == ssh),
        "host:port was split: {:?}",
        s.endpoints
    );
    assert_eq!(
        env.ly.state().creates.len(),
        1,
        "the second deploy found the VM"
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn status_says_it_bills_until_destroyed_and_gives_the_cost() {
    let env = setup("ly-cost").await;
    ok(env.deploy(&Recorder::new()).await, "deploy");
    // What `sindri resources list` does: list_owned, then status of each for its cost.
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    assert_eq!(owned.len(), 1, "{owned:?}");
    let s = ok(
        dispatch::status(env.provider.as_ref(), &owned[0]).await,
        "status",
    );
    assert_eq!(s.state, StatusState::Running);
    assert_eq!(
        s.cost_per_hour,
        Some(1.190016),
        "on-demand.l40s.1x from /pricing"
    );
    let m = s.message.unwrap_or_default();
    assert!(
        m.contains("bills until destroyed") && m.contains("`sindri destroy` ends billing"),
        "{m}"
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn bare_addresses_use_port_22_and_the_lyceum_user() {
    let env = setup("ly-bare").await;
    let id = {
        let mut st = env.ly.state();
        st.address = "203.0.113.10".into();
        let name = format!("sindri-{}-{}", env.spec.name(), env.spec.project);
        st.add(&name, "ready", "l40s")
    };
    let p = LyceumProvider::new(Default::default(), {
        let mut c = config(&env.ly.api(), env.dir.path(), "lyceum");
        c.ssh_user = LyceumConfig::from_lookup(|_| None)
            .expect("defaults")
            .ssh_user;
        c
    });
    let owned = ok(dispatch::list_owned(&p).await, "list_owned");
    assert_eq!(owned[0].resource_id.as_deref(), Some(id.as_str()));
    let s = ok(dispatch::status(&p, &owned[0]).await, "status");
    assert!(
        s.endpoints
            .iter()
            .any(|e| e.address == "ssh://lyceum@203.0.113.10:22"),
        "{:?}",
        s.endpoints
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn other_projects_strangers_and_terminated_vms_are_left_alone() {
    let env = setup("ly-owners").await;
    let name = env.spec.name().to_string();
    // Named in the older form, with a spec hash: still recognised as sindri's.
    let (terminated, other_project, stranger) = {
        let mut st = env.ly.state();
        (
            st.add(
                &format!("sindri-{name}-{}-ffffffffffffffff", env.spec.project),
                "terminated",
                "l40s",
            ),
            st.add(
                &format!("sindri-{name}-000000000000-ffffffffffffffff"),
                "ready",
                "l40s",
            ),
            st.add("sky-cluster-abc", "ready", "h100"),
        )
    };
    let d = ok(env.deploy(&Recorder::new()).await, "deploy");
    for old in [&terminated, &other_project, &stranger] {
        assert_ne!(
            d.resource_id.as_ref(),
            Some(old),
            "only a live VM of this project is adopted"
        );
    }
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    let mut projects: Vec<&str> = owned.iter().map(|o| o.project.as_str()).collect();
    projects.sort_unstable();
    assert_eq!(
        projects,
        vec!["000000000000", env.spec.project.as_str()],
        "{owned:?}"
    );
    ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default()).await,
        "destroy",
    );
    let st = env.ly.state();
    assert_eq!(
        st.deleted,
        vec![d.resource_id.clone().unwrap_or_default()],
        "only ours was deleted"
    );
    assert_eq!(
        st.vm(&other_project).map(|v| v.status.as_str()),
        Some("ready")
    );
    assert_eq!(st.vm(&stranger).map(|v| v.status.as_str()), Some("ready"));
    drop(st);
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn rate_limits_server_errors_and_timeouts_are_retried() {
    let env = setup("ly-retry").await;
    env.ly.server.inject(
        "list",
        1,
        Fault::Status(
            429,
            json!({"detail": "Too many requests"}),
            vec![("retry-after".into(), "0".into())],
        ),
    );
    env.ly.server.inject(
        "status",
        2,
        Fault::Status(500, json!({"detail": "Internal server error"}), vec![]),
    );
    // A read that never answers in time is given up on and asked again.
    env.ly
        .state()
        .slow
        .push(("status".into(), 1, Duration::from_secs(60)));
    let mut c = config(&env.ly.api(), env.dir.path(), &env.sshd.user);
    c.http.request_timeout = Duration::from_secs(3);
    let provider = LyceumProvider::new(
        env.spec.spec.providers.lyceum.clone().unwrap_or_default(),
        c,
    );
    let d = ok(
        dispatch::deploy(
            &provider,
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await,
        "deploy through 429, 500 and a timeout",
    );
    assert_eq!(env.ly.server.count("list"), 2, "the 429 was retried once");
    env.ly.server.inject(
        "delete",
        1,
        Fault::Status(503, json!({"detail": "Service unavailable"}), vec![]),
    );
    let r = ok(
        dispatch::destroy(&provider, &d, DestroyOptions::default()).await,
        "destroy after a 503",
    );
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert_eq!(env.ly.server.count("delete"), 2, "the delete was repeated");
    assert!(env.ly.state().live().is_empty());
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn could_not_be_provisioned_on_a_delete_is_retried_not_taken_for_capacity() {
    // Lyceum's capacity words mean capacity on create only; a delete answered with
    // them is a server error like any other, and a delete is safe to repeat.
    let env = setup("ly-del500").await;
    let d = ok(env.deploy(&Recorder::new()).await, "deploy");
    env.ly.server.inject(
        "delete",
        1,
        Fault::Status(
            500,
            spec_server::lyceum::fixture("error_500_capacity.json"),
            vec![],
        ),
    );
    let r = ok(
        dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions::default()).await,
        "destroy through a 500",
    );
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert_eq!(env.ly.server.count("delete"), 2, "the delete was repeated");
    assert!(env.ly.state().live().is_empty(), "billing ended");
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn a_vm_that_fails_is_deleted_so_it_cannot_bill() {
    let env = setup("ly-failed").await;
    env.ly.state().life = vec![("provisioning", false), ("failed", false)];
    let e = env
        .deploy(&Recorder::new())
        .await
        .expect_err("the VM failed");
    assert_eq!(e.kind(), ErrorKind::Platform, "{e}");
    assert!(e.message().contains("failed"), "{e}");
    let st = env.ly.state();
    assert_eq!(st.deleted.len(), 1, "the failed VM was deleted");
    drop(st);
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn hardware_changes_replace_the_vm_and_other_changes_do_not() {
    let mut env = setup("ly-change").await;
    let first = ok(env.deploy(&Recorder::new()).await, "deploy");
    env.respec(
        "  env: {NEW_VAR: '2'}\n  resources:\n    gpu: {count: 1, type: l40s}\n",
        "",
    );
    let plan = ok(
        dispatch::plan(env.provider.as_ref(), &env.spec, Some(&first)).await,
        "plan",
    );
    assert_eq!(plan.steps[0].action, PlanAction::Update, "{:?}", plan.steps);
    let second = ok(env.deploy(&Recorder::new()).await, "redeploy");
    assert_eq!(
        second.resource_id, first.resource_id,
        "an env change keeps the VM"
    );
    let out = ok(
        exec_capture(
            env.provider.as_ref(),
            &second,
            &ExecCommand::shell("echo $NEW_VAR"),
            None,
        )
        .await,
        "exec",
    );
    assert_eq!(out.out(), "2\n", "env was delivered again");
    let owned = ok(
        dispatch::list_owned(env.provider.as_ref()).await,
        "list_owned",
    );
    assert_eq!(
        owned
            .iter()
            .map(|o| (o.name.as_str(), o.resource_id.clone()))
            .collect::<Vec<_>>(),
        vec![("ly-change", first.resource_id.clone())],
        "the updated VM is still found by its name"
    );
    let plan = ok(
        dispatch::plan(env.provider.as_ref(), &env.spec, Some(&second)).await,
        "plan",
    );
    assert!(plan.is_noop(), "{:?}", plan.steps);

    env.respec("  resources:\n    gpu: {count: 2, type: l40s}\n", "");
    let plan = ok(
        dispatch::plan(env.provider.as_ref(), &env.spec, Some(&second)).await,
        "plan",
    );
    assert_eq!(
        plan.steps[0].action,
        PlanAction::Replace,
        "{:?}",
        plan.steps
    );
    let progress = Recorder::new();
    let third = ok(env.deploy(&progress).await, "redeploy");
    assert_ne!(third.resource_id, first.resource_id);
    assert!(
        progress
            .warnings()
            .iter()
            .any(|w| w.contains("disk is lost")),
        "{:?}",
        progress.warnings()
    );
    assert_eq!(
        env.ly.state().deleted,
        vec![first.resource_id.clone().unwrap_or_default()]
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn keys_come_from_env_and_a_wrong_one_is_an_auth_error() {
    let env = setup("ly-auth").await;
    let mut c = config(&env.ly.api(), env.dir.path(), "lyceum");
    c.api_key = Some(SecretValue::new("lk_WRONG_key_0099"));
    let p = LyceumProvider::new(Default::default(), c);
    let e = dispatch::list_owned(&p).await.expect_err("wrong key");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!format!("{e} {:?}", e.hint()).contains("lk_WRONG"));
    let checks = env.provider.check().await;
    let status_of = |name: &str| checks.iter().find(|c| c.name == name).map(|c| c.status);
    assert_eq!(
        status_of("lyceum api key"),
        Some(sindri_core::CheckStatus::Ok),
        "{checks:?}"
    );
    assert_eq!(
        status_of("lyceum api"),
        Some(sindri_core::CheckStatus::Ok),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c.detail.contains("credit balance 500.00")),
        "{checks:?}"
    );
    env.ly.server.assert_clean();
}

#[tokio::test]
async fn the_fake_rejects_what_lyceum_rejects() {
    // The contract is not a rubber stamp: each of these requests breaks what is known
    // of Lyceum's API and is answered and recorded as a violation.
    use spec_server::client::send;
    use spec_server::lyceum::BASE;
    let ly = Lyceum::start("127.0.0.1:22", None).await;
    let auth = format!("Bearer {TOKEN}");
    let h = [("Authorization", auth.as_str())];
    let url = &ly.server.url;
    let path = |p: &str| format!("{BASE}{p}");
    let (status, _) = send(url, "GET", &path("/vm/list"), &h, "").await;
    assert_eq!(status, 404, "a wrong path");
    let (status, _) = send(url, "GET", &path("/vms/list?include_deleted=true"), &h, "").await;
    assert_eq!(status, 400, "an unknown query parameter");
    let (status, _) = send(
        url,
        "POST",
        &path("/vms/create"),
        &h,
        r#"{"user_public_key": "ssh-ed25519 K", "hardware_profle": "l40s", "instance_specs": {"gpu_count": 1}}"#,
    )
    .await;
    assert_eq!(status, 400, "a misspelt field");
    let (status, _) = send(
        url,
        "POST",
        &path("/vms/create"),
        &h,
        r#"{"user_public_key": "ssh-ed25519 K", "hardware_profile": "l40s", "instance_specs": {"gpu_count": "1"}}"#,
    )
    .await;
    assert_eq!(status, 400, "a wrong type");
    let (status, _) = send(url, "GET", &path("/vms/create"), &h, "").await;
    assert_eq!(status, 405, "a wrong method");
    let (status, _) = send(url, "GET", &path("/pricing"), &[], "").await;
    assert_eq!(status, 401, "no credential");
    let seen = ly.server.take_violations();
    assert_eq!(seen.len(), 6, "{seen:#?}");
    for (v, want) in seen.iter().zip([
        "no Lyceum endpoint `/vm/list`",
        "unexpected query parameter `include_deleted=true`",
        "unknown field `hardware_profle`",
        "gpu_count` must be an integer",
        "takes POST, not GET",
        "no `Authorization: Bearer`",
    ]) {
        assert!(v.contains(want), "{v} should mention {want}");
    }

    // And the fake's answers are held to the recorded shapes.
    use spec_server::server::Contract;
    let c = spec_server::lyceum::LyceumContract;
    let mut vm = spec_server::lyceum::fixture("vm_status_ready_bare_ip.json");
    assert!(
        c.check_reply("status", 200, "application/json", vm.to_string().as_bytes())
            .is_empty()
    );
    vm["ip_adress"] = json!("203.0.113.10");
    let problems = c.check_reply("status", 200, "application/json", vm.to_string().as_bytes());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ip_adress: a key the recordings never show")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn the_registry_builds_lyceum_without_io() {
    let r = sindri_providers::registry();
    assert!(r.kinds().contains(&ProviderKind::Lyceum));
    let p = r
        .create(ProviderKind::Lyceum, &Default::default())
        .expect("built from settings alone");
    let caps = p.capabilities();
    assert!(!caps.start_stop && !caps.suspend && caps.exec && caps.copy && caps.gpu);
    assert_eq!(caps.note(Operation::Stop), Some(STOP_NOTE));
}
