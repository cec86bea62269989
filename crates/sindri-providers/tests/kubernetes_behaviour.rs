//! What a user of the Kubernetes provider notices, against the test API server: the
//! applied manifests (checked with kubernetes-validate), secrets, stop and start,
//! status explanations, sessions, plans and ownership.
#![cfg(feature = "kubernetes")]

#[path = "support/kube_server/mod.rs"]
mod kube_server;

use std::time::Duration;

use kube_server::fixture::Env;
use kube_server::{Fault, Node};
use serde_json::{Value, json};
use sindri_core::{
    DeployOptions, DestroyOptions, ErrorKind, ExecCommand, ExecIo, LogOptions, PlanAction,
    StatusState, dispatch,
};
use sindri_providers::conformance::{Recorder, SharedBuffer, exec_capture, wait_for_state};

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{} {}",
                d["kind"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn applied_manifests_are_the_exported_objects_and_pass_kubernetes_validate() {
    let mut env = Env::new(
        "full-env",
        json!({
            "home": "/home/dev",
            "ports": [8080, "9000:90/udp", {"container": 5432, "host": 15432}],
            "env": {"EDITOR": "vim", "GREETING": "hello $(USER) $HOME"},
            "volumes": [{"name": "data", "path": "/data", "size": "5GiB"}, {"name": "cache", "path": "/var/cache/app"}],
            "resources": {"cpus": 2.5, "memory": "6GiB", "disk": "40GiB", "gpu": {"count": 2, "type": "a100"}},
        }),
        json!({
            "namespace": "team-a",
            "storage_class": "fast-ssd",
            "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            "service_type": "LoadBalancer",
        }),
    )
    .await;
    env.secret("API_TOKEN", "s3cr3t-token", None);
    env.secret("TLS_CERT", "-----BEGIN CERT-----", Some("/etc/tls/tls.pem"));
    env.server.set_nodes(vec![
        Node::new("cpu-1"),
        Node::new("gpu-1")
            .gpus(4)
            .label("cloud.google.com/gke-accelerator", "nvidia-tesla-a100"),
    ]);
    let d = env.deploy().await;
    wait_for_state(env.provider.as_ref(), &d, StatusState::Running).await;

    let applied = env.applied();
    assert_eq!(
        kinds(&applied),
        [
            "Secret full-env-secrets",
            "StatefulSet full-env",
            "Service full-env"
        ]
    );
    let exported = sindri_render::kubernetes::objects(&env.spec).expect("render");
    assert_eq!(
        &applied[1..],
        &exported[..],
        "the provider applies exactly what `sindri export kubernetes` writes"
    );
    let secret = &applied[0];
    assert_eq!(
        secret["data"]["API_TOKEN"], "czNjcjN0LXRva2Vu",
        "base64 of the value"
    );
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["labels"]["sindri.managed"], "true");
    assert_eq!(
        secret["metadata"]["annotations"]["sindri.spec-hash"],
        env.spec.spec_hash()
    );
    for r in env.server.received().iter().filter(|r| r.is_apply()) {
        assert!(r.query.contains("fieldManager=sindri"), "{}", r.query);
        assert!(r.query.contains("force=true"), "{}", r.query);
        assert!(r.path.contains("/namespaces/team-a/"), "{}", r.path);
    }
    env.check_applied();

    let pod = env
        .server
        .object("pods", "team-a", "full-env-0")
        .expect("pod");
    assert_eq!(
        pod["spec"]["nodeName"], "gpu-1",
        "the GPU pod lands on the GPU node"
    );
}

#[tokio::test]
async fn minimal_manifests_pass_kubernetes_validate() {
    let env = Env::new("dev", json!({}), json!({})).await;
    env.deploy().await;
    let applied = env.applied();
    assert_eq!(kinds(&applied), ["Secret dev-secrets", "StatefulSet dev"]);
    env.check_applied();
}

#[tokio::test]
async fn secrets_reach_the_pod_and_never_the_plan() {
    let mut env = Env::new("sec", json!({}), json!({})).await;
    env.secret("API_TOKEN", "value-in-env-1", None);
    env.secret("SSH_KEY", "value-in-file-2", Some("/root/.ssh/id_ed25519"));
    let plan = dispatch::plan(env.provider.as_ref(), &env.spec, None)
        .await
        .expect("plan");
    let text = serde_json::to_string(&plan).expect("json");
    assert!(
        !text.contains("value-in-env-1") && !text.contains("dmFsdWUtaW4tZW52LTE"),
        "{text}"
    );
    let secret_artifact = plan
        .artifacts
        .iter()
        .find(|a| a.name == "sec-secrets.yaml")
        .expect("secret artifact");
    assert!(
        secret_artifact.content.contains("API_TOKEN: <redacted>"),
        "{}",
        secret_artifact.content
    );

    let d = env.deploy().await;
    let p = env.provider.as_ref();
    let out = exec_capture(p, &d, &ExecCommand::shell("echo \"$API_TOKEN\""), None)
        .await
        .expect("exec");
    assert_eq!(out.out(), "value-in-env-1\n");
    let out = exec_capture(
        p,
        &d,
        &ExecCommand::new(["cat", "/root/.ssh/id_ed25519"]),
        None,
    )
    .await
    .expect("exec");
    assert_eq!(out.out(), "value-in-file-2");
}

#[tokio::test]
async fn a_changed_secret_value_updates_the_secret_and_restarts_the_pod() {
    let mut env = Env::new("rotate", json!({}), json!({})).await;
    env.secret("TOKEN", "first", None);
    let d = env.deploy().await;
    let uid = |env: &Env| {
        env.server
            .object("pods", "default", "rotate-0")
            .map(|p| p["metadata"]["uid"].clone())
    };
    let before = uid(&env);

    env.spec.secrets[0].value = sindri_core::SecretValue::new("second");
    let plan = dispatch::plan(env.provider.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    let secret_step = plan
        .steps
        .iter()
        .find(|s| s.resource == "Secret rotate-secrets")
        .expect("secret step");
    assert_eq!(secret_step.action, PlanAction::Update);
    assert!(
        secret_step
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("secret values changed"),
        "{secret_step:?}"
    );
    let sts = plan
        .steps
        .iter()
        .find(|s| s.resource == "StatefulSet rotate")
        .expect("sts step");
    assert_eq!(sts.action, PlanAction::Keep, "{plan:?}");

    let d = env.deploy().await;
    assert_ne!(uid(&env), before, "the pod was restarted");
    let out = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::shell("echo \"$TOKEN\""),
        None,
    )
    .await
    .expect("exec");
    assert_eq!(out.out(), "second\n");
}

#[tokio::test]
async fn stop_scales_to_zero_keeping_the_home_volume_and_start_brings_it_back() {
    let env = Env::new("pause", json!({}), json!({})).await;
    let d = env.deploy().await;
    let p = env.provider.as_ref();
    let w = exec_capture(
        p,
        &d,
        &ExecCommand::shell("echo kept > /root/note.txt"),
        None,
    )
    .await
    .expect("write");
    assert_eq!(w.code, 0);
    dispatch::stop(p, &d).await.expect("stop");
    assert_eq!(
        env.server
            .object("statefulsets", "default", "pause")
            .unwrap()["spec"]["replicas"],
        0
    );
    assert!(
        env.server.object("pods", "default", "pause-0").is_none(),
        "the pod is gone"
    );
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "home-pause-0")
            .is_some(),
        "the home claim stays"
    );
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Stopped);
    let e = exec_capture(p, &d, &ExecCommand::new(["true"]), None)
        .await
        .expect_err("exec when stopped");
    assert!(e.message().contains("stopped"), "{e}");

    dispatch::start(p, &d).await.expect("start");
    assert_eq!(
        dispatch::status(p, &d).await.expect("status").state,
        StatusState::Running
    );
    let r = exec_capture(p, &d, &ExecCommand::new(["cat", "/root/note.txt"]), None)
        .await
        .expect("read");
    assert_eq!(r.out(), "kept\n");
}

#[tokio::test]
async fn destroy_keeps_volume_claims_unless_asked() {
    let env = Env::new("keep", json!({"ports": [8080]}), json!({})).await;
    let d = env.deploy().await;
    let p = env.provider.as_ref();
    let first = dispatch::destroy(p, &d, DestroyOptions { volumes: false })
        .await
        .expect("destroy");
    let mut removed = first.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        ["Secret keep-secrets", "Service keep", "StatefulSet keep"]
    );
    assert_eq!(first.kept.len(), 1, "{first:?}");
    assert!(
        first.kept[0].starts_with("PersistentVolumeClaim home-keep-0"),
        "{first:?}"
    );
    assert!(
        first.kept[0].contains("--volumes"),
        "says how to remove it: {first:?}"
    );
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "home-keep-0")
            .is_some()
    );
    assert_eq!(
        dispatch::status(p, &d).await.unwrap().state,
        StatusState::Missing
    );

    let second = dispatch::destroy(p, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy --volumes");
    assert_eq!(second.removed, ["PersistentVolumeClaim home-keep-0"]);
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "home-keep-0")
            .is_none()
    );
}

#[tokio::test]
async fn an_object_sindri_did_not_create_is_refused_and_left_alone() {
    let env = Env::new("taken", json!({}), json!({})).await;
    env.server.insert(
        "statefulsets",
        "default",
        json!({"metadata": {"name": "taken", "labels": {"app": "theirs"}}, "spec": {"replicas": 3}}),
    );
    let p = env.provider.as_ref();
    let e = dispatch::deploy(p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.message().contains("StatefulSet named `taken`")
            && e.message().contains("not created by sindri"),
        "{e}"
    );
    let e = dispatch::plan(p, &env.spec, None)
        .await
        .expect_err("plan refuses too");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        env.server
            .received()
            .iter()
            .all(|r| !r.path.contains("statefulsets")),
        "nothing was sent for their StatefulSet: {:?}",
        env.server.received()
    );
    assert_eq!(
        env.server
            .object("statefulsets", "default", "taken")
            .unwrap()["spec"]["replicas"],
        3
    );
    // And destroy does not touch it either.
    let d = sindri_providers::conformance::never_deployed(p, &env.spec);
    dispatch::destroy(p, &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy");
    assert!(
        env.server
            .object("statefulsets", "default", "taken")
            .is_some()
    );
}

#[tokio::test]
async fn another_projects_environment_of_the_same_name_is_refused() {
    let env = Env::new("shared", json!({}), json!({})).await;
    env.server.insert(
        "secrets",
        "default",
        json!({"metadata": {"name": "shared-secrets", "labels": {"sindri.managed": "true", "sindri.environment": "shared", "sindri.project": "0123456789ab"}}}),
    );
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.message()
            .contains("another project (project id 0123456789ab)"),
        "{e}"
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_deploy_and_status_says_why() {
    let env = Env::new(
        "pull",
        json!({"image": "registry.example/does-not-exist:1"}),
        json!({}),
    )
    .await;
    let p = env.provider.as_ref();
    let e = dispatch::deploy(p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("pull fails");
    assert_eq!(e.kind(), ErrorKind::Platform, "{e}");
    assert!(e.message().contains("cannot be pulled"), "{e}");
    assert!(e.hint().unwrap_or("").contains("sindri k8s load"), "{e:?}");
    let d = sindri_providers::conformance::never_deployed(p, &env.spec);
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Failed);
    let m = s.message.unwrap_or_default();
    assert!(
        m.contains("cannot be pulled") && m.contains("does-not-exist:1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_crash_loop_is_explained_with_the_last_log_lines() {
    let env = Env::new("crash", json!({"image": "acme/crashloop:2"}), json!({})).await;
    let p = env.provider.as_ref();
    let e = dispatch::deploy(p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("crash");
    assert!(
        e.message()
            .contains("CrashLoopBackOff, last exit code 1, restarted 3 times"),
        "{e}"
    );
    assert!(
        e.message()
            .contains("fatal: /etc/app/config.yaml: no such file"),
        "{e}"
    );
    let d = sindri_providers::conformance::never_deployed(p, &env.spec);
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Failed);
    assert!(
        s.message
            .unwrap_or_default()
            .contains("last log lines:\nstarting the server\nfatal")
    );
}

#[tokio::test]
async fn no_free_gpu_is_a_capacity_error_and_a_pending_status() {
    let env = Env::new(
        "gpu",
        json!({"resources": {"gpu": {"count": 2}}}),
        json!({}),
    )
    .await;
    env.server.set_nodes(vec![Node::new("small-gpu").gpus(1)]);
    let p = env.provider.as_ref();
    let e = dispatch::deploy(p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .expect_err("no gpu");
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(
        e.message()
            .contains("no node has 2 free nvidia.com/gpu GPU(s)"),
        "{e}"
    );
    assert!(
        e.message().contains("Insufficient nvidia.com/gpu"),
        "the scheduler's words are kept: {e}"
    );
    let d = sindri_providers::conformance::never_deployed(p, &env.spec);
    let s = dispatch::status(p, &d).await.expect("status");
    assert_eq!(s.state, StatusState::Starting);
    assert!(s.message.unwrap_or_default().contains("no node has 2 free"));
}

#[tokio::test]
async fn a_node_selector_no_node_matches_is_explained() {
    let env = Env::new(
        "sel",
        json!({}),
        json!({"node_selector": {"pool": "gpu-a100"}}),
    )
    .await;
    let e = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect_err("unschedulable");
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(
        e.message()
            .contains("no node matches the node selector pool=gpu-a100"),
        "{e}"
    );
}

#[tokio::test]
async fn deploy_reports_its_phases_and_waits_for_the_ready_pod() {
    let env = Env::new("phases", json!({}), json!({})).await;
    let rec = Recorder::new();
    let d = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &rec,
    )
    .await
    .expect("deploy");
    assert_eq!(
        rec.finished(),
        ["check existing objects", "apply objects", "wait for ready"]
    );
    assert!(
        rec.messages()
            .iter()
            .any(|m| m == "create StatefulSet phases"),
        "{:?}",
        rec.messages()
    );
    let pod = env
        .server
        .object("pods", "default", "phases-0")
        .expect("pod");
    assert!(
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "deploy returned only once the pod was ready"
    );
    assert!(
        env.server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/default/pods?")
                && r.contains("watch=true")),
        "readiness is watched"
    );
    assert_eq!(
        d.details.get("workload").map(String::as_str),
        Some("StatefulSet/phases")
    );
    let no_wait = dispatch::deploy(
        env.provider.as_ref(),
        &env.spec,
        DeployOptions { wait: false },
        &Recorder::new(),
    )
    .await
    .expect("deploy without waiting");
    assert_eq!(no_wait.resource_id, d.resource_id);
}

#[tokio::test]
async fn connect_has_a_tty_and_forwards_resizes() {
    let env = Env::new("tty", json!({}), json!({})).await;
    let d = env.deploy().await;
    let (mut keys, stdin) = tokio::io::duplex(1024);
    let out = SharedBuffer::default();
    let (size_tx, size_rx) = tokio::sync::watch::channel((80u16, 24u16));
    let io = ExecIo {
        stdin: Some(Box::new(stdin)),
        stdout: Box::new(out.clone()),
        stderr: Box::new(tokio::io::sink()),
        tty: Some(size_rx),
    };
    let provider = env.provider.clone();
    let session = tokio::spawn(async move { dispatch::connect(provider.as_ref(), &d, io).await });
    use tokio::io::AsyncWriteExt;
    keys.write_all(b"echo hello-from-the-shell; echo oops >&2\n")
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..1000 {
        if out.text().contains("oops") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the shell answered: {:?}", out.text());
    size_tx.send((132, 43)).unwrap();
    for _ in 0..1000 {
        if env.server.resizes().contains(&(132, 43)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    keys.write_all(b"exit 7\n").await.unwrap();
    let code = session.await.unwrap().expect("connect");
    assert_eq!(code, 7, "the shell's exit code");
    assert!(
        out.text().contains("hello-from-the-shell\n"),
        "{}",
        out.text()
    );
    assert!(
        out.text().contains("oops"),
        "with a TTY, stderr shows on the terminal: {}",
        out.text()
    );
    assert_eq!(
        env.server.resizes(),
        [(80, 24), (132, 43)],
        "the initial size, then the resize"
    );
    assert!(
        env.server
            .exec_protocols()
            .iter()
            .all(|p| p == "v5.channel.k8s.io")
    );
}

#[tokio::test]
async fn a_missing_program_is_an_error_not_an_exit_code() {
    let env = Env::new("noprog", json!({}), json!({})).await;
    let d = env.deploy().await;
    let e = exec_capture(
        env.provider.as_ref(),
        &d,
        &ExecCommand::new(["no-such-tool", "x"]),
        None,
    )
    .await
    .expect_err("missing program");
    assert_eq!(e.kind(), ErrorKind::Platform);
    assert!(e.message().contains("executable file not found"), "{e}");
}

#[tokio::test]
async fn logs_follow_streams_until_the_pod_stops_and_tail_limits() {
    let env = Env::new("logs", json!({}), json!({})).await;
    let d = env.deploy().await;
    for i in 1..=5 {
        env.server.append_log("logs-0", &format!("line {i}"));
    }
    let mut tail = SharedBuffer::default();
    dispatch::logs(
        env.provider.as_ref(),
        &d,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
        &mut tail,
    )
    .await
    .expect("logs");
    assert_eq!(tail.text(), "line 4\nline 5\n");

    let followed = SharedBuffer::default();
    let provider = env.provider.clone();
    let d2 = d.clone();
    let mut sink = followed.clone();
    let task = tokio::spawn(async move {
        dispatch::logs(
            provider.as_ref(),
            &d2,
            LogOptions {
                follow: true,
                tail: None,
            },
            &mut sink,
        )
        .await
    });
    for _ in 0..1000 {
        if followed.text().contains("line 5") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.server.append_log("logs-0", "after follow started");
    for _ in 0..1000 {
        if followed.text().contains("after follow started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dispatch::stop(env.provider.as_ref(), &d)
        .await
        .expect("stop");
    task.await.unwrap().expect("follow ends when the pod stops");
    let text = followed.text();
    assert!(
        text.starts_with("container logs started\nline 1\n"),
        "{text}"
    );
    assert!(text.ends_with("line 5\nafter follow started\n"), "{text}");
}

#[tokio::test]
async fn plans_name_changed_fields_removed_ports_and_replaced_volumes() {
    let mut env = Env::new("plans", json!({"ports": [8080]}), json!({})).await;
    let d = env.deploy().await;
    let p = env.provider.clone();

    env.spec
        .spec
        .deployment
        .env
        .insert("NEW_VAR".into(), "1".into());
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    let sts = plan
        .steps
        .iter()
        .find(|s| s.resource == "StatefulSet plans")
        .unwrap();
    assert_eq!(sts.action, PlanAction::Update);
    assert!(
        sts.reason
            .as_deref()
            .unwrap()
            .contains("spec.template.spec.containers[0].env"),
        "{sts:?}"
    );

    env.spec.spec.deployment.ports.clear();
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    let svc = plan
        .steps
        .iter()
        .find(|s| s.resource == "Service plans")
        .expect("service step");
    assert_eq!(svc.action, PlanAction::Delete);
    env.deploy().await;
    assert!(
        env.server.object("services", "default", "plans").is_none(),
        "the Service is gone"
    );

    env.spec.spec.deployment.resources.disk = Some("50GiB".parse().unwrap());
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    let sts = plan
        .steps
        .iter()
        .find(|s| s.resource == "StatefulSet plans")
        .unwrap();
    assert_eq!(sts.action, PlanAction::Replace, "{plan:?}");
    assert!(
        sts.reason.as_deref().unwrap().contains("volumes changed"),
        "{sts:?}"
    );
    let before = env
        .server
        .object("statefulsets", "default", "plans")
        .unwrap()["metadata"]["uid"]
        .clone();
    let d = env.deploy().await;
    assert_ne!(
        env.server
            .object("statefulsets", "default", "plans")
            .unwrap()["metadata"]["uid"],
        before
    );
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "home-plans-0")
            .is_some(),
        "the volume survives"
    );
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    assert!(plan.is_noop(), "{:?}", plan.steps);
}

#[tokio::test]
async fn an_overridden_template_is_applied_document_by_document() {
    let mut env = Env::new("custom", json!({}), json!({})).await;
    let templates = env.dir.path().join(".sindri/templates");
    std::fs::create_dir_all(&templates).unwrap();
    let builtin = sindri_render::builtin_template("kubernetes.yaml").unwrap();
    let extra = "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ name ~ \"-extra\" }}\n  labels: {{ labels }}\ndata:\n  greeting: hello\n";
    std::fs::write(
        templates.join("kubernetes.yaml"),
        format!("{builtin}{extra}"),
    )
    .unwrap();
    env.refresh_provider();
    let d = env.deploy().await;
    let applied = env.applied();
    assert_eq!(
        kinds(&applied),
        [
            "Secret custom-secrets",
            "StatefulSet custom",
            "ConfigMap custom-extra"
        ]
    );
    env.check_applied();
    let report = dispatch::destroy(env.provider.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(
        report
            .removed
            .contains(&"ConfigMap custom-extra".to_string()),
        "{report:?}"
    );

    std::fs::write(
        templates.join("kubernetes.yaml"),
        format!("{builtin}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unlabelled\n"),
    )
    .unwrap();
    let e = dispatch::plan(env.provider.as_ref(), &env.spec, None)
        .await
        .expect_err("unlabelled object");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.message().contains("ConfigMap unlabelled") && e.message().contains("ownership labels"),
        "{e}"
    );
}

fn sts_uid(env: &Env, name: &str) -> Value {
    env.server
        .object("statefulsets", &env.ns, name)
        .expect("statefulset")["metadata"]["uid"]
        .clone()
}

#[tokio::test]
async fn sizes_in_decimal_units_are_sent_as_the_server_keeps_them_so_a_redeploy_changes_nothing() {
    let env = Env::new(
        "sizes",
        json!({
            "volumes": [{"name": "data", "path": "/data", "size": "10GB"}],
            "resources": {"cpus": 0.25, "memory": "1.5GB", "disk": "300MB"},
        }),
        json!({}),
    )
    .await;
    let d = env.deploy().await;
    let live = env
        .server
        .object("statefulsets", "default", "sizes")
        .unwrap();
    let sent = env
        .applied()
        .into_iter()
        .find(|b| b["kind"] == "StatefulSet")
        .unwrap();
    for pointer in [
        "/spec/volumeClaimTemplates/0/spec/resources/requests/storage",
        "/spec/volumeClaimTemplates/1/spec/resources/requests/storage",
        "/spec/template/spec/containers/0/resources/requests/memory",
        "/spec/template/spec/containers/0/resources/limits/cpu",
    ] {
        assert_eq!(
            sent.pointer(pointer),
            live.pointer(pointer),
            "{pointer}: sent as the API server keeps it"
        );
    }
    assert_eq!(
        live.pointer("/spec/volumeClaimTemplates/0/spec/resources/requests/storage"),
        Some(&json!("300M"))
    );
    assert_eq!(
        live.pointer("/spec/template/spec/containers/0/resources/requests/memory"),
        Some(&json!("1500M"))
    );
    let uid = sts_uid(&env, "sizes");

    let plan = dispatch::plan(env.provider.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    assert!(plan.is_noop(), "nothing changed: {:?}", plan.steps);
    env.deploy().await;
    assert_eq!(
        sts_uid(&env, "sizes"),
        uid,
        "the StatefulSet was not recreated"
    );
    assert_eq!(
        env.applied()
            .iter()
            .filter(|b| b["kind"] == "StatefulSet")
            .count(),
        1,
        "the second deploy applied nothing to the StatefulSet"
    );
}

#[tokio::test]
async fn a_template_writing_quantities_its_own_way_is_compared_by_value() {
    let mut env = Env::new("raw", json!({}), json!({})).await;
    // The override writes the home claim's size in bytes; the server keeps `300M`.
    env.canonical_quantities = false;
    let templates = env.dir.path().join(".sindri/templates");
    std::fs::create_dir_all(&templates).unwrap();
    let exported = sindri_render::Renderer::new(None)
        .and_then(|r| r.render(sindri_render::ExportFormat::Kubernetes, &env.spec))
        .expect("render")
        .remove(0)
        .content;
    let raw = exported.replace("storage: \"10Gi\"", "storage: \"300000000\"");
    assert_ne!(raw, exported, "the size is written in bytes");
    std::fs::write(templates.join("kubernetes.yaml"), raw).unwrap();
    env.refresh_provider();
    let d = env.deploy().await;
    assert_eq!(
        env.server.object("statefulsets", "default", "raw").unwrap()["spec"]["volumeClaimTemplates"]
            [0]["spec"]["resources"]["requests"]["storage"],
        "300M"
    );
    let plan = dispatch::plan(env.provider.as_ref(), &env.spec, Some(&d))
        .await
        .expect("plan");
    assert!(plan.is_noop(), "300000000 is 300M: {:?}", plan.steps);
}

/// `kubernetes.yaml` with a Deployment whose pod mounts a claim of its own.
const DEPLOYMENT_TEMPLATE: &str = r#"# A Deployment and its own volume claim instead of a StatefulSet.
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ name ~ "-home" }}
  labels: {{ labels }}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 5Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ name }}
  labels: {{ labels }}
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels: {{ labels }}
  template:
    metadata:
      labels: {{ labels }}
    spec:
      containers:
        - name: {{ name }}
          image: {{ spec.deployment.image }}
          stdin: true
          tty: true
          volumeMounts:
            - name: home
              mountPath: /root
      volumes:
        - name: home
          persistentVolumeClaim:
            claimName: {{ name ~ "-home" }}
"#;

#[tokio::test]
async fn a_deployment_with_its_own_claim_keeps_the_claim_unless_destroy_says_volumes() {
    let mut env = Env::new("dep", json!({}), json!({})).await;
    let templates = env.dir.path().join(".sindri/templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("kubernetes.yaml"), DEPLOYMENT_TEMPLATE).unwrap();
    env.refresh_provider();
    let p = env.provider.clone();
    let d = env.deploy().await;
    assert_eq!(
        kinds(&env.applied()),
        [
            "Secret dep-secrets",
            "PersistentVolumeClaim dep-home",
            "Deployment dep"
        ]
    );
    assert_eq!(d.detail("workload"), Some("Deployment/dep"));
    assert_eq!(
        d.detail("extra_kinds"),
        None,
        "the claim is not recorded as an object destroy removes unasked"
    );
    let w = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("echo kept > /root/note.txt"),
        None,
    )
    .await
    .expect("write");
    assert_eq!(w.code, 0);

    dispatch::stop(p.as_ref(), &d).await.expect("stop");
    assert_eq!(
        env.server.object("deployments", "default", "dep").unwrap()["spec"]["replicas"],
        0
    );
    assert!(env.server.objects("pods", "default").is_empty(), "no pod");
    assert_eq!(
        dispatch::status(p.as_ref(), &d).await.unwrap().state,
        StatusState::Stopped
    );
    dispatch::start(p.as_ref(), &d).await.expect("start");
    let r = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::new(["cat", "/root/note.txt"]),
        None,
    )
    .await
    .expect("read");
    assert_eq!(r.out(), "kept\n", "the new pod sees the claim's data");

    let first = dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: false })
        .await
        .expect("destroy");
    let mut removed = first.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        ["Deployment dep", "Secret dep-secrets"],
        "{first:?}"
    );
    assert!(
        first.kept.len() == 1 && first.kept[0].starts_with("PersistentVolumeClaim dep-home"),
        "{first:?}"
    );
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "dep-home")
            .is_some()
    );
    // A record written by an earlier sindri listed the claim's kind for destroy.
    let mut old = d.clone();
    old.details
        .insert("extra_kinds".into(), "v1/PersistentVolumeClaim".into());
    let again = dispatch::destroy(p.as_ref(), &old, DestroyOptions { volumes: false })
        .await
        .expect("destroy with an old record");
    assert!(again.removed.is_empty(), "{again:?}");
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "dep-home")
            .is_some(),
        "still kept"
    );

    let last = dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .expect("destroy --volumes");
    assert_eq!(last.removed, ["PersistentVolumeClaim dep-home"]);
    assert!(
        env.server
            .object("persistentvolumeclaims", "default", "dep-home")
            .is_none()
    );
}

#[tokio::test]
async fn a_volume_claim_of_that_name_sindri_did_not_create_is_refused_before_any_write() {
    let env = Env::new("claimed", json!({}), json!({})).await;
    env.server.insert(
        "persistentvolumeclaims",
        "default",
        json!({
            "metadata": {"name": "home-claimed-0", "labels": {"app": "postgres"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }),
    );
    let p = env.provider.as_ref();
    for e in [
        dispatch::deploy(p, &env.spec, DeployOptions::default(), &Recorder::new())
            .await
            .expect_err("deploy refuses"),
        dispatch::plan(p, &env.spec, None)
            .await
            .expect_err("plan refuses"),
    ] {
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(
            e.message().contains(
                "a PersistentVolumeClaim named `home-claimed-0` already exists in namespace `default` and it was not created by sindri"
            ) && e
                .message()
                .contains("StatefulSet claimed would mount it as its `home` volume"),
            "{e}"
        );
    }
    assert!(
        env.server
            .received()
            .iter()
            .all(|r| r.query.contains("dryRun=All")),
        "nothing was written: {:?}",
        env.server.received()
    );
    assert!(
        env.server
            .object("statefulsets", "default", "claimed")
            .is_none()
    );
    let claim = env
        .server
        .object("persistentvolumeclaims", "default", "home-claimed-0")
        .unwrap();
    assert_eq!(claim["metadata"]["labels"], json!({"app": "postgres"}));
}

#[tokio::test]
async fn sessions_work_over_the_v4_exec_protocol_and_copies_in_say_what_it_lacks() {
    let env = Env::new("old", json!({}), json!({})).await;
    // An API server before 1.30 speaks v4.channel.k8s.io, which has no way to close
    // stdin on its own.
    env.server.exec_subprotocols(&["v4.channel.k8s.io"]);
    let d = env.deploy().await;
    let p = env.provider.as_ref();
    let out = exec_capture(
        p,
        &d,
        &ExecCommand::shell("echo out; echo err >&2; exit 3"),
        None,
    )
    .await
    .expect("exec over v4");
    assert_eq!(
        (out.code, out.out(), out.err()),
        (3, "out\n".into(), "err\n".into())
    );

    let dir = tempfile::tempdir().unwrap();
    let w = exec_capture(
        p,
        &d,
        &ExecCommand::shell("printf 'copied\\n' > /tmp/out.txt"),
        None,
    )
    .await
    .expect("write");
    assert_eq!(w.code, 0);
    dispatch::copy_out(p, &d, "/tmp/out.txt", dir.path())
        .await
        .expect("copy_out over v4");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "copied\n"
    );

    let local = dir.path().join("in.txt");
    std::fs::write(&local, "data").unwrap();
    let e = dispatch::copy_in(p, &d, &local, "/tmp/in.txt")
        .await
        .expect_err("copy_in needs v5");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.hint().unwrap_or("").contains("v4 exec protocol")
            && e.hint().unwrap_or("").contains("1.30"),
        "{e:?}"
    );
    assert!(
        env.server
            .exec_protocols()
            .iter()
            .all(|p| p == "v4.channel.k8s.io"),
        "{:?}",
        env.server.exec_protocols()
    );
}

#[tokio::test]
async fn list_owned_finds_environments_in_every_namespace_and_falls_back_on_403() {
    let env = Env::new("here", json!({}), json!({})).await;
    env.deploy().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = kube_server::fixture::make_spec(
        other_dir.path(),
        "there",
        json!({}),
        json!({"namespace": "team-b"}),
    );
    let other_provider = kube_server::fixture::provider_for(
        &env.server,
        other_dir.path(),
        &other,
        kube_server::fixture::test_timeouts(),
    );
    dispatch::deploy(
        other_provider.as_ref(),
        &other,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("deploy in team-b");

    let found = |list: &[sindri_core::Deployment]| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    d.detail("namespace").unwrap_or("").to_string(),
                    d.spec_hash.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let all = dispatch::list_owned(env.provider.as_ref())
        .await
        .expect("list");
    assert_eq!(
        found(&all),
        [
            ("here".into(), "default".into(), env.spec.spec_hash()),
            ("there".into(), "team-b".into(), other.spec_hash()),
        ]
    );
    assert!(
        env.server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /apis/apps/v1/statefulsets?")),
        "one list across namespaces"
    );

    // A Role (not a ClusterRole): cluster-wide lists are forbidden.
    for path in [
        "/api/v1/secrets",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/deployments",
    ] {
        env.server.fault(Fault::new(
            "GET",
            path,
            403,
            "Forbidden",
            "User \"alice\" cannot list resource at the cluster scope",
        ));
    }
    let mine = dispatch::list_owned(env.provider.as_ref())
        .await
        .expect("list in the provider's namespace");
    assert_eq!(
        found(&mine),
        [("here".into(), "default".into(), env.spec.spec_hash())]
    );
}
