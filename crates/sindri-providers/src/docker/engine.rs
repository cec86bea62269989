//! Finding the Docker Engine, reaching it, and turning its failures into sindri's errors.
//!
//! The address is chosen like the docker CLI chooses it, without running the CLI:
//! `providers.docker.host`, then `DOCKER_HOST`, then the current docker context
//! (`DOCKER_CONTEXT`, else `currentContext` in `~/.docker/config.json`, whose endpoint is
//! stored in `~/.docker/contexts/meta/<sha256 of the name>/meta.json`), then the default
//! socket. Nothing is read or dialled until the first operation needs the engine, so
//! building the provider does no I/O.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use sha2::{Digest, Sha256};
use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::ProviderKind;

/// How long reaching the engine may take before sindri says it is unavailable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// bollard's per-request limit. It bounds the wait for response headers only, so
/// streams (build output, logs, exec) are not cut; it must exceed `docker stop`'s grace
/// period and the upload of a large build context.
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// The engine's address when nothing else names one.
pub(crate) const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

const START_DOCKER_HINT: &str = "start Docker: `sudo systemctl start docker` on Linux, or start Docker Desktop; \
to use another engine set `providers.docker.host` in sindri.yaml or DOCKER_HOST";

/// Where the engine address came from, so errors can say what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostSource {
    /// `providers.docker.host` in sindri.yaml.
    Settings,
    /// The `DOCKER_HOST` environment variable.
    Env,
    /// A docker context, by name.
    Context(String),
    /// The default socket.
    Default,
}

impl fmt::Display for HostSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSource::Settings => f.write_str("from providers.docker.host"),
            HostSource::Env => f.write_str("from DOCKER_HOST"),
            HostSource::Context(name) => write!(f, "from docker context `{name}`"),
            HostSource::Default => f.write_str("the default socket"),
        }
    }
}

/// A resolved engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineHost {
    /// `unix:///path` or `tcp://host:port`.
    pub url: String,
    /// Why this address was chosen.
    pub source: HostSource,
}

impl EngineHost {
    /// `unix:///var/run/docker.sock (the default socket)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.url, self.source)
    }

    /// The host name at which ports published by the engine are reachable.
    pub fn published_host(&self) -> String {
        match self.url.split_once("://") {
            Some(("tcp" | "http" | "https", rest)) => {
                let authority = rest.split('/').next().unwrap_or(rest);
                match authority.rsplit_once(':') {
                    Some((h, _)) if !h.is_empty() => h.to_string(),
                    _ if !authority.is_empty() => authority.to_string(),
                    _ => "127.0.0.1".to_string(),
                }
            }
            _ => "127.0.0.1".to_string(),
        }
    }

    /// The socket path, for a local engine.
    pub fn socket_path(&self) -> Option<&str> {
        self.url.strip_prefix("unix://")
    }
}

/// What host resolution reads, gathered in one place so tests can fake it.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostLookup {
    /// `providers.docker.host`.
    pub settings_host: Option<String>,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub docker_context: Option<String>,
    /// The docker CLI's configuration directory (`DOCKER_CONFIG`, else `~/.docker`).
    pub config_dir: Option<PathBuf>,
}

impl HostLookup {
    /// Reads the process environment.
    pub fn from_env(settings_host: Option<&str>) -> HostLookup {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let config_dir = var("DOCKER_CONFIG").map(PathBuf::from).or_else(|| {
            std::env::home_dir()
                .filter(|h| !h.as_os_str().is_empty())
                .map(|h| h.join(".docker"))
        });
        HostLookup {
            settings_host: settings_host.map(str::to_string),
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            config_dir,
        }
    }
}

/// Chooses the engine address: settings, `DOCKER_HOST`, docker context, default socket.
pub(crate) fn resolve_host(l: &HostLookup) -> Result<EngineHost> {
    if let Some(h) = l.settings_host.as_deref().filter(|h| !h.trim().is_empty()) {
        return Ok(EngineHost {
            url: h.trim().to_string(),
            source: HostSource::Settings,
        });
    }
    if let Some(h) = l.docker_host.as_deref() {
        return Ok(EngineHost {
            url: h.trim().to_string(),
            source: HostSource::Env,
        });
    }
    let default = EngineHost {
        url: DEFAULT_HOST.to_string(),
        source: HostSource::Default,
    };
    let Some(config_dir) = l.config_dir.as_deref() else {
        return Ok(default);
    };
    let (context, named_in) = match l.docker_context.as_deref() {
        Some(c) => (c.trim().to_string(), "DOCKER_CONTEXT".to_string()),
        None => match current_context(config_dir)? {
            Some(c) => (c, config_dir.join("config.json").display().to_string()),
            None => return Ok(default),
        },
    };
    if context.is_empty() || context == "default" {
        return Ok(default);
    }
    let meta = context_meta_path(config_dir, &context);
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        Error::invalid(format!(
            "docker context `{context}` (named in {named_in}) has no endpoint: cannot read {}: {e}",
            meta.display()
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint("list contexts with `docker context ls`; switch with `docker context use default`, or set DOCKER_HOST")
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "docker context `{context}`: {} is not valid JSON: {e}",
            meta.display()
        ))
        .with_provider(ProviderKind::Docker)
    })?;
    match value
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
    {
        Some(h) => Ok(EngineHost {
            url: h.to_string(),
            source: HostSource::Context(context),
        }),
        None => Err(Error::invalid(format!(
            "docker context `{context}`: {} has no Endpoints.docker.Host",
            meta.display()
        ))
        .with_provider(ProviderKind::Docker)
        .with_hint("recreate the context with `docker context create`, or set DOCKER_HOST")),
    }
}

/// `currentContext` from the CLI's config.json, when set.
fn current_context(config_dir: &Path) -> Result<Option<String>> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                Error::invalid(format!("cannot read {}: {e}", path.display()))
                    .with_provider(ProviderKind::Docker),
            );
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(format!("{} is not valid JSON: {e}", path.display()))
            .with_provider(ProviderKind::Docker)
            .with_hint("fix or remove the file; the docker CLI writes it")
    })?;
    Ok(value
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// Where the docker CLI keeps a context's metadata: the directory is named by the
/// SHA-256 of the context name.
pub(crate) fn context_meta_path(config_dir: &Path, context: &str) -> PathBuf {
    let digest = Sha256::digest(context.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    config_dir
        .join("contexts")
        .join("meta")
        .join(hex)
        .join("meta.json")
}

/// A bollard client for `host`. Dials nothing (bollard connects on the first request),
/// but refuses addresses this build cannot speak.
pub(crate) fn client_for(host: &EngineHost, tls_verify: bool) -> Result<Docker> {
    let version = bollard::API_DEFAULT_VERSION;
    let (scheme, _) = host.url.split_once("://").unwrap_or(("", &host.url));
    let result = match scheme {
        "unix" => Docker::connect_with_unix(&host.url, REQUEST_TIMEOUT_SECS, version),
        "tcp" | "http" if !tls_verify => {
            Docker::connect_with_http(&host.url, REQUEST_TIMEOUT_SECS, version)
        }
        "tcp" | "http" | "https" => {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the Docker Engine at {} needs TLS, which this sindri build does not speak",
                    host.describe()
                ),
            )
            .with_provider(ProviderKind::Docker)
            .with_hint("forward the engine's socket over SSH (`ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock HOST`) and set DOCKER_HOST=unix:///tmp/docker.sock"));
        }
        _ => {
            return Err(Error::invalid(format!(
                "unsupported Docker Engine address {}: expected unix:///path/to/docker.sock or tcp://host:port",
                host.describe()
            ))
            .with_provider(ProviderKind::Docker)
            .with_hint("for an ssh:// engine, forward its socket (`ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock HOST`) and use unix:///tmp/docker.sock"));
        }
    };
    result.map_err(|e| unavailable(host, &e))
}

/// Connects to `host` and agrees on an API version, within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(host: &EngineHost, tls_verify: bool) -> Result<Docker> {
    let docker = client_for(host, tls_verify)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unavailable(host, &e)),
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot reach the Docker Engine at {}: no answer within {} s",
                host.describe(),
                CONNECT_TIMEOUT.as_secs()
            ),
        )
        .with_provider(ProviderKind::Docker)
        .with_hint(START_DOCKER_HINT)),
    }
}

/// The engine could not be reached at `host`.
pub(crate) fn unavailable(host: &EngineHost, cause: &bollard::errors::Error) -> Error {
    let text = cause_text(cause);
    let hint = if text.to_ascii_lowercase().contains("permission denied") {
        "your user may not use the Docker socket: `sudo usermod -aG docker $USER`, then log in again"
            .to_string()
    } else {
        START_DOCKER_HINT.to_string()
    };
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "cannot reach the Docker Engine at {}: {text}",
            host.describe()
        ),
    )
    .with_provider(ProviderKind::Docker)
    .with_hint(hint)
}

/// A bollard error's message with its causes, which hold the useful part
/// ("Connection refused", "No such file or directory").
fn cause_text(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as B;
    if let B::SocketNotFoundError(path) = e {
        return format!("no socket at {path}");
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Converts a failed engine request into sindri's error; `action` says what was being
/// done ("create container sindri-dev").
pub(crate) fn api_error(action: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    let (kind, message, hint) = match &e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                401 | 403 => ErrorKind::Auth,
                503 => ErrorKind::Transient,
                _ => ErrorKind::Platform,
            };
            (kind, format!("{action}: {}", message.trim()), None)
        }
        B::RequestTimeoutError => (
            ErrorKind::Transient,
            format!("{action}: the Docker Engine did not answer within {REQUEST_TIMEOUT_SECS} s"),
            Some("the engine may be overloaded; try again".to_string()),
        ),
        B::HyperResponseError { .. }
        | B::IOError { .. }
        | B::HyperLegacyError { .. }
        | B::SocketNotFoundError(_) => (
            ErrorKind::Unavailable,
            format!(
                "{action}: lost the connection to the Docker Engine: {}",
                cause_text(&e)
            ),
            Some(START_DOCKER_HINT.to_string()),
        ),
        _ => (
            ErrorKind::Platform,
            format!("{action}: {}", cause_text(&e)),
            None,
        ),
    };
    let mut err = Error::new(kind, message).with_provider(ProviderKind::Docker);
    if let Some(h) = hint {
        err = err.with_hint(h);
    }
    err.with_source(e)
}

/// True when a request failed with the given HTTP status.
pub(crate) fn is_status(e: &bollard::errors::Error, status: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// True when the engine answered "not modified" (start of a running container, stop of
/// a stopped one); bollard passes 304 as success, older versions as an error.
pub(crate) fn is_not_modified(e: &bollard::errors::Error) -> bool {
    is_status(e, 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(dir: &Path) -> HostLookup {
        HostLookup {
            config_dir: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    fn write_context(dir: &Path, name: &str, host: &str) {
        let meta = context_meta_path(dir, name);
        std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
        std::fs::write(
            &meta,
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            ),
        )
        .unwrap();
    }

    #[test]
    fn meta_dir_is_the_sha256_of_the_context_name() {
        // The digest the docker CLI uses for a context named "default" (known value).
        let p = context_meta_path(Path::new("/h/.docker"), "default");
        assert_eq!(
            p,
            Path::new(
                "/h/.docker/contexts/meta/37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f/meta.json"
            )
        );
    }

    #[test]
    fn settings_win_over_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"remote"}"#,
        )
        .unwrap();
        write_context(dir.path(), "remote", "tcp://10.0.0.1:2375");
        let l = HostLookup {
            settings_host: Some("unix:///custom.sock".into()),
            docker_host: Some("tcp://env:2375".into()),
            ..lookup(dir.path())
        };
        let h = resolve_host(&l).unwrap();
        assert_eq!(h.url, "unix:///custom.sock");
        assert_eq!(h.source, HostSource::Settings);
    }

    #[test]
    fn docker_host_wins_over_the_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"remote"}"#,
        )
        .unwrap();
        write_context(dir.path(), "remote", "tcp://10.0.0.1:2375");
        let l = HostLookup {
            docker_host: Some("tcp://env:2375".into()),
            ..lookup(dir.path())
        };
        let h = resolve_host(&l).unwrap();
        assert_eq!(h.url, "tcp://env:2375");
        assert_eq!(h.source, HostSource::Env);
    }

    #[test]
    fn current_context_is_read_from_config_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{},"currentContext":"colima"}"#,
        )
        .unwrap();
        write_context(dir.path(), "colima", "unix:///home/u/.colima/docker.sock");
        let h = resolve_host(&lookup(dir.path())).unwrap();
        assert_eq!(h.url, "unix:///home/u/.colima/docker.sock");
        assert_eq!(h.source, HostSource::Context("colima".into()));
        assert!(h.describe().contains("docker context `colima`"));
    }

    #[test]
    fn docker_context_env_overrides_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"currentContext":"a"}"#).unwrap();
        write_context(dir.path(), "a", "unix:///a.sock");
        write_context(dir.path(), "b", "unix:///b.sock");
        let l = HostLookup {
            docker_context: Some("b".into()),
            ..lookup(dir.path())
        };
        assert_eq!(resolve_host(&l).unwrap().url, "unix:///b.sock");
    }

    #[test]
    fn default_context_and_missing_config_mean_the_default_socket() {
        let dir = tempfile::tempdir().unwrap();
        let h = resolve_host(&lookup(dir.path())).unwrap();
        assert_eq!(
            (h.url.as_str(), h.source),
            (DEFAULT_HOST, HostSource::Default)
        );
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"default"}"#,
        )
        .unwrap();
        assert_eq!(resolve_host(&lookup(dir.path())).unwrap().url, DEFAULT_HOST);
        let none = HostLookup::default();
        assert_eq!(resolve_host(&none).unwrap().url, DEFAULT_HOST);
    }

    #[test]
    fn a_context_without_metadata_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"gone"}"#,
        )
        .unwrap();
        let e = resolve_host(&lookup(dir.path())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("`gone`"), "{e}");
        assert!(e.hint().unwrap().contains("docker context use default"));
    }

    #[test]
    fn broken_config_json_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let e = resolve_host(&lookup(dir.path())).unwrap_err();
        assert!(e.message().contains("config.json"), "{e}");
    }

    #[test]
    fn published_host_follows_the_engine_address() {
        let h = |url: &str| EngineHost {
            url: url.into(),
            source: HostSource::Env,
        };
        assert_eq!(
            h("unix:///var/run/docker.sock").published_host(),
            "127.0.0.1"
        );
        assert_eq!(h("tcp://10.1.2.3:2375").published_host(), "10.1.2.3");
        assert_eq!(h("tcp://build-box").published_host(), "build-box");
    }

    #[test]
    fn unsupported_schemes_and_tls_are_refused_with_a_way_out() {
        let ssh = EngineHost {
            url: "ssh://me@box".into(),
            source: HostSource::Env,
        };
        let e = client_for(&ssh, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.hint().unwrap().contains("ssh -nNT -L"));
        let tls = EngineHost {
            url: "tcp://box:2376".into(),
            source: HostSource::Env,
        };
        assert_eq!(
            client_for(&tls, true).unwrap_err().kind(),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn engine_errors_map_to_kinds() {
        let e = |status_code: u16| bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: "boom".into(),
        };
        assert_eq!(api_error("x", e(404)).kind(), ErrorKind::NotFound);
        assert_eq!(api_error("x", e(409)).kind(), ErrorKind::Conflict);
        assert_eq!(api_error("x", e(500)).kind(), ErrorKind::Platform);
        assert_eq!(api_error("x", e(503)).kind(), ErrorKind::Transient);
        assert_eq!(
            api_error("start container", e(500)).message(),
            "start container: boom"
        );
        let gone = bollard::errors::Error::SocketNotFoundError("/nope.sock".into());
        let err = api_error("inspect", gone);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("/nope.sock"));
    }
}
