//! The spec after resolution: secrets read, paths anchored, a hash to compare deploys.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sindri_spec::Spec;

/// A secret's value. It prints as `***` in every Debug and Display, and cannot be
/// serialised, so it cannot leak into logs, state or plan output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// The value itself, for handing to the platform's secret mechanism.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A secret with its value read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSecret {
    /// Name, also the environment variable unless `mount` is set.
    pub name: String,
    /// The value.
    pub value: SecretValue,
    /// Absolute path to expose it at as a file, instead of an environment variable.
    pub mount: Option<String>,
}

/// A validated spec with everything a provider needs to act on it.
#[derive(Debug, Clone)]
pub struct ResolvedSpec {
    /// The spec as loaded.
    pub spec: Spec,
    /// The config file it came from.
    pub config_path: PathBuf,
    /// The directory relative paths in the spec are anchored to.
    pub base_dir: PathBuf,
    /// Identifies the project directory (see [`project_id`]).
    pub project: String,
    /// Secrets with their values.
    pub secrets: Vec<ResolvedSecret>,
}

impl ResolvedSpec {
    /// A spec with no secrets resolved, anchored at `config_path`'s directory.
    pub fn new(spec: Spec, config_path: &Path) -> ResolvedSpec {
        let base_dir = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let project = project_id(&base_dir);
        ResolvedSpec {
            spec,
            config_path: config_path.to_path_buf(),
            base_dir,
            project,
            secrets: Vec::new(),
        }
    }

    /// The environment name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// A path from the spec, anchored at the config file's directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }

    /// A short hash of everything that shapes the deployed environment: the spec and
    /// the secret values. Equal hashes mean a redeploy has nothing to change. The
    /// secret values enter the hash, never the record, and the hash is one-way.
    ///
    /// The `run` and `extensions` sections are left out: they say what runs and what
    /// is installed in the environment, not what the environment is, so editing a job's
    /// command or adding a tool must not rebuild its machine (extensions are tracked
    /// and installed incrementally on their own).
    pub fn spec_hash(&self) -> String {
        let mut h = Sha256::new();
        let environment = Spec {
            run: None,
            extensions: Default::default(),
            ..self.spec.clone()
        };
        h.update(serde_json::to_vec(&environment).unwrap_or_default());
        for s in &self.secrets {
            h.update(s.name.as_bytes());
            h.update([0]);
            h.update(s.value.expose().as_bytes());
            h.update([0]);
            h.update(s.mount.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
        }
        hex(&h.finalize()[..8])
    }
}

/// A short stable id for a project directory: the first 12 hex digits of the SHA-256
/// of its canonical path. It lets `list_owned` tell two projects' environments of the
/// same name apart.
pub fn project_id(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    hex(&digest[..6])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
