//! The Fly provider against a fake Machines API that checks every request against
//! the published OpenAPI description: the conformance suite, the machine it creates,
//! region failover, `/wait` timeouts, retries, dropped connections and secrets.
#![cfg(feature = "fly")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sindri_core::{
    DeployOptions, DestroyOptions, ErrorKind, ExecCommand, ExecIo, Operation, PlanAction, Provider,
    ResolvedSecret, ResolvedSpec, SecretValue, StatusState, dispatch,
};
use sindri_providers::conformance::{self, Recorder, exec_capture};
use sindri_providers::fly::{FlyConfig, FlyProvider};
use sindri_providers::http::RetryPolicy;
use spec_server::fly::{Fly, TOKEN};
use spec_server::server::Fault;

struct Env {
    fly: Fly,
    provider: Arc<dyn Provider>,
    spec: ResolvedSpec,
    dir: tempfile::TempDir,
}

impl Env {
    fn machine_ops(&self) -> usize {
        self.fly.server.count("Machines_create")
    }
}

fn config(url: &str, flyctl: Option<&Path>) -> FlyConfig {
    let mut c = FlyConfig::from_lookup(|k| match k {
        "FLY_API_HOSTNAME" => Some(url.to_string()),
        "FLY_API_TOKEN" => Some(TOKEN.to_string()),
        _ => None,
    })
    .expect("config");
    c.http.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    };
    c.wait = Duration::from_secs(5);
    c.flyctl = flyctl.map(Path::to_path_buf);
    c
}

fn load(dir: &Path, yaml: &str) -> ResolvedSpec {
    let path = dir.join("sindri.yaml");
    std::fs::write(&path, yaml).expect("write sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    ResolvedSpec::new(spec, &path)
}

/// A fake Fly API and a provider for a spec with `deployment` and `providers.fly`
/// extras (YAML lines indented for their section).
async fn setup_with(name: &str, deployment: &str, fly: &str) -> Env {
    let fly_server = Fly::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let yaml = format!(
        "name: {name}\ndeployment:\n  provider: fly\n  image: registry.fly.io/sindri-test:1\n  home: {}\n{deployment}providers:\n  fly:\n    regions: [ord]\n{fly}",
        home.display()
    );
    let spec = load(dir.path(), &yaml);
    let settings = spec.spec.providers.fly.clone().unwrap_or_default();
    let provider: Arc<dyn Provider> = Arc::new(FlyProvider::new(
        settings,
        config(&fly_server.server.url, None),
    ));
    Env {
        fly: fly_server,
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
    let env = setup("fly-life").await;
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
    env.fly.server.assert_clean();
    assert!(
        env.fly.state().apps.is_empty(),
        "destroy --volumes removed the app sindri created"
    );
}

#[tokio::test]
async fn conformance_idempotent_deploy() {
    let env = setup("fly-idem").await;
    conformance::idempotent_deploy(env.provider.as_ref(), &env.spec).await;
    assert_eq!(env.machine_ops(), 1, "the second deploy created nothing");
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn conformance_destroy_twice() {
    let env = setup("fly-destroy").await;
    conformance::destroy_twice(env.provider.as_ref(), &env.spec).await;
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn conformance_not_found() {
    let env = setup("fly-nf").await;
    conformance::not_found(env.provider.as_ref(), &env.spec).await;
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn conformance_unsupported_ops_refused() {
    let env = setup("fly-unsup").await;
    conformance::unsupported_ops_refused(env.provider.as_ref(), &env.spec).await;
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn conformance_list_owned() {
    let env = setup("fly-owned").await;
    conformance::list_owned(env.provider.as_ref(), &env.spec).await;
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn conformance_plan_changes_nothing() {
    let env = setup("fly-plan").await;
    conformance::plan_changes_nothing(env.provider.as_ref(), &env.spec).await;
    assert_eq!(env.machine_ops(), 0);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn the_machine_matches_the_spec_and_the_exported_fly_toml() {
    let env = setup_with(
        "fly-shape",
        "  env: {GREETING: hello}\n  ports: [\"8080:80\"]\n  resources: {cpus: 2, memory: 3000MiB, disk: 5GiB, gpu: {count: 1, type: a100}}\n",
        "    app: shape-app\n    org: my-org\n    cpu_kind: performance\n    auto_stop: suspend\n",
    )
    .await;
    let d = deploy(&env).await;
    assert_eq!(d.detail("app"), Some("shape-app"));
    assert_eq!(d.detail("region"), Some("ord"));
    let st = env.fly.state();
    let app = st.apps.get("shape-app").expect("the app was created");
    assert_eq!(app.org, "my-org");
    let vol = app.volumes.values().next().expect("a home volume");
    assert_eq!(
        (vol.name.as_str(), vol.region.as_str(), vol.size_gb),
        ("home", "ord", 5)
    );
    let m = app.machines.values().next().expect("a machine");
    let c = &m.config;
    let want_guest = sindri_render::fly::guest(&env.spec.spec);
    assert_eq!(c["guest"]["cpu_kind"], json!(want_guest.cpu_kind));
    assert_eq!(c["guest"]["cpus"], json!(2));
    assert_eq!(
        c["guest"]["memory_mb"],
        json!(3072),
        "rounded up to 256 MiB as fly.toml says"
    );
    assert_eq!(c["guest"]["gpu_kind"], json!("a100-pcie-40gb"));
    assert_eq!(c["guest"]["gpus"], json!(1));
    assert_eq!(c["env"], json!({"GREETING": "hello"}));
    assert_eq!(
        c["mounts"],
        json!([{"volume": vol.id, "path": env.spec.spec.deployment.home}])
    );
    assert_eq!(
        c["services"],
        json!([{"protocol": "tcp", "internal_port": 80, "ports": [{"port": 8080}],
                "autostop": "suspend", "autostart": true, "min_machines_running": 0}])
    );
    assert_eq!(c["metadata"]["sindri.managed"], json!("true"));
    assert_eq!(c["metadata"]["sindri.environment"], json!("fly-shape"));
    assert_eq!(c["metadata"]["sindri.project"], json!(env.spec.project));
    assert_eq!(
        c["metadata"]["sindri.spec-hash"],
        json!(env.spec.spec_hash())
    );

    // Every field of the machine config has its counterpart in the fly.toml that
    // `sindri export fly` writes, so `fly deploy` of that file makes the same machine.
    let text = sindri_render::Renderer::new(None)
        .unwrap()
        .render(sindri_render::ExportFormat::Fly, &env.spec)
        .unwrap()
        .remove(0)
        .content;
    let t: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let t = serde_json::to_value(&t).unwrap();
    let fields: std::collections::BTreeSet<&str> =
        c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "env", "guest", "image", "init", "metadata", "mounts", "services"
        ]
        .into(),
        "a field added to the machine needs its fly.toml counterpart, and a check here"
    );
    assert_eq!(t["app"], json!("shape-app"));
    assert_eq!(t["primary_region"], json!(m.region));
    assert_eq!(t["build"]["image"], c["image"]);
    assert_eq!(
        t["vm"],
        json!([c["guest"]]),
        "[[vm]] is the guest, field for field"
    );
    assert_eq!(t["env"], c["env"]);
    assert_eq!(
        t["experimental"],
        json!({"exec": c["init"]["exec"]}),
        "flyctl turns [experimental] exec into init.exec: the same keep-alive process"
    );
    assert_eq!(c["init"].as_object().map(|o| o.len()), Some(1));
    assert_eq!(
        t["mounts"],
        json!([{
            "source": vol.name,
            "destination": c["mounts"][0]["path"],
            "initial_size": format!("{}gb", vol.size_gb),
        }]),
        "the home volume: name, place and size"
    );
    let services = c["services"].as_array().unwrap();
    let exported = t["services"].as_array().unwrap();
    assert_eq!(services.len(), exported.len());
    for (svc, e) in services.iter().zip(exported) {
        let keys: std::collections::BTreeSet<&str> = svc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "autostart",
                "autostop",
                "internal_port",
                "min_machines_running",
                "ports",
                "protocol"
            ]
            .into()
        );
        assert_eq!(e["internal_port"], svc["internal_port"]);
        assert_eq!(e["protocol"], svc["protocol"]);
        assert_eq!(e["ports"], svc["ports"]);
        assert_eq!(e["auto_stop_machines"], svc["autostop"]);
        assert_eq!(e["auto_start_machines"], svc["autostart"]);
        assert_eq!(e["min_machines_running"], svc["min_machines_running"]);
    }
    // Metadata is sindri's bookkeeping; fly.toml has no place for it and says so.
    let meta: std::collections::BTreeSet<&str> = c["metadata"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        meta,
        [
            "sindri.app-created",
            "sindri.environment",
            "sindri.managed",
            "sindri.project",
            "sindri.spec-hash"
        ]
        .into()
    );
    assert!(text.contains("# Machine metadata sindri.managed"), "{text}");
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn a_full_region_is_skipped_with_a_warning_and_its_volume_removed() {
    let env = setup_with("fly-failover", "", "").await;
    let spec = load(
        env.dir.path(),
        "name: fly-failover\ndeployment:\n  provider: fly\n  image: img:1\n  home: /home/dev\nproviders:\n  fly:\n    regions: [ord, iad, sjc]\n",
    );
    env.fly.state().full_regions.insert("ord".into());
    env.fly.state().full_volume_regions.insert("iad".into());
    let rec = Recorder::new();
    let d = dispatch::deploy(env.provider.as_ref(), &spec, DeployOptions::default(), &rec)
        .await
        .expect("deploys in sjc");
    assert_eq!(d.detail("region"), Some("sjc"));
    let w = rec.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("region ord has no capacity")
            && w[0].contains("insufficient resources")
            && w[0].contains("trying iad"),
        "{w:?}"
    );
    assert!(
        w[1].contains("region iad has no capacity")
            && w[1].contains("no capacity")
            && w[1].contains("trying sjc"),
        "{w:?}"
    );
    let st = env.fly.state();
    let vols: Vec<_> = st.apps["fly-failover"]
        .volumes
        .values()
        .map(|v| v.region.clone())
        .collect();
    assert_eq!(vols, vec!["sjc"], "the volume made in ord was removed");
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn when_every_region_is_full_the_error_names_each() {
    let env = setup_with("fly-full", "", "").await;
    env.fly.state().full_regions.insert("ord".into());
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("no capacity anywhere");
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(e.message().contains("ord: "), "{e}");
    assert!(e.hint().unwrap().contains("providers.fly.regions"));
    assert!(
        env.fly.state().apps["fly-full"].volumes.is_empty(),
        "no volume is left behind"
    );
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn wait_is_asked_again_after_408_until_the_machine_starts() {
    let env = setup("fly-wait").await;
    env.fly.server.inject(
        "Machines_wait",
        2,
        Fault::Status(408, json!({"error": "deadline exceeded"}), vec![]),
    );
    let d = deploy(&env).await;
    assert!(d.resource_id.is_some());
    assert_eq!(
        env.fly.server.count("Machines_wait"),
        3,
        "two 408s, then success"
    );
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn a_machine_that_never_starts_fails_the_deploy_once_the_wait_is_used_up() {
    let fly = Fly::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = load(
        dir.path(),
        "name: fly-slow\ndeployment:\n  provider: fly\n  image: img:1\nproviders:\n  fly:\n    regions: [ord]\n",
    );
    let mut cfg = config(&fly.server.url, None);
    cfg.wait = Duration::from_millis(600);
    let p = FlyProvider::new(spec.spec.providers.fly.clone().unwrap(), cfg);
    fly.server.inject(
        "Machines_wait",
        1000,
        Fault::Status(408, json!({"error": "deadline exceeded"}), vec![]),
    );
    let e = dispatch::deploy(&p, &spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("never started");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.message().contains("did not become started within"), "{e}");
    fly.server.assert_clean();
}

#[tokio::test]
async fn the_wait_is_as_long_as_providers_fly_wait_timeout_says() {
    // The provider's own default here is 5s; the spec asks for 1s.
    let env = setup_with("fly-wait-limit", "", "    wait_timeout: 1s\n").await;
    env.fly.server.inject(
        "Machines_wait",
        1000,
        Fault::Status(408, json!({"error": "deadline exceeded"}), vec![]),
    );
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("never started");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.message().contains("did not become started within 1s"),
        "{e}"
    );
    assert!(
        e.hint()
            .is_some_and(|h| h.contains("providers.fly.wait_timeout")),
        "{:?}",
        e.hint()
    );
    env.fly.server.assert_clean();

    // A limit too short to wait with is refused before anything is sent.
    let zero = setup_with("fly-wait-zero", "", "    wait_timeout: 0s\n").await;
    let e = dispatch::deploy(
        zero.provider.as_ref(),
        &zero.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("providers.fly.wait_timeout"), "{e}");
    assert!(zero.fly.server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn an_app_name_someone_else_holds_is_a_conflict_with_a_way_out() {
    // App names are global on Fly: another organization's app is invisible (404)
    // and its name is refused with 422 "Name has already been taken".
    let env = setup_with("fly-taken", "", "    app: popular-name\n").await;
    env.fly.state().taken_names.insert("popular-name".into());
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("the name is taken");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("Name has already been taken"), "{e}");
    assert!(
        e.hint().is_some_and(
            |h| h.contains("unique across all of Fly.io") && h.contains("providers.fly.app")
        ),
        "{:?}",
        e.hint()
    );
    let st = env.fly.state();
    assert!(
        st.apps.is_empty() && st.creates.is_empty(),
        "nothing was made"
    );
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn rate_limits_server_errors_and_dropped_reads_are_retried() {
    let env = setup("fly-retry").await;
    env.fly.server.inject(
        "Apps_show",
        1,
        Fault::Status(
            429,
            json!({"error": "rate limited"}),
            vec![("Retry-After".into(), "1".into())],
        ),
    );
    env.fly.server.inject(
        "Machines_list",
        2,
        Fault::Status(500, json!({"error": "flaps hiccup"}), vec![]),
    );
    env.fly.server.inject("Volumes_list", 1, Fault::Drop);
    let d = deploy(&env).await;
    assert!(d.resource_id.is_some());
    assert_eq!(
        env.fly.server.count("Apps_show"),
        2,
        "the 429 was retried once"
    );
    assert_eq!(env.fly.server.count("Machines_list"), 3);
    assert_eq!(env.fly.server.count("Volumes_list"), 2);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn a_wait_whose_connection_drops_is_asked_again() {
    let env = setup("fly-wait-drop").await;
    env.fly.server.inject("Machines_wait", 1, Fault::Drop);
    let d = deploy(&env).await;
    assert_eq!(d.state, sindri_core::DeploymentState::Ready);
    assert_eq!(
        env.fly.server.count("Machines_wait"),
        2,
        "the dropped wait was sent again"
    );
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn start_stop_and_suspend_are_repeated_after_a_server_error() {
    // Asking a machine to reach a state twice is harmless, so a 5xx is retried.
    let env = setup("fly-actions-5xx").await;
    let d = deploy(&env).await;
    let boom = |status: u16| Fault::Status(status, json!({"error": "flaps hiccup"}), vec![]);
    env.fly.server.inject("Machines_stop", 1, boom(500));
    dispatch::stop(env.provider.as_ref(), &d)
        .await
        .expect("stop through a 500");
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Stopped).await;
    env.fly.server.inject("Machines_start", 1, boom(502));
    dispatch::start(env.provider.as_ref(), &d)
        .await
        .expect("start through a 502");
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Running).await;
    env.fly.server.inject("Machines_suspend", 1, boom(500));
    dispatch::suspend(env.provider.as_ref(), &d)
        .await
        .expect("suspend through a 500");
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Suspended).await;
    for op in ["Machines_stop", "Machines_start", "Machines_suspend"] {
        assert_eq!(env.fly.server.count(op), 2, "{op} was sent again once");
    }
    // A 5xx that persists is a clean error naming the machine and what was asked.
    env.fly.server.inject("Machines_start", 100, boom(500));
    let e = dispatch::start(env.provider.as_ref(), &d)
        .await
        .expect_err("start keeps failing");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    let id = d.resource_id.clone().unwrap_or_default();
    assert!(
        e.message()
            .contains(&format!("start machine {id} of app `fly-actions-5xx`"))
            && e.message().contains("after 4 attempts"),
        "{e}"
    );
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn a_create_that_fails_is_not_repeated_and_the_next_deploy_adopts_the_volume() {
    let env = setup("fly-create-fail").await;
    env.fly.server.inject("Machines_create", 1, Fault::Drop);
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("the connection dropped");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(
        env.fly.server.count("Machines_create"),
        1,
        "a create is never sent twice"
    );
    assert!(e.hint().unwrap().contains("run the command again"));
    let d = deploy(&env).await;
    let st = env.fly.state();
    let app = &st.apps["fly-create-fail"];
    assert_eq!(
        app.volumes.len(),
        1,
        "the volume of the failed attempt was reused"
    );
    assert_eq!(app.machines.len(), 1);
    assert_eq!(
        app.volumes.values().next().unwrap().attached.as_deref(),
        d.resource_id.as_deref()
    );
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn a_bad_token_is_an_auth_error_that_does_not_show_it() {
    let fly = Fly::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = load(
        dir.path(),
        "name: fly-auth\ndeployment:\n  provider: fly\n  image: img:1\n",
    );
    let cfg = FlyConfig::from_lookup(|k| match k {
        "FLY_API_HOSTNAME" => Some(fly.server.url.clone()),
        "FLY_API_TOKEN" => Some("FlyV1 fm2_wrong_secret_token".into()),
        _ => None,
    })
    .unwrap();
    let p = FlyProvider::new(Default::default(), cfg);
    let e = dispatch::deploy(&p, &spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("unauthorized");
    assert_eq!(e.kind(), ErrorKind::Auth);
    let text = format!("{e} {:?} {e:?}", e.hint());
    assert!(!text.contains("fm2_wrong_secret_token"), "{text}");
    assert!(text.contains("fly auth login"), "{text}");
    let sent = fly.server.requests();
    assert_eq!(
        sent[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("FlyV1 fm2_wrong_secret_token"),
        "macaroon tokens are sent with their own scheme"
    );
}

#[tokio::test]
async fn a_changed_spec_updates_the_same_machine_in_place() {
    let env = setup("fly-update").await;
    let first = deploy(&env).await;
    let changed = load(
        env.dir.path(),
        &format!(
            "name: fly-update\ndeployment:\n  provider: fly\n  image: registry.fly.io/sindri-test:2\n  home: {}\n  env: {{MODE: two}}\nproviders:\n  fly:\n    regions: [ord]\n",
            env.spec.spec.deployment.home
        ),
    );
    let plan = dispatch::plan(env.provider.as_ref(), &changed, Some(&first))
        .await
        .unwrap();
    assert!(
        plan.steps
            .iter()
            .any(|s| s.action == PlanAction::Update && s.reason.as_deref() == Some("spec changed")),
        "{:?}",
        plan.steps
    );
    let second = dispatch::deploy(
        env.provider.as_ref(),
        &changed,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("update");
    assert_eq!(first.resource_id, second.resource_id, "updated in place");
    assert_eq!(second.spec_hash, changed.spec_hash());
    let st = env.fly.state();
    let m = st.apps["fly-update"].machines.values().next().unwrap();
    assert_eq!(m.config["image"], json!("registry.fly.io/sindri-test:2"));
    assert_eq!(m.config["env"], json!({"MODE": "two"}));
    assert_eq!(
        m.config["metadata"]["sindri.spec-hash"],
        json!(changed.spec_hash())
    );
    assert_eq!(
        st.apps["fly-update"].volumes.len(),
        1,
        "the home volume is kept"
    );
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn suspend_and_start_resume() {
    let env = setup("fly-suspend").await;
    let d = deploy(&env).await;
    dispatch::suspend(env.provider.as_ref(), &d)
        .await
        .expect("suspend");
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Suspended).await;
    dispatch::suspend(env.provider.as_ref(), &d)
        .await
        .expect("suspending a suspended machine is fine");
    dispatch::start(env.provider.as_ref(), &d)
        .await
        .expect("start resumes");
    conformance::wait_for_state(env.provider.as_ref(), &d, StatusState::Running).await;
    assert_eq!(env.fly.server.count("Machines_suspend"), 1);
    let s = dispatch::status(env.provider.as_ref(), &d).await.unwrap();
    assert_eq!(s.details.get("region").map(String::as_str), Some("ord"));
    assert!(
        s.endpoints
            .iter()
            .any(|e| e.name == "private (6PN)" && e.address.starts_with("[fdaa:")),
        "{:?}",
        s.endpoints
    );
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn destroy_keeps_the_home_volume_and_app_unless_asked() {
    let env = setup("fly-keep").await;
    let d = deploy(&env).await;
    let r = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: false })
        .await
        .unwrap();
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert!(r.kept[0].contains("sindri destroy --volumes"), "{r:?}");
    assert_eq!(env.fly.state().apps["fly-keep"].volumes.len(), 1);
    let s = dispatch::status(env.provider.as_ref(), &d).await.unwrap();
    assert_eq!(s.state, StatusState::Missing);
    let r = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert_eq!(r.removed.len(), 2, "the volume and the app: {r:?}");
    assert!(env.fly.state().apps.is_empty());
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn destroy_leaves_machines_without_the_labels_and_their_app_alone() {
    let env = setup("fly-foreign").await;
    let d = deploy(&env).await;
    {
        // Another machine in the app, not sindri's.
        let mut st = env.fly.state();
        let app = st.apps.get_mut("fly-foreign").unwrap();
        let mut other = app.machines.values().next().unwrap().clone();
        other.id = "foreign0000001".into();
        other.config["metadata"] = json!({"owner": "someone-else"});
        other.config["mounts"] = json!([]);
        app.machines.insert(other.id.clone(), other);
    }
    let r = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(
        !r.removed.iter().any(|x| x.contains("foreign0000001")),
        "{r:?}"
    );
    assert!(
        !r.removed.iter().any(|x| x.starts_with("app ")),
        "an app that is not empty stays: {r:?}"
    );
    assert_eq!(r.removed.len(), 2, "sindri's machine and volume: {r:?}");
    let st = env.fly.state();
    assert!(
        st.apps["fly-foreign"]
            .machines
            .contains_key("foreign0000001"),
        "the foreign machine survives"
    );
    drop(st);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn secrets_reach_the_machine_only_through_exec_stdin() {
    let env = setup("fly-secrets").await;
    // The fake runs exec on this machine: secrets go to a temporary directory.
    let secrets_dir = env.dir.path().join("run-sindri");
    let mount = env.dir.path().join("etc/app/cert.pem");
    let mut cfg = config(&env.fly.server.url, None);
    cfg.secrets_dir = secrets_dir.display().to_string();
    let p = FlyProvider::new(env.spec.spec.providers.fly.clone().unwrap(), cfg);
    let mut spec = env.spec.clone();
    let secret_value = "s3cr3t-value-'with-quote";
    spec.secrets = vec![
        ResolvedSecret {
            name: "API_TOKEN".into(),
            value: SecretValue::new(secret_value),
            mount: None,
        },
        ResolvedSecret {
            name: "CERT".into(),
            value: SecretValue::new("cert-body-xyz"),
            mount: Some(mount.display().to_string()),
        },
    ];
    let d = dispatch::deploy(&p, &spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect("deploy with secrets");
    {
        let st = env.fly.state();
        for body in &st.creates {
            let text = body.to_string();
            assert!(
                !text.contains(secret_value) && !text.contains("cert-body-xyz"),
                "a secret is in the machine config: {text}"
            );
        }
        assert_eq!(st.execs.len(), 2, "one exec per secrets file");
        for call in &st.execs {
            let line = call.command.join(" ");
            assert!(
                !line.contains(secret_value) && !line.contains("cert-body-xyz"),
                "a secret is on a command line: {line}"
            );
        }
        assert_eq!(
            st.execs[0].stdin.as_deref(),
            Some("export API_TOKEN='s3cr3t-value-'\\''with-quote'\n")
        );
        assert_eq!(st.execs[1].stdin.as_deref(), Some("cert-body-xyz"));
    }
    use std::os::unix::fs::PermissionsExt;
    let env_file = secrets_dir.join("secrets.env");
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&mount).unwrap(),
        "cert-body-xyz",
        "the mount path links to the secret file"
    );
    assert_eq!(
        std::fs::read_link(&mount).unwrap(),
        secrets_dir.join("files/CERT")
    );
    // `sindri exec` sees env-style secrets.
    let out = exec_capture(
        &p,
        &d,
        &ExecCommand::shell("printf %s \"$API_TOKEN\""),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out.out(), secret_value);
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn connect_runs_flyctl_ssh_console_on_the_machine() {
    let env = setup("fly-connect").await;
    let bin = tempfile::tempdir().unwrap();
    let flyctl = bin.path().join("flyctl");
    let args_file = bin.path().join("args");
    std::fs::write(
        &flyctl,
        format!("#!/bin/sh\necho \"$@\" > {}\nexit 7\n", args_file.display()),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&flyctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let p = FlyProvider::new(
        env.spec.spec.providers.fly.clone().unwrap(),
        config(&env.fly.server.url, Some(&flyctl)),
    );
    assert!(
        p.capabilities().connect,
        "with flyctl on PATH, connect is offered"
    );
    let d = dispatch::deploy(&p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap();
    let code = dispatch::connect(&p, &d, ExecIo::null())
        .await
        .expect("connect");
    assert_eq!(code, 7, "flyctl's exit code is returned");
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "ssh console --app fly-connect --machine {}",
            d.resource_id.unwrap()
        )
    );
}

#[tokio::test]
async fn without_flyctl_connect_is_refused_before_any_request() {
    let env = setup("fly-noctl").await;
    let d = conformance::never_deployed(env.provider.as_ref(), &env.spec);
    let e = dispatch::connect(env.provider.as_ref(), &d, ExecIo::null())
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Unsupported(Operation::Connect));
    assert!(e.hint().unwrap().contains("https://fly.io/install.sh"));
    assert!(env.fly.server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn exec_refuses_a_stopped_machine_and_binary_input() {
    let env = setup("fly-exec").await;
    let d = deploy(&env).await;
    let bin: Vec<u8> = vec![0xff, 0xfe, 0x00];
    let e = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["cat"]),
        Some(&bin),
    )
    .await
    .expect_err("binary stdin");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    dispatch::stop(env.provider.as_ref(), &d).await.unwrap();
    let e = exec_capture(env.provider.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .expect_err("stopped");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.hint().unwrap().contains("sindri start"));
    env.fly.server.assert_clean();
}

#[tokio::test]
async fn list_owned_finds_environments_across_apps() {
    let a = setup_with("fly-one", "", "    app: app-one\n").await;
    let d1 = deploy(&a).await;
    let other = load(
        a.dir.path(),
        "name: fly-two\ndeployment:\n  provider: fly\n  image: img:1\nproviders:\n  fly:\n    app: app-two\n    regions: [iad]\n",
    );
    let d2 = dispatch::deploy(
        a.provider.as_ref(),
        &other,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let owned = dispatch::list_owned(a.provider.as_ref()).await.unwrap();
    let mut names: Vec<(String, Option<String>)> = owned
        .iter()
        .map(|o| (o.name.clone(), o.detail("app").map(str::to_string)))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("fly-one".to_string(), Some("app-one".to_string())),
            ("fly-two".to_string(), Some("app-two".to_string()))
        ]
    );
    assert!(owned.iter().any(|o| o.resource_id == d1.resource_id));
    assert!(owned.iter().any(|o| o.resource_id == d2.resource_id));
    a.fly.server.assert_clean();
}

#[tokio::test]
#[should_panic(expected = "the test never checked them")]
async fn a_violation_the_test_never_checked_fails_it_when_the_server_goes() {
    let fly = Fly::start().await;
    // A wrong path answered 404, which a careless test could read as "not found".
    let (status, _) = get(&fly.server.url, "/v1/apps/x/machine/y").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_fake_rejects_what_the_published_api_rejects() {
    // The contract is not a rubber stamp: each of these requests breaks the
    // description and is answered and recorded as a violation.
    let fly = Fly::start().await;
    let (status, _) = get(&fly.server.url, "/v1/nope").await;
    assert_eq!(status, 404, "unknown path");
    let mut seen = fly.server.take_violations();
    assert!(seen.iter().any(|v| v.contains("no path")), "{seen:?}");
    let (status, _) = post(
        &fly.server.url,
        "/v1/apps/x/machines",
        json!({"config": {"guest": {"cpus": "two"}}}),
    )
    .await;
    assert_eq!(status, 400, "wrong type");
    let (status, _) = post(
        &fly.server.url,
        "/v1/apps/x/machines",
        json!({"config": {"imagee": "typo"}}),
    )
    .await;
    assert_eq!(status, 400, "an undeclared property");
    let (status, _) = post(&fly.server.url, "/v1/apps/x/machines/y/wait", json!({})).await;
    assert_eq!(status, 405, "wrong method");
    let (status, _) = get(&fly.server.url, "/v1/apps").await;
    assert_eq!(status, 400, "missing required query parameter org_slug");
    seen.extend(fly.server.take_violations());
    assert_eq!(seen.len(), 5, "{seen:?}");
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    raw(base, "GET", path, None).await
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    raw(base, "POST", path, Some(body)).await
}

/// A request sent without sindri's client: a plain HTTP/1.1 exchange over TCP.
async fn raw(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_failed_secret_delivery_never_echoes_the_value() {
    let env = setup("fly-echo").await;
    let mut spec = env.spec.clone();
    spec.secrets = vec![ResolvedSecret {
        name: "API_TOKEN".into(),
        value: SecretValue::new("echoed-value-42"),
        mount: None,
    }];
    env.fly.server.inject(
        "Machines_exec",
        1,
        Fault::Status(
            400,
            json!({"error": "cannot run with stdin export API_TOKEN='echoed-value-42'"}),
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
    .expect_err("delivery failed");
    let text = format!("{e} {:?}", e.hint());
    assert!(text.contains("API_TOKEN='***'"), "{text}");
    assert!(!text.contains("echoed-value-42"), "{text}");
    env.fly.server.assert_clean();
}
