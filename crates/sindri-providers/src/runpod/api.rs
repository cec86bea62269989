//! The calls sindri makes to RunPod's REST API (v1), typed, as the published
//! OpenAPI description (`runpod/docs api-reference/openapi.json`) declares them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

use crate::http::{ApiFailure, HttpClient, Method};

/// A pod, as `GET /pods/{podId}` describes it. Fields sindri does not read are left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Id.
    pub id: String,
    /// Name (not unique).
    #[serde(default)]
    pub name: Option<String>,
    /// `RUNNING`, `EXITED` or `TERMINATED`.
    #[serde(default)]
    pub desired_status: Option<String>,
    /// Public address; empty while the pod starts.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// Internal port to public port, e.g. `{"22": 10341}`; empty while the pod starts.
    #[serde(default)]
    pub port_mappings: Option<BTreeMap<String, u16>>,
    /// USD (RunPod credits) per hour.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub cost_per_hr: Option<f64>,
    /// The cost after savings plans.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub adjusted_cost_per_hr: Option<f64>,
    /// Environment variables, including sindri's markers.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// The image.
    #[serde(default)]
    pub image: Option<String>,
    /// The GPU attached.
    #[serde(default)]
    pub gpu: Option<PodGpu>,
    /// Spot.
    #[serde(default)]
    pub interruptible: Option<bool>,
    /// Where the pod volume is mounted.
    #[serde(default)]
    pub volume_mount_path: Option<String>,
    /// The pod volume's size.
    #[serde(default)]
    pub volume_in_gb: Option<u64>,
    /// The container disk's size.
    #[serde(default)]
    pub container_disk_in_gb: Option<u64>,
    /// Exposed ports, e.g. `22/tcp`.
    #[serde(default)]
    pub ports: Option<Vec<String>>,
    /// The host machine, when included.
    #[serde(default)]
    pub machine: Option<PodMachine>,
    /// When the pod last started (its container, and so its SSH host key, is new
    /// after every start).
    #[serde(default)]
    pub last_started_at: Option<String>,
    /// The last lifecycle event, in words.
    #[serde(default)]
    pub last_status_change: Option<String>,
}

/// The GPU of a pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodGpu {
    /// GPU type id.
    #[serde(default)]
    pub id: Option<String>,
    /// How many.
    #[serde(default)]
    pub count: Option<u32>,
    /// Name for people.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Where a pod runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMachine {
    /// Data center id.
    #[serde(default)]
    pub data_center_id: Option<String>,
    /// Location.
    #[serde(default)]
    pub location: Option<String>,
}

/// A number that some answers send as a string (`"0.74"`, as the description's own
/// example does).
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

impl Pod {
    /// An environment variable's value as text.
    pub fn env_var(&self, k: &str) -> Option<&str> {
        self.env.get(k).and_then(Value::as_str)
    }

    /// `RUNNING`, `EXITED`, `TERMINATED` (upper case), or empty when unknown.
    pub fn status(&self) -> &str {
        self.desired_status.as_deref().unwrap_or("")
    }

    /// Host and public port of SSH (internal port 22), once both are known.
    pub fn ssh_address(&self) -> Option<(String, u16)> {
        let ip = self
            .public_ip
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())?;
        let port = *self.port_mappings.as_ref()?.get("22")?;
        (port > 0).then(|| (ip.to_string(), port))
    }

    /// The name its SSH host key is remembered under: the pod id and when it last
    /// started. A pod's container disk (with `/etc/ssh`) is new after every start, so
    /// each start is trusted on first use; within one run a changed key is refused.
    pub fn host_key_alias(&self) -> String {
        let started: String = self
            .last_started_at
            .as_deref()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if started.is_empty() {
            format!("runpod-{}", self.id)
        } else {
            format!("runpod-{}-{started}", self.id)
        }
    }

    /// What it costs per hour: after savings plans when RunPod says, else the list price.
    pub fn cost(&self) -> Option<f64> {
        self.adjusted_cost_per_hr
            .filter(|c| *c > 0.0)
            .or(self.cost_per_hr)
    }
}

/// RunPod's reading of failures, over the generic status mapping: running out of
/// machines is said in words ("There are no longer any instances available with the
/// requested specifications", "not enough free GPUs on the host machine", "does not
/// have the resources to deploy"), whatever the status.
pub fn classify(f: &ApiFailure<'_>) -> Option<ErrorKind> {
    let text = f.message.unwrap_or(f.body).to_ascii_lowercase();
    let full = [
        "no longer any instances available",
        "no instances available",
        "not enough free gpus",
        "does not have the resources",
        "no gpus available",
        "insufficient capacity",
    ];
    if full.iter().any(|p| text.contains(p)) {
        return Some(ErrorKind::Capacity);
    }
    None
}

/// The REST API, through the shared HTTP client.
#[derive(Debug, Clone)]
pub struct RunpodApi {
    http: HttpClient,
}

impl RunpodApi {
    /// Wraps a client whose base URL ends in `/v1`.
    pub fn new(http: HttpClient) -> RunpodApi {
        RunpodApi { http }
    }

    /// The base URL, for messages.
    pub fn base(&self) -> String {
        self.http.base().to_string()
    }

    /// Pods, all or those named `name`, with their machine (for the data center).
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<Pod>> {
        let mut req = self
            .http
            .get("/pods")
            .query("includeMachine", "true")
            .what("list pods");
        if let Some(n) = name {
            req = req.query("name", n).what(format!("list pods named `{n}`"));
        }
        let pods: Option<Vec<Pod>> = self.http.json(req).await?;
        Ok(pods.unwrap_or_default())
    }

    /// The pod with its machine, or `None` when RunPod does not know it.
    pub async fn get(&self, id: &str) -> Result<Option<Pod>> {
        let r = self
            .http
            .send(
                self.http
                    .get(&format!("/pods/{id}"))
                    .query("includeMachine", "true")
                    .accept(404)
                    .what(format!("read pod {id}")),
            )
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        r.json().await
    }

    /// Creates a pod.
    pub async fn create(&self, body: &Value, what: &str) -> Result<Pod> {
        self.http
            .json(self.http.post("/pods").json(body).what(what.to_string()))
            .await
    }

    /// Changes a pod's image, env, ports or disks (RunPod resets it).
    pub async fn update(&self, id: &str, body: &Value) -> Result<Pod> {
        let r = self
            .http
            .send(
                self.http
                    .request(Method::PATCH, &format!("/pods/{id}"))
                    .json(body)
                    .idempotent(true)
                    .accept(400)
                    .what(format!("update pod {id}")),
            )
            .await?;
        if r.status() == 400 {
            return Err(bad_request(r, id).await);
        }
        r.json().await
    }

    /// `start` or `stop`.
    pub async fn action(&self, id: &str, action: &str) -> Result<()> {
        let r = self
            .http
            .send(
                self.http
                    .post(&format!("/pods/{id}/{action}"))
                    .idempotent(true)
                    .accept(400)
                    .what(format!("{action} pod {id}")),
            )
            .await?;
        if r.status() == 400 {
            return Err(bad_request(r, id).await);
        }
        Ok(())
    }

    /// Terminates a pod; false when it was already gone (RunPod answers an id it does
    /// not know with 400 "Invalid Pod ID", as its description declares, or 404).
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let r = self
            .http
            .send(
                self.http
                    .delete(&format!("/pods/{id}"))
                    .accept(400)
                    .accept(404)
                    .what(format!("terminate pod {id}")),
            )
            .await?;
        match r.status() {
            404 => Ok(false),
            400 => match bad_request(r, id).await {
                e if e.kind() == ErrorKind::NotFound => Ok(false),
                e => Err(e),
            },
            _ => Ok(true),
        }
    }
}

/// The error of a 400 answer about pod `id`: `NotFound` when it says RunPod does not
/// know the pod (the description's "Invalid Pod ID"), else `Invalid`.
async fn bad_request(r: crate::http::Response, id: &str) -> Error {
    let e = r.into_error(ErrorKind::Invalid).await;
    let text = e.message().to_ascii_lowercase();
    let unknown = ["invalid pod id", "not found", "does not exist", "no pod"]
        .iter()
        .any(|p| text.contains(p));
    if unknown {
        Error::new(ErrorKind::NotFound, e.message().to_string())
            .with_provider(ProviderKind::Runpod)
            .with_hint(format!(
                "RunPod no longer knows pod {id}; `sindri status` shows what is left"
            ))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_read_addresses_costs_and_markers() {
        let p: Pod = serde_json::from_value(json!({
            "id": "abc", "desiredStatus": "RUNNING", "publicIp": "203.0.113.5",
            "portMappings": {"22": 10341, "8888": 10342}, "costPerHr": "0.74",
            "adjustedCostPerHr": 0.69, "env": {"SINDRI_MANAGED": "true", "N": 3}
        }))
        .unwrap();
        assert_eq!(p.ssh_address(), Some(("203.0.113.5".into(), 10341)));
        assert_eq!(p.cost(), Some(0.69));
        assert_eq!(p.env_var("SINDRI_MANAGED"), Some("true"));
        assert_eq!(p.env_var("N"), None);
        let starting: Pod = serde_json::from_value(json!({
            "id": "abc", "desiredStatus": "RUNNING", "publicIp": null, "portMappings": null,
            "costPerHr": 0.74
        }))
        .unwrap();
        assert_eq!(starting.ssh_address(), None);
        assert_eq!(starting.cost(), Some(0.74));
    }

    #[test]
    fn capacity_is_read_from_the_words() {
        let f = ApiFailure {
            status: 500,
            body: "",
            json: None,
            message: Some(
                "create pod: There are no longer any instances available with the requested specifications. Please refresh and try again.",
            ),
        };
        assert_eq!(classify(&f), Some(ErrorKind::Capacity));
        let other = ApiFailure {
            message: Some("invalid image"),
            ..f
        };
        assert_eq!(classify(&other), None);
    }
}
