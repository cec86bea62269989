//! A stateful fake of RunPod's REST API v1 (pods), behind the published OpenAPI
//! description (`runpod/rest-v1-openapi.json`, made strict: an undeclared property is
//! a violation). Every answer the fake gives is checked against the description too,
//! its status included: an id RunPod does not know is answered as the description
//! declares (404 on GET, 400 "Invalid Pod ID" on delete, start and stop, 400 "Invalid
//! input" on update), and `machine` comes only with `includeMachine=true`.
//!
//! Like RunPod's own images, a created pod "installs" the key it was given in `env`
//! `PUBLIC_KEY`: the fake writes it into the test sshd's `authorized_keys`, and maps
//! the pod's port 22 to that sshd on 127.0.0.1, so SSH works only with the key the
//! provider sent.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::openapi::OpenApi;
use super::server::{Contract, Exchange, Fake, Log, Reply, TestServer};

/// The key the fake accepts.
pub const TOKEN: &str = "rpa_TESTKEY_4b1d9e77c0ffee";

/// RunPod's words when a GPU type has no machine free.
pub const NO_CAPACITY: &str = "There are no longer any instances available with the requested specifications. Please refresh and try again.";

/// The RunPod contract: the published description, strict, answers included (only
/// the statuses each operation declares).
pub fn contract() -> OpenApi {
    let path = super::api_specs().join("runpod/rest-v1-openapi.json");
    OpenApi::load(&path, "/v1", super::strict).declared_statuses_only(&[])
}

/// What the fake charges per hour for a GPU type (and CPU pods).
pub fn price(gpu: Option<&str>) -> f64 {
    match gpu {
        Some("NVIDIA L40S") => 0.86,
        Some("NVIDIA H100 80GB HBM3") => 2.99,
        Some("NVIDIA A40") => 0.40,
        Some(_) => 1.25,
        None => 0.12,
    }
}

/// A pod.
#[derive(Debug, Clone)]
pub struct FakePod {
    /// Id.
    pub id: String,
    /// The create input as received (updated by PATCH).
    pub input: Value,
    /// `RUNNING` or `EXITED`.
    pub status: String,
    /// The GPU type rented (None: a CPU pod).
    pub gpu: Option<String>,
    /// GET looks left before the pod shows its public IP and ports.
    pub looks_until_ip: u32,
    /// How many times the container started.
    pub starts: u32,
}

/// Everything the fake knows.
#[derive(Debug, Default)]
pub struct RunpodState {
    /// Pods by id.
    pub pods: BTreeMap<String, FakePod>,
    /// GPU types with no capacity.
    pub full_types: BTreeSet<String>,
    /// Whether `start` finds the pod's machine full.
    pub full_on_start: bool,
    /// Create bodies, in order.
    pub creates: Vec<Value>,
    /// PATCH bodies, in order.
    pub updates: Vec<Value>,
    /// Ids of terminated pods, in order.
    pub terminated: Vec<String>,
    /// Looks before a new or started pod gets its address.
    pub ip_after_looks: u32,
    /// The port the pods' 22 maps to (the test's sshd).
    pub ssh_port: u16,
    /// The sshd's authorized_keys, where `PUBLIC_KEY` is installed.
    pub authorized_keys: Option<PathBuf>,
    /// Operations answered late: (operation, times, delay).
    pub slow: Vec<(String, u32, Duration)>,
    next: u64,
}

impl RunpodState {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("pod{:011x}", self.next * 7_919)
    }

    /// Adds a pod as if someone else made it (for ownership tests).
    pub fn add_foreign(&mut self, name: &str, env: Value) -> String {
        let id = self.id();
        self.pods.insert(
            id.clone(),
            FakePod {
                id: id.clone(),
                input: json!({"name": name, "imageName": "someone/else:1", "env": env, "ports": ["22/tcp"]}),
                status: "RUNNING".into(),
                gpu: Some("NVIDIA A40".into()),
                looks_until_ip: 0,
                starts: 1,
            },
        );
        id
    }
}

/// The fake API.
pub struct RunpodFake {
    /// Its state, for tests to arrange and inspect.
    pub state: Mutex<RunpodState>,
}

/// A running fake with its server.
pub struct Runpod {
    /// The server.
    pub server: TestServer,
    /// The fake.
    pub fake: Arc<RunpodFake>,
}

impl Runpod {
    /// Starts a fake RunPod API whose pods' SSH is `ssh_port` on 127.0.0.1.
    pub async fn start(ssh_port: u16, authorized_keys: Option<PathBuf>) -> Runpod {
        let fake = Arc::new(RunpodFake {
            state: Mutex::new(RunpodState {
                ssh_port,
                authorized_keys,
                ip_after_looks: 1,
                ..RunpodState::default()
            }),
        });
        let contract: Arc<dyn Contract> = Arc::new(contract());
        let server = TestServer::start(Some(contract), fake.clone()).await;
        Runpod { server, fake }
    }

    /// The API base a provider is given (`…/v1`).
    pub fn api(&self) -> String {
        format!("{}/v1", self.server.url)
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, RunpodState> {
        self.fake.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn err(status: u16, msg: &str) -> Reply {
    Reply::Json(status, json!({"error": msg, "status": status}))
}

/// The answer for an id RunPod does not know, where the description declares 400.
fn invalid_pod_id(id: &str) -> Reply {
    err(400, &format!("Invalid Pod ID: {id}"))
}

fn pod_json(p: &FakePod, ssh_port: u16, machine: bool) -> Value {
    let i = &p.input;
    let running = p.status == "RUNNING" && p.looks_until_ip == 0;
    let mut mappings = serde_json::Map::new();
    if running {
        for (n, port) in i["ports"].as_array().into_iter().flatten().enumerate() {
            let internal = port.as_str().unwrap_or("").split('/').next().unwrap_or("");
            let public = if internal == "22" {
                ssh_port
            } else {
                40_000 + n as u16
            };
            mappings.insert(internal.to_string(), json!(public));
        }
    }
    let cost = price(p.gpu.as_deref());
    let mut j = json!({
        "id": p.id,
        "name": i["name"].as_str().unwrap_or("my pod"),
        "desiredStatus": p.status,
        "image": i["imageName"],
        "env": i["env"].clone(),
        "ports": i["ports"].clone(),
        "publicIp": if running { json!("127.0.0.1") } else { Value::Null },
        "portMappings": if running { Value::Object(mappings) } else { Value::Null },
        "costPerHr": cost,
        "adjustedCostPerHr": cost,
        "interruptible": i["interruptible"].as_bool().unwrap_or(false),
        "containerDiskInGb": i["containerDiskInGb"].as_u64().unwrap_or(50),
        "volumeInGb": i["volumeInGb"].as_u64().unwrap_or(20),
        "volumeMountPath": i["volumeMountPath"].as_str().unwrap_or("/workspace"),
        "machineId": "s194cr8pls2z",
        "lastStatusChange": format!("{} by sindri test", p.status),
        "lastStartedAt": format!("2024-07-12T19:{:02}:40.144Z", p.starts % 60),
    });
    if machine {
        j["machine"] = json!({"dataCenterId": "EU-RO-1", "location": "RO"});
    }
    if let Some(g) = &p.gpu {
        j["gpu"] = json!({"id": g, "count": i["gpuCount"].as_u64().unwrap_or(1), "displayName": g});
    } else {
        j["vcpuCount"] = json!(i["vcpuCount"].as_u64().unwrap_or(2));
    }
    j
}

impl Fake for RunpodFake {
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        _log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(async move {
            if ex.h("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return err(401, "invalid api key");
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

fn handle(st: &mut RunpodState, ex: &Exchange) -> Reply {
    let port = st.ssh_port;
    let id = ex.p("podId").to_string();
    let machine = ex.q("includeMachine") == Some("true");
    match ex.op.as_str() {
        "ListPods" => {
            let name = ex.q("name");
            let pods: Vec<Value> = st
                .pods
                .values()
                .filter(|p| name.is_none_or(|n| p.input["name"].as_str() == Some(n)))
                .map(|p| pod_json(p, port, machine))
                .collect();
            Reply::Json(200, Value::Array(pods))
        }
        "GetPod" => match st.pods.get_mut(&id) {
            Some(p) => {
                p.looks_until_ip = p.looks_until_ip.saturating_sub(1);
                Reply::Json(200, pod_json(p, port, machine))
            }
            None => err(404, "pod not found"),
        },
        "CreatePod" => {
            let b = ex.json();
            st.creates.push(b.clone());
            let gpu = if b["computeType"] == "CPU" {
                None
            } else {
                match b["gpuTypeIds"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                {
                    Some(g) => Some(g.to_string()),
                    None => return err(400, "gpuTypeIds is required for GPU pods in this fake"),
                }
            };
            if let Some(g) = &gpu
                && st.full_types.contains(g)
            {
                return err(500, &format!("create pod: {NO_CAPACITY}"));
            }
            if b["imageName"].as_str().unwrap_or("").is_empty() {
                return err(400, "imageName is required");
            }
            if let (Some(path), Some(key)) = (&st.authorized_keys, b["env"]["PUBLIC_KEY"].as_str())
            {
                // What RunPod's images do at start: trust the key in PUBLIC_KEY.
                let mut keys = std::fs::read_to_string(path).unwrap_or_default();
                keys.push_str(key);
                keys.push('\n');
                let _ = std::fs::write(path, keys);
            }
            let id = st.id();
            let pod = FakePod {
                id: id.clone(),
                input: b,
                status: "RUNNING".into(),
                gpu,
                looks_until_ip: st.ip_after_looks,
                starts: 1,
            };
            let j = pod_json(&pod, port, false);
            st.pods.insert(id, pod);
            Reply::Json(201, j)
        }
        "UpdatePod" => {
            let b = ex.json();
            st.updates.push(b.clone());
            let after = st.ip_after_looks;
            let Some(p) = st.pods.get_mut(&id) else {
                return err(400, &format!("Invalid input: no pod {id}"));
            };
            if let Some(o) = b.as_object() {
                for (k, v) in o {
                    p.input[k.as_str()] = v.clone();
                }
            }
            // RunPod resets the pod to apply the change.
            p.looks_until_ip = after;
            p.starts += 1;
            Reply::Json(200, pod_json(p, port, false))
        }
        "StartPod" => {
            let full = st.full_on_start;
            let after = st.ip_after_looks;
            let Some(p) = st.pods.get_mut(&id) else {
                return invalid_pod_id(&id);
            };
            if p.status != "RUNNING" {
                if full {
                    return err(
                        500,
                        "There are not enough free GPUs on the host machine to start this pod.",
                    );
                }
                p.status = "RUNNING".into();
                p.looks_until_ip = after;
                p.starts += 1;
            }
            Reply::Empty(200)
        }
        "StopPod" => {
            let Some(p) = st.pods.get_mut(&id) else {
                return invalid_pod_id(&id);
            };
            p.status = "EXITED".into();
            Reply::Empty(200)
        }
        "DeletePod" => match st.pods.remove(&id) {
            Some(_) => {
                st.terminated.push(id);
                Reply::Empty(204)
            }
            None => invalid_pod_id(&id),
        },
        other => err(501, &format!("the fake does not implement {other}")),
    }
}
