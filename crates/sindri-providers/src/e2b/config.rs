//! Where the E2B provider finds its APIs and key, the way E2B's own SDKs do.

use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::ProviderKind;

use crate::http::{ClientOptions, Url};

/// The domain when `E2B_DOMAIN` is not set.
pub const DEFAULT_DOMAIN: &str = "e2b.app";
/// The port envd, E2B's in-sandbox daemon, listens on.
pub const ENVD_PORT: u16 = 49983;
/// What to tell a user without a key.
pub const KEY_HINT: &str = "set E2B_API_KEY to a key from https://e2b.dev/dashboard?tab=keys";

/// How the E2B provider reaches E2B. Built from the environment by
/// [`E2bConfig::from_env`], or in code for tests.
#[derive(Debug, Clone)]
pub struct E2bConfig {
    /// The control plane (`E2B_API_URL`, else `https://api.<domain>`).
    pub api: Url,
    /// The sandbox domain (`E2B_DOMAIN`, else `e2b.app`); a sandbox's own `domain`
    /// takes precedence.
    pub domain: String,
    /// `E2B_SANDBOX_URL`: when set, every envd request goes there, naming the sandbox
    /// in the `E2b-Sandbox-Id` and `E2b-Sandbox-Port` headers (as the SDKs do).
    pub sandbox_url: Option<Url>,
    /// `E2B_DEBUG=true`: plain http to localhost, as the SDKs do.
    pub debug: bool,
    /// `E2B_API_KEY`.
    pub api_key: Option<SecretValue>,
    /// Timeouts and retries.
    pub http: ClientOptions,
}

impl E2bConfig {
    /// From the process environment: `E2B_API_KEY`, `E2B_API_URL`, `E2B_DOMAIN`,
    /// `E2B_SANDBOX_URL` and `E2B_DEBUG`.
    pub fn from_env() -> Result<E2bConfig> {
        E2bConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`E2bConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<E2bConfig> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let debug = get("E2B_DEBUG").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let domain = get("E2B_DOMAIN").unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        let api = match get("E2B_API_URL") {
            Some(u) => parse_url("E2B_API_URL", &u)?,
            None if debug => parse_url("E2B_DEBUG", "http://localhost:3000")?,
            None => parse_url("E2B_DOMAIN", &format!("https://api.{domain}"))?,
        };
        let sandbox_url = get("E2B_SANDBOX_URL")
            .map(|u| parse_url("E2B_SANDBOX_URL", &u))
            .transpose()?;
        Ok(E2bConfig {
            api,
            domain,
            sandbox_url,
            debug,
            api_key: get("E2B_API_KEY").map(SecretValue::new),
            http: ClientOptions {
                auth_hint: Some(KEY_HINT.to_string()),
                ..ClientOptions::default()
            },
        })
    }

    /// The key, or an `Auth` error saying how to get one.
    pub fn key(&self) -> Result<SecretValue> {
        self.api_key.clone().ok_or_else(|| {
            Error::new(ErrorKind::Auth, "E2B_API_KEY is not set")
                .with_provider(ProviderKind::E2b)
                .with_hint(KEY_HINT)
        })
    }

    /// The base URL of a sandbox's envd: `E2B_SANDBOX_URL`, else
    /// `https://49983-<id>.<domain>` (`http://localhost:49983` in debug mode).
    pub fn envd_url(&self, sandbox_id: &str, sandbox_domain: Option<&str>) -> Result<Url> {
        if let Some(u) = &self.sandbox_url {
            return Ok(u.clone());
        }
        let raw = if self.debug {
            format!("http://localhost:{ENVD_PORT}")
        } else {
            let domain = sandbox_domain
                .filter(|d| !d.is_empty())
                .unwrap_or(&self.domain);
            format!("https://{ENVD_PORT}-{sandbox_id}.{domain}")
        };
        parse_url("E2B_DOMAIN", &raw)
    }
}

fn parse_url(var: &str, raw: &str) -> Result<Url> {
    Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Error::invalid(format!("{var} gives `{raw}`, which is not an http(s) URL"))
                .with_provider(ProviderKind::E2b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn urls_follow_the_sdks() {
        let c = E2bConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.api.as_str(), "https://api.e2b.app/");
        assert_eq!(
            c.envd_url("sb1", None).unwrap().as_str(),
            "https://49983-sb1.e2b.app/"
        );
        assert_eq!(
            c.envd_url("sb1", Some("eu.e2b.dev")).unwrap().as_str(),
            "https://49983-sb1.eu.e2b.dev/"
        );
        let c = E2bConfig::from_lookup(lookup(&[("E2B_DOMAIN", "example.org")])).unwrap();
        assert_eq!(c.api.as_str(), "https://api.example.org/");
        let c = E2bConfig::from_lookup(lookup(&[
            ("E2B_API_URL", "http://127.0.0.1:5000"),
            ("E2B_SANDBOX_URL", "http://127.0.0.1:5001"),
        ]))
        .unwrap();
        assert_eq!(c.api.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(
            c.envd_url("x", Some("d")).unwrap().as_str(),
            "http://127.0.0.1:5001/"
        );
        let c = E2bConfig::from_lookup(lookup(&[("E2B_DEBUG", "true")])).unwrap();
        assert_eq!(c.api.as_str(), "http://localhost:3000/");
        assert_eq!(
            c.envd_url("x", None).unwrap().as_str(),
            "http://localhost:49983/"
        );
    }

    #[test]
    fn a_missing_key_is_an_auth_error_with_a_hint() {
        let c = E2bConfig::from_lookup(lookup(&[])).unwrap();
        let e = c.key().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.hint().unwrap().contains("E2B_API_KEY"));
        let c = E2bConfig::from_lookup(lookup(&[("E2B_API_KEY", "e2b_x")])).unwrap();
        assert_eq!(c.key().unwrap().expose(), "e2b_x");
    }
}
