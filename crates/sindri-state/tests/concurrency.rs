//! Several `sindri` commands at once: threads and separate processes open a fresh
//! state directory together and write hundreds of records each. Nothing may be lost
//! and no "database is locked" may reach the caller.
//!
//! The processes are this test executable itself, re-run with an environment variable
//! that makes `one_worker_finds_everything_it_wrote` act as a worker on the shared
//! directory (run on its own, that test works alone in a directory of its own).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sindri_core::{Deployment, DeploymentState};
use sindri_spec::ProviderKind;
use sindri_state::{RunFilter, RunRecord, RunState, STATE_DIR_ENV, StateStore};

/// Names the worker when this executable runs as a child worker process.
const WORKER_ENV: &str = "SINDRI_STATE_TEST_WORKER";
/// The file whose appearance starts every worker at once.
const START_FLAG_ENV: &str = "SINDRI_STATE_TEST_START_FLAG";

const THREADS: usize = 4;
const PROCESSES: usize = 4;
/// Records of each kind written by each worker.
const RECORDS: usize = 200;
/// Where every worker appends an event, so appends to one deployment's history race.
const SHARED: (&str, &str) = ("shared-project", "shared-env");

/// What one worker does, as the CLI would: each iteration opens the store anew
/// (every command is a new process) and writes a deployment, its state, an event on
/// the shared deployment and a run it then finishes. Then it checks its own records.
fn work(worker: &str, open: &dyn Fn() -> sindri_core::Result<StateStore>) -> Result<(), String> {
    let project = format!("project-{worker}");
    for i in 0..RECORDS {
        let store = open().map_err(|e| format!("{worker}: open #{i}: {e}"))?;
        let name = format!("env-{i}");
        let d = Deployment::creating(&name, ProviderKind::Docker, &project, "hash");
        store
            .upsert_deployment(&d)
            .map_err(|e| format!("{worker}: upsert {name}: {e}"))?;
        store
            .set_deployment_state(&project, &name, DeploymentState::Ready)
            .map_err(|e| format!("{worker}: set state {name}: {e}"))?;
        store
            .record_event(SHARED.0, SHARED.1, "tick", &format!("{worker} {i}"))
            .map_err(|e| format!("{worker}: event {i}: {e}"))?;
        let mut run = RunRecord::new(SHARED.0, worker, ProviderKind::Local, &format!("step {i}"));
        store
            .insert_run(&run)
            .map_err(|e| format!("{worker}: insert run {i}: {e}"))?;
        run.state = RunState::Succeeded;
        run.exit_code = Some(0);
        store
            .update_run(&run)
            .map_err(|e| format!("{worker}: update run {i}: {e}"))?;
    }

    let store = open().map_err(|e| format!("{worker}: final open: {e}"))?;
    let mine: Vec<Deployment> = store
        .list_deployments()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|d| d.project == project)
        .collect();
    if mine.len() != RECORDS || mine.iter().any(|d| d.state != DeploymentState::Ready) {
        return Err(format!(
            "{worker}: expected {RECORDS} ready deployments, found {} ({} ready)",
            mine.len(),
            mine.iter()
                .filter(|d| d.state == DeploymentState::Ready)
                .count()
        ));
    }
    let runs = store
        .list_runs(
            &RunFilter {
                environment: Some(worker),
                ..RunFilter::default()
            },
            usize::MAX,
        )
        .map_err(|e| e.to_string())?;
    let succeeded = runs
        .iter()
        .filter(|r| r.state == RunState::Succeeded)
        .count();
    if runs.len() != RECORDS || succeeded != RECORDS {
        return Err(format!(
            "{worker}: expected {RECORDS} succeeded runs, found {} ({succeeded} succeeded)",
            runs.len()
        ));
    }
    Ok(())
}

/// Waits until the start flag exists, so every worker opens the fresh store together.
fn wait_for_start(flag: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !flag.exists() {
        assert!(
            Instant::now() < deadline,
            "the start flag {} never appeared",
            flag.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn one_worker_finds_everything_it_wrote() {
    match std::env::var(WORKER_ENV) {
        // Child mode: the parent test set SINDRI_STATE_DIR, so this also covers
        // `open_default` honouring it.
        Ok(worker) => {
            let flag = PathBuf::from(std::env::var_os(START_FLAG_ENV).expect("start flag env"));
            wait_for_start(&flag);
            if let Err(e) = work(&worker, &StateStore::open_default) {
                panic!("{e}");
            }
        }
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            if let Err(e) = work("alone", &|| StateStore::open(&state)) {
                panic!("{e}");
            }
            let store = StateStore::open(&state).unwrap();
            assert_eq!(
                store.events(SHARED.0, SHARED.1, usize::MAX).unwrap().len(),
                RECORDS
            );
        }
    }
}

#[test]
fn threads_and_processes_writing_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Not created yet: the workers race to create the directory, the file, WAL mode
    // and the schema.
    let state = tmp.path().join("state");
    let flag = tmp.path().join("go");

    let exe = std::env::current_exe().unwrap();
    let children: Vec<(String, std::process::Child)> = (0..PROCESSES)
        .map(|p| {
            let worker = format!("process-{p}");
            let child = Command::new(&exe)
                .args([
                    "one_worker_finds_everything_it_wrote",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, &worker)
                .env(START_FLAG_ENV, &flag)
                .env(STATE_DIR_ENV, &state)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start worker {}: {e}", exe.display()));
            (worker, child)
        })
        .collect();

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let state = state.clone();
            let flag = flag.clone();
            std::thread::spawn(move || {
                wait_for_start(&flag);
                work(&format!("thread-{t}"), &|| StateStore::open(&state))
            })
        })
        .collect();

    std::fs::write(&flag, "go").unwrap();

    let mut failures = Vec::new();
    for (t, handle) in threads.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("thread-{t} panicked")),
        }
    }
    for (worker, child) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            failures.push(format!(
                "{worker} exited with {}:\n{}\n{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ));
        } else if !stdout.contains("1 passed") {
            // A filter typo would run zero tests and "succeed".
            failures.push(format!("{worker} did not run the worker test:\n{stdout}"));
        }
    }
    assert!(
        failures.is_empty(),
        "workers failed:\n{}",
        failures.join("\n")
    );

    let workers = THREADS + PROCESSES;
    let store = StateStore::open(&state).unwrap();

    let deployments = store.list_deployments().unwrap();
    assert_eq!(deployments.len(), workers * RECORDS);
    assert!(
        deployments
            .iter()
            .all(|d| d.state == DeploymentState::Ready)
    );

    let events = store.events(SHARED.0, SHARED.1, usize::MAX).unwrap();
    let messages: BTreeSet<String> = events.iter().map(|e| e.message.clone()).collect();
    let expected: BTreeSet<String> = (0..THREADS)
        .map(|t| format!("thread-{t}"))
        .chain((0..PROCESSES).map(|p| format!("process-{p}")))
        .flat_map(|w| (0..RECORDS).map(move |i| format!("{w} {i}")))
        .collect();
    assert_eq!(events.len(), workers * RECORDS, "duplicated or lost events");
    assert_eq!(messages, expected);

    let runs = store.list_runs(&RunFilter::default(), usize::MAX).unwrap();
    assert_eq!(runs.len(), workers * RECORDS);
    assert!(
        runs.iter()
            .all(|r| r.state == RunState::Succeeded && r.exit_code == Some(0))
    );
}
