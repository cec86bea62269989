//! The calls sindri makes to the Fly Machines API (`/v1`), typed.
//!
//! Each call follows the published OpenAPI description
//! (superfly/fly-openapi-sdk), plus what the live API has and that copy predates:
//! `POST /apps/{app}/machines/{id}/suspend` (same shape as `/stop`), exec's `stdin`
//! and its `{exit_code, stdout, stderr}` answer, `guest.gpus`, and
//! `services[].autostop` as a string (docs/adr/0009: superfly/fly-go's types).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sindri_core::{ErrorKind, Result};

use crate::http::{ApiFailure, HttpClient};

/// Machine metadata sindri sets besides the ownership labels: the spec hash.
pub const META_SPEC_HASH: &str = "sindri.spec-hash";
/// Machine metadata saying sindri created the app (so `destroy` may delete it).
pub const META_APP_CREATED: &str = "sindri.app-created";

/// An app as `GET /apps/{app}` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct App {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Status, e.g. `deployed`, `pending`.
    #[serde(default)]
    pub status: Option<String>,
}

/// A machine.
#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `created`, `starting`, `started`, `stopping`, `stopped`, `suspending`,
    /// `suspended`, `replacing`, `destroying`, `destroyed`, `failed`.
    #[serde(default)]
    pub state: String,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// Changes with every config version.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The 6PN (private IPv6) address.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// The config, kept as sent so an update changes only what sindri means to.
    #[serde(default)]
    pub config: Value,
    /// When created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Machine {
    /// A metadata value from the machine's config.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.config.get("metadata")?.get(key)?.as_str()
    }

    /// The volume ids the machine mounts.
    pub fn volume_ids(&self) -> Vec<String> {
        self.config
            .get("mounts")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m.get("volume").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The image the machine runs.
    pub fn image(&self) -> Option<&str> {
        self.config.get("image")?.as_str()
    }

    /// Whether the machine is gone or going.
    pub fn is_destroyed(&self) -> bool {
        matches!(self.state.as_str(), "destroyed" | "destroying")
    }
}

/// A volume.
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    /// Id.
    pub id: String,
    /// Name (not unique).
    #[serde(default)]
    pub name: String,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// `created`, `destroyed`, ...
    #[serde(default)]
    pub state: Option<String>,
    /// The machine it is attached to.
    #[serde(default)]
    pub attached_machine_id: Option<String>,
    /// Size.
    #[serde(default)]
    pub size_gb: Option<u64>,
}

impl Volume {
    /// Whether the volume is gone or going.
    pub fn is_destroyed(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("destroyed" | "destroying" | "pending_destroy")
        )
    }
}

/// What a command run through exec returned.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecResult {
    /// Exit code; absent means 0 (the API omits zero values).
    #[serde(default)]
    pub exit_code: i32,
    /// Stdout as text.
    #[serde(default)]
    pub stdout: Option<String>,
    /// Stderr as text.
    #[serde(default)]
    pub stderr: Option<String>,
}

#[derive(Deserialize)]
struct ListApps {
    #[serde(default)]
    apps: Vec<ListedApp>,
}

#[derive(Deserialize)]
struct ListedApp {
    #[serde(default)]
    name: Option<String>,
}

/// Fly's own reading of errors, over the generic status mapping: the `status` code
/// of an error body (`insufficient_capacity`, `volume_placement_capacity`,
/// `name_taken`), a taken app name ("Name has already been taken", a 422 that would
/// otherwise read as invalid input), then the resource phrases flyd uses when a host
/// or region is full.
pub fn classify(f: &ApiFailure<'_>) -> Option<ErrorKind> {
    let code = f
        .json
        .and_then(|j| j.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match code {
        "insufficient_capacity" | "volume_placement_capacity" => return Some(ErrorKind::Capacity),
        "name_taken" => return Some(ErrorKind::Conflict),
        _ => {}
    }
    let text = f.message.unwrap_or(f.body);
    // App names are global: flaps answers a taken one with 422 and these words.
    if text.contains("already been taken") {
        return Some(ErrorKind::Conflict);
    }
    let full = [
        "insufficient resources",
        "insufficient CPUs",
        "insufficient memory",
        "insufficient IPs",
        "no capacity",
    ];
    if full.iter().any(|p| text.contains(p)) {
        return Some(ErrorKind::Capacity);
    }
    None
}

/// The Machines API, reached through the shared HTTP client.
#[derive(Debug, Clone)]
pub struct FlyApi {
    http: HttpClient,
}

impl FlyApi {
    /// Wraps a client whose base URL ends in `/v1`.
    pub fn new(http: HttpClient) -> FlyApi {
        FlyApi { http }
    }

    /// The client, for registering secrets to redact.
    pub fn http_mut(&mut self) -> &mut HttpClient {
        &mut self.http
    }

    /// The app, or `None`.
    pub async fn app(&self, app: &str) -> Result<Option<App>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/apps/{app}"))
                    .accept(404)
                    .what(format!("read app `{app}`")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        r.json().await.map(Some)
    }

    /// Creates an app in an organization.
    pub async fn create_app(&self, app: &str, org: &str) -> Result<()> {
        self.http
            .send(
                self.http
                    .post("/apps")
                    .json(&json!({"app_name": app, "org_slug": org}))
                    .what(format!("create app `{app}` in organization `{org}`")),
            )
            .await?;
        Ok(())
    }

    /// Deletes an app (its machines and volumes go with it). Gone already is fine.
    pub async fn delete_app(&self, app: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/apps/{app}"))
                    .accept(404)
                    .what(format!("delete app `{app}`")),
            )
            .await?;
        Ok(r.status() != 404)
    }

    /// The names of an organization's apps.
    pub async fn list_apps(&self, org: &str) -> Result<Vec<String>> {
        let l: ListApps = self
            .http
            .json(
                self.http
                    .get("/apps")
                    .query("org_slug", org)
                    .what(format!("list the apps of organization `{org}`")),
            )
            .await?;
        Ok(l.apps.into_iter().filter_map(|a| a.name).collect())
    }

    /// The app's machines (not destroyed ones); an app that does not exist has none.
    pub async fn machines(&self, app: &str) -> Result<Vec<Machine>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/apps/{app}/machines"))
                    .accept(404)
                    .what(format!("list the machines of app `{app}`")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(Vec::new());
        }
        let all: Vec<Machine> = r.json().await?;
        Ok(all.into_iter().filter(|m| !m.is_destroyed()).collect())
    }

    /// A machine, or `None` when it (or its app) does not exist or is destroyed.
    pub async fn machine(&self, app: &str, id: &str) -> Result<Option<Machine>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/apps/{app}/machines/{id}"))
                    .accept(404)
                    .what(format!("read machine {id} of app `{app}`")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        let m: Machine = r.json().await?;
        Ok((!m.is_destroyed()).then_some(m))
    }

    /// Creates a machine.
    pub async fn create_machine(&self, app: &str, region: &str, body: &Value) -> Result<Machine> {
        self.http
            .json(
                self.http
                    .post(&format!("/apps/{app}/machines"))
                    .json(body)
                    .what(format!(
                        "create a machine for app `{app}` in region {region}"
                    )),
            )
            .await
    }

    /// Replaces a machine's config (the machine restarts with it).
    pub async fn update_machine(&self, app: &str, id: &str, body: &Value) -> Result<Machine> {
        self.http
            .json(
                self.http
                    .post(&format!("/apps/{app}/machines/{id}"))
                    .json(body)
                    .what(format!("update machine {id} of app `{app}`")),
            )
            .await
    }

    /// `start`, `stop` or `suspend`.
    pub async fn action(&self, app: &str, id: &str, action: &str) -> Result<()> {
        let mut req = self
            .http
            .post(&format!("/apps/{app}/machines/{id}/{action}"))
            // Asking a machine to reach a state twice is harmless.
            .idempotent(true)
            .what(format!("{action} machine {id} of app `{app}`"));
        if action == "stop" {
            req = req.json(&json!({}));
        }
        self.http.send(req).await?;
        Ok(())
    }

    /// Waits (server side, at most `timeout`) for the machine to reach `state`
    /// (`started`, `stopped` or `destroyed`). False when the API gave up first (408).
    pub async fn wait(
        &self,
        app: &str,
        id: &str,
        state: &str,
        instance_id: Option<&str>,
        timeout: Duration,
    ) -> Result<bool> {
        let secs = timeout.as_secs().clamp(1, 60);
        let mut req = self
            .http
            .get(&format!("/apps/{app}/machines/{id}/wait"))
            .query("state", state)
            .query("timeout", &secs.to_string())
            .accept(408)
            .timeout(Duration::from_secs(secs + 15))
            .what(format!(
                "wait for machine {id} of app `{app}` to be {state}"
            ));
        if let Some(i) = instance_id {
            req = req.query("instance_id", i);
        }
        let r = self.http.send(req).await?;
        Ok(r.status() != 408)
    }

    /// Deletes a (stopped) machine. False when it was already gone.
    pub async fn delete_machine(&self, app: &str, id: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/apps/{app}/machines/{id}"))
                    .accept(404)
                    .what(format!("delete machine {id} of app `{app}`")),
            )
            .await?;
        Ok(r.status() != 404)
    }

    /// The app's volumes (not destroyed ones).
    pub async fn volumes(&self, app: &str) -> Result<Vec<Volume>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/apps/{app}/volumes"))
                    .accept(404)
                    .what(format!("list the volumes of app `{app}`")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(Vec::new());
        }
        let all: Vec<Volume> = r.json().await?;
        Ok(all.into_iter().filter(|v| !v.is_destroyed()).collect())
    }

    /// Creates a volume.
    pub async fn create_volume(
        &self,
        app: &str,
        name: &str,
        region: &str,
        size_gb: u64,
    ) -> Result<Volume> {
        self.http
            .json(
                self.http
                    .post(&format!("/apps/{app}/volumes"))
                    .json(&json!({"name": name, "region": region, "size_gb": size_gb, "encrypted": true}))
                    .what(format!("create volume `{name}` ({size_gb} GB) for app `{app}` in region {region}")),
            )
            .await
    }

    /// Deletes a volume. False when it was already gone.
    pub async fn delete_volume(&self, app: &str, id: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/apps/{app}/volumes/{id}"))
                    .accept(404)
                    .what(format!("delete volume {id} of app `{app}`")),
            )
            .await?;
        Ok(r.status() != 404)
    }

    /// Runs a command to its end and returns its output.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        argv: &[String],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecResult> {
        let mut body = BTreeMap::new();
        body.insert("command", json!(argv));
        body.insert("timeout", json!(timeout.as_secs()));
        if let Some(s) = stdin {
            body.insert("stdin", json!(s));
        }
        self.http
            .json(
                self.http
                    .post(&format!("/apps/{app}/machines/{id}/exec"))
                    .json(&body)
                    .timeout(timeout + Duration::from_secs(30))
                    .what(format!("run a command on machine {id} of app `{app}`")),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure<'a>(status: u16, body: &'a str, json: Option<&'a Value>) -> ApiFailure<'a> {
        ApiFailure {
            status,
            body,
            json,
            message: json.and_then(|j| j.get("error")).and_then(Value::as_str),
        }
    }

    #[test]
    fn capacity_is_read_from_the_status_code_and_flyd_phrases() {
        let j = json!({"error": "no room", "status": "insufficient_capacity"});
        assert_eq!(
            classify(&failure(422, "", Some(&j))),
            Some(ErrorKind::Capacity)
        );
        let j = json!({"error": "could not reserve resource for machine: insufficient memory available to fulfill request"});
        assert_eq!(
            classify(&failure(409, "", Some(&j))),
            Some(ErrorKind::Capacity)
        );
        let j = json!({"error": "aborted: no capacity"});
        assert_eq!(
            classify(&failure(409, "", Some(&j))),
            Some(ErrorKind::Capacity)
        );
        let j = json!({"error": "taken", "status": "name_taken"});
        assert_eq!(
            classify(&failure(422, "", Some(&j))),
            Some(ErrorKind::Conflict)
        );
        let j = json!({"error": "Name has already been taken"});
        assert_eq!(
            classify(&failure(422, "", Some(&j))),
            Some(ErrorKind::Conflict)
        );
        let j = json!({"error": "image not found"});
        assert_eq!(classify(&failure(422, "", Some(&j))), None);
    }
}
