//! Where local environments live and the marker that says sindri owns one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sindri_core::{Deployment, DeploymentState, Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

/// The marker file in every environment directory; `list_owned` finds environments by
/// it, and nothing without it is ever modified or removed.
pub const MARKER: &str = ".sindri-owner.json";

/// The plain-text `deployment.env` of the environment, applied to every exec.
pub const ENV_FILE: &str = "env.json";

/// The directory holding the workdir copy (absent when `in_place`).
pub const WORK_DIR: &str = "work";

/// The directory holding run directories.
pub const RUNS_DIR: &str = "runs";

/// `SINDRI_STATE_DIR`, as `sindri-state` reads it.
const STATE_DIR_ENV: &str = "SINDRI_STATE_DIR";

/// The directory of local environments: `<state dir>/local`, with the state directory
/// found as `sindri_state::default_state_dir` finds it (`SINDRI_STATE_DIR`, else
/// `$XDG_STATE_HOME/sindri`, else `~/.local/state/sindri`). Reads the process
/// environment only.
pub fn default_root() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let state = if let Some(dir) = non_empty(STATE_DIR_ENV) {
        PathBuf::from(dir)
    } else if let Some(xdg) = non_empty("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        xdg.join("sindri")
    } else if let Some(home) = non_empty("HOME") {
        PathBuf::from(home).join(".local/state/sindri")
    } else {
        return Err(Error::internal(
            "cannot find sindri's state directory for local environments: SINDRI_STATE_DIR, XDG_STATE_HOME and HOME are unset",
        )
        .with_provider(ProviderKind::Local)
        .with_hint("set SINDRI_STATE_DIR to a writable directory"));
    };
    Ok(state.join("local"))
}

/// What sindri records about a local environment, in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always true: the directory is sindri's.
    pub managed: bool,
    /// The environment name.
    pub name: String,
    /// The project id.
    pub project: String,
    /// Hash of the deployed spec.
    pub spec_hash: String,
    /// The job's workdir: `<dir>/work`, or the project's own directory when in place.
    pub workdir: PathBuf,
    /// True when the workdir is the project directory itself.
    pub in_place: bool,
    /// Unix seconds when first deployed.
    pub created_at: i64,
    /// Unix seconds when last deployed.
    pub updated_at: i64,
}

impl Marker {
    /// The deployment record this marker describes, for environment directory `dir`.
    pub fn deployment(&self, dir: &Path) -> Deployment {
        let mut details = BTreeMap::new();
        details.insert("dir".to_string(), dir.display().to_string());
        // Read by sindri-runs (`deployment_keys`): where runs sync to and live.
        details.insert(
            "run_workdir".to_string(),
            self.workdir.display().to_string(),
        );
        details.insert(
            "run_root".to_string(),
            dir.join(RUNS_DIR).display().to_string(),
        );
        details.insert("run_in_place".to_string(), self.in_place.to_string());
        Deployment {
            name: self.name.clone(),
            provider: ProviderKind::Local,
            project: self.project.clone(),
            resource_id: Some(dir.display().to_string()),
            spec_hash: self.spec_hash.clone(),
            state: DeploymentState::Ready,
            details,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The marker as written to disk.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Reads the marker of `dir`: `Ok(None)` when the directory does not exist, a
/// `Conflict` when it exists without a valid marker (not sindri's).
pub fn read_marker(dir: &Path) -> Result<Option<Marker>> {
    if !dir.exists() {
        return Ok(None);
    }
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_ours(dir, "it has no .sindri-owner.json marker"));
        }
        Err(e) => {
            return Err(
                Error::internal(format!("cannot read {}: {e}", path.display()))
                    .with_provider(ProviderKind::Local),
            );
        }
    };
    match serde_json::from_str::<Marker>(&text) {
        Ok(m) if m.managed => Ok(Some(m)),
        _ => Err(not_ours(
            dir,
            "its .sindri-owner.json marker is not sindri's",
        )),
    }
}

fn not_ours(dir: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "{} exists but sindri did not create it: {why}",
            dir.display()
        ),
    )
    .with_provider(ProviderKind::Local)
    .with_hint("move it away, or choose another environment name")
}

/// Writes `content` to `path` through a temporary file and a rename, so a reader
/// never sees half a file.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The environment's `deployment.env`.
pub fn read_env(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join(ENV_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The newest run directory under `dir/runs` (run ids sort by creation time).
pub fn latest_run(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir.join(RUNS_DIR)).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .max()
}
