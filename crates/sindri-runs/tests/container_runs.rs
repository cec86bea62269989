//! `sindri run` on the aws provider with the instance played by another machine: moto
//! answers the EC2 API and a container of `sindri-test/sshd:bookworm` (Debian, OpenSSH,
//! root by key; `.ci/images/sshd/build.sh`, run by the tests when the image is missing
//! or stale) is what SSH reaches. Sync, supervisor, log following, artifacts, cancel,
//! `max_duration` and the machine ending itself all happen inside the container; the
//! tests look there with `docker exec`/`docker cp`, never at paths of this host.
//!
//! Needs a running Docker Engine, `openssh-client` and `moto[server]` (`.ci/setup`).

#[path = "support/container_sshd.rs"]
mod container_sshd;
#[path = "support/ssh.rs"]
mod ssh_support;
mod support;

use std::time::Duration;

use container_sshd::{ContainerSshd, POWER_LOG};
use sindri_core::{NoProgress, ResolvedSpec};
use sindri_providers::aws::AwsProvider;
use sindri_runs::sync::MANIFEST_NAME;
use sindri_runs::{Orchestrator, RunRequest, run_keys};
use sindri_spec::{AwsSettings, Spec};
use sindri_state::{RunRecord, RunState, StateStore};
use ssh_support::aws::{self, Home};
use ssh_support::{Moto, write_file};
use support::{follow, launch};

/// moto for the API, a container for the instance, and sindri's state.
struct Rig {
    machine: ContainerSshd,
    moto: Moto,
    _home: Home,
    project: tempfile::TempDir,
    _state_dir: tempfile::TempDir,
    state: StateStore,
    provider: AwsProvider,
}

impl Rig {
    /// Starts the container and moto side by side.
    fn start() -> Rig {
        let (machine, moto) = std::thread::scope(|s| {
            let machine = s.spawn(ContainerSshd::start);
            let moto = Moto::start();
            let machine = machine
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (machine, moto)
        });
        // The key the container accepts is "the user's" key, imported as the key pair.
        let home = Home::with_key(&machine.identity);
        let provider = AwsProvider::builder(AwsSettings::default())
            .env_vars(aws::test_env(&moto.url(), home.path()))
            .polling(Duration::from_millis(20), 300)
            .ssh_endpoint(machine.host.clone(), machine.port)
            .ssh_user(machine.user.clone())
            .build();
        let state_dir = tempfile::tempdir().expect("state dir");
        let state = StateStore::open(state_dir.path()).expect("state store");
        Rig {
            machine,
            moto,
            _home: home,
            project: tempfile::tempdir().expect("project"),
            _state_dir: state_dir,
            state,
            provider,
        }
    }

    /// A spec for the aws provider named `name` (made unique), with this `run` section.
    fn spec(&self, name: &str, run: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": aws::unique_name(name),
            "deployment": {"provider": "aws"},
            "run": run,
        }))
        .expect("valid spec");
        ResolvedSpec::new(spec, &self.project.path().join("sindri.yaml"))
    }

    fn write(&self, rel: &str, content: &str) {
        write_file(self.project.path(), rel, content.as_bytes());
    }

    fn orchestrator(&self) -> Orchestrator<'_> {
        Orchestrator::new(&self.provider, &self.state, &NoProgress)
    }

    /// A file of the machine (also once it has stopped); panics when it is missing.
    fn read(&self, path: &str) -> String {
        self.machine
            .read(path)
            .unwrap_or_else(|| panic!("{path} is missing on the machine"))
    }
}

/// A detail recorded for the run; panics when it is missing.
fn detail<'r>(run: &'r RunRecord, key: &str) -> &'r str {
    run.details
        .get(key)
        .unwrap_or_else(|| panic!("{key} not recorded: {:?}", run.details))
}

/// Waits until `path` exists on the running machine, checking every 100 ms.
async fn wait_for(machine: &ContainerSshd, path: &str) {
    for _ in 0..100 {
        if machine.exists(path) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never appeared on the machine");
}

#[tokio::test]
async fn a_run_syncs_to_the_machine_streams_its_log_and_brings_artifacts_back() {
    let rig = Rig::start();
    rig.write("job.sh", "echo job-v1; cat lib/util.txt\n");
    rig.write("lib/util.txt", "util\n");
    rig.write("keep.txt", "unchanged\n");
    rig.write(".gitignore", "*.tmp\n");
    rig.write("scratch.tmp", "ignored by .gitignore\n");
    rig.write("data/big.bin", "excluded by run.exclude\n");
    let rs = rig.spec(
        "ctr-run",
        serde_json::json!({
            "command": "sh job.sh; echo to-stderr >&2; mkdir -p out; cat /etc/hostname > out/host.txt; exit 3",
            "artifacts": ["out/"],
            "exclude": ["data/"],
            "on_finish": "keep",
        }),
    );
    let orch = rig.orchestrator();

    let (req, first) = launch(&orch, &rs).await;
    let workdir = detail(&first.run, run_keys::WORKDIR).to_string();
    assert_eq!(
        workdir, "/root/work",
        "the workdir is in the login user's home"
    );
    let (followed, log) = follow(&orch, &first).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Failed, Some(3)),
        "the job's exit code decides: {log}"
    );
    assert_eq!(log, "job-v1\nutil\nto-stderr\n");

    // What reached the machine: the tree minus .gitignore'd and run.exclude'd files.
    let synced = |rel: &str| rel.starts_with(MANIFEST_NAME) || rel.starts_with("out");
    let remote = rig.machine.tree(&workdir, &synced);
    let expected: Vec<(String, Vec<u8>)> = [
        (".gitignore", "*.tmp\n"),
        ("job.sh", "echo job-v1; cat lib/util.txt\n"),
        ("keep.txt", "unchanged\n"),
        ("lib/util.txt", "util\n"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
    .collect();
    assert_eq!(remote.into_iter().collect::<Vec<_>>(), expected);

    // The artifacts were written on the machine, and come back here.
    let artifacts = orch
        .collect_artifacts(&followed.run, None)
        .await
        .expect("artifacts come back over SSH");
    let host = std::fs::read_to_string(artifacts.dir.join("out/host.txt")).expect("artifact");
    assert!(
        rig.machine.id.starts_with(host.trim()) && host.trim().len() >= 12,
        "the job ran in container {}, not {host:?}",
        rig.machine.id
    );

    // A re-run: one file edited, one deleted; only that travels.
    rig.write("job.sh", "echo job-v2\n");
    std::fs::remove_file(rig.project.path().join("lib/util.txt")).expect("remove");
    let run = orch.prepare(&rs, &req).expect("prepare");
    let second = orch.launch(&rs, &req, run).await.expect("second launch");
    assert!(!second.deployed, "the running instance is reused");
    let sync = second.sync.clone().expect("sync report");
    assert_eq!(
        (sync.sent.clone(), sync.deleted.clone()),
        (vec!["job.sh".to_string()], vec!["lib/util.txt".to_string()])
    );
    let (followed, log) = follow(&orch, &second).await;
    assert_eq!(followed.run.exit_code, Some(3));
    assert_eq!(log, "job-v2\nto-stderr\n");
    let remote = rig.machine.tree(&workdir, &synced);
    assert_eq!(
        remote.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![".gitignore", "job.sh", "keep.txt"]
    );
    assert_eq!(remote["job.sh"], b"echo job-v2\n");
    assert!(
        !rig.machine.exists(&format!("{workdir}/lib")),
        "the directory the deleted file left empty is gone"
    );
}

#[tokio::test]
async fn max_duration_is_enforced_on_the_machine() {
    let rig = Rig::start();
    let rs = rig.spec(
        "ctr-timeout",
        serde_json::json!({
            "command": "sleep 300 & echo $! > child.pid; wait",
            "max_duration": "2s",
            "on_finish": "keep",
        }),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let dir = detail(&launched.run, run_keys::RUN_DIR).to_string();
    wait_for(&rig.machine, "/root/work/child.pid").await;
    let child: u32 = rig
        .read("/root/work/child.pid")
        .trim()
        .parse()
        .expect("pid");
    let leader: u32 = rig.read(&format!("{dir}/pid")).trim().parse().expect("pid");
    assert_eq!(
        rig.machine.group(leader).len(),
        2,
        "the job and its child run on the machine, in one process group: {:?}",
        rig.machine.processes()
    );
    assert!(rig.machine.group(leader).iter().any(|p| p.pid == child));

    let (followed, _) = follow(&orch, &launched).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Interrupted, Some(128 + 15)),
        "{:?}",
        followed.run.details
    );
    assert!(
        detail(&followed.run, run_keys::REASON).starts_with("timeout"),
        "{:?}",
        followed.run.details
    );
    assert_eq!(rig.read(&format!("{dir}/reason")), "timeout\n");
    assert!(
        rig.read(&format!("{dir}/supervisor.log"))
            .contains("max_duration of 2s reached")
    );
    assert_eq!(
        rig.machine.group(leader),
        vec![],
        "nothing of the job outlived max_duration"
    );
}

#[tokio::test]
async fn a_detached_run_ends_with_the_machine_shutting_itself_down() {
    let rig = Rig::start();
    let rs = rig.spec(
        "ctr-self-stop",
        serde_json::json!({"command": "sleep 1; echo trained > model.txt", "on_finish": "stop"}),
    );
    let orch = rig.orchestrator();
    let mut req = RunRequest::new(&rs, rs.spec.deployment.provider, Vec::new()).expect("request");
    req.detach = true;
    let run = orch.prepare(&rs, &req).expect("prepare");
    let launched = orch.launch(&rs, &req, run).await.expect("launch");
    assert_eq!(detail(&launched.run, run_keys::SELF_END), "stop");
    let dir = detail(&launched.run, run_keys::RUN_DIR).to_string();
    assert!(rig.machine.running());

    // Nothing here follows or signals the run: the machine goes down by itself.
    rig.machine.wait_stopped(100).await;
    assert_eq!(rig.read(POWER_LOG), "shutdown -h now\n");
    assert_eq!(rig.read("/root/work/model.txt"), "trained\n");
    assert_eq!(rig.read(&format!("{dir}/exit_code")), "0\n");
    assert_eq!(rig.read(&format!("{dir}/self_end")), "stop\n");
    let log = rig.read(&format!("{dir}/supervisor.log"));
    let exited = log
        .find("job exited with code 0")
        .expect("the job's end is logged");
    let ended = log
        .find("on_finish: stop")
        .expect("the end command is logged");
    assert!(exited < ended, "the machine ended after the job: {log}");

    // EC2 turns that shutdown into a stop, as sindri set at launch.
    let instance = launched
        .deployment
        .resource_id
        .clone()
        .expect("instance id");
    let xml = aws::raw_query(
        rig.moto.port,
        "ec2",
        "DescribeInstanceAttribute",
        "2016-11-15",
        &[
            ("InstanceId", instance.as_str()),
            ("Attribute", "instanceInitiatedShutdownBehavior"),
        ],
    );
    assert_eq!(aws::texts(&xml, "value"), vec!["stop"], "{xml}");
}

#[tokio::test]
async fn cancel_kills_the_jobs_process_group_on_the_machine() {
    let rig = Rig::start();
    // One child ignores SIGTERM (and so does the sleep it starts): cancel must escalate.
    let rs = rig.spec(
        "ctr-cancel",
        serde_json::json!({
            "command": "sh -c 'trap \"\" TERM; sleep 301' & sleep 300 & echo started > started; wait",
            "on_finish": "keep",
        }),
    );
    let orch = rig.orchestrator();
    let (_, launched) = launch(&orch, &rs).await;
    let dir = detail(&launched.run, run_keys::RUN_DIR).to_string();
    wait_for(&rig.machine, "/root/work/started").await;
    let leader: u32 = rig.read(&format!("{dir}/pid")).trim().parse().expect("pid");
    let group = rig.machine.group(leader);
    for cmd in ["sleep 300", "sleep 301"] {
        assert!(
            group.iter().any(|p| p.args == cmd),
            "{cmd} runs in the job's group: {group:?}"
        );
    }

    let report = orch
        .cancel(&launched.run, Duration::from_secs(2))
        .await
        .expect("cancel over SSH");
    assert_eq!(report.outcome, "killed", "SIGTERM was not enough: SIGKILL");
    assert_eq!(report.run.state, RunState::Cancelled);
    assert_eq!(report.run.exit_code, Some(128 + 15));
    assert_eq!(
        rig.machine.group(leader),
        vec![],
        "the whole group is gone from the machine"
    );
    assert!(
        !rig.machine
            .processes()
            .iter()
            .any(|p| p.args.starts_with("sleep 30")),
        "{:?}",
        rig.machine.processes()
    );
    assert!(
        rig.machine.running(),
        "on_finish: keep leaves the machine up"
    );
}
