//! A sindri spec as a RunPod pod: the create body, the GPU types to try, and the
//! markers that make the pod findable again.
//!
//! RunPod pods have no labels. sindri names every pod `sindri-<environment>` and puts
//! its ownership markers in the pod's `env` (which the API returns with the pod):
//! `SINDRI_MANAGED=true`, `SINDRI_ENVIRONMENT`, `SINDRI_PROJECT`, `SINDRI_SPEC_HASH`
//! and `SINDRI_HARDWARE` (a hash of what cannot change without a new pod: GPU types
//! and count, cloud type, spot, network volume). A pod is sindri's only when its name
//! and its markers agree; nothing else is ever stopped, changed or terminated.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{Protocol, ProviderKind, RunpodSettings, Spec};

use super::api::Pod;

/// Marker: `true` on every pod sindri creates.
pub const MARK_MANAGED: &str = "SINDRI_MANAGED";
/// Marker: the environment's name.
pub const MARK_ENVIRONMENT: &str = "SINDRI_ENVIRONMENT";
/// Marker: the project id.
pub const MARK_PROJECT: &str = "SINDRI_PROJECT";
/// Marker: the hash of the deployed spec.
pub const MARK_SPEC_HASH: &str = "SINDRI_SPEC_HASH";
/// Marker: the hash of what only a new pod can change.
pub const MARK_HARDWARE: &str = "SINDRI_HARDWARE";

/// The image when `deployment.image` is not given: one of RunPod's own, which start
/// sshd with the key from `PUBLIC_KEY`.
pub const DEFAULT_IMAGE: &str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04";
/// The pod volume (mounted at `deployment.home`) without `resources.disk`.
pub const DEFAULT_VOLUME_GB: u64 = 20;
/// The container disk without `providers.runpod.container_disk`.
pub const DEFAULT_CONTAINER_DISK_GB: u64 = 20;
/// vCPUs of a CPU pod without `resources.cpus`.
pub const DEFAULT_CPU_PODS_VCPUS: u32 = 2;

/// Short GPU names (`resources.gpu.type`) and the RunPod GPU types they stand for, in
/// the order they are tried.
const GPU_ALIASES: &[(&str, &[&str])] = &[
    ("a100", &["NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"]),
    ("a100-sxm", &["NVIDIA A100-SXM4-80GB"]),
    ("a100-pcie", &["NVIDIA A100 80GB PCIe"]),
    (
        "h100",
        &[
            "NVIDIA H100 80GB HBM3",
            "NVIDIA H100 PCIe",
            "NVIDIA H100 NVL",
        ],
    ),
    ("h100-sxm", &["NVIDIA H100 80GB HBM3"]),
    ("h100-pcie", &["NVIDIA H100 PCIe"]),
    ("h100-nvl", &["NVIDIA H100 NVL"]),
    ("h200", &["NVIDIA H200", "NVIDIA H200 NVL"]),
    ("b200", &["NVIDIA B200"]),
    ("l40s", &["NVIDIA L40S"]),
    ("l40", &["NVIDIA L40"]),
    ("l4", &["NVIDIA L4"]),
    ("a40", &["NVIDIA A40"]),
    ("a30", &["NVIDIA A30"]),
    ("a6000", &["NVIDIA RTX A6000"]),
    ("a5000", &["NVIDIA RTX A5000"]),
    ("a4500", &["NVIDIA RTX A4500"]),
    ("a4000", &["NVIDIA RTX A4000"]),
    ("rtx6000-ada", &["NVIDIA RTX 6000 Ada Generation"]),
    ("rtx4000-ada", &["NVIDIA RTX 4000 Ada Generation"]),
    ("rtx5090", &["NVIDIA GeForce RTX 5090"]),
    ("rtx4090", &["NVIDIA GeForce RTX 4090"]),
    ("rtx3090", &["NVIDIA GeForce RTX 3090"]),
    ("t4", &["Tesla T4"]),
    (
        "v100",
        &[
            "Tesla V100-SXM2-32GB",
            "Tesla V100-PCIE-16GB",
            "Tesla V100-SXM2-16GB",
        ],
    ),
    ("mi300x", &["AMD Instinct MI300X OAM"]),
];

/// The pod name of an environment.
pub fn pod_name(env: &str) -> String {
    format!("sindri-{env}")
}

/// The GPU types to try, in order: `providers.runpod.gpu_types`, else those
/// `resources.gpu.type` stands for (a RunPod type id such as `NVIDIA L40S` is taken as
/// it is). Empty: a CPU pod.
pub fn gpu_types(spec: &Spec) -> Result<Vec<String>> {
    let settings = settings(spec);
    if !settings.gpu_types.is_empty() {
        return Ok(settings.gpu_types.clone());
    }
    let Some(gpu) = &spec.deployment.resources.gpu else {
        return Ok(Vec::new());
    };
    let Some(kind) = gpu.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) else {
        return Err(Error::invalid(
            "deployment.resources.gpu has no `type`, and RunPod needs to know which GPU to rent",
        )
        .with_provider(ProviderKind::Runpod)
        .with_hint(format!(
            "set deployment.resources.gpu.type (one of: {}) or list RunPod GPU type ids in providers.runpod.gpu_types",
            aliases()
        )));
    };
    if kind.contains(' ') {
        return Ok(vec![kind.to_string()]);
    }
    let key: String = kind
        .to_ascii_lowercase()
        .trim_start_matches("nvidia-")
        .trim_start_matches("tesla-")
        .replace(['_', ' '], "-");
    let key = key.replace("geforce-", "").replace("rtx-", "rtx");
    match GPU_ALIASES.iter().find(|(alias, _)| *alias == key) {
        Some((_, types)) => Ok(types.iter().map(|t| t.to_string()).collect()),
        None => Err(Error::invalid(format!(
            "deployment.resources.gpu.type `{kind}` is not a GPU sindri knows on RunPod"
        ))
        .with_provider(ProviderKind::Runpod)
        .with_hint(format!(
            "use one of: {}; or give RunPod's own type ids (e.g. `NVIDIA GeForce RTX 4090`) in providers.runpod.gpu_types",
            aliases()
        ))),
    }
}

fn aliases() -> String {
    GPU_ALIASES
        .iter()
        .map(|(a, _)| *a)
        .collect::<Vec<_>>()
        .join(", ")
}

fn settings(spec: &Spec) -> RunpodSettings {
    spec.providers.runpod.clone().unwrap_or_default()
}

/// A pod to create: the body without its GPU type, and the types to try.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// `sindri-<environment>`.
    pub name: String,
    /// GPU types in order; empty for a CPU pod.
    pub gpu_types: Vec<String>,
    /// GPUs per pod.
    pub gpu_count: u32,
    /// `SECURE`, `COMMUNITY`, or RunPod's default.
    pub cloud_type: Option<String>,
    /// Spot.
    pub interruptible: bool,
    /// The create body; [`PodSpec::body_for`] adds the GPU type.
    pub body: Value,
    /// The hardware fingerprint (see the module docs).
    pub hardware: String,
    /// Where the pod volume (and sindri's env file) lives.
    pub home: String,
}

impl PodSpec {
    /// The create body asking for GPU type `gpu` (none for a CPU pod).
    pub fn body_for(&self, gpu: Option<&str>) -> Value {
        let mut b = self.body.clone();
        if let Some(g) = gpu {
            b["gpuTypeIds"] = json!([g]);
        }
        b
    }

    /// The body of `PATCH /pods/{id}`: only what RunPod can change in place.
    pub fn update_body(&self) -> Value {
        let mut out = serde_json::Map::new();
        for k in [
            "name",
            "imageName",
            "env",
            "ports",
            "containerDiskInGb",
            "volumeInGb",
            "volumeMountPath",
        ] {
            if let Some(v) = self.body.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
        Value::Object(out)
    }

    /// Whether `pod` differs from this spec in something `PATCH` changes (image, env
    /// other than the spec-hash marker, ports, disks, mount path). A spec whose change
    /// is only in secrets needs no update, which would restart the pod.
    pub fn needs_update(&self, pod: &Pod) -> bool {
        let b = &self.body;
        let env_now: BTreeMap<&str, Option<&str>> = pod
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != MARK_SPEC_HASH)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let env_want: BTreeMap<&str, Option<&str>> = b["env"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != MARK_SPEC_HASH)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ports_want: Vec<&str> = b["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ports_now: Vec<&str> = pod.ports.iter().flatten().map(String::as_str).collect();
        env_now != env_want
            || pod.image.as_deref() != b["imageName"].as_str()
            || ports_now != ports_want
            || pod.container_disk_in_gb != b["containerDiskInGb"].as_u64()
            || pod.volume_mount_path.as_deref() != b["volumeMountPath"].as_str()
            || (b.get("volumeInGb").is_some() && pod.volume_in_gb != b["volumeInGb"].as_u64())
    }

    /// A few words on what is rented, e.g. `1x NVIDIA L40S, SECURE cloud, spot`.
    pub fn describe(&self, gpu: Option<&str>) -> String {
        let mut parts = Vec::new();
        match gpu {
            Some(g) => parts.push(format!("{}x {g}", self.gpu_count)),
            None if self.gpu_types.is_empty() => {
                let v = self
                    .body
                    .get("vcpuCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                parts.push(format!("CPU pod, {v} vCPUs"));
            }
            None => parts.push(format!(
                "{}x {}",
                self.gpu_count,
                self.gpu_types.join(" | ")
            )),
        }
        if let Some(c) = &self.cloud_type {
            parts.push(format!("{c} cloud"));
        }
        parts.push(
            if self.interruptible {
                "spot"
            } else {
                "on-demand"
            }
            .to_string(),
        );
        parts.join(", ")
    }
}

/// The pod for `spec`, installing `public_key` and carrying the markers with `hash`.
pub fn build(spec: &ResolvedSpec, public_key: &str, hash: &str) -> Result<PodSpec> {
    let s = &spec.spec;
    let d = &s.deployment;
    let settings = settings(s);
    let gpu_types = gpu_types(s)?;
    let cpu = gpu_types.is_empty();
    let gpu_count = d
        .resources
        .gpu
        .as_ref()
        .map(|g| g.count)
        .unwrap_or(1)
        .max(1);
    let cloud_type = match settings.cloud_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => match c.to_ascii_uppercase().as_str() {
            t @ ("SECURE" | "COMMUNITY") => Some(t.to_string()),
            _ => {
                return Err(Error::invalid(format!(
                    "providers.runpod.cloud_type `{c}` is not a RunPod cloud"
                ))
                .with_provider(ProviderKind::Runpod)
                .with_hint("use SECURE or COMMUNITY"));
            }
        },
    };
    let mut ports = vec!["22/tcp".to_string()];
    for p in &d.ports {
        if p.protocol != Protocol::Tcp {
            return Err(Error::invalid(format!(
                "deployment.ports: {p} is {}, and RunPod publishes only TCP and HTTP ports",
                p.protocol.as_str()
            ))
            .with_provider(ProviderKind::Runpod)
            .with_hint("remove the UDP port"));
        }
        let entry = format!("{}/tcp", p.container);
        if !ports.contains(&entry) {
            ports.push(entry);
        }
    }
    let hw = json!({
        "gpu_types": gpu_types,
        "gpu_count": if cpu { 0 } else { gpu_count },
        "cloud_type": cloud_type,
        "interruptible": settings.spot,
        "network_volume": settings.network_volume_id,
        "vcpus": if cpu { d.resources.cpus.map(|c| c.whole()).unwrap_or(DEFAULT_CPU_PODS_VCPUS) } else { 0 },
    });
    let hardware = short_hash(&hw.to_string());
    let mut env: BTreeMap<String, String> = d.env.clone();
    env.insert("PUBLIC_KEY".into(), public_key.to_string());
    env.insert("SSH_PUBLIC_KEY".into(), public_key.to_string());
    env.insert(MARK_MANAGED.into(), "true".into());
    env.insert(MARK_ENVIRONMENT.into(), spec.name().to_string());
    env.insert(MARK_PROJECT.into(), spec.project.clone());
    env.insert(MARK_SPEC_HASH.into(), hash.to_string());
    env.insert(MARK_HARDWARE.into(), hardware.clone());
    let home = d.home.trim_end_matches('/').to_string();
    let home = if home.is_empty() {
        "/".to_string()
    } else {
        home
    };
    let mut body = json!({
        "name": pod_name(spec.name()),
        "imageName": d.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        "env": env,
        "ports": ports,
        "containerDiskInGb": settings.container_disk.map(|b| b.gib_ceil().max(1)).unwrap_or(DEFAULT_CONTAINER_DISK_GB),
        "volumeMountPath": home,
        "interruptible": settings.spot,
    });
    match &settings.network_volume_id {
        Some(v) if !v.trim().is_empty() => body["networkVolumeId"] = json!(v.trim()),
        _ => {
            body["volumeInGb"] = json!(
                d.resources
                    .disk
                    .map(|b| b.gib_ceil().max(1))
                    .unwrap_or(DEFAULT_VOLUME_GB)
            )
        }
    }
    if let Some(c) = &cloud_type {
        body["cloudType"] = json!(c);
        if c == "COMMUNITY" {
            // sindri reaches pods by their public IP; Secure Cloud always has one.
            body["supportPublicIp"] = json!(true);
        }
    }
    if cpu {
        body["computeType"] = json!("CPU");
        body["vcpuCount"] = json!(
            d.resources
                .cpus
                .map(|c| c.whole())
                .unwrap_or(DEFAULT_CPU_PODS_VCPUS)
                .max(1)
        );
    } else {
        body["computeType"] = json!("GPU");
        body["gpuCount"] = json!(gpu_count);
        if let Some(c) = d.resources.cpus {
            body["minVCPUPerGPU"] = json!(c.whole().div_ceil(gpu_count).max(1));
        }
        if let Some(m) = d.resources.memory {
            body["minRAMPerGPU"] = json!(m.gib_ceil().div_ceil(u64::from(gpu_count)).max(1));
        }
    }
    Ok(PodSpec {
        name: pod_name(spec.name()),
        gpu_types,
        gpu_count,
        cloud_type,
        interruptible: settings.spot,
        body,
        hardware,
        home,
    })
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `pod` is sindri's pod of environment `name` in `project`.
pub fn is_ours(pod: &Pod, name: &str, project: &str) -> bool {
    is_managed(pod)
        && pod.env_var(MARK_ENVIRONMENT) == Some(name)
        && pod.env_var(MARK_PROJECT) == Some(project)
        && pod.name.as_deref() == Some(pod_name(name).as_str())
}

/// Whether `pod` carries sindri's name and markers at all.
pub fn is_managed(pod: &Pod) -> bool {
    pod.env_var(MARK_MANAGED) == Some("true")
        && pod.status() != "TERMINATED"
        && match (pod.name.as_deref(), pod.env_var(MARK_ENVIRONMENT)) {
            (Some(n), Some(env)) => n == pod_name(env),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ResolvedSpec {
        let s: Spec = sindri_spec::load_str(yaml, "sindri.yaml").unwrap_or_else(|d| panic!("{d}"));
        ResolvedSpec::new(s, std::path::Path::new("/p/sindri.yaml"))
    }

    #[test]
    fn gpu_types_come_from_settings_then_the_gpu_type() {
        let s = spec(
            "name: a\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    gpu: {count: 2, type: h100}\n",
        );
        assert_eq!(
            gpu_types(&s.spec).unwrap(),
            vec![
                "NVIDIA H100 80GB HBM3",
                "NVIDIA H100 PCIe",
                "NVIDIA H100 NVL"
            ]
        );
        let s = spec(
            "name: a\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    gpu: {count: 1, type: RTX-4090}\nproviders:\n  runpod:\n    gpu_types: []\n",
        );
        assert_eq!(gpu_types(&s.spec).unwrap(), vec!["NVIDIA GeForce RTX 4090"]);
        let s = spec(
            "name: a\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    gpu: {count: 1, type: NVIDIA L40S}\n",
        );
        assert_eq!(gpu_types(&s.spec).unwrap(), vec!["NVIDIA L40S"]);
        let s = spec(
            "name: a\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    gpu: {count: 1, type: z80}\n",
        );
        let e = gpu_types(&s.spec).unwrap_err();
        assert!(e.hint().unwrap().contains("l40s"), "{e:?}");
        let s = spec(
            "name: a\ndeployment:\n  provider: runpod\n  image: img:1\nproviders:\n  runpod:\n    gpu_types: [NVIDIA A40, NVIDIA L4]\n",
        );
        assert_eq!(gpu_types(&s.spec).unwrap(), vec!["NVIDIA A40", "NVIDIA L4"]);
        let s = spec("name: a\ndeployment:\n  provider: runpod\n  image: img:1\n");
        assert!(gpu_types(&s.spec).unwrap().is_empty(), "no GPU: a CPU pod");
    }

    #[test]
    fn the_body_carries_ssh_markers_disks_and_spot() {
        let s = spec(
            "name: train\ndeployment:\n  provider: runpod\n  image: runpod/base:1\n  ports: [8888]\n  env: {A: b}\n  resources:\n    disk: 40GiB\n    memory: 64GiB\n    gpu: {count: 2, type: l40s}\nproviders:\n  runpod:\n    spot: true\n    cloud_type: community\n    container_disk: 30GiB\n",
        );
        let p = build(&s, "ssh-ed25519 AAAA me", "h1").unwrap();
        let b = p.body_for(Some("NVIDIA L40S"));
        assert_eq!(b["name"], "sindri-train");
        assert_eq!(b["gpuTypeIds"], json!(["NVIDIA L40S"]));
        assert_eq!(b["gpuCount"], 2);
        assert_eq!(b["ports"], json!(["22/tcp", "8888/tcp"]));
        assert_eq!(b["interruptible"], true);
        assert_eq!(b["cloudType"], "COMMUNITY");
        assert_eq!(b["supportPublicIp"], true);
        assert_eq!(b["containerDiskInGb"], 30);
        assert_eq!(b["volumeInGb"], 40);
        assert_eq!(b["volumeMountPath"], "/root");
        assert_eq!(b["minRAMPerGPU"], 32);
        assert_eq!(b["env"]["PUBLIC_KEY"], "ssh-ed25519 AAAA me");
        assert_eq!(b["env"]["A"], "b");
        assert_eq!(b["env"][MARK_SPEC_HASH], "h1");
        assert_eq!(b["env"][MARK_PROJECT], s.project.as_str());
        let u = p.update_body();
        assert!(u.get("gpuCount").is_none() && u.get("interruptible").is_none());
        assert_eq!(u["env"], b["env"]);
        // Only what needs a new pod changes the hardware fingerprint.
        let s2 = spec(
            "name: train\ndeployment:\n  provider: runpod\n  image: runpod/base:2\n  env: {A: c}\n  resources:\n    gpu: {count: 2, type: l40s}\nproviders:\n  runpod:\n    spot: true\n    cloud_type: COMMUNITY\n",
        );
        assert_eq!(build(&s2, "k", "h2").unwrap().hardware, p.hardware);
        let s3 = spec(
            "name: train\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    gpu: {count: 4, type: l40s}\nproviders:\n  runpod:\n    spot: true\n    cloud_type: COMMUNITY\n",
        );
        assert_ne!(build(&s3, "k", "h2").unwrap().hardware, p.hardware);
    }

    #[test]
    fn cpu_pods_udp_and_unknown_clouds() {
        let s = spec(
            "name: c\ndeployment:\n  provider: runpod\n  image: img:1\n  resources:\n    cpus: 3\n",
        );
        let p = build(&s, "k", "h").unwrap();
        assert_eq!(p.body_for(None)["computeType"], "CPU");
        assert_eq!(p.body_for(None)["vcpuCount"], 3);
        assert_eq!(p.body_for(None)["imageName"], "img:1");
        let s = spec(
            "name: c\ndeployment:\n  provider: runpod\n  image: img:1\n  ports: [\"53:53/udp\"]\n",
        );
        let e = build(&s, "k", "h").unwrap_err();
        assert!(e.message().contains("udp"), "{e}");
        let s = spec(
            "name: c\ndeployment:\n  provider: runpod\n  image: img:1\nproviders:\n  runpod:\n    cloud_type: moon\n",
        );
        assert!(
            build(&s, "k", "h")
                .unwrap_err()
                .hint()
                .unwrap()
                .contains("SECURE")
        );
    }
}
