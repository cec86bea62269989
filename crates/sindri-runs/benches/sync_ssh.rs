//! The workdir sync over real SSH against `tar -c | ssh host tar -x`, run by
//! `bench/sync.sh`: a tree of many small files is synced by sindri's `aws` provider
//! (moto for the API, a local sshd for the machine, as in the tests) and by tar over
//! the same SSH server, both through a relay that counts the bytes on the connection.
//! Then one file changes and sindri syncs again.
//!
//! Arguments: `--files N` (default 10000), `--runs R` (default 3; medians are shown).

#[path = "../tests/support/ssh.rs"]
mod ssh_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sindri_core::NoProgress;
use sindri_runs::Orchestrator;
use sindri_runs::sync::{SyncReport, SyncTarget, sync_workdir};
use ssh_support::SshRig;

/// A small deterministic generator, so every run syncs the same tree.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `files` files of 0 to 8.5 kB of random bytes (4.25 kB on average, as source trees
/// go), 100 to a directory; returns the content bytes.
fn build_tree(root: &Path, files: usize) -> u64 {
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    let mut total = 0;
    for i in 0..files {
        let size = (rng.next() % 8_500) as usize;
        let mut buf = vec![0u8; size];
        rng.fill(&mut buf);
        ssh_support::write_file(root, &format!("d{:03}/f{i:05}.py", i / 100), &buf);
        total += size as u64;
    }
    total
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_u64(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

/// One sindri sync, timed, with the bytes the relay saw.
async fn sindri_sync(
    rig: &SshRig,
    d: &sindri_core::Deployment,
    tree: &Path,
    cache: &Path,
) -> (Duration, u64, SyncReport) {
    let workdir = rig.remote_workdir().display().to_string();
    let archive = rig
        .remote_home
        .path()
        .join(".stage/sync.tar")
        .display()
        .to_string();
    let before = rig.relay.total();
    let start = Instant::now();
    let report = sync_workdir(
        &rig.provider,
        d,
        tree,
        &[],
        &SyncTarget {
            workdir: &workdir,
            archive: &archive,
            cache: Some(cache.to_path_buf()),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("sync: {e} (hint: {:?})", e.hint()));
    (start.elapsed(), rig.relay.total() - before, report)
}

/// The ssh options tar uses: the same server, key and a master connection of its own.
fn ssh_args(rig: &SshRig, control: &Path) -> Vec<String> {
    let known = control.with_extension("known_hosts");
    vec![
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known.display()),
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        format!("IdentityFile={}", rig.sshd.identity.display()),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        format!("ControlPath={}", control.display()),
        "-p".into(),
        rig.relay.port.to_string(),
        "-l".into(),
        rig.sshd.user.clone(),
        "127.0.0.1".into(),
    ]
}

/// `tar -c | ssh tar -x` into `dest`, timed, with the bytes the relay saw.
fn tar_sync(rig: &SshRig, tree: &Path, dest: &Path, control: &Path) -> (Duration, u64) {
    let before = rig.relay.total();
    let start = Instant::now();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(tree)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let remote = format!("mkdir -p '{d}' && tar -xf - -C '{d}'", d = dest.display());
    let ssh = Command::new("ssh")
        .args(ssh_args(rig, control))
        .arg(remote)
        .stdin(tar.stdout.take().expect("tar stdout"))
        .status()
        .expect("ssh");
    assert!(
        tar.wait().expect("tar").success() && ssh.success(),
        "tar | ssh tar failed"
    );
    (start.elapsed(), rig.relay.total() - before)
}

#[tokio::main]
async fn main() {
    let files = arg("--files", 10_000);
    let runs = arg("--runs", 3).max(1);
    let work = tempfile::tempdir().expect("bench dir");
    let tree = work.path().join("tree");
    let content = build_tree(&tree, files);
    eprintln!("built {files} files, {} of content", mb(content));

    let rig = SshRig::start().await;
    let rs = rig.spec(
        "bench",
        serde_json::json!({"command": "true", "on_finish": "keep"}),
    );
    let orch = Orchestrator::new(&rig.provider, &rig.state, &NoProgress);
    let (d, _) = orch
        .ensure_environment(&rs)
        .await
        .unwrap_or_else(|e| panic!("deploy: {e} (hint: {:?})", e.hint()));

    // tar's own master connection, opened before anything is timed (sindri's was
    // opened by the deploy).
    let control = work.path().join("tar-master");
    let st = Command::new("ssh")
        .args(["-o", "ControlMaster=auto", "-o", "ControlPersist=120"])
        .args(ssh_args(&rig, &control))
        .arg("true")
        .status()
        .expect("ssh");
    assert!(st.success(), "ssh to the test server failed");

    let mut sindri_secs = Vec::new();
    let mut sindri_bytes = Vec::new();
    let mut tar_secs = Vec::new();
    let mut tar_bytes = Vec::new();
    let mut first_report = SyncReport::default();
    let cache = work.path().join("cache.manifest");
    let tar_dest = rig.remote_home.path().join("tar-copy");
    for i in 0..runs {
        let _ = std::fs::remove_dir_all(rig.remote_workdir());
        let _ = std::fs::remove_file(&cache);
        let (t, bytes, report) = sindri_sync(&rig, &d, &tree, &cache).await;
        assert!(report.full && report.files == files as u64, "{report:?}");
        eprintln!(
            "sindri first sync {}: {:.2} s, {}",
            i + 1,
            t.as_secs_f64(),
            mb(bytes)
        );
        sindri_secs.push(t.as_secs_f64());
        sindri_bytes.push(bytes);
        first_report = report;

        let _ = std::fs::remove_dir_all(&tar_dest);
        let (t, bytes) = tar_sync(&rig, &tree, &tar_dest, &control);
        eprintln!(
            "tar | ssh tar {}: {:.2} s, {}",
            i + 1,
            t.as_secs_f64(),
            mb(bytes)
        );
        tar_secs.push(t.as_secs_f64());
        tar_bytes.push(bytes);
    }

    // Re-runs: one file changed each time.
    let mut rerun_bytes = Vec::new();
    let mut rerun_counted = Vec::new();
    let mut rerun_secs = Vec::new();
    for i in 0..runs {
        let rel = format!("d{:03}/f{:05}.py", (i * 37) % files / 100, (i * 37) % files);
        let path = tree.join(&rel);
        let mut text = std::fs::read(&path).expect("read");
        text.extend_from_slice(format!("# edit {i}\n").as_bytes());
        std::fs::write(&path, text).expect("edit");
        let (t, bytes, report) = sindri_sync(&rig, &d, &tree, &cache).await;
        assert_eq!(report.sent, vec![rel], "only the edited file is sent");
        rerun_secs.push(t.as_secs_f64());
        rerun_bytes.push(bytes);
        rerun_counted.push(report.wire_sent + report.wire_received);
    }
    let (_, unchanged_bytes, unchanged) = sindri_sync(&rig, &d, &tree, &cache).await;
    assert!(unchanged.sent.is_empty());
    let _ = std::fs::remove_file(&cache);
    let (lost_secs, lost_bytes, lost) = sindri_sync(&rig, &d, &tree, &cache).await;
    assert!(lost.sent.is_empty() && !lost.full, "{lost:?}");

    let s_best = sindri_secs.iter().copied().fold(f64::MAX, f64::min);
    let t_best = tar_secs.iter().copied().fold(f64::MAX, f64::min);
    let s_secs = median(&mut sindri_secs);
    let t_secs = median(&mut tar_secs);
    let s_bytes = median_u64(&mut sindri_bytes);
    let t_bytes = median_u64(&mut tar_bytes);
    let r_bytes = median_u64(&mut rerun_bytes);
    let r_counted = median_u64(&mut rerun_counted);
    let pct = |b: u64| format!("{:.3} %", 100.0 * b as f64 / s_bytes as f64);
    println!(
        "## Workdir sync over SSH: {files} files, {} of content ({runs} runs of each)",
        mb(content)
    );
    println!();
    println!(
        "Files in {} on both sides; the machine's load average at the end: {}.",
        std::env::temp_dir().display(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    );
    println!();
    println!("| | sindri (aws provider, SSH) | `tar -c \\| ssh tar -x` |");
    println!("|---|---|---|");
    println!(
        "| first sync, time: median (best) | {s_secs:.2} s ({s_best:.2} s) | {t_secs:.2} s ({t_best:.2} s) |"
    );
    let rate = |secs: f64| content as f64 / 1e6 / secs;
    println!(
        "| first sync, content throughput: median (best) | {:.1} MB/s ({:.1} MB/s) | {:.1} MB/s ({:.1} MB/s) |",
        rate(s_secs),
        rate(s_best),
        rate(t_secs),
        rate(t_best)
    );
    println!(
        "| first sync, bytes on the SSH connection | {} | {} |",
        mb(s_bytes),
        mb(t_bytes)
    );
    println!(
        "| first sync, sindri's own count (sent + received) | {} | |",
        mb(first_report.wire_sent + first_report.wire_received)
    );
    println!(
        "| re-run, one file changed: bytes on the connection | {r_bytes} B ({} of the first sync) | |",
        pct(r_bytes)
    );
    println!(
        "| re-run, one file changed: sindri's own count | {r_counted} B ({}) | |",
        pct(r_counted)
    );
    println!(
        "| re-run, one file changed: time (median) | {:.2} s | |",
        median(&mut rerun_secs)
    );
    println!(
        "| re-run, nothing changed: bytes on the connection | {unchanged_bytes} B ({}) | |",
        pct(unchanged_bytes)
    );
    println!(
        "| re-run after losing the local manifest copy: bytes, time | {lost_bytes} B ({}), {:.2} s | |",
        pct(lost_bytes),
        lost_secs.as_secs_f64()
    );

    let _ = Command::new("ssh")
        .args(["-O", "exit"])
        .args(ssh_args(&rig, &control))
        .stderr(Stdio::null())
        .status();
}
