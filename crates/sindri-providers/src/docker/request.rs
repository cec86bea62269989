//! Pure request building: names, labels, and the exact container-create request.
//!
//! Nothing here talks to the engine, so every rule (labels, limits, ports, GPUs,
//! Docker-in-Docker modes, secret-free requests) is unit-tested without one, and
//! `plan` shows the very body `deploy` sends.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HealthConfig, HostConfig, Mount,
    MountTmpfsOptions, MountType, NetworkingConfig, PortBinding, PortMap,
};
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{DindMode, DockerSettings, GpuSpec, PortMapping, ProviderKind};

/// Label every object sindri creates carries: `true`.
pub const LABEL_MANAGED: &str = "sindri.managed";
/// Label naming the environment an object belongs to.
pub const LABEL_ENVIRONMENT: &str = "sindri.environment";
/// Label naming the project (see `sindri_core::project_id`) an object belongs to.
pub const LABEL_PROJECT: &str = "sindri.project";
/// Label holding `ResolvedSpec::spec_hash` of the deploy that created the object.
pub const LABEL_SPEC_HASH: &str = "sindri.spec-hash";
/// Label holding the digest of the build inputs (Dockerfile, args, context file list)
/// of a built image and of the container running it.
pub const LABEL_BUILD_HASH: &str = "sindri.build-hash";

/// Where secrets live inside the container: a RAM-backed tmpfs, so they never touch a
/// disk, the image, or `docker inspect`.
pub(crate) const SECRETS_DIR: &str = "/run/sindri";
/// The tmpfs size limit; secrets are small.
const SECRETS_TMPFS_BYTES: i64 = 16 * 1024 * 1024;

/// PID 1's child: sleeps until told to stop. `trap` makes `docker stop` end it at once
/// with status 0 instead of waiting for SIGKILL; `wait` is interruptible where a
/// foreground `sleep` is not. Needs only a POSIX `sh` and `sleep`.
pub(crate) const KEEPALIVE: &str =
    "trap 'exit 0' TERM INT HUP; while :; do sleep 3600 & wait $!; done";

/// The Docker runtime sysbox installs.
pub(crate) const SYSBOX_RUNTIME: &str = "sysbox-runc";

/// The host's Docker socket, bind-mounted for `dind: socket`.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The container of environment `env`.
pub fn container_name(env: &str) -> String {
    format!("sindri-{env}")
}

/// The network sindri creates for environment `env`.
pub(crate) fn network_name(env: &str) -> String {
    format!("sindri-{env}")
}

/// The volume holding `deployment.home`.
pub(crate) fn home_volume_name(env: &str) -> String {
    format!("sindri-{env}-home")
}

/// The volume of `deployment.volumes[].name`.
pub(crate) fn volume_name(env: &str, volume: &str) -> String {
    format!("sindri-{env}-{volume}")
}

/// The tag of the image built from `deployment.build`: one per environment and project,
/// so two projects' environments of the same name never overwrite each other's image.
pub(crate) fn image_tag(env: &str, project: &str) -> String {
    format!("sindri-{env}:{project}")
}

/// The Docker settings a spec deploys with: its own `providers.docker`, else the
/// provider's.
pub(crate) fn effective_settings(spec: &ResolvedSpec, fallback: &DockerSettings) -> DockerSettings {
    spec.spec
        .providers
        .docker
        .clone()
        .unwrap_or_else(|| fallback.clone())
}

/// The four ownership labels (plus the build hash when an image is built).
pub(crate) fn labels(spec: &ResolvedSpec, build_hash: Option<&str>) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_ENVIRONMENT.to_string(), spec.name().to_string()),
        (LABEL_PROJECT.to_string(), spec.project.clone()),
        (LABEL_SPEC_HASH.to_string(), spec.spec_hash()),
    ]);
    if let Some(h) = build_hash {
        l.insert(LABEL_BUILD_HASH.to_string(), h.to_string());
    }
    l
}

/// A list filter selecting exactly the objects of one environment of one project.
pub(crate) fn owner_filter(env: &str, project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_ENVIRONMENT}={env}"),
            format!("{LABEL_PROJECT}={project}"),
        ],
    )])
}

/// A list filter selecting everything sindri manages.
pub(crate) fn managed_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])])
}

/// Whose an object is, judged by its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Created by sindri for this environment of this project.
    Ours,
    /// Not created by sindri (no `sindri.managed=true`).
    Foreign,
    /// Created by sindri for another project or environment.
    Other {
        /// Its `sindri.environment`.
        environment: String,
        /// Its `sindri.project`.
        project: String,
    },
}

/// Judges an object's labels against environment `env` of `project`.
pub(crate) fn ownership(
    labels: Option<&HashMap<String, String>>,
    env: &str,
    project: &str,
) -> Ownership {
    let Some(l) = labels else {
        return Ownership::Foreign;
    };
    if l.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
        return Ownership::Foreign;
    }
    let environment = l.get(LABEL_ENVIRONMENT).cloned().unwrap_or_default();
    let proj = l.get(LABEL_PROJECT).cloned().unwrap_or_default();
    if environment == env && proj == project {
        Ownership::Ours
    } else {
        Ownership::Other {
            environment,
            project: proj,
        }
    }
}

/// The error for an object sindri must not touch; `kind` is e.g. `container`.
pub(crate) fn conflict(kind: &str, name: &str, owner: &Ownership) -> Error {
    let (what, hint) = match owner {
        Ownership::Other {
            environment,
            project,
        } => (
            format!(
                "{kind} `{name}` belongs to sindri environment `{environment}` of another project ({project})"
            ),
            "destroy it from that project, or rename this environment (two projects cannot share an environment name on one engine)".to_string(),
        ),
        _ => (
            format!(
                "a {kind} named `{name}` exists but was not created by sindri; sindri will not touch it"
            ),
            format!(
                "remove or rename it yourself (`docker {kind} rm {name}`), or rename this environment"
            ),
        ),
    };
    Error::new(sindri_core::ErrorKind::Conflict, what)
        .with_provider(ProviderKind::Docker)
        .with_hint(hint)
}

/// Extra options: GPUs. Docker can only ask for a count; a model name cannot be chosen.
pub(crate) fn device_requests(gpu: Option<&GpuSpec>) -> Option<Vec<DeviceRequest>> {
    gpu.map(|g| {
        vec![DeviceRequest {
            count: Some(i64::from(g.count)),
            capabilities: Some(vec![vec!["gpu".to_string()]]),
            ..Default::default()
        }]
    })
}

/// Ports as Docker wants them: the exposed list and the bindings, keyed `80/tcp`.
pub(crate) fn ports(mappings: &[PortMapping]) -> (Vec<String>, PortMap) {
    let mut exposed = Vec::new();
    let mut bindings: PortMap = HashMap::new();
    for p in mappings {
        let key = format!("{}/{}", p.container, p.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: None,
                host_port: Some(p.host.to_string()),
            });
    }
    (exposed, bindings)
}

/// What a Docker-in-Docker mode changes in the host config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dind {
    /// Bind mounts (`host:container`).
    pub binds: Vec<String>,
    /// Run privileged.
    pub privileged: bool,
    /// Runtime to use.
    pub runtime: Option<String>,
}

/// The host-config changes for `providers.docker.dind` and `.runtime`.
pub(crate) fn dind(settings: &DockerSettings) -> Result<Dind> {
    let mut d = Dind {
        runtime: settings.runtime.clone().filter(|r| !r.is_empty()),
        ..Default::default()
    };
    match settings.dind {
        DindMode::None => {}
        DindMode::Socket => d.binds.push(format!("{DOCKER_SOCKET}:{DOCKER_SOCKET}")),
        DindMode::Privileged => d.privileged = true,
        DindMode::Sysbox => match d.runtime.as_deref() {
            None | Some(SYSBOX_RUNTIME) => d.runtime = Some(SYSBOX_RUNTIME.to_string()),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "providers.docker: `dind: sysbox` needs runtime `{SYSBOX_RUNTIME}`, but `runtime: {other}` is set"
                ))
                .with_provider(ProviderKind::Docker)
                .with_hint("remove `runtime`, or choose another dind mode"));
            }
        },
    }
    Ok(d)
}

/// A problem with a path Docker would reject with a less helpful message.
fn check_absolute(field: &str, path: &str) -> Option<String> {
    (!path.starts_with('/')).then(|| {
        format!("{field}: found `{path}`; expected an absolute path inside the environment, e.g. `/data`")
    })
}

/// Checks what Docker cannot express or would reject, listing every problem.
pub(crate) fn validate(spec: &ResolvedSpec) -> Result<()> {
    let d = &spec.spec.deployment;
    let mut problems: Vec<String> = Vec::new();
    problems.extend(check_absolute("deployment.home", &d.home));
    let mut targets = vec![
        d.home.trim_end_matches('/').to_string(),
        SECRETS_DIR.to_string(),
    ];
    for (i, v) in d.volumes.iter().enumerate() {
        problems.extend(check_absolute(
            &format!("deployment.volumes[{i}].path"),
            &v.path,
        ));
        if v.name == "home" {
            problems.push(format!(
                "deployment.volumes[{i}].name: `home` is reserved for the home volume; choose another name"
            ));
        }
        let target = v.path.trim_end_matches('/').to_string();
        if targets.contains(&target) {
            problems.push(format!(
                "deployment.volumes[{i}].path: `{}` is already mounted (home, another volume, or sindri's {SECRETS_DIR})",
                v.path
            ));
        }
        targets.push(target);
    }
    for s in &spec.secrets {
        if let Some(m) = &s.mount {
            problems.extend(check_absolute(&format!("secret {} mount", s.name), m));
            if m.trim_end_matches('/') == SECRETS_DIR || m.starts_with(&format!("{SECRETS_DIR}/")) {
                problems.push(format!(
                    "secret {}: mount `{m}` is inside {SECRETS_DIR}, which sindri manages",
                    s.name
                ));
            }
        }
    }
    let mut seen = Vec::new();
    for p in &d.ports {
        let key = (p.host, p.protocol);
        if seen.contains(&key) {
            problems.push(format!(
                "deployment.ports: host port {}/{} is published twice",
                p.host,
                p.protocol.as_str()
            ));
        }
        seen.push(key);
    }
    if d.image.is_none() && d.build.is_none() {
        problems.push(
            "deployment: neither `image` nor `build` is set; the docker provider needs one".into(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(problems.join("\n")).with_provider(ProviderKind::Docker))
    }
}

/// The exact body of the container-create request for `spec` running `image`.
///
/// The entrypoint is sindri's keep-alive loop, never the image's CMD, so any image with
/// a POSIX shell works and the container stays up for `exec`. Secrets are absent by
/// construction: they are written into the tmpfs at [`SECRETS_DIR`] after start.
pub(crate) fn container_body(
    spec: &ResolvedSpec,
    settings: &DockerSettings,
    image: &str,
    build_hash: Option<&str>,
) -> Result<ContainerCreateBody> {
    validate(spec)?;
    let d = &spec.spec.deployment;
    let env_name = spec.name();
    let (exposed, bindings) = ports(&d.ports);
    let dind = dind(settings)?;

    let mut mounts = vec![Mount {
        target: Some(d.home.clone()),
        source: Some(home_volume_name(env_name)),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }];
    for v in &d.volumes {
        mounts.push(Mount {
            target: Some(v.path.clone()),
            source: Some(volume_name(env_name, &v.name)),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        });
    }
    mounts.push(Mount {
        target: Some(SECRETS_DIR.to_string()),
        typ: Some(MountType::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: Some(SECRETS_TMPFS_BYTES),
            mode: Some(0o700),
            ..Default::default()
        }),
        ..Default::default()
    });

    let mut env: Vec<String> = vec![];
    if !d.env.contains_key("HOME") {
        env.push(format!("HOME={}", d.home));
    }
    env.extend(d.env.iter().map(|(k, v)| format!("{k}={v}")));

    let network = settings
        .network
        .clone()
        .unwrap_or_else(|| network_name(env_name));

    let host_config = HostConfig {
        init: Some(true),
        nano_cpus: d.resources.cpus.map(|c| c.nanos()),
        memory: d
            .resources
            .memory
            .map(|m| i64::try_from(m.bytes()).unwrap_or(i64::MAX)),
        device_requests: device_requests(d.resources.gpu.as_ref()),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: Some(mounts),
        binds: (!dind.binds.is_empty()).then_some(dind.binds),
        privileged: dind.privileged.then_some(true),
        runtime: dind.runtime,
        network_mode: Some(network.clone()),
        ..Default::default()
    };

    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(env_name.to_string()),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), KEEPALIVE.into()]),
        // The keep-alive loop handles SIGTERM; an image's STOPSIGNAL (SIGRTMIN+3 for
        // systemd images) would make every stop wait for the kill timeout.
        stop_signal: Some("SIGTERM".into()),
        // The image's health check probes a program sindri does not start.
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        env: Some(env),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        labels: Some(labels(spec, build_hash)),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                EndpointSettings {
                    aliases: Some(vec![env_name.to_string()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    })
}

/// The `docker-container.json` plan artifact: the container name and the request body,
/// pretty-printed with sorted keys, plus the secrets by name only.
pub(crate) fn plan_artifact(
    spec: &ResolvedSpec,
    name: &str,
    body: &ContainerCreateBody,
) -> Result<String> {
    let body_json = serde_json::to_value(body)
        .map_err(|e| Error::internal(format!("cannot render the container request: {e}")))?;
    let secrets: Vec<serde_json::Value> = spec
        .secrets
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "delivered_as": match &s.mount {
                    Some(m) => format!("file {m} (symlink into the {SECRETS_DIR} tmpfs)"),
                    None => format!("environment variable, from {SECRETS_DIR}/secrets.env (tmpfs)"),
                },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "name": name,
        "body": sorted(body_json),
        "secrets": secrets,
    });
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::internal(format!("cannot render the container request: {e}")))
}

/// Sorts object keys recursively, so the artifact is stable from run to run (the
/// request's maps are hash maps).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sindri_core::{ResolvedSecret, SecretValue};
    use sindri_spec::Spec;

    pub(crate) fn spec(json: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(json).expect("valid spec");
        ResolvedSpec::new(spec, std::path::Path::new("/tmp/sindri-unit/sindri.yaml"))
    }

    fn basic() -> ResolvedSpec {
        spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "ubuntu:24.04"}
        }))
    }

    fn body(s: &ResolvedSpec) -> ContainerCreateBody {
        container_body(
            s,
            &effective_settings(s, &DockerSettings::default()),
            "img",
            None,
        )
        .unwrap()
    }

    #[test]
    fn every_label_is_set_and_names_follow_the_environment() {
        let s = basic();
        let b = body(&s);
        let l = b.labels.unwrap();
        assert_eq!(l[LABEL_MANAGED], "true");
        assert_eq!(l[LABEL_ENVIRONMENT], "dev");
        assert_eq!(l[LABEL_PROJECT], s.project);
        assert_eq!(l[LABEL_SPEC_HASH], s.spec_hash());
        assert!(!l.contains_key(LABEL_BUILD_HASH));
        assert_eq!(container_name("dev"), "sindri-dev");
        assert_eq!(home_volume_name("dev"), "sindri-dev-home");
        let f = owner_filter("dev", "abc");
        assert_eq!(
            f["label"],
            vec![
                "sindri.managed=true",
                "sindri.environment=dev",
                "sindri.project=abc"
            ]
        );
    }

    #[test]
    fn entrypoint_is_the_keepalive_loop_with_init() {
        let b = body(&basic());
        assert_eq!(
            b.entrypoint.unwrap(),
            vec!["/bin/sh".to_string(), "-c".into(), KEEPALIVE.into()]
        );
        assert!(
            b.cmd.is_none(),
            "the image's CMD must not be inherited or set"
        );
        let hc = b.host_config.unwrap();
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.network_mode.as_deref(), Some("sindri-dev"));
        let mounts = hc.mounts.unwrap();
        let home = &mounts[0];
        assert_eq!(home.target.as_deref(), Some("/root"));
        assert_eq!(home.source.as_deref(), Some("sindri-dev-home"));
        let tmpfs = mounts
            .iter()
            .find(|m| m.typ == Some(MountType::TMPFS))
            .unwrap();
        assert_eq!(tmpfs.target.as_deref(), Some(SECRETS_DIR));
        assert_eq!(tmpfs.tmpfs_options.as_ref().unwrap().mode, Some(0o700));
        assert!(b.env.unwrap().contains(&"HOME=/root".to_string()));
    }

    #[test]
    fn limits_become_nano_cpus_and_memory_bytes() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "x",
                "resources": {"cpus": 1.5, "memory": "512MiB"}}
        }));
        let hc = body(&s).host_config.unwrap();
        assert_eq!(hc.nano_cpus, Some(1_500_000_000));
        assert_eq!(hc.memory, Some(512 * 1024 * 1024));
        assert!(body(&basic()).host_config.unwrap().nano_cpus.is_none());
    }

    #[test]
    fn ports_are_exposed_and_bound() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "x",
                "ports": [8080, "9000:80", "5353:53/udp"]}
        }));
        let b = body(&s);
        let mut exposed = b.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, vec!["53/udp", "80/tcp", "8080/tcp"]);
        let pb = b.host_config.unwrap().port_bindings.unwrap();
        let host = |k: &str| pb[k].as_ref().unwrap()[0].host_port.clone().unwrap();
        assert_eq!(host("80/tcp"), "9000");
        assert_eq!(host("8080/tcp"), "8080");
        assert_eq!(host("53/udp"), "5353");
        // The JSON the engine receives uses Docker's map form for exposed ports.
        let json = serde_json::to_value(
            container_body(&s, &DockerSettings::default(), "x", None).unwrap(),
        )
        .unwrap();
        assert!(json["ExposedPorts"]["80/tcp"].is_object(), "{json}");
        assert_eq!(
            json["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "9000"
        );
    }

    #[test]
    fn gpu_request_body_asks_for_count_and_gpu_capability() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "x",
                "resources": {"gpu": {"count": 2, "type": "a100"}}}
        }));
        let json = serde_json::to_value(body(&s)).unwrap();
        assert_eq!(
            json["HostConfig"]["DeviceRequests"],
            serde_json::json!([{"Count": 2, "Capabilities": [["gpu"]]}])
        );
        assert!(
            body(&basic())
                .host_config
                .unwrap()
                .device_requests
                .is_none()
        );
    }

    #[test]
    fn dind_modes_change_the_host_config() {
        let mode = |m: DindMode| {
            dind(&DockerSettings {
                dind: m,
                ..Default::default()
            })
        };
        assert_eq!(mode(DindMode::None).unwrap(), Dind::default());
        assert_eq!(
            mode(DindMode::Socket).unwrap().binds,
            vec!["/var/run/docker.sock:/var/run/docker.sock"]
        );
        assert!(mode(DindMode::Privileged).unwrap().privileged);
        let sysbox = mode(DindMode::Sysbox).unwrap();
        assert_eq!(sysbox.runtime.as_deref(), Some("sysbox-runc"));
        assert!(!sysbox.privileged, "sysbox must not need --privileged");
        let clash = dind(&DockerSettings {
            dind: DindMode::Sysbox,
            runtime: Some("runc".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(clash.message().contains("sysbox-runc"));
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker", "image": "x"},
            "providers": {"docker": {"dind": "privileged", "network": "shared"}}
        }));
        let hc = body(&s).host_config.unwrap();
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(hc.network_mode.as_deref(), Some("shared"));
    }

    #[test]
    fn secrets_never_enter_the_request_or_the_artifact() {
        let mut s = basic();
        s.secrets = vec![
            ResolvedSecret {
                name: "API_TOKEN".into(),
                value: SecretValue::new("s3cr3t-value-123"),
                mount: None,
            },
            ResolvedSecret {
                name: "TLS_KEY".into(),
                value: SecretValue::new("-----BEGIN KEY-----xyz"),
                mount: Some("/etc/tls/key.pem".into()),
            },
        ];
        let b = body(&s);
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("s3cr3t-value-123"));
        assert!(!json.contains("BEGIN KEY"));
        let art = plan_artifact(&s, "sindri-dev", &b).unwrap();
        assert!(!art.contains("s3cr3t-value-123") && !art.contains("BEGIN KEY"));
        assert!(art.contains("API_TOKEN") && art.contains("/etc/tls/key.pem"));
        // Stable: rendering twice gives the same text.
        assert_eq!(art, plan_artifact(&s, "sindri-dev", &body(&s)).unwrap());
    }

    #[test]
    fn invalid_layouts_are_listed_together() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "docker",
                "volumes": [{"name": "home", "path": "data"}, {"name": "b", "path": "/root"}],
                "ports": [8080, "8080:81"]}
        }));
        let e = validate(&s).unwrap_err();
        let m = e.message();
        assert!(m.contains("volumes[0].path"), "{m}");
        assert!(m.contains("reserved"), "{m}");
        assert!(
            m.contains("volumes[1].path: `/root` is already mounted"),
            "{m}"
        );
        assert!(m.contains("8080/tcp is published twice"), "{m}");
        assert!(m.contains("neither `image` nor `build`"), "{m}");
    }

    #[test]
    fn ownership_is_judged_by_labels() {
        let l = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(ownership(None, "dev", "p"), Ownership::Foreign);
        assert_eq!(ownership(Some(&l(&[])), "dev", "p"), Ownership::Foreign);
        let ours = l(&[
            (LABEL_MANAGED, "true"),
            (LABEL_ENVIRONMENT, "dev"),
            (LABEL_PROJECT, "p"),
        ]);
        assert_eq!(ownership(Some(&ours), "dev", "p"), Ownership::Ours);
        assert!(matches!(
            ownership(Some(&ours), "dev", "q"),
            Ownership::Other { .. }
        ));
        let e = conflict("container", "sindri-dev", &Ownership::Foreign);
        assert_eq!(e.kind(), sindri_core::ErrorKind::Conflict);
        assert!(e.message().contains("not created by sindri"));
    }
}
