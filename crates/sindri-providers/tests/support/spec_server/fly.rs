//! A stateful fake of the Fly Machines API (apps, machines, volumes, exec, wait),
//! behind the published OpenAPI description.
//!
//! # The live API versus the published copy
//! `fly/machines-openapi.yaml` (Jan 2024) predates parts of the live API that sindri
//! uses. [`live_api`] adds exactly these; everything else must match the copy
//! (docs/adr/0009 gives the sources):
//! - `POST /apps/{app_name}/machines/{machine_id}/suspend`, the same shape as `/stop`,
//!   and `services[].autostop` as `"off"`, `"stop"` or `"suspend"` (the copy: boolean),
//!   both as /work/shared/api-specs/README.md describes;
//! - exec's `stdin` and its JSON answer `{exit_code, stdout, stderr}`, as superfly/fly-go
//!   declares them (`MachineExecRequest.Stdin`, `MachineExecResponse` in
//!   machine_types.go @ 005ce19, the client flyctl uses);
//! - `guest.gpus` (fly-go's `MachineGuest.GPUs`, same file).
//!
//! Request bodies are checked strictly: a property the description does not declare
//! is a violation (the real API would silently ignore a misspelt field).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::local;
use super::openapi::OpenApi;
use super::server::{Contract, Exchange, Fake, Log, Reply, TestServer};

/// The token the fake accepts.
pub const TOKEN: &str = "fo1_test-token-9f8e7d";

/// Adds what the live API has and the published copy lacks (see the module docs and
/// docs/adr/0009 for where each is known from).
pub fn live_api(doc: &mut Value) {
    let stop = doc["paths"]["/apps/{app_name}/machines/{machine_id}/stop"].clone();
    let mut suspend = stop;
    suspend["post"]["operationId"] = json!("Machines_suspend");
    doc["paths"]["/apps/{app_name}/machines/{machine_id}/suspend"] = suspend;
    let s = &mut doc["components"]["schemas"];
    s["api.MachineService"]["properties"]["autostop"] = json!({
        "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["off", "stop", "suspend"]}]
    });
    s["MachineExecRequest"]["properties"]["stdin"] = json!({"type": "string"});
    s["api.MachineGuest"]["properties"]["gpus"] = json!({"type": "integer"});
    doc["paths"]["/apps/{app_name}/machines/{machine_id}/exec"]["post"]["responses"]["200"]["content"] = json!({
        "application/json": {"schema": {
            "type": "object",
            "properties": {
                "exit_code": {"type": "integer"},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"}
            }
        }}
    });
}

/// The Fly contract: the published description plus [`live_api`], strict.
pub fn contract() -> OpenApi {
    let path = super::api_specs().join("fly/machines-openapi.yaml");
    OpenApi::load(&path, "/v1", |doc| {
        live_api(doc);
        super::strict(doc);
    })
}

/// A machine.
#[derive(Debug, Clone)]
pub struct FakeMachine {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// State.
    pub state: String,
    /// The state it reaches at the next look.
    pub pending: Option<String>,
    /// The config as last sent.
    pub config: Value,
    /// Changes with each config.
    pub instance_id: String,
    /// Private address.
    pub private_ip: String,
    /// Creation order, as a timestamp.
    pub created_at: String,
}

/// A volume.
#[derive(Debug, Clone)]
pub struct FakeVolume {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Size.
    pub size_gb: u64,
    /// The machine mounting it.
    pub attached: Option<String>,
}

/// An app.
#[derive(Debug, Clone, Default)]
pub struct FakeApp {
    /// Organization slug.
    pub org: String,
    /// Machines by id.
    pub machines: BTreeMap<String, FakeMachine>,
    /// Volumes by id.
    pub volumes: BTreeMap<String, FakeVolume>,
}

/// One exec request, as received.
#[derive(Debug, Clone)]
pub struct ExecCall {
    /// The command.
    pub command: Vec<String>,
    /// Its stdin.
    pub stdin: Option<String>,
}

/// Everything the fake knows.
#[derive(Debug, Default)]
pub struct FlyState {
    /// Apps by name.
    pub apps: BTreeMap<String, FakeApp>,
    /// Regions where machine creation fails for lack of capacity.
    pub full_regions: BTreeSet<String>,
    /// Regions where volume creation fails for lack of capacity.
    pub full_volume_regions: BTreeSet<String>,
    /// App names taken by someone else: invisible to this token (404), and refused
    /// on create with 422 "Name has already been taken", as app names are global.
    pub taken_names: BTreeSet<String>,
    /// Exec calls, in order.
    pub execs: Vec<ExecCall>,
    /// Machine create bodies, in order.
    pub creates: Vec<Value>,
    next: u64,
}

impl FlyState {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:014x}", self.next * 7919)
    }
}

/// The fake Fly API.
pub struct FlyFake {
    /// Its state, for tests to inspect and arrange.
    pub state: Mutex<FlyState>,
}

/// A running fake with its server.
pub struct Fly {
    /// The server.
    pub server: TestServer,
    /// The fake.
    pub fake: Arc<FlyFake>,
}

impl Fly {
    /// Starts a fake Fly API on a free port.
    pub async fn start() -> Fly {
        let fake = Arc::new(FlyFake {
            state: Mutex::new(FlyState::default()),
        });
        let contract: Arc<dyn Contract> = Arc::new(contract());
        let server = TestServer::start(Some(contract), fake.clone()).await;
        Fly { server, fake }
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, FlyState> {
        self.fake.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn err(status: u16, msg: &str) -> Reply {
    Reply::Json(status, json!({"error": msg}))
}

fn machine_json(m: &FakeMachine) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "state": m.state,
        "region": m.region,
        "instance_id": m.instance_id,
        "private_ip": m.private_ip,
        "config": m.config,
        "created_at": m.created_at,
        "updated_at": m.created_at,
        "events": [],
    })
}

fn volume_json(v: &FakeVolume) -> Value {
    let mut j = json!({
        "id": v.id,
        "name": v.name,
        "region": v.region,
        "size_gb": v.size_gb,
        "state": "created",
        "encrypted": true,
        "fstype": "ext4",
        "created_at": "2024-01-01T00:00:00Z",
    });
    if let Some(m) = &v.attached {
        j["attached_machine_id"] = json!(m);
    }
    j
}

fn settle(m: &mut FakeMachine) {
    if let Some(p) = m.pending.take() {
        m.state = p;
    }
}

impl Fake for FlyFake {
    fn call(
        self: Arc<Self>,
        ex: Exchange,
        _log: Log,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(async move {
            let auth = ex.h("authorization").unwrap_or("");
            if auth != format!("Bearer {TOKEN}") && auth != format!("FlyV1 {TOKEN}") {
                return Reply::Json(401, json!({"error": format!("invalid token: {auth}")}));
            }
            if ex.op == "Machines_exec" {
                return self.exec(&ex).await;
            }
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut st, &ex)
        })
    }
}

impl FlyFake {
    async fn exec(&self, ex: &Exchange) -> Reply {
        let body = ex.json();
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(app) = st.apps.get_mut(ex.p("app_name")) else {
                return err(404, "app not found");
            };
            let Some(m) = app.machines.get_mut(ex.p("machine_id")) else {
                return err(404, "machine not found");
            };
            settle(m);
            if m.state != "started" {
                return err(412, &format!("machine is {}, not started", m.state));
            }
        }
        let command: Vec<String> = body["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let stdin = body["stdin"].as_str().map(str::to_string);
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execs
            .push(ExecCall {
                command: command.clone(),
                stdin: stdin.clone(),
            });
        let out = local::run(&command, stdin.as_deref().map(str::as_bytes), &[], None).await;
        let mut r = json!({
            "stdout": String::from_utf8_lossy(&out.stdout),
            "stderr": String::from_utf8_lossy(&out.stderr),
        });
        // The live API omits a zero exit code.
        if out.code != 0 {
            r["exit_code"] = json!(out.code);
        }
        Reply::Json(200, r)
    }
}

fn handle(st: &mut FlyState, ex: &Exchange) -> Reply {
    let app_name = ex.p("app_name").to_string();
    match ex.op.as_str() {
        "Apps_list" => {
            let org = ex.q("org_slug").unwrap_or("");
            let apps: Vec<Value> = st
                .apps
                .iter()
                .filter(|(_, a)| a.org == org)
                .map(|(n, a)| json!({"id": n, "name": n, "machine_count": a.machines.len(), "network": {}}))
                .collect();
            Reply::Json(200, json!({"total_apps": apps.len(), "apps": apps}))
        }
        "Apps_create" => {
            let b = ex.json();
            let name = b["app_name"].as_str().unwrap_or("").to_string();
            if name.is_empty() {
                return err(400, "app_name is required");
            }
            if st.apps.contains_key(&name) || st.taken_names.contains(&name) {
                return err(422, "Name has already been taken");
            }
            let org = b["org_slug"].as_str().unwrap_or("personal").to_string();
            st.apps.insert(
                name,
                FakeApp {
                    org,
                    ..FakeApp::default()
                },
            );
            Reply::Empty(201)
        }
        "Apps_show" => match st.apps.get(&app_name) {
            Some(a) => Reply::Json(
                200,
                json!({"id": app_name, "name": app_name, "status": "deployed",
                       "organization": {"name": a.org, "slug": a.org}}),
            ),
            None => err(404, "app not found"),
        },
        "Apps_delete" => match st.apps.remove(&app_name) {
            Some(_) => Reply::Empty(202),
            None => err(404, "app not found"),
        },
        _ => handle_in_app(st, ex, &app_name),
    }
}

fn handle_in_app(st: &mut FlyState, ex: &Exchange, app_name: &str) -> Reply {
    let full = st.full_regions.clone();
    let full_volumes = st.full_volume_regions.clone();
    let op = ex.op.as_str();
    let b = ex.json();
    if op == "Machines_create" {
        st.creates.push(b.clone());
    }
    let new_machine_id = st.id("");
    let new_volume_id = st.id("vol_");
    let new_instance = st.id("01H");
    let Some(app) = st.apps.get_mut(app_name) else {
        return err(404, "app not found");
    };
    let mid = ex.p("machine_id").to_string();
    match op {
        "Machines_list" => {
            for m in app.machines.values_mut() {
                settle(m);
            }
            Reply::Json(
                200,
                Value::Array(app.machines.values().map(machine_json).collect()),
            )
        }
        "Machines_create" | "Machines_update" => {
            let config = b["config"].clone();
            if config["image"].as_str().unwrap_or("").is_empty() {
                return err(400, "config.image is required");
            }
            let region = match (b["region"].as_str(), app.machines.get(&mid)) {
                (Some(r), _) => r.to_string(),
                (None, Some(m)) => m.region.clone(),
                (None, None) => return err(400, "region is required in this fake"),
            };
            if op == "Machines_create" && full.contains(&region) {
                return Reply::Json(
                    422,
                    json!({"error": format!("insufficient resources available to fulfill request in {region}"),
                           "status": "insufficient_capacity"}),
                );
            }
            let id = if op == "Machines_create" {
                new_machine_id
            } else {
                mid.clone()
            };
            if op == "Machines_update" && !app.machines.contains_key(&id) {
                return err(404, "machine not found");
            }
            for mount in config["mounts"].as_array().into_iter().flatten() {
                let vid = mount["volume"].as_str().unwrap_or("");
                let Some(v) = app.volumes.get(vid) else {
                    return err(400, &format!("volume {vid} not found"));
                };
                if v.region != region {
                    return err(
                        400,
                        &format!("volume {vid} is in {}, not {region}", v.region),
                    );
                }
                if v.attached.as_deref().is_some_and(|a| a != id) {
                    return err(400, &format!("volume {vid} is attached to another machine"));
                }
            }
            for mount in config["mounts"].as_array().into_iter().flatten() {
                if let Some(v) = app.volumes.get_mut(mount["volume"].as_str().unwrap_or("")) {
                    v.attached = Some(id.clone());
                }
            }
            let created_at = format!("2024-01-01T00:00:{:02}Z", app.machines.len());
            let m = FakeMachine {
                id: id.clone(),
                name: b["name"].as_str().unwrap_or(&id).to_string(),
                region,
                state: if op == "Machines_create" {
                    "created".into()
                } else {
                    "replacing".into()
                },
                pending: Some("started".into()),
                config,
                instance_id: new_instance,
                private_ip: format!("fdaa:0:1:a7b:1::{}", app.machines.len() + 2),
                created_at: app
                    .machines
                    .get(&id)
                    .map(|m| m.created_at.clone())
                    .unwrap_or(created_at),
            };
            let j = machine_json(&m);
            app.machines.insert(id, m);
            Reply::Json(200, j)
        }
        "Machines_show" => match app.machines.get_mut(&mid) {
            Some(m) => {
                settle(m);
                Reply::Json(200, machine_json(m))
            }
            None => err(404, "machine not found"),
        },
        "Machines_start" | "Machines_stop" | "Machines_suspend" => {
            let Some(m) = app.machines.get_mut(&mid) else {
                return err(404, "machine not found");
            };
            settle(m);
            let (from, to): (&[&str], &str) = match op {
                "Machines_start" => (&["stopped", "suspended", "created"], "started"),
                "Machines_stop" => (&["started", "suspended"], "stopped"),
                _ => (&["started"], "suspended"),
            };
            if !from.contains(&m.state.as_str()) {
                return err(412, &format!("machine is {}; cannot go to {to}", m.state));
            }
            m.state = match to {
                "started" => "starting",
                "stopped" => "stopping",
                _ => "suspending",
            }
            .into();
            m.pending = Some(to.into());
            Reply::Empty(200)
        }
        "Machines_wait" => {
            let Some(m) = app.machines.get_mut(&mid) else {
                return err(404, "machine not found");
            };
            settle(m);
            let want = ex.q("state").unwrap_or("started");
            if m.state == want {
                Reply::Json(200, json!({"ok": true}))
            } else {
                // The real API holds the request until its timeout; the fake gives up at once.
                Reply::Json(
                    408,
                    json!({"error": format!("deadline exceeded waiting for {want}; machine is {}", m.state)}),
                )
            }
        }
        "Machines_delete" => {
            let Some(m) = app.machines.get_mut(&mid) else {
                return err(404, "machine not found");
            };
            settle(m);
            if !matches!(m.state.as_str(), "stopped" | "created" | "failed") {
                return err(
                    412,
                    &format!(
                        "unable to destroy machine, not currently stopped (it is {})",
                        m.state
                    ),
                );
            }
            app.machines.remove(&mid);
            for v in app.volumes.values_mut() {
                if v.attached.as_deref() == Some(mid.as_str()) {
                    v.attached = None;
                }
            }
            Reply::Empty(200)
        }
        "Volumes_list" => Reply::Json(
            200,
            Value::Array(app.volumes.values().map(volume_json).collect()),
        ),
        "Volumes_create" => {
            let region = b["region"].as_str().unwrap_or("").to_string();
            let name = b["name"].as_str().unwrap_or("").to_string();
            if region.is_empty() || name.is_empty() {
                return err(400, "name and region are required");
            }
            if full_volumes.contains(&region) {
                return err(
                    409,
                    &format!("failed to create volume in {region}: aborted: no capacity"),
                );
            }
            let v = FakeVolume {
                id: new_volume_id.clone(),
                name,
                region,
                size_gb: b["size_gb"].as_u64().unwrap_or(1),
                attached: None,
            };
            let j = volume_json(&v);
            app.volumes.insert(new_volume_id, v);
            Reply::Json(200, j)
        }
        "Volume_delete" => {
            let vid = ex.p("volume_id").to_string();
            match app.volumes.get(&vid) {
                None => err(404, "volume not found"),
                Some(v) if v.attached.is_some() => err(412, "volume is attached to a machine"),
                Some(_) => {
                    let v = app
                        .volumes
                        .remove(&vid)
                        .map(|v| volume_json(&v))
                        .unwrap_or(Value::Null);
                    Reply::Json(200, v)
                }
            }
        }
        other => err(501, &format!("the fake does not implement {other}")),
    }
}
