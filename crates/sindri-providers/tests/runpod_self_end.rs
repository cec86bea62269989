//! A RunPod pod stops or deletes itself when a run nobody follows ends: the command
//! `self_end` returns, run in the pod through `exec` with the pod's `RUNPOD_API_KEY`
//! in its environment (as RunPod sets it), calls the fake RunPod API, which checks the
//! request against RunPod's published OpenAPI description. The pod is a real local
//! sshd, as in tests/runpod.rs.
#![cfg(feature = "runpod")]

#[path = "support/spec_server/mod.rs"]
mod spec_server;
#[path = "support/aws/sshd.rs"]
mod sshd;

use std::time::Duration;

use sindri_core::{DeployOptions, ExecCommand, ResolvedSpec, StatusState, dispatch};
use sindri_providers::conformance::{Recorder, exec_capture};
use sindri_providers::http::RetryPolicy;
use sindri_providers::runpod::{RunpodConfig, RunpodProvider};
use sindri_providers::ssh::SshOptions;
use sindri_spec::OnFinish;
use spec_server::runpod::{Runpod, TOKEN};
use sshd::Sshd;

#[tokio::test]
async fn a_pod_stops_then_deletes_itself_with_its_own_key() {
    let sshd = Sshd::start();
    let authorized = sshd.dir.path().join("authorized_keys");
    std::fs::write(&authorized, "").expect("authorized_keys");
    let rp = Runpod::start(sshd.port, Some(authorized)).await;
    let dir = tempfile::tempdir().expect("dir");
    let user_home = dir.path().join("user");
    std::fs::create_dir_all(user_home.join(".ssh")).expect("~/.ssh");
    std::fs::create_dir_all(dir.path().join("home")).expect("pod home");
    let key = user_home.join(".ssh/id_ed25519");
    std::fs::copy(&sshd.identity, &key).expect("key");
    std::fs::copy(
        sshd.identity.with_extension("pub"),
        key.with_extension("pub"),
    )
    .expect("public key");
    let path = dir.path().join("sindri.yaml");
    std::fs::write(
        &path,
        format!(
            "name: pod-end\ndeployment:\n  provider: runpod\n  image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04\n  home: {}\n  resources:\n    gpu: {{count: 1, type: l40s}}\nproviders:\n  runpod:\n    cloud_type: SECURE\n",
            dir.path().join("home").display()
        ),
    )
    .expect("sindri.yaml");
    let spec = sindri_spec::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let spec = ResolvedSpec::new(spec, &path);
    let (api, home) = (rp.api(), user_home.display().to_string());
    let mut c = RunpodConfig::from_lookup(|k| match k {
        "RUNPOD_API_URL" => Some(api.clone()),
        "RUNPOD_API_KEY" => Some(TOKEN.to_string()),
        "HOME" => Some(home.clone()),
        _ => None,
    })
    .expect("config");
    c.http.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    };
    c.ssh = Some(SshOptions::in_state_dir(&dir.path().join("state")));
    c.ssh_user = sshd.user.clone();
    c.poll_interval = Duration::from_millis(20);
    c.max_polls = 100;
    let p = RunpodProvider::new(spec.spec.providers.runpod.clone().unwrap_or_default(), c);
    let d = dispatch::deploy(&p, &spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_or_else(|e| panic!("deploy: {e} ({:?})", e.hint()));

    // What the run supervisor runs when the job ends and nobody follows: RunPod puts
    // the pod's key in its environment.
    let in_pod = |command: String| {
        let mut cmd = ExecCommand::shell(&command);
        cmd.env.push(("RUNPOD_API_KEY".into(), TOKEN.into()));
        cmd
    };
    let stop = dispatch::self_end(&p, &d, OnFinish::Stop)
        .await
        .expect("self_end")
        .expect("pods can stop themselves");
    assert_eq!(stop.action, OnFinish::Stop);
    assert!(!stop.command.contains(TOKEN), "{}", stop.command);
    let got = exec_capture(&p, &d, &in_pod(stop.command), None)
        .await
        .expect("exec");
    assert_eq!(got.code, 0, "{}", got.err());
    assert_eq!(
        dispatch::status(&p, &d).await.expect("status").state,
        StatusState::Stopped,
        "the GPU stopped billing"
    );

    dispatch::start(&p, &d).await.expect("start");
    let destroy = dispatch::self_end(&p, &d, OnFinish::Destroy)
        .await
        .expect("self_end")
        .expect("pods can delete themselves");
    assert_eq!(destroy.action, OnFinish::Destroy);
    let got = exec_capture(&p, &d, &in_pod(destroy.command), None)
        .await
        .expect("exec");
    assert_eq!(got.code, 0, "{}", got.err());
    assert_eq!(
        dispatch::status(&p, &d).await.expect("status").state,
        StatusState::Missing,
        "the pod is gone"
    );
    let id = d.resource_id.clone().expect("pod id");
    let ended: Vec<(String, String)> = rp
        .server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/stop") || r.method == "DELETE")
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        ended,
        vec![
            ("POST".to_string(), format!("/v1/pods/{id}/stop")),
            ("DELETE".to_string(), format!("/v1/pods/{id}")),
        ],
        "only the pod itself asked to end it"
    );
}
