//! Shared fixtures for the Docker provider's tests: the local test images, unique
//! environment names, specs, and a guard that removes everything labelled for an
//! environment even when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use sindri_core::{Provider, ResolvedSecret, ResolvedSpec, SecretValue};
use sindri_spec::{ProvidersSpec, Spec};

/// The image with busybox and bash.
pub const IMAGE: &str = "sindri-test/busybox:latest";
/// The image with busybox only (no bash).
pub const IMAGE_NOBASH: &str = "sindri-test/busybox:nobash";

/// Builds the test images once per process with `.ci/images/build.sh` (fast when they
/// exist). Panics with what to do when Docker or the script fails.
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/build.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "building the test images failed ({}): {}{}\nThese tests need a running Docker Engine \
             (start it: `sudo systemctl start docker`) and Debian's busybox-static and bash-static.",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A unique, valid environment name: `t-<tag>-<random>`.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{:x}{:x}{n}", std::process::id(), nanos);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    format!("t-{tag}-{suffix}").chars().take(63).collect()
}

/// A client for the engine the tests use (DOCKER_HOST or the default socket).
pub async fn docker() -> Docker {
    let d = Docker::connect_with_defaults().unwrap_or_else(|e| {
        panic!("cannot connect to the Docker Engine: {e}; start it: `sudo systemctl start docker`")
    });
    d.negotiate_version().await.unwrap_or_else(|e| {
        panic!("the Docker Engine is unreachable: {e}; start it: `sudo systemctl start docker`")
    })
}

/// The Docker provider with default settings.
pub fn provider() -> Arc<dyn Provider> {
    sindri_providers::registry()
        .create(sindri_spec::ProviderKind::Docker, &ProvidersSpec::default())
        .expect("docker provider")
}

/// An environment under test: its spec in a project directory of its own, and a guard
/// that removes everything labelled for it when dropped.
pub struct TestEnv {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub spec: ResolvedSpec,
    /// Containers to remove by name on drop, for tests that create foreign ones.
    pub extra_containers: Vec<String>,
    /// Image tags to remove on drop, for tests that tag images of their own.
    pub extra_tags: Vec<String>,
}

impl TestEnv {
    /// An environment running `image`, with `deployment` fields merged in.
    pub fn new(tag: &str, deployment: serde_json::Value) -> TestEnv {
        ensure_images();
        let name = unique_name(tag);
        let dir = tempfile::tempdir().expect("project dir");
        let spec = make_spec(&name, dir.path(), deployment, serde_json::json!(null));
        TestEnv {
            name,
            dir,
            spec,
            extra_containers: Vec::new(),
            extra_tags: Vec::new(),
        }
    }

    /// The project directory (where sindri.yaml would be).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the spec, keeping the name and project.
    pub fn respec(&mut self, deployment: serde_json::Value, providers: serde_json::Value) {
        let secrets = std::mem::take(&mut self.spec.secrets);
        self.spec = make_spec(&self.name, self.dir.path(), deployment, providers);
        self.spec.secrets = secrets;
    }

    /// Adds a secret.
    pub fn secret(&mut self, name: &str, value: &str, mount: Option<&str>) {
        self.spec.secrets.push(ResolvedSecret {
            name: name.into(),
            value: SecretValue::new(value),
            mount: mount.map(str::to_string),
        });
    }
}

/// A spec named `name` in project `dir`.
pub fn make_spec(
    name: &str,
    dir: &Path,
    deployment: serde_json::Value,
    providers: serde_json::Value,
) -> ResolvedSpec {
    let mut d = serde_json::json!({"provider": "docker", "image": IMAGE});
    if let (Some(base), Some(extra)) = (d.as_object_mut(), deployment.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let mut doc = serde_json::json!({"name": name, "deployment": d});
    if !providers.is_null() {
        doc["providers"] = providers;
    }
    let spec: Spec = serde_json::from_value(doc).expect("valid test spec");
    ResolvedSpec::new(spec, &dir.join("sindri.yaml"))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let name = self.name.clone();
        let extra = self.extra_containers.clone();
        let tags = self.extra_tags.clone();
        // Drop cannot await, and may run inside a runtime: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                remove_labelled(&name, &extra).await;
                if let Ok(docker) = Docker::connect_with_defaults() {
                    for t in &tags {
                        let opts = RemoveImageOptionsBuilder::new().noprune(true).build();
                        let _ = docker.remove_image(t, Some(opts), None).await;
                    }
                }
            });
        })
        .join();
    }
}

fn env_filter(name: &str) -> std::collections::HashMap<String, Vec<String>> {
    std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("sindri.environment={name}")],
    )])
}

/// Every object labelled for environment `name`: `kind name` strings.
pub async fn leftovers(name: &str) -> Vec<String> {
    let docker = docker().await;
    let f = env_filter(name);
    let mut out = Vec::new();
    for c in docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&f)
                .build(),
        ))
        .await
        .expect("list containers")
    {
        out.push(format!("container {:?} ({:?})", c.names, c.state));
    }
    for v in docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&f).build()))
        .await
        .expect("list volumes")
        .volumes
        .unwrap_or_default()
    {
        out.push(format!("volume {}", v.name));
    }
    for n in docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&f).build()))
        .await
        .expect("list networks")
    {
        out.push(format!("network {:?}", n.name));
    }
    for i in docker
        .list_images(Some(
            ListImagesOptionsBuilder::new()
                .all(true)
                .filters(&f)
                .build(),
        ))
        .await
        .expect("list images")
    {
        out.push(format!("image {} {:?}", i.id, i.repo_tags));
    }
    out
}

async fn remove_labelled(name: &str, extra_containers: &[String]) {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return;
    };
    let f = env_filter(name);
    let force = || {
        Some(
            RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build(),
        )
    };
    for c in extra_containers {
        let _ = docker.remove_container(c, force()).await;
    }
    if let Ok(cs) = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&f)
                .build(),
        ))
        .await
    {
        for c in cs {
            let _ = docker
                .remove_container(&c.id.unwrap_or_default(), force())
                .await;
        }
    }
    if let Ok(vs) = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&f).build()))
        .await
    {
        for v in vs.volumes.unwrap_or_default() {
            let _ = docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    }
    if let Ok(ns) = docker
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&f).build()))
        .await
    {
        for n in ns {
            let _ = docker.remove_network(&n.id.unwrap_or_default()).await;
        }
    }
    if let Ok(is) = docker
        .list_images(Some(
            ListImagesOptionsBuilder::new()
                .all(true)
                .filters(&f)
                .build(),
        ))
        .await
    {
        for i in is {
            let _ = docker
                .remove_image(
                    &i.id,
                    Some(RemoveImageOptionsBuilder::new().force(true).build()),
                    None,
                )
                .await;
        }
    }
}

/// Writes a file, creating its directory.
pub fn write(path: &Path, content: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    path.to_path_buf()
}
