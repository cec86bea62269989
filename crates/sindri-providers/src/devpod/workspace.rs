//! The DevPod workspace of an environment: its id, the files sindri writes for it into
//! the project, and the owner marker that says sindri made it.
//!
//! # Layout
//! The workspace's source is the project directory itself (DevPod mounts or uploads
//! it as the workspace folder, exactly as `devpod up .` would), and sindri's files for
//! environment `NAME` live in `<project>/.sindri/devpod/NAME/`:
//! - `devcontainer.json`, passed with `--devcontainer-path`;
//! - `sindri-owner.json`, the marker: environment name, project id, the spec hash last
//!   applied, the DevPod provider and options it was created with. `list_owned` finds
//!   it through `devpod list` (source folder + devcontainer path), so ownership and the
//!   spec hash are recovered from DevPod and the project alone, without sindri's state.
//!
//! `.sindri/devpod/.gitignore` keeps these generated files out of version control.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sindri_core::{Error, ErrorKind, ResolvedSpec, Result};
use sindri_spec::{ProviderKind, SecretSource};

/// Every workspace sindri creates has an id starting with this.
pub const PREFIX: &str = "sindri-";

/// DevPod refuses workspace ids longer than this.
pub const MAX_ID: usize = 48;

/// Where sindri's DevPod files live, relative to the project directory.
pub const DIR: &str = ".sindri/devpod";

/// The devcontainer.json file name in an environment's directory.
pub const DEVCONTAINER: &str = "devcontainer.json";

/// The owner marker file name in an environment's directory.
pub const MARKER: &str = "sindri-owner.json";

/// How many directories `.sindri/devpod/NAME/` is deeper than the `.devcontainer/`
/// directory sindri-render writes paths for.
const EXTRA_DEPTH: &str = "../../";

/// The DevPod workspace id of environment `name`: `sindri-NAME`, or, for names longer
/// than 41 characters, `sindri-` + the first 32 characters + `-` + 8 hex digits of the
/// name's SHA-256 (DevPod ids are at most 48 characters). The full name is kept in the
/// marker.
pub fn workspace_id(name: &str) -> String {
    let id = format!("{PREFIX}{name}");
    if id.len() <= MAX_ID {
        return id;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = MAX_ID - PREFIX.len() - 1 - hash.len();
    let head: String = name.chars().take(keep).collect();
    format!("{PREFIX}{}-{hash}", head.trim_end_matches('-'))
}

/// The devcontainer.json path relative to the project, as given to
/// `--devcontainer-path`.
pub fn devcontainer_path(name: &str) -> String {
    format!("{DIR}/{name}/{DEVCONTAINER}")
}

/// The environment's directory of sindri files inside `project_dir`.
pub fn env_dir(project_dir: &Path, name: &str) -> PathBuf {
    project_dir.join(DIR).join(name)
}

/// The project directory as DevPod should see it: absolute and canonical, so the
/// project id recomputed from DevPod's `source.localFolder` equals the spec's.
pub fn project_dir(spec: &ResolvedSpec) -> Result<PathBuf> {
    spec.base_dir.canonicalize().map_err(|e| {
        Error::invalid(format!(
            "the project directory {} cannot be resolved: {e}",
            spec.base_dir.display()
        ))
        .with_provider(ProviderKind::Devpod)
    })
}

/// The owner marker, `sindri-owner.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always true: the workspace is sindri's.
    pub managed: bool,
    /// The environment name.
    pub name: String,
    /// The project id.
    pub project: String,
    /// The DevPod workspace id.
    pub workspace: String,
    /// Hash of the spec the last successful `devpod up` applied; empty before one has.
    pub spec_hash: String,
    /// Hash of a spec whose `devpod up` started but did not succeed (interrupted or
    /// failed): the next deploy finishes it with `--recreate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The DevPod provider asked for (`providers.devpod.provider`); none means DevPod's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devpod_provider: Option<String>,
    /// Hash of the provider options the workspace was created with.
    pub options_hash: String,
    /// Where the secrets file is inside the environment.
    pub secrets_file: String,
    /// The named volumes the devcontainer.json declares (home first).
    pub volumes: Vec<String>,
    /// Unix seconds when first deployed.
    pub created_at: i64,
    /// Unix seconds when last deployed.
    pub updated_at: i64,
}

impl Marker {
    /// The marker as written to disk.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }
}

/// Reads the marker in `dir`: `Ok(None)` when there is none or it is not sindri's.
pub fn read_marker(dir: &Path) -> Result<Option<Marker>> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                Error::internal(format!("cannot read {}: {e}", path.display()))
                    .with_provider(ProviderKind::Devpod),
            );
        }
    };
    Ok(serde_json::from_str::<Marker>(&text)
        .ok()
        .filter(|m| m.managed))
}

/// Writes `content` to `path` through a temporary file and a rename, creating the
/// directory, so a reader never sees half a file.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::internal(format!("cannot write {}: {e}", path.display()))
            .with_provider(ProviderKind::Devpod)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Writes `.sindri/devpod/.gitignore` (ignore everything) unless it exists.
pub fn ensure_gitignore(project_dir: &Path) -> Result<()> {
    let path = project_dir.join(DIR).join(".gitignore");
    if path.exists() {
        return Ok(());
    }
    write_atomic(
        &path,
        "# Generated by sindri for the DevPod provider; not meant for version control.\n*\n",
    )
}

/// The secrets that reach the environment as variables through sindri's secrets
/// file: those read from the environment or Vault without a `mount`. (File secrets are
/// bind-mounted by the devcontainer.json itself.)
pub fn env_secret_names(spec: &ResolvedSpec) -> Vec<String> {
    spec.spec
        .secrets
        .iter()
        .filter(|s| s.source != SecretSource::File && s.mount.is_none())
        .map(|s| s.name.clone())
        .collect()
}

/// Adjusts sindri-render's devcontainer.json for where the DevPod provider writes it:
/// build paths gain two `../` (the file is in `.sindri/devpod/NAME/`, not
/// `.devcontainer/`), and the `remoteEnv` entries of secrets are removed, because
/// sindri delivers secret values itself (DevPod would store the substituted values in
/// its workspace result on this machine). Fails on a template that does not produce
/// plain JSON.
pub fn adjust_devcontainer(content: &str, spec: &ResolvedSpec) -> Result<String> {
    let mut doc: serde_json::Value = serde_json::from_str(content).map_err(|e| {
        Error::invalid(format!(
            "the rendered devcontainer.json is not plain JSON ({e}); the devpod provider edits it before use"
        ))
        .with_provider(ProviderKind::Devpod)
        .with_hint("remove comments and trailing commas from .sindri/templates/devcontainer.json")
    })?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(
            Error::invalid("the rendered devcontainer.json is not a JSON object")
                .with_provider(ProviderKind::Devpod),
        );
    };
    if let Some(build) = obj.get_mut("build").and_then(|b| b.as_object_mut()) {
        for key in ["dockerfile", "context"] {
            if let Some(serde_json::Value::String(p)) = build.get_mut(key)
                && !p.starts_with('/')
            {
                *p = format!("{EXTRA_DEPTH}{p}");
            }
        }
    }
    let secret_vars = env_secret_names(spec);
    let mut empty = false;
    if let Some(remote) = obj.get_mut("remoteEnv").and_then(|r| r.as_object_mut()) {
        remote.retain(|k, _| !secret_vars.contains(k));
        empty = remote.is_empty();
    }
    if empty {
        obj.remove("remoteEnv");
    }
    let mut out = serde_json::to_string_pretty(&doc).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot write devcontainer.json: {e}"),
        )
    })?;
    out.push('\n');
    Ok(out)
}

/// A hash of the provider options, to notice when they change.
pub fn options_hash(options: &std::collections::BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in options {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The named volumes the devcontainer.json declares for `spec` (as sindri-render
/// names them: `NAME-home`, then `NAME-VOLUME`).
pub fn volume_names(spec: &ResolvedSpec) -> Vec<String> {
    let name = spec.name();
    let mut v = vec![format!("{name}-{}", sindri_render::HOME_VOLUME)];
    for vol in &spec.spec.deployment.volumes {
        v.push(format!("{name}-{}", vol.name));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_spec::Spec;

    fn spec(doc: serde_json::Value) -> ResolvedSpec {
        let spec: Spec = serde_json::from_value(doc).expect("spec");
        ResolvedSpec::new(spec, Path::new("/project/sindri.yaml"))
    }

    #[test]
    fn ids_fit_devpods_limit_and_stay_distinct() {
        assert_eq!(workspace_id("dev"), "sindri-dev");
        let long = "a".repeat(41);
        assert_eq!(workspace_id(&long), format!("sindri-{long}"));
        let longer = format!("{}-x", "b".repeat(60));
        let other = format!("{}-y", "b".repeat(60));
        let (a, b) = (workspace_id(&longer), workspace_id(&other));
        assert!(a.len() <= MAX_ID && b.len() <= MAX_ID, "{a} {b}");
        assert_ne!(a, b, "names differing past the cut get different ids");
        assert!(a.starts_with("sindri-bbbb"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn build_paths_move_two_levels_up_and_secrets_leave_remote_env() {
        let s = spec(serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "devpod", "build": {"dockerfile": "docker/Dockerfile", "context": "."}},
            "secrets": [
                {"name": "TOKEN", "source": "env"},
                {"name": "CERT", "source": "file", "path": "cert.pem"},
            ],
        }));
        let rendered = r#"{"name":"dev","build":{"dockerfile":"../docker/Dockerfile","context":".."},
            "remoteEnv":{"TOKEN":"${localEnv:TOKEN}"},"mounts":[{"type":"bind","source":"${localWorkspaceFolder}/cert.pem","target":"/run/secrets/CERT"}]}"#;
        let out = adjust_devcontainer(rendered, &s).expect("adjust");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["build"]["dockerfile"], "../../../docker/Dockerfile");
        assert_eq!(v["build"]["context"], "../../..");
        assert!(v.get("remoteEnv").is_none(), "{out}");
        assert_eq!(v["mounts"][0]["source"], "${localWorkspaceFolder}/cert.pem");
    }

    #[test]
    fn a_template_with_comments_is_refused_with_a_hint() {
        let s = spec(
            serde_json::json!({"name": "dev", "deployment": {"provider": "devpod", "image": "x"}}),
        );
        let e = adjust_devcontainer("// hi\n{}", &s).expect_err("comments");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.hint().is_some_and(|h| h.contains("comments")));
    }
}
