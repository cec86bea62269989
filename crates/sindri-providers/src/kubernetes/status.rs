//! Reading the environment back: the workload, its pod, and what the pod's phase,
//! conditions, container states and events mean in words; waiting for readiness;
//! scaling for `stop` and `start`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::Api;
use kube::ResourceExt;
use kube::api::{
    ApiResource, DynamicObject, ListParams, LogParams, Patch, PatchParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use sindri_core::{Deployment, Endpoint, Error, ErrorKind, Progress, Result, Status, StatusState};
use sindri_spec::ProviderKind;

use super::apply::pod_selector;
use super::connect::{Conn, Timeouts, known, rbac_name, resource};
use super::manifests::owned_by;

/// Where a deployment's workload is.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub ns: String,
    pub ar: ApiResource,
    pub name: String,
}

/// The workload of a record: from its details, else the built-in template's
/// StatefulSet named after the environment, in the provider's namespace.
pub(crate) fn target(conn: &Conn, d: &Deployment) -> Target {
    let ns = d
        .detail("namespace")
        .map(str::to_string)
        .unwrap_or_else(|| conn.namespace.clone());
    let (ar, name) = match d.detail("workload").and_then(|w| w.split_once('/')) {
        Some((kind, name)) => (
            resource("apps/v1", kind).unwrap_or_else(|_| known("StatefulSet")),
            name.to_string(),
        ),
        None => (known("StatefulSet"), d.name.clone()),
    };
    Target { ns, ar, name }
}

/// The workload when it exists and is this environment's; someone else's object of
/// that name counts as absent.
pub(crate) async fn workload(
    conn: &Conn,
    d: &Deployment,
    t: &Target,
) -> Result<Option<DynamicObject>> {
    let obj = conn
        .api(&t.ar, &t.ns)
        .get_opt(&t.name)
        .await
        .map_err(|e| conn.error("get", &rbac_name(&t.ar), Some(&t.name), &t.ns, e))?;
    Ok(obj.filter(|o| {
        owned_by(o.labels(), &d.name, &d.project) && o.metadata.deletion_timestamp.is_none()
    }))
}

/// The workload, or NotFound.
pub(crate) async fn require_workload(
    conn: &Conn,
    d: &Deployment,
    t: &Target,
) -> Result<DynamicObject> {
    workload(conn, d, t)
        .await?
        .ok_or_else(|| not_deployed(d, t))
}

pub(crate) fn not_deployed(d: &Deployment, t: &Target) -> Error {
    Error::not_found(format!(
        "environment `{}` is not deployed: there is no {} `{}` of it in namespace `{}`",
        d.name, t.ar.kind, t.name, t.ns
    ))
    .with_provider(ProviderKind::Kubernetes)
    .with_hint("run `sindri deploy` first")
}

fn replicas(w: &DynamicObject) -> i64 {
    w.data
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The workload's pods, newest first.
pub(crate) async fn pods(conn: &Conn, w: &DynamicObject, ns: &str) -> Result<Vec<Pod>> {
    let Some(sel) = pod_selector(w) else {
        return Ok(Vec::new());
    };
    let list = Api::<Pod>::namespaced(conn.client.clone(), ns)
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(|e| conn.error("list", "pods", None, ns, e))?;
    let mut items = list.items;
    items.sort_by(|a, b| {
        b.metadata
            .creation_timestamp
            .cmp(&a.metadata.creation_timestamp)
    });
    Ok(items)
}

/// The pod to exec into: running and not terminating. Errors say why there is none.
pub(crate) async fn running_pod(conn: &Conn, d: &Deployment) -> Result<(String, String, String)> {
    let t = target(conn, d);
    let w = require_workload(conn, d, &t).await?;
    if replicas(&w) == 0 {
        return Err(stopped(d));
    }
    let pods = pods(conn, &w, &t.ns).await?;
    let pod = pods.iter().find(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    match pod {
        Some(p) => {
            let container = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_else(|| d.name.clone());
            Ok((t.ns, p.name_any(), container))
        }
        None => {
            let why = match pods.first() {
                Some(p) => explain(p, &[]).text(),
                None => "it has no pod yet".to_string(),
            };
            Err(Error::invalid(format!("environment `{}` is not running: {why}", d.name))
                .with_provider(ProviderKind::Kubernetes)
                .with_hint("`sindri status` explains what the pod is waiting for; `sindri deploy` finishes a deploy"))
        }
    }
}

fn stopped(d: &Deployment) -> Error {
    Error::invalid(format!("environment `{}` is stopped (scaled to 0)", d.name))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("start it with `sindri start`, or `sindri deploy`")
}

/// What a pod's state means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Health {
    /// Ready to use.
    Ready,
    /// On its way (or waiting for something that may still come).
    Progressing(String),
    /// Cannot be scheduled: no node fits (GPU, selector, resources).
    Unschedulable(String),
    /// Will not get better by waiting.
    Failed(ErrorKind, String, &'static str),
}

impl Health {
    pub(crate) fn text(&self) -> String {
        match self {
            Health::Ready => "the pod is ready".to_string(),
            Health::Progressing(s) | Health::Unschedulable(s) | Health::Failed(_, s, _) => {
                s.clone()
            }
        }
    }
}

const IMAGE_HINT: &str = "check deployment.image and that the cluster can pull it (a private registry needs an imagePullSecret); \
a locally built image must be loaded into a kind or k3d cluster first (`sindri k8s load IMAGE`)";
const CRASH_HINT: &str = "the image's command exits: the container needs a long-running command (the built-in template keeps a shell open with stdin and tty); see `sindri logs`";
const CONFIG_HINT: &str =
    "the pod cannot be created as specified; `kubectl describe pod` shows the details";
const SCHEDULE_HINT: &str = "check providers.kubernetes.node_selector, tolerations and deployment.resources against the cluster's nodes (`kubectl describe nodes`)";

/// Explains a pod from its status and its events (newest last).
pub(crate) fn explain(pod: &Pod, events: &[Event]) -> Health {
    let name = pod.name_any();
    if pod.metadata.deletion_timestamp.is_some() {
        return Health::Progressing(format!("pod {name} is terminating"));
    }
    let Some(status) = &pod.status else {
        return Health::Progressing(format!("pod {name} was created"));
    };
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    if phase == "Failed" || phase == "Succeeded" {
        return Health::Failed(
            ErrorKind::Platform,
            format!(
                "pod {name} ended ({phase}){}",
                status
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            CRASH_HINT,
        );
    }
    for cs in status.container_statuses.iter().flatten() {
        let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or("");
        let message = waiting.message.as_deref().unwrap_or("");
        match reason {
            "ErrImagePull" | "ImagePullBackOff" => {
                return Health::Failed(
                    ErrorKind::Platform,
                    format!(
                        "the image `{}` cannot be pulled ({reason}): {message}",
                        cs.image
                    ),
                    IMAGE_HINT,
                );
            }
            "InvalidImageName" => {
                return Health::Failed(
                    ErrorKind::Invalid,
                    format!("the image name `{}` is invalid: {message}", cs.image),
                    IMAGE_HINT,
                );
            }
            "CrashLoopBackOff" => {
                let exit = cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| format!(", last exit code {}", t.exit_code))
                    .unwrap_or_default();
                return Health::Failed(
                    ErrorKind::Platform,
                    format!(
                        "the container keeps crashing (CrashLoopBackOff{exit}, restarted {} times)",
                        cs.restart_count
                    ),
                    CRASH_HINT,
                );
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                return Health::Failed(
                    ErrorKind::Platform,
                    format!("the container cannot be created ({reason}): {message}"),
                    CONFIG_HINT,
                );
            }
            _ => {}
        }
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        let scale_up = events
            .iter()
            .rev()
            .find(|e| e.reason.as_deref() == Some("TriggeredScaleUp"));
        if let Some(e) = scale_up {
            return Health::Progressing(format!(
                "the cluster autoscaler is adding a node for the pod: {}",
                e.message.as_deref().unwrap_or("")
            ));
        }
        let message = events
            .iter()
            .rev()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .and_then(|e| e.message.clone())
            .or_else(|| c.message.clone())
            .unwrap_or_default();
        return Health::Unschedulable(explain_unschedulable(pod, &message));
    }
    if conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
    {
        return Health::Ready;
    }
    for cs in status.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("waiting");
            return Health::Progressing(match reason {
                "ContainerCreating" => {
                    format!("creating the container (pulling `{}` if needed)", cs.image)
                }
                other => format!("the container is waiting ({other})"),
            });
        }
    }
    Health::Progressing(format!("pod {name} is {phase}, not ready yet"))
}

/// The scheduler's message in plain words, keeping the message itself.
fn explain_unschedulable(pod: &Pod, message: &str) -> String {
    let spec = pod.spec.as_ref();
    let gpus = spec
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(sindri_render::kubernetes::GPU_RESOURCE))
        .map(|q| q.0.clone());
    let lead = if message.contains(&format!(
        "Insufficient {}",
        sindri_render::kubernetes::GPU_RESOURCE
    )) {
        format!(
            "no node has {} free {} GPU(s)",
            gpus.unwrap_or_else(|| "enough".into()),
            sindri_render::kubernetes::GPU_RESOURCE
        )
    } else if message.contains("didn't match Pod's node affinity/selector")
        || message.contains("node selector")
    {
        let sel: Vec<String> = spec
            .and_then(|s| s.node_selector.as_ref())
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        if sel.is_empty() {
            "no node matches the pod's node affinity".to_string()
        } else {
            format!("no node matches the node selector {}", sel.join(","))
        }
    } else if message.contains("Insufficient cpu") || message.contains("Insufficient memory") {
        "no node has enough free CPU or memory for deployment.resources".to_string()
    } else if message.contains("untolerated taint") || message.contains("taint") {
        "every fitting node has a taint the pod does not tolerate".to_string()
    } else {
        "the pod cannot be scheduled".to_string()
    };
    if message.is_empty() {
        lead
    } else {
        format!("{lead} (scheduler: {message})")
    }
}

/// Events about a pod, oldest first. Missing permission to read events is not an
/// error: the pod's own status still explains most things.
async fn events(conn: &Conn, pod: &Pod, ns: &str) -> Vec<Event> {
    let fs = format!("involvedObject.name={}", pod.name_any());
    match Api::<Event>::namespaced(conn.client.clone(), ns)
        .list(&ListParams::default().fields(&fs))
        .await
    {
        Ok(l) => l.items,
        Err(_) => Vec::new(),
    }
}

/// The last lines of the container's previous (crashed) run, else of its current one.
async fn last_lines(conn: &Conn, pod: &str, ns: &str) -> String {
    let api = Api::<Pod>::namespaced(conn.client.clone(), ns);
    for previous in [true, false] {
        let lp = LogParams {
            previous,
            tail_lines: Some(10),
            ..Default::default()
        };
        if let Ok(text) = api.logs(pod, &lp).await
            && !text.trim().is_empty()
        {
            return text.trim_end().to_string();
        }
    }
    String::new()
}

/// The health of the workload's newest pod, with events and crash logs read.
async fn pod_health(conn: &Conn, pods: &[Pod], ns: &str) -> Option<(Health, String)> {
    let pod = pods
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .or(pods.first())?;
    let mut health = explain(pod, &[]);
    if matches!(health, Health::Unschedulable(_)) {
        health = explain(pod, &events(conn, pod, ns).await);
    }
    if let Health::Failed(kind, text, hint) = &health
        && text.contains("CrashLoopBackOff")
    {
        let lines = last_lines(conn, &pod.name_any(), ns).await;
        if !lines.is_empty() {
            health = Health::Failed(*kind, format!("{text}; last log lines:\n{lines}"), hint);
        }
    }
    Some((health, pod.name_any()))
}

/// `status`.
pub(crate) async fn status(conn: &Conn, d: &Deployment) -> Result<Status> {
    let t = target(conn, d);
    let Some(w) = workload(conn, d, &t).await? else {
        return Ok(Status::new(StatusState::Missing));
    };
    let mut details = BTreeMap::from([
        ("namespace".to_string(), t.ns.clone()),
        ("context".to_string(), conn.context.clone()),
        ("workload".to_string(), format!("{}/{}", t.ar.kind, t.name)),
    ]);
    if let Some(image) = w
        .data
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
    {
        details.insert("image".into(), image.to_string());
    }
    let pods = pods(conn, &w, &t.ns).await?;
    let endpoints = endpoints(conn, d, &t).await?;
    let mut s = if replicas(&w) == 0 {
        let mut s = Status::new(StatusState::Stopped);
        if !pods.is_empty() {
            s.message = Some("scaled to 0; the pod is shutting down".into());
        }
        s
    } else {
        match pod_health(conn, &pods, &t.ns).await {
            None => {
                let mut s = Status::new(StatusState::Starting);
                s.message = Some("waiting for the controller to create the pod".into());
                s
            }
            Some((health, pod)) => {
                details.insert("pod".into(), pod.clone());
                if let Some(p) = pods.iter().find(|p| p.name_any() == pod) {
                    if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                        details.insert("node".into(), node);
                    }
                    if let Some(phase) = p.status.as_ref().and_then(|s| s.phase.clone()) {
                        details.insert("phase".into(), phase);
                    }
                }
                match health {
                    Health::Ready => Status::new(StatusState::Running),
                    Health::Progressing(m) | Health::Unschedulable(m) => {
                        let mut s = Status::new(StatusState::Starting);
                        s.message = Some(m);
                        s
                    }
                    Health::Failed(_, m, _) => {
                        let mut s = Status::new(StatusState::Failed);
                        s.message = Some(m);
                        s
                    }
                }
            }
        }
    };
    s.endpoints = endpoints;
    s.details = details;
    Ok(s)
}

/// The environment's Service ports as addresses.
async fn endpoints(conn: &Conn, d: &Deployment, t: &Target) -> Result<Vec<Endpoint>> {
    let api = Api::<Service>::namespaced(conn.client.clone(), &t.ns);
    let svc = api
        .get_opt(&t.name)
        .await
        .map_err(|e| conn.error("get", "services", Some(&t.name), &t.ns, e))?;
    let Some(svc) = svc.filter(|s| owned_by(s.labels(), &d.name, &d.project)) else {
        return Ok(Vec::new());
    };
    let Some(spec) = &svc.spec else {
        return Ok(Vec::new());
    };
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        let address = match (spec.type_.as_deref(), &ingress, p.node_port) {
            (Some("LoadBalancer"), Some(host), _) => format!("{host}:{}", p.port),
            (Some("NodePort") | Some("LoadBalancer"), _, Some(np)) => format!("<any node>:{np}"),
            _ => format!(
                "{}.{}.svc:{} (in-cluster; `kubectl port-forward svc/{} {}:{} -n {}`)",
                t.name, t.ns, p.port, t.name, p.port, p.port, t.ns
            ),
        };
        out.push(Endpoint {
            name: format!("port {}/{proto}", p.port),
            address,
        });
    }
    Ok(out)
}

/// Whether the workload's controller reports every replica updated and ready.
fn workload_ready(w: &DynamicObject) -> bool {
    let want = replicas(w);
    let s = |k: &str| {
        w.data
            .pointer(&format!("/status/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let generation = w.metadata.generation.unwrap_or(0);
    s("observedGeneration") >= generation
        && s("readyReplicas") >= want
        && s("updatedReplicas") >= want
        && (want == 0 || s("replicas") == want)
}

/// Waits until the workload is ready, watching its pods and saying what they wait
/// for; fails at once on what waiting cannot fix (image pull, crash loop), and on a
/// pod no node can take unless a cluster autoscaler is adding one.
pub(crate) async fn wait_ready(
    conn: &Conn,
    ar: &ApiResource,
    name: &str,
    ns: &str,
    progress: &dyn Progress,
    timeouts: Timeouts,
) -> Result<()> {
    let start = tokio::time::Instant::now();
    let mut unschedulable_since: Option<tokio::time::Instant> = None;
    let mut last_message = String::new();
    let mut watch = None;
    let pods_api = Api::<Pod>::namespaced(conn.stream.clone(), ns);
    loop {
        let w = conn
            .api(ar, ns)
            .get_opt(name)
            .await
            .map_err(|e| conn.error("get", &rbac_name(ar), Some(name), ns, e))?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "{} `{name}` disappeared while waiting for it",
                    ar.kind
                ))
                .with_provider(ProviderKind::Kubernetes)
            })?;
        let pods = pods(conn, &w, ns).await?;
        // The controller's counts lag behind a pod that was just deleted (a restart
        // for new secrets): the pods themselves must be ready too.
        let ready_pods = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && explain(p, &[]) == Health::Ready)
            .count() as i64;
        if workload_ready(&w) && ready_pods >= replicas(&w) {
            return Ok(());
        }
        let mut text = "waiting for the controller to create the pod".to_string();
        if let Some((health, _)) = pod_health(conn, &pods, ns).await {
            text = health.text();
            match &health {
                Health::Failed(kind, m, hint) => {
                    return Err(Error::new(*kind, format!("`{name}` cannot start: {m}"))
                        .with_provider(ProviderKind::Kubernetes)
                        .with_hint(format!(
                            "{hint}; the objects stay deployed: fix sindri.yaml and deploy again, or `sindri destroy`"
                        )));
                }
                Health::Unschedulable(m) => {
                    let since = *unschedulable_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= timeouts.unschedulable {
                        return Err(Error::new(
                            ErrorKind::Capacity,
                            format!("`{name}` cannot be scheduled: {m}"),
                        )
                        .with_provider(ProviderKind::Kubernetes)
                        .with_hint(format!(
                            "{SCHEDULE_HINT}; the objects stay deployed and the pod is scheduled when a node fits, or `sindri destroy`"
                        )));
                    }
                }
                _ => unschedulable_since = None,
            }
        }
        if text != last_message {
            progress.message(&text);
            last_message = text.clone();
        }
        if start.elapsed() >= timeouts.ready {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "`{name}` was not ready after {}s: {text}",
                    timeouts.ready.as_secs()
                ),
            )
            .with_provider(ProviderKind::Kubernetes)
            .with_hint("`sindri status` shows what it waits for; `sindri deploy` waits again"));
        }
        // Wait for the next pod event (or a few seconds, whichever comes first).
        if watch.is_none()
            && let Some(sel) = pod_selector(&w)
        {
            let rv = pods
                .iter()
                .filter_map(|p| p.metadata.resource_version.clone())
                .max_by_key(|v| v.parse::<u64>().unwrap_or(0))
                .unwrap_or_else(|| "0".into());
            let wp = WatchParams::default().labels(&sel).timeout(60);
            match pods_api.watch(&wp, &rv).await {
                Ok(s) => watch = Some(s.boxed()),
                Err(e) => return Err(conn.error("watch", "pods", None, ns, e)),
            }
        }
        match &mut watch {
            Some(stream) => match tokio::time::timeout(Duration::from_secs(3), stream.next()).await
            {
                Ok(Some(Ok(WatchEvent::Error(_)))) | Ok(Some(Err(_))) | Ok(None) => watch = None,
                _ => {}
            },
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Sets the workload's replicas through the scale subresource.
pub(crate) async fn scale(conn: &Conn, t: &Target, replicas: i32) -> Result<()> {
    let api = conn.api(&t.ar, &t.ns);
    api.patch_scale(
        &t.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map_err(|e| {
        conn.error(
            "patch",
            &format!("{}/scale", rbac_name(&t.ar)),
            Some(&t.name),
            &t.ns,
            e,
        )
    })?;
    Ok(())
}

/// Waits until the workload has no pods left (after scaling to 0), bounded.
pub(crate) async fn wait_no_pods(conn: &Conn, w: &DynamicObject, ns: &str) -> Result<()> {
    let mut delay = Duration::from_millis(100);
    for _ in 0..80 {
        if pods(conn, w, ns).await?.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    Ok(())
}
