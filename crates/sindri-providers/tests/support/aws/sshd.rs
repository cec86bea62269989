//! A real OpenSSH server for tests: `/usr/sbin/sshd` on 127.0.0.1 and a free port, with
//! a temporary host key and authorized_keys, running as the current user. Dropping the
//! guard kills it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sindri_providers::ssh::{SshOptions, SshSession, SshTarget};

/// The server binary the tests need.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd and the client key it accepts.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    /// The client's private key (its public half is authorized).
    pub identity: PathBuf,
    child: Child,
}

/// A free TCP port on loopback (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The current user's name, as sshd will authenticate it.
pub fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("run `id -un`");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "sindri-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (apt-get install -y openssh-client)");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

impl Sshd {
    /// Starts sshd with a fresh host key.
    pub fn start() -> Sshd {
        Sshd::start_on(free_port(), None)
    }

    /// Starts sshd on `port`, reusing the client key of `previous` when given (so a
    /// test can replace a server with one whose host key differs).
    pub fn start_on(port: u16, client_key_from: Option<&Path>) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the SSH tests need a real OpenSSH server. Install it: \
             `apt-get install -y openssh-server` (it is only run by the tests, as the current user, on 127.0.0.1)"
        );
        let dir = tempfile::tempdir().expect("sshd dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        let identity = d.join("id_ed25519");
        match client_key_from {
            Some(k) => {
                std::fs::copy(k, &identity).expect("copy client key");
                std::fs::copy(k.with_extension("pub"), identity.with_extension("pub"))
                    .expect("copy client pub key");
                std::fs::set_permissions(
                    &identity,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .expect("chmod key");
            }
            None => keygen(&identity),
        }
        std::fs::copy(identity.with_extension("pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        let user = current_user();
        // This "machine" is the test host itself: a run's end hook (`shutdown -h now`
        // on a cloud VM) must never reach the real one. Sessions find stand-ins first
        // on PATH that only record that they were called.
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).expect("stand-in bin dir");
        for cmd in ["shutdown", "poweroff", "halt", "reboot"] {
            let path = bin.join(cmd);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{cmd} $*\" >> \"{}\"\n",
                    d.join("power.log").display()
                ),
            )
            .expect("stand-in");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod stand-in");
        }
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
             StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             UsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n\
             SetEnv PATH={bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            hk = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            ak = d.join("authorized_keys").display(),
            bin = bin.display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // As root, sshd insists on its privilege-separation directory.
        if user == "root" && !Path::new("/run/sshd").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).expect("sshd log"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let mut s = Sshd {
            dir,
            port,
            user,
            identity,
            child,
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&mut self) {
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}): {}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!(
            "sshd never listened on 127.0.0.1:{}: {}",
            self.port,
            self.log()
        );
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The target for this server with its accepted key.
    pub fn target(&self) -> SshTarget {
        SshTarget::new(self.user.clone(), "127.0.0.1")
            .with_port(self.port)
            .with_identity(&self.identity)
    }

    /// A session with sindri's options kept in `state`.
    pub fn session(&self, key: &str, state: &Path) -> SshSession {
        SshSession::new(key, self.target(), SshOptions::in_state_dir(state))
    }

    /// Stops the server now, with the per-connection processes it forked (which
    /// would otherwise keep master connections alive).
    pub fn stop(&mut self) {
        let kids = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in kids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process descended from `pid`, found through /proc by parent id.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The command name may contain spaces; the fields after its `)` are fixed.
            let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
                continue;
            };
            if let Some(ppid) = after
                .split_whitespace()
                .nth(1)
                .and_then(|f| f.parse::<u32>().ok())
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp) in &parents {
            if *pp == parent && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}
