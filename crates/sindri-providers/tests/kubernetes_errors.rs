//! How the Kubernetes provider reports an unreachable, hung or not-Kubernetes API
//! server, RBAC denials, conflicts, invalid fields and server failures, kubeconfig
//! problems, and what it cannot do (images to build). The faults are injected into
//! the test API server or played by bare sockets; nothing here needs a cluster.
#![cfg(feature = "kubernetes")]

#[path = "support/kube_server/mod.rs"]
mod kube_server;

use std::sync::Arc;
use std::time::Duration;

use kube_server::fixture::{Env, make_spec, test_timeouts};
use kube_server::{Fault, write_kubeconfig};
use serde_json::json;
use sindri_core::{DeployOptions, ErrorKind, ExecCommand, Provider, dispatch};
use sindri_providers::conformance::{Recorder, exec_capture, never_deployed};
use sindri_providers::kubernetes::{KubernetesProvider, Timeouts};
use sindri_spec::KubernetesSettings;

async fn deploy_err(env: &Env) -> sindri_core::Error {
    dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("deploy must fail")
}

#[tokio::test]
async fn an_unreachable_api_server_is_unavailable_and_named() {
    // A port nothing listens on: bound, then released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{port}");
    let kubeconfig = write_kubeconfig(dir.path(), &server, None);
    // Default timeouts: what a user gets.
    let p = KubernetesProvider::new(KubernetesSettings::default()).with_kubeconfig(kubeconfig);
    let spec = make_spec(dir.path(), "dev", json!({}), json!({}));
    let e = dispatch::status(&p, &never_deployed(&p, &spec))
        .await
        .expect_err("unreachable");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains(&server),
        "names the server from the kubeconfig: {e}"
    );
    assert!(e.message().contains("context `test`"), "{e}");
    assert!(
        e.hint()
            .unwrap_or("")
            .contains("kubectl cluster-info --context test"),
        "{e:?}"
    );
    let checks = p.check().await;
    assert!(
        checks
            .iter()
            .any(|c| c.name == "api server" && c.status == sindri_core::CheckStatus::Fail),
        "{checks:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let env = Env::new("hang", json!({}), json!({})).await;
    env.server.fault(Fault::hang("GET", "/statefulsets/hang"));
    let timeouts = Timeouts {
        request: Duration::from_secs(1),
        ..test_timeouts()
    };
    let p = kube_server::fixture::provider_for(&env.server, env.dir.path(), &env.spec, timeouts);
    let e = dispatch::status(p.as_ref(), &never_deployed(p.as_ref(), &env.spec))
        .await
        .expect_err("a hung request fails");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains(&env.server.url()), "{e}");
    assert!(
        e.message().contains("no answer from") && e.message().contains("in 1 s"),
        "says in words what happened, with the timeout: {e}"
    );
    assert!(!e.message().contains("deadline"), "{e}");
}

#[tokio::test]
async fn an_rbac_denial_names_the_verb_the_resource_and_the_namespace() {
    let env = Env::new("rbac", json!({}), json!({"namespace": "team-a"})).await;
    env.server.fault(Fault::new(
        "PATCH",
        "/statefulsets/rbac",
        403,
        "Forbidden",
        "statefulsets.apps \"rbac\" is forbidden: User \"alice\" cannot patch resource \"statefulsets\" in API group \"apps\" in the namespace \"team-a\"",
    ));
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.message()
            .contains("RBAC denied `patch` on statefulsets.apps in namespace `team-a`"),
        "{e}"
    );
    assert!(
        e.message().contains("User \"alice\" cannot patch"),
        "the server's words are kept: {e}"
    );
    assert!(
        e.hint()
            .unwrap_or("")
            .contains("kubectl auth can-i patch statefulsets.apps -n team-a"),
        "{e:?}"
    );
}

#[tokio::test]
async fn exec_denied_by_rbac_names_pods_exec() {
    let env = Env::new("noexec", json!({}), json!({})).await;
    let d = env.deploy().await;
    env.server.fault(Fault::new(
        "GET",
        "/pods/noexec-0/exec",
        403,
        "Forbidden",
        "pods \"noexec-0\" is forbidden: User \"bob\" cannot create resource \"pods/exec\"",
    ));
    let e = exec_capture(env.provider.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .expect_err("denied");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.message().contains("`create` on pods/exec"), "{e}");
}

#[tokio::test]
async fn expired_credentials_are_an_auth_error() {
    let env = Env::new("expired", json!({}), json!({})).await;
    env.server.fault(Fault::new(
        "GET",
        "/secrets/",
        401,
        "Unauthorized",
        "Unauthorized",
    ));
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(
        e.message().contains("401 Unauthorized") && e.message().contains("context `test`"),
        "{e}"
    );
}

#[tokio::test]
async fn a_409_from_the_server_is_a_conflict() {
    let env = Env::new("race", json!({}), json!({})).await;
    env.server.fault(
        Fault::new("PATCH", "/statefulsets/race", 409, "Conflict", "Operation cannot be fulfilled on statefulsets.apps \"race\": the object has been modified")
            .query("force=true"),
    );
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.message().contains("409 Conflict") && e.message().contains("has been modified"),
        "{e}"
    );
}

#[tokio::test]
async fn a_422_points_to_the_field() {
    let env = Env::new(
        "bad",
        json!({"resources": {"gpu": {"count": 1}}}),
        json!({}),
    )
    .await;
    env.server.fault(
        Fault::new(
            "PATCH",
            "/statefulsets/bad",
            422,
            "Invalid",
            "StatefulSet.apps \"bad\" is invalid",
        )
        .cause(
            "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
            "Invalid value: \"1\": must be an integer",
        )
        .cause(
            "spec.template.spec.nodeSelector",
            "Invalid value: \"x y\": a valid label must be ...",
        ),
    );
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("field `spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]`: Invalid value"), "{e}");
    assert!(
        e.message()
            .contains("field `spec.template.spec.nodeSelector`"),
        "every cause is listed: {e}"
    );
    assert_eq!(e.exit_code(), 2);
}

#[tokio::test]
async fn secret_values_never_appear_in_errors() {
    let mut env = Env::new("leak", json!({}), json!({})).await;
    env.secret("DB_PASSWORD", "hunter2-very-secret", None);
    env.server.fault(
        Fault::new("PATCH", "/secrets/leak-secrets", 422, "Invalid", "Secret \"leak-secrets\" is invalid: data[DB_PASSWORD]: value hunter2-very-secret (aHVudGVyMi12ZXJ5LXNlY3JldA==) is not allowed")
            .cause("data[DB_PASSWORD]", "Invalid value: \"hunter2-very-secret\""),
    );
    let e = deploy_err(&env).await;
    let text = format!("{e} {:?}", e.hint());
    assert!(
        !text.contains("hunter2-very-secret") && !text.contains("aHVudGVyMi12ZXJ5LXNlY3JldA=="),
        "{text}"
    );
    assert!(
        text.contains("data[DB_PASSWORD]") && text.contains("***"),
        "{text}"
    );
}

#[tokio::test]
async fn a_500_is_a_platform_error_and_a_503_is_transient() {
    let env = Env::new("boom", json!({}), json!({})).await;
    env.server.fault(
        Fault::new(
            "GET",
            "/statefulsets/boom",
            500,
            "InternalError",
            "etcdserver: leader changed",
        )
        .times(1),
    );
    let p = env.provider.as_ref();
    let d = never_deployed(p, &env.spec);
    let e = dispatch::status(p, &d).await.expect_err("500");
    assert_eq!(e.kind(), ErrorKind::Platform, "{e}");
    assert!(
        e.message().contains("500") && e.message().contains("etcdserver: leader changed"),
        "{e}"
    );
    // The fault was for one request: the next status works.
    assert_eq!(
        dispatch::status(p, &d).await.expect("status").state,
        sindri_core::StatusState::Missing
    );

    // 503 is retried by the client, then reported as transient.
    env.server.fault(Fault::new(
        "GET",
        "/statefulsets/boom",
        503,
        "ServiceUnavailable",
        "the server is shutting down",
    ));
    let e = dispatch::status(p, &d).await.expect_err("503");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
}

#[tokio::test]
async fn kubeconfig_problems_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let spec = make_spec(dir.path(), "dev", json!({}), json!({}));
    let missing = KubernetesProvider::new(KubernetesSettings::default())
        .with_kubeconfig(dir.path().join("nope"));
    let e = dispatch::list_owned(&missing)
        .await
        .expect_err("no kubeconfig");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("cannot read the kubeconfig"), "{e}");
    assert!(
        e.hint().unwrap_or("").contains("sindri k8s create"),
        "{e:?}"
    );

    let kubeconfig = write_kubeconfig(dir.path(), "http://127.0.0.1:9", None);
    let settings = KubernetesSettings {
        context: Some("prod".into()),
        ..Default::default()
    };
    let wrong: Arc<dyn Provider> =
        Arc::new(KubernetesProvider::new(settings).with_kubeconfig(kubeconfig));
    let e = dispatch::status(wrong.as_ref(), &never_deployed(wrong.as_ref(), &spec))
        .await
        .expect_err("unknown context");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.message().contains("no context `prod`"), "{e}");
    assert!(
        e.hint().unwrap_or("").contains("test, other"),
        "lists the contexts: {e:?}"
    );
}

#[tokio::test]
async fn the_namespace_comes_from_the_settings_then_the_context_then_default() {
    let env = Env::new("ns", json!({}), json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = env.server.kubeconfig(dir.path(), Some("from-context"));
    let p = KubernetesProvider::new(KubernetesSettings::default()).with_kubeconfig(&kubeconfig);
    let checks = p.check().await;
    assert!(
        checks[0].detail.contains("namespace `from-context`"),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .all(|c| c.status == sindri_core::CheckStatus::Ok),
        "{checks:?}"
    );
    let settings = KubernetesSettings {
        namespace: Some("team-b".into()),
        ..Default::default()
    };
    let p = KubernetesProvider::new(settings).with_kubeconfig(&kubeconfig);
    assert!(p.check().await[0].detail.contains("namespace `team-b`"));
    // A deploy lands in the context's namespace.
    let p: Arc<dyn Provider> = Arc::new(
        KubernetesProvider::new(KubernetesSettings::default())
            .with_kubeconfig(&kubeconfig)
            .with_timeouts(test_timeouts()),
    );
    dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("deploy");
    assert!(
        env.server
            .object("statefulsets", "from-context", "ns")
            .is_some()
    );
}

/// The provider with its default timeouts (what a user gets) for a kubeconfig whose
/// server is `server`, and a never-deployed record to ask about.
fn default_provider(
    dir: &std::path::Path,
    server: &str,
) -> (KubernetesProvider, sindri_core::Deployment) {
    let kubeconfig = write_kubeconfig(dir, server, None);
    let p = KubernetesProvider::new(KubernetesSettings::default()).with_kubeconfig(kubeconfig);
    let spec = make_spec(dir, "dev", json!({}), json!({}));
    let d = never_deployed(&p, &spec);
    (p, d)
}

#[test]
fn the_default_timeouts_bound_an_unreachable_cluster_to_ten_seconds() {
    let t = Timeouts::default();
    assert!(
        t.connect + t.request <= Duration::from_secs(10),
        "connect {:?} + request {:?} must stay within the 10 s a user waits at most",
        t.connect,
        t.request
    );
    assert!(t.connect > Duration::ZERO && t.request > Duration::ZERO);
}

#[tokio::test]
async fn a_listener_that_never_accepts_is_reported_with_the_default_timeouts() {
    // A listening socket that is never accepted from, with its queue filled: the
    // kernel drops further connection requests, so connecting hangs as it does for a
    // firewalled or overloaded API server.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => queued.push(s),
            Err(_) => break,
        }
    }
    assert!(queued.len() < 64, "the listen queue never filled up");
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://{addr}");
    let (p, d) = default_provider(dir.path(), &server);
    let e = dispatch::status(&p, &d)
        .await
        .expect_err("a server that takes no connection");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains(&server), "names the server: {e}");
    assert!(
        e.message().contains(&format!(
            "no answer from the Kubernetes API server {server} (context `test`) in {} s: the connection was not accepted",
            Timeouts::default().connect.as_secs()
        )),
        "{e}"
    );
    assert!(
        e.hint().unwrap_or("").contains("kubectl cluster-info"),
        "{e:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_is_reported_with_the_default_timeouts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts every connection, reads the request and never writes a byte back.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://{addr}");
    let (p, d) = default_provider(dir.path(), &server);
    let e = dispatch::status(&p, &d)
        .await
        .expect_err("a server that never answers");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains(&format!(
            "no answer from the Kubernetes API server {server} (context `test`) in {} s",
            Timeouts::default().request.as_secs()
        )),
        "{e}"
    );
    assert!(
        e.message()
            .contains("did not answer the request to get statefulsets.apps"),
        "{e}"
    );
    let checks = p.check().await;
    assert!(
        checks
            .iter()
            .any(|c| c.name == "api server" && c.detail.contains("no answer from")),
        "{checks:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn a_server_that_is_not_a_kubernetes_api_is_named_as_such() {
    let env = Env::new("web", json!({}), json!({})).await;
    // A web server (or a proxy, or a URL with a path) answers 404 pages.
    env.server
        .fault(Fault::plain("/", 404, "404 page not found\n"));
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.message().contains(&format!(
            "the server at {} (context `test`) did not answer like a Kubernetes API server",
            env.server.url()
        )),
        "{e}"
    );
    assert!(e.message().contains("404 `404 page not found`"), "{e}");
    assert!(
        !e.message().contains("Failed to parse") && !e.message().contains("not found in namespace"),
        "{e}"
    );
    assert!(
        e.hint()
            .unwrap_or("")
            .contains("`server` URL of context `test`"),
        "{e:?}"
    );
    let checks = env.provider.check().await;
    let api = checks
        .iter()
        .find(|c| c.name == "api server")
        .expect("check");
    assert_eq!(api.status, sindri_core::CheckStatus::Fail);
    assert!(
        api.detail
            .contains("did not answer like a Kubernetes API server"),
        "{checks:?}"
    );
    // And destroy does not mistake the 404s for objects already gone.
    let d = never_deployed(env.provider.as_ref(), &env.spec);
    let e = dispatch::destroy(
        env.provider.as_ref(),
        &d,
        sindri_core::DestroyOptions { volumes: true },
    )
    .await
    .expect_err("destroy cannot succeed against a web server");
    assert!(
        e.message()
            .contains("did not answer like a Kubernetes API server"),
        "{e}"
    );
}

#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_is_named() {
    let mut env = Env::new("crd", json!({}), json!({})).await;
    let templates = env.dir.path().join(".sindri/templates");
    std::fs::create_dir_all(&templates).unwrap();
    let builtin = sindri_render::builtin_template("kubernetes.yaml").unwrap();
    let widget = "\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ name }}\n  labels: {{ labels }}\nspec:\n  size: 3\n";
    std::fs::write(
        templates.join("kubernetes.yaml"),
        format!("{builtin}{widget}"),
    )
    .unwrap();
    env.refresh_provider();
    let e = dispatch::plan(env.provider.as_ref(), &env.spec, None)
        .await
        .expect_err("no such kind");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(
        e.message().contains("does not serve widgets.example.com"),
        "{e}"
    );
    assert!(
        e.hint().unwrap_or("").contains("CustomResourceDefinition"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_image_to_build_is_refused_with_how_to_build_and_load_it() {
    let env = Env::new(
        "built",
        json!({"image": null, "build": {"context": "app", "dockerfile": "app/Dockerfile"}}),
        json!({}),
    )
    .await;
    let e = deploy_err(&env).await;
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(
        e.message()
            .contains("docker build -t sindri-built:local -f app/Dockerfile app"),
        "says how to build it: {e}"
    );
    assert!(
        e.message().contains("sindri k8s load sindri-built:local"),
        "says how to load it into a local cluster: {e}"
    );
    assert!(
        env.server.requests().is_empty(),
        "nothing reached the API server: {:?}",
        env.server.requests()
    );
}
