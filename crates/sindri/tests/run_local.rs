//! `sindri run` and `sindri runs` as a user runs them, on the local provider: exit
//! codes, logs, artifacts, re-syncs, detach and re-attach, cancel, and `max_duration`
//! enforced with no sindri process alive.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A project directory and a state directory of its own (outside the project, so the
/// state is not part of the synced workdir).
struct Project {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Project {
    fn new(spec: &str) -> Project {
        let p = Project {
            dir: tempfile::tempdir().expect("project dir"),
            state: tempfile::tempdir().expect("state dir"),
        };
        p.write("sindri.yaml", spec);
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    fn sindri(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sindri"))
            .args(args)
            .current_dir(self.path())
            .env("SINDRI_STATE_DIR", self.state.path())
            .env_remove("SINDRI_CONFIG")
            .env_remove("SINDRI_OUTPUT")
            .output()
            .expect("the sindri binary runs")
    }

    fn json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.sindri(&all);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document ({e}): {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        (out.status.code(), doc)
    }

    /// The run directory of run `id` (under the local provider's environments).
    fn run_dir(&self, id: &str) -> PathBuf {
        let local = self.state.path().join("local");
        for env in std::fs::read_dir(&local).expect("local environments") {
            let candidate = env.expect("entry").path().join("runs").join(id);
            if candidate.is_dir() {
                return candidate;
            }
        }
        panic!("no run directory for {id} under {}", local.display());
    }

    /// The workdir copy of the (only) local environment.
    fn workdir(&self) -> PathBuf {
        let local = self.state.path().join("local");
        let env = std::fs::read_dir(&local)
            .expect("local environments")
            .next()
            .expect("one environment")
            .expect("entry");
        env.path().join("work")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for(path: &Path, attempts: u32) {
    for _ in 0..attempts {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{} never appeared", path.display());
}

/// True while `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Live sindri processes whose working directory is `dir`.
fn sindri_processes_in(dir: &Path) -> Vec<u32> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_sindri"));
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = dir.canonicalize().expect("dir");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let proc = entry.path();
        let same_exe = std::fs::read_link(proc.join("exe")).is_ok_and(|e| e == exe);
        let same_dir = std::fs::read_link(proc.join("cwd")).is_ok_and(|c| c == dir);
        if same_exe && same_dir && alive(pid) {
            found.push(pid);
        }
    }
    found
}

const LOCAL: &str = "name: job\ndeployment:\n  provider: local\n";

#[test]
fn run_exits_with_the_jobs_code_streams_its_log_and_copies_artifacts_back() {
    let p = Project::new(&format!(
        "{LOCAL}run:\n  command: \"echo to-stdout; echo to-stderr >&2; mkdir -p outputs; echo weights > outputs/model.txt; exit 3\"\n  artifacts: [outputs/]\n"
    ));
    let out = p.sindri(&["run"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("to-stdout\n") && stdout.contains("to-stderr\n"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("failed (exit code 3)"),
        "{}",
        text(&out.stderr)
    );

    let (code, listed) = p.json(&["runs", "list"]);
    assert_eq!(code, Some(0));
    let run = &listed["runs"][0];
    assert_eq!(run["state"], "failed");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["provider"], "local");
    let id = run["id"].as_str().expect("id").to_string();
    let artifact = p
        .path()
        .join("runs")
        .join(&id)
        .join("artifacts/outputs/model.txt");
    assert_eq!(
        std::fs::read_to_string(&artifact).expect("artifact copied back"),
        "weights\n"
    );

    // Status and logs find the run by a prefix of its id.
    let (code, status) = p.json(&["runs", "status", &id[..10]]);
    assert_eq!(code, Some(0));
    assert_eq!(
        (status["id"].as_str(), status["exit_code"].as_i64()),
        (Some(id.as_str()), Some(3))
    );
    let logs = p.sindri(&["runs", "logs", &id[..10]]);
    assert!(logs.status.success());
    assert_eq!(text(&logs.stdout), "to-stdout\nto-stderr\n");

    // The re-run's artifacts do not travel back out with the workdir.
    let (code, again) = p.json(&["run", "--", "sh", "-c", "ls -R"]);
    assert_eq!(code, Some(0));
    assert!(
        !again["sync"]["sent"].to_string().contains("model.txt"),
        "{}",
        again["sync"]
    );
}

#[test]
fn a_rerun_sends_only_the_edited_file_and_deletes_the_removed_one() {
    let p = Project::new(&format!(
        "{LOCAL}run:\n  command: \"true\"\n  exclude: [\"scratch/\"]\n"
    ));
    p.write("a.py", "a = 1\n");
    p.write("b.py", "b = 1\n");
    p.write(".gitignore", "*.log\n");
    p.write("debug.log", "never sent\n");
    p.write("scratch/tmp.txt", "never sent\n");
    let (code, first) = p.json(&["run"]);
    assert_eq!(code, Some(0), "{first}");
    assert_eq!(first["sync"]["full"], true);
    let sent: Vec<String> = serde_json::from_value(first["sync"]["sent"].clone()).expect("list");
    assert_eq!(sent, vec![".gitignore", "a.py", "b.py", "sindri.yaml"]);

    p.write("a.py", "a = 2\n");
    std::fs::remove_file(p.path().join("b.py")).expect("rm");
    let (code, second) = p.json(&["run"]);
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(second["sync"]["full"], false);
    assert_eq!(second["sync"]["sent"], serde_json::json!(["a.py"]));
    assert_eq!(second["sync"]["deleted"], serde_json::json!(["b.py"]));
    assert_eq!(second["sync"]["files_sent"], 1);
    let work = p.workdir();
    assert_eq!(
        std::fs::read_to_string(work.join("a.py")).expect("a.py"),
        "a = 2\n"
    );
    assert!(
        !work.join("b.py").exists(),
        "the deleted file is gone remotely"
    );
    assert!(!work.join("debug.log").exists() && !work.join("scratch").exists());
}

#[test]
fn a_detached_run_is_followed_to_completion_later() {
    let p = Project::new(LOCAL);
    let (code, started) = p.json(&[
        "run",
        "--detach",
        "--",
        "sh",
        "-c",
        "echo first; sleep 2; echo second; exit 5",
    ]);
    assert_eq!(code, Some(0), "{started}");
    assert_eq!(started["detached"], true);
    assert_eq!(started["state"], "running");
    let id = started["id"].as_str().expect("id").to_string();

    let out = p.sindri(&["runs", "logs", "--follow", &id]);
    assert_eq!(out.status.code(), Some(5), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "first\nsecond\n");
    let (_, status) = p.json(&["runs", "status", &id]);
    assert_eq!(
        (status["state"].as_str(), status["exit_code"].as_i64()),
        (Some("failed"), Some(5))
    );
    let last = p.sindri(&["runs", "logs", "--last"]);
    assert_eq!(text(&last.stdout), "first\nsecond\n");
}

#[test]
fn cancel_stops_the_job_and_its_children() {
    let p = Project::new(LOCAL);
    let (code, started) = p.json(&[
        "run",
        "--detach",
        "--",
        "sh",
        "-c",
        "sleep 300 & echo $! > child.pid; wait",
    ]);
    assert_eq!(code, Some(0), "{started}");
    let id = started["id"].as_str().expect("id").to_string();
    let child_file = p.workdir().join("child.pid");
    wait_for(&child_file, 100);
    let child = read_pid(&child_file);
    wait_for(&p.run_dir(&id).join("pid"), 50);
    let leader = read_pid(&p.run_dir(&id).join("pid"));
    assert!(alive(child) && alive(leader));

    let out = p.sindri(&["runs", "cancel", "--grace", "5s", &id[..12]]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("cancelled"),
        "{}",
        text(&out.stdout)
    );
    assert!(!alive(leader), "the job survived cancel");
    assert!(!alive(child), "the job's child survived cancel");
    let (_, status) = p.json(&["runs", "status", &id]);
    assert_eq!(status["state"], "cancelled");
}

#[test]
fn max_duration_is_enforced_on_the_machine_with_no_sindri_alive() {
    let p = Project::new(&format!(
        "{LOCAL}run:\n  command: sleep 60\n  max_duration: 2s\n"
    ));
    let (code, started) = p.json(&["run", "--detach"]);
    assert_eq!(code, Some(0), "{started}");
    let id = started["id"].as_str().expect("id").to_string();
    assert!(
        sindri_processes_in(p.path()).is_empty(),
        "`sindri run --detach` returned, so no sindri may remain to enforce the limit"
    );
    let dir = p.run_dir(&id);
    wait_for(&dir.join("pid"), 50);
    let leader = read_pid(&dir.join("pid"));
    // Nothing is killed or signalled from here: only files are watched.
    wait_for(&dir.join("exit_code"), 150);
    assert!(sindri_processes_in(p.path()).is_empty());
    assert!(!alive(leader), "the job outlived max_duration");
    let (_, status) = p.json(&["runs", "status", &id]);
    assert_eq!(status["state"], "interrupted");
    assert!(
        status["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("timeout")),
        "{status}"
    );
}

#[test]
fn run_on_another_provider_and_in_another_environment() {
    // A Docker spec run on this machine with --provider local, in its own environment.
    let p = Project::new("name: gpu-box\ndeployment:\n  provider: docker\n  image: busybox\n");
    let (code, done) = p.json(&[
        "run",
        "--provider",
        "local",
        "--name",
        "exp-1",
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(
        (done["provider"].as_str(), done["environment"].as_str()),
        (Some("local"), Some("exp-1"))
    );
    let bad = p.sindri(&["run", "--name", "Not_A_Name", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn run_without_a_command_is_a_usage_error_that_records_nothing() {
    let p = Project::new(LOCAL);
    let out = p.sindri(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("sindri run -- "),
        "{}",
        text(&out.stderr)
    );
    let (_, listed) = p.json(&["runs", "list"]);
    assert_eq!(listed["runs"], serde_json::json!([]));
}

#[test]
fn ctrl_c_detaches_and_the_job_runs_on() {
    use std::io::BufRead;
    let p = Project::new(LOCAL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sindri"))
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo one; sleep 2; echo two; touch done",
        ])
        .current_dir(p.path())
        .env("SINDRI_STATE_DIR", p.state.path())
        .env_remove("SINDRI_CONFIG")
        .env_remove("SINDRI_OUTPUT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sindri starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    assert_eq!(first, "one\n", "the log is streamed as the job runs");
    // What Ctrl-C sends; the job, in a session of its own, never receives it.
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("sindri ends");
    assert_eq!(out.status.code(), Some(130));
    let err = text(&out.stderr);
    assert!(
        err.contains("detached") && err.contains("sindri runs logs --follow"),
        "{err}"
    );

    let (_, listed) = p.json(&["runs", "list"]);
    let id = listed["runs"][0]["id"].as_str().expect("id").to_string();
    let follow = p.sindri(&["runs", "logs", "--follow", &id]);
    assert_eq!(follow.status.code(), Some(0), "{}", text(&follow.stderr));
    assert_eq!(
        text(&follow.stdout),
        "one\ntwo\n",
        "the job ran to its end after the detach"
    );
    assert!(p.workdir().join("done").exists());
}

#[test]
fn a_detached_run_says_who_will_apply_on_finish_and_status_shows_restarts() {
    let p = Project::new(&format!(
        "{LOCAL}run:\n  command: \"true\"\n  max_restarts: 2\n"
    ));
    let (code, started) = p.json(&["run", "--detach", "--on-finish", "destroy"]);
    assert_eq!(code, Some(0), "{started}");
    assert_eq!(started["restarts"], 0);
    assert!(
        started.get("self_end").is_none(),
        "this machine does not end itself: {started}"
    );
    let notes: Vec<&str> = started["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("on_finish (destroy) is applied only by a sindri that follows")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("not relaunched")),
        "{notes:?}"
    );
    let id = started["id"].as_str().expect("id").to_string();
    wait_for(&p.run_dir(&id).join("exit_code"), 100);
    let status = p.sindri(&["runs", "status", &id]);
    let shown = text(&status.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("restarts") && l.ends_with("0 of at most 2")),
        "{shown}"
    );
}
