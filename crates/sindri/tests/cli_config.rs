//! The config commands as a user runs them: files written, exit codes, and the promise
//! that bad input changes nothing anywhere.

use std::path::Path;
use std::process::{Command, Output};

fn sindri(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sindri"))
        .args(args)
        .current_dir(dir)
        .env("SINDRI_STATE_DIR", dir.join("state"))
        .env_remove("SINDRI_CONFIG")
        .env_remove("SINDRI_OUTPUT")
        .output()
        .expect("the sindri binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_writes_a_starter_that_validates_for_every_provider() {
    for provider in [
        "docker",
        "kubernetes",
        "fly",
        "e2b",
        "devpod",
        "aws",
        "runpod",
        "lyceum",
        "local",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = sindri(dir.path(), &["config", "init", "--provider", provider]);
        assert!(out.status.success(), "{provider}: {}", text(&out.stderr));
        let yaml = std::fs::read_to_string(dir.path().join("sindri.yaml")).unwrap();
        assert!(
            yaml.lines()
                .next()
                .unwrap()
                .starts_with("# yaml-language-server: $schema="),
            "{provider}: the first line is the schema modeline"
        );
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(".sindri/sindri.schema.json")).unwrap(),
        )
        .expect("the schema file is JSON");
        assert!(schema["properties"]["deployment"].is_object());
        let out = sindri(dir.path(), &["config", "validate"]);
        assert!(out.status.success(), "{provider}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(provider));
        // A second init refuses to overwrite.
        let out = sindri(dir.path(), &["config", "init", "--provider", provider]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("--force"));
    }
}

#[test]
fn every_problem_is_reported_with_its_position_and_exit_code_2_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sindri.yaml"),
        "name: dev\ndeployment:\n  provider: dokcer\n  image: x\n  resources:\n    memroy: 2GiB\n",
    )
    .unwrap();
    for cmd in [
        &["config", "validate"][..],
        &["plan"],
        &["deploy"],
        &["status"],
        &["destroy"],
        &["exec", "--", "true"],
    ] {
        let out = sindri(dir.path(), cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("sindri.yaml:3:13"),
            "{cmd:?}: provider position: {err}"
        );
        assert!(err.contains("did you mean `docker`"), "{cmd:?}: {err}");
        assert!(
            err.contains("sindri.yaml:6:5"),
            "{cmd:?}: unknown key position: {err}"
        );
        assert!(err.contains("did you mean `memory`"), "{cmd:?}: {err}");
        assert!(
            !dir.path().join("state").exists(),
            "{cmd:?}: bad input must not even create the state dir"
        );
    }
}

#[test]
fn json_output_carries_the_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sindri.yaml"),
        "name: dev\ndeployment:\n  provider: docker\n  image: x\n  ports: [99999]\n",
    )
    .unwrap();
    let out = sindri(dir.path(), &["--output", "json", "config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    let d = &v["error"]["diagnostics"][0];
    assert_eq!(d["line"], 5, "{v}");
    assert_eq!(d["path"], "deployment.ports[0]", "{v}");
}

#[test]
fn empty_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = sindri(dir.path(), &["config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("config init"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.path().join("sindri.yaml"), "").unwrap();
    let out = sindri(dir.path(), &["config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));
    std::fs::write(dir.path().join("sindri.yaml"), "# nothing here\n").unwrap();
    let out = sindri(dir.path(), &["config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("only comments"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn schema_and_show_print_what_sindri_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = sindri(dir.path(), &["config", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert!(schema["properties"]["name"].is_object());

    std::fs::write(
        dir.path().join("sindri.yaml"),
        "name: dev\ndeployment:\n  provider: docker\n  image: x\n  resources:\n    memory: 2048MiB\nsecrets:\n  - name: TOKEN\n    source: env\n",
    )
    .unwrap();
    let out = sindri(dir.path(), &["--output", "json", "config", "show"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["deployment"]["resources"]["memory"], "2GiB",
        "sizes are shown normalised: {v}"
    );
    assert_eq!(v["secrets"][0]["source"], "env");
}

#[test]
fn completions_and_version_work_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = sindri(dir.path(), &["completions", "bash"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("sindri"));
    let out = sindri(dir.path(), &["--version"]);
    assert!(text(&out.stdout).starts_with("sindri "));
    let out = sindri(dir.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn an_operation_the_provider_lacks_is_refused_with_exit_code_2_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    // An engine address nothing listens on: a refusal must not need it.
    std::fs::write(
        dir.path().join("sindri.yaml"),
        "name: nosuspend\ndeployment:\n  provider: docker\n  image: busybox\nproviders:\n  docker:\n    host: tcp://127.0.0.1:9\n",
    )
    .unwrap();
    let out = sindri(dir.path(), &["suspend"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("docker") && err.contains("suspend"), "{err}");
    assert!(!err.contains("127.0.0.1:9"), "no call was attempted: {err}");

    let out = sindri(dir.path(), &["--output", "json", "suspend"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["error"]["kind"], "unsupported");
}
