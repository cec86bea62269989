//! Test environments for the Kubernetes provider: a test API server, a project
//! directory with a spec, the provider pointed at the server, and the real
//! `kubernetes-validate` for what the server received.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sindri_core::{
    DeployOptions, Deployment, Provider, ResolvedSecret, ResolvedSpec, SecretValue, dispatch,
};
use sindri_providers::conformance::Recorder;
use sindri_providers::kubernetes::{KubernetesProvider, Timeouts};
use sindri_spec::{KubernetesSettings, Spec};

use super::KubeServer;

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
        }
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
    for doc in docs {
        let resource = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap_or_default().to_lowercase(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        for version in ["1.30".to_string(), minor(&newest)] {
            let expected = format!("passed for resource {resource} against version {version}");
            assert!(
                stdout.lines().any(|l| l.ends_with(&expected)),
                "kubernetes-validate did not report `{expected}`:\n{stdout}"
            );
        }
    }
}
