//! What sindri applies: the objects of `kubernetes.yaml` (the same ones `sindri export
//! kubernetes` writes, or the documents of the project's override of that template)
//! and the Secret holding the resolved secret values, which no file ever contains.

use std::collections::BTreeMap;

use base64::Engine as _;
use kube::api::ApiResource;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sindri_core::{Error, RenderedArtifact, ResolvedSpec, Result};
use sindri_render::{ExportFormat, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, Renderer};
use sindri_spec::ProviderKind;

use super::connect::resource;

/// Annotation on the Secret: the hash of the deployed spec, so `list_owned` can rebuild
/// a deployment record from the cluster alone.
pub const ANNOTATION_SPEC_HASH: &str = "sindri.spec-hash";
/// Annotation on the Secret: a one-way hash of the secret values, so a changed value is
/// noticed (and the pod restarted) without reading the values back.
pub const ANNOTATION_SECRETS_HASH: &str = "sindri.secrets-hash";

/// The template a project may override.
const TEMPLATE: &str = "kubernetes.yaml";

/// One object to apply.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    /// Where it lives in the API.
    pub ar: ApiResource,
    /// Its name.
    pub name: String,
    /// The body sent with server-side apply.
    pub body: Value,
    /// The Secret sindri builds (compared by hash annotations, never dry-run).
    pub is_secret: bool,
}

impl Desired {
    /// `StatefulSet dev`, for plans and messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.ar.kind, self.name)
    }
}

/// Everything `deploy` applies, in order (the Secret first: the pod refers to it), and
/// the workload sindri scales and execs into.
#[derive(Debug, Clone)]
pub(crate) struct Manifests {
    pub objects: Vec<Desired>,
    /// Index into `objects` of the StatefulSet (or, in an override, Deployment).
    pub workload: usize,
    /// `kubernetes.yaml` as `sindri export kubernetes` writes it.
    pub file: RenderedArtifact,
}

impl Manifests {
    /// The workload object.
    pub fn workload(&self) -> &Desired {
        &self.objects[self.workload]
    }

    /// The artifacts `plan` shows: the file, and the Secret with its values redacted.
    pub fn artifacts(&self) -> Vec<RenderedArtifact> {
        let mut out = vec![self.file.clone()];
        if let Some(secret) = self.objects.iter().find(|o| o.is_secret) {
            let mut shown = secret.body.clone();
            if let Some(data) = shown.get_mut("data").and_then(Value::as_object_mut) {
                for v in data.values_mut() {
                    *v = Value::String("<redacted>".into());
                }
            }
            let yaml = serde_yaml::to_string(&shown).unwrap_or_default();
            out.push(RenderedArtifact {
                name: format!("{}.yaml", secret.name),
                content: format!(
                    "# Created by sindri from the resolved secret values; the values are never shown.\n{yaml}"
                ),
            });
        }
        out
    }
}

/// The ownership labels of the environment, as a label selector.
pub(crate) fn selector(name: &str, project: &str) -> String {
    format!("{LABEL_MANAGED}=true,{LABEL_ENVIRONMENT}={name},{LABEL_PROJECT}={project}")
}

/// True when `labels` mark the object as this environment's.
pub(crate) fn owned_by(labels: &BTreeMap<String, String>, name: &str, project: &str) -> bool {
    labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
        && labels.get(LABEL_ENVIRONMENT).map(String::as_str) == Some(name)
        && labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
}

/// Builds the objects for `spec` in namespace `ns`.
pub(crate) fn build(spec: &ResolvedSpec, ns: &str) -> Result<Manifests> {
    let overrides = spec.base_dir.join(".sindri").join("templates");
    let renderer = Renderer::new(Some(&overrides))?;
    let file = renderer
        .render(ExportFormat::Kubernetes, spec)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("rendering kubernetes.yaml produced no file"))?;
    let overridden = renderer.overrides().any(|(n, _)| n == TEMPLATE);
    let bodies = if overridden {
        parse_documents(
            &file.content,
            &overrides.join(TEMPLATE).display().to_string(),
        )?
    } else {
        sindri_render::kubernetes::objects(spec)?
    };

    let mut objects = vec![secret(spec)];
    let mut workload = None;
    for (i, body) in bodies.into_iter().enumerate() {
        let d = desired(body, spec, ns, i + 1, overridden)?;
        if workload.is_none() && matches!(d.ar.kind.as_str(), "StatefulSet" | "Deployment") {
            workload = Some(objects.len());
        }
        objects.push(d);
    }
    let Some(workload) = workload else {
        return Err(Error::invalid(
            "kubernetes.yaml has no StatefulSet or Deployment: sindri needs one workload to run the environment",
        )
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("keep the StatefulSet of the built-in template in .sindri/templates/kubernetes.yaml"));
    };
    Ok(Manifests {
        objects,
        workload,
        file,
    })
}

/// The documents of a rendered multi-document YAML file, skipping empty ones.
fn parse_documents(text: &str, origin: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::to_value(
            <serde_yaml::Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
                Error::invalid(format!(
                    "the rendered {origin} is not valid YAML (document {}): {e}",
                    i + 1
                ))
                .with_provider(ProviderKind::Kubernetes)
            })?,
        )
        .map_err(|e| {
            Error::invalid(format!(
                "document {} of the rendered {origin} cannot be sent to the API: {e}",
                i + 1
            ))
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn desired(
    body: Value,
    spec: &ResolvedSpec,
    ns: &str,
    n: usize,
    overridden: bool,
) -> Result<Desired> {
    let origin = if overridden {
        "the overridden kubernetes.yaml"
    } else {
        "kubernetes.yaml"
    };
    let api_version = body.get("apiVersion").and_then(Value::as_str);
    let kind = body.get("kind").and_then(Value::as_str);
    let name = body.pointer("/metadata/name").and_then(Value::as_str);
    let (Some(api_version), Some(kind), Some(name)) = (api_version, kind, name) else {
        return Err(Error::invalid(format!(
            "object {n} of {origin} lacks apiVersion, kind or metadata.name"
        ))
        .with_provider(ProviderKind::Kubernetes));
    };
    if let Some(obj_ns) = body.pointer("/metadata/namespace").and_then(Value::as_str)
        && obj_ns != ns
    {
        return Err(Error::invalid(format!(
            "{kind} {name} in {origin} is in namespace `{obj_ns}`, but sindri deploys to `{ns}`"
        ))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("set providers.kubernetes.namespace to the namespace the objects name"));
    }
    let labels: BTreeMap<String, String> = body
        .pointer("/metadata/labels")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if !owned_by(&labels, spec.name(), &spec.project) {
        return Err(Error::invalid(format!(
            "{kind} {name} in {origin} lacks sindri's ownership labels ({})",
            selector(spec.name(), &spec.project)
        ))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("keep `labels` from the built-in template on every object: sindri only touches objects carrying them"));
    }
    Ok(Desired {
        ar: resource(api_version, kind)?,
        name: name.to_string(),
        body,
        is_secret: false,
    })
}

/// A one-way hash of the secrets (names, values, mounts).
pub(crate) fn secrets_hash(spec: &ResolvedSpec) -> String {
    let mut h = Sha256::new();
    for s in &spec.secrets {
        h.update(s.name.as_bytes());
        h.update([0]);
        h.update(s.value.expose().as_bytes());
        h.update([0]);
        h.update(s.mount.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Secret `<name>-secrets` with the resolved values (always created: it also
/// carries the spec hash that `list_owned` reads back).
fn secret(spec: &ResolvedSpec) -> Desired {
    let name = sindri_render::kubernetes::secret_name(spec.name());
    let labels: Map<String, Value> = sindri_render::labels(spec)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let data: Map<String, Value> = spec
        .secrets
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(s.value.expose())),
            )
        })
        .collect();
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                ANNOTATION_SPEC_HASH: spec.spec_hash(),
                ANNOTATION_SECRETS_HASH: secrets_hash(spec),
            },
        },
        "type": "Opaque",
    });
    if !data.is_empty() {
        body["data"] = Value::Object(data);
    }
    Desired {
        ar: super::connect::known("Secret"),
        name,
        body,
        is_secret: true,
    }
}

/// Replaces every secret value in `text` with `***`: API messages may quote what they
/// were sent.
pub(crate) fn redact(text: &str, spec: &ResolvedSpec) -> String {
    let mut out = text.to_string();
    for s in &spec.secrets {
        let v = s.value.expose();
        if !v.is_empty() {
            out = out.replace(v, "***");
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            out = out.replace(&b64, "***");
        }
    }
    out
}
