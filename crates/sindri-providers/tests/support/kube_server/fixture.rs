//! Test environments for the Kubernetes provider: a test API server, a project
//! directory with a spec, the provider pointed at the server, and the real
//! `kubernetes-validate` for what the server received.
//!
//! Every [`Env`] checks, when the test is done with it, every server-side apply body
//! its server received (dry runs included) with `kubernetes-validate --strict` for
//! 1.30 and the newest version the tool knows, in one call, and every resource
//! quantity in them against the API's syntax and canonical form. A test that wants
//! the check earlier calls [`Env::check_applied`].

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sindri_core::{
    DeployOptions, Deployment, Provider, ResolvedSecret, ResolvedSpec, SecretValue, dispatch,
};
use sindri_providers::conformance::Recorder;
use sindri_providers::kubernetes::{KubernetesProvider, Timeouts};
use sindri_spec::{KubernetesSettings, Spec};

use super::KubeServer;
use super::quantity;

/// The image of the test pods; the server runs commands with busybox whatever it is.
pub const IMAGE: &str = "busybox:1.36";

/// Timeouts short enough for tests that expect a failure.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(2),
        ready: Duration::from_secs(60),
        unschedulable: Duration::ZERO,
    }
}

/// A server, a project directory, a spec and a provider for it.
pub struct Env {
    pub server: KubeServer,
    pub dir: tempfile::TempDir,
    pub spec: ResolvedSpec,
    pub provider: Arc<dyn Provider>,
    /// The namespace the provider works in.
    pub ns: String,
    /// Whether applied quantities must be in canonical form (false for a test whose
    /// template writes them otherwise on purpose).
    pub canonical_quantities: bool,
    /// How many of the server's received requests were checked already.
    checked: AtomicUsize,
}

impl Drop for Env {
    fn drop(&mut self) {
        // A test already failing keeps its own message (and a second panic would abort).
        if !std::thread::panicking() {
            self.check_applied();
        }
    }
}

impl Env {
    /// Environment `name` with `deployment` merged over `{provider: kubernetes, image}`
    /// and `settings` as `providers.kubernetes`.
    pub async fn new(name: &str, deployment: Value, settings: Value) -> Env {
        let server = KubeServer::start().await;
        let dir = tempfile::tempdir().expect("project dir");
        let spec = make_spec(dir.path(), name, deployment, settings);
        let ns = spec
            .spec
            .providers
            .kubernetes
            .as_ref()
            .and_then(|k| k.namespace.clone())
            .unwrap_or_else(|| "default".to_string());
        let provider = provider_for(&server, dir.path(), &spec, test_timeouts());
        Env {
            server,
            dir,
            spec,
            provider,
            ns,
            canonical_quantities: true,
            checked: AtomicUsize::new(0),
        }
    }

    /// Checks the server-side apply bodies (dry runs too) received since the last
    /// check: quantities in canonical form, and `kubernetes-validate --strict`.
    pub fn check_applied(&self) {
        let received = self.server.received();
        let from = self.checked.swap(received.len(), Ordering::SeqCst);
        let mut seen = std::collections::BTreeSet::new();
        let bodies: Vec<Value> = received
            .into_iter()
            .skip(from)
            .filter(|r| r.content_type == "application/apply-patch+yaml")
            .map(|r| r.body)
            .filter(|b| seen.insert(b.to_string()))
            .collect();
        if bodies.is_empty() {
            return;
        }
        for b in &bodies {
            check_quantities(b, self.canonical_quantities);
        }
        kubernetes_validate(&bodies);
    }

    /// Adds a secret to the spec and its resolved value.
    pub fn secret(&mut self, name: &str, value: &str, mount: Option<&str>) {
        let mut s = json!({"name": name, "source": "env"});
        if let Some(m) = mount {
            s["mount"] = json!(m);
        }
        self.spec
            .spec
            .secrets
            .push(serde_json::from_value(s).expect("secret spec"));
        self.spec.secrets.push(ResolvedSecret {
            name: name.to_string(),
            value: SecretValue::new(value),
            mount: mount.map(str::to_string),
        });
    }

    /// Rebuilds the provider (after the spec's settings changed).
    pub fn refresh_provider(&mut self) {
        self.provider = provider_for(&self.server, self.dir.path(), &self.spec, test_timeouts());
    }

    /// Deploys, panicking on failure.
    pub async fn deploy(&self) -> Deployment {
        dispatch::deploy(
            self.provider.as_ref(),
            &self.spec,
            DeployOptions::default(),
            &Recorder::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("deploy failed: {e} (hint: {:?})", e.hint()))
    }

    /// The bodies of every (non dry-run) server-side apply the server received.
    pub fn applied(&self) -> Vec<Value> {
        self.server
            .received()
            .into_iter()
            .filter(|r| r.is_apply())
            .map(|r| r.body)
            .collect()
    }
}

/// The provider with the spec's `providers.kubernetes`, reading a kubeconfig for
/// `server` written into `dir`.
pub fn provider_for(
    server: &KubeServer,
    dir: &Path,
    spec: &ResolvedSpec,
    timeouts: Timeouts,
) -> Arc<dyn Provider> {
    let settings: KubernetesSettings = spec.spec.providers.kubernetes.clone().unwrap_or_default();
    let kubeconfig = server.kubeconfig(dir, None);
    Arc::new(
        KubernetesProvider::new(settings)
            .with_kubeconfig(kubeconfig)
            .with_timeouts(timeouts),
    )
}

/// A resolved spec in `dir` (which becomes the project directory).
pub fn make_spec(dir: &Path, name: &str, deployment: Value, settings: Value) -> ResolvedSpec {
    let mut d = json!({"provider": "kubernetes", "image": IMAGE});
    if let (Some(base), Some(extra)) = (d.as_object_mut(), deployment.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let mut doc = json!({"name": name, "deployment": d});
    if settings.as_object().is_some_and(|m| !m.is_empty()) {
        doc["providers"] = json!({"kubernetes": settings});
    }
    let spec: Spec = serde_json::from_value(doc).unwrap_or_else(|e| panic!("test spec: {e}"));
    ResolvedSpec::new(spec, &dir.join("sindri.yaml"))
}

/// The newest Kubernetes version the installed kubernetes-validate knows (its `--help`
/// says "Defaults to X").
pub fn newest_kubernetes_version() -> String {
    let out = Command::new("kubernetes-validate").arg("--help").output().unwrap_or_else(|e| {
        panic!("cannot run kubernetes-validate ({e}); install it with `pip install kubernetes-validate`")
    });
    let help = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = help.split_whitespace().collect();
    words
        .windows(3)
        .find(|w| w[0] == "Defaults" && w[1] == "to")
        .map(|w| w[2].trim_end_matches('.').to_string())
        .unwrap_or_else(|| {
            panic!("kubernetes-validate --help does not name its default version:\n{help}")
        })
}

/// Runs `kubernetes-validate --strict` for 1.30.0 and the newest version it knows on
/// `docs`, and requires a "passed" line for each document and version (the tool exits
/// 0 when it merely lacks a schema, so its output is read line by line).
pub fn kubernetes_validate(docs: &[Value]) {
    assert!(!docs.is_empty(), "nothing to validate");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("applied.yaml");
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(d).expect("yaml"));
    }
    std::fs::write(&file, &text).expect("write manifests");
    let newest = newest_kubernetes_version();
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(["--kubernetes-version", "1.30.0"])
        .args(["--kubernetes-version", &newest])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubernetes-validate ({e}); install it with `pip install kubernetes-validate`")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate failed ({}):\n{stdout}{stderr}\n--- manifests:\n{text}",
        out.status
    );
    let bad: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("INFO ")).collect();
    assert!(
        bad.is_empty(),
        "kubernetes-validate reported problems:\n{}\n--- manifests:\n{text}",
        bad.join("\n")
    );
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let mut wanted = std::collections::BTreeMap::<String, usize>::new();
    for doc in docs {
        let resource = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap_or_default().to_lowercase(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        for version in ["1.30".to_string(), minor(&newest)] {
            *wanted
                .entry(format!(
                    "passed for resource {resource} against version {version}"
                ))
                .or_default() += 1;
        }
    }
    // One "passed" line per document and version (several documents may share a name).
    for (expected, n) in wanted {
        let got = stdout.lines().filter(|l| l.ends_with(&expected)).count();
        assert!(
            got >= n,
            "kubernetes-validate reported `{expected}` {got} times for {n} documents:\n{stdout}"
        );
    }
}

/// Requires every resource quantity of `doc` to be a string in the API's syntax and,
/// when `canonical`, in the canonical form the API server would write back (anything
/// else makes the live object differ from what was sent on every comparison).
pub fn check_quantities(doc: &Value, canonical: bool) {
    let kind = doc["kind"].as_str().unwrap_or_default();
    for (path, pointer) in quantity::fields(kind, doc) {
        let v = &doc.pointer(&pointer).expect("field listed");
        let text = v
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {path} is {v}, not a quantity string"));
        match quantity::canonical(text) {
            Ok(_) if !canonical => {}
            Ok(c) => assert_eq!(
                c, text,
                "{kind} {path} is `{text}`; the API server would store and return `{c}`"
            ),
            Err(e) => panic!("{kind} {path}: {e}"),
        }
    }
}
