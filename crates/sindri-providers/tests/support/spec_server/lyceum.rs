//! A strict fake of Lyceum's VM API. Lyceum publishes no API description, so the
//! contract is derived from what is known for certain:
//! - **Requests** ([`LyceumContract`]): only the endpoints and fields that
//!   shared/api-specs/README.md lists (and the recorded client sends): `POST
//!   /vms/create` {user_public_key, hardware_profile, instance_specs {gpu_count},
//!   instance_type (on-demand|spot), display_name}; `GET /vms/{id}/status`; `GET
//!   /vms/list` with `include_terminated`/`include_failed` = true|false; `DELETE
//!   /vms/{id}`; `GET /vms/availability`; `GET /pricing`; `GET /user/status`, each with
//!   `Authorization: Bearer`. Any other path, method, query parameter or body field is
//!   a violation.
//! - **Answers**: the fake builds every answer from the recorded responses in
//!   shared/api-specs/lyceum (changing only values), and checks each against their
//!   shape ([`shape_problems`]): no key the recordings never show, no key they always
//!   show missing, no type they never use.
//!
//! Like Lyceum, the fake answers running out of capacity with HTTP 500 "could not be
//! provisioned", reports `ready` before the VM has an address, gives the address as
//! `host:port`, returns terminated VMs from `/vms/list` unless asked not to, and
//! installs `user_public_key` (into the test sshd's `authorized_keys`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::server::{
    Contract, Exchange, Fake, Log, Matched, RawRequest, Reply, TestServer, Violation,
};

/// The key the fake accepts.
pub const TOKEN: &str = "lk_test_8c1f2a9d77e04b6aa1";

/// The API's base path.
pub const BASE: &str = "/api/v2/external";

/// The hardware profiles the API accepts.
pub const PROFILES: [&str; 6] = ["a100", "b200", "b300", "h100", "h200", "l40s"];

/// A recorded response.
pub fn fixture(name: &str) -> Value {
    let path = super::api_specs().join("lyceum").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the recording {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The recordings an answer of `op` with `status` must look like.
fn recorded(op: &str, status: u16) -> Vec<Value> {
    match (op, status) {
        ("create", 200 | 201) => vec![fixture("vm_create_pending.json")],
        ("status", 200) => [
            "vm_status_ready_bare_ip.json",
            "vm_status_ready_host_port.json",
            "vm_status_ready_null_ip.json",
        ]
        .iter()
        .map(|f| fixture(f))
        .collect(),
        ("list", 200) => vec![fixture("vm_list_mixed.json"), fixture("vm_list_empty.json")],
        ("delete", 200) => vec![fixture("vm_terminate_ok.json")],
        ("availability", 200) => vec![fixture("vms_availability.json")],
        ("pricing", 200) => vec![fixture("pricing_vm_running.json")],
        ("user", 200) => vec![fixture("user_status.json")],
        (_, s) if s >= 400 => [
            "error_400_invalid_request.json",
            "error_400_unknown_profile.json",
            "error_404_vm_not_found.json",
            "error_500_capacity.json",
        ]
        .iter()
        .map(|f| fixture(f))
        .collect(),
        _ => Vec::new(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `v` departs from the shape of `examples` (see the module docs), at `at`.
pub fn shape_problems(v: &Value, examples: &[&Value], at: &str) -> Vec<String> {
    if examples.is_empty() {
        return Vec::new();
    }
    let kinds: BTreeSet<&str> = examples.iter().map(|e| kind(e)).collect();
    let k = kind(v);
    let only_null = kinds.len() == 1 && kinds.contains("null");
    let nullable_scalar = only_null && matches!(k, "string" | "number");
    if !(kinds.contains(k) || nullable_scalar) {
        return vec![format!("{at}: {k}, where the recordings have {kinds:?}")];
    }
    let mut out = Vec::new();
    match v {
        Value::Object(o) => {
            let objects: Vec<&Map<String, Value>> =
                examples.iter().filter_map(|e| e.as_object()).collect();
            for key in o.keys() {
                if !objects.iter().any(|e| e.contains_key(key)) {
                    out.push(format!("{at}.{key}: a key the recordings never show"));
                }
            }
            if let Some(first) = objects.first() {
                for key in first.keys() {
                    if objects.iter().all(|e| e.contains_key(key)) && !o.contains_key(key) {
                        out.push(format!("{at}.{key}: missing, and every recording has it"));
                    }
                }
            }
            for (key, child) in o {
                let sub: Vec<&Value> = objects.iter().filter_map(|e| e.get(key)).collect();
                out.extend(shape_problems(child, &sub, &format!("{at}.{key}")));
            }
        }
        Value::Array(a) => {
            let items: Vec<&Value> = examples
                .iter()
                .filter_map(|e| e.as_array())
                .flatten()
                .collect();
            for (i, item) in a.iter().enumerate() {
                out.extend(shape_problems(item, &items, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

/// The requests Lyceum takes (see the module docs).
pub struct LyceumContract;

fn violation(status: u16, message: String) -> Violation {
    Violation { status, message }
}

fn check_create_body(body: &[u8]) -> Result<(), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let o = v.as_object().ok_or("the body is not an object")?;
    let known = [
        "user_public_key",
        "hardware_profile",
        "instance_specs",
        "instance_type",
        "display_name",
    ];
    for k in o.keys() {
        if !known.contains(&k.as_str()) {
            return Err(format!(
                "unknown field `{k}` (Lyceum takes {})",
                known.join(", ")
            ));
        }
    }
    for k in ["user_public_key", "hardware_profile", "instance_specs"] {
        if !o.contains_key(k) {
            return Err(format!("the required field `{k}` is missing"));
        }
    }
    for k in [
        "user_public_key",
        "hardware_profile",
        "instance_type",
        "display_name",
    ] {
        if let Some(x) = o.get(k)
            && !x.is_string()
        {
            return Err(format!("`{k}` must be a string, found {}", kind(x)));
        }
    }
    if let Some(t) = o.get("instance_type").and_then(Value::as_str)
        && !matches!(t, "on-demand" | "spot")
    {
        return Err(format!("instance_type `{t}` is not on-demand or spot"));
    }
    let specs = o["instance_specs"]
        .as_object()
        .ok_or("`instance_specs` must be an object")?;
    for k in specs.keys() {
        if k != "gpu_count" {
            return Err(format!(
                "unknown field `instance_specs.{k}` (Lyceum takes gpu_count)"
            ));
        }
    }
    if !specs.get("gpu_count").is_some_and(Value::is_u64) {
        return Err("`instance_specs.gpu_count` must be an integer".into());
    }
    Ok(())
}

impl Contract for LyceumContract {
    fn check(&self, req: &RawRequest<'_>) -> Result<Matched, Violation> {
        let Some(rest) = req.path.strip_prefix(BASE) else {
            return Err(violation(
                404,
                format!("the path does not start with {BASE}"),
            ));
        };
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let mut params = BTreeMap::new();
        let (op, method): (&str, &str) = match segs.as_slice() {
            ["vms", "create"] => ("create", "POST"),
            ["vms", "list"] => ("list", "GET"),
            ["vms", "availability"] => ("availability", "GET"),
            ["vms", id, "status"] if !id.is_empty() => {
                params.insert("id".to_string(), id.to_string());
                ("status", "GET")
            }
            ["vms", id] if !id.is_empty() => {
                params.insert("id".to_string(), id.to_string());
                ("delete", "DELETE")
            }
            ["pricing"] => ("pricing", "GET"),
            ["user", "status"] => ("user", "GET"),
            _ => return Err(violation(404, format!("no Lyceum endpoint `{rest}`"))),
        };
        if req.method != method {
            return Err(violation(
                405,
                format!("`{rest}` takes {method}, not {}", req.method),
            ));
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth.starts_with("Bearer ") {
            return Err(violation(
                401,
                "no `Authorization: Bearer` credential".into(),
            ));
        }
        for (k, v) in req.query {
            let ok = op == "list"
                && matches!(k.as_str(), "include_terminated" | "include_failed")
                && matches!(v.as_str(), "true" | "false");
            if !ok {
                return Err(violation(
                    400,
                    format!("{op}: unexpected query parameter `{k}={v}`"),
                ));
            }
        }
        if op == "create" {
            check_create_body(req.body).map_err(|m| violation(400, format!("create: {m}")))?;
        } else if !req.body.is_empty() {
            return Err(violation(400, format!("{op} takes no body")));
        }
        Ok(Matched {
            op: op.to_string(),
            path: rest.to_string(),
            params,
        })
    }

    fn check_reply(&self, op: &str, status: u16, content_type: &str, body: &[u8]) -> Vec<String> {
        if !content_type.contains("json") || body.is_empty() {
            return Vec::new();
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return vec![format!("{op} {status}: the body is not JSON")];
        };
        let examples = recorded(op, status);
        let refs: Vec<&Value> = examples.iter().collect();
        shape_problems(&v, &refs, &format!("{op} {status}"))
    }
}

/// Refuses every request: for proving that nothing is sent.
pub struct AnyRequestFails;

impl Contract for AnyRequestFails {
    fn check(&self, req: &RawRequest<'_>) -> Result<Matched, Violation> {
        Err(violation(
            418,
            format!(
                "no request was expected, but got {} {}",
                req.method, req.path
            ),
        ))
    }

    fn check_reply(&self, _: &str, _: u16, _: &str, _: &[u8]) -> Vec<String> {
        Vec::new()
    }
}

/// One step of a VM's life as status shows it: the status and whether it has an address.
pub type Step = (&'static str, bool);

/// The life of a new VM: provisioning, then ready without an address (as observed on
/// Lyceum), then ready with one.
pub const DEFAULT_LIFE: [Step; 3] = [("provisioning", false), ("ready", false), ("ready", true)];

/// A VM.
#[derive(Debug, Clone)]
pub struct FakeVm {
    /// Id.
    pub id: String,
    /// Current status.
    pub status: String,
    /// Whether the address is known.
    pub has_ip: bool,
    /// Steps still to come (one per status look).
    pub life: VecDeque<Step>,
    /// Display name.
    pub display_name: Option<String>,
    /// Profile.
    pub profile: String,
    /// GPUs.
    pub count: u64,
    /// on-demand or spot.
    pub instance_type: String,
    /// Creation time.
    pub created_at: String,
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct LyceumState {
    /// VMs in creation order, terminated ones included.
    pub vms: Vec<FakeVm>,
    /// The availability answer (starts as recorded; tests change it).
    pub availability: Value,
    /// Whether create runs out of capacity.
    pub full: bool,
    /// The address VMs get: `host:port`.
    pub address: String,
    /// The life of VMs created from now on.
    pub life: Vec<Step>,
    /// Create bodies, in order.
    pub creates: Vec<Value>,
    /// Ids deleted, in order.
    pub deleted: Vec<String>,
    /// The sshd's authorized_keys, where `user_public_key` is installed.
    pub authorized_keys: Option<PathBuf>,
    /// Operations answered late: (operation, times, delay).
    pub slow: Vec<(String, u32, Duration)>,
    next: u64,
}

impl LyceumState {
    /// Adds a VM directly (someone else's, or a terminated one).
    pub fn add(&mut self, display_name: &str, status: &str, profile: &str) -> String {
        self.next += 1;
        let id = format!("{:032x}", 0xfeed_0000_u64 + self.next);
        self.vms.push(FakeVm {
            id: id.clone(),
            status: status.into(),
            has_ip: true,
            life: VecDeque::new(),
            display_name: Some(display_name.into()),
            profile: profile.into(),
            count: 1,
            instance_type: "on-demand".into(),
            created_at: format!("2026-07-31T12:{:02}:00.000000Z", self.next % 60),
        });
        id
    }

    /// Sets the GPU counts free now for one variant.
    pub fn set_free(&mut self, profile: &str, instance_type: &str, counts: &[u64]) {
        for v in self.availability["available_instance_variants"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if v["hardware_profile"] == profile && v["instance_type"] == instance_type {
                v["available_gpus_per_instance"] = json!(counts);
            }
        }
    }

    /// The VM with this id.
    pub fn vm(&self, id: &str) -> Option<&FakeVm> {
        self.vms.iter().find(|v| v.id == id)
    }

    /// VMs not terminated.
    pub fn live(&self) -> Vec<&FakeVm> {
        self.vms
            .iter()
            .filter(|v| v.status != "terminated")
            .collect()
    }
}

/// The fake API.
pub struct LyceumFake {
    /// Its state.
    pub state: Mutex<LyceumState>,
}

/// A running fake with its server.
pub struct Lyceum {
    /// The server.
    pub server: TestServer,
    /// The fake.
    pub fake: Arc<LyceumFake>,
}

impl Lyceum {
    /// Starts a fake whose VMs answer SSH at `address` (`host:port`).
    pub async fn start(address: &str, authorized_keys: Option<PathBuf>) -> Lyceum {
        let fake = Arc::new(LyceumFake {
            state: Mutex::new(LyceumState {
                vms: Vec::new(),
                availability: fixture("vms_availability.json"),
                full: false,
                address: address.to_string(),
                life: DEFAULT_LIFE.to_vec(),
                creates: Vec::new(),
                deleted: Vec::new(),
                authorized_keys,
                slow: Vec::new(),
                next: 0,
            }),
        });
        let contract: Arc<dyn Contract> = Arc::new(LyceumContract);
        let server = TestServer::start(Some(contract), fake.clone()).await;
        Lyceum { server, fake }
    }

    /// The API base a provider is given.
    pub fn api(&self) -> String {
        format!("{}{BASE}", self.server.url)
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, LyceumState> {
        self.fake.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn detail(status: u16, fixture_name: &str, text: Option<String>) -> Reply {
    let mut v = fixture(fixture_name);
    if let Some(t) = text {
        v["detail"] = json!(t);
    }
    Reply::Json(status, v)
}

fn vm_json(template: &str, v: &FakeVm, address: &str) -> Value {
    let mut j = fixture(template);
    j["vm_id"] = json!(v.id);
    j["status"] = json!(v.status);
    j["ip_address"] = if v.has_ip {
        json!(address)
    } else {
        Value::Null
    };
    j["instance_specs"] = json!({"gpu_type": v.profile, "gpu_count": v.count});
    j["instance_type"] = json!(v.instance_type);
    j["display_name"] = match &v.display_name {
        Some(d) => json!(d),
        None => Value::Null,
    };
    j["created_at"] = json!(v.created_at);
    if template != "vm_create_pending.json" {
        j["hardware_profile"] = json!(v.profile);
        j["gpu_count"] = json!(v.count);
        j["billed"] = json!(0.0);
    }
    j
}

impl Fake for LyceumFake {
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        _log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(async move {
            if ex.h("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return Reply::Json(401, json!({"detail": "Invalid API key"}));
            }
            let delay = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let hit = st.slow.iter_mut().find(|(op, n, _)| *op == ex.op && *n > 0);
                hit.map(|(_, n, d)| {
                    *n -= 1;
                    *d
                })
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut st, &ex)
        })
    }
}

fn handle(st: &mut LyceumState, ex: &Exchange) -> Reply {
    let id = ex.p("id").to_string();
    let address = st.address.clone();
    match ex.op.as_str() {
        "create" => {
            let b = ex.json();
            st.creates.push(b.clone());
            let profile = b["hardware_profile"].as_str().unwrap_or("").to_string();
            if !PROFILES.contains(&profile.as_str()) {
                return detail(
                    400,
                    "error_400_unknown_profile.json",
                    Some(format!(
                        "Unknown hardware_profile '{profile}'. Valid options: {}",
                        PROFILES.join(", ")
                    )),
                );
            }
            let count = b["instance_specs"]["gpu_count"].as_u64().unwrap_or(0);
            if ![1, 2, 4, 8].contains(&count) {
                return detail(400, "error_400_invalid_request.json", None);
            }
            if st.full {
                return detail(500, "error_500_capacity.json", None);
            }
            if let (Some(path), Some(key)) = (&st.authorized_keys, b["user_public_key"].as_str()) {
                let mut keys = std::fs::read_to_string(path).unwrap_or_default();
                keys.push_str(key);
                keys.push('\n');
                let _ = std::fs::write(path, keys);
            }
            st.next += 1;
            let vm = FakeVm {
                id: format!("{:032x}", 0x9918_b72c_u64 + st.next),
                status: "pending".into(),
                has_ip: false,
                life: st.life.iter().copied().collect(),
                display_name: b["display_name"].as_str().map(str::to_string),
                profile,
                count,
                instance_type: b["instance_type"]
                    .as_str()
                    .unwrap_or("on-demand")
                    .to_string(),
                created_at: format!("2026-07-31T15:{:02}:00.000000", st.next % 60),
            };
            let j = vm_json("vm_create_pending.json", &vm, &address);
            st.vms.push(vm);
            Reply::Json(200, j)
        }
        "status" => {
            let Some(v) = st.vms.iter_mut().find(|v| v.id == id) else {
                return detail(404, "error_404_vm_not_found.json", None);
            };
            if v.status != "terminated"
                && let Some((s, ip)) = v.life.pop_front()
            {
                v.status = s.into();
                v.has_ip = ip;
            }
            Reply::Json(200, vm_json("vm_status_ready_bare_ip.json", v, &address))
        }
        "list" => {
            // Lyceum's default is to include terminated and failed VMs.
            let terminated = ex.q("include_terminated") != Some("false");
            let failed = ex.q("include_failed") != Some("false");
            let vms: Vec<Value> = st
                .vms
                .iter()
                .filter(|v| terminated || v.status != "terminated")
                .filter(|v| failed || v.status != "failed")
                .map(|v| {
                    let mut j = vm_json("vm_create_pending.json", v, &address);
                    j["hardware_profile"] = json!(v.profile);
                    j["gpu_count"] = json!(v.count);
                    j["billed"] = json!(0.0);
                    j["status_check_url"] = Value::Null;
                    j["polling_message"] = Value::Null;
                    j
                })
                .collect();
            Reply::Json(200, json!({"vms": vms, "total": vms.len()}))
        }
        "delete" => {
            let Some(v) = st
                .vms
                .iter_mut()
                .find(|v| v.id == id && v.status != "terminated")
            else {
                return detail(404, "error_404_vm_not_found.json", None);
            };
            v.status = "terminated".into();
            v.life.clear();
            st.deleted.push(id.clone());
            let mut j = fixture("vm_terminate_ok.json");
            j["vm_id"] = json!(id);
            j["message"] = json!(format!("VM {id} has been terminated"));
            Reply::Json(200, j)
        }
        "availability" => Reply::Json(200, st.availability.clone()),
        "pricing" => Reply::Json(200, fixture("pricing_vm_running.json")),
        "user" => Reply::Json(200, fixture("user_status.json")),
        other => Reply::Json(
            501,
            json!({"detail": format!("the fake does not implement {other}")}),
        ),
    }
}
