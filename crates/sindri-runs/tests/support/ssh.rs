//! An EC2 "instance" for runs over real SSH: moto answers the AWS API, a local OpenSSH
//! server (started per rig, as this machine's user, on loopback) stands in for the
//! machine, and a relay in front of it counts every byte the SSH connection carries.
//! Shared by `tests/ssh_runs.rs` and `benches/sync_ssh.rs`.
//!
//! The server logs in as this machine's user, whose real home must not be touched: a
//! `HOME` secret (delivered and sourced before every command, as secrets are) points
//! the environment's home at a temporary directory, so the workdir and run directories
//! land there.
#![allow(dead_code)]

#[path = "../../../sindri-providers/tests/support/aws/mod.rs"]
pub mod aws;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws::Home;
use aws::sshd::Sshd;
use sindri_core::{ResolvedSecret, ResolvedSpec, SecretValue};
use sindri_providers::aws::AwsProvider;
use sindri_spec::{AwsSettings, Spec};
use sindri_state::StateStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP relay on loopback that counts the bytes going each way.
pub struct Relay {
    /// The port clients connect to.
    pub port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Forwards every connection to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (u, d) = (up.clone(), down.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (u, d) = (u.clone(), d.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, u), pipe(sr, cw, d));
                });
            }
        });
        Relay {
            port,
            up,
            down,
            task,
        }
    }

    /// Bytes (client to server, server to client) relayed so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
        )
    }

    /// Both directions together.
    pub fn total(&self) -> u64 {
        let (u, d) = self.bytes();
        u + d
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
    }
    let _ = to.shutdown().await;
}

/// moto on a free loopback port, as the providers' AWS tests start it (with the public
/// SSM image parameters seeded); killed on drop.
pub struct Moto {
    pub port: u16,
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts it and waits until it answers.
    pub fn start() -> Moto {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sindri-providers/tests/support/aws/moto_seeded.py");
        let port = aws::free_port();
        let log = tempfile::NamedTempFile::new().expect("moto log");
        let child = std::process::Command::new("python3")
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("moto log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 for moto: {e}. Install Python 3 and `pip install 'moto[server]'` (CI: .ci/setup)")
            });
        let mut m = Moto { port, child, log };
        for _ in 0..400 {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!(
                    "moto exited ({status}): {}\nInstall it: `pip install 'moto[server]'` (CI: .ci/setup)",
                    std::fs::read_to_string(m.log.path()).unwrap_or_default()
                );
            }
            if aws::http("127.0.0.1", m.port, "GET", "/moto-api/", &[], b"").is_ok() {
                return m;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("moto never answered on 127.0.0.1:{port}");
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto, sshd behind a counting relay, a home with the key sshd accepts, and sindri's
/// state: everything `sindri run --provider aws` needs, on this machine.
pub struct SshRig {
    pub moto: Moto,
    pub sshd: Sshd,
    pub relay: Relay,
    pub home: Home,
    /// The environment's `$HOME` (a directory of this machine, reached over SSH).
    pub remote_home: tempfile::TempDir,
    pub secrets: tempfile::TempDir,
    pub project: tempfile::TempDir,
    pub state_dir: tempfile::TempDir,
    pub state: StateStore,
    pub provider: AwsProvider,
}

impl SshRig {
    /// Starts moto, sshd and the relay.
    pub async fn start() -> SshRig {
        let moto = Moto::start();
        let sshd = Sshd::start();
        let relay = Relay::start(sshd.port).await;
        let home = Home::with_key(&sshd.identity);
        let secrets = tempfile::tempdir().expect("secrets dir");
        let provider = AwsProvider::builder(AwsSettings::default())
            .env_vars(aws::test_env(&moto.url(), home.path()))
            .polling(Duration::from_millis(20), 300)
            .ssh_endpoint("127.0.0.1", relay.port)
            .ssh_user(sshd.user.clone())
            .secrets_dir(secrets.path().display().to_string())
            .build();
        let state_dir = tempfile::tempdir().expect("state dir");
        let state = StateStore::open(state_dir.path()).expect("state store");
        SshRig {
            moto,
            sshd,
            relay,
            home,
            remote_home: tempfile::tempdir().expect("remote home"),
            secrets,
            project: tempfile::tempdir().expect("project"),
            state_dir,
            state,
            provider,
        }
    }

    /// A spec for the aws provider named `name` (made unique), with this `run` section.
    pub fn spec(&self, name: &str, run: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": aws::unique_name(name),
            "deployment": {"provider": "aws"},
            "run": run,
        }))
        .expect("valid spec");
        let mut rs = ResolvedSpec::new(spec, &self.project.path().join("sindri.yaml"));
        rs.secrets.push(ResolvedSecret {
            name: "HOME".into(),
            value: SecretValue::new(self.remote_home.path().display().to_string()),
            mount: None,
        });
        rs
    }

    /// Writes a project file.
    pub fn write(&self, rel: &str, content: &[u8]) {
        write_file(self.project.path(), rel, content);
    }

    /// Removes a project file.
    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.project.path().join(rel)).expect("remove a project file");
    }

    /// The environment's workdir (`$HOME/work`), as a path of this machine.
    pub fn remote_workdir(&self) -> PathBuf {
        self.remote_home.path().join("work")
    }
}

/// Writes `root/rel`, creating its directories.
pub fn write_file(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

/// Every regular file and link below `root` with its content (a link's target),
/// skipping `skip(relative path)`.
pub fn tree(
    root: &Path,
    skip: &dyn Fn(&str) -> bool,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn go(
        root: &Path,
        dir: &Path,
        skip: &dyn Fn(&str) -> bool,
        out: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if skip(&rel) {
                continue;
            }
            let ft = e.file_type().expect("type");
            if ft.is_dir() {
                go(root, &p, skip, out);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p).expect("read link");
                out.insert(rel, target.to_string_lossy().into_owned().into_bytes());
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut m = std::collections::BTreeMap::new();
    go(root, root, skip, &mut m);
    m
}
