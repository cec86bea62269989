//! Fixtures for the DevPod provider's tests: the fake `devpod` (a Python script that
//! implements the subset of DevPod's CLI sindri calls, backed by this machine's Docker
//! Engine), unique environment names, specs, and a guard that removes what a test's
//! workspaces left on the Docker Engine even when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sindri_core::{ResolvedSecret, ResolvedSpec, SecretValue};
use sindri_providers::devpod::{DevpodProvider, workspace_id};
use sindri_spec::{DevpodSettings, Spec};

/// The image the workspaces run (busybox + bash, built by `.ci/images/build.sh`).
pub const IMAGE: &str = "sindri-test/busybox:latest";

/// The fake's source.
const FAKE: &str = include_str!("fake_devpod.py");

/// Builds the test images once per process (fast when they exist) and checks that
/// `python3` and `docker` are there. Panics with what to install otherwise.
pub fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let py = Command::new("python3").arg("--version").output();
        assert!(
            py.is_ok_and(|o| o.status.success()),
            "the fake devpod needs python3 on PATH: install it (`sudo apt-get install -y python3`)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "building the test images failed ({}): {}{}\nThese tests need a running Docker Engine \
             (start it: `sudo systemctl start docker`) and the docker CLI on PATH.",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A fake `devpod` installed in a temporary directory of its own: `bin/devpod`, its
/// DevPod home `devpod-home/` and the log of every argv it was called with.
pub struct FakeDevpod {
    pub root: tempfile::TempDir,
}

impl FakeDevpod {
    /// Installs the fake.
    pub fn new() -> FakeDevpod {
        ensure_tools();
        let root = tempfile::tempdir().expect("fake devpod dir");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let path = bin.join("devpod");
        std::fs::write(&path, FAKE).expect("write fake devpod");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod fake devpod");
        }
        FakeDevpod { root }
    }

    /// The fake binary.
    pub fn bin(&self) -> PathBuf {
        self.root.path().join("bin").join("devpod")
    }

    /// The fake's DevPod home (its whole state).
    pub fn home(&self) -> PathBuf {
        self.root.path().join("devpod-home")
    }

    /// Makes DevPod providers `names` exist (the first is the default); all run on the
    /// local Docker Engine.
    pub fn set_providers(&self, names: &[&str]) {
        std::fs::create_dir_all(self.home()).expect("home");
        std::fs::write(
            self.home().join("providers.json"),
            serde_json::json!({"default": names[0], "providers": names}).to_string(),
        )
        .expect("providers.json");
    }

    /// Every argv the fake was called with, in order.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(self.root.path().join("argv.log")) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("argv line");
                v["argv"]
                    .as_array()
                    .expect("argv array")
                    .iter()
                    .map(|a| a.as_str().expect("argv string").to_string())
                    .collect()
            })
            .collect()
    }

    /// The calls whose first word is `command`.
    pub fn calls_of(&self, command: &str) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c.first().map(String::as_str) == Some(command))
            .collect()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.root.path().join("argv.log"));
    }

    /// Runs the fake directly.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(self.bin())
            .args(args)
            .output()
            .expect("run fake devpod")
    }

    /// A provider driving this fake.
    pub fn provider(&self, settings: DevpodSettings) -> DevpodProvider {
        DevpodProvider::with_binary(settings, self.bin())
    }
}

/// A unique environment name short enough for `sindri-NAME` to be a DevPod id:
/// `dp-<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 0xfff)
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(14)
        .collect();
    format!("dp-{tag}-{:x}{nanos:x}{n}", std::process::id())
}

/// A spec named `name` in project `dir`, running the test image, with `deployment`
/// fields merged in.
pub fn make_spec(
    name: &str,
    dir: &Path,
    deployment: serde_json::Value,
    extra: serde_json::Value,
) -> ResolvedSpec {
    let mut d = serde_json::json!({"provider": "devpod", "image": IMAGE});
    if let (Some(base), Some(more)) = (d.as_object_mut(), deployment.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    let mut doc = serde_json::json!({"name": name, "deployment": d});
    if let (Some(base), Some(more)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    let spec: Spec = serde_json::from_value(doc).expect("valid test spec");
    ResolvedSpec::new(spec, &dir.join("sindri.yaml"))
}

/// Adds a resolved secret.
pub fn add_secret(spec: &mut ResolvedSpec, name: &str, value: &str, mount: Option<&str>) {
    spec.secrets.push(ResolvedSecret {
        name: name.into(),
        value: SecretValue::new(value),
        mount: mount.map(str::to_string),
    });
}

/// An environment under test: a fake devpod, a project directory, the spec, and a
/// guard removing the workspace's container, volumes and built image when dropped.
pub struct TestEnv {
    pub name: String,
    pub fake: FakeDevpod,
    pub project: tempfile::TempDir,
    pub spec: ResolvedSpec,
}

impl TestEnv {
    /// An environment running the test image.
    pub fn new(tag: &str) -> TestEnv {
        TestEnv::with(tag, serde_json::json!({}), serde_json::json!({}))
    }

    /// An environment with `deployment` fields and top-level spec fields merged in.
    pub fn with(tag: &str, deployment: serde_json::Value, extra: serde_json::Value) -> TestEnv {
        let fake = FakeDevpod::new();
        let name = unique_name(tag);
        let project = tempfile::tempdir().expect("project dir");
        let spec = make_spec(&name, project.path(), deployment, extra);
        TestEnv {
            name,
            fake,
            project,
            spec,
        }
    }

    /// The DevPod workspace id.
    pub fn id(&self) -> String {
        workspace_id(&self.name)
    }

    /// A provider with default settings driving this environment's fake.
    pub fn provider(&self) -> DevpodProvider {
        self.fake.provider(DevpodSettings::default())
    }
}

/// The id of the workspace's container, if any.
pub fn container_of(id: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=dev.containers.id={id}"),
        ])
        .output()
        .expect("docker ps");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The names of the Docker volumes whose name starts with `prefix`.
pub fn volumes_named(prefix: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|v| v.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let id = self.id();
        if let Some(c) = container_of(&id) {
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
        }
        for v in volumes_named(&format!("{}-", self.name)) {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &v])
                .output();
        }
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &format!("fake-devpod-{id}:latest")])
            .output();
    }
}
