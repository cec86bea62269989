//! Fixtures for the AWS provider's tests: moto (started per test on a free loopback
//! port, with the public SSM image parameters seeded), a fault-injecting proxy in
//! front of it, a fake instance metadata service, raw EC2 calls that bypass sindri's
//! client (to check what AWS really holds), and provider and spec builders.
#![allow(dead_code)]

pub mod sshd;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sindri_core::{Deployment, DeploymentState, ResolvedSpec};
use sindri_providers::aws::AwsProvider;
use sindri_spec::{AwsSettings, Spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use sshd::free_port;

/// The CIDR the tests admit to SSH (a documentation address).
pub const CIDR: &str = "203.0.113.7/32";
/// The region the tests use.
pub const REGION: &str = "us-east-1";
/// The fake credentials the tests sign with.
pub const ACCESS_KEY: &str = "AKIDSINDRITEST";
pub const SECRET_KEY: &str = "sindri-test-secret-never-shown";

/// A moto server of this test's own; killed on drop.
pub struct Moto {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts `moto_server` (through `moto_seeded.py`, which adds the public SSM image
    /// parameters) on a free port, with AMI validation on, and waits until it answers.
    pub fn start() -> Moto {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/aws/moto_seeded.py");
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("moto log");
        let child = Command::new("python3")
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().expect("moto log")))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 for moto: {e}. Install Python 3 and `pip install 'moto[server]'`")
            });
        let mut m = Moto { port, child, log };
        for _ in 0..400 {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!(
                    "moto exited ({status}): {}\nInstall it: `pip install 'moto[server]'` (CI: .ci/setup)",
                    std::fs::read_to_string(m.log.path()).unwrap_or_default()
                );
            }
            if http("127.0.0.1", m.port, "GET", "/moto-api/", &[], b"").is_ok() {
                return m;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("moto never answered on 127.0.0.1:{port}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw EC2 Query API call, straight to moto (not through sindri's client).
    pub fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        raw_query(self.port, "ec2", action, "2016-11-15", params)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Query API call with a syntactically valid but unchecked signature (moto routes by
/// the credential scope and does not verify signatures).
pub fn raw_query(
    port: u16,
    service: &str,
    action: &str,
    version: &str,
    params: &[(&str, &str)],
) -> String {
    let mut body = format!("Action={action}&Version={version}");
    for (k, v) in params {
        body.push_str(&format!("&{}={}", enc(k), enc(v)));
    }
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDRAW/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"
    );
    let (status, text) = http(
        "127.0.0.1",
        port,
        "POST",
        "/",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .expect("moto answers");
    assert!(
        (200..300).contains(&status),
        "{action} failed ({status}): {text}"
    );
    text
}

/// A minimal HTTP/1.1 exchange with `Connection: close`.
pub fn http(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect((host, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:.200}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Every `<tag>` text in `xml`, in order (enough to check answers in tests).
pub fn texts(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

/// The `<item>` blocks directly inside the first `<set>` element.
pub fn items(xml: &str, set: &str) -> Vec<String> {
    let open = format!("<{set}>");
    let close = format!("</{set}>");
    let Some(start) = xml.find(&open) else {
        return vec![];
    };
    let body = &xml[start + open.len()..];
    // Walk items at depth 1.
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut item_start = 0;
    while i < body.len() {
        let rest = &body[i..];
        if rest.starts_with(&close) && depth == 0 {
            break;
        } else if rest.starts_with("<item>") {
            if depth == 0 {
                item_start = i + 6;
            }
            depth += 1;
            i += 6;
        } else if rest.starts_with("</item>") {
            depth -= 1;
            if depth == 0 {
                out.push(body[item_start..i].to_string());
            }
            i += 7;
        } else {
            i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
        }
    }
    out
}

/// A tag's value in an item's `<tagSet>`.
pub fn tag(item: &str, key: &str) -> Option<String> {
    items(item, "tagSet").into_iter().find_map(|t| {
        (texts(&t, "key").first().map(String::as_str) == Some(key))
            .then(|| texts(&t, "value").first().cloned().unwrap_or_default())
    })
}

/// Instances moto holds, as `<item>` blocks of `instancesSet`.
pub fn instances(moto: &Moto, filters: &[(&str, &str)]) -> Vec<String> {
    let mut params = Vec::new();
    let names: Vec<String> = (1..=filters.len())
        .map(|i| format!("Filter.{i}.Name"))
        .collect();
    let values: Vec<String> = (1..=filters.len())
        .map(|i| format!("Filter.{i}.Value.1"))
        .collect();
    for (i, (k, v)) in filters.iter().enumerate() {
        params.push((names[i].as_str(), *k));
        params.push((values[i].as_str(), *v));
    }
    let xml = moto.ec2("DescribeInstances", &params);
    items(&xml, "reservationSet")
        .into_iter()
        .flat_map(|r| items(&r, "instancesSet"))
        .collect()
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `Action=` of a Query call, or the `X-Amz-Target` of a JSON call.
    pub action: String,
    pub body: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// True when the proxy answered with an injected fault.
    pub faulted: bool,
}

/// A fault to inject: requests whose action is `action` (and whose body contains
/// `body_contains`) get `code` with HTTP `status`, `times` times (forever if `None`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub action: String,
    pub body_contains: Option<String>,
    pub code: String,
    pub status: u16,
    pub times: Option<u32>,
}

impl Fault {
    pub fn new(action: &str, code: &str, status: u16) -> Fault {
        Fault {
            action: action.into(),
            body_contains: None,
            code: code.into(),
            status,
            times: None,
        }
    }

    pub fn when_body_contains(mut self, s: &str) -> Fault {
        self.body_contains = Some(s.into());
        self
    }

    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
}

/// An HTTP proxy in front of moto that records every request and injects faults.
pub struct Proxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let (s2, f2) = (seen.clone(), faults.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    break;
                };
                let (s3, f3) = (s2.clone(), f2.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, s3, f3).await;
                });
            }
        });
        Proxy {
            port,
            seen,
            faults,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn inject(&self, f: Fault) {
        self.faults.lock().unwrap().push(f);
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn calls(&self, action: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.action == action)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    upstream: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
) -> std::io::Result<()> {
    // One request per connection: head, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut headers = BTreeMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let action = headers
        .get("x-amz-target")
        .cloned()
        .or_else(|| {
            body.split('&')
                .find_map(|kv| kv.strip_prefix("Action=").map(str::to_string))
        })
        .unwrap_or_default();
    let fault = {
        let mut fs = faults.lock().unwrap();
        let idx = fs.iter().position(|f| {
            (action == f.action || action.ends_with(&format!(".{}", f.action)))
                && f.body_contains
                    .as_ref()
                    .is_none_or(|s| body.contains(s.as_str()))
                && f.times != Some(0)
        });
        idx.map(|i| {
            if let Some(t) = fs[i].times.as_mut() {
                *t -= 1;
            }
            fs[i].clone()
        })
    };
    seen.lock().unwrap().push(Seen {
        action: action.clone(),
        body: body.clone(),
        headers: headers.clone(),
        faulted: fault.is_some(),
    });
    let response = match fault {
        Some(f) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{}</Code>\
                 <Message>injected by the test proxy</Message></Error></Errors><RequestID>fault</RequestID></Response>",
                f.code
            );
            format!(
                "HTTP/1.1 {} Injected\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                f.status,
                xml.len()
            )
            .into_bytes()
        }
        None => {
            let mut up = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
            let mut fwd = String::new();
            for (i, line) in head.lines().enumerate() {
                if line.is_empty() {
                    continue;
                }
                if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
                    continue;
                }
                fwd.push_str(line);
                fwd.push_str("\r\n");
            }
            fwd.push_str("Connection: close\r\n\r\n");
            up.write_all(fwd.as_bytes()).await?;
            up.write_all(&buf[head_end..]).await?;
            let mut resp = Vec::new();
            up.read_to_end(&mut resp).await?;
            resp
        }
    };
    conn.write_all(&response).await?;
    conn.shutdown().await?;
    Ok(())
}

/// One request the fake metadata service saw: method, path, and its token header.
#[derive(Debug, Clone)]
pub struct ImdsHit {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
}

/// A fake IMDSv2 on loopback: a token for `PUT /latest/api/token`, and with that token
/// a role's credentials and the region. Requests without the token get 401.
pub struct Imds {
    pub port: u16,
    pub hits: Arc<Mutex<Vec<ImdsHit>>>,
    task: tokio::task::JoinHandle<()>,
}

pub const IMDS_TOKEN: &str = "imds-token-123";
pub const IMDS_KEY: &str = "AKIDFROMIMDS";

impl Imds {
    pub async fn start(region: &'static str) -> Imds {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind imds");
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<Vec<ImdsHit>>> = Arc::default();
        let h2 = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    break;
                };
                let h3 = h2.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&got).into_owned();
                    let mut first = head.lines().next().unwrap_or("").split_whitespace();
                    let method = first.next().unwrap_or("").to_string();
                    let path = first.next().unwrap_or("").to_string();
                    let token = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("x-aws-ec2-metadata-token")
                            .then(|| v.trim().to_string())
                    });
                    h3.lock().unwrap().push(ImdsHit {
                        method: method.clone(),
                        path: path.clone(),
                        token: token.clone(),
                    });
                    let authorized = token.as_deref() == Some(IMDS_TOKEN);
                    let (status, body) = match (method.as_str(), path.as_str()) {
                        ("PUT", "/latest/api/token") => (200, IMDS_TOKEN.to_string()),
                        (_, _) if !authorized => (401, String::new()),
                        ("GET", "/latest/meta-data/iam/security-credentials/") => {
                            (200, "sindri-test-role".to_string())
                        }
                        ("GET", "/latest/meta-data/iam/security-credentials/sindri-test-role") => (
                            200,
                            format!(
                                "{{\"Code\":\"Success\",\"AccessKeyId\":\"{IMDS_KEY}\",\"SecretAccessKey\":\"imds-secret\",\
                                 \"Token\":\"imds-session-token\",\"Expiration\":\"2099-01-01T00:00:00Z\"}}"
                            ),
                        ),
                        ("GET", "/latest/meta-data/placement/region") => (200, region.to_string()),
                        _ => (404, String::new()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Imds { port, hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

/// A home directory with an SSH key pair in `~/.ssh` (ed25519), and a state dir.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(dir.path().join(".ssh")).expect(".ssh");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "sindri-test", "-f"])
            .arg(dir.path().join(".ssh/id_ed25519"))
            .stdin(Stdio::null())
            .status()
            .expect("ssh-keygen (apt-get install -y openssh-client)");
        assert!(st.success());
        Home { dir }
    }

    /// Uses the given key pair (e.g. the one a test sshd accepts) as the user's key.
    pub fn with_key(key: &Path) -> Home {
        let dir = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(dir.path().join(".ssh")).expect(".ssh");
        std::fs::copy(key, dir.path().join(".ssh/id_ed25519")).expect("copy key");
        std::fs::copy(
            key.with_extension("pub"),
            dir.path().join(".ssh/id_ed25519.pub"),
        )
        .expect("copy pub");
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.path().join(".ssh/id_ed25519.pub")).expect("pub key")
    }
}

/// The environment variables of a provider under test: moto (or a proxy) at
/// `endpoint`, fake keys, a region, a home, a CIDR, and no metadata service.
pub fn test_env(endpoint: &str, home: &Path) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("AWS_ENDPOINT_URL".to_string(), endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), SECRET_KEY.to_string()),
        ("AWS_REGION".to_string(), REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ("HOME".to_string(), home.display().to_string()),
        ("SINDRI_AWS_SSH_CIDR".to_string(), CIDR.to_string()),
        (
            "SINDRI_STATE_DIR".to_string(),
            home.join("state").display().to_string(),
        ),
    ])
}

/// A provider against `endpoint`, polling fast (moto changes state at once).
pub fn provider(settings: AwsSettings, env: BTreeMap<String, String>) -> AwsProvider {
    AwsProvider::builder(settings)
        .env_vars(env)
        .polling(Duration::from_millis(20), 300)
        .retries(4, Duration::from_millis(5))
        .build()
}

/// A unique, valid environment name: `t-<tag>-<random>`.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t-{tag}-{:x}{n}", nanos)
}

/// A spec in a project directory of its own.
pub struct TestSpec {
    pub dir: tempfile::TempDir,
    pub spec: ResolvedSpec,
}

impl TestSpec {
    pub fn new(name: &str, deployment: serde_json::Value) -> TestSpec {
        let dir = tempfile::tempdir().expect("project dir");
        let mut d = serde_json::json!({"provider": "aws"});
        if let (Some(obj), Some(extra)) = (d.as_object_mut(), deployment.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        let spec: Spec = serde_json::from_value(serde_json::json!({"name": name, "deployment": d}))
            .expect("spec");
        let spec = ResolvedSpec::new(spec, &dir.path().join("sindri.yaml"));
        TestSpec { dir, spec }
    }

    /// A record of this spec as the CLI would hold it after a deploy lost its state.
    pub fn record(&self) -> Deployment {
        let mut d = Deployment::creating(
            self.spec.name(),
            sindri_spec::ProviderKind::Aws,
            &self.spec.project,
            &self.spec.spec_hash(),
        );
        d.state = DeploymentState::Creating;
        d
    }
}
