//! `sindri run` on the Docker provider: the same command, the same orchestrator, a
//! busybox container instead of this machine.
//!
//! Needs a running Docker Engine; the test image is built on first use by
//! `.ci/images/build.sh` (there is no registry to pull from).

use std::path::Path;
use std::process::{Command, Output};

const IMAGE: &str = "sindri-test/busybox:latest";

fn ensure_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "building the test images failed: {}{}\nThese tests need a running Docker Engine \
         (`sudo systemctl start docker`) and Debian's busybox-static and bash-static.",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Containers labelled for environment `name`.
fn containers_of(name: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=sindri.environment={name}"),
        ])
        .output()
        .expect("the docker CLI runs (apt-get install -y docker.io)");
    text(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes whatever is labelled for the environment, even when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=sindri.environment={}", self.0);
        for (list, rm) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &filter],
                vec!["network", "rm"],
            ),
        ] {
            let Ok(out) = Command::new("docker").args(&list).output() else {
                continue;
            };
            let ids: Vec<String> = text(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(&rm).args(&ids).output();
            }
        }
    }
}

fn sindri(project: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sindri"))
        .args(args)
        .current_dir(project)
        .env("SINDRI_STATE_DIR", state)
        .env_remove("SINDRI_CONFIG")
        .env_remove("SINDRI_OUTPUT")
        .output()
        .expect("the sindri binary runs")
}

#[test]
fn run_in_a_container_exits_with_the_jobs_code_and_destroys_it_on_finish() {
    ensure_images();
    let name = format!("t-cli-run-{:x}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let project = tempfile::tempdir().expect("project");
    let state = tempfile::tempdir().expect("state");
    std::fs::write(
        project.path().join("sindri.yaml"),
        format!(
            "name: {name}\ndeployment:\n  provider: docker\n  image: {IMAGE}\nrun:\n  command: \"cat input.txt; echo oops >&2; mkdir -p out; echo result > out/r.txt; exit 3\"\n  artifacts: [out/]\n  on_finish: destroy\n"
        ),
    )
    .expect("write spec");
    std::fs::write(project.path().join("input.txt"), "synced input\n").expect("write");

    let out = sindri(project.path(), state.path(), &["run"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    let log = text(&out.stdout);
    assert!(
        log.contains("synced input\n") && log.contains("oops\n"),
        "{log}"
    );
    let runs = std::fs::read_dir(project.path().join("runs"))
        .expect("runs dir")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    assert_eq!(
        std::fs::read_to_string(runs.join("artifacts/out/r.txt")).expect("artifact"),
        "result\n"
    );
    assert!(
        containers_of(&name).is_empty(),
        "on_finish: destroy left the container"
    );

    let listed = sindri(
        project.path(),
        state.path(),
        &["--output", "json", "runs", "list"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(doc["runs"][0]["state"], "failed");
    assert_eq!(doc["runs"][0]["provider"], "docker");
    // The container is gone, but the log was kept locally.
    let logs = sindri(project.path(), state.path(), &["runs", "logs", "--last"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    assert_eq!(text(&logs.stdout), log);
}
