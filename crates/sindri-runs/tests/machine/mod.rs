//! A machine of this host that behaves like a cloud one for runs: the local provider,
//! with the end-of-run command and the spot interruption check a cloud provider
//! would give (`Provider::self_end`, the `run_interruption_check` detail), and a fake
//! EC2 instance metadata service (IMDSv2) that can announce an interruption.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sindri_core::provider::SelfEnd;
use sindri_core::{
    Capabilities, Check, DeployOptions, Deployment, DestroyOptions, DestroyReport, ExecCommand,
    ExecIo, LogOptions, LogSink, Plan, Progress, Provider, ResolvedSpec, Result, Status,
    TransferStats,
};
use sindri_providers::local::LocalProvider;
use sindri_spec::{OnFinish, ProviderKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The local provider, plus what a cloud provider adds for runs.
pub struct CloudLike {
    pub inner: LocalProvider,
    /// What `self_end` answers (for `stop` and `destroy`).
    pub end_command: Option<String>,
    /// Recorded as `run_interruption_check` on every deployment.
    pub interruption_check: Option<String>,
    /// Policies `self_end` was asked for.
    pub asked: Mutex<Vec<OnFinish>>,
}

impl CloudLike {
    pub fn new(inner: LocalProvider) -> CloudLike {
        CloudLike {
            inner,
            end_command: None,
            interruption_check: None,
            asked: Mutex::new(Vec::new()),
        }
    }

    fn mark(&self, mut d: Deployment) -> Deployment {
        if let Some(c) = &self.interruption_check {
            d.details.insert("run_interruption_check".into(), c.clone());
        }
        d
    }
}

#[async_trait]
impl Provider for CloudLike {
    fn kind(&self) -> ProviderKind {
        self.inner.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn check(&self) -> Vec<Check> {
        self.inner.check().await
    }
    async fn plan(&self, spec: &ResolvedSpec, current: Option<&Deployment>) -> Result<Plan> {
        self.inner.plan(spec, current).await
    }
    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment> {
        Ok(self.mark(self.inner.deploy(spec, opts, progress).await?))
    }
    async fn status(&self, d: &Deployment) -> Result<Status> {
        self.inner.status(d).await
    }
    async fn start(&self, d: &Deployment) -> Result<()> {
        self.inner.start(d).await
    }
    async fn stop(&self, d: &Deployment) -> Result<()> {
        self.inner.stop(d).await
    }
    async fn suspend(&self, d: &Deployment) -> Result<()> {
        self.inner.suspend(d).await
    }
    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        self.inner.exec(d, cmd, io).await
    }
    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32> {
        self.inner.connect(d, io).await
    }
    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()> {
        self.inner.logs(d, opts, out).await
    }
    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats> {
        self.inner.copy_in(d, from, to).await
    }
    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats> {
        self.inner.copy_out(d, from, to).await
    }
    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport> {
        self.inner.destroy(d, opts).await
    }
    async fn list_owned(&self) -> Result<Vec<Deployment>> {
        Ok(self
            .inner
            .list_owned()
            .await?
            .into_iter()
            .map(|d| self.mark(d))
            .collect())
    }
    async fn self_end(&self, _d: &Deployment, policy: OnFinish) -> Result<Option<SelfEnd>> {
        self.asked.lock().unwrap().push(policy);
        Ok(self.end_command.clone().map(|command| SelfEnd {
            command,
            action: policy,
        }))
    }
}

/// A directory of stand-in programs put first on the job's PATH.
pub struct Stubs {
    pub dir: tempfile::TempDir,
}

impl Stubs {
    /// A `shutdown` (and `sudo`, which runs what follows `-n`) that records each call
    /// in `calls` instead of shutting anything down.
    pub fn shutdown() -> Stubs {
        let dir = tempfile::tempdir().expect("stub dir");
        let calls = dir.path().join("calls");
        write_exec(
            &dir.path().join("shutdown"),
            &format!(
                "#!/bin/sh\nprintf 'shutdown %s\\n' \"$*\" >> '{}'\n",
                calls.display()
            ),
        );
        write_exec(
            &dir.path().join("sudo"),
            "#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n",
        );
        Stubs { dir }
    }

    /// The job's PATH: these stubs first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Every recorded call, one per line; empty when none.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    pub fn calls_path(&self) -> PathBuf {
        self.dir.path().join("calls")
    }
}

/// Writes an executable file.
pub fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write stub");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod stub");
}

/// One request the fake metadata service answered.
#[derive(Debug, Clone)]
pub struct ImdsHit {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub status: u16,
}

/// A fake IMDSv2 on loopback: `PUT /latest/api/token` (with a TTL header) gives a
/// token; `GET /latest/meta-data/spot/instance-action` with that token answers 404
/// until [`Imds::announce`], then EC2's notice. Anything else, or a missing token,
/// is refused as EC2 refuses it (401).
pub struct Imds {
    pub port: u16,
    notice: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<ImdsHit>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The notice the fake service gives.
pub const NOTICE: &str = r#"{"action":"terminate","time":"2030-01-01T00:02:00Z"}"#;
const TOKEN: &str = "imds-token-for-sindri-tests";

impl Imds {
    pub async fn start() -> Imds {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind imds");
        let port = listener.local_addr().expect("addr").port();
        let notice = Arc::new(AtomicBool::new(false));
        let hits: Arc<Mutex<Vec<ImdsHit>>> = Arc::default();
        let (n2, h2) = (notice.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (n3, h3) = (n2.clone(), h2.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, n3, h3).await;
                });
            }
        });
        Imds {
            port,
            notice,
            hits,
            task,
        }
    }

    /// `SINDRI_IMDS_ENDPOINT` for the interruption check.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, the instance is being reclaimed.
    pub fn announce(&self, on: bool) {
        self.notice.store(on, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<ImdsHit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    notice: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<ImdsHit>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let token = header("x-aws-ec2-metadata-token");
    let (status, body) = match (method.as_str(), path.as_str()) {
        ("PUT", "/latest/api/token")
            if header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
        {
            (200, TOKEN.to_string())
        }
        ("PUT", "/latest/api/token") => (400, String::new()),
        ("GET", "/latest/meta-data/spot/instance-action") if token.as_deref() == Some(TOKEN) => {
            if notice.load(Ordering::SeqCst) {
                (200, NOTICE.to_string())
            } else {
                (404, "Not Found".to_string())
            }
        }
        _ => (401, String::new()),
    };
    hits.lock().unwrap().push(ImdsHit {
        method,
        path,
        token,
        status,
    });
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
