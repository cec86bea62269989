//! The run orchestrator over real SSH: `sindri run` on the aws provider, with moto
//! answering the EC2 API and a local OpenSSH server (`/usr/sbin/sshd`, started by each
//! test on loopback) standing in for the instance, behind a relay that counts the bytes
//! on the SSH connection. Sync, supervisor, log following, artifacts and cancel all go
//! through the system `ssh` client, as they do against EC2.
//!
//! Needs `openssh-server`, `openssh-client` and `moto[server]` (installed by
//! `.ci/setup`); each test fails saying how to install what is missing.

#[path = "support/ssh.rs"]
mod ssh_support;
mod support;

use std::path::Path;
use std::time::Duration;

use sindri_core::NoProgress;
use sindri_runs::sync::{MANIFEST_NAME, ManifestSource, SyncTarget, sync_workdir};
use sindri_runs::{Orchestrator, run_keys};
use sindri_state::RunState;
use ssh_support::{SshRig, tree, write_file};
use support::{alive, follow, launch, read_pid, run_dir, wait_for_file};

/// The workdir as the environment should hold it: every synced file, nothing of
/// sindri's own, nothing the job wrote under `out/`.
fn remote_tree(rig: &SshRig) -> std::collections::BTreeMap<String, Vec<u8>> {
    tree(&rig.remote_workdir(), &|rel| {
        rel.starts_with(MANIFEST_NAME) || rel == "out"
    })
}

#[tokio::test]
async fn a_run_over_ssh_syncs_follows_brings_artifacts_back_and_a_rerun_sends_only_the_change() {
    let rig = SshRig::start().await;
    rig.write("job.sh", b"echo job-v1; cat lib/util.txt\n");
    rig.write("lib/util.txt", b"util\n");
    rig.write("keep.txt", b"unchanged\n");
    rig.write(".gitignore", b"*.tmp\n");
    rig.write("scratch.tmp", b"ignored by .gitignore\n");
    rig.write("data/big.bin", b"excluded by run.exclude\n");
    let rs = rig.spec(
        "ssh-run",
        serde_json::json!({
            "command": "sh job.sh; echo to-stderr >&2; mkdir -p out; echo artifact > out/result.txt; exit 3",
            "artifacts": ["out/"],
            "exclude": ["data/"],
            "on_finish": "keep",
        }),
    );
    let orch = Orchestrator::new(&rig.provider, &rig.state, &NoProgress);

    let (req, first) = launch(&orch, &rs).await;
    assert!(first.deployed);
    let sync = first.sync.clone().expect("the workdir is synced");
    assert_eq!(sync.manifest, ManifestSource::None);
    assert_eq!(
        sync.sent,
        vec![".gitignore", "job.sh", "keep.txt", "lib/util.txt"]
    );
    let (followed, log) = follow(&orch, &first).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Failed, Some(3)),
        "the job's exit code decides: {log}"
    );
    for line in ["job-v1\n", "util\n", "to-stderr\n"] {
        assert!(log.contains(line), "{line:?} missing from the log: {log}");
    }
    let remote = remote_tree(&rig);
    assert!(!remote.contains_key("scratch.tmp") && !remote.contains_key("data/big.bin"));
    assert_eq!(remote["job.sh"], b"echo job-v1; cat lib/util.txt\n");

    let artifacts = orch
        .collect_artifacts(&followed.run, None)
        .await
        .expect("artifacts come back over SSH");
    assert_eq!(
        std::fs::read_to_string(artifacts.dir.join("out/result.txt")).expect("artifact"),
        "artifact\n"
    );

    // A re-run: one file edited, one deleted.
    rig.write("job.sh", b"echo job-v2\n");
    rig.remove("lib/util.txt");
    let run = orch.prepare(&rs, &req).expect("prepare");
    let second = orch.launch(&rs, &req, run).await.expect("second launch");
    assert!(!second.deployed, "the running instance is reused");
    let sync = second.sync.clone().expect("sync report");
    assert_eq!(
        (sync.sent.clone(), sync.deleted.clone()),
        (vec!["job.sh".to_string()], vec!["lib/util.txt".to_string()])
    );
    assert_eq!(
        sync.manifest,
        ManifestSource::Cache,
        "the environment's manifest matched this machine's copy and was not downloaded"
    );
    assert!(
        sync.wire_received < 64,
        "only the digest check's answer comes back: {sync:?}"
    );
    assert!(
        sync.transfer.bytes <= 4096,
        "one small file and its manifest line fit in a few tar blocks: {sync:?}"
    );
    let (followed, log) = follow(&orch, &second).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Failed, Some(3))
    );
    assert!(log.contains("job-v2\n"), "{log}");
    assert!(
        !rig.remote_workdir().join("lib").exists(),
        "the deleted file and the directory it left empty are gone"
    );
    let remote = remote_tree(&rig);
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        vec![".gitignore", "job.sh", "keep.txt"]
    );

    // The job succeeding ends the run as succeeded, with exit code 0.
    let ok_req = sindri_runs::RunRequest::new(
        &rs,
        rs.spec.deployment.provider,
        vec!["sh".into(), "-c".into(), "test -f keep.txt".into()],
    )
    .expect("request");
    let run = orch.prepare(&rs, &ok_req).expect("prepare");
    let third = orch.launch(&rs, &ok_req, run).await.expect("third launch");
    let sync = third.sync.clone().expect("sync report");
    assert!(
        sync.sent.is_empty() && sync.deleted.is_empty() && sync.calls == 1,
        "{sync:?}"
    );
    let (followed, _) = follow(&orch, &third).await;
    assert_eq!(
        (followed.run.state, followed.run.exit_code),
        (RunState::Succeeded, Some(0))
    );
}

#[tokio::test]
async fn a_rerun_with_one_changed_file_moves_under_one_percent_of_the_first_sync() {
    let rig = SshRig::start().await;
    // 2,000 files of 0 to 4 kB (a small source tree), content that does not compress.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..2_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 4_096) as usize;
        let body: Vec<u8> = (0..len).map(|j| (seed >> (j % 57)) as u8).collect();
        rig.write(&format!("src/m{:02}/f{i:04}.py", i / 100), &body);
    }
    let rs = rig.spec(
        "ssh-bytes",
        serde_json::json!({"command": "true", "on_finish": "keep"}),
    );
    let orch = Orchestrator::new(&rig.provider, &rig.state, &NoProgress);
    let (d, _) = orch.ensure_environment(&rs).await.expect("deploy");
    let workdir = rig.remote_workdir().display().to_string();
    let archive = rig
        .remote_home
        .path()
        .join(".stage/sync.tar")
        .display()
        .to_string();
    let target = SyncTarget {
        workdir: &workdir,
        archive: &archive,
        cache: Some(rig.state_dir.path().join("sync.manifest")),
    };

    let before = rig.relay.total();
    let first = sync_workdir(&rig.provider, &d, rig.project.path(), &[], &target)
        .await
        .expect("first sync");
    let first_bytes = rig.relay.total() - before;
    assert_eq!(first.files_sent, 2_000);
    assert!(
        first_bytes >= first.wire_sent,
        "the connection carried at least what sindri counted ({first_bytes} < {})",
        first.wire_sent
    );

    rig.write("src/m07/f0700.py", b"print('edited')\n");
    let before = rig.relay.total();
    let rerun = sync_workdir(&rig.provider, &d, rig.project.path(), &[], &target)
        .await
        .expect("re-run sync");
    let rerun_bytes = rig.relay.total() - before;
    assert_eq!(rerun.sent, vec!["src/m07/f0700.py"]);
    assert!(
        rerun_bytes * 100 < first_bytes,
        "a one-file re-run moved {rerun_bytes} bytes on the SSH connection, {:.2} % of the first sync's {first_bytes}",
        100.0 * rerun_bytes as f64 / first_bytes as f64
    );
    assert!(
        (rerun.wire_sent + rerun.wire_received) * 100 < first.wire_sent + first.wire_received,
        "sindri's own count says the same: {rerun:?}"
    );
    assert_eq!(remote_tree(&rig), tree(rig.project.path(), &|_| false));

    // Removing more files than one command takes: removed in batches, all of them.
    for i in 0..600 {
        rig.remove(&format!("src/m{:02}/f{i:04}.py", i / 100));
    }
    let removal = sync_workdir(&rig.provider, &d, rig.project.path(), &[], &target)
        .await
        .expect("removal sync");
    assert_eq!(
        (removal.files_deleted, removal.calls),
        (600, 4),
        "{removal:?}"
    );
    assert_eq!(remote_tree(&rig), tree(rig.project.path(), &|_| false));
    for m in 0..6 {
        assert!(
            !rig.remote_workdir().join(format!("src/m{m:02}")).exists(),
            "the emptied directory src/m{m:02} is gone"
        );
    }
}

#[tokio::test]
async fn the_sync_compares_in_full_when_the_environment_changed_behind_its_back() {
    let rig = SshRig::start().await;
    let rs = rig.spec(
        "ssh-behind",
        serde_json::json!({"command": "true", "on_finish": "keep"}),
    );
    let orch = Orchestrator::new(&rig.provider, &rig.state, &NoProgress);
    let (d, _) = orch.ensure_environment(&rs).await.expect("deploy");
    let workdir = rig.remote_workdir().display().to_string();
    let archive = rig
        .remote_home
        .path()
        .join(".stage/sync.tar")
        .display()
        .to_string();
    let machine = |name: &str| {
        let dir = rig.state_dir.path().join(name);
        let tree = dir.join("tree");
        std::fs::create_dir_all(&tree).expect("mkdir");
        (tree, dir.join("cache.manifest"))
    };
    let sync = |tree: &Path, cache: &Path| {
        let target = SyncTarget {
            workdir: &workdir,
            archive: &archive,
            cache: Some(cache.to_path_buf()),
        };
        let (p, d, tree) = (&rig.provider, &d, tree.to_path_buf());
        async move {
            sync_workdir(p, d, &tree, &[], &target)
                .await
                .unwrap_or_else(|e| panic!("sync: {e}"))
        }
    };

    // Bad input is refused before anything reaches the environment.
    let (tree_a, cache_a) = machine("a");
    let bad = SyncTarget {
        workdir: &workdir,
        archive: &archive,
        cache: Some(cache_a.clone()),
    };
    let err = sync_workdir(&rig.provider, &d, &tree_a, &["data/[z-a]".into()], &bad)
        .await
        .expect_err("an invalid run.exclude pattern");
    assert_eq!(err.kind(), sindri_core::ErrorKind::Invalid, "{err}");
    assert!(
        !rig.remote_workdir().exists(),
        "nothing was created remotely"
    );

    // Machine A syncs its tree.
    write_file(&tree_a, "shared.py", b"same on both\n");
    write_file(&tree_a, "edited.py", b"version A\n");
    write_file(&tree_a, "only_a/x.py", b"A's own\n");
    let r = sync(&tree_a, &cache_a).await;
    assert_eq!(r.manifest, ManifestSource::None);
    assert_eq!(remote_tree(&rig), tree(&tree_a, &|_| false));

    // Machine B, with a tree of its own, syncs into the same environment.
    let (tree_b, cache_b) = machine("b");
    write_file(&tree_b, "shared.py", b"same on both\n");
    write_file(&tree_b, "edited.py", b"version B\n");
    write_file(&tree_b, "only_b.py", b"B's own\n");
    let r = sync(&tree_b, &cache_b).await;
    assert_eq!(r.manifest, ManifestSource::Environment, "B had no copy");
    assert_eq!(
        (r.sent.clone(), r.deleted.clone()),
        (
            vec!["edited.py".to_string(), "only_b.py".to_string()],
            vec!["only_a/x.py".to_string()]
        )
    );
    assert_eq!(remote_tree(&rig), tree(&tree_b, &|_| false));

    // A's copy no longer matches: A reads the environment's manifest and puts its own
    // tree back exactly, B's file removed.
    let r = sync(&tree_a, &cache_a).await;
    assert_eq!(r.manifest, ManifestSource::Environment);
    assert_eq!(remote_tree(&rig), tree(&tree_a, &|_| false));

    // The manifest is edited behind sindri's back (here: it claims `edited.py` holds
    // B's version): the digest differs, the edited manifest is read, the file is sent.
    let manifest_path = rig.remote_workdir().join(MANIFEST_NAME);
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    let b_hash = {
        use sha2::Digest as _;
        use std::fmt::Write as _;
        sha2::Sha256::digest(b"version B\n")
            .iter()
            .fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    };
    std::fs::write(
        &manifest_path,
        format!("{text}[\"edited.py\",10,1,\"f\",\"{b_hash}\",420]\n"),
    )
    .expect("edit the manifest");
    std::fs::write(rig.remote_workdir().join("edited.py"), "version B\n").expect("edit");
    let r = sync(&tree_a, &cache_a).await;
    assert_eq!(r.manifest, ManifestSource::Environment);
    assert_eq!(r.sent, vec!["edited.py"]);
    assert_eq!(remote_tree(&rig), tree(&tree_a, &|_| false));

    // The environment lost its workdir (a new disk, a recreated machine): everything
    // is sent again, whatever this machine's copy says.
    std::fs::remove_dir_all(rig.remote_workdir()).expect("wipe");
    let r = sync(&tree_a, &cache_a).await;
    assert!(r.full && r.manifest == ManifestSource::None, "{r:?}");
    assert_eq!(remote_tree(&rig), tree(&tree_a, &|_| false));

    // A damaged local copy is never trusted: the environment's manifest is read.
    std::fs::write(&cache_a, b"{\"sindri_sync\":2}\n[\"half a line").expect("damage");
    let r = sync(&tree_a, &cache_a).await;
    assert_eq!(r.manifest, ManifestSource::Environment);
    assert!(r.sent.is_empty() && r.deleted.is_empty(), "{r:?}");
    // ... and replaced by what the environment holds, so the next sync is cheap again.
    let r = sync(&tree_a, &cache_a).await;
    assert_eq!(r.manifest, ManifestSource::Cache);
}

#[tokio::test]
async fn cancel_over_ssh_stops_the_job_and_its_children() {
    let rig = SshRig::start().await;
    let rs = rig.spec(
        "ssh-cancel",
        serde_json::json!({"command": "sleep 300 & echo $! > child.pid; wait", "on_finish": "keep"}),
    );
    let orch = Orchestrator::new(&rig.provider, &rig.state, &NoProgress);
    let (_, launched) = launch(&orch, &rs).await;
    let work = rig.remote_workdir();
    wait_for_file(&work.join("child.pid"), 100).await;
    let child = read_pid(&work.join("child.pid"));
    wait_for_file(&run_dir(&launched).join("pid"), 50).await;
    let leader = read_pid(&run_dir(&launched).join("pid"));
    assert!(alive(child) && alive(leader), "the job runs on the machine");
    assert!(
        launched
            .run
            .details
            .get(run_keys::RUN_DIR)
            .is_some_and(|d| d.starts_with(&rig.remote_home.path().display().to_string())),
        "the run lives under the environment's home"
    );

    let report = orch
        .cancel(&launched.run, Duration::from_secs(10))
        .await
        .expect("cancel over SSH");
    assert_eq!(report.outcome, "terminated");
    assert_eq!(report.run.state, RunState::Cancelled);
    assert_eq!(report.run.exit_code, Some(128 + 15));
    assert!(
        !alive(leader) && !alive(child),
        "the job and its child are gone"
    );
}
