//! The connection to a cluster: the kubeconfig context, the namespace, two clients (one
//! with short timeouts for plain requests, one without a read timeout for streams), and
//! the one place where kube's errors become sindri's.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client, Config};
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::{KubernetesSettings, ProviderKind};

/// Timeouts of the provider; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP and TLS connection to the API server.
    pub connect: Duration,
    /// Waiting for a plain request's response (not for watches, logs or exec).
    pub request: Duration,
    /// `deploy` and `start` waiting for the pod to become ready.
    pub ready: Duration,
    /// How long a pod may stay unschedulable, with no cluster autoscaler adding a node
    /// for it, before `deploy` gives up.
    pub unschedulable: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            // Together under the 10 s the user waits at most for an unreachable cluster.
            connect: Duration::from_secs(4),
            request: Duration::from_secs(5),
            ready: Duration::from_secs(15 * 60),
            unschedulable: Duration::from_secs(30),
        }
    }
}

/// A live connection to the cluster of one kubeconfig context.
#[derive(Clone)]
pub(crate) struct Conn {
    /// For plain requests: answers within [`Timeouts::request`] or fails.
    pub client: Client,
    /// For watches, `logs --follow` and exec sessions, which may stay quiet for long.
    pub stream: Client,
    /// The namespace sindri works in.
    pub namespace: String,
    /// The API server's URL, as the kubeconfig names it.
    pub server: String,
    /// The kubeconfig context.
    pub context: String,
    /// The timeouts the clients were built with (errors quote them).
    pub timeouts: Timeouts,
}

/// Loads the kubeconfig and builds the clients. Reads local files only: the API server
/// is first contacted by the first request.
pub(crate) async fn connect(
    settings: &KubernetesSettings,
    kubeconfig: Option<&PathBuf>,
    timeouts: Timeouts,
) -> Result<Conn> {
    let kc = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(Some(path), e))?,
        None => Kubeconfig::read().map_err(|e| kubeconfig_error(None, e))?,
    };
    let context = match settings
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
    {
        Some(c) => c,
        None => {
            return Err(Error::invalid(
                "the kubeconfig has no current context and providers.kubernetes.context is not set",
            )
            .with_provider(ProviderKind::Kubernetes)
            .with_hint(format!(
                "set providers.kubernetes.context to one of: {}",
                context_names(&kc)
            )));
        }
    };
    let Some(named) = kc.contexts.iter().find(|c| c.name == context) else {
        return Err(
            Error::invalid(format!("the kubeconfig has no context `{context}`"))
                .with_provider(ProviderKind::Kubernetes)
                .with_hint(format!(
                    "contexts in the kubeconfig: {}",
                    context_names(&kc)
                )),
        );
    };
    let context_ns = named.context.as_ref().and_then(|c| c.namespace.clone());
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        cluster: None,
        user: None,
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| kubeconfig_error(kubeconfig, e))?;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let namespace = settings
        .namespace
        .clone()
        .or(context_ns)
        .unwrap_or_else(|| "default".to_string());
    // kube's default retry of 429/503/504 backs off for minutes; sindri reports a
    // transient error at once instead, so nothing hangs.
    config.default_retry = false;
    config.connect_timeout = Some(timeouts.connect);
    config.write_timeout = Some(timeouts.request);
    let mut plain = config.clone();
    plain.read_timeout = Some(timeouts.request);
    // A pooled connection's idle time must not count against the next response.
    plain.reset_reader_on_write = true;
    let client = Client::try_from(plain).map_err(|e| client_error(&server, e))?;
    let mut streaming = config;
    streaming.read_timeout = None;
    let stream = Client::try_from(streaming).map_err(|e| client_error(&server, e))?;
    Ok(Conn {
        client,
        stream,
        namespace,
        server,
        context,
        timeouts,
    })
}

fn context_names(kc: &Kubeconfig) -> String {
    if kc.contexts.is_empty() {
        return "(none)".to_string();
    }
    kc.contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn kubeconfig_error(path: Option<&PathBuf>, e: KubeconfigError) -> Error {
    let hint = "create a local cluster with `sindri k8s create`, or get credentials for your cluster \
                (e.g. `gcloud container clusters get-credentials`, `aws eks update-kubeconfig`); \
                KUBECONFIG may point at another file";
    let (kind, message) = match (&e, path) {
        (KubeconfigError::FindPath, _) => (
            ErrorKind::Unavailable,
            "no kubeconfig found: KUBECONFIG is not set and ~/.kube/config does not exist"
                .to_string(),
        ),
        (KubeconfigError::ReadConfig(io, p), _) => (
            ErrorKind::Unavailable,
            format!("cannot read the kubeconfig {}: {io}", p.display()),
        ),
        (_, Some(p)) => (
            ErrorKind::Invalid,
            format!("the kubeconfig {} cannot be used: {e}", p.display()),
        ),
        (_, None) => (
            ErrorKind::Invalid,
            format!("the kubeconfig cannot be used: {e}"),
        ),
    };
    Error::new(kind, message)
        .with_provider(ProviderKind::Kubernetes)
        .with_hint(hint)
}

fn client_error(server: &str, e: kube::Error) -> Error {
    Error::new(
        ErrorKind::Invalid,
        format!("cannot set up a client for the API server {server}: {e}"),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint(
        "check the cluster's certificate-authority and the user's credentials in the kubeconfig",
    )
}

/// A kind sindri knows how to address: group, version, kind, plural.
const KNOWN: [(&str, &str, &str, &str); 8] = [
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "Deployment", "deployments"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
];

/// Kinds that live outside namespaces; sindri applies only namespaced objects.
const CLUSTER_SCOPED: [&str; 9] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "RuntimeClass",
];

/// The API resource of `apiVersion` + `kind`.
pub(crate) fn resource(api_version: &str, kind: &str) -> Result<ApiResource> {
    if CLUSTER_SCOPED.contains(&kind) {
        return Err(Error::invalid(format!(
            "sindri applies only namespaced objects; `{kind}` is cluster-scoped"
        ))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint(
            "create cluster-scoped objects once with kubectl and keep them out of kubernetes.yaml",
        ));
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok(
        match KNOWN.iter().find(|(g, _, k, _)| *g == group && *k == kind) {
            Some((_, _, _, plural)) => ApiResource::from_gvk_with_plural(&gvk, plural),
            None => ApiResource::from_gvk(&gvk),
        },
    )
}

/// The API resource of a kind sindri itself manages.
pub(crate) fn known(kind: &str) -> ApiResource {
    let (group, version, kind, plural) = KNOWN
        .iter()
        .find(|(_, _, k, _)| *k == kind)
        .copied()
        .unwrap_or(("", "v1", "ConfigMap", "configmaps"));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The resource as RBAC names it: `statefulsets.apps`, `secrets`.
pub(crate) fn rbac_name(ar: &ApiResource) -> String {
    if ar.group.is_empty() {
        ar.plural.clone()
    } else {
        format!("{}.{}", ar.plural, ar.group)
    }
}

impl Conn {
    /// A dynamic API for `ar` in namespace `ns`, on the plain client.
    pub(crate) fn api(&self, ar: &ApiResource, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, ar)
    }

    /// Converts a kube error from `verb` on `resource` (RBAC spelling, e.g.
    /// `statefulsets.apps`) into sindri's error, naming the server for connection
    /// failures, the denied verb and resource for RBAC, and the fields for 422.
    pub(crate) fn error(
        &self,
        verb: &str,
        resource: &str,
        name: Option<&str>,
        ns: &str,
        e: kube::Error,
    ) -> Error {
        let what = match name {
            Some(n) => format!("{resource} `{n}`"),
            None => resource.to_string(),
        };
        let err = match e {
            kube::Error::Api(status) if status.reason == NOT_A_STATUS && status.code == 404 => {
                self.not_an_api(verb, resource, &what, &status.message)
            }
            kube::Error::Api(status) => {
                let status = *status;
                let msg = if status.reason == NOT_A_STATUS {
                    format!(
                        "the answer was not a Kubernetes Status: `{}`",
                        snippet(&status.message)
                    )
                } else if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                match status.code {
                    401 => Error::new(
                        ErrorKind::Auth,
                        format!(
                            "the API server {} rejected the credentials of context `{}` (401 Unauthorized) while trying to {verb} {what}",
                            self.server, self.context
                        ),
                    )
                    .with_hint("refresh the credentials (your cloud's get-credentials command, or a new token) and try again"),
                    403 => Error::new(
                        ErrorKind::Auth,
                        format!(
                            "RBAC denied `{verb}` on {resource} in namespace `{ns}` (403 Forbidden): {msg}"
                        ),
                    )
                    .with_hint(format!(
                        "ask a cluster admin for a Role allowing `{verb}` on {resource} in `{ns}`; check with `kubectl auth can-i {verb} {resource} -n {ns} --context {}`",
                        self.context
                    )),
                    404 => Error::new(ErrorKind::NotFound, format!("{what} not found in namespace `{ns}`: {msg}")),
                    409 => Error::new(
                        ErrorKind::Conflict,
                        format!("the API server refused to {verb} {what} (409 Conflict): {msg}"),
                    )
                    .with_hint("another client changed the object at the same time, or owns it; run the command again, and if it persists, inspect the object with kubectl"),
                    422 => {
                        let causes: Vec<String> = status
                            .details
                            .as_ref()
                            .map(|d| {
                                d.causes
                                    .iter()
                                    .map(|c| {
                                        if c.field.is_empty() {
                                            c.message.clone()
                                        } else {
                                            format!("field `{}`: {}", c.field, c.message)
                                        }
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let detail = if causes.is_empty() {
                            msg
                        } else {
                            causes.join("; ")
                        };
                        Error::new(
                            ErrorKind::Invalid,
                            format!("the API server rejected {what} (422 Invalid): {detail}"),
                        )
                        .with_hint("the field comes from sindri.yaml (or from .sindri/templates/kubernetes.yaml when overridden): fix the value and deploy again")
                    }
                    429 | 502..=504 => Error::new(
                        ErrorKind::Transient,
                        format!("the API server could not {verb} {what} right now ({}): {msg}", status.code),
                    )
                    .with_hint("try again in a moment"),
                    code => Error::new(
                        ErrorKind::Platform,
                        format!("the API server failed to {verb} {what} ({code} {}): {msg}", status.reason),
                    )
                    .with_hint(format!(
                        "check the cluster's health (`kubectl get --raw /readyz --context {}`) and try again",
                        self.context
                    )),
                }
            }
            kube::Error::Auth(a) => Error::new(
                ErrorKind::Auth,
                format!(
                    "cannot authenticate to the API server {} with context `{}`: {a}",
                    self.server, self.context
                ),
            )
            .with_hint("check the user's credentials (token, client certificate or exec plugin) in the kubeconfig"),
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::new(
                ErrorKind::Unavailable,
                match timed_out(&e) {
                    Some(Timeout::Connect) => format!(
                        "no answer from the Kubernetes API server {} (context `{}`) in {} s: the connection was not accepted",
                        self.server,
                        self.context,
                        self.timeouts.connect.as_secs()
                    ),
                    Some(Timeout::Response) => format!(
                        "no answer from the Kubernetes API server {} (context `{}`) in {} s: it took the connection but did not answer the request to {verb} {what}",
                        self.server,
                        self.context,
                        self.timeouts.request.as_secs()
                    ),
                    None => format!(
                        "cannot reach the Kubernetes API server {} (context `{}`): {}",
                        self.server,
                        self.context,
                        cause_chain(&e)
                    ),
                },
            )
            .with_hint(format!(
                "is the cluster running and reachable? check with `kubectl cluster-info --context {}`",
                self.context
            )),
            other => Error::new(
                ErrorKind::Platform,
                format!("cannot {verb} {what} on {}: {other}", self.server),
            ),
        };
        err.with_provider(ProviderKind::Kubernetes)
    }
}

impl Conn {
    /// A 404 whose body is not a Kubernetes `Status`: the real API server answers so
    /// only for an API group or version it does not serve (a custom resource without
    /// its definition); for the built-in resources it means the URL is not an API
    /// server at all (a web server, a proxy, a path prefix).
    fn not_an_api(&self, verb: &str, resource: &str, what: &str, body: &str) -> Error {
        if !is_builtin(resource) {
            return Error::new(
                ErrorKind::Invalid,
                format!(
                    "the API server {} does not serve {resource} (404 `{}` for {verb} {what}): its API group or version is not installed in the cluster",
                    self.server,
                    snippet(body)
                ),
            )
            .with_hint(format!(
                "check apiVersion and kind in .sindri/templates/kubernetes.yaml; a custom resource needs its CustomResourceDefinition installed (`kubectl api-resources --context {}` lists what the cluster serves)",
                self.context
            ));
        }
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the server at {} (context `{}`) did not answer like a Kubernetes API server: to {verb} {what} it answered 404 `{}`, not a Kubernetes Status",
                self.server,
                self.context,
                snippet(body)
            ),
        )
        .with_hint(format!(
            "check the `server` URL of context `{}` in the kubeconfig: it must be the cluster's API server (e.g. https://HOST:6443, with no path), not a web server or proxy in front of it",
            self.context
        ))
    }
}

/// The reason kube-client gives an error response whose body is not a `Status`.
const NOT_A_STATUS: &str = "Failed to parse error data";

/// Resources every Kubernetes API server serves (RBAC spelling), and `/version`.
fn is_builtin(resource: &str) -> bool {
    let base = resource.split('/').next().unwrap_or("");
    base.is_empty()
        || matches!(base, "pods" | "events")
        || KNOWN.iter().any(|(group, _, _, plural)| match *group {
            "" => base == *plural,
            g => base == format!("{plural}.{g}"),
        })
}

/// The first line of a response body, shortened.
fn snippet(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("").trim();
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// Which of the plain client's timeouts ended a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    /// The TCP (or TLS) connection was not established in time.
    Connect,
    /// The connection was made but the response did not come in time.
    Response,
}

/// The timeout behind a transport error, if one is: the connect timeout wraps
/// tokio's `Elapsed` ("deadline has elapsed") in a `TimedOut` I/O error, the read
/// timeout is a bare `TimedOut`.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<Timeout> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<tokio::time::error::Elapsed>() {
            return Some(Timeout::Connect);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            let connect = io
                .get_ref()
                .is_some_and(|inner| inner.is::<tokio::time::error::Elapsed>());
            return Some(if connect {
                Timeout::Connect
            } else {
                Timeout::Response
            });
        }
        cur = c.source();
    }
    None
}

/// An error and its causes on one line, most specific last; timeouts say so plainly.
fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    let text = parts.join(": ");
    if text.to_lowercase().contains("timed out") || text.to_lowercase().contains("timeout") {
        format!("no answer in time ({text})")
    } else {
        text
    }
}
