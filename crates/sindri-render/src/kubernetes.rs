//! `kubernetes.yaml`: a StatefulSet of one replica whose volume claim templates hold
//! the home directory and the extra volumes, and a Service when ports are published.
//!
//! The pod reads secrets from the Secret `<name>-secrets`, which is not part of the
//! file: the Kubernetes provider creates it from the resolved values, and the file's
//! header says how to create it with kubectl.

use minijinja::Value;
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::quantity::k8s_decimal_quantity;
use sindri_spec::{ByteSize, Cpus, Protocol, SecretSource, Spec};

use crate::common::{
    DEFAULT_VOLUME_GIB, HOME_VOLUME, Obj, built_image, container_ports, host_var, image_ref,
    labels_value, require_image_or_build, seq, shell_quote, string_map,
};
use crate::escape::comment;

/// Name of the Secret the pod reads secrets from.
pub fn secret_name(environment: &str) -> String {
    format!("{environment}-secrets")
}

/// Name of the pod volume that mounts secrets as files; users cannot take it.
pub const SECRETS_VOLUME: &str = "sindri-secrets";

/// The resource name of GPUs requested from the NVIDIA device plugin.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The Service types Kubernetes knows for exposing ports.
const SERVICE_TYPES: [&str; 3] = ["ClusterIP", "NodePort", "LoadBalancer"];

/// A CPU count as a Kubernetes quantity in the API server's canonical form: `2`, or
/// millicores such as `500m`.
pub fn cpu_quantity(c: Cpus) -> String {
    c.to_k8s_quantity()
}

/// Kubernetes expands `$(VAR)` in env values, command and args, and turns `$$` into
/// `$`; doubling every `$` makes the value arrive literally.
pub fn escape_expansion(s: &str) -> String {
    s.replace('$', "$$")
}

fn disk_quantity(size: Option<ByteSize>) -> String {
    size.map(ByteSize::to_k8s_quantity)
        .unwrap_or_else(|| format!("{DEFAULT_VOLUME_GIB}Gi"))
}

fn metadata(spec: &Spec, name: &str, labels: &Value) -> Value {
    let ns = spec
        .providers
        .kubernetes
        .as_ref()
        .and_then(|k| k.namespace.as_deref());
    Obj::new()
        .set("name", name)
        .opt("namespace", ns)
        .set("labels", labels.clone())
        .build()
}

fn claim(name: &str, size: Option<ByteSize>, class: Option<&str>, labels: &Value) -> Value {
    Obj::new()
        .set(
            "metadata",
            Obj::new()
                .set("name", name)
                .set("labels", labels.clone())
                .build(),
        )
        .set(
            "spec",
            Obj::new()
                .set("accessModes", seq(vec![Value::from("ReadWriteOnce")]))
                .opt("storageClassName", class)
                .set(
                    "resources",
                    Obj::new()
                        .set(
                            "requests",
                            Obj::new().set("storage", disk_quantity(size)).build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// The objects of `kubernetes.yaml`, in apply order.
pub(crate) fn objects_value(spec: &ResolvedSpec) -> Result<Vec<Value>> {
    let s = &spec.spec;
    let d = &s.deployment;
    require_image_or_build(s, "kubernetes.yaml")?;
    if d.volumes.iter().any(|v| v.name == SECRETS_VOLUME) {
        return Err(Error::invalid(format!(
            "volume name `{SECRETS_VOLUME}` is reserved for the pod's secret files"
        ))
        .with_hint("rename the volume"));
    }
    let settings = s.providers.kubernetes.clone().unwrap_or_default();
    if let Some(t) = &settings.service_type
        && !SERVICE_TYPES.contains(&t.as_str())
    {
        return Err(Error::invalid(format!(
            "providers.kubernetes.service_type is `{t}`; expected one of {}",
            SERVICE_TYPES.join(", ")
        )));
    }
    let name = s.name.as_str();
    let labels = labels_value(spec);
    let secret = secret_name(name);

    let mut env: Vec<Value> = d
        .env
        .iter()
        .map(|(k, v)| {
            Obj::new()
                .set("name", k.as_str())
                .set("value", escape_expansion(v))
                .build()
        })
        .collect();
    let mut mounts = vec![
        Obj::new()
            .set("name", HOME_VOLUME)
            .set("mountPath", d.home.as_str())
            .build(),
    ];
    for v in &d.volumes {
        mounts.push(
            Obj::new()
                .set("name", v.name.as_str())
                .set("mountPath", v.path.as_str())
                .build(),
        );
    }
    let mut secret_items = Vec::new();
    let mut secret_files_optional = false;
    for sec in &s.secrets {
        match &sec.mount {
            None => env.push(
                Obj::new()
                    .set("name", sec.name.as_str())
                    .set(
                        "valueFrom",
                        Obj::new()
                            .set(
                                "secretKeyRef",
                                Obj::new()
                                    .set("name", secret.as_str())
                                    .set("key", sec.name.as_str())
                                    .opt("optional", (!sec.required).then_some(true))
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            ),
            Some(path) => {
                secret_items.push(
                    Obj::new()
                        .set("key", sec.name.as_str())
                        .set("path", sec.name.as_str())
                        .build(),
                );
                secret_files_optional |= !sec.required;
                mounts.push(
                    Obj::new()
                        .set("name", SECRETS_VOLUME)
                        .set("mountPath", path.as_str())
                        .set("subPath", sec.name.as_str())
                        .set("readOnly", true)
                        .build(),
                );
            }
        }
    }

    let r = &d.resources;
    let mut requests = Obj::new();
    let mut limits = Obj::new();
    if let Some(c) = r.cpus {
        requests = requests.set("cpu", cpu_quantity(c));
        limits = limits.set("cpu", cpu_quantity(c));
    }
    if let Some(m) = r.memory {
        requests = requests.set("memory", m.to_k8s_quantity());
        limits = limits.set("memory", m.to_k8s_quantity());
    }
    if let Some(g) = &r.gpu {
        limits = limits.set(GPU_RESOURCE, k8s_decimal_quantity(u128::from(g.count), 0));
    }
    let resources = Obj::new()
        .nonempty("requests", requests.build())
        .nonempty("limits", limits.build())
        .build();

    let ports: Vec<Value> = container_ports(&d.ports)
        .iter()
        .map(|p| {
            Obj::new()
                .set("containerPort", p.container)
                .set("protocol", protocol(p.protocol))
                .build()
        })
        .collect();

    let image = image_ref(s).unwrap_or_default();
    let built = d.image.is_none();
    let container = Obj::new()
        .set("name", name)
        .set("image", image)
        .opt("imagePullPolicy", built.then_some("IfNotPresent"))
        .set("stdin", true)
        .set("tty", true)
        .nonempty("env", seq(env))
        .nonempty("ports", seq(ports))
        .nonempty("resources", resources)
        .set("volumeMounts", seq(mounts))
        .build();

    let mut tolerations: Vec<Value> = settings
        .tolerations
        .iter()
        .map(|t| {
            Obj::new()
                .opt("key", t.key.as_deref())
                .opt("operator", t.operator.as_deref())
                .opt("value", t.value.as_deref())
                .opt("effect", t.effect.as_deref())
                .build()
        })
        .collect();
    // GPU nodes are commonly tainted with the device plugin's resource name.
    if r.gpu.is_some()
        && !settings
            .tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(GPU_RESOURCE))
    {
        tolerations.push(
            Obj::new()
                .set("key", GPU_RESOURCE)
                .set("operator", "Exists")
                .set("effect", "NoSchedule")
                .build(),
        );
    }
    let volumes = if secret_items.is_empty() {
        Vec::new()
    } else {
        vec![
            Obj::new()
                .set("name", SECRETS_VOLUME)
                .set(
                    "secret",
                    Obj::new()
                        .set("secretName", secret.as_str())
                        .set("items", seq(secret_items))
                        .opt("optional", secret_files_optional.then_some(true))
                        .build(),
                )
                .build(),
        ]
    };
    let pod = Obj::new()
        .nonempty("nodeSelector", string_map(&settings.node_selector))
        .nonempty("tolerations", seq(tolerations))
        .set("containers", seq(vec![container]))
        .nonempty("volumes", seq(volumes))
        .build();

    let class = settings.storage_class.as_deref();
    let mut claims = vec![claim(HOME_VOLUME, r.disk, class, &labels)];
    for v in &d.volumes {
        claims.push(claim(&v.name, v.size, class, &labels));
    }

    let statefulset = Obj::new()
        .set("apiVersion", "apps/v1")
        .set("kind", "StatefulSet")
        .set("metadata", metadata(s, name, &labels))
        .set(
            "spec",
            Obj::new()
                .set("serviceName", name)
                .set("replicas", 1)
                .set(
                    "selector",
                    Obj::new().set("matchLabels", labels.clone()).build(),
                )
                .set(
                    "template",
                    Obj::new()
                        .set("metadata", Obj::new().set("labels", labels.clone()).build())
                        .set("spec", pod)
                        .build(),
                )
                .set("volumeClaimTemplates", seq(claims))
                .build(),
        )
        .build();
    let mut objects = vec![statefulset];

    if !d.ports.is_empty() {
        let ports: Vec<Value> = d
            .ports
            .iter()
            .map(|p| {
                Obj::new()
                    .set("name", format!("{}-{}", p.protocol.as_str(), p.host))
                    .set("port", p.host)
                    .set("targetPort", p.container)
                    .set("protocol", protocol(p.protocol))
                    .build()
            })
            .collect();
        objects.push(
            Obj::new()
                .set("apiVersion", "v1")
                .set("kind", "Service")
                .set("metadata", metadata(s, name, &labels))
                .set(
                    "spec",
                    Obj::new()
                        .set(
                            "type",
                            settings.service_type.as_deref().unwrap_or("ClusterIP"),
                        )
                        .set("selector", labels.clone())
                        .set("ports", seq(ports))
                        .build(),
                )
                .build(),
        );
    }
    Ok(objects)
}

/// The objects `kubernetes.yaml` holds (with the embedded template), as JSON values
/// ready for the API: a StatefulSet, then a Service when ports are published. When a
/// project overrides the template, apply the rendered file instead.
pub fn objects(spec: &ResolvedSpec) -> Result<Vec<serde_json::Value>> {
    crate::common::validate(&spec.spec)?;
    objects_value(spec)?
        .iter()
        .map(|v| {
            serde_json::to_value(v).map_err(|e| {
                Error::internal(format!("cannot convert a Kubernetes object to JSON: {e}"))
            })
        })
        .collect()
}

/// Comment lines: how to create the Secret, and what the image needs.
pub(crate) fn notes(spec: &ResolvedSpec) -> Vec<Value> {
    let s = &spec.spec;
    let mut lines = Vec::new();
    if !s.secrets.is_empty() {
        let secret = secret_name(&s.name);
        lines.push(comment(&format!(
            "The pod reads its secrets from the Secret {secret}, which this file does not contain (values are never written here). Create it first:"
        )));
        let ns = s
            .providers
            .kubernetes
            .as_ref()
            .and_then(|k| k.namespace.as_deref())
            .map(|n| format!(" --namespace {}", shell_quote(n)))
            .unwrap_or_default();
        lines.push(comment(&format!(
            "  kubectl create secret generic {secret}{ns} \\"
        )));
        let last = s.secrets.len() - 1;
        for (i, sec) in s.secrets.iter().enumerate() {
            let arg = match sec.source {
                SecretSource::File => format!(
                    "--from-file={}={}",
                    sec.name,
                    shell_quote(sec.path.as_deref().unwrap_or_default())
                ),
                SecretSource::Env | SecretSource::Vault => {
                    format!("--from-literal={}=\"${}\"", sec.name, host_var(sec))
                }
            };
            let cont = if i == last { "" } else { " \\" };
            lines.push(comment(&format!("    {arg}{cont}")));
        }
    }
    if s.deployment.image.is_none() {
        lines.push(comment(&format!(
            "The image {} is built from deployment.build; build it and make it available to the cluster before applying.",
            built_image(&s.name)
        )));
    }
    lines
}
