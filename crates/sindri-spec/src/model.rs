//! The typed model of `sindri.yaml`.
//!
//! Every struct denies unknown fields: a misspelled key is an error with a "did you
//! mean", never silently ignored. Field names are snake_case throughout. Doc comments
//! here become the descriptions in the generated JSON Schema, so they are written for
//! the person editing the file.
//!
//! `build.rs` compiles this file (with `quantity.rs`) to generate the schema table the
//! loader walks, so it may only use `crate::quantity`, serde, schemars and std.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::{ByteSize, Cpus, DurationValue, PortMapping};

/// A sindri environment: what to run, where, and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name of the environment. A DNS label: lowercase letters, digits and `-`,
    /// starting with a letter, at most 63 characters. Every resource sindri creates
    /// is named and labelled after it.
    #[schemars(
        regex(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub name: String,

    /// Where and how the environment runs.
    pub deployment: DeploymentSpec,

    /// Secrets resolved at deploy time and handed to the platform's secret mechanism.
    /// Their values never appear in state, labels, plan output or logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,

    /// Tools installed into the environment after it is ready.
    #[serde(default, skip_serializing_if = "ExtensionsSpec::is_empty")]
    pub extensions: ExtensionsSpec,

    /// Per-provider settings. Only the section of the selected provider is used.
    #[serde(default, skip_serializing_if = "ProvidersSpec::is_empty")]
    pub providers: ProvidersSpec,

    /// A batch or training job for `sindri run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSpec>,
}

/// The platforms sindri can deploy to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The local Docker Engine (or any engine `DOCKER_HOST` points at).
    Docker,
    /// A Kubernetes cluster from the current kubeconfig.
    Kubernetes,
    /// Fly.io Machines.
    Fly,
    /// E2B sandboxes.
    E2b,
    /// Any cloud through DevPod.
    Devpod,
    /// AWS EC2, on-demand or spot.
    Aws,
    /// RunPod GPU pods.
    Runpod,
    /// Lyceum GPU VMs.
    Lyceum,
    /// This machine, without isolation (runs only).
    Local,
}

impl ProviderKind {
    /// Every provider kind, in the order they are documented.
    pub const ALL: [ProviderKind; 9] = [
        ProviderKind::Docker,
        ProviderKind::Kubernetes,
        ProviderKind::Fly,
        ProviderKind::E2b,
        ProviderKind::Devpod,
        ProviderKind::Aws,
        ProviderKind::Runpod,
        ProviderKind::Lyceum,
        ProviderKind::Local,
    ];

    /// The name used in `sindri.yaml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Docker => "docker",
            ProviderKind::Kubernetes => "kubernetes",
            ProviderKind::Fly => "fly",
            ProviderKind::E2b => "e2b",
            ProviderKind::Devpod => "devpod",
            ProviderKind::Aws => "aws",
            ProviderKind::Runpod => "runpod",
            ProviderKind::Lyceum => "lyceum",
            ProviderKind::Local => "local",
        }
    }

    /// Parses a provider name as written in `sindri.yaml`.
    pub fn parse(s: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::parse(s).ok_or_else(|| {
            let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown provider `{s}`; expected one of: {}",
                names.join(", ")
            )
        })
    }
}

/// Where the environment runs and what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// The provider that runs the environment.
    pub provider: ProviderKind,

    /// Image to run, e.g. `ubuntu:24.04`, or an AMI id for `aws`. Either `image` or
    /// `build` must be given (except for providers that choose their own image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Build the image from a Dockerfile instead of pulling `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,

    /// CPU, memory, disk and GPU.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,

    /// Ports to publish: `8080`, `"8080:80"`, `"5353:53/udp"` or
    /// `{container: 80, host: 8080, protocol: tcp}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,

    /// Environment variables set in the environment. Values are plain text; use
    /// `secrets` for anything sensitive.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,

    /// Extra persistent volumes. The home directory is always persistent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,

    /// The user's home directory inside the environment, kept on a persistent volume.
    #[serde(default = "default_home", skip_serializing_if = "is_default_home")]
    pub home: String,
}

fn default_home() -> String {
    "/root".to_string()
}

fn is_default_home(h: &String) -> bool {
    h == "/root"
}

/// How to build the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Path of the Dockerfile, relative to the config file's directory.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Build context directory, relative to the config file's directory.
    #[serde(default = "default_context")]
    pub context: String,
    /// Build arguments (`ARG` values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Build stage to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn default_dockerfile() -> String {
    "Dockerfile".to_string()
}

fn default_context() -> String {
    ".".to_string()
}

/// Compute resources. Providers map these onto their own sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores, e.g. `2` or `0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Memory, e.g. `2GiB` or `512MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Disk for the home volume, e.g. `20GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
}

impl Resources {
    /// True when no resource is requested.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// A GPU request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Number of GPUs, at least 1.
    #[schemars(range(min = 1))]
    pub count: u32,
    /// GPU model, e.g. `a100`, `h100`, `l40s`, `nvidia-tesla-t4`. Providers map it onto
    /// their own names; leave it out to accept any.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An extra persistent volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// Volume name, a DNS label; the provider prefixes it with the environment name.
    #[schemars(regex(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: String,
    /// Absolute mount path inside the environment.
    pub path: String,
    /// Size, for providers that size volumes (e.g. `10GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
}

/// A secret: where its value comes from and how the environment receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Name of the secret; also the environment variable it is exposed as, unless
    /// `mount` is given. Letters, digits and `_`, not starting with a digit.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// Where the value is read from at deploy time.
    pub source: SecretSource,
    /// `source: env`: the variable to read on this machine (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// `source: file`: the file to read, relative to the config file's directory.
    /// `source: vault`: the secret's path, e.g. `secret/data/myapp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `source: vault`: the key inside the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Expose the secret as a file at this absolute path instead of an environment
    /// variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// Fail the deploy if the value cannot be read (default true). When false, a
    /// missing value is skipped with a warning.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable of the machine running sindri.
    Env,
    /// A file on the machine running sindri.
    File,
    /// HashiCorp Vault or OpenBao (`VAULT_ADDR`, `VAULT_TOKEN`).
    Vault,
}

/// Extensions (tools) to install.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionsSpec {
    /// A named profile, a curated set of extensions (e.g. `minimal`, `python`, `ml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Extensions installed in addition to the profile's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Extra directories of extension manifests, relative to the config file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl ExtensionsSpec {
    /// True when nothing is requested.
    pub fn is_empty(&self) -> bool {
        *self == ExtensionsSpec::default()
    }
}

/// Per-provider settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSpec {
    /// Docker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSettings>,
    /// Kubernetes settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSettings>,
    /// Fly.io settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fly: Option<FlySettings>,
    /// E2B settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2b: Option<E2bSettings>,
    /// DevPod settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devpod: Option<DevpodSettings>,
    /// AWS EC2 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    /// RunPod settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runpod: Option<RunpodSettings>,
    /// Lyceum settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyceum: Option<LyceumSettings>,
    /// Local settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSettings>,
}

impl ProvidersSpec {
    /// True when no provider section is present.
    pub fn is_empty(&self) -> bool {
        *self == ProvidersSpec::default()
    }
}

/// How the container reaches a Docker engine of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DindMode {
    /// No Docker inside the environment.
    #[default]
    None,
    /// Mount the host's Docker socket (the environment controls the host's engine).
    Socket,
    /// Run a privileged container that can start its own engine.
    Privileged,
    /// Use the sysbox runtime: an isolated engine without `--privileged`.
    Sysbox,
}

/// `providers.docker`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerSettings {
    /// Engine address; default: `DOCKER_HOST`, then the current docker context, then
    /// the local socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Docker-in-Docker mode.
    #[serde(default)]
    pub dind: DindMode,
    /// Network to attach to; default: a network of the environment's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Container runtime, e.g. `runc` or `sysbox-runc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// A Kubernetes toleration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    /// Taint key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// `providers.kubernetes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// kubeconfig context; default: the current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace; default: the context's namespace, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Storage class of the home volume; default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Node selector for the pod (e.g. to land on GPU nodes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Service type for ports: `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
}

/// When Fly stops an idle machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoStop {
    /// Never stop automatically.
    #[default]
    Off,
    /// Stop when idle.
    Stop,
    /// Suspend (snapshot memory) when idle.
    Suspend,
}

/// `providers.fly`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlySettings {
    /// App name; default: the environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Organization slug; default `personal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Regions in order of preference; on a capacity error the next is tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// `shared` or `performance` CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_kind: Option<String>,
    /// Stop or suspend the machine when idle.
    #[serde(default)]
    pub auto_stop: AutoStop,
    /// How long deploy, start and stop wait for the machine to reach its state, e.g.
    /// `10m`; default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<DurationValue>,
}

/// `providers.e2b`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct E2bSettings {
    /// Sandbox template id or alias; default `base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Sandbox lifetime, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
    /// Pause instead of kill when the timeout is reached.
    #[serde(default)]
    pub auto_pause: bool,
}

/// `providers.devpod`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevpodSettings {
    /// DevPod provider to use (e.g. `aws`, `gcloud`, `ssh`); default: DevPod's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// IDE to open, or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ide: Option<String>,
    /// Provider options passed as `--provider-option KEY=VALUE`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// Spot capacity policy: `never`, `always` or `auto`; `true` is `always` and `false`
/// is `never`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpotPolicy {
    /// On-demand only.
    #[default]
    Never,
    /// Spot only; fail rather than fall back to on-demand.
    Always,
    /// Try spot; fall back to on-demand, saying so.
    Auto,
}

impl SpotPolicy {
    /// The policies' names, as written in sindri.yaml.
    pub const NAMES: [&'static str; 3] = ["never", "always", "auto"];
}

impl<'de> Deserialize<'de> for SpotPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SpotPolicy, D::Error> {
        struct Policy;
        impl serde::de::Visitor<'_> for Policy {
            type Value = SpotPolicy;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of `never`, `always`, `auto`, or `true` or `false`")
            }

            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<SpotPolicy, E> {
                Ok(if b {
                    SpotPolicy::Always
                } else {
                    SpotPolicy::Never
                })
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SpotPolicy, E> {
                match s {
                    "never" => Ok(SpotPolicy::Never),
                    "always" => Ok(SpotPolicy::Always),
                    "auto" => Ok(SpotPolicy::Auto),
                    other => Err(E::unknown_variant(other, &SpotPolicy::NAMES)),
                }
            }
        }
        d.deserialize_any(Policy)
    }
}

impl JsonSchema for SpotPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SpotPolicy".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Spot capacity policy: `never`, `always` or `auto`; `true` is `always` and `false` is `never`.",
            "anyOf": [
                {
                    "oneOf": [
                        {"type": "string", "const": "never", "description": "On-demand only."},
                        {"type": "string", "const": "always", "description": "Spot only; fail rather than fall back to on-demand."},
                        {"type": "string", "const": "auto", "description": "Try spot; fall back to on-demand, saying so."}
                    ]
                },
                {"type": "boolean", "description": "`true` is `always`, `false` is `never`."}
            ]
        })
    }
}

/// `providers.aws`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Region; default: from the AWS config chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Named profile from `~/.aws/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Instance type; default: derived from `deployment.resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Spot policy: `never` (on-demand; also `false`), `always` (spot only, never a
    /// silent fall back; also `true`) or `auto` (spot, then on-demand on capacity
    /// errors, with a warning).
    #[serde(default)]
    pub spot: SpotPolicy,
    /// Subnet to launch in; default: the default VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// SSH public key file; default `~/.ssh/id_ed25519.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// The only source address admitted to SSH and the published ports, e.g.
    /// `203.0.113.7/32`; default: this machine's public address. `0.0.0.0/0` opens
    /// them to everyone (with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_cidr: Option<String>,
}

/// `providers.runpod`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunpodSettings {
    /// GPU types in order of preference, e.g. `NVIDIA GeForce RTX 4090`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_types: Vec<String>,
    /// `SECURE` or `COMMUNITY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_type: Option<String>,
    /// Interruptible (spot) pods.
    #[serde(default)]
    pub spot: bool,
    /// Container disk, e.g. `20GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_disk: Option<ByteSize>,
    /// Network volume to attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_volume_id: Option<String>,
    /// SSH public key file sent to the pod; default `~/.ssh/id_ed25519.pub`, then
    /// `~/.ssh/id_rsa.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
}

/// `providers.lyceum`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LyceumSettings {
    /// Hardware profile: `a100`, `b200`, `b300`, `h100`, `h200` or `l40s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_profile: Option<String>,
    /// Spot instances.
    #[serde(default)]
    pub spot: bool,
    /// SSH public key file; default `~/.ssh/id_ed25519.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// Let a run's VM delete itself when its job ends and no sindri follows it
    /// (`sindri run --detach`, a closed laptop), so it stops billing (default true).
    /// Lyceum has no stop and no VM-scoped key: this puts your Lyceum API key on the
    /// VM, in a file only its user can read. `false` keeps the key off the VM; the VM
    /// then bills until `sindri destroy`, or until a sindri that follows the run
    /// applies `run.on_finish`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub self_destroy: bool,
}

impl Default for LyceumSettings {
    fn default() -> LyceumSettings {
        LyceumSettings {
            hardware_profile: None,
            spot: false,
            ssh_public_key: None,
            self_destroy: true,
        }
    }
}

/// `providers.local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Run in the project directory itself instead of a copy of it.
    #[serde(default)]
    pub in_place: bool,
}

/// What happens to the environment when a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFinish {
    /// Leave it running.
    Keep,
    /// Stop it (keeps disks; stops compute billing).
    Stop,
    /// Destroy it.
    Destroy,
}

/// A command: a shell line (`"python train.py --epochs 3"`) or an argument list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    /// Run through `sh -c`.
    Shell(String),
    /// Run as is, without a shell.
    Argv(Vec<String>),
}

impl CommandLine {
    /// The argument vector to execute.
    pub fn to_argv(&self) -> Vec<String> {
        match self {
            CommandLine::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            CommandLine::Argv(v) => v.clone(),
        }
    }
}

/// `run`: a batch or training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The command to run.
    pub command: CommandLine,
    /// Local directory synced to the environment, relative to the config file.
    #[serde(default = "default_context")]
    pub workdir: String,
    /// Extra gitignore-style patterns left out of the sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Paths (relative to the workdir) copied back when the run ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// Directory (relative to the workdir) where the job writes checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<String>,
    /// Where checkpoints are uploaded, e.g. `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_store: Option<String>,
    /// What to do with the environment when the run ends; default: `stop` for cloud
    /// providers, `keep` for docker and local. On aws, runpod and lyceum the machine
    /// applies it to itself when no sindri follows the run (`--detach`, a closed
    /// laptop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_finish: Option<OnFinish>,
    /// Hard limit enforced on the machine itself, e.g. `12h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<DurationValue>,
    /// How many times a run whose spot machine is reclaimed (AWS) is relaunched on a
    /// new one and resumed from its last checkpoint, while `sindri run` follows it; at
    /// most 100.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(max = 100))]
    pub max_restarts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
