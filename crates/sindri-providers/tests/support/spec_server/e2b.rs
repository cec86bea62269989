//! A stateful fake of E2B: the control plane (sandboxes) behind `e2b/openapi.yml`,
//! and envd (processes, file system, `/files`) behind `e2b/envd.yaml`,
//! `process.proto` and `filesystem.proto`. Both are checked strictly: undeclared
//! body properties are violations.
//!
//! envd runs commands on this machine (see [`super::local`]); a PTY is emulated with
//! pipes (output as `pty` data, a lone Ctrl-D closes input), enough to prove the wire
//! protocol: Start with a PTY, input, resize through Update, the end event's exit
//! code.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::envd_contract::{EnvdContract, envelopes};
use super::openapi::OpenApi;
use super::server::{Contract, Exchange, Fake, Log, Reply, TestServer, percent_decode};

/// The API key the fake accepts.
pub const API_KEY: &str = "e2b_test_key_5a6b7c";

/// A sandbox.
#[derive(Debug, Clone)]
pub struct FakeSandbox {
    /// Id.
    pub id: String,
    /// Template.
    pub template: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// envVars from the create request.
    pub env: BTreeMap<String, String>,
    /// `running` or `paused`.
    pub state: String,
    /// envd's access token.
    pub token: String,
    /// Unix ms.
    pub started_ms: i64,
    /// Lifetime in seconds.
    pub timeout: u64,
    /// Log lines (Unix ms, text).
    pub logs: Vec<(i64, String)>,
}

type Stdin = Arc<tokio::sync::Mutex<Option<tokio::process::ChildStdin>>>;

/// Everything the fake knows.
#[derive(Default)]
pub struct E2bState {
    /// Known templates.
    pub templates: BTreeSet<String>,
    /// Sandboxes by id.
    pub sandboxes: BTreeMap<String, FakeSandbox>,
    /// Create bodies, in order.
    pub creates: Vec<Value>,
    /// When true, creates fail for lack of capacity.
    pub no_capacity: bool,
    /// The most sandboxes one list page holds (exercises pagination).
    pub page_size: usize,
    /// Terminal sizes received through Update: (pid, cols, rows).
    pub resizes: Vec<(u32, u32, u32)>,
    /// Users named in envd requests (`Authorization: Basic`), in order.
    pub users: Vec<String>,
    /// SendInput calls received.
    pub inputs: usize,
    /// The envd version sandboxes report (`envdVersion`).
    pub envd_version: String,
    /// `username` query parameters of `/files` requests, in order.
    pub file_users: Vec<String>,
    procs: HashMap<u32, Stdin>,
    next: u64,
}

/// The shared state, locked.
pub type Shared = Arc<Mutex<E2bState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, E2bState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake: the control plane and envd, on two ports.
pub struct E2b {
    /// The control plane (`E2B_API_URL`).
    pub api: TestServer,
    /// envd (`E2B_SANDBOX_URL`).
    pub envd: TestServer,
    /// The state.
    pub state: Shared,
}

impl E2b {
    /// Starts both servers.
    pub async fn start() -> E2b {
        let state: Shared = Arc::new(Mutex::new(E2bState {
            templates: ["base".to_string()].into_iter().collect(),
            page_size: 100,
            envd_version: "0.4.2".into(),
            ..E2bState::default()
        }));
        let dir = super::api_specs().join("e2b");
        // Answers keep to the declared statuses, but for one the live API gives and
        // the copy leaves out: 404 "template '<name>' not found" on create, as users
        // report it (e.g. {"code": 404, "message": "template 'python-latest' not
        // found"} in ngandimoun/dreamcutai E2B_TEMPLATE_FIX.md).
        let api_contract: Arc<dyn Contract> = Arc::new(
            OpenApi::load(&dir.join("openapi.yml"), "", super::strict)
                .declared_statuses_only(&[("POST /sandboxes", 404)]),
        );
        let envd_contract = Arc::new(EnvdContract::load(&dir));
        let api = TestServer::start(
            Some(api_contract),
            Arc::new(ApiFake {
                state: state.clone(),
            }),
        )
        .await;
        let envd = TestServer::start(
            Some(envd_contract.clone() as Arc<dyn Contract>),
            Arc::new(EnvdFake {
                state: state.clone(),
                contract: envd_contract,
            }),
        )
        .await;
        E2b { api, envd, state }
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, E2bState> {
        lock(&self.state)
    }

    /// Fails the test when either server saw a violation.
    pub fn assert_clean(&self) {
        self.api.assert_clean();
        self.envd.assert_clean();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

fn e(status: u16, msg: &str) -> Reply {
    Reply::Json(status, json!({"code": status, "message": msg}))
}

fn detail(s: &FakeSandbox, listed: bool, envd_version: &str) -> Value {
    let mut j = json!({
        "templateID": s.template,
        "sandboxID": s.id,
        "clientID": "fake-client",
        "startedAt": rfc3339(s.started_ms),
        "endAt": rfc3339(s.started_ms + s.timeout as i64 * 1000),
        "cpuCount": 2,
        "memoryMB": 512,
        "diskSizeMB": 1024,
        "metadata": s.metadata,
        "state": s.state,
        "envdVersion": envd_version,
    });
    if !listed {
        j["envdAccessToken"] = json!(s.token);
        j["domain"] = Value::Null;
    }
    j
}

fn created(s: &FakeSandbox, envd_version: &str) -> Value {
    json!({
        "templateID": s.template,
        "sandboxID": s.id,
        "clientID": "fake-client",
        "envdVersion": envd_version,
        "envdAccessToken": s.token,
        "domain": Value::Null,
    })
}

struct ApiFake {
    state: Shared,
}

impl Fake for ApiFake {
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        _log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(async move {
            if ex.h("x-api-key") != Some(API_KEY) {
                return e(
                    401,
                    &format!("Invalid API key: {}", ex.h("x-api-key").unwrap_or("")),
                );
            }
            let mut st = lock(&self.state);
            api(&mut st, &ex)
        })
    }
}

fn api(st: &mut E2bState, ex: &Exchange) -> Reply {
    let id = ex.p("sandboxID").to_string();
    match ex.op.as_str() {
        "POST /sandboxes" => {
            let b = ex.json();
            st.creates.push(b.clone());
            let template = b["templateID"].as_str().unwrap_or("").to_string();
            if !st.templates.contains(&template) {
                return e(404, &format!("template '{template}' not found"));
            }
            if st.no_capacity {
                return Reply::Json(
                    503,
                    json!({"code": 503, "message": "no node has capacity for the sandbox", "error_code": "sandbox_capacity_unavailable"}),
                );
            }
            st.next += 1;
            let sid = format!("i{:019x}", st.next * 104_729);
            let token = format!("envd-token-{:x}", st.next * 7_777_777);
            let now = now_ms();
            let s = FakeSandbox {
                id: sid.clone(),
                template,
                metadata: serde_json::from_value(b["metadata"].clone()).unwrap_or_default(),
                env: serde_json::from_value(b["envVars"].clone()).unwrap_or_default(),
                state: "running".into(),
                token,
                started_ms: now,
                timeout: b["timeout"].as_u64().unwrap_or(15),
                logs: vec![(now, "sandbox created".into())],
            };
            let j = created(&s, &st.envd_version);
            st.sandboxes.insert(sid, s);
            Reply::Json(201, j)
        }
        "GET /v2/sandboxes" => {
            let filter: Vec<(String, String)> = ex
                .q("metadata")
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k, false), percent_decode(v, false))
                })
                .collect();
            let states: Vec<&str> = ex
                .q("state")
                .map(|s| s.split(',').collect())
                .unwrap_or_else(|| vec!["running"]);
            let matching: Vec<&FakeSandbox> = st
                .sandboxes
                .values()
                .filter(|s| states.contains(&s.state.as_str()))
                .filter(|s| filter.iter().all(|(k, v)| s.metadata.get(k) == Some(v)))
                .collect();
            let start: usize = ex.q("nextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
            let limit = ex
                .q("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100usize)
                .min(st.page_size);
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(limit)
                .map(|s| detail(s, true, &st.envd_version))
                .collect();
            let mut headers = Vec::new();
            if start + limit < matching.len() {
                headers.push(("X-Next-Token".to_string(), (start + limit).to_string()));
            }
            Reply::json_with(200, Value::Array(page), headers)
        }
        "GET /sandboxes/{sandboxID}" => match st.sandboxes.get(&id) {
            Some(s) => Reply::Json(200, detail(s, false, &st.envd_version)),
            None => e(404, &format!("sandbox \"{id}\" not found")),
        },
        "DELETE /sandboxes/{sandboxID}" => match st.sandboxes.remove(&id) {
            Some(_) => Reply::Empty(204),
            None => e(404, &format!("sandbox \"{id}\" not found")),
        },
        "POST /sandboxes/{sandboxID}/pause" => match st.sandboxes.get_mut(&id) {
            None => e(404, &format!("sandbox \"{id}\" not found")),
            Some(s) if s.state == "paused" => e(409, "sandbox is already paused"),
            Some(s) => {
                s.state = "paused".into();
                s.logs.push((now_ms(), "sandbox paused".into()));
                Reply::Empty(204)
            }
        },
        "POST /sandboxes/{sandboxID}/connect" => {
            let version = st.envd_version.clone();
            match st.sandboxes.get_mut(&id) {
                None => e(404, &format!("sandbox \"{id}\" not found")),
                Some(s) => {
                    let resumed = s.state == "paused";
                    s.state = "running".into();
                    s.timeout = ex.json()["timeout"].as_u64().unwrap_or(s.timeout);
                    if resumed {
                        s.logs.push((now_ms(), "sandbox resumed".into()));
                    }
                    Reply::Json(if resumed { 201 } else { 200 }, created(s, &version))
                }
            }
        }
        "GET /v2/sandboxes/{sandboxID}/logs" => match st.sandboxes.get(&id) {
            None => e(404, &format!("sandbox \"{id}\" not found")),
            Some(s) => {
                let limit = ex
                    .q("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1000usize);
                let cursor: Option<i64> = ex.q("cursor").and_then(|c| c.parse().ok());
                let mut logs: Vec<&(i64, String)> = s.logs.iter().collect();
                if ex.q("direction") == Some("backward") {
                    logs.reverse();
                    if let Some(c) = cursor {
                        logs.retain(|(t, _)| *t <= c);
                    }
                } else if let Some(c) = cursor {
                    logs.retain(|(t, _)| *t >= c);
                }
                let entries: Vec<Value> = logs
                    .into_iter()
                    .take(limit)
                    .map(|(t, m)| json!({"timestamp": rfc3339(*t), "message": m, "level": "info", "fields": {}}))
                    .collect();
                Reply::Json(200, json!({"logs": entries}))
            }
        },
        other => e(501, &format!("the fake does not implement {other}")),
    }
}

struct EnvdFake {
    state: Shared,
    contract: Arc<EnvdContract>,
}

fn rpc_err(status: u16, code: &str, msg: &str) -> Reply {
    Reply::Json(status, json!({"code": code, "message": msg}))
}

impl Fake for EnvdFake {
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(async move {
            let rpc = ex.op.starts_with('/');
            let sid = ex.h("e2b-sandbox-id").unwrap_or("").to_string();
            let sandbox = lock(&self.state).sandboxes.get(&sid).cloned();
            let Some(sandbox) = sandbox.filter(|s| s.state == "running") else {
                let msg = format!("sandbox {sid:?} is not running (or does not exist)");
                return if rpc {
                    rpc_err(502, "unavailable", &msg)
                } else {
                    e(502, &msg)
                };
            };
            if ex.h("e2b-sandbox-port") != Some("49983") {
                log.violation(format!(
                    "{}: the E2b-Sandbox-Port header is not 49983",
                    ex.op
                ));
            }
            if ex.h("x-access-token") != Some(sandbox.token.as_str()) {
                let msg = "invalid access token";
                return if rpc {
                    rpc_err(401, "unauthenticated", msg)
                } else {
                    e(401, msg)
                };
            }
            if let Some(basic) = ex.h("authorization").and_then(|a| a.strip_prefix("Basic ")) {
                let user = B64
                    .decode(basic)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                lock(&self.state)
                    .users
                    .push(user.trim_end_matches(':').to_string());
            }
            if let Some(u) = ex.q("username") {
                lock(&self.state).file_users.push(u.to_string());
            }
            match ex.op.as_str() {
                "/process.Process/Start" => self.start(&ex, &sandbox, log).await,
                "/process.Process/SendInput" => self.send_input(&ex).await,
                "/process.Process/CloseStdin" => {
                    let pid = ex.json()["process"]["pid"].as_u64().unwrap_or(0) as u32;
                    let handle = lock(&self.state).procs.get(&pid).cloned();
                    match handle {
                        Some(h) => {
                            h.lock().await.take();
                            Reply::Json(200, json!({}))
                        }
                        None => rpc_err(
                            404,
                            "not_found",
                            &format!("process with pid {pid} not found"),
                        ),
                    }
                }
                "/process.Process/Update" => {
                    let b = ex.json();
                    let pid = b["process"]["pid"].as_u64().unwrap_or(0) as u32;
                    let mut st = lock(&self.state);
                    if !st.procs.contains_key(&pid) {
                        return rpc_err(
                            404,
                            "not_found",
                            &format!("process with pid {pid} not found"),
                        );
                    }
                    let size = &b["pty"]["size"];
                    st.resizes.push((
                        pid,
                        size["cols"].as_u64().unwrap_or(0) as u32,
                        size["rows"].as_u64().unwrap_or(0) as u32,
                    ));
                    Reply::Json(200, json!({}))
                }
                "/filesystem.Filesystem/Stat" => {
                    let path = ex.json()["path"].as_str().unwrap_or("").to_string();
                    match std::fs::symlink_metadata(&path) {
                        Ok(m) => Reply::Json(200, json!({"entry": entry(&path, &m)})),
                        Err(_) => rpc_err(404, "not_found", &format!("path {path} does not exist")),
                    }
                }
                "/filesystem.Filesystem/ListDir" => {
                    let path = ex.json()["path"].as_str().unwrap_or("").to_string();
                    match std::fs::read_dir(&path) {
                        Ok(rd) => {
                            let entries: Vec<Value> = rd
                                .filter_map(|d| d.ok())
                                .filter_map(|d| {
                                    let p = d.path().to_string_lossy().into_owned();
                                    std::fs::symlink_metadata(&p).ok().map(|m| entry(&p, &m))
                                })
                                .collect();
                            Reply::Json(200, json!({"entries": entries}))
                        }
                        Err(_) => rpc_err(
                            404,
                            "not_found",
                            &format!("directory {path} does not exist"),
                        ),
                    }
                }
                "/filesystem.Filesystem/MakeDir" => {
                    let path = ex.json()["path"].as_str().unwrap_or("").to_string();
                    if std::path::Path::new(&path).exists() {
                        return rpc_err(409, "already_exists", &format!("{path} already exists"));
                    }
                    match std::fs::create_dir_all(&path)
                        .and_then(|_| std::fs::symlink_metadata(&path))
                    {
                        Ok(m) => Reply::Json(200, json!({"entry": entry(&path, &m)})),
                        Err(err) => rpc_err(500, "internal", &err.to_string()),
                    }
                }
                "GET /files" => {
                    let path = ex.q("path").unwrap_or("").to_string();
                    match std::fs::metadata(&path) {
                        Ok(m) if m.is_dir() => e(400, &format!("path '{path}' is a directory")),
                        Ok(_) => match std::fs::read(&path) {
                            Ok(data) => Reply::Bytes(
                                200,
                                "application/octet-stream".into(),
                                data,
                                Vec::new(),
                            ),
                            Err(err) => e(500, &err.to_string()),
                        },
                        Err(_) => e(404, &format!("path '{path}' does not exist")),
                    }
                }
                "POST /files" => {
                    let path = ex.q("path").unwrap_or("").to_string();
                    let ct = ex.h("content-type").unwrap_or("").to_string();
                    let boundary = ct
                        .split("boundary=")
                        .nth(1)
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string();
                    let parts = match super::multipart::parse(&ex.body, &boundary) {
                        Ok(p) => p,
                        Err(err) => return e(400, &err),
                    };
                    let Some(file) = parts.into_iter().find(|p| p.name == "file") else {
                        return e(400, "no file part");
                    };
                    if path.is_empty() {
                        return e(400, "this fake needs the path parameter");
                    }
                    let p = std::path::Path::new(&path);
                    if let Some(parent) = p.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    match std::fs::write(p, &file.data) {
                        Ok(()) => Reply::Json(
                            200,
                            json!([{"path": path, "name": p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), "type": "file"}]),
                        ),
                        Err(err) => e(500, &err.to_string()),
                    }
                }
                other => {
                    log.violation(format!(
                        "sindri called {other}, which this fake of envd does not implement"
                    ));
                    rpc_err(
                        501,
                        "unimplemented",
                        &format!("{other} is not implemented by the fake"),
                    )
                }
            }
        })
    }
}

fn entry(path: &str, m: &std::fs::Metadata) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let kind = if m.is_dir() {
        "FILE_TYPE_DIRECTORY"
    } else if m.file_type().is_symlink() {
        "FILE_TYPE_SYMLINK"
    } else {
        "FILE_TYPE_FILE"
    };
    json!({
        "name": std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "type": kind,
        "path": path,
        "size": m.len().to_string(),
        "mode": m.permissions().mode() & 0o7777,
        "permissions": format!("{:o}", m.permissions().mode() & 0o777),
        "owner": "user",
        "group": "user",
        "modifiedTime": rfc3339(now_ms()),
    })
}

impl EnvdFake {
    async fn send_input(&self, ex: &Exchange) -> Reply {
        let b = ex.json();
        let pid = b["process"]["pid"].as_u64().unwrap_or(0) as u32;
        let handle = {
            let mut st = lock(&self.state);
            st.inputs += 1;
            st.procs.get(&pid).cloned()
        };
        let Some(handle) = handle else {
            return rpc_err(
                404,
                "not_found",
                &format!("process with pid {pid} not found"),
            );
        };
        let (data, pty) = match (b["input"]["stdin"].as_str(), b["input"]["pty"].as_str()) {
            (Some(d), _) => (d, false),
            (None, Some(d)) => (d, true),
            _ => return rpc_err(400, "invalid_argument", "no input"),
        };
        let Ok(bytes) = B64.decode(data) else {
            return rpc_err(400, "invalid_argument", "input is not base64");
        };
        let mut guard = handle.lock().await;
        if pty && bytes == [4u8] {
            // A terminal's line discipline turns Ctrl-D at a line start into end of input.
            guard.take();
            return Reply::Json(200, json!({}));
        }
        match guard.as_mut() {
            Some(w) => match w.write_all(&bytes).await {
                Ok(()) => Reply::Json(200, json!({})),
                Err(err) => rpc_err(
                    400,
                    "failed_precondition",
                    &format!("stdin is closed: {err}"),
                ),
            },
            None => rpc_err(400, "failed_precondition", "stdin is closed"),
        }
    }

    async fn start(&self, ex: &Exchange, sandbox: &FakeSandbox, log: Log) -> Reply {
        let msg = match envelopes(&ex.body).ok().and_then(|e| e.into_iter().next()) {
            Some((_, m)) => serde_json::from_slice::<Value>(&m).unwrap_or(Value::Null),
            None => return rpc_err(400, "invalid_argument", "no request message"),
        };
        let p = &msg["process"];
        let cmd = p["cmd"].as_str().unwrap_or("").to_string();
        let args: Vec<String> = p["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let pty = !msg["pty"].is_null();
        let stdin = msg["stdin"].as_bool().unwrap_or(true);
        let mut c = tokio::process::Command::new(&cmd);
        c.args(&args)
            .envs(&sandbox.env)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(envs) = p["envs"].as_object() {
            for (k, v) in envs {
                c.env(k, v.as_str().unwrap_or(""));
            }
        }
        if let Some(cwd) = p["cwd"].as_str() {
            c.current_dir(cwd);
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
        let contract = self.contract.clone();
        let send = move |tx: tokio::sync::mpsc::Sender<Vec<u8>>,
                         v: Value,
                         log: Log,
                         contract: Arc<EnvdContract>| async move {
            for problem in contract.protos.errors("process.StartResponse", &v) {
                log.violation(format!(
                    "the fake streamed an invalid StartResponse: {problem}"
                ));
            }
            let body = serde_json::to_vec(&v).unwrap_or_default();
            let _ = tx.send(envelope(0, &body)).await;
        };
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(err) => {
                let _ = tx
                    .send(envelope(2, &serde_json::to_vec(&json!({"error": {"code": "invalid_argument", "message": format!("failed to start {cmd}: {err}")}})).unwrap_or_default()))
                    .await;
                return Reply::Stream(200, "application/connect+json".into(), rx);
            }
        };
        let pid = child.id().unwrap_or(0);
        let handle: Stdin = Arc::new(tokio::sync::Mutex::new(child.stdin.take()));
        {
            let mut st = lock(&self.state);
            st.procs.insert(pid, handle);
            if let Some(s) = st.sandboxes.get_mut(&sandbox.id) {
                s.logs.push((now_ms(), format!("started process {cmd}")));
            }
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            send(
                tx.clone(),
                json!({"event": {"start": {"pid": pid}}}),
                log.clone(),
                contract.clone(),
            )
            .await;
            let pump = |mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        field: &'static str| {
                let (tx, log, contract) = (tx.clone(), log.clone(), contract.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let v = json!({"event": {"data": {field: B64.encode(&buf[..n])}}});
                                send(tx.clone(), v, log.clone(), contract.clone()).await;
                            }
                        }
                    }
                })
            };
            let out = child
                .stdout
                .take()
                .map(|o| pump(Box::new(o), if pty { "pty" } else { "stdout" }));
            let err = child
                .stderr
                .take()
                .map(|o| pump(Box::new(o), if pty { "pty" } else { "stderr" }));
            if let Some(t) = out {
                let _ = t.await;
            }
            if let Some(t) = err {
                let _ = t.await;
            }
            let status = child.wait().await;
            lock(&state).procs.remove(&pid);
            let code = status.map(super::local::exit_code).unwrap_or(-1);
            let mut end = json!({"exited": true, "status": format!("exit status {code}")});
            // proto3 JSON leaves out zero values.
            if code != 0 {
                end["exitCode"] = json!(code);
            }
            send(
                tx.clone(),
                json!({"event": {"end": end}}),
                log.clone(),
                contract.clone(),
            )
            .await;
            let _ = tx.send(envelope(2, b"{}")).await;
        });
        Reply::Stream(200, "application/connect+json".into(), rx)
    }
}

fn envelope(flags: u8, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}
