//! envd, the daemon inside every E2B sandbox: processes (Connect RPC `process.Process`),
//! the file system (`filesystem.Filesystem`) and file transfer (`GET`/`POST /files`).
//! Wire formats follow `packages/envd/spec/` of e2b-dev/infra: envd.yaml,
//! process.proto and filesystem.proto.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sindri_core::{Error, ErrorKind, ExecIo, Result};
use sindri_spec::ProviderKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::api::SandboxDetail;
use super::config::{E2bConfig, ENVD_PORT};
use super::connect::{self, EnvelopeReader, FLAG_COMPRESSED, FLAG_END_STREAM, STREAM_CONTENT_TYPE};
use crate::http::{Auth, HttpClient, Request};

/// The first envd version whose requests run as the sandbox's default user when no
/// user is named; older ones need `user` named (as E2B's SDKs do).
const DEFAULT_USER_SINCE: (u32, u32, u32) = (0, 4, 0);

/// Input is sent in pieces of at most this size.
const INPUT_CHUNK: usize = 32 * 1024;

/// A file-system entry, as `Stat` and `ListDir` describe it.
#[derive(Debug, Clone, Deserialize)]
pub struct EntryInfo {
    /// Base name.
    #[serde(default)]
    pub name: String,
    /// `FILE_TYPE_FILE`, `FILE_TYPE_DIRECTORY`, `FILE_TYPE_SYMLINK`.
    #[serde(default, rename = "type")]
    pub kind: Value,
    /// Absolute path.
    #[serde(default)]
    pub path: String,
    /// Size in bytes (an int64: a string in JSON).
    #[serde(default, deserialize_with = "int64")]
    pub size: u64,
    /// Mode bits.
    #[serde(default)]
    pub mode: u32,
}

impl EntryInfo {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        matches!(&self.kind, Value::String(s) if s == "FILE_TYPE_DIRECTORY")
            || self.kind == json!(2)
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        matches!(&self.kind, Value::String(s) if s == "FILE_TYPE_FILE") || self.kind == json!(1)
    }
}

fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => Ok(n.as_u64().unwrap_or(0)),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        _ => Ok(0),
    }
}

/// How a process ended.
#[derive(Debug, Clone, Default)]
struct End {
    exit_code: i32,
    exited: bool,
    status: String,
    error: Option<String>,
}

/// A client of one sandbox's envd.
#[derive(Debug, Clone)]
pub struct Envd {
    http: HttpClient,
    sandbox: String,
    default_user: Option<&'static str>,
}

impl Envd {
    /// A client for `sandbox`'s envd, sharing the control plane client's pool.
    pub fn new(api: &HttpClient, config: &E2bConfig, sandbox: &SandboxDetail) -> Result<Envd> {
        let base = config.envd_url(&sandbox.sandbox_id, sandbox.domain.as_deref())?;
        let auth = match &sandbox.envd_access_token {
            Some(t) if !t.is_empty() => Auth::Header {
                name: "X-Access-Token",
                value: sindri_core::SecretValue::new(t.clone()),
            },
            _ => Auth::None,
        };
        let http = api
            .derive("E2B envd", base, auth)?
            .with_classifier(connect::classify);
        Ok(Envd {
            http,
            sandbox: sandbox.sandbox_id.clone(),
            default_user: (version(&sandbox.envd_version) < DEFAULT_USER_SINCE).then_some("user"),
        })
    }

    /// A request carrying the sandbox routing headers and, when a user is named (or
    /// envd is too old to pick its default), that user.
    fn request(&self, req: Request, user: Option<&str>) -> Request {
        let req = req
            .header("E2b-Sandbox-Id", &self.sandbox)
            .header("E2b-Sandbox-Port", &ENVD_PORT.to_string());
        match user.or(self.default_user) {
            Some(u) => req.header(
                "Authorization",
                &format!("Basic {}", B64.encode(format!("{u}:"))),
            ),
            None => req,
        }
    }

    /// A unary RPC. `idempotent` ones (reads, resizes, creating a directory that may
    /// exist) are sent again after a dropped connection or a 5xx; input is not, as a
    /// repeat could type it twice.
    async fn unary(
        &self,
        rpc: &str,
        body: Value,
        what: &str,
        accept: &[u16],
        idempotent: bool,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .request(self.http.post(&format!("/{rpc}")), None)
            .header("Connect-Protocol-Version", "1")
            .json(&body)
            .idempotent(idempotent)
            .what(what.to_string());
        for s in accept {
            req = req.accept(*s);
        }
        let r = self.http.send(req).await?;
        let status = r.status();
        Ok((status, r.json().await?))
    }

    /// Runs a process to its end, streaming its output and input; returns its exit
    /// code. With `pty`, output arrives as one stream (written to stdout) and input is
    /// typed into the terminal.
    pub async fn run(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
        user: Option<&str>,
        io: ExecIo,
    ) -> Result<i32> {
        let (cmd, args) = argv
            .split_first()
            .ok_or_else(|| Error::invalid("no command given"))?;
        let ExecIo {
            stdin,
            mut stdout,
            mut stderr,
            tty,
        } = io;
        let mut process = json!({"cmd": cmd, "args": args});
        if !env.is_empty() {
            let envs: Map<String, Value> = env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            process["envs"] = Value::Object(envs);
        }
        if let Some(c) = cwd {
            process["cwd"] = json!(c);
        }
        let pty = tty.as_ref().map(|rx| *rx.borrow());
        let mut start = json!({"process": process, "stdin": stdin.is_some() || pty.is_some()});
        if let Some((cols, rows)) = pty {
            start["pty"] = json!({"size": {"cols": cols, "rows": rows}});
        }
        let what = format!("run `{cmd}` in sandbox {}", self.sandbox);
        let body = connect::envelope(0, &serde_json::to_vec(&start).unwrap_or_default());
        let resp = self
            .http
            .send(
                self.request(self.http.post("/process.Process/Start"), user)
                    .header("Connect-Protocol-Version", "1")
                    .body(body, STREAM_CONTENT_TYPE)
                    .no_timeout()
                    .what(what.clone()),
            )
            .await?;

        let (pid_tx, pid_rx) = tokio::sync::watch::channel::<Option<u32>>(None);
        let end = {
            let output = read_events(resp, &mut stdout, &mut stderr, pid_tx, &what);
            let input = async {
                let pid = wait_pid(pid_rx.clone()).await?;
                match stdin {
                    Some(s) => self.pump_input(pid, s, pty.is_some()).await,
                    None => Ok(()),
                }
            };
            let resize = async {
                let Some(mut rx) = tty else {
                    return Ok::<(), Error>(());
                };
                let pid = wait_pid(pid_rx.clone()).await?;
                while rx.changed().await.is_ok() {
                    let (cols, rows) = *rx.borrow_and_update();
                    self.unary(
                    "process.Process/Update",
                    json!({"process": {"pid": pid}, "pty": {"size": {"cols": cols, "rows": rows}}}),
                    "resize the terminal",
                    &[],
                    true,
                )
                .await?;
                }
                Ok(())
            };
            tokio::pin!(output, input, resize);
            let (mut input_done, mut resize_done) = (false, false);
            loop {
                tokio::select! {
                    // The output first: once the command has ended, what happened to
                    // its input no longer matters.
                    biased;
                    r = &mut output => break r?,
                    r = &mut input, if !input_done => {
                        input_done = true;
                        match r {
                            // Input lost on the way (a failed or dropped call): the
                            // command would wait for it forever or run on part of it.
                            Err(e) if matches!(
                                e.kind(),
                                ErrorKind::Transient
                                    | ErrorKind::Unavailable
                                    | ErrorKind::Platform
                                    | ErrorKind::Auth
                            ) =>
                            {
                                return Err(Error::new(
                                    e.kind(),
                                    format!("{what}: its input could not be delivered: {}", e.message()),
                                )
                                .with_provider(ProviderKind::E2b)
                                .with_hint(
                                    "the command may still be running in the sandbox; check with `sindri exec -- ps`, then run it again",
                                ));
                            }
                            // The process ended (or closed its input) first: its end
                            // event says how it went.
                            Err(e) => {
                                tracing::debug!(target: "sindri::e2b", "sending input stopped: {e}");
                            }
                            Ok(()) => {}
                        }
                    }
                    r = &mut resize, if !resize_done => {
                        resize_done = true;
                        if let Err(e) = r {
                            tracing::debug!(target: "sindri::e2b", "resizing stopped: {e}");
                        }
                    }
                }
            }
        };
        stdout.flush().await?;
        stderr.flush().await?;
        exit_code(&end, &what)
    }

    /// Sends `stdin` to process `pid`, then closes its input (or, on a terminal, types
    /// Ctrl-D as a terminal would).
    async fn pump_input(
        &self,
        pid: u32,
        mut stdin: Box<dyn AsyncRead + Send + Unpin>,
        pty: bool,
    ) -> Result<()> {
        let field = if pty { "pty" } else { "stdin" };
        let mut buf = vec![0u8; INPUT_CHUNK];
        loop {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            self.unary(
                "process.Process/SendInput",
                json!({"process": {"pid": pid}, "input": {field: B64.encode(&buf[..n])}}),
                "send input",
                &[],
                false,
            )
            .await?;
        }
        if pty {
            self.unary(
                "process.Process/SendInput",
                json!({"process": {"pid": pid}, "input": {"pty": B64.encode([4u8])}}),
                "send end of input",
                &[],
                false,
            )
            .await?;
        } else {
            self.unary(
                "process.Process/CloseStdin",
                json!({"process": {"pid": pid}}),
                "close the command's input",
                &[],
                true,
            )
            .await?;
        }
        Ok(())
    }

    /// An entry, or `None` when nothing is at `path`.
    pub async fn stat(&self, path: &str) -> Result<Option<EntryInfo>> {
        let (status, v) = self
            .unary(
                "filesystem.Filesystem/Stat",
                json!({"path": path}),
                &format!("look at {path}"),
                &[404],
                true,
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        entry(v.get("entry"), path).map(Some)
    }

    /// The entries directly in directory `path`.
    pub async fn list_dir(&self, path: &str) -> Result<Vec<EntryInfo>> {
        let (_, v) = self
            .unary(
                "filesystem.Filesystem/ListDir",
                json!({"path": path, "depth": 1}),
                &format!("list {path}"),
                &[],
                true,
            )
            .await?;
        let entries = v
            .get("entries")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(entries).map_err(|e| {
            Error::platform(
                ProviderKind::E2b,
                format!("unexpected listing of {path} from envd: {e}"),
            )
        })
    }

    /// Creates directory `path` and its parents; an existing one is fine.
    pub async fn make_dir(&self, path: &str) -> Result<()> {
        self.unary(
            "filesystem.Filesystem/MakeDir",
            json!({"path": path}),
            &format!("create directory {path}"),
            &[409],
            true,
        )
        .await?;
        Ok(())
    }

    /// Writes `data` to `path` (parents are created), as a multipart upload.
    pub async fn upload(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let boundary = format!("sindri-{:032x}", boundary_seed());
        let name = path
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .replace(['"', '\r', '\n'], "_");
        let mut body = Vec::with_capacity(data.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut req = self
            .request(self.http.post("/files"), None)
            .query("path", path)
            .body(body, &format!("multipart/form-data; boundary={boundary}"))
            // Writing the same bytes twice leaves the same file.
            .idempotent(true)
            .timeout(Duration::from_secs(600))
            .what(format!("upload {path}"));
        if let Some(u) = self.default_user {
            req = req.query("username", u);
        }
        self.http.send(req).await?;
        Ok(())
    }

    /// How often and how patiently requests are retried (for downloads, which are
    /// started again when their body is cut off).
    pub fn retry(&self) -> &crate::http::RetryPolicy {
        &self.http.options().retry
    }

    /// Streams file `path` into `out`; returns its size.
    pub async fn download(
        &self,
        path: &str,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64> {
        let mut req = self
            .request(self.http.get("/files"), None)
            .query("path", path)
            .timeout(Duration::from_secs(600))
            .what(format!("download {path}"));
        if let Some(u) = self.default_user {
            req = req.query("username", u);
        }
        self.http.send(req).await?.write_to(out).await
    }
}

fn entry(v: Option<&Value>, path: &str) -> Result<EntryInfo> {
    serde_json::from_value(v.cloned().unwrap_or(Value::Null)).map_err(|e| {
        Error::platform(
            ProviderKind::E2b,
            format!("unexpected description of {path} from envd: {e}"),
        )
    })
}

/// Reads `Start`'s event stream until its end, writing output; returns the end event.
async fn read_events(
    mut resp: crate::http::Response,
    stdout: &mut (dyn AsyncWrite + Send + Unpin),
    stderr: &mut (dyn AsyncWrite + Send + Unpin),
    pid_tx: tokio::sync::watch::Sender<Option<u32>>,
    what: &str,
) -> Result<End> {
    let mut reader = EnvelopeReader::default();
    let mut end: Option<End> = None;
    loop {
        while let Some((flags, msg)) = reader.next_envelope() {
            if flags & FLAG_COMPRESSED != 0 {
                return Err(Error::platform(
                    ProviderKind::E2b,
                    format!("{what}: envd sent a compressed message, which sindri did not ask for"),
                ));
            }
            if flags & FLAG_END_STREAM != 0 {
                if let Some(e) = connect::end_stream_error(&msg, what) {
                    return Err(e);
                }
                return end.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Transient,
                        format!("{what}: the stream ended before the command did"),
                    )
                    .with_provider(ProviderKind::E2b)
                });
            }
            let v: Value = serde_json::from_slice(&msg).map_err(|e| {
                Error::platform(
                    ProviderKind::E2b,
                    format!("{what}: unexpected message from envd: {e}"),
                )
            })?;
            let Some(event) = v.get("event") else {
                continue;
            };
            if let Some(s) = event.get("start") {
                let pid = s.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32;
                let _ = pid_tx.send(Some(pid));
            } else if let Some(d) = event.get("data") {
                for field in ["stdout", "pty", "stderr"] {
                    if let Some(b) = d.get(field).and_then(Value::as_str) {
                        let bytes = B64.decode(b).map_err(|e| {
                            Error::platform(
                                ProviderKind::E2b,
                                format!("{what}: envd sent output that is not base64: {e}"),
                            )
                        })?;
                        if field == "stderr" {
                            stderr.write_all(&bytes).await?;
                            stderr.flush().await?;
                        } else {
                            stdout.write_all(&bytes).await?;
                            stdout.flush().await?;
                        }
                    }
                }
            } else if let Some(e) = event.get("end") {
                let code = e
                    .get("exitCode")
                    .or_else(|| e.get("exit_code"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                end = Some(End {
                    exit_code: i32::try_from(code).unwrap_or(-1),
                    exited: e.get("exited").and_then(Value::as_bool).unwrap_or(false),
                    status: e
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    error: e.get("error").and_then(Value::as_str).map(str::to_string),
                });
            }
        }
        let chunk = resp.chunk().await.map_err(|e| {
            Error::new(
                ErrorKind::Transient,
                format!(
                    "{what}: the connection to envd dropped before the command ended ({}); \
                     it may have stopped there or still be running",
                    e.message()
                ),
            )
            .with_provider(ProviderKind::E2b)
            .with_hint(
                "check the sandbox with `sindri status`, then run the command again if repeating it is safe",
            )
        })?;
        match chunk {
            Some(c) => reader.push(&c),
            None => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("{what}: the connection to envd closed before the command ended"),
                )
                .with_provider(ProviderKind::E2b)
                .with_hint(
                    "the sandbox may have been paused, killed or timed out; check `sindri status`",
                ));
            }
        }
    }
}

async fn wait_pid(mut rx: tokio::sync::watch::Receiver<Option<u32>>) -> Result<u32> {
    loop {
        if let Some(pid) = *rx.borrow_and_update() {
            return Ok(pid);
        }
        if rx.changed().await.is_err() {
            return Err(Error::internal("the command ended before it started"));
        }
    }
}

/// The exit code of an end event: the code when the process exited, 128 + the signal
/// when one ended it.
fn exit_code(end: &End, what: &str) -> Result<i32> {
    if end.exited {
        return Ok(end.exit_code);
    }
    let signal = match end.status.trim_start_matches("signal: ") {
        "killed" => Some(9),
        "terminated" => Some(15),
        "interrupt" => Some(2),
        "hangup" => Some(1),
        _ => None,
    };
    match (signal, &end.error) {
        (Some(s), _) => Ok(128 + s),
        (None, Some(err)) => Err(Error::platform(ProviderKind::E2b, format!("{what}: {err}"))),
        (None, None) if end.exit_code != 0 => Ok(end.exit_code),
        (None, None) => Err(Error::platform(
            ProviderKind::E2b,
            format!(
                "{what}: the command ended without an exit code ({})",
                end.status
            ),
        )),
    }
}

/// `major.minor.patch` of an envd version; unknown parts are 0, an unknown version
/// counts as new.
fn version(v: &str) -> (u32, u32, u32) {
    let mut parts = v.trim_start_matches('v').split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    match (
        parts.next().flatten(),
        parts.next().flatten(),
        parts.next().flatten(),
    ) {
        (Some(a), b, c) => (a, b.unwrap_or(0), c.unwrap_or(0)),
        _ => (u32::MAX, 0, 0),
    }
}

fn boundary_seed() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u8(1);
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u8(2);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_and_old_envd_needs_a_user() {
        assert!(version("0.1.5") < DEFAULT_USER_SINCE);
        assert!(version("0.4.0") >= DEFAULT_USER_SINCE);
        assert!(version("v0.5.2") >= DEFAULT_USER_SINCE);
        assert!(version("") >= DEFAULT_USER_SINCE, "unknown means new");
    }

    #[test]
    fn exit_codes_from_end_events() {
        let ok = End {
            exit_code: 3,
            exited: true,
            status: "exit status 3".into(),
            error: None,
        };
        assert_eq!(exit_code(&ok, "x").unwrap(), 3);
        let killed = End {
            exit_code: -1,
            exited: false,
            status: "signal: killed".into(),
            error: None,
        };
        assert_eq!(exit_code(&killed, "x").unwrap(), 137);
        let failed = End {
            exit_code: 0,
            exited: false,
            status: String::new(),
            error: Some("exec failed".into()),
        };
        assert!(exit_code(&failed, "x").is_err());
    }

    #[test]
    fn entries_read_int64_sizes_as_strings_or_numbers() {
        let e: EntryInfo = serde_json::from_value(json!({"name": "a", "type": "FILE_TYPE_FILE", "path": "/a", "size": "70000", "mode": 420})).unwrap();
        assert!(e.is_file() && !e.is_dir());
        assert_eq!(e.size, 70000);
        let d: EntryInfo = serde_json::from_value(
            json!({"name": "d", "type": "FILE_TYPE_DIRECTORY", "path": "/d", "size": 4096}),
        )
        .unwrap();
        assert!(d.is_dir());
    }
}
