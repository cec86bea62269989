//! Where the RunPod provider finds its API, key and SSH settings.

use std::path::PathBuf;
use std::time::Duration;

use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::ProviderKind;

use crate::http::{ClientOptions, Url};
use crate::ssh::SshOptions;

/// RunPod's REST API when `RUNPOD_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://rest.runpod.io/v1";

/// What to tell a user without a usable key.
pub const KEY_HINT: &str = "create an API key at https://console.runpod.io/user/settings \
(API Keys) and set RUNPOD_API_KEY";

/// How the RunPod provider reaches RunPod and the pods. Built from the environment by
/// [`RunpodConfig::from_env`] (no I/O), or in code for tests.
#[derive(Debug, Clone)]
pub struct RunpodConfig {
    /// The REST API's base, ending in `/v1` (`RUNPOD_API_URL`).
    pub api: Url,
    /// `RUNPOD_API_KEY`.
    pub api_key: Option<SecretValue>,
    /// The home directory searched for `~/.ssh/id_ed25519.pub` (`HOME`).
    pub home: Option<PathBuf>,
    /// Timeouts and retries of API calls.
    pub http: ClientOptions,
    /// How `ssh` is run; `None`: in sindri's state directory
    /// ([`SshOptions::from_env`]), resolved when first needed.
    pub ssh: Option<SshOptions>,
    /// The login user on pods: `root`, whom RunPod's images give the key in
    /// `PUBLIC_KEY`.
    pub ssh_user: String,
    /// Between two looks while waiting for a pod (to run, to answer SSH).
    pub poll_interval: Duration,
    /// Looks before a wait gives up (default: 10 minutes' worth).
    pub max_polls: u32,
}

impl RunpodConfig {
    /// From the process environment: `RUNPOD_API_URL`, `RUNPOD_API_KEY`, `HOME`.
    pub fn from_env() -> Result<RunpodConfig> {
        RunpodConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`RunpodConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<RunpodConfig> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let api = parse_api(get("RUNPOD_API_URL").as_deref().unwrap_or(DEFAULT_API_URL))?;
        Ok(RunpodConfig {
            api,
            api_key: get("RUNPOD_API_KEY").map(|v| SecretValue::new(v.trim())),
            home: get("HOME").map(PathBuf::from),
            http: ClientOptions {
                auth_hint: Some(KEY_HINT.to_string()),
                ..ClientOptions::default()
            },
            ssh: None,
            ssh_user: "root".to_string(),
            poll_interval: Duration::from_secs(5),
            max_polls: 120,
        })
    }

    /// The API key, or an `Auth` error saying how to get one.
    pub fn key(&self) -> Result<SecretValue> {
        self.api_key.clone().ok_or_else(|| {
            Error::new(ErrorKind::Auth, "RUNPOD_API_KEY is not set")
                .with_provider(ProviderKind::Runpod)
                .with_hint(KEY_HINT)
        })
    }

    /// The SSH options, from sindri's state directory unless set.
    pub fn ssh_options(&self) -> Result<SshOptions> {
        match &self.ssh {
            Some(o) => Ok(o.clone()),
            None => SshOptions::from_env(),
        }
    }
}

fn parse_api(raw: &str) -> Result<Url> {
    let raw = raw.trim().trim_end_matches('/');
    Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Error::invalid(format!("RUNPOD_API_URL `{raw}` is not an http(s) address"))
                .with_provider(ProviderKind::Runpod)
                .with_hint(format!("unset it to use {DEFAULT_API_URL}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_defaults_and_overrides() {
        let c = RunpodConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c.api.as_str(), "https://rest.runpod.io/v1");
        assert_eq!(c.key().unwrap_err().kind(), ErrorKind::Auth);
        let c = RunpodConfig::from_lookup(|k| match k {
            "RUNPOD_API_URL" => Some("http://127.0.0.1:9/v1/".into()),
            "RUNPOD_API_KEY" => Some(" rk_x ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api.as_str(), "http://127.0.0.1:9/v1");
        assert_eq!(c.key().unwrap().expose(), "rk_x");
        let e = RunpodConfig::from_lookup(|k| (k == "RUNPOD_API_URL").then(|| "ftp://x".into()))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}
