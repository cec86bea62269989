//! Secrets on the real engine: they reach commands, and nothing else (no label, no
//! `docker inspect` of container, exec or image, no log, no plan, no record, no file on
//! the host's disk).
#![cfg(feature = "docker")]

mod support;

use std::path::{Path, PathBuf};

use sindri_core::{DeployOptions, DestroyOptions, ExecCommand, StatusState, dispatch};
use sindri_providers::conformance::{Recorder, exec_capture, wait_for_state};
use support::TestEnv;

/// A random marker, so a match can only be the secret itself.
fn marker(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{:x}{:x}", n, std::process::id())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Files under `root` that contain `needle`.
fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() && std::fs::read(&path).is_ok_and(|data| contains(&data, needle))
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[tokio::test]
async fn secrets_reach_commands_and_nothing_else() {
    let mut env = TestEnv::new("secrets", serde_json::json!({}));
    let m_env = marker("envsecret");
    let m_file = marker("filesecret");
    let token = format!("t0k'en \"$HOME\" `x` {m_env}");
    let key = format!("-----BEGIN TEST KEY-----\n{m_file}\nsecond line\n");
    env.secret("API_TOKEN", &token, None);
    env.secret("TLS_KEY", &key, Some("/etc/sindri-test/key.pem"));
    let p = support::provider();

    let plan = dispatch::plan(p.as_ref(), &env.spec, None).await.unwrap();
    let plan_text = serde_json::to_string(&plan).unwrap();
    assert!(
        plan_text.contains("API_TOKEN") && plan_text.contains("TLS_KEY"),
        "names are shown"
    );
    assert!(
        !plan_text.contains(&m_env) && !plan_text.contains(&m_file),
        "values are not"
    );

    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let record = serde_json::to_string(&d).unwrap();
    assert!(
        !record.contains(&m_env) && !record.contains(&m_file),
        "the record holds no value"
    );

    let echo = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("printf %s \"$API_TOKEN\""),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        echo.out(),
        token,
        "env-style secrets reach commands exactly"
    );
    let file = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::new(["cat", "/etc/sindri-test/key.pem"]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(file.out(), key, "mounted secrets are files at their path");
    let where_ = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("readlink /etc/sindri-test/key.pem; stat -c %a /run/sindri; grep ' /run/sindri ' /proc/mounts | cut -d' ' -f3"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        where_.out(),
        "/run/sindri/files/TLS_KEY\n700\ntmpfs\n",
        "values live on a 0700 tmpfs"
    );

    let docker = support::docker().await;
    let name = sindri_providers::docker::container_name(&env.name);
    let c = docker.inspect_container(&name, None).await.unwrap();
    let c_json = serde_json::to_string(&c).unwrap();
    assert!(
        !c_json.contains(&m_env) && !c_json.contains(&m_file),
        "docker inspect shows no value"
    );
    for exec_id in c.exec_ids.clone().unwrap_or_default() {
        if let Ok(x) = docker.inspect_exec(&exec_id).await {
            let x_json = serde_json::to_string(&x).unwrap();
            assert!(
                !x_json.contains(&m_env) && !x_json.contains(&m_file),
                "an exec's inspect shows a secret value: {x_json}"
            );
        }
    }
    let image = docker.inspect_image(support::IMAGE).await.unwrap();
    assert!(!serde_json::to_string(&image).unwrap().contains(&m_env));

    let mut logs = sindri_providers::conformance::SharedBuffer::default();
    dispatch::logs(
        p.as_ref(),
        &d,
        sindri_core::LogOptions::default(),
        &mut logs,
    )
    .await
    .unwrap();
    assert!(!logs.text().contains(&m_env) && !logs.text().contains(&m_file));

    let changes = docker
        .container_changes(&name)
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        !changes.iter().any(|ch| ch.path.starts_with("/run/sindri/")),
        "nothing under /run/sindri is in the container's writable layer: {changes:?}"
    );

    // The host's disk: the container's directory, its writable layer, its volumes.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let hostname_path = c.hostname_path.clone().expect("hostname path");
    dirs.push(Path::new(&hostname_path).parent().unwrap().to_path_buf());
    if let Some(upper) = c
        .graph_driver
        .as_ref()
        .and_then(|g| g.data.get("UpperDir").cloned())
    {
        dirs.push(PathBuf::from(upper));
    }
    for m in c.mounts.clone().unwrap_or_default() {
        if let Some(src) = m.source.filter(|s| !s.is_empty()) {
            dirs.push(PathBuf::from(src));
        }
    }
    // A control: the scan does read the files (the hostname file holds the name).
    assert!(
        !files_containing(&dirs[0], &env.name).is_empty(),
        "the scan of {} found not even the hostname",
        dirs[0].display()
    );
    for dir in &dirs {
        assert!(
            dir.exists(),
            "{} is not readable here: this test inspects the engine's data directory, so run it on the Docker host as root",
            dir.display()
        );
        for needle in [&m_env, &m_file] {
            let hits = files_containing(dir, needle);
            assert!(
                hits.is_empty(),
                "a secret value is on the host's disk: {hits:?}"
            );
        }
    }

    // A stop empties the tmpfs; status says so and deploy delivers again.
    dispatch::stop(p.as_ref(), &d).await.unwrap();
    dispatch::start(p.as_ref(), &d).await.unwrap();
    wait_for_state(p.as_ref(), &d, StatusState::Running).await;
    let s = dispatch::status(p.as_ref(), &d).await.unwrap();
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .contains("secrets are missing"),
        "{s:?}"
    );
    let gone = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("printf %s \"$API_TOKEN\""),
        None,
    )
    .await
    .unwrap();
    assert_eq!(gone.out(), "");
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
        "same container, secrets delivered again"
    );
    let back = exec_capture(
        p.as_ref(),
        &again,
        &ExecCommand::shell("printf %s \"$API_TOKEN\""),
        None,
    )
    .await
    .unwrap();
    assert_eq!(back.out(), token);
    assert_eq!(
        dispatch::status(p.as_ref(), &again).await.unwrap().message,
        None
    );

    // A changed secret value changes the spec hash: the container is replaced.
    env.spec.secrets[0].value = sindri_core::SecretValue::new(format!("rotated {m_env}"));
    let rotated = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    assert_ne!(rotated.resource_id, d.resource_id);
    let new = exec_capture(
        p.as_ref(),
        &rotated,
        &ExecCommand::shell("printf %s \"$API_TOKEN\""),
        None,
    )
    .await
    .unwrap();
    assert_eq!(new.out(), format!("rotated {m_env}"));
    dispatch::destroy(p.as_ref(), &rotated, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}

#[tokio::test]
async fn a_non_root_image_user_reads_its_own_secrets() {
    let mut env = TestEnv::new("secrets-user", serde_json::json!({}));
    support::write(
        &env.path().join("Dockerfile"),
        &format!("FROM {}\nUSER 65534:65534\n", support::IMAGE_NOBASH),
    );
    env.respec(
        serde_json::json!({"image": null, "build": {}, "home": "/home/nobody"}),
        serde_json::Value::Null,
    );
    env.secret("DB_PASSWORD", "pw-for-nobody", None);
    env.secret("CERT", "cert-for-nobody", Some("/tmp/certs/cert.pem"));
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .unwrap();
    let out = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("id -u; printf '%s\\n' \"$DB_PASSWORD\"; cat /tmp/certs/cert.pem; echo; stat -c %u /run/sindri"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out.out(),
        "65534\npw-for-nobody\ncert-for-nobody\n65534\n",
        "{out:?}"
    );
    dispatch::destroy(p.as_ref(), &d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}
