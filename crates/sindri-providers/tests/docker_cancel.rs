//! Interrupted deploys on the real engine. The CLI cancels a deploy by dropping its
//! future (Ctrl-C, SIGTERM); whatever was started must be found and finished by the
//! next deploy, or cleaned by the next destroy, leaving no labelled object behind.
//!
//! Each test cancels at every phase in turn (a `Progress` that fires when phase `k`
//! starts, so the future is dropped inside that phase's first request), or after
//! increasing delays, and then checks the engine for containers (stopped ones
//! included), volumes, networks and images labelled for the environment.
#![cfg(feature = "docker")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sindri_core::{
    DeployOptions, Deployment, DestroyOptions, ExecCommand, Progress, Provider, ResolvedSpec,
    dispatch,
};
use sindri_providers::conformance::{Recorder, exec_capture, never_deployed};
use support::TestEnv;
use tokio::sync::Notify;

/// Fires `notify` at the `k`-th (from 0) phase start, or the `k`-th progress message
/// (a line of build output) when `on_messages` is set.
struct CancelAt {
    k: usize,
    on_messages: bool,
    seen: AtomicUsize,
    notify: Arc<Notify>,
}

impl CancelAt {
    fn tick(&self) {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.k {
            self.notify.notify_one();
        }
    }
}

impl Progress for CancelAt {
    fn phase_started(&self, _phase: &str) {
        if !self.on_messages {
            self.tick();
        }
    }
    fn phase_finished(&self, _: &str, _: Duration) {}
    fn message(&self, _: &str) {
        if self.on_messages {
            self.tick();
        }
    }
}

/// After a deploy is dropped, the engine finishes the request that was in flight; a
/// person's next command comes later than that, so the tests wait for it too, and
/// check sindri rather than that race. Docker's classic builder finishes the build step
/// in progress when its client goes away (then stops); for sindri's labelling step that
/// leaves an image carrying the environment's labels, which `destroy --volumes` must
/// find. The step's container is labelled too, so its presence says the step still runs.
async fn settle(name: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docker = support::docker().await;
    let own = format!("/{}", sindri_providers::docker::container_name(name));
    let filter = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("sindri.environment={name}")],
    )]);
    for _ in 0..60 {
        let steps: Vec<_> = docker
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await
            .expect("list containers")
            .into_iter()
            .filter(|c| !c.names.clone().unwrap_or_default().contains(&own))
            .collect();
        if steps.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("a build step of `{name}` never finished");
}

/// Records the last phase that started, to know where a deploy was cut off.
#[derive(Default)]
struct LastPhase(std::sync::Mutex<String>);

impl Progress for LastPhase {
    fn phase_started(&self, phase: &str) {
        *self.0.lock().unwrap() = phase.to_string();
    }
    fn phase_finished(&self, _: &str, _: Duration) {}
    fn message(&self, _: &str) {}
}

/// Runs a deploy and drops it when phase `k` starts. Returns false when the deploy
/// finished before reaching phase `k`.
async fn deploy_cancelled_at(p: &dyn Provider, spec: &ResolvedSpec, k: usize) -> bool {
    cancelled_at(p, spec, k, false).await
}

async fn cancelled_at(p: &dyn Provider, spec: &ResolvedSpec, k: usize, on_messages: bool) -> bool {
    let notify = Arc::new(Notify::new());
    let progress = CancelAt {
        k,
        on_messages,
        seen: AtomicUsize::new(0),
        notify: notify.clone(),
    };
    let cancelled = tokio::select! {
        biased;
        _ = notify.notified() => true,
        r = dispatch::deploy(p, spec, DeployOptions::default(), &progress) => {
            r.expect("a deploy that was not cancelled succeeds");
            false
        }
    };
    settle(spec.name()).await;
    cancelled
}

/// A spec exercising every phase: a build, an extra volume, both kinds of secret.
fn full_env(tag: &str) -> TestEnv {
    let mut env = TestEnv::new(tag, serde_json::json!({}));
    support::write(
        &env.path().join("Dockerfile"),
        &format!(
            "FROM {}\nCOPY marker.txt /marker.txt\n",
            support::IMAGE_NOBASH
        ),
    );
    // Unique content: tests building the same layers would share (and prune) each
    // other's build cache.
    let marker = format!("built {}\n", env.name);
    support::write(&env.path().join("marker.txt"), &marker);
    env.respec(
        serde_json::json!({
            "image": null,
            "build": {},
            "volumes": [{"name": "data", "path": "/data"}],
            "env": {"GENERATION": "one"},
        }),
        serde_json::Value::Null,
    );
    env.secret("CANCEL_TOKEN", "token-value", None);
    env.secret("CANCEL_FILE", "file-value", Some("/etc/cancel/file"));
    env
}

/// The phases and messages of a complete deploy of `spec` from nothing.
async fn phases_of(p: &dyn Provider, spec: &ResolvedSpec) -> (Vec<String>, Vec<String>) {
    let rec = Recorder::new();
    let d = dispatch::deploy(p, spec, DeployOptions::default(), &rec)
        .await
        .unwrap();
    dispatch::destroy(p, &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    (rec.phases(), rec.messages())
}

/// Proves the environment works: build, secrets, env and volume.
async fn check_works(p: &dyn Provider, d: &Deployment, generation: &str) {
    let out = exec_capture(
        p,
        d,
        &ExecCommand::shell(
            "cat /marker.txt; printf '%s %s ' \"$CANCEL_TOKEN\" \"$GENERATION\"; cat /etc/cancel/file; echo; touch /data/ok",
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out.out(),
        format!("built {}\ntoken-value {generation} file-value\n", d.name),
        "{out:?}"
    );
}

async fn assert_clean(name: &str, context: &str) -> usize {
    let left = support::leftovers(name).await;
    assert!(
        left.is_empty(),
        "{context}: labelled objects left behind: {left:?}"
    );
    // Containers, volumes, networks and images were each checked.
    4
}

#[tokio::test]
async fn a_deploy_cancelled_at_any_phase_is_finished_by_the_next_deploy() {
    let env = full_env("cancel-redeploy");
    let p = support::provider();
    let (phases, _) = phases_of(p.as_ref(), &env.spec).await;
    assert!(
        phases.len() >= 8,
        "connect … deliver secrets and wait for ready: {phases:?}"
    );
    let mut checked = 0;
    for (k, phase) in phases.iter().enumerate() {
        assert!(
            deploy_cancelled_at(p.as_ref(), &env.spec, k).await,
            "phase {k} ({phase}) was not reached"
        );
        let d = dispatch::deploy(
            p.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("deploy after a cancel in `{phase}` failed: {e}"));
        check_works(p.as_ref(), &d, "one").await;
        dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
            .await
            .unwrap();
        checked += assert_clean(&env.name, &format!("cancel in `{phase}`, deploy, destroy")).await;
    }
    assert_eq!(checked, 4 * phases.len());
}

#[tokio::test]
async fn a_deploy_cancelled_at_any_phase_is_cleaned_by_destroy() {
    let env = full_env("cancel-destroy");
    let p = support::provider();
    let (phases, _) = phases_of(p.as_ref(), &env.spec).await;
    for (k, phase) in phases.iter().enumerate() {
        assert!(deploy_cancelled_at(p.as_ref(), &env.spec, k).await);
        // What the CLI holds after an interrupted deploy: the record made before it.
        let d = never_deployed(p.as_ref(), &env.spec);
        dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
            .await
            .unwrap_or_else(|e| panic!("destroy after a cancel in `{phase}` failed: {e}"));
        assert_clean(&env.name, &format!("cancel in `{phase}`, destroy")).await;
    }
}

#[tokio::test]
async fn a_replacement_cancelled_at_any_phase_is_finished_by_the_next_deploy() {
    let mut env = full_env("cancel-replace");
    let p = support::provider();
    let first = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    exec_capture(
        p.as_ref(),
        &first,
        &ExecCommand::shell("echo kept > /root/kept"),
        None,
    )
    .await
    .unwrap();
    let old_spec = env.spec.clone();
    env.respec(
        serde_json::json!({
            "image": null,
            "build": {},
            "volumes": [{"name": "data", "path": "/data"}],
            "env": {"GENERATION": "two"},
        }),
        serde_json::Value::Null,
    );
    // Learn the replacement's phases, then go back to the old spec.
    let rec = Recorder::new();
    dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .unwrap();
    let phases = rec.phases();
    assert!(
        phases.contains(&"remove old container".to_string()),
        "{phases:?}"
    );
    for (k, phase) in phases.iter().enumerate() {
        dispatch::deploy(
            p.as_ref(),
            &old_spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .unwrap();
        assert!(deploy_cancelled_at(p.as_ref(), &env.spec, k).await);
        let d = dispatch::deploy(
            p.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .unwrap_or_else(|e| {
            panic!("deploy after a cancelled replacement in `{phase}` failed: {e}")
        });
        check_works(p.as_ref(), &d, "two").await;
        let kept = exec_capture(
            p.as_ref(),
            &d,
            &ExecCommand::new(["cat", "/root/kept"]),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            kept.out(),
            "kept\n",
            "the home volume survives (cancel in `{phase}`)"
        );
    }
    let d = never_deployed(p.as_ref(), &env.spec);
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert_clean(&env.name, "replacements, destroy").await;
}

#[tokio::test]
async fn a_build_cancelled_at_any_line_of_its_output_is_cleaned_by_destroy() {
    let env = full_env("cancel-build");
    let p = support::provider();
    let (_, messages) = phases_of(p.as_ref(), &env.spec).await;
    assert!(
        messages.iter().any(|m| m.starts_with("labelling")),
        "{messages:?}"
    );
    for (k, line) in messages.iter().enumerate() {
        assert!(
            cancelled_at(p.as_ref(), &env.spec, k, true).await,
            "line {k} not reached"
        );
        let d = never_deployed(p.as_ref(), &env.spec);
        dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
            .await
            .unwrap();
        assert_clean(
            &env.name,
            &format!("cancel at build line {k} `{line}`, destroy"),
        )
        .await;
    }
}

#[tokio::test]
async fn deploys_cut_off_after_increasing_delays_leave_nothing_after_destroy() {
    let env = full_env("cancel-timeout");
    let p = support::provider();
    for ms in [1u64, 5, 20, 50, 100, 200, 400, 800, 1600] {
        let last = LastPhase::default();
        let _ = tokio::time::timeout(
            Duration::from_millis(ms),
            dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &last),
        )
        .await;
        let phase = last.0.lock().unwrap().clone();
        settle(&env.name).await;
        let d = never_deployed(p.as_ref(), &env.spec);
        dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
            .await
            .unwrap();
        assert_clean(
            &env.name,
            &format!("deploy cut off after {ms} ms in `{phase}`, destroy"),
        )
        .await;
    }
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    check_works(p.as_ref(), &d, "one").await;
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert_clean(&env.name, "final deploy, destroy").await;
}
