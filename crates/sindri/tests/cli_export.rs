//! `sindri export` as a user runs it: every format written, secrets never included,
//! existing files never overwritten by surprise.

use std::path::Path;
use std::process::{Command, Output};

fn sindri(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sindri"))
        .args(args)
        .current_dir(dir)
        .env("SINDRI_STATE_DIR", dir.join("state"))
        .env("EXPORT_TEST_TOKEN", "s3cr3t-value-never-exported")
        .output()
        .expect("the sindri binary runs")
}

const SPEC: &str = r#"name: exp
deployment:
  provider: docker
  image: "busybox:latest"
  env:
    TRICKY: "a \"quoted\" $VALUE # not a comment: {{ not a template }}"
  ports: ["8080:80"]
secrets:
  - name: EXPORT_TEST_TOKEN
    source: env
"#;

#[test]
fn every_format_is_written_without_secret_values_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sindri.yaml"), SPEC).unwrap();
    let expected = [
        ("compose", vec!["docker-compose.yml"]),
        ("kubernetes", vec!["kubernetes.yaml"]),
        ("fly", vec!["fly.toml"]),
        ("e2b", vec!["e2b.toml", "e2b.Dockerfile"]),
        ("devcontainer", vec![".devcontainer/devcontainer.json"]),
    ];
    for (format, files) in &expected {
        let out = sindri(
            dir.path(),
            &["--output", "json", "export", format, "-o", "out"],
        );
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["files"].as_array().unwrap().len(),
            files.len(),
            "{format}: {report}"
        );
        for f in files {
            let content = std::fs::read_to_string(dir.path().join("out").join(f)).unwrap();
            assert!(
                !content.contains("s3cr3t-value-never-exported"),
                "{format}/{f} leaks the secret"
            );
        }
    }
    // The compose file carries the tricky value intact once Compose undoes `$$`.
    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.path().join("out/docker-compose.yml")).unwrap(),
    )
    .unwrap();
    let tricky = compose["services"]["exp"]["environment"]["TRICKY"]
        .as_str()
        .unwrap()
        .replace("$$", "$");
    assert_eq!(
        tricky,
        "a \"quoted\" $VALUE # not a comment: {{ not a template }}"
    );

    let before = std::fs::read(dir.path().join("out/fly.toml")).unwrap();
    let out = sindri(dir.path(), &["export", "fly", "-o", "out"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(dir.path().join("out/fly.toml")).unwrap(),
        before,
        "a refused export changes nothing"
    );

    let out = sindri(dir.path(), &["export", "nomad", "-o", "out"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown format is a usage error"
    );
}
