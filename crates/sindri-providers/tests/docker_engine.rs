//! Reaching the engine: a clear `Unavailable` error when it cannot be reached (missing
//! socket, refused connection, an engine that never answers), and `check` for
//! `sindri doctor` against the real engine.
#![cfg(feature = "docker")]

mod support;

use sindri_core::{CheckStatus, DeployOptions, ErrorKind, Provider, dispatch};
use sindri_providers::conformance::{Recorder, never_deployed};
use sindri_providers::docker::DockerProvider;
use sindri_spec::DockerSettings;
use support::TestEnv;

fn provider_at(host: &str) -> DockerProvider {
    DockerProvider::new(DockerSettings {
        host: Some(host.to_string()),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_missing_socket_is_unavailable_and_says_how_to_start_docker() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let p = provider_at(&host);
    let env = TestEnv::new("unreachable", serde_json::json!({}));
    let d = never_deployed(&p, &env.spec);
    let e = dispatch::status(&p, &d).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains(&host), "names the socket tried: {e}");
    assert!(
        e.message().contains("providers.docker.host"),
        "names where it came from: {e}"
    );
    assert!(e.hint().unwrap().contains("sudo systemctl start docker"));
    assert!(e.hint().unwrap().contains("Docker Desktop"));
    let e = dispatch::deploy(&p, &env.spec, DeployOptions::default(), &Recorder::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let checks = p.check().await;
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].status, CheckStatus::Fail);
    assert!(checks[0].detail.contains(&host));
}

#[tokio::test]
async fn a_refused_tcp_engine_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = provider_at(&format!("tcp://127.0.0.1:{port}"));
    let e = dispatch::list_owned(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn an_engine_that_never_answers_is_unavailable_after_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    // Accepts connections and never answers.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let p = provider_at(&format!("unix://{}", sock.display()));
    let e = dispatch::list_owned(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("no answer within 5 s"), "{e}");
    silent.abort();
}

#[tokio::test]
async fn check_reports_the_engine_its_runtimes_and_disk_space() {
    support::ensure_images();
    let p = support::provider();
    let checks = p.check().await;
    let by_name = |n: &str| {
        checks
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no `{n}` check in {checks:?}"))
    };
    let engine = by_name("docker engine");
    assert_eq!(engine.status, CheckStatus::Ok, "{engine:?}");
    assert!(
        engine.detail.contains("Docker Engine") && engine.detail.contains("API"),
        "{engine:?}"
    );
    let runtimes = by_name("docker runtimes");
    assert_eq!(runtimes.status, CheckStatus::Ok);
    assert!(runtimes.detail.contains("runc"), "{runtimes:?}");
    let disk = by_name("docker disk space");
    assert!(disk.detail.contains("GiB free"), "{disk:?}");

    let sysbox = DockerProvider::new(DockerSettings {
        dind: sindri_spec::DindMode::Sysbox,
        ..Default::default()
    });
    let checks = sysbox.check().await;
    let rt = checks.iter().find(|c| c.name == "docker runtimes").unwrap();
    let info = support::docker().await.info().await.unwrap();
    if info
        .runtimes
        .unwrap_or_default()
        .contains_key("sysbox-runc")
    {
        assert_eq!(rt.status, CheckStatus::Ok, "{rt:?}");
    } else {
        assert_eq!(
            rt.status,
            CheckStatus::Fail,
            "this engine has no sysbox: {rt:?}"
        );
        assert!(rt.detail.contains("sysbox-runc"));
        assert!(rt.hint.as_deref().unwrap().contains("Sysbox"));
    }
}
