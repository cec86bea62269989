//! The developer's loop on the real Docker Engine, as a user types it: deploy, status,
//! exec, stop, start (secrets restored), plan with no changes, destroy twice, and a
//! deploy interrupted by a real SIGINT that leaks nothing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "sindri-test/busybox:latest";

fn build_test_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Env {
    dir: tempfile::TempDir,
    name: String,
}

impl Env {
    fn new(tag: &str, extra: &str) -> Env {
        build_test_images();
        let dir = tempfile::tempdir().unwrap();
        let name = format!("cli-{tag}-{}", std::process::id());
        std::fs::write(
            dir.path().join("sindri.yaml"),
            format!("name: {name}\ndeployment:\n  provider: docker\n  image: \"{IMAGE}\"\n{extra}"),
        )
        .unwrap();
        Env { dir, name }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sindri"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("SINDRI_STATE_DIR", self.dir.path().join("state"))
            .env("CLI_TEST_SECRET", "cli-secret-value-42")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("sindri runs")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Every Docker object labelled for this environment, of any kind.
    fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=sindri.environment={}", self.name);
        let mut found = Vec::new();
        for (kind, args) in [
            ("container", vec!["ps", "-aq", "--filter", &filter]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
            ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ] {
            let out = Command::new("docker")
                .args(&args)
                .output()
                .expect("docker CLI");
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
            {
                found.push(format!("{kind} {line}"));
            }
        }
        found
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.run(&["destroy", "--volumes", "--yes"]);
    }
}

#[test]
fn the_developer_loop_behaves_the_same_as_the_docs_say() {
    let env = Env::new(
        "loop",
        "secrets:\n  - name: CLI_TEST_SECRET\n    source: env\n",
    );

    let deployed = env.json(&["deploy"]);
    assert_eq!(deployed["state"], "ready", "{deployed}");
    let phases: Vec<&str> = deployed["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.iter().any(|p| p.contains("ready")),
        "deploy reports its phases: {phases:?}"
    );
    let id = deployed["resource_id"].as_str().unwrap().to_string();

    let status = env.json(&["status"]);
    assert_eq!(status["state"], "running", "{status}");

    // exec: separate streams, the command's own exit code, the secret present.
    let out = env.run(&[
        "exec",
        "--",
        "sh",
        "-c",
        "echo out:$CLI_TEST_SECRET; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "out:cli-secret-value-42"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "err");
    let captured = env.run(&[
        "--output",
        "json",
        "exec",
        "--",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(captured.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&captured.stdout).unwrap();
    assert_eq!(
        (v["exit_code"].as_i64(), v["stdout"].as_str()),
        (Some(3), Some("hi\n"))
    );

    // An unchanged spec changes nothing: plan says so, deploy keeps the container.
    let plan = env.json(&["plan"]);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "keep"),
        "plan of an unchanged spec: {plan}"
    );
    assert_eq!(env.json(&["deploy"])["resource_id"], id.as_str());

    // stop/start: the secret comes back after start.
    assert_eq!(env.json(&["stop"])["state"], "stopped");
    assert_eq!(env.json(&["status"])["state"], "stopped");
    assert_eq!(env.json(&["start"])["state"], "started");
    let out = env.run(&["exec", "--", "sh", "-c", "echo $CLI_TEST_SECRET"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cli-secret-value-42",
        "secrets survive stop/start"
    );

    // The secret is in no record sindri keeps.
    let state_db = std::fs::read(env.dir.path().join("state/state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&state_db).contains("cli-secret-value-42"));

    // cp in and out.
    std::fs::write(env.dir.path().join("in.txt"), "payload").unwrap();
    assert!(env.run(&["cp", "in.txt", ":/root/in.txt"]).status.success());
    assert!(
        env.run(&["cp", ":/root/in.txt", "back.txt"])
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(env.dir.path().join("back.txt")).unwrap(),
        "payload"
    );

    // destroy keeps the home volume and says so; twice is fine; --volumes removes all.
    let destroyed = env.json(&["destroy"]);
    assert!(
        destroyed["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k.as_str().unwrap().contains("home")),
        "{destroyed}"
    );
    assert_eq!(env.json(&["destroy"])["existed"], false);
    assert_eq!(env.json(&["status"])["state"], "not deployed");
    let gone = env.run(&["destroy", "--volumes", "--yes"]);
    assert!(gone.status.success());
    // The kept volume is still found by label (state no longer knows it) only via resources.
    let out = env.run(&["exec", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exec on a destroyed environment fails"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sindri deploy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_image_is_explained_and_suggests_a_build() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sindri.yaml"), "name: cli-noimage\ndeployment:\n  provider: docker\n  image: \"sindri-test/does-not-exist:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sindri"))
        .arg("deploy")
        .current_dir(dir.path())
        .env("SINDRI_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployment.build"), "{err}");
    // The phase that failed is shown as failed, never ticked off as done.
    assert!(err.contains("✗ find image (failed after"), "{err}");
    assert!(!err.contains("✓ find image"), "{err}");
}

#[test]
fn an_interrupted_deploy_is_finished_or_cleaned_by_the_next_command() {
    // A build makes deploy long enough to interrupt at several points.
    let env = Env::new("sigint", "");
    std::fs::write(
        env.dir.path().join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN sleep 1\nRUN sleep 1\nRUN echo built > /built\n"),
    )
    .unwrap();
    std::fs::write(
        env.dir.path().join("sindri.yaml"),
        format!("name: {}\ndeployment:\n  provider: docker\n  build: {{dockerfile: Dockerfile, context: .}}\n", env.name),
    )
    .unwrap();
    for delay_ms in [150u64, 600, 1500, 2500] {
        let child = env
            .cmd(&["deploy"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGINT, as Ctrl-C sends it.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sindri exits after an interrupt"
        );
        match out.status.code() {
            // Interrupted: the next status says so and a deploy finishes the job.
            Some(130) => {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("sindri deploy") && err.contains("sindri destroy"),
                    "{err}"
                );
                let status = env.json(&["status"]);
                assert!(
                    status["notes"].to_string().contains("did not finish")
                        || status["state"] == "not deployed",
                    "status after an interrupt: {status}"
                );
            }
            // The deploy beat the signal: fine, the next command still works.
            Some(0) => {}
            other => panic!(
                "deploy interrupted after {delay_ms} ms exited {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        let again = env.json(&["deploy"]);
        assert_eq!(
            again["state"], "ready",
            "a deploy after the interrupt finishes: {again}"
        );
        let out = env.run(&["exec", "--", "cat", "/built"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "built");
        let _ = env.json(&["destroy", "--volumes", "--yes"]);
        assert_eq!(
            env.leftovers(),
            Vec::<String>::new(),
            "nothing labelled for the environment is left after destroy (interrupt at {delay_ms} ms)"
        );
    }
}
