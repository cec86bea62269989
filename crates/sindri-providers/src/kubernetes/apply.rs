//! `plan`, `deploy`, `destroy` and `list_owned`: server-side apply under the field
//! manager `sindri`, forced only on objects whose labels say they are this
//! environment's; everything else of that name is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use sindri_core::{
    DeployOptions, Deployment, DeploymentState, DestroyOptions, DestroyReport, Error, ErrorKind,
    Plan, PlanAction, PlanStep, Progress, ResolvedSpec, Result, unix_now,
};
use sindri_render::{LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT};
use sindri_spec::ProviderKind;
use sindri_spec::quantity::parse_k8s_quantity;

use super::connect::{Conn, Timeouts, known, rbac_name};
use super::manifests::{
    ANNOTATION_SECRETS_HASH, ANNOTATION_SPEC_HASH, Desired, Manifests, owned_by, redact, selector,
};
use super::status::wait_ready;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "sindri";

/// Kinds sindri looks through for its labelled objects (orphans on deploy, everything
/// on destroy). PersistentVolumeClaims are handled apart: they hold data.
pub(crate) const OWNED_KINDS: [&str; 5] = [
    "StatefulSet",
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
];

/// One step of a plan, with what deploy needs to carry it out.
struct Step {
    action: PlanAction,
    label: String,
    reason: Option<String>,
    /// Index into the manifests' objects; `None` for an orphan to delete.
    index: Option<usize>,
    /// What the cluster has now.
    live: Option<DynamicObject>,
    /// For an orphan: where it is.
    orphan: Option<ApiResource>,
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict()
}

/// Compares what is desired with what the cluster has and decides each object's fate.
/// Refuses (Conflict) when an object of a desired name is not this environment's.
async fn analyse(conn: &Conn, spec: &ResolvedSpec, m: &Manifests, ns: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, d) in m.objects.iter().enumerate() {
        let api = conn.api(&d.ar, ns);
        let live = api
            .get_opt(&d.name)
            .await
            .map_err(|e| conn.error("get", &rbac_name(&d.ar), Some(&d.name), ns, e))?;
        let (action, reason) = match &live {
            None => (PlanAction::Create, None),
            Some(l) => {
                refuse_foreign(l, &d.ar.kind, &d.name, spec, ns, "")?;
                if l.metadata.deletion_timestamp.is_some() {
                    (
                        PlanAction::Replace,
                        Some("the previous object is still being deleted".to_string()),
                    )
                } else if d.is_secret {
                    compare_secret(d, l)
                } else if let Some(reason) =
                    (i == m.workload).then(|| immutable_change(d, l)).flatten()
                {
                    (PlanAction::Replace, Some(reason))
                } else {
                    let dry = api
                        .patch(&d.name, &apply_params().dry_run(), &Patch::Apply(&d.body))
                        .await
                        .map_err(|e| {
                            conn.error("patch", &rbac_name(&d.ar), Some(&d.name), ns, e)
                        })?;
                    let changed = diff_paths(&comparable(&dry), &comparable(l));
                    if changed.is_empty() {
                        (PlanAction::Keep, None)
                    } else {
                        (
                            PlanAction::Update,
                            Some(format!("changed: {}", changed.join(", "))),
                        )
                    }
                }
            }
        };
        steps.push(Step {
            action,
            label: d.label(),
            reason,
            index: Some(i),
            live,
            orphan: None,
        });
    }
    refuse_foreign_claims(conn, spec, m.workload(), ns).await?;
    // Objects this environment created earlier that the spec no longer has (a Service
    // after its ports were removed).
    let sel = selector(spec.name(), &spec.project);
    for kind in OWNED_KINDS {
        let ar = known(kind);
        let list = conn
            .api(&ar, ns)
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| conn.error("list", &rbac_name(&ar), None, ns, e))?;
        for obj in list.items {
            let name = obj.name_any();
            let wanted = m
                .objects
                .iter()
                .any(|d| d.ar.kind == ar.kind && d.name == name);
            if !wanted && obj.metadata.deletion_timestamp.is_none() {
                steps.push(Step {
                    action: PlanAction::Delete,
                    label: format!("{kind} {name}"),
                    reason: Some("no longer in the spec".into()),
                    index: None,
                    live: Some(obj),
                    orphan: Some(ar.clone()),
                });
            }
        }
    }
    Ok(steps)
}

/// Refuses to deploy a StatefulSet whose pod would mount someone else's volume claim:
/// the controller names the claims `<template>-<statefulset>-<ordinal>` and adopts a
/// claim that already has that name, whoever made it.
async fn refuse_foreign_claims(
    conn: &Conn,
    spec: &ResolvedSpec,
    workload: &Desired,
    ns: &str,
) -> Result<()> {
    if workload.ar.kind != "StatefulSet" {
        return Ok(());
    }
    let replicas = workload
        .body
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let templates: Vec<&str> = workload
        .body
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    let pvc = known("PersistentVolumeClaim");
    for template in templates {
        for ordinal in 0..replicas.max(1) {
            let name = format!("{template}-{}-{ordinal}", workload.name);
            let live = conn
                .api(&pvc, ns)
                .get_opt(&name)
                .await
                .map_err(|e| conn.error("get", "persistentvolumeclaims", Some(&name), ns, e))?;
            if let Some(live) = live {
                let why = format!(
                    "; StatefulSet {} would mount it as its `{template}` volume",
                    workload.name
                );
                refuse_foreign(&live, &pvc.kind, &name, spec, ns, &why)?;
            }
        }
    }
    Ok(())
}

/// Refuses an object that exists under a desired name but is not this environment's.
/// `why` adds to the message (after the owner), e.g. how the name would be used.
fn refuse_foreign(
    live: &DynamicObject,
    kind: &str,
    name: &str,
    spec: &ResolvedSpec,
    ns: &str,
    why: &str,
) -> Result<()> {
    let labels = live.labels();
    if owned_by(labels, spec.name(), &spec.project) {
        return Ok(());
    }
    let whose = match (
        labels.get(LABEL_MANAGED).map(String::as_str),
        labels.get(LABEL_ENVIRONMENT),
        labels.get(LABEL_PROJECT),
    ) {
        (Some("true"), Some(env), Some(project)) => format!(
            "it belongs to sindri environment `{env}` of another project (project id {project})"
        ),
        _ => "it was not created by sindri".to_string(),
    };
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "a {kind} named `{name}` already exists in namespace `{ns}` and {whose}{why}; sindri will not change, use or remove it"
        ),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint(
        "rename the environment (`name` in sindri.yaml), deploy to another namespace (providers.kubernetes.namespace), or remove that object yourself",
    ))
}

/// Secrets are compared through their hash annotations: values are never read back.
fn compare_secret(d: &Desired, live: &DynamicObject) -> (PlanAction, Option<String>) {
    let ann = |v: &Value, key: &str| {
        v.pointer(&format!("/metadata/annotations/{}", key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let live_ann = live.annotations();
    let keys = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let desired_keys = keys(d.body.get("data"));
    let live_keys = keys(live.data.get("data"));
    let mut reasons = Vec::new();
    if desired_keys != live_keys {
        reasons.push("secrets added or removed");
    } else if ann(&d.body, ANNOTATION_SECRETS_HASH).as_ref()
        != live_ann.get(ANNOTATION_SECRETS_HASH)
    {
        reasons.push("secret values changed");
    }
    if ann(&d.body, ANNOTATION_SPEC_HASH).as_ref() != live_ann.get(ANNOTATION_SPEC_HASH) {
        reasons.push("spec hash changed");
    }
    if reasons.is_empty() {
        (PlanAction::Keep, None)
    } else {
        (PlanAction::Update, Some(reasons.join("; ")))
    }
}

/// Changes the API server refuses to make to a live StatefulSet (selector, service name,
/// volume claim templates): the StatefulSet must be recreated. Its volumes are kept.
fn immutable_change(d: &Desired, live: &DynamicObject) -> Option<String> {
    if d.ar.kind != "StatefulSet" {
        return None;
    }
    let live_spec = live.data.get("spec").cloned().unwrap_or(Value::Null);
    let want_spec = d.body.get("spec").cloned().unwrap_or(Value::Null);
    if want_spec.get("selector") != live_spec.get("selector") {
        return Some(
            "the pod selector changed; the StatefulSet is recreated (volumes are kept)".into(),
        );
    }
    if want_spec.get("serviceName") != live_spec.get("serviceName") {
        return Some("serviceName changed; the StatefulSet is recreated (volumes are kept)".into());
    }
    let claims = |spec: &Value| -> Vec<(String, Value, Value, Quantity)> {
        spec.get("volumeClaimTemplates")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c.pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            c.pointer("/spec/accessModes")
                                .cloned()
                                .unwrap_or(Value::Null),
                            c.pointer("/spec/storageClassName")
                                .cloned()
                                .unwrap_or(Value::Null),
                            Quantity(c.pointer("/spec/resources/requests/storage").cloned()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if claims(&want_spec) != claims(&live_spec) {
        return Some(
            "volumes changed (added, removed, resized or another storage class): the StatefulSet is recreated; existing volumes keep their data and size".into(),
        );
    }
    None
}

/// A quantity as sent or as read back, equal to another when their values are equal:
/// the API server rewrites `300000000` as `300M`, `0.5` as `500m`.
#[derive(Debug)]
struct Quantity(Option<Value>);

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        let value = |q: &Quantity| match &q.0 {
            Some(Value::String(s)) => parse_k8s_quantity(s).ok(),
            Some(Value::Number(n)) => parse_k8s_quantity(&n.to_string()).ok(),
            _ => None,
        };
        match (value(self), value(other)) {
            (Some(a), Some(b)) => a == b,
            _ => self.0 == other.0,
        }
    }
}

/// An object without the fields the server maintains, for comparing.
fn comparable(obj: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "managedFields",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    v
}

/// Paths where `a` and `b` differ, at most six.
fn diff_paths(a: &Value, b: &Value) -> Vec<String> {
    fn go(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
        if out.len() >= 6 || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    go(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &p,
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    go(p, q, &format!("{path}[{i}]"), out);
                }
            }
            _ => out.push(if path.is_empty() {
                "(object)".into()
            } else {
                path.to_string()
            }),
        }
    }
    let mut out = Vec::new();
    go(a, b, "", &mut out);
    out
}

/// Rebuilds an error with every secret value removed from its text.
fn redact_error(e: Error, spec: &ResolvedSpec) -> Error {
    let mut out = Error::new(e.kind(), redact(e.message(), spec));
    if let Some(h) = e.hint() {
        out = out.with_hint(redact(h, spec));
    }
    match e.provider() {
        Some(p) => out.with_provider(p),
        None => out,
    }
}

/// `plan`.
pub(crate) async fn plan(conn: &Conn, spec: &ResolvedSpec, m: &Manifests) -> Result<Plan> {
    let ns = conn.namespace.clone();
    let steps = analyse(conn, spec, m, &ns)
        .await
        .map_err(|e| redact_error(e, spec))?;
    Ok(Plan {
        provider: ProviderKind::Kubernetes,
        environment: spec.name().to_string(),
        steps: steps
            .into_iter()
            .map(|s| PlanStep {
                action: s.action,
                resource: s.label,
                reason: s.reason,
            })
            .collect(),
        artifacts: m.artifacts(),
    })
}

/// `deploy`: applies every object, replaces what cannot be changed in place, deletes
/// what the spec dropped, restarts the pod when only secret values changed, then waits
/// for the pod to be ready.
pub(crate) async fn deploy(
    conn: &Conn,
    spec: &ResolvedSpec,
    m: &Manifests,
    opts: DeployOptions,
    progress: &dyn Progress,
    timeouts: Timeouts,
) -> Result<Deployment> {
    let ns = conn.namespace.clone();
    let run = async {
        progress.phase_started("check existing objects");
        let started = std::time::Instant::now();
        let steps = analyse(conn, spec, m, &ns).await?;
        progress.phase_finished("check existing objects", started.elapsed());

        progress.phase_started("apply objects");
        let started = std::time::Instant::now();
        let mut workload_obj = None;
        let mut secrets_changed = false;
        let mut workload_action = PlanAction::Keep;
        for step in &steps {
            if let Some(i) = step.index {
                let d = &m.objects[i];
                if i == m.workload {
                    workload_action = step.action;
                }
                if d.is_secret && step.action == PlanAction::Update {
                    secrets_changed = step.reason.as_deref().is_some_and(|r| r.contains("secret"));
                }
                match step.action {
                    PlanAction::Keep => {
                        if i == m.workload {
                            workload_obj = step.live.clone();
                        }
                        continue;
                    }
                    PlanAction::Replace => {
                        progress.message(&format!(
                            "replacing {}: {}",
                            step.label,
                            step.reason.as_deref().unwrap_or("")
                        ));
                        delete_and_wait(conn, &d.ar, &d.name, &ns).await?;
                    }
                    _ => {}
                }
                progress.message(&format!(
                    "{} {}",
                    if step.action == PlanAction::Create {
                        "create"
                    } else {
                        "apply"
                    },
                    step.label
                ));
                let applied = conn
                    .api(&d.ar, &ns)
                    .patch(&d.name, &apply_params(), &Patch::Apply(&d.body))
                    .await
                    .map_err(|e| conn.error("patch", &rbac_name(&d.ar), Some(&d.name), &ns, e))?;
                if i == m.workload {
                    workload_obj = Some(applied);
                }
            } else if let (Some(ar), Some(live)) = (&step.orphan, &step.live) {
                progress.message(&format!("delete {} (no longer in the spec)", step.label));
                delete(conn, ar, &live.name_any(), &ns).await?;
            }
        }
        progress.phase_finished("apply objects", started.elapsed());
        let workload = workload_obj
            .ok_or_else(|| Error::internal("the workload was neither found nor applied"))?;

        if secrets_changed && workload_action == PlanAction::Keep {
            progress.message("restarting the pod to pick up the changed secrets");
            restart_pods(conn, &workload, &ns).await?;
        }
        if opts.wait {
            progress.phase_started("wait for ready");
            let started = std::time::Instant::now();
            wait_ready(
                conn,
                &m.workload().ar,
                &m.workload().name,
                &ns,
                progress,
                timeouts,
            )
            .await?;
            progress.phase_finished("wait for ready", started.elapsed());
        }
        let mut d = Deployment::creating(
            spec.name(),
            ProviderKind::Kubernetes,
            &spec.project,
            &spec.spec_hash(),
        );
        d.resource_id = workload.uid();
        d.state = if opts.wait {
            DeploymentState::Ready
        } else {
            DeploymentState::Creating
        };
        d.details = details(conn, &ns, &m.workload().ar.kind, &m.workload().name);
        let extra: Vec<String> = m
            .objects
            .iter()
            .filter(|o| !OWNED_KINDS.contains(&o.ar.kind.as_str()) && !is_claim(&o.ar))
            .map(|o| format!("{}/{}", o.ar.api_version, o.ar.kind))
            .collect();
        if !extra.is_empty() {
            d.details.insert("extra_kinds".into(), extra.join(","));
        }
        Ok(d)
    };
    run.await.map_err(|e: Error| redact_error(e, spec))
}

/// The details a record keeps to find the environment again.
pub(crate) fn details(conn: &Conn, ns: &str, kind: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("namespace".to_string(), ns.to_string()),
        ("context".to_string(), conn.context.clone()),
        ("server".to_string(), conn.server.clone()),
        ("workload".to_string(), format!("{kind}/{name}")),
    ])
}

/// Deletes an object in the background (its pods go with it); gone is fine.
async fn delete(conn: &Conn, ar: &ApiResource, name: &str, ns: &str) -> Result<bool> {
    match conn
        .api(ar, ns)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(false),
        Err(e) => Err(conn.error("delete", &rbac_name(ar), Some(name), ns, e)),
    }
}

/// Deletes an object and waits until the API no longer has it.
async fn delete_and_wait(conn: &Conn, ar: &ApiResource, name: &str, ns: &str) -> Result<()> {
    delete(conn, ar, name, ns).await?;
    let mut delay = Duration::from_millis(100);
    for _ in 0..60 {
        let live = conn
            .api(ar, ns)
            .get_opt(name)
            .await
            .map_err(|e| conn.error("get", &rbac_name(ar), Some(name), ns, e))?;
        if live.is_none() {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    Err(Error::new(
        ErrorKind::Transient,
        format!("{} {name} is still being deleted", ar.kind),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint("a finalizer may be holding it; check with `kubectl describe`, then deploy again"))
}

/// The label selector of a workload's pods.
pub(crate) fn pod_selector(workload: &DynamicObject) -> Option<String> {
    let labels = workload
        .data
        .pointer("/spec/selector/matchLabels")?
        .as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Deletes the workload's pods; its controller starts new ones.
async fn restart_pods(conn: &Conn, workload: &DynamicObject, ns: &str) -> Result<()> {
    let Some(sel) = pod_selector(workload) else {
        return Ok(());
    };
    let pods = known_pods();
    let list = conn
        .api(&pods, ns)
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| conn.error("list", "pods", None, ns, e))?;
    for p in list.items {
        delete(conn, &pods, &p.name_any(), ns).await?;
    }
    Ok(())
}

/// True for PersistentVolumeClaims, which hold data and go only with `--volumes`.
fn is_claim(ar: &ApiResource) -> bool {
    ar.group.is_empty() && ar.kind == "PersistentVolumeClaim"
}

fn known_pods() -> ApiResource {
    ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("", "v1", "Pod"), "pods")
}

/// `destroy`: every object labelled for the environment; its volume claims only with
/// `volumes`.
pub(crate) async fn destroy(
    conn: &Conn,
    d: &Deployment,
    ns: &str,
    opts: DestroyOptions,
) -> Result<DestroyReport> {
    let sel = selector(&d.name, &d.project);
    let mut report = DestroyReport::default();
    let mut kinds: Vec<ApiResource> = OWNED_KINDS.iter().map(|k| known(k)).collect();
    if let Some(extra) = d.detail("extra_kinds") {
        for gvk in extra.split(',').filter(|s| !s.is_empty()) {
            // Claims hold data: they are removed below, and only with `--volumes`
            // (records written before that rule may still list them here).
            if let Some((api_version, kind)) = gvk.rsplit_once('/')
                && let Ok(ar) = super::connect::resource(api_version, kind)
                && !is_claim(&ar)
                && !kinds
                    .iter()
                    .any(|k| k.kind == ar.kind && k.group == ar.group)
            {
                kinds.push(ar);
            }
        }
    }
    for ar in &kinds {
        let list = conn
            .api(ar, ns)
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| conn.error("list", &rbac_name(ar), None, ns, e))?;
        for obj in list.items {
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = obj.name_any();
            if delete(conn, ar, &name, ns).await? {
                report.removed.push(format!("{} {name}", ar.kind));
            }
        }
    }
    let pvc = known("PersistentVolumeClaim");
    let claims = conn
        .api(&pvc, ns)
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| conn.error("list", "persistentvolumeclaims", None, ns, e))?;
    for c in claims.items {
        if c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = c.name_any();
        if opts.volumes {
            if delete(conn, &pvc, &name, ns).await? {
                report.removed.push(format!("PersistentVolumeClaim {name}"));
            }
        } else {
            report.kept.push(format!(
                "PersistentVolumeClaim {name} (volume data; `sindri destroy --volumes` removes it, or `kubectl delete pvc {name} -n {ns} --context {}`)",
                conn.context
            ));
        }
    }
    Ok(report)
}

/// `list_owned`: every StatefulSet or Deployment labelled `sindri.managed=true` in
/// every namespace (in the provider's namespace alone when RBAC allows no
/// cluster-wide list), with the spec hash read from its Secret.
pub(crate) async fn list_owned(conn: &Conn) -> Result<Vec<Deployment>> {
    let managed = format!("{LABEL_MANAGED}=true");
    let secrets = list_managed(conn, &known("Secret"), &managed).await?;
    let mut hashes: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for s in &secrets {
        let l = s.labels();
        if let (Some(env), Some(project), Some(hash)) = (
            l.get(LABEL_ENVIRONMENT),
            l.get(LABEL_PROJECT),
            s.annotations().get(ANNOTATION_SPEC_HASH),
        ) {
            hashes.insert(
                (
                    s.namespace().unwrap_or_default(),
                    env.clone(),
                    project.clone(),
                ),
                hash.clone(),
            );
        }
    }
    let mut out = Vec::new();
    for kind in ["StatefulSet", "Deployment"] {
        let ar = known(kind);
        for w in list_managed(conn, &ar, &managed).await? {
            if w.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let l = w.labels();
            let (Some(env), Some(project)) = (l.get(LABEL_ENVIRONMENT), l.get(LABEL_PROJECT))
            else {
                continue;
            };
            let ns = w.namespace().unwrap_or_else(|| conn.namespace.clone());
            let hash = hashes
                .get(&(ns.clone(), env.clone(), project.clone()))
                .cloned()
                .unwrap_or_default();
            let mut d = Deployment::creating(env, ProviderKind::Kubernetes, project, &hash);
            d.resource_id = w.uid();
            let replicas = w
                .data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            d.state = if replicas == 0 {
                DeploymentState::Stopped
            } else {
                DeploymentState::Ready
            };
            d.details = details(conn, &ns, kind, &w.name_any());
            if let Some(t) = &w.metadata.creation_timestamp {
                d.created_at = t.0.as_second();
                d.updated_at = unix_now();
            }
            out.push(d);
        }
    }
    Ok(out)
}

/// Objects of `ar` matching `labels` in every namespace; in the provider's namespace
/// when RBAC forbids the cluster-wide list (a Role, not a ClusterRole, is common).
async fn list_managed(conn: &Conn, ar: &ApiResource, labels: &str) -> Result<Vec<DynamicObject>> {
    let lp = ListParams::default().labels(labels);
    let all: kube::Api<DynamicObject> = kube::Api::all_with(conn.client.clone(), ar);
    match all.list(&lp).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let ns = &conn.namespace;
            Ok(conn
                .api(ar, ns)
                .list(&lp)
                .await
                .map_err(|e| conn.error("list", &rbac_name(ar), None, ns, e))?
                .items)
        }
        Err(e) => Err(conn.error("list", &rbac_name(ar), None, "(all namespaces)", e)),
    }
}
