//! The records that flow between providers, the state store and the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sindri_spec::ProviderKind;

/// Where a deployment is in its life, as sindri last recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Recorded before the first resource is created; an interrupted deploy stays here
    /// so the next command finds and finishes or cleans it.
    Creating,
    /// Deployed and ready.
    Ready,
    /// Stopped by sindri.
    Stopped,
    /// Suspended by sindri.
    Suspended,
    /// The last deploy failed part way.
    Failed,
    /// Being destroyed.
    Destroying,
}

impl DeploymentState {
    /// The state's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Creating => "creating",
            DeploymentState::Ready => "ready",
            DeploymentState::Stopped => "stopped",
            DeploymentState::Suspended => "suspended",
            DeploymentState::Failed => "failed",
            DeploymentState::Destroying => "destroying",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<DeploymentState> {
        [
            DeploymentState::Creating,
            DeploymentState::Ready,
            DeploymentState::Stopped,
            DeploymentState::Suspended,
            DeploymentState::Failed,
            DeploymentState::Destroying,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A deployed (or deploying) environment: what sindri needs to find it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The environment name (`name` in sindri.yaml).
    pub name: String,
    /// The provider that runs it.
    pub provider: ProviderKind,
    /// Identifies the project directory; part of every resource's labels.
    pub project: String,
    /// The platform's id of the main resource (container id, machine id, pod id,
    /// instance id), once known.
    pub resource_id: Option<String>,
    /// Hash of the resolved spec that was deployed; a changed hash means redeploy.
    pub spec_hash: String,
    /// The recorded lifecycle state.
    pub state: DeploymentState,
    /// Provider-specific facts needed by later calls (app name, region, volume ids,
    /// SSH address). Never secrets.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// Unix seconds when first recorded.
    pub created_at: i64,
    /// Unix seconds when last changed.
    pub updated_at: i64,
}

impl Deployment {
    /// A fresh record in the `creating` state.
    pub fn creating(
        name: &str,
        provider: ProviderKind,
        project: &str,
        spec_hash: &str,
    ) -> Deployment {
        let now = unix_now();
        Deployment {
            name: name.to_string(),
            provider,
            project: project.to_string(),
            resource_id: None,
            spec_hash: spec_hash.to_string(),
            state: DeploymentState::Creating,
            details: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// A provider-specific detail.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details.get(key).map(String::as_str)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The platform's view of an environment, read live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    /// Running and usable.
    Running,
    /// Being created or starting.
    Starting,
    /// Stopped; disks kept.
    Stopped,
    /// Suspended; memory snapshot kept.
    Suspended,
    /// Failed or crashed.
    Failed,
    /// The platform has no such environment.
    Missing,
}

impl StatusState {
    /// The state's name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Running => "running",
            StatusState::Starting => "starting",
            StatusState::Stopped => "stopped",
            StatusState::Suspended => "suspended",
            StatusState::Failed => "failed",
            StatusState::Missing => "missing",
        }
    }
}

/// A way to reach the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// What it is, e.g. `port 8080/tcp` or `ssh`.
    pub name: String,
    /// Address, e.g. `http://127.0.0.1:8080` or `ssh://root@1.2.3.4:22`.
    pub address: String,
}

/// What the platform says about an environment right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The live state.
    pub state: StatusState,
    /// An explanation in words, especially for failures ("image not found", "no node
    /// with a free nvidia.com/gpu").
    pub message: Option<String>,
    /// Ways to reach it.
    pub endpoints: Vec<Endpoint>,
    /// What it costs per hour while in this state, in USD, when the platform says.
    pub cost_per_hour: Option<f64>,
    /// Other facts worth showing (image, region, resource id).
    pub details: BTreeMap<String, String>,
}

impl Status {
    /// A status with only a state.
    pub fn new(state: StatusState) -> Status {
        Status {
            state,
            message: None,
            endpoints: Vec::new(),
            cost_per_hour: None,
            details: BTreeMap::new(),
        }
    }
}

/// What a plan step would do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    /// Create a resource that does not exist.
    Create,
    /// Change a resource in place.
    Update,
    /// Remove and create again (data on kept volumes survives).
    Replace,
    /// Leave as is.
    Keep,
    /// Remove.
    Delete,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What would happen.
    pub action: PlanAction,
    /// The resource, e.g. `container sindri-dev`.
    pub resource: String,
    /// Why, when not obvious (e.g. `spec changed: image`).
    pub reason: Option<String>,
}

/// A platform file rendered from the spec, shown by `plan` and written by `export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedArtifact {
    /// File name, e.g. `docker-compose.yml`.
    pub name: String,
    /// File content.
    pub content: String,
}

/// What `deploy` would do, computed without changing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The provider.
    pub provider: ProviderKind,
    /// The environment.
    pub environment: String,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
    /// Rendered platform files, for review.
    pub artifacts: Vec<RenderedArtifact>,
}

impl Plan {
    /// True when deploy would change nothing.
    pub fn is_noop(&self) -> bool {
        self.steps.iter().all(|s| s.action == PlanAction::Keep)
    }
}
