//! Where the Lyceum provider finds its API, key and SSH settings.

use std::path::PathBuf;
use std::time::Duration;

use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::ProviderKind;

use crate::http::{ClientOptions, Url};
use crate::ssh::SshOptions;

/// Lyceum's VM API when `LYCEUM_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.lyceum.technology/api/v2/external";

/// What to tell a user without a usable key.
pub const KEY_HINT: &str = "create an API key at https://lyceum.technology and set LYCEUM_API_KEY \
(or write it to ~/.lyceum/api_key)";

/// Where the key came from, for `sindri doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `LYCEUM_API_KEY`.
    Env,
    /// The key file Lyceum's tools use.
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("$LYCEUM_API_KEY"),
            KeySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How the Lyceum provider reaches Lyceum and its VMs. Built from the environment by
/// [`LyceumConfig::from_env`] (no I/O: the key file is read on first use), or in code
/// for tests.
#[derive(Debug, Clone)]
pub struct LyceumConfig {
    /// The VM API's base, ending in `/api/v2/external` (`LYCEUM_API_URL`).
    pub api: Url,
    /// `LYCEUM_API_KEY`.
    pub api_key: Option<SecretValue>,
    /// The home directory: `~/.lyceum/api_key` and `~/.ssh/id_ed25519.pub`.
    pub home: Option<PathBuf>,
    /// Timeouts and retries of API calls.
    pub http: ClientOptions,
    /// How `ssh` is run; `None`: in sindri's state directory, resolved when needed.
    pub ssh: Option<SshOptions>,
    /// The login user of Lyceum's image: `lyceum` (its documentation says root, but
    /// the image refuses root and ubuntu).
    pub ssh_user: String,
    /// sindri's directory on the VM (env file, secret files); relative paths are
    /// under the login user's home.
    pub env_dir: String,
    /// Between two looks while waiting for a VM (to be ready, to answer SSH).
    pub poll_interval: Duration,
    /// Looks before a wait gives up (default: 15 minutes' worth; Lyceum takes 2-4
    /// minutes to provision).
    pub max_polls: u32,
}

impl LyceumConfig {
    /// From the process environment: `LYCEUM_API_URL`, `LYCEUM_API_KEY`, `HOME`.
    pub fn from_env() -> Result<LyceumConfig> {
        LyceumConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`LyceumConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LyceumConfig> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let raw = get("LYCEUM_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let raw = raw.trim().trim_end_matches('/');
        let api = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::invalid(format!("LYCEUM_API_URL `{raw}` is not an http(s) address"))
                    .with_provider(ProviderKind::Lyceum)
                    .with_hint(format!("unset it to use {DEFAULT_API_URL}"))
            })?;
        Ok(LyceumConfig {
            api,
            api_key: get("LYCEUM_API_KEY").map(|v| SecretValue::new(v.trim())),
            home: get("HOME").map(PathBuf::from),
            http: ClientOptions {
                auth_hint: Some(KEY_HINT.to_string()),
                ..ClientOptions::default()
            },
            ssh: None,
            ssh_user: "lyceum".to_string(),
            env_dir: ".sindri".to_string(),
            poll_interval: Duration::from_secs(5),
            max_polls: 180,
        })
    }

    /// The API key and where it came from: `LYCEUM_API_KEY`, else `~/.lyceum/api_key`.
    /// Reads the file; call only when about to use the API.
    pub fn key(&self) -> Result<(SecretValue, KeySource)> {
        if let Some(k) = &self.api_key {
            return Ok((k.clone(), KeySource::Env));
        }
        let no_key = |found: String| {
            Error::new(ErrorKind::Auth, format!("no Lyceum API key: {found}"))
                .with_provider(ProviderKind::Lyceum)
                .with_hint(KEY_HINT)
        };
        let Some(home) = &self.home else {
            return Err(no_key(
                "LYCEUM_API_KEY is not set and HOME is unknown".into(),
            ));
        };
        let path = home.join(".lyceum/api_key");
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => {
                Ok((SecretValue::new(t.trim()), KeySource::File(path)))
            }
            Ok(_) => Err(no_key(format!(
                "LYCEUM_API_KEY is not set and {} is empty",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_key(format!(
                "LYCEUM_API_KEY is not set and {} does not exist",
                path.display()
            ))),
            Err(e) => Err(no_key(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// The SSH options, from sindri's state directory unless set.
    pub fn ssh_options(&self) -> Result<SshOptions> {
        match &self.ssh {
            Some(o) => Ok(o.clone()),
            None => SshOptions::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comes_from_env_then_the_key_file() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_string_lossy().into_owned();
        let c = LyceumConfig::from_lookup(|k| (k == "HOME").then(|| h.clone())).unwrap();
        assert_eq!(c.api.as_str(), DEFAULT_API_URL);
        let e = c.key().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.message().contains("api_key does not exist"), "{e}");
        std::fs::create_dir_all(home.path().join(".lyceum")).unwrap();
        std::fs::write(home.path().join(".lyceum/api_key"), "  \n").unwrap();
        assert!(c.key().unwrap_err().message().contains("is empty"));
        std::fs::write(home.path().join(".lyceum/api_key"), "lk_file\n").unwrap();
        let (k, src) = c.key().unwrap();
        assert_eq!(k.expose(), "lk_file");
        assert!(matches!(src, KeySource::File(_)));
        let c = LyceumConfig::from_lookup(|k| match k {
            "LYCEUM_API_KEY" => Some("lk_env".into()),
            "LYCEUM_API_URL" => Some("http://127.0.0.1:1/api/v2/external/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c.key().unwrap(),
            (SecretValue::new("lk_env"), KeySource::Env)
        );
        assert_eq!(c.api.as_str(), "http://127.0.0.1:1/api/v2/external");
    }
}
