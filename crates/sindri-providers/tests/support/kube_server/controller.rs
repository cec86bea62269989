//! The simulated StatefulSet and Deployment controllers, scheduler and kubelet.
//!
//! For a StatefulSet the controller creates pod `NAME-i` and its volume claims for
//! each replica; for a Deployment, pods `NAME-HASH-N` (owned by the Deployment itself:
//! there are no ReplicaSets here) whose volumes name existing claims. It deletes pods
//! beyond the replica count or of an older template revision, and keeps the
//! workload's status. A Deployment's pods that mount a claim share one root file
//! system kept with the claim, so data written there survives the pod as a claim's
//! does. The scheduler refuses a pod whose claim does not exist. The scheduler places a pod on a node matching its node
//! selector, tolerations and GPU limit, or marks it Unschedulable with the scheduler's
//! message and a `FailedScheduling` event. The kubelet then moves the pod to Running
//! and Ready, unless the image selects a failure:
//! - an image containing `does-not-exist`: `ErrImagePull`, then `ImagePullBackOff`;
//! - an image containing `crashloop`: the container exits 1 and ends in
//!   `CrashLoopBackOff`, with log lines in its previous run;
//!
//! and a `secretKeyRef` to a missing Secret or key is a `CreateContainerConfigError`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Key, State, exec, now};

/// A simulated node.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// `nvidia.com/gpu` allocatable.
    pub gpus: u64,
    /// Taints as (key, effect).
    pub taints: Vec<(String, String)>,
}

impl Node {
    /// A node with no GPUs, no taints and the usual hostname label.
    pub fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            labels: vec![("kubernetes.io/hostname".into(), name.to_string())],
            gpus: 0,
            taints: Vec::new(),
        }
    }

    /// With a label.
    pub fn label(mut self, k: &str, v: &str) -> Node {
        self.labels.push((k.to_string(), v.to_string()));
        self
    }

    /// With GPUs (tainted `nvidia.com/gpu:NoSchedule`, as GPU node pools usually are).
    pub fn gpus(mut self, n: u64) -> Node {
        self.gpus = n;
        self.taints
            .push(("nvidia.com/gpu".into(), "NoSchedule".into()));
        self
    }
}

/// Server-side defaults, so dry runs and live objects carry them like a real server's.
pub(crate) fn defaults(plural: &str, obj: &mut Value) {
    match plural {
        "statefulsets" => {
            let spec = &mut obj["spec"];
            if spec.get("podManagementPolicy").is_none() {
                spec["podManagementPolicy"] = json!("OrderedReady");
            }
            if spec.get("revisionHistoryLimit").is_none() {
                spec["revisionHistoryLimit"] = json!(10);
            }
            if spec.get("updateStrategy").is_none() {
                spec["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
            if let Some(claims) = spec["volumeClaimTemplates"].as_array_mut() {
                for c in claims {
                    if c["spec"].get("volumeMode").is_none() {
                        c["spec"]["volumeMode"] = json!("Filesystem");
                    }
                }
            }
        }
        "deployments" => {
            let spec = &mut obj["spec"];
            if spec.get("revisionHistoryLimit").is_none() {
                spec["revisionHistoryLimit"] = json!(10);
            }
            if spec.get("progressDeadlineSeconds").is_none() {
                spec["progressDeadlineSeconds"] = json!(600);
            }
            if spec.get("strategy").is_none() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
            }
        }
        "services" if obj["spec"].get("sessionAffinity").is_none() => {
            obj["spec"]["sessionAffinity"] = json!("None");
        }
        _ => {}
    }
}

/// The resource of a workload kind: `statefulsets` or `deployments`.
fn workload_plural(kind: &str) -> Option<&'static str> {
    match kind {
        "StatefulSet" => Some("statefulsets"),
        "Deployment" => Some("deployments"),
        _ => None,
    }
}

/// Runs the controller for a StatefulSet or Deployment soon, off the request's task.
pub(crate) fn reconcile_later(st: Arc<State>, plural: &str, ns: String, name: String) {
    let plural = plural.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        reconcile(&st, &plural, &ns, &name);
    });
}

/// An object was deleted: pods of a StatefulSet go, a claim's data goes, log
/// followers of a pod are woken to end.
pub(crate) fn deleted(st: &Arc<State>, plural: &str, ns: &str, name: &str, obj: &Value) {
    match plural {
        "statefulsets" | "deployments" => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let pods: Vec<String> = {
                let g = st.lock();
                g.objects
                    .iter()
                    .filter(|(k, v)| {
                        k.plural == "pods"
                            && k.ns == ns
                            && v["metadata"]["ownerReferences"][0]["uid"].as_str()
                                == Some(uid.as_str())
                    })
                    .map(|(k, _)| k.name.clone())
                    .collect()
            };
            for p in pods {
                delete_pod(st, ns, &p);
            }
        }
        "pods" => {
            publish(st, "DELETED", obj.clone());
            let _ = st.log_events.send(name.to_string());
            let owner = &obj["metadata"]["ownerReferences"][0];
            if let (Some(name), Some(plural)) = (
                owner["name"].as_str(),
                owner["kind"].as_str().and_then(workload_plural),
            ) {
                reconcile_later(st.clone(), plural, ns.to_string(), name.to_string());
            }
        }
        "persistentvolumeclaims" => {
            let root = match obj["metadata"]["annotations"]["sindri-test/pod"].as_str() {
                Some(pod) => exec::pod_root(st, ns, pod),
                None => st.root.join(ns).join(exec::claim_root(name)),
            };
            let _ = std::fs::remove_dir_all(root);
        }
        _ => {}
    }
}

fn delete_pod(st: &Arc<State>, ns: &str, name: &str) {
    let removed = st.lock().objects.remove(&Key::new("pods", ns, name));
    if let Some(obj) = removed {
        publish(st, "DELETED", obj);
        let _ = st.log_events.send(name.to_string());
    }
}

/// Sends a pod event to watchers.
fn publish(st: &Arc<State>, kind: &str, pod: Value) {
    let rv = {
        let mut g = st.lock();
        g.rv += 1;
        g.rv
    };
    let mut pod = pod;
    pod["metadata"]["resourceVersion"] = json!(rv.to_string());
    if kind != "DELETED" {
        let key = Key::new(
            "pods",
            pod["metadata"]["namespace"].as_str().unwrap_or(""),
            pod["metadata"]["name"].as_str().unwrap_or(""),
        );
        let mut g = st.lock();
        match g.objects.get_mut(&key) {
            Some(stored) => *stored = pod.clone(),
            None => return,
        }
    }
    let _ = st.pod_events.send((rv, kind.to_string(), pod));
}

fn revision(sts: &Value) -> String {
    let text = serde_json::to_string(&sts["spec"]["template"]).unwrap_or_default();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!(
        "{}-{:x}",
        sts["metadata"]["name"].as_str().unwrap_or(""),
        h & 0xffff_ffff
    )
}

/// The label holding a pod's template revision.
fn revision_label(plural: &str) -> &'static str {
    if plural == "deployments" {
        "pod-template-hash"
    } else {
        "controller-revision-hash"
    }
}

/// One pass of the StatefulSet or Deployment controller.
pub(crate) fn reconcile(st: &Arc<State>, plural: &str, ns: &str, name: &str) {
    let Some(sts) = st.lock().objects.get(&Key::new(plural, ns, name)).cloned() else {
        return;
    };
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let rev = revision(&sts);
    let uid = sts["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if plural == "deployments" {
        reconcile_deployment(st, &sts, ns, replicas, &rev, &uid);
        update_status(st, plural, ns, name);
        return;
    }
    let pods: Vec<Value> = {
        let g = st.lock();
        g.objects
            .iter()
            .filter(|(k, v)| {
                k.plural == "pods"
                    && k.ns == ns
                    && v["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid.as_str())
            })
            .map(|(_, v)| v.clone())
            .collect()
    };
    for p in &pods {
        let pname = p["metadata"]["name"].as_str().unwrap_or("");
        let ordinal: usize = pname
            .rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(usize::MAX);
        let stale =
            p["metadata"]["labels"]["controller-revision-hash"].as_str() != Some(rev.as_str());
        if ordinal >= replicas || stale {
            delete_pod(st, ns, pname);
        }
    }
    for i in 0..replicas {
        let pname = format!("{name}-{i}");
        if st
            .lock()
            .objects
            .contains_key(&Key::new("pods", ns, &pname))
        {
            continue;
        }
        create_pod(st, &sts, ns, &pname, &rev);
    }
    update_status(st, plural, ns, name);
}

/// The pods of a Deployment: stale and surplus ones go, missing ones are created.
fn reconcile_deployment(
    st: &Arc<State>,
    d: &Value,
    ns: &str,
    replicas: usize,
    rev: &str,
    uid: &str,
) {
    let name = d["metadata"]["name"].as_str().unwrap_or("");
    let mut current: Vec<String> = Vec::new();
    let owned: Vec<Value> = {
        let g = st.lock();
        g.objects
            .iter()
            .filter(|(k, v)| {
                k.plural == "pods"
                    && k.ns == ns
                    && v["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid)
            })
            .map(|(_, v)| v.clone())
            .collect()
    };
    for p in owned {
        let pname = p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let stale = p["metadata"]["labels"]["pod-template-hash"].as_str() != Some(rev);
        if stale || current.len() >= replicas {
            delete_pod(st, ns, &pname);
        } else {
            current.push(pname);
        }
    }
    while current.len() < replicas {
        let n = {
            let mut g = st.lock();
            g.uid += 1;
            g.uid
        };
        let hash = rev.rsplit('-').next().unwrap_or("0");
        let pname = format!("{name}-{hash}-{n:05}");
        create_pod(st, d, ns, &pname, rev);
        current.push(pname);
    }
}

fn update_status(st: &Arc<State>, plural: &str, ns: &str, name: &str) {
    let mut g = st.lock();
    let Some(sts) = g.objects.get(&Key::new(plural, ns, name)).cloned() else {
        return;
    };
    let rev = revision(&sts);
    let uid = sts["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let pods: Vec<&Value> = g
        .objects
        .iter()
        .filter(|(k, v)| {
            k.plural == "pods"
                && k.ns == ns
                && v["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid.as_str())
        })
        .map(|(_, v)| v)
        .collect();
    let ready = pods
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count();
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"][revision_label(plural)].as_str() == Some(rev.as_str()))
        .count();
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": pods.len(),
        "readyReplicas": ready,
        "currentReplicas": updated,
        "updatedReplicas": updated,
        "currentRevision": rev,
        "updateRevision": rev,
        "availableReplicas": ready,
    });
    if sts["status"] != status {
        g.rv += 1;
        let rv = g.rv;
        if let Some(obj) = g.objects.get_mut(&Key::new(plural, ns, name)) {
            obj["status"] = status;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        }
    }
}

fn create_pod(st: &Arc<State>, sts: &Value, ns: &str, pname: &str, rev: &str) {
    let name = sts["metadata"]["name"].as_str().unwrap_or("");
    let owner_kind = sts["kind"].as_str().unwrap_or("StatefulSet");
    let template = &sts["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    let mut annotations = json!({});
    if owner_kind == "Deployment" {
        labels["pod-template-hash"] = json!(rev);
        let claim = template["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str());
        if let Some(claim) = claim {
            annotations[exec::ROOT_ANNOTATION] = json!(exec::claim_root(claim));
        }
    } else {
        labels["controller-revision-hash"] = json!(rev);
        labels["statefulset.kubernetes.io/pod-name"] = json!(pname);
    }
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pname);
    spec["restartPolicy"] = json!("Always");
    // Volume claims, created once and kept across pod restarts.
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    for c in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let cname = c["metadata"]["name"].as_str().unwrap_or("");
        let claim = format!("{cname}-{pname}");
        let mut claim_labels = c["metadata"]["labels"].clone();
        if let Some(sel) = sts["spec"]["selector"]["matchLabels"].as_object() {
            for (k, v) in sel {
                claim_labels[k] = v.clone();
            }
        }
        let mut g = st.lock();
        let key = Key::new("persistentvolumeclaims", ns, &claim);
        if !g.objects.contains_key(&key) {
            g.rv += 1;
            g.uid += 1;
            let obj = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": claim, "namespace": ns, "labels": claim_labels,
                    "annotations": {"sindri-test/pod": pname},
                    "uid": format!("00000000-0000-4000-8000-{:012}", g.uid),
                    "resourceVersion": g.rv.to_string(), "creationTimestamp": now(),
                    "finalizers": ["kubernetes.io/pvc-protection"],
                },
                "spec": c["spec"].clone(),
                "status": {"phase": "Bound", "capacity": {"storage": c["spec"]["resources"]["requests"]["storage"].clone()}},
            });
            g.objects.insert(key, obj);
        }
        volumes.push(json!({"name": cname, "persistentVolumeClaim": {"claimName": claim}}));
    }
    spec["volumes"] = json!(volumes);
    let pod = {
        let mut g = st.lock();
        g.rv += 1;
        g.uid += 1;
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pname, "namespace": ns, "labels": labels, "annotations": annotations,
                "uid": format!("00000000-0000-4000-8000-{:012}", g.uid),
                "resourceVersion": g.rv.to_string(), "creationTimestamp": now(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": name, "uid": sts["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        });
        g.objects.insert(Key::new("pods", ns, pname), pod.clone());
        pod
    };
    let _ = st.pod_events.send((
        pod["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        "ADDED".into(),
        pod.clone(),
    ));
    let st = st.clone();
    let ns = ns.to_string();
    let pname = pname.to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    tokio::spawn(async move { kubelet(st, ns, pname, uid).await });
}

/// The pod, if it is still the one with `uid` (a pod of the same name may have
/// replaced it).
fn current(st: &Arc<State>, ns: &str, pod: &str, uid: &str) -> Option<Value> {
    st.lock()
        .objects
        .get(&Key::new("pods", ns, pod))
        .filter(|p| p["metadata"]["uid"].as_str() == Some(uid))
        .cloned()
}

fn set_status(st: &Arc<State>, ns: &str, pod: &str, uid: &str, f: impl FnOnce(&mut Value)) -> bool {
    let Some(mut p) = current(st, ns, pod, uid) else {
        return false;
    };
    f(&mut p);
    publish(st, "MODIFIED", p);
    true
}

fn condition(kind: &str, status: &str, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c =
        json!({"type": kind, "status": status, "lastTransitionTime": now(), "lastProbeTime": null});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

fn event(st: &Arc<State>, ns: &str, pod: &str, reason: &str, message: &str) {
    let mut g = st.lock();
    g.rv += 1;
    g.uid += 1;
    let name = format!("{pod}.{:x}", g.uid);
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "uid": format!("00000000-0000-4000-8000-{:012}", g.uid), "resourceVersion": g.rv.to_string(), "creationTimestamp": now()},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "apiVersion": "v1"},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "firstTimestamp": now(), "lastTimestamp": now(),
        "source": {"component": "default-scheduler"},
    });
    g.objects.insert(Key::new("events", ns, &name), ev);
}

/// Which node takes the pod, or the scheduler's message.
fn schedule(st: &Arc<State>, pod: &Value) -> Result<String, String> {
    let nodes = st.lock().nodes.clone();
    let spec = &pod["spec"];
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str()
            && !st
                .lock()
                .objects
                .contains_key(&Key::new("persistentvolumeclaims", ns, claim))
        {
            let total = nodes.len();
            return Err(format!(
                "0/{total} nodes are available: persistentvolumeclaim \"{claim}\" not found. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
            ));
        }
    }
    let want_gpus: u64 = spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .or_else(|| spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"].as_u64())
        .unwrap_or(0);
    let selector: Vec<(String, String)> = spec["nodeSelector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let tolerated = |key: &str| {
        spec["tolerations"].as_array().is_some_and(|t| {
            t.iter().any(|t| {
                t["key"].as_str() == Some(key)
                    || (t.get("key").is_none() && t["operator"] == "Exists")
            })
        })
    };
    let (mut no_match, mut no_gpu, mut taint) = (0, 0, 0);
    for n in &nodes {
        if !selector
            .iter()
            .all(|(k, v)| n.labels.iter().any(|(a, b)| a == k && b == v))
        {
            no_match += 1;
            continue;
        }
        if n.gpus < want_gpus {
            no_gpu += 1;
            continue;
        }
        if !n.taints.iter().all(|(k, _)| tolerated(k)) {
            taint += 1;
            continue;
        }
        return Ok(n.name.clone());
    }
    let mut reasons = Vec::new();
    if no_gpu > 0 {
        reasons.push(format!("{no_gpu} Insufficient nvidia.com/gpu"));
    }
    if no_match > 0 {
        reasons.push(format!(
            "{no_match} node(s) didn't match Pod's node affinity/selector"
        ));
    }
    if taint > 0 {
        reasons.push(format!(
            "{taint} node(s) had untolerated taint {{nvidia.com/gpu: }}"
        ));
    }
    let total = nodes.len();
    Err(format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        reasons.join(", ")
    ))
}

fn container_status(
    pod: &Value,
    state: Value,
    ready: bool,
    restarts: u64,
    last: Option<Value>,
) -> Value {
    let c = &pod["spec"]["containers"][0];
    let mut s = json!({
        "name": c["name"], "image": c["image"], "imageID": "",
        "ready": ready, "restartCount": restarts, "started": ready, "state": state,
    });
    if let Some(l) = last {
        s["lastState"] = l;
    }
    s
}

/// Problems with the pod's secret references, as the kubelet reports them.
fn secret_problem(st: &Arc<State>, ns: &str, pod: &Value) -> Option<String> {
    let g = st.lock();
    for env in pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let r = &env["valueFrom"]["secretKeyRef"];
        let (Some(secret), Some(key)) = (r["name"].as_str(), r["key"].as_str()) else {
            continue;
        };
        let optional = r["optional"].as_bool().unwrap_or(false);
        match g.objects.get(&Key::new("secrets", ns, secret)) {
            None if !optional => return Some(format!("secret \"{secret}\" not found")),
            Some(s) if !optional && s["data"].get(key).is_none() => {
                return Some(format!("couldn't find key {key} in Secret {ns}/{secret}"));
            }
            _ => {}
        }
    }
    None
}

async fn kubelet(st: Arc<State>, ns: String, pod: String, uid: String) {
    let step = || tokio::time::sleep(Duration::from_millis(15));
    step().await;
    let Some(p) = current(&st, &ns, &pod, &uid) else {
        return;
    };
    let node = match schedule(&st, &p) {
        Ok(n) => n,
        Err(msg) => {
            event(&st, &ns, &pod, "FailedScheduling", &msg);
            set_status(&st, &ns, &pod, &uid, |p| {
                p["status"]["conditions"] = json!([condition(
                    "PodScheduled",
                    "False",
                    Some("Unschedulable"),
                    Some(&msg)
                )]);
            });
            return;
        }
    };
    let waiting = |reason: &str, message: Option<&str>| {
        let mut w = json!({"reason": reason});
        if let Some(m) = message {
            w["message"] = json!(m);
        }
        json!({"waiting": w})
    };
    if !set_status(&st, &ns, &pod, &uid, |p| {
        p["spec"]["nodeName"] = json!(node);
        p["status"]["hostIP"] = json!("172.18.0.2");
        p["status"]["conditions"] = json!([
            condition("PodScheduled", "True", None, None),
            condition("Initialized", "True", None, None),
            condition(
                "ContainersReady",
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status")
            ),
            condition(
                "Ready",
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status")
            ),
        ]);
        let cs = container_status(p, waiting("ContainerCreating", None), false, 0, None);
        p["status"]["containerStatuses"] = json!([cs]);
    }) {
        return;
    }
    step().await;
    let Some(p) = current(&st, &ns, &pod, &uid) else {
        return;
    };
    let image = p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if image.contains("does-not-exist") {
        let msg = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/{image}\": not found"
        );
        set_status(&st, &ns, &pod, &uid, |p| {
            p["status"]["containerStatuses"] = json!([container_status(
                p,
                waiting("ErrImagePull", Some(&msg)),
                false,
                0,
                None
            )]);
        });
        step().await;
        set_status(&st, &ns, &pod, &uid, |p| {
            let m = format!("Back-off pulling image \"{image}\"");
            p["status"]["containerStatuses"] = json!([container_status(
                p,
                waiting("ImagePullBackOff", Some(&m)),
                false,
                0,
                None
            )]);
        });
        return;
    }
    if let Some(problem) = secret_problem(&st, &ns, &p) {
        set_status(&st, &ns, &pod, &uid, |p| {
            p["status"]["containerStatuses"] = json!([container_status(
                p,
                waiting("CreateContainerConfigError", Some(&problem)),
                false,
                0,
                None
            )]);
        });
        return;
    }
    if let Err(e) = exec::prepare_root(&st, &ns, &p) {
        set_status(&st, &ns, &pod, &uid, |p| {
            let m = format!("test server: cannot prepare the pod's root: {e}");
            p["status"]["containerStatuses"] = json!([container_status(
                p,
                waiting("RunContainerError", Some(&m)),
                false,
                0,
                None
            )]);
        });
        return;
    }
    if image.contains("crashloop") {
        {
            let mut g = st.lock();
            g.logs.insert(
                format!("{pod}#previous"),
                vec![
                    "starting the server".into(),
                    "fatal: /etc/app/config.yaml: no such file".into(),
                ],
            );
        }
        let last = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now(), "finishedAt": now()}});
        let m = format!(
            "back-off 40s restarting failed container={} pod={pod}",
            p["spec"]["containers"][0]["name"].as_str().unwrap_or("")
        );
        set_status(&st, &ns, &pod, &uid, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["containerStatuses"] = json!([container_status(
                p,
                waiting("CrashLoopBackOff", Some(&m)),
                false,
                3,
                Some(last)
            )]);
        });
        return;
    }
    {
        let mut g = st.lock();
        g.logs.entry(pod.clone()).or_default().push(format!(
            "container {} started",
            p["spec"]["containers"][0]["name"].as_str().unwrap_or("")
        ));
    }
    let _ = st.log_events.send(pod.clone());
    set_status(&st, &ns, &pod, &uid, |p| {
        p["status"]["phase"] = json!("Running");
        p["status"]["podIP"] = json!("10.244.0.7");
        p["status"]["startTime"] = json!(now());
        p["status"]["conditions"] = json!([
            condition("PodScheduled", "True", None, None),
            condition("Initialized", "True", None, None),
            condition("ContainersReady", "True", None, None),
            condition("Ready", "True", None, None),
        ]);
        let running = json!({"running": {"startedAt": now()}});
        p["status"]["containerStatuses"] = json!([container_status(p, running, true, 0, None)]);
    });
    let owner = &p["metadata"]["ownerReferences"][0];
    if let (Some(name), Some(plural)) = (
        owner["name"].as_str(),
        owner["kind"].as_str().and_then(workload_plural),
    ) {
        update_status(&st, plural, &ns, name);
    }
}
