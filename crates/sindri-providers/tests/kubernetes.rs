//! The provider conformance suite, run against the test Kubernetes API server
//! (tests/support/kube_server): server-side apply, a simulated StatefulSet controller
//! and kubelet, watch, logs and websocket exec running real commands (busybox in a
//! chroot per pod). No real cluster is involved.
#![cfg(feature = "kubernetes")]

#[path = "support/kube_server/mod.rs"]
mod kube_server;

use kube_server::fixture::Env;
use serde_json::json;
use sindri_providers::conformance;

#[tokio::test]
async fn lifecycle() {
    let env = Env::new("lifecycle", json!({}), json!({})).await;
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn lifecycle_with_secrets_ports_volumes_a_custom_home_and_a_namespace() {
    let mut env = Env::new(
        "full",
        json!({
            "home": "/home/dev",
            "ports": [8080, "9000:90/udp"],
            "env": {"EDITOR": "vim", "PRICE": "$5"},
            "volumes": [{"name": "data", "path": "/data", "size": "5GiB"}],
            "resources": {"cpus": 1.5, "memory": "2GiB", "disk": "20GiB"},
        }),
        json!({"namespace": "team-a", "storage_class": "fast", "service_type": "NodePort"}),
    )
    .await;
    env.secret("API_TOKEN", "token-value-1", None);
    env.secret("TLS_KEY", "key-material", Some("/etc/tls/key.pem"));
    conformance::lifecycle(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn idempotent_deploy() {
    let mut env = Env::new("idempotent", json!({"ports": [8080]}), json!({})).await;
    env.secret("CONFORMANCE_TOKEN", "idempotent-secret-value", None);
    conformance::idempotent_deploy(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn destroy_twice() {
    let env = Env::new("destroy-twice", json!({}), json!({})).await;
    conformance::destroy_twice(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn not_found() {
    let env = Env::new("not-found", json!({}), json!({})).await;
    conformance::not_found(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn unsupported_ops_refused() {
    let env = Env::new("unsupported", json!({}), json!({})).await;
    conformance::unsupported_ops_refused(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn list_owned() {
    let env = Env::new("list-owned", json!({}), json!({})).await;
    conformance::list_owned(env.provider.as_ref(), &env.spec).await;
}

#[tokio::test]
async fn plan_changes_nothing() {
    let mut env = Env::new("plan", json!({}), json!({})).await;
    env.secret("PLAN_SECRET", "plan-secret-value-must-not-show", None);
    conformance::plan_changes_nothing(env.provider.as_ref(), &env.spec).await;
    assert!(
        env.server
            .received()
            .iter()
            .all(|r| r.method == "PATCH" && r.query.contains("dryRun=All")),
        "plan wrote something: {:?}",
        env.server.received()
    );
}
