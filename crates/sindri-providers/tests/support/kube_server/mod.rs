//! A small in-process Kubernetes API server for the provider's tests.
//!
//! It implements exactly the endpoints the provider uses, answering in the real API's
//! shapes (objects with `metadata.uid`/`resourceVersion`, lists, `Status` errors):
//! - server-side apply (`PATCH` with `application/apply-patch+yaml`, `fieldManager`,
//!   `force`, `dryRun=All`), with a conflict when another manager owns the object;
//! - `GET` of objects and lists with `labelSelector`/`fieldSelector`, `DELETE`;
//! - the `scale` subresource (merge patch), `/version`;
//! - resource quantities stored and returned in canonical form (`quantity.rs`), as a
//!   real server rewrites them;
//! - watch of pods (`?watch=true`, one JSON event per line);
//! - pod logs (with `follow`, `tailLines`, `previous`);
//! - exec over a websocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`): stdin,
//!   stdout, stderr, the error channel with a `Status` and exit code, and resize;
//!   commands run for real, with busybox in a chroot per pod (see `exec.rs`).
//!
//! A simulated StatefulSet controller and kubelet (`controller.rs`) create the pod and
//! its volume claims and move the pod through its phases; images and node settings
//! select failure modes. Faults (403, 409, 422, 500, a hang) are injected per path.
//!
//! Not real: no admission, no RBAC beyond injected faults, no field ownership beyond
//! one manager per object, no real containers (a chroot), no networking.
#![allow(dead_code)]

mod controller;
mod exec;
pub mod fixture;
pub mod quantity;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

pub use controller::Node;

/// A body of any kind, for every response.
pub type Body = BoxBody<Bytes, Infallible>;

/// A request the server answered with a failure on purpose.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests with this method (`GET`, `PATCH`, ...), or any.
    pub method: Option<&'static str>,
    /// Only requests whose path contains this.
    pub path_contains: String,
    /// Only requests whose query contains this (e.g. `watch=true`), or any.
    pub query_contains: Option<String>,
    /// The HTTP status; 0 means: never answer (a hung server).
    pub code: u16,
    /// The `Status` reason.
    pub reason: String,
    /// The `Status` message.
    pub message: String,
    /// `details.causes` as (field, message).
    pub causes: Vec<(String, String)>,
    /// How many requests it hits; `None`: all.
    pub times: Option<usize>,
    /// A plain-text body instead of a `Status` (what a web server or proxy sends).
    pub plain: Option<String>,
}

impl Fault {
    /// A failure `code` with `reason` and `message` for requests matching `method` and
    /// `path_contains`.
    pub fn new(
        method: &'static str,
        path_contains: &str,
        code: u16,
        reason: &str,
        message: &str,
    ) -> Fault {
        Fault {
            method: Some(method),
            path_contains: path_contains.to_string(),
            query_contains: None,
            code,
            reason: reason.to_string(),
            message: message.to_string(),
            causes: Vec::new(),
            times: None,
            plain: None,
        }
    }

    /// An answer `code` with a plain-text `body` for every request whose path contains
    /// `path_contains`, whatever its method: a server that is not a Kubernetes API.
    pub fn plain(path_contains: &str, code: u16, body: &str) -> Fault {
        Fault {
            method: None,
            plain: Some(body.to_string()),
            ..Fault::new("GET", path_contains, code, "", "")
        }
    }

    /// A request that is never answered.
    pub fn hang(method: &'static str, path_contains: &str) -> Fault {
        Fault::new(method, path_contains, 0, "", "")
    }

    /// Adds a `details.causes` entry.
    pub fn cause(mut self, field: &str, message: &str) -> Fault {
        self.causes.push((field.to_string(), message.to_string()));
        self
    }

    /// Only for requests whose query contains `q`.
    pub fn query(mut self, q: &str) -> Fault {
        self.query_contains = Some(q.to_string());
        self
    }

    /// Only for the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }
}

/// A request body the server received for a write.
#[derive(Debug, Clone)]
pub struct Received {
    /// `PATCH`, `DELETE`...
    pub method: String,
    /// The request path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The parsed body (`Null` when none).
    pub body: Value,
}

impl Received {
    /// True for a server-side apply that changed the store (not a dry run).
    pub fn is_apply(&self) -> bool {
        self.content_type == "application/apply-patch+yaml" && !self.query.contains("dryRun=All")
    }
}

/// Key of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub plural: String,
    pub ns: String,
    pub name: String,
}

impl Key {
    pub(crate) fn new(plural: &str, ns: &str, name: &str) -> Key {
        Key {
            plural: plural.to_string(),
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }
}

/// The server's state, shared by the handlers, the controller and the tests.
pub(crate) struct Inner {
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    pub uid: u64,
    pub received: Vec<Received>,
    pub requests: Vec<String>,
    pub faults: Vec<Fault>,
    pub logs: BTreeMap<String, Vec<String>>,
    pub nodes: Vec<Node>,
    pub resizes: Vec<(u16, u16)>,
    pub exec_protocols: Vec<String>,
    /// The exec subprotocols the server speaks, preferred first.
    pub exec_offered: Vec<String>,
}

pub(crate) struct State {
    pub inner: Mutex<Inner>,
    /// Every change of a pod: (resourceVersion, type, object).
    pub pod_events: broadcast::Sender<(u64, String, Value)>,
    /// Wakes log followers.
    pub log_events: broadcast::Sender<String>,
    /// Per-pod root file systems live here.
    pub root: PathBuf,
}

impl State {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a resource is: (group, version, kind).
pub(crate) fn resource_info(plural: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match plural {
        "statefulsets" => ("apps", "v1", "StatefulSet"),
        "deployments" => ("apps", "v1", "Deployment"),
        "services" => ("", "v1", "Service"),
        "secrets" => ("", "v1", "Secret"),
        "configmaps" => ("", "v1", "ConfigMap"),
        "persistentvolumeclaims" => ("", "v1", "PersistentVolumeClaim"),
        "pods" => ("", "v1", "Pod"),
        "events" => ("", "v1", "Event"),
        _ => return None,
    })
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The running server. Dropping it stops accepting connections.
pub struct KubeServer {
    pub addr: SocketAddr,
    pub(crate) state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Panics with what to do when exec cannot work here: it runs real commands with the
/// static busybox in a chroot, which needs Debian's busybox-static and root.
fn require_busybox_and_chroot() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let listed = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            listed,
            "the test Kubernetes API server runs exec with /bin/busybox: install Debian's \
             busybox-static (`apt-get install busybox-static`; .ci/setup does)"
        );
        let probe = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(probe.path().join("bin")).expect("mkdir");
        std::fs::copy("/bin/busybox", probe.path().join("bin/busybox")).expect("copy busybox");
        let out = std::process::Command::new("chroot")
            .arg(probe.path())
            .args(["/bin/busybox", "true"])
            .output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "the test Kubernetes API server runs exec in a chroot, which needs root (CAP_SYS_CHROOT) \
             and coreutils' chroot: {out:?}"
        );
    });
}

impl KubeServer {
    /// Starts a server on a free loopback port with one node (no GPUs).
    pub async fn start() -> KubeServer {
        require_busybox_and_chroot();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let root = tempfile::tempdir().expect("temp dir for pod roots");
        let (pod_events, _) = broadcast::channel(1024);
        let (log_events, _) = broadcast::channel(1024);
        let state = Arc::new(State {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1000,
                uid: 0,
                received: Vec::new(),
                requests: Vec::new(),
                faults: Vec::new(),
                logs: BTreeMap::new(),
                nodes: vec![Node::new("node-1")],
                resizes: Vec::new(),
                exec_protocols: Vec::new(),
                exec_offered: vec!["v5.channel.k8s.io".into(), "v4.channel.k8s.io".into()],
            }),
            pod_events,
            log_events,
            root: root.path().to_path_buf(),
        });
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        KubeServer {
            addr,
            state,
            accept,
            _root: root,
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at this server (context `test`, with `namespace`
    /// when given) into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path, namespace: Option<&str>) -> PathBuf {
        write_kubeconfig(dir, &self.url(), namespace)
    }

    /// Injects a fault.
    pub fn fault(&self, f: Fault) {
        self.state.lock().faults.push(f);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Every write request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().received.clone()
    }

    /// Every request as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().requests.clone()
    }

    /// A stored object.
    pub fn object(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .objects
            .get(&Key::new(plural, ns, name))
            .cloned()
    }

    /// Stored objects of a resource in a namespace.
    pub fn objects(&self, plural: &str, ns: &str) -> Vec<Value> {
        self.state
            .lock()
            .objects
            .iter()
            .filter(|(k, _)| k.plural == plural && k.ns == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores an object as another client (field manager `kubectl-create`) would.
    pub fn insert(&self, plural: &str, ns: &str, mut obj: Value) {
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("object name")
            .to_string();
        let mut g = self.state.lock();
        let (group, version, kind) = resource_info(plural).expect("known resource");
        g.rv += 1;
        g.uid += 1;
        obj["apiVersion"] = json!(api_version(group, version));
        obj["kind"] = json!(kind);
        quantity::canonicalize(kind, &mut obj).expect("valid quantities");
        obj["metadata"]["namespace"] = json!(ns);
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", g.uid));
        obj["metadata"]["resourceVersion"] = json!(g.rv.to_string());
        obj["metadata"]["creationTimestamp"] = json!(now());
        obj["metadata"]["managedFields"] = json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": api_version(group, version), "fieldsType": "FieldsV1", "fieldsV1": {}}]);
        g.objects.insert(Key::new(plural, ns, &name), obj);
    }

    /// Appends a line to a pod's container log (as if the container printed it).
    pub fn append_log(&self, pod: &str, line: &str) {
        self.state
            .lock()
            .logs
            .entry(pod.to_string())
            .or_default()
            .push(line.to_string());
        let _ = self.state.log_events.send(pod.to_string());
    }

    /// Replaces the cluster's nodes.
    pub fn set_nodes(&self, nodes: Vec<Node>) {
        self.state.lock().nodes = nodes;
    }

    /// Terminal sizes received on exec's resize channel.
    pub fn resizes(&self) -> Vec<(u16, u16)> {
        self.state.lock().resizes.clone()
    }

    /// Makes exec speak only these subprotocols (an API server before 1.30 knows
    /// `v4.channel.k8s.io` but not v5).
    pub fn exec_subprotocols(&self, protocols: &[&str]) {
        self.state.lock().exec_offered = protocols.iter().map(|p| p.to_string()).collect();
    }

    /// The websocket subprotocol chosen for each exec.
    pub fn exec_protocols(&self) -> Vec<String> {
        self.state.lock().exec_protocols.clone()
    }

    /// The root file system of a pod (its files as the pod sees them under `/`).
    pub fn pod_root(&self, ns: &str, pod: &str) -> PathBuf {
        exec::pod_root(&self.state, ns, pod)
    }
}

/// Writes a kubeconfig for `server` with context `test`.
pub fn write_kubeconfig(dir: &Path, server: &str, namespace: Option<&str>) -> PathBuf {
    let ns = namespace
        .map(|n| format!("\n    namespace: {n}"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: {server}\n\
contexts:\n- name: test\n  context:\n    cluster: test\n    user: test{ns}\n- name: other\n  context:\n    cluster: test\n    user: test\n\
users:\n- name: test\n  user:\n    token: test-token\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

pub(crate) fn now() -> String {
    // Whole seconds, as the API writes them; the date part does not matter to sindri.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub(crate) fn full(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("response")
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    full(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// A `Status` failure as the API sends it.
pub(crate) fn status_error(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

fn not_found(plural: &str, group: &str, name: &str) -> Response<Body> {
    let res = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    status_error(
        404,
        "NotFound",
        &format!("{res} \"{name}\" not found"),
        Some(json!({"name": name, "group": group, "kind": plural})),
    )
}

/// Query parameters; repeated keys (exec's `command`) keep every value.
pub(crate) fn query_params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// True when `labels` match an equality-based selector `k=v,k2=v2` (or `k`).
pub(crate) fn matches_selector(labels: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => {
                labels.get(k).and_then(Value::as_str) == Some(v.trim_start_matches('='))
            }
            None => labels.get(term).is_some(),
        })
}

fn matches_fields(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((path, want)) = term.split_once('=') else {
            return true;
        };
        let pointer = format!("/{}", path.replace('.', "/"));
        obj.pointer(&pointer).and_then(Value::as_str) == Some(want)
    })
}

/// The route of a request: `/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]` or
/// `/apis/GROUP/VERSION/namespaces/NS/...`.
struct Route {
    group: String,
    plural: String,
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] => Some(Route {
            group: group.to_string(),
            plural: plural.to_string(),
            ns: ns.to_string(),
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        }),
        // A list across all namespaces.
        [plural] => Some(Route {
            group: group.to_string(),
            plural: plural.to_string(),
            ns: String::new(),
            name: None,
            sub: None,
        }),
        _ => None,
    }
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    st.lock().requests.push(format!("{method} {path}?{query}"));

    // Faults first, as a failing API server (or RBAC) answers before anything else.
    let fault = {
        let mut g = st.lock();
        let idx = g.faults.iter().position(|f| {
            f.method.is_none_or(|m| m == method.as_str())
                && path.contains(&f.path_contains)
                && f.query_contains
                    .as_ref()
                    .is_none_or(|q| query.contains(q.as_str()))
        });
        idx.map(|i| {
            let f = g.faults[i].clone();
            if let Some(n) = g.faults[i].times.as_mut() {
                *n -= 1;
                if *n == 0 {
                    g.faults.remove(i);
                }
            }
            f
        })
    };
    if let Some(f) = fault {
        if f.code == 0 {
            std::future::pending::<()>().await;
        }
        if let Some(body) = f.plain {
            return full(
                StatusCode::from_u16(f.code).unwrap_or(StatusCode::NOT_FOUND),
                "text/plain; charset=utf-8",
                body,
            );
        }
        let details = (!f.causes.is_empty()).then(|| {
            json!({"causes": f.causes.iter().map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field})).collect::<Vec<_>>()})
        });
        return status_error(f.code, &f.reason, &f.message, details);
    }

    if path == "/version" {
        return json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0+sindri-test", "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        );
    }
    let Some(r) = route(&path) else {
        return status_error(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
            None,
        );
    };
    let params = query_params(&query);
    if r.plural == "pods" && r.sub.as_deref() == Some("exec") {
        return exec::upgrade(st, req, &r.ns, r.name.as_deref().unwrap_or(""), &params).await;
    }
    if r.plural == "pods" && r.sub.as_deref() == Some("log") {
        return logs(st, &r.ns, r.name.as_deref().unwrap_or(""), &params).await;
    }
    let Some((group, version, kind)) = resource_info(&r.plural) else {
        // A real server answers so for an API group or version it does not serve.
        return full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        );
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if method != Method::GET {
        let body: Value = if body_bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body_bytes)
                .or_else(|_| serde_yaml::from_slice(&body_bytes))
                .unwrap_or(Value::Null)
        };
        st.lock().received.push(Received {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body,
        });
    }
    let av = api_version(group, version);
    if r.ns.is_empty() && (method != Method::GET || param(&params, "watch").is_some()) {
        return status_error(
            405,
            "MethodNotAllowed",
            &format!("{method} across all namespaces is not supported by the test server"),
            None,
        );
    }
    match (&method, r.name.as_deref(), r.sub.as_deref()) {
        (&Method::GET, None, _)
            if param(&params, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            watch(st, &r.ns, &params)
        }
        (&Method::GET, None, _) => {
            let label = param(&params, "labelSelector").unwrap_or("");
            let field = param(&params, "fieldSelector").unwrap_or("");
            let g = st.lock();
            let items: Vec<Value> = g
                .objects
                .iter()
                .filter(|(k, v)| {
                    k.plural == r.plural
                        && (k.ns == r.ns || r.ns.is_empty())
                        && matches_selector(&v["metadata"]["labels"], label)
                        && matches_fields(v, field)
                })
                .map(|(_, v)| {
                    // List items come without apiVersion and kind, as the API sends them.
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    v
                })
                .collect();
            let limit = param(&params, "limit").and_then(|l| l.parse::<usize>().ok());
            let items: Vec<Value> = match limit {
                Some(n) => items.into_iter().take(n).collect(),
                None => items,
            };
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": av, "kind": format!("{kind}List"), "metadata": {"resourceVersion": g.rv.to_string()}, "items": items}),
            )
        }
        (&Method::GET, Some(name), None) => {
            match st.lock().objects.get(&Key::new(&r.plural, &r.ns, name)) {
                Some(v) => json_response(StatusCode::OK, v),
                None => not_found(&r.plural, group, name),
            }
        }
        (&Method::PATCH, Some(name), None) if content_type == "application/apply-patch+yaml" => {
            apply(st, &r.plural, &r.ns, name, &params, &body_bytes)
        }
        (&Method::PATCH, Some(name), Some("scale")) => {
            scale(st, &r.plural, &r.ns, name, &body_bytes)
        }
        (&Method::DELETE, Some(name), None) => {
            let removed = st.lock().objects.remove(&Key::new(&r.plural, &r.ns, name));
            match removed {
                None => not_found(&r.plural, group, name),
                Some(obj) => {
                    controller::deleted(&st, &r.plural, &r.ns, name, &obj);
                    json_response(
                        StatusCode::OK,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "group": group, "kind": r.plural, "uid": obj["metadata"]["uid"]}}),
                    )
                }
            }
        }
        _ => status_error(
            405,
            "MethodNotAllowed",
            &format!("{method} is not supported on {path} by the test server"),
            None,
        ),
    }
}

/// Fields the server keeps, which an apply does not replace.
const SERVER_METADATA: [&str; 6] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "namespace",
];

fn apply(
    st: Arc<State>,
    plural: &str,
    ns: &str,
    name: &str,
    params: &[(String, String)],
    body: &[u8],
) -> Response<Body> {
    let (group, version, kind) = resource_info(plural).expect("known resource");
    let av = api_version(group, version);
    let Some(manager) = param(params, "fieldManager").filter(|m| !m.is_empty()) else {
        return status_error(
            400,
            "BadRequest",
            "PATCH requests with an apply patch must set fieldManager",
            None,
        );
    };
    let force = param(params, "force") == Some("true");
    let dry_run = param(params, "dryRun") == Some("All");
    let mut obj: Value = match serde_yaml::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => v,
        _ => {
            return status_error(
                400,
                "BadRequest",
                "the apply patch is not a YAML or JSON object",
                None,
            );
        }
    };
    if obj["apiVersion"].as_str() != Some(av.as_str()) || obj["kind"].as_str() != Some(kind) {
        return status_error(
            400,
            "BadRequest",
            &format!("the apply patch's apiVersion/kind must be {av}/{kind}"),
            None,
        );
    }
    if obj["metadata"]["name"].as_str() != Some(name) {
        return status_error(
            400,
            "BadRequest",
            "the name of the object does not match the name in the URL",
            None,
        );
    }
    if let Some(n) = obj["metadata"]["namespace"].as_str()
        && n != ns
    {
        return status_error(
            400,
            "BadRequest",
            "the namespace of the object does not match the namespace in the URL",
            None,
        );
    }
    let mut g = st.lock();
    let key = Key::new(plural, ns, name);
    let existing = g.objects.get(&key).cloned();
    if let Some(e) = &existing {
        let owners: Vec<String> = e["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["manager"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(other) = owners.iter().find(|o| o.as_str() != manager)
            && !force
        {
            let msg = format!(
                "Apply failed with 1 conflict: conflict with \"{other}\": .metadata.labels"
            );
            return status_error(
                409,
                "Conflict",
                &msg,
                Some(
                    json!({"causes": [{"reason": "FieldManagerConflict", "message": format!("conflict with \"{other}\""), "field": ".metadata.labels"}]}),
                ),
            );
        }
    }
    // Quantities are stored (and returned, also by a dry run) in canonical form.
    if let Err((field, message)) = quantity::canonicalize(kind, &mut obj) {
        return status_error(
            400,
            "BadRequest",
            &format!("{kind} \"{name}\" is invalid: {field}: {message}"),
            None,
        );
    }
    controller::defaults(plural, &mut obj);
    obj["metadata"]["namespace"] = json!(ns);
    let changed = match &existing {
        None => true,
        Some(e) => {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v["metadata"].as_object_mut() {
                    for k in SERVER_METADATA {
                        m.remove(k);
                    }
                }
                if let Some(m) = v.as_object_mut() {
                    m.remove("status");
                }
                v
            };
            strip(e) != strip(&obj)
        }
    };
    let result = match (&existing, changed) {
        (Some(e), false) => e.clone(),
        _ => {
            let rv = g.rv + 1;
            let uid = match &existing {
                Some(e) => e["metadata"]["uid"].clone(),
                None => json!(format!("00000000-0000-4000-8000-{:012}", g.uid + 1)),
            };
            let spec_changed = existing.as_ref().is_none_or(|e| e["spec"] != obj["spec"]);
            let generation = existing
                .as_ref()
                .and_then(|e| e["metadata"]["generation"].as_i64())
                .map(|g| if spec_changed { g + 1 } else { g })
                .unwrap_or(1);
            obj["metadata"]["uid"] = uid;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            obj["metadata"]["creationTimestamp"] = existing
                .as_ref()
                .map(|e| e["metadata"]["creationTimestamp"].clone())
                .unwrap_or_else(|| json!(now()));
            if matches!(plural, "statefulsets" | "deployments") {
                obj["metadata"]["generation"] = json!(generation);
            }
            obj["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Apply", "apiVersion": av, "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]);
            if let Some(status) = existing.as_ref().and_then(|e| e.get("status")) {
                obj["status"] = status.clone();
            }
            if plural == "services" {
                obj["spec"]["clusterIP"] = existing
                    .as_ref()
                    .map(|e| e["spec"]["clusterIP"].clone())
                    .unwrap_or_else(|| json!("10.96.0.42"));
            }
            if !dry_run {
                g.rv = rv;
                if existing.is_none() {
                    g.uid += 1;
                }
                g.objects.insert(key, obj.clone());
            }
            obj
        }
    };
    drop(g);
    if !dry_run && changed && matches!(plural, "statefulsets" | "deployments") {
        controller::reconcile_later(st.clone(), plural, ns.to_string(), name.to_string());
    }
    let code = if existing.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(code, &result)
}

fn scale(st: Arc<State>, plural: &str, ns: &str, name: &str, body: &[u8]) -> Response<Body> {
    let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(replicas) = patch["spec"]["replicas"].as_i64() else {
        return status_error(
            422,
            "Invalid",
            "spec.replicas is required",
            Some(
                json!({"causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.replicas"}]}),
            ),
        );
    };
    let mut g = st.lock();
    let key = Key::new(plural, ns, name);
    let rv = g.rv + 1;
    let Some(obj) = g.objects.get_mut(&key) else {
        drop(g);
        return not_found(plural, "apps", name);
    };
    if obj["spec"]["replicas"].as_i64() != Some(replicas) {
        obj["spec"]["replicas"] = json!(replicas);
        let next_gen = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        obj["metadata"]["generation"] = json!(next_gen);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        g.rv = rv;
    }
    let obj = g.objects[&key].clone();
    drop(g);
    controller::reconcile_later(st.clone(), plural, ns.to_string(), name.to_string());
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns, "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"replicas": replicas},
            "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        }),
    )
}

/// A body streamed from a channel of chunks.
fn streaming(rx: mpsc::Receiver<Bytes>, content_type: &str) -> Response<Body> {
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response")
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `?watch=true` on pods: events after `resourceVersion`, one JSON object per line,
/// until `timeoutSeconds`.
fn watch(st: Arc<State>, ns: &str, params: &[(String, String)]) -> Response<Body> {
    let selector = param(params, "labelSelector").unwrap_or("").to_string();
    let since: u64 = param(params, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout: u64 = param(params, "timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let ns = ns.to_string();
    let mut events = st.pod_events.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = events.recv() => match ev {
                    Ok((rv, kind, pod)) => {
                        if rv <= since
                            || pod["metadata"]["namespace"].as_str() != Some(ns.as_str())
                            || !matches_selector(&pod["metadata"]["labels"], &selector)
                        {
                            continue;
                        }
                        let mut line = serde_json::to_vec(&json!({"type": kind, "object": pod})).unwrap_or_default();
                        line.push(b'\n');
                        if tx.send(Bytes::from(line)).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                },
            }
        }
    });
    streaming(rx, "application/json")
}

/// Pod logs: the lines so far (or the last `tailLines`), then, with `follow`, new
/// lines until the pod is deleted.
async fn logs(st: Arc<State>, ns: &str, pod: &str, params: &[(String, String)]) -> Response<Body> {
    if !st.lock().objects.contains_key(&Key::new("pods", ns, pod)) {
        return not_found("pods", "", pod);
    }
    let follow = param(params, "follow") == Some("true");
    let tail: Option<usize> = param(params, "tailLines").and_then(|v| v.parse().ok());
    let previous = param(params, "previous") == Some("true");
    let key = if previous {
        format!("{pod}#previous")
    } else {
        pod.to_string()
    };
    if previous && !st.lock().logs.contains_key(&key) {
        return status_error(
            400,
            "BadRequest",
            &format!("previous terminated container \"{pod}\" in pod \"{pod}\" not found"),
            None,
        );
    }
    let lines = st.lock().logs.get(&key).cloned().unwrap_or_default();
    let start = tail.map(|t| lines.len().saturating_sub(t)).unwrap_or(0);
    let first: String = lines[start..].iter().map(|l| format!("{l}\n")).collect();
    if !follow {
        return full(StatusCode::OK, "text/plain", first);
    }
    let mut wake = st.log_events.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let ns = ns.to_string();
    let pod = pod.to_string();
    let mut sent = lines.len();
    tokio::spawn(async move {
        if tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            match wake.recv().await {
                Ok(p) if p == pod => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
            let (new, gone) = {
                let g = st.lock();
                let all = g.logs.get(&pod).cloned().unwrap_or_default();
                let gone = !g.objects.contains_key(&Key::new("pods", &ns, &pod));
                (
                    all.get(sent..).map(<[String]>::to_vec).unwrap_or_default(),
                    gone,
                )
            };
            sent += new.len();
            let chunk: String = new.iter().map(|l| format!("{l}\n")).collect();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                break;
            }
            if gone {
                break;
            }
        }
    });
    streaming(rx, "text/plain")
}
