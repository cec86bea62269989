//! The provider conformance suite, run against the real Docker Engine.
//!
//! Needs a running engine (CI starts it); the test images are built on first use by
//! `.ci/images/build.sh`. Each test uses an environment name of its own, so they run in
//! parallel, and a guard removes whatever is labelled for it even when a test fails.
#![cfg(feature = "docker")]

mod support;

use sindri_providers::conformance;
use support::TestEnv;

#[tokio::test]
async fn lifecycle() {
    let env = TestEnv::new("lifecycle", serde_json::json!({}));
    conformance::lifecycle(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn lifecycle_with_a_custom_home_and_no_bash() {
    let env = TestEnv::new(
        "lifecycle-home",
        serde_json::json!({"image": support::IMAGE_NOBASH, "home": "/home/dev"}),
    );
    conformance::lifecycle(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn idempotent_deploy() {
    let mut env = TestEnv::new("idempotent", serde_json::json!({"ports": []}));
    env.secret("CONFORMANCE_TOKEN", "idempotent-secret-value", None);
    conformance::idempotent_deploy(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn destroy_twice() {
    let env = TestEnv::new("destroy-twice", serde_json::json!({}));
    conformance::destroy_twice(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn not_found() {
    let env = TestEnv::new("not-found", serde_json::json!({}));
    conformance::not_found(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn unsupported_ops_refused() {
    let env = TestEnv::new("unsupported", serde_json::json!({}));
    conformance::unsupported_ops_refused(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn list_owned() {
    let env = TestEnv::new("list-owned", serde_json::json!({}));
    conformance::list_owned(support::provider().as_ref(), &env.spec).await;
}

#[tokio::test]
async fn plan_changes_nothing() {
    let mut env = TestEnv::new("plan", serde_json::json!({}));
    env.secret("PLAN_SECRET", "plan-secret-value-must-not-show", None);
    conformance::plan_changes_nothing(support::provider().as_ref(), &env.spec).await;
    assert!(support::leftovers(&env.name).await.is_empty());
}
