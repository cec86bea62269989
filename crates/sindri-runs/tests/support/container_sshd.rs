//! A machine that is not the test host, reached over SSH: a container of
//! `sindri-test/sshd:bookworm` (Debian 12, OpenSSH, root by key only; built by
//! `.ci/images/sshd/build.sh`) with its port 22 published on a random loopback port and
//! this test's public key in `/root/.ssh/authorized_keys`. Its `shutdown`, `poweroff`
//! and `halt` record the call in [`POWER_LOG`] and stop the container, as a machine
//! ending itself would.
//!
//! Exposes host, port, user and identity like the host-sshd fixture
//! (`sindri-providers/tests/support/aws/sshd.rs`), so an SSH-backed provider can point
//! at it, and looks inside with `docker exec` and `docker cp` (the latter also once the
//! container has stopped). The container is removed on drop, also when the test
//! panics; a test process killed outright leaves it behind, labelled [`LABEL`] with its
//! pid, and the next [`ContainerSshd::start`] removes such orphans.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The image.
pub const IMAGE: &str = "sindri-test/sshd:bookworm";
/// The label on every container started here; its value is the test process's pid.
pub const LABEL: &str = "sindri.test.container-sshd";
/// Where the power stand-ins record their calls, in the container.
pub const POWER_LOG: &str = "/var/log/sindri-power.log";
/// The script that builds the image.
pub const BUILD_SCRIPT: &str = ".ci/images/sshd/build.sh";

/// Builds the image once per process with [`BUILD_SCRIPT`] (a no-op when it is
/// current; it builds the Debian base first when that is missing). Panics saying what
/// to do when Docker or the build fails.
pub fn ensure_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(BUILD_SCRIPT);
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BUILD_SCRIPT}: {e}"));
        assert!(
            out.status.success(),
            "{BUILD_SCRIPT} could not build {IMAGE}: {}{}\nThese tests need a running Docker \
             Engine, root for debootstrap and Debian's mirrors the first time; run \
             `sudo {BUILD_SCRIPT}` (CI: .ci/setup).",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `docker ARGS`, panicking when it cannot start.
fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")))
}

/// Runs `docker ARGS` and returns its stdout; panics with stderr when it fails.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One process in the container, as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub pgid: u32,
    /// The state letter (`S`, `R`, `Z`...).
    pub state: char,
    pub args: String,
}

/// A running sshd container and the client key it accepts.
pub struct ContainerSshd {
    /// The container's id.
    pub id: String,
    /// Where its sshd is reached from this machine.
    pub host: String,
    pub port: u16,
    /// The login user (`root`).
    pub user: String,
    /// The client's private key (its public half is authorized).
    pub identity: PathBuf,
    dir: tempfile::TempDir,
}

impl ContainerSshd {
    /// Builds the image if needed, starts a container with a fresh client key
    /// authorized, and waits until its sshd greets.
    pub fn start() -> ContainerSshd {
        ensure_image();
        remove_orphans();
        let dir = tempfile::tempdir().expect("key dir");
        let identity = dir.path().join("id_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "sindri-test", "-f"])
            .arg(&identity)
            .stdin(Stdio::null())
            .status()
            .expect("run ssh-keygen (apt-get install -y openssh-client)");
        assert!(st.success(), "ssh-keygen failed");
        let label = format!("{LABEL}={}", std::process::id());
        // Created, given the key, then started: sshd never runs without it.
        let id = docker_ok(&["create", "--label", &label, "-p", "127.0.0.1::22", IMAGE])
            .trim()
            .to_string();
        let mut machine = ContainerSshd {
            id,
            host: "127.0.0.1".into(),
            port: 0,
            user: "root".into(),
            identity,
            dir,
        };
        let pubkey = machine.identity.with_extension("pub");
        docker_ok(&[
            "cp",
            &pubkey.display().to_string(),
            &format!("{}:/root/.ssh/authorized_keys", machine.id),
        ]);
        docker_ok(&["start", &machine.id]);
        let mapped = docker_ok(&["port", &machine.id, "22/tcp"]);
        machine.port = mapped
            .lines()
            .find_map(|l| l.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no loopback port published for 22/tcp: {mapped:?}"));
        machine.wait_greeting();
        machine
    }

    /// Waits until sshd sends its version line. Docker's port proxy accepts
    /// connections before sshd listens, so a connect alone proves nothing.
    fn wait_greeting(&self) {
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect((self.host.as_str(), self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            assert!(self.running(), "the sshd container exited: {}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "sshd in container {} never greeted on {}:{}: {}",
            self.id,
            self.host,
            self.port,
            self.logs()
        );
    }

    /// What the container printed (sshd logs to stderr).
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.id]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// True while the container runs.
    pub fn running(&self) -> bool {
        docker_ok(&["inspect", "--format", "{{.State.Running}}", &self.id]).trim() == "true"
    }

    /// Waits until the container has stopped (the machine went down), checking every
    /// 200 ms at most `attempts` times.
    pub async fn wait_stopped(&self, attempts: u32) {
        for _ in 0..attempts {
            if !self.running() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the machine (container {}) is still running", self.id);
    }

    /// Runs `script` with `sh -c` in the running container.
    pub fn exec(&self, script: &str) -> Output {
        docker(&["exec", &self.id, "sh", "-c", script])
    }

    /// Runs `script` and returns its stdout; panics unless it exits 0.
    pub fn exec_ok(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(
            out.status.success(),
            "`{script}` in the container failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// True when `path` exists in the running container.
    pub fn exists(&self, path: &str) -> bool {
        self.exec(&format!("test -e '{path}'")).status.success()
    }

    /// A file's content, read with `docker cp` (which also works once the container
    /// has stopped); `None` when it does not exist.
    pub fn read(&self, path: &str) -> Option<String> {
        let dest = tempfile::tempdir_in(self.dir.path()).expect("copy dir");
        let out = docker(&[
            "cp",
            &format!("{}:{path}", self.id),
            &dest.path().display().to_string(),
        ]);
        if !out.status.success() {
            return None;
        }
        let name = Path::new(path).file_name().expect("a file name");
        std::fs::read_to_string(dest.path().join(name)).ok()
    }

    /// Every regular file and link below `dir` in the container with its content (a
    /// link's target), skipping `skip(relative path)`; read as one tar stream.
    pub fn tree(&self, dir: &str, skip: &dyn Fn(&str) -> bool) -> BTreeMap<String, Vec<u8>> {
        let out = docker(&["exec", &self.id, "tar", "-C", dir, "-cf", "-", "."]);
        assert!(
            out.status.success(),
            "tar of {dir} in the container failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let mut archive = tar::Archive::new(out.stdout.as_slice());
        let mut files = BTreeMap::new();
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let rel = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if rel.is_empty() || skip(&rel) {
                continue;
            }
            let kind = entry.header().entry_type();
            if kind.is_symlink() {
                let target = entry.link_name().expect("link").expect("link target");
                files.insert(rel, target.to_string_lossy().into_owned().into_bytes());
            } else if kind.is_file() {
                let mut body = Vec::new();
                entry.read_to_end(&mut body).expect("tar body");
                files.insert(rel, body);
            }
        }
        files
    }

    /// The container's processes, zombies included.
    pub fn processes(&self) -> Vec<Process> {
        self.exec_ok("ps -eo pid=,pgid=,stat=,args=")
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let pid = f.next()?.parse().ok()?;
                let pgid = f.next()?.parse().ok()?;
                let state = f.next()?.chars().next()?;
                Some(Process {
                    pid,
                    pgid,
                    state,
                    args: f.collect::<Vec<_>>().join(" "),
                })
            })
            .collect()
    }

    /// The live (not zombie) processes of process group `pgid`.
    pub fn group(&self, pgid: u32) -> Vec<Process> {
        self.processes()
            .into_iter()
            .filter(|p| p.pgid == pgid && p.state != 'Z')
            .collect()
    }
}

impl Drop for ContainerSshd {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.id]);
    }
}

/// Removes containers of this fixture whose test process is gone (killed before it
/// could drop them).
fn remove_orphans() {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}"),
    ]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((id, pid)) = line.split_once(' ') else {
            continue;
        };
        let owner_alive = pid
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !owner_alive {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
}
