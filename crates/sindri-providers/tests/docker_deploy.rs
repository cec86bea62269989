//! Docker-specific deploy behaviour on the real engine: labels, limits, ports, builds,
//! spec changes, ownership conflicts, missing images, Docker-in-Docker modes, GPUs.
#![cfg(feature = "docker")]

mod support;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use sindri_core::{
    DeployOptions, DeploymentState, DestroyOptions, ErrorKind, ExecCommand, PlanAction,
    StatusState, dispatch,
};
use sindri_providers::conformance::{Recorder, exec_capture, wait_for_state};
use support::TestEnv;

fn container(env: &TestEnv) -> String {
    sindri_providers::docker::container_name(&env.name)
}

#[tokio::test]
async fn every_object_is_labelled_and_each_phase_is_reported() {
    let env = TestEnv::new(
        "labels",
        serde_json::json!({"volumes": [{"name": "data", "path": "/data"}]}),
    );
    let p = support::provider();
    let rec = Recorder::new();
    let d = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .expect("deploy");
    assert_eq!(d.state, DeploymentState::Ready);
    let phases = rec.phases();
    for want in [
        "connect to docker",
        "find image",
        "create network",
        "create volumes",
        "create container",
        "start container",
        "deliver secrets and wait for ready",
    ] {
        assert!(
            phases.iter().any(|p| p == want),
            "phase `{want}` missing: {phases:?}"
        );
    }
    assert_eq!(
        rec.phases(),
        rec.finished(),
        "every phase that starts finishes"
    );

    let docker = support::docker().await;
    let expect = |labels: &std::collections::HashMap<String, String>, what: &str| {
        assert_eq!(
            labels.get("sindri.managed").map(String::as_str),
            Some("true"),
            "{what}"
        );
        assert_eq!(labels.get("sindri.environment"), Some(&env.name), "{what}");
        assert_eq!(
            labels.get("sindri.project"),
            Some(&env.spec.project),
            "{what}"
        );
        assert_eq!(
            labels.get("sindri.spec-hash"),
            Some(&env.spec.spec_hash()),
            "{what}"
        );
    };
    let c = docker
        .inspect_container(&container(&env), None)
        .await
        .expect("container");
    expect(
        c.config.as_ref().unwrap().labels.as_ref().unwrap(),
        "container",
    );
    let net = docker
        .inspect_network(&format!("sindri-{}", env.name), None)
        .await
        .expect("network");
    expect(net.labels.as_ref().unwrap(), "network");
    for v in [
        format!("sindri-{}-home", env.name),
        format!("sindri-{}-data", env.name),
    ] {
        let vol = docker.inspect_volume(&v).await.expect("volume");
        expect(&vol.labels, &v);
    }
    let hc = c.host_config.unwrap();
    assert_eq!(hc.init, Some(true), "docker-init is PID 1");
    let cfg = c.config.unwrap();
    assert_eq!(cfg.entrypoint.as_ref().unwrap()[0], "/bin/sh");
    assert!(
        cfg.cmd.is_none_or(|c| c.is_empty()),
        "the image's CMD is not run"
    );
    // The extra volume is mounted and writable.
    let w = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("echo x > /data/f && cat /data/f"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(w.out(), "x\n");
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert_eq!(support::leftovers(&env.name).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_changed_spec_replaces_the_container_and_keeps_home() {
    let mut env = TestEnv::new("respec", serde_json::json!({"env": {"COLOR": "red"}}));
    let p = support::provider();
    let d1 = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let w = exec_capture(
        p.as_ref(),
        &d1,
        &ExecCommand::shell("echo kept > $HOME/notes.txt"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(w.code, 0, "{w:?}");

    // Unchanged: nothing is created or started again.
    let rec = Recorder::new();
    let same = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .unwrap();
    assert_eq!(same.resource_id, d1.resource_id);
    assert!(
        !rec.phases()
            .iter()
            .any(|p| p.contains("create") || p.contains("start")),
        "an unchanged deploy creates and starts nothing: {:?}",
        rec.phases()
    );

    env.respec(
        serde_json::json!({"env": {"COLOR": "blue"}}),
        serde_json::Value::Null,
    );
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d1))
        .await
        .unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.resource.starts_with("container "))
        .unwrap();
    assert_eq!(step.action, PlanAction::Replace, "{plan:?}");
    assert!(
        step.reason.as_deref().unwrap().contains("spec changed"),
        "{step:?}"
    );
    let home_step = plan
        .steps
        .iter()
        .find(|s| s.resource.ends_with("-home"))
        .unwrap();
    assert_eq!(
        home_step.action,
        PlanAction::Keep,
        "volumes survive a replace"
    );
    // Plan changed nothing: the old container still runs.
    let still = exec_capture(p.as_ref(), &d1, &ExecCommand::shell("echo $COLOR"), None)
        .await
        .unwrap();
    assert_eq!(still.out(), "red\n");

    let d2 = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_ne!(
        d2.resource_id, d1.resource_id,
        "a changed spec recreates the container"
    );
    let color = exec_capture(
        p.as_ref(),
        &d2,
        &ExecCommand::shell("echo $COLOR; cat $HOME/notes.txt"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(color.out(), "blue\nkept\n", "new env, same home volume");
    dispatch::destroy(p.as_ref(), &d2, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn destroy_keeps_the_home_volume_and_says_how_to_remove_it() {
    let env = TestEnv::new("keep-home", serde_json::json!({}));
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("echo survived > /root/mark"),
        None,
    )
    .await
    .unwrap();
    let report = dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: false })
        .await
        .unwrap();
    assert_eq!(
        report.removed,
        vec![format!("container sindri-{}", env.name)]
    );
    let home = format!("sindri-{}-home", env.name);
    let kept = report
        .kept
        .iter()
        .find(|k| k.contains(&home))
        .expect("home volume reported kept");
    assert!(
        kept.contains("home directory") && kept.contains("--volumes"),
        "{kept}"
    );
    let s = dispatch::status(p.as_ref(), &d).await.unwrap();
    assert_eq!(s.state, StatusState::Missing);
    assert!(
        s.message.unwrap().contains(&home),
        "status mentions the kept volume"
    );
    let listed = dispatch::list_owned(p.as_ref()).await.unwrap();
    let orphan = listed
        .iter()
        .find(|o| o.name == env.name)
        .expect("kept volume still listed");
    assert_eq!(orphan.state, DeploymentState::Creating);
    assert!(orphan.resource_id.is_none());

    let again = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let mark = exec_capture(
        p.as_ref(),
        &again,
        &ExecCommand::new(["cat", "/root/mark"]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        mark.out(),
        "survived\n",
        "the redeployed environment finds its home"
    );
    let all = dispatch::destroy(p.as_ref(), &again, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(all.removed.iter().any(|r| r.contains(&home)), "{all:?}");
    assert!(
        all.removed.iter().any(|r| r.starts_with("network ")),
        "{all:?}"
    );
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn a_container_sindri_did_not_create_is_never_touched() {
    let mut env = TestEnv::new("foreign", serde_json::json!({}));
    let name = container(&env);
    env.extra_containers.push(name.clone());
    let docker = support::docker().await;
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(support::IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "60".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("create a foreign container");
    let p = support::provider();
    let e = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("not created by sindri"), "{e}");
    let e = dispatch::plan(p.as_ref(), &env.spec, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let d = sindri_providers::conformance::never_deployed(p.as_ref(), &env.spec);
    let report = dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(report.kept[0].contains("left alone"), "{report:?}");
    let e = exec_capture(p.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let still = docker
        .inspect_container(&name, None)
        .await
        .expect("still there");
    assert!(
        !still
            .config
            .unwrap()
            .labels
            .unwrap_or_default()
            .contains_key("sindri.managed")
    );
}

#[tokio::test]
async fn the_same_name_in_another_project_is_a_conflict() {
    let env = TestEnv::new("two-projects", serde_json::json!({}));
    let other_dir = tempfile::tempdir().unwrap();
    let other = support::make_spec(
        &env.name,
        other_dir.path(),
        serde_json::json!({}),
        serde_json::Value::Null,
    );
    assert_ne!(other.project, env.spec.project);
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let e = dispatch::deploy(
        p.as_ref(),
        &other,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("another project"), "{e}");
    // Destroying the other project's environment leaves this one alone.
    let od = sindri_providers::conformance::never_deployed(p.as_ref(), &other);
    dispatch::destroy(p.as_ref(), &od, DestroyOptions { volumes: true })
        .await
        .unwrap();
    wait_for_state(p.as_ref(), &d, StatusState::Running).await;
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_image_without_build_says_so_and_creates_nothing() {
    let env = TestEnv::new(
        "no-image",
        serde_json::json!({"image": "sindri-test/definitely-not-here:1"}),
    );
    let p = support::provider();
    let plan = dispatch::plan(p.as_ref(), &env.spec, None).await.unwrap();
    let img = plan
        .steps
        .iter()
        .find(|s| s.resource.starts_with("image "))
        .unwrap();
    assert_eq!(img.action, PlanAction::Create);
    assert!(img.reason.as_deref().unwrap().contains("pull"));
    let rec = Recorder::new();
    let e = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("sindri-test/definitely-not-here:1"),
        "{e}"
    );
    assert!(e.message().contains("pulling it failed"), "{e}");
    assert!(
        e.hint().unwrap().contains("deployment.build"),
        "{:?}",
        e.hint()
    );
    assert!(
        support::leftovers(&env.name).await.is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn an_image_is_built_from_the_dockerfile_honouring_dockerignore() {
    let mut env = TestEnv::new("build", serde_json::json!({}));
    let ctx = env.path().to_path_buf();
    support::write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM {}\nARG GREETING=none\nCOPY . /ctx/\nRUN echo \"$GREETING\" > /greeting\n",
            support::IMAGE_NOBASH
        ),
    );
    support::write(&ctx.join("hello.txt"), "hello v1\n");
    support::write(&ctx.join("ignored.log"), "must not be sent\n");
    support::write(&ctx.join(".dockerignore"), "*.log\n");
    env.respec(
        serde_json::json!({"image": null, "build": {"args": {"GREETING": "hi there"}}}),
        serde_json::Value::Null,
    );
    let p = support::provider();
    let rec = Recorder::new();
    let d = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .expect("deploy with build");
    assert!(rec.phases().contains(&"build image".to_string()));
    assert!(
        rec.messages().iter().any(|m| m.contains("Step 1/")),
        "build output is streamed as progress: {:?}",
        rec.messages()
    );
    let out = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell(
            "cat /ctx/hello.txt /greeting; test -e /ctx/ignored.log && echo LEAKED",
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out.out(),
        "hello v1\nhi there\n",
        "context, args and .dockerignore apply"
    );

    let docker = support::docker().await;
    let tag = format!("sindri-{}:{}", env.name, env.spec.project);
    let image = docker
        .inspect_image(&tag)
        .await
        .expect("built image is tagged");
    let labels = image.config.unwrap().labels.unwrap();
    assert_eq!(labels.get("sindri.environment"), Some(&env.name));
    assert_eq!(labels.get("sindri.spec-hash"), Some(&env.spec.spec_hash()));
    assert!(labels.contains_key("sindri.build-hash"));

    // Unchanged inputs: nothing rebuilt, same container.
    let rec2 = Recorder::new();
    let same = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec2)
        .await
        .unwrap();
    assert_eq!(same.resource_id, d.resource_id);
    assert!(
        !rec2.phases().contains(&"build image".to_string()),
        "{:?}",
        rec2.phases()
    );
    // An ignored file changing does not matter either.
    support::write(&ctx.join("ignored.log"), "still ignored\n");
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&same))
        .await
        .unwrap();
    assert!(plan.is_noop(), "{:?}", plan.steps);

    // A context file changing rebuilds and replaces.
    support::write(&ctx.join("hello.txt"), "hello v2\n");
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&same))
        .await
        .unwrap();
    let c = plan
        .steps
        .iter()
        .find(|s| s.resource.starts_with("container "))
        .unwrap();
    assert_eq!(c.action, PlanAction::Replace);
    assert!(
        c.reason
            .as_deref()
            .unwrap()
            .contains("build inputs changed")
    );
    let d2 = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_ne!(d2.resource_id, d.resource_id);
    let v2 = exec_capture(
        p.as_ref(),
        &d2,
        &ExecCommand::new(["cat", "/ctx/hello.txt"]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(v2.out(), "hello v2\n");

    let plain = dispatch::destroy(p.as_ref(), &d2, DestroyOptions { volumes: false })
        .await
        .unwrap();
    assert!(
        plain.kept.iter().any(|k| k.starts_with("image ")),
        "images are kept: {plain:?}"
    );
    assert!(docker.inspect_image(&tag).await.is_ok());
    let all = dispatch::destroy(p.as_ref(), &d2, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(
        all.removed.iter().any(|r| r.starts_with("image ")),
        "{all:?}"
    );
    assert_eq!(support::leftovers(&env.name).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_failing_build_is_reported_with_its_step() {
    let mut env = TestEnv::new("build-fail", serde_json::json!({}));
    support::write(
        &env.path().join("Dockerfile"),
        &format!(
            "FROM {}\nRUN echo about to fail && exit 7\n",
            support::IMAGE_NOBASH
        ),
    );
    env.respec(
        serde_json::json!({"image": null, "build": {}}),
        serde_json::Value::Null,
    );
    let p = support::provider();
    let rec = Recorder::new();
    let e = dispatch::deploy(p.as_ref(), &env.spec, DeployOptions::default(), &rec)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Platform, "{e}");
    assert!(e.message().contains("failed"), "{e}");
    assert!(
        e.message().contains("7"),
        "the exit code of the step is shown: {e}"
    );
    assert!(rec.messages().iter().any(|m| m.contains("about to fail")));
    assert!(support::leftovers(&env.name).await.is_empty());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn ports_are_published_and_a_taken_host_port_is_named() {
    let port = free_port();
    let env = TestEnv::new(
        "ports",
        serde_json::json!({"ports": [format!("{port}:80")]}),
    );
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let s = dispatch::status(p.as_ref(), &d).await.unwrap();
    assert_eq!(s.endpoints.len(), 1, "{s:?}");
    assert_eq!(s.endpoints[0].name, "port 80/tcp");
    assert_eq!(s.endpoints[0].address, format!("tcp://127.0.0.1:{port}"));

    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let env2 = TestEnv::new(
        "ports-taken",
        serde_json::json!({"ports": [format!("{taken}:80")]}),
    );
    let e = dispatch::deploy(
        p.as_ref(),
        &env2.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(
        e.message().contains(&format!("host port {taken}/tcp")),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("deployment.ports"));
    drop(held);
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    let d2 = sindri_providers::conformance::never_deployed(p.as_ref(), &env2.spec);
    dispatch::destroy(p.as_ref(), &d2, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env2.name).await.is_empty());
}

#[tokio::test]
async fn cpu_and_memory_limits_reach_the_cgroup() {
    let env = TestEnv::new(
        "limits",
        serde_json::json!({"resources": {"cpus": 0.5, "memory": "64MiB"}}),
    );
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let docker = support::docker().await;
    let hc: HostConfig = docker
        .inspect_container(&container(&env), None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    let mem = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell(
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        mem.out().trim(),
        "67108864",
        "the kernel enforces the limit"
    );
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn dind_socket_mounts_the_engine_and_privileged_is_privileged() {
    let mut env = TestEnv::new("dind", serde_json::json!({}));
    env.respec(
        serde_json::json!({}),
        serde_json::json!({"docker": {"dind": "socket"}}),
    );
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let sock = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("test -S /var/run/docker.sock && echo socket"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(sock.out(), "socket\n");

    // Privileged: the request asks for it. Whether the engine may grant it depends on
    // the engine (a nested or rootless one cannot); refusing must be explained.
    env.respec(
        serde_json::json!({}),
        serde_json::json!({"docker": {"dind": "privileged"}}),
    );
    let outcome = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await;
    if let Err(e) = &outcome {
        assert!(
            e.hint().unwrap_or("").contains("dind: socket"),
            "unexplained refusal: {e}"
        );
    }
    let docker = support::docker().await;
    let c = docker
        .inspect_container(&container(&env), None)
        .await
        .unwrap();
    assert_eq!(c.host_config.unwrap().privileged, Some(true));
    assert_ne!(
        Some(c.id.unwrap()),
        d.resource_id,
        "changing the mode replaced the container"
    );
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn sysbox_and_unknown_runtimes_are_refused_before_anything_is_created() {
    let mut env = TestEnv::new("sysbox", serde_json::json!({}));
    let p = support::provider();
    let info = support::docker().await.info().await.unwrap();
    if !info
        .runtimes
        .unwrap_or_default()
        .contains_key("sysbox-runc")
    {
        env.respec(
            serde_json::json!({}),
            serde_json::json!({"docker": {"dind": "sysbox"}}),
        );
        let e = dispatch::deploy(
            p.as_ref(),
            &env.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(
            e.message().contains("sysbox-runc") && e.message().contains("runc"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("Sysbox"));
    }
    env.respec(
        serde_json::json!({}),
        serde_json::json!({"docker": {"runtime": "no-such-runtime"}}),
    );
    let e = dispatch::plan(p.as_ref(), &env.spec, None)
        .await
        .unwrap_err();
    assert!(e.message().contains("no-such-runtime"), "{e}");
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn a_gpu_request_on_an_engine_without_gpus_is_a_capacity_error() {
    let env = TestEnv::new(
        "gpu",
        serde_json::json!({"resources": {"gpu": {"count": 1}}}),
    );
    let p = support::provider();
    let e = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(e.hint().unwrap().contains("nvidia-ctk"), "{:?}", e.hint());
    let d = sindri_providers::conformance::never_deployed(p.as_ref(), &env.spec);
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn deploy_without_wait_and_status_from_the_engine() {
    let env = TestEnv::new("nowait", serde_json::json!({}));
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions { wait: false },
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_eq!(d.state, DeploymentState::Creating, "not waited for");
    wait_for_state(p.as_ref(), &d, StatusState::Running).await;

    // Killed behind sindri's back: status says so in words, deploy brings it back.
    let docker = support::docker().await;
    docker
        .kill_container(
            &container(&env),
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    wait_for_state(p.as_ref(), &d, StatusState::Failed).await;
    let s = dispatch::status(p.as_ref(), &d).await.unwrap();
    assert_eq!(
        s.message.as_deref(),
        Some("exited with code 137 (killed)"),
        "{s:?}"
    );
    let again = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        again.resource_id, d.resource_id,
        "same spec: the container is restarted, not replaced"
    );
    wait_for_state(p.as_ref(), &again, StatusState::Running).await;
    dispatch::destroy(p.as_ref(), &again, DestroyOptions { volumes: true })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tag_moved_to_another_image_is_a_change_to_deploy() {
    let mut env = TestEnv::new("retag", serde_json::json!({}));
    let repo = format!("sindri-test/retag-{}", env.name);
    let tag = format!("{repo}:1");
    env.extra_tags.push(tag.clone());
    let docker = support::docker().await;
    let retag = |image: &'static str| {
        let docker = docker.clone();
        let repo = repo.clone();
        async move {
            let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
                .repo(&repo)
                .tag("1")
                .build();
            docker.tag_image(image, Some(opts)).await.expect("tag");
        }
    };
    retag(support::IMAGE).await;
    env.respec(serde_json::json!({"image": tag}), serde_json::Value::Null);
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let bash = ExecCommand::shell("command -v bash >/dev/null && echo bash || echo none");
    let before = exec_capture(p.as_ref(), &d, &bash, None).await.unwrap();
    assert_eq!(before.out(), "bash\n");

    retag(support::IMAGE_NOBASH).await;
    let plan = dispatch::plan(p.as_ref(), &env.spec, Some(&d))
        .await
        .unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.resource.starts_with("container "))
        .unwrap();
    assert_eq!(step.action, PlanAction::Replace, "{plan:?}");
    assert!(
        step.reason.as_deref().unwrap().contains("another image"),
        "{step:?}"
    );
    let d2 = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_ne!(d2.resource_id, d.resource_id);
    let after = exec_capture(p.as_ref(), &d2, &bash, None).await.unwrap();
    assert_eq!(after.out(), "none\n", "the new image runs");
    let same = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_eq!(same.resource_id, d2.resource_id, "and then nothing changes");
    dispatch::destroy(p.as_ref(), &d2, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}
