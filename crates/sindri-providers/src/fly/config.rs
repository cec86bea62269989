//! Where the Fly provider finds its API and token, the way flyctl and Fly's docs do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::ProviderKind;

use crate::http::{Auth, ClientOptions, Url};

/// The Machines API when `FLY_API_HOSTNAME` is not set.
pub const DEFAULT_API_HOSTNAME: &str = "https://api.machines.dev";

/// How long `deploy`, `start` and `stop` wait for a machine to reach its state when
/// `providers.fly.wait_timeout` does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// What to tell a user without a usable token.
pub const TOKEN_HINT: &str = "log in with `fly auth login` (flyctl writes ~/.fly/config.yml), \
or set FLY_API_TOKEN to a token from `fly tokens create org`";

/// Where the token came from, for `sindri doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable (its name).
    Env(String),
    /// flyctl's config file.
    File(PathBuf),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Env(var) => write!(f, "${var}"),
            TokenSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How the Fly provider reaches the Machines API. Built from the environment by
/// [`FlyConfig::from_env`] (no I/O: the token file is read on first use), or in code
/// for tests.
#[derive(Debug, Clone)]
pub struct FlyConfig {
    /// The API's origin; requests go to `<api>/v1/...`.
    pub api: Url,
    /// A token from the environment (`FLY_API_TOKEN`, else `FLY_ACCESS_TOKEN`), with
    /// the variable's name.
    pub env_token: Option<(String, SecretValue)>,
    /// The home directory holding flyctl's `.fly/config.yml`.
    pub home: Option<PathBuf>,
    /// Timeouts and retries.
    pub http: ClientOptions,
    /// How long to wait for a machine to start or stop, unless
    /// `providers.fly.wait_timeout` says.
    pub wait: Duration,
    /// How long a `sindri exec` command may run (the Machines API runs it to the end
    /// before answering).
    pub exec_timeout: Duration,
    /// flyctl, when it is on PATH: `connect` runs `flyctl ssh console`.
    pub flyctl: Option<PathBuf>,
    /// Where secrets are written on the machine (`/run/sindri`).
    pub secrets_dir: String,
}

impl FlyConfig {
    /// From the process environment: `FLY_API_HOSTNAME`, `FLY_API_TOKEN` /
    /// `FLY_ACCESS_TOKEN`, `HOME`, and `fly`/`flyctl` on `PATH`.
    pub fn from_env() -> Result<FlyConfig> {
        FlyConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`FlyConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<FlyConfig> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let api = match get("FLY_API_HOSTNAME") {
            Some(raw) => parse_api(&raw)?,
            None => parse_api(DEFAULT_API_HOSTNAME)?,
        };
        let env_token = ["FLY_API_TOKEN", "FLY_ACCESS_TOKEN"]
            .into_iter()
            .find_map(|k| get(k).map(|v| (k.to_string(), SecretValue::new(v.trim()))));
        let flyctl = get("PATH").and_then(|p| find_flyctl(&p));
        Ok(FlyConfig {
            api,
            env_token,
            home: get("HOME").map(PathBuf::from),
            http: ClientOptions {
                auth_hint: Some(TOKEN_HINT.to_string()),
                ..ClientOptions::default()
            },
            wait: DEFAULT_WAIT,
            exec_timeout: Duration::from_secs(600),
            flyctl,
            secrets_dir: super::machine::DEFAULT_SECRETS_DIR.to_string(),
        })
    }

    /// The token and where it came from: the environment first, then flyctl's
    /// config file. Reads the file; call only when about to use the API.
    pub fn token(&self) -> Result<(SecretValue, TokenSource)> {
        if let Some((var, token)) = &self.env_token {
            return Ok((token.clone(), TokenSource::Env(var.clone())));
        }
        let Some(home) = &self.home else {
            return Err(no_token("FLY_API_TOKEN is not set and HOME is unknown"));
        };
        let path = home.join(".fly").join("config.yml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(no_token(&format!(
                    "FLY_API_TOKEN is not set and {} does not exist",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(no_token(&format!("cannot read {}: {e}", path.display())));
            }
        };
        match access_token(&text) {
            Some(t) => Ok((SecretValue::new(t), TokenSource::File(path))),
            None => Err(no_token(&format!(
                "FLY_API_TOKEN is not set and {} has no access_token",
                path.display()
            ))),
        }
    }
}

/// The `Authorization` header for a token, as flyctl sends it: macaroon tokens
/// (`FlyV1 fm2_...`) as they are, anything else as `Bearer`.
pub fn auth_for(token: &SecretValue) -> Auth {
    let t = token.expose().trim();
    match t.strip_prefix("FlyV1 ") {
        Some(rest) => Auth::Authorization {
            scheme: "FlyV1".into(),
            token: SecretValue::new(rest.trim()),
        },
        None => Auth::bearer(SecretValue::new(t)),
    }
}

fn no_token(found: &str) -> Error {
    Error::new(ErrorKind::Auth, format!("no Fly API token: {found}"))
        .with_provider(ProviderKind::Fly)
        .with_hint(TOKEN_HINT)
}

/// Parses `FLY_API_HOSTNAME` (`https://api.machines.dev`, or `_api.internal:4280`
/// inside Fly's network, where http is implied).
fn parse_api(raw: &str) -> Result<Url> {
    let raw = raw.trim().trim_end_matches('/');
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else if raw.ends_with(":4280") || raw.starts_with("localhost") || raw.starts_with("127.") {
        format!("http://{raw}")
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Error::invalid(format!(
                "FLY_API_HOSTNAME `{raw}` is not an http(s) address"
            ))
            .with_provider(ProviderKind::Fly)
            .with_hint("unset it to use https://api.machines.dev")
        })?;
    Ok(url)
}

/// The top-level `access_token` of flyctl's config.yml. Only that key is read, so no
/// YAML library is needed; quotes around the value are removed.
pub fn access_token(config_yml: &str) -> Option<String> {
    config_yml.lines().find_map(|line| {
        let rest = line.strip_prefix("access_token:")?;
        let v = rest.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v)
            .trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// `flyctl` (or `fly`) in one of `path`'s directories.
fn find_flyctl(path: &str) -> Option<PathBuf> {
    std::env::split_paths(path).find_map(|dir| {
        ["flyctl", "fly"]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
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
    fn api_hostname_defaults_and_overrides_like_flyctl() {
        let c = FlyConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.api.as_str(), "https://api.machines.dev/");
        let c =
            FlyConfig::from_lookup(lookup(&[("FLY_API_HOSTNAME", "_api.internal:4280")])).unwrap();
        assert_eq!(c.api.as_str(), "http://_api.internal:4280/");
        let c =
            FlyConfig::from_lookup(lookup(&[("FLY_API_HOSTNAME", "http://127.0.0.1:9/")])).unwrap();
        assert_eq!(c.api.as_str(), "http://127.0.0.1:9/");
        let e = FlyConfig::from_lookup(lookup(&[("FLY_API_HOSTNAME", "ftp://x")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn token_comes_from_env_then_flyctl_config() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap().to_string();
        let c =
            FlyConfig::from_lookup(lookup(&[("FLY_API_TOKEN", " tok1 "), ("HOME", &h)])).unwrap();
        let (t, src) = c.token().unwrap();
        assert_eq!(
            (t.expose(), src),
            ("tok1", TokenSource::Env("FLY_API_TOKEN".into()))
        );

        let c = FlyConfig::from_lookup(lookup(&[("HOME", &h)])).unwrap();
        let e = c.token().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.message().contains("config.yml does not exist"), "{e}");
        assert!(e.hint().unwrap().contains("fly auth login"));

        std::fs::create_dir_all(home.path().join(".fly")).unwrap();
        std::fs::write(
            home.path().join(".fly/config.yml"),
            "access_token: \"fo1_file\"\nwire_guard_state: {}\n",
        )
        .unwrap();
        let (t, src) = c.token().unwrap();
        assert_eq!(t.expose(), "fo1_file");
        assert!(matches!(src, TokenSource::File(_)));
    }

    #[test]
    fn macaroon_tokens_keep_their_scheme() {
        match auth_for(&SecretValue::new("FlyV1 fm2_abc")) {
            Auth::Authorization { scheme, token } => {
                assert_eq!((scheme.as_str(), token.expose()), ("FlyV1", "fm2_abc"))
            }
            _ => panic!("expected an Authorization header"),
        }
        match auth_for(&SecretValue::new("fo1_x")) {
            Auth::Authorization { scheme, .. } => assert_eq!(scheme, "Bearer"),
            _ => panic!("expected an Authorization header"),
        }
    }

    #[test]
    fn access_token_reads_only_the_top_level_key() {
        assert_eq!(
            access_token("x: 1\naccess_token: abc\n").as_deref(),
            Some("abc")
        );
        assert_eq!(access_token("access_token: 'q'\n").as_deref(), Some("q"));
        assert_eq!(access_token("  access_token: nested\n"), None);
        assert_eq!(access_token("access_token:\n"), None);
    }
}
