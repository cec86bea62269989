//! The `vault` secret source: HashiCorp Vault or OpenBao over its HTTP API.
//!
//! Configuration comes from the variables the Vault and OpenBao CLIs use, so a shell
//! where `vault kv get` or `bao kv get` works needs nothing else: `VAULT_ADDR`,
//! `VAULT_TOKEN` (else the file `~/.vault-token` that `vault login` writes),
//! `VAULT_NAMESPACE`, `VAULT_CACERT`, `VAULT_CAPATH` and `VAULT_SKIP_VERIFY`. OpenBao's
//! `BAO_*` spellings are read when the `VAULT_*` one is unset.
//!
//! A path is read the way the CLI's `kv get` reads it: the mount's KV version is asked
//! for first (`sys/internal/ui/mounts/<path>`), so `secret/myapp` and
//! `secret/data/myapp` both work on a KV v2 mount, and `kv/myapp` on a KV v1 mount.
//! Tokens whose policy does not cover that endpoint still work: the path is then read
//! directly and the response's shape tells v1 from v2.
//!
//! The token travels only in a request header marked sensitive. It is never part of
//! a URL, a message, a hint or a log line; messages from the server are scrubbed of it
//! too, in case a server ever echoes it.

use std::collections::HashMap;
use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};
use sindri_core::{ErrorKind, SecretValue};

use crate::env::Env;
use crate::failure::Failure;

/// How long to wait for a TCP (and TLS) connection to Vault.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request to Vault may take in all.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const TOKEN_HINT: &str = "set VAULT_TOKEN, or log in with `bao login` / `vault login` \
    (which writes ~/.vault-token)";

/// Timeouts for the Vault client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) total: Duration,
}

/// Everything read from Vault during one resolution: the client (or why there is
/// none), each path's key/value map once, and whether the server was found down, so
/// ten secrets on an unreachable server fail in one timeout rather than ten.
pub(crate) struct Session {
    client: Result<Client, Failure>,
    reads: HashMap<String, Result<Map<String, Value>, Failure>>,
    down: Option<Failure>,
}

impl Session {
    pub(crate) fn new(env: &Env, timeouts: Timeouts) -> Session {
        Session {
            client: Client::from_env(env, timeouts),
            reads: HashMap::new(),
            down: None,
        }
    }

    /// The value of `key` in the secret at `path`.
    pub(crate) async fn read(&mut self, path: &str, key: &str) -> Result<SecretValue, Failure> {
        let path = normalize_path(path)?;
        if let Some(down) = &self.down {
            return Err(down.clone());
        }
        let client = self.client.as_ref().map_err(Clone::clone)?;
        if !self.reads.contains_key(&path) {
            let read = client.read_path(&path).await;
            if let Err(f) = &read
                && f.kind == ErrorKind::Unavailable
            {
                self.down = Some(f.clone());
            }
            self.reads.insert(path.clone(), read);
        }
        let data = match self.reads.get(&path) {
            Some(Ok(data)) => data,
            Some(Err(f)) => return Err(f.clone()),
            None => {
                return Err(Failure::new(
                    ErrorKind::Internal,
                    format!("the read of `{path}` was lost"),
                ));
            }
        };
        match data.get(key) {
            Some(value) => Ok(SecretValue::new(value_text(value))),
            None => Err(missing_key(&path, key, data, client)),
        }
    }
}

/// A Vault value as the text handed to the environment: strings as they are, anything
/// else (numbers, booleans, nested objects) as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// NotFound listing the key names that do exist (never their values).
fn missing_key(path: &str, key: &str, data: &Map<String, Value>, client: &Client) -> Failure {
    let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
    names.sort_unstable();
    let has = if names.is_empty() {
        "it has no keys".to_string()
    } else {
        format!("its keys are: {}", names.join(", "))
    };
    let f = Failure::new(
        ErrorKind::NotFound,
        format!(
            "the Vault secret `{path}` at {} has no key `{key}`; {has}",
            client.addr_shown
        ),
    );
    let closest = names
        .iter()
        .map(|n| (strsim::jaro_winkler(n, key), *n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, name)) => f.hint(format!("did you mean `{name}`?")),
        None => f,
    }
}

/// Checks a secret path and strips surrounding slashes: `/secret/data/app/` and
/// `secret/data/app` are the same secret.
fn normalize_path(path: &str) -> Result<String, Failure> {
    let trimmed = path.trim().trim_matches('/');
    let bad = trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Failure::new(
            ErrorKind::Invalid,
            format!("`{path}` is not a Vault secret path"),
        )
        .hint("write it as `<mount>/<name>`, e.g. `secret/data/myapp` or `kv/myapp`"));
    }
    Ok(trimmed.to_string())
}

/// A secrets engine mount, as `sys/internal/ui/mounts` describes it.
struct Mount {
    /// Its path, without the trailing slash, e.g. `secret`.
    path: String,
    kv2: bool,
}

struct Client {
    http: reqwest::Client,
    addr: Url,
    /// `addr` without credentials or trailing slash, for messages.
    addr_shown: String,
    /// Kept only to scrub it from server messages; it is sent via `http`'s default
    /// headers.
    token: String,
}

impl Client {
    fn from_env(env: &Env, timeouts: Timeouts) -> Result<Client, Failure> {
        let (addr_var, raw_addr) = env.first_set(&["VAULT_ADDR", "BAO_ADDR"]).ok_or_else(|| {
            Failure::new(ErrorKind::Invalid, "VAULT_ADDR is not set").hint(
                "set VAULT_ADDR to the Vault/OpenBao server, e.g. `https://vault.example.com:8200`",
            )
        })?;
        let mut addr = Url::parse(raw_addr.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Invalid,
                    format!("{addr_var} is not an http(s) URL"),
                )
                .hint("write it as `https://host:8200`")
            })?;
        let _ = addr.set_username("");
        let _ = addr.set_password(None);
        let addr_shown = format!("{} ({addr_var})", addr.as_str().trim_end_matches('/'));

        let token = read_token(env)?;
        let mut headers = HeaderMap::new();
        let mut token_header = HeaderValue::from_str(&token).map_err(|_| {
            Failure::new(
                ErrorKind::Auth,
                "the Vault token contains characters that cannot be sent in an HTTP header",
            )
            .hint(TOKEN_HINT)
        })?;
        token_header.set_sensitive(true);
        headers.insert("X-Vault-Token", token_header);
        if let Some((var, ns)) = env.first_set(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]) {
            let value = HeaderValue::from_str(ns.trim()).map_err(|_| {
                Failure::new(
                    ErrorKind::Invalid,
                    format!("{var} contains characters that cannot be sent in an HTTP header"),
                )
            })?;
            headers.insert("X-Vault-Namespace", value);
        }
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("sindri/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total);
        let roots = ca_certificates(env)?;
        if !roots.is_empty() {
            // Like the Vault CLI, a configured CA replaces the system roots.
            builder = builder.tls_certs_only(roots);
        }
        if skip_verify(env)? {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        install_crypto_provider();
        let http = builder.build().map_err(|e| {
            Failure::new(
                ErrorKind::Internal,
                format!("cannot set up the HTTP client for Vault: {}", causes(&e)),
            )
        })?;
        Ok(Client {
            http,
            addr,
            addr_shown,
            token,
        })
    }

    /// The key/value map stored at `path`.
    async fn read_path(&self, path: &str) -> Result<Map<String, Value>, Failure> {
        let segs: Vec<&str> = path.split('/').collect();
        match self.mount(&segs).await? {
            Some(mount) if mount.kv2 => {
                let depth = mount.path.split('/').count();
                let rel = &segs[depth..];
                if rel.is_empty() {
                    return Err(Failure::new(
                        ErrorKind::Invalid,
                        format!("`{path}` is a secrets engine mount, not a secret"),
                    )
                    .hint(format!("name a secret under it, e.g. `{path}/data/myapp`")));
                }
                let api: Vec<&str> = if rel[0] == "data" {
                    segs.clone()
                } else {
                    segs[..depth]
                        .iter()
                        .copied()
                        .chain(std::iter::once("data"))
                        .chain(rel.iter().copied())
                        .collect()
                };
                let body = self.expect_ok(&api, path).await?;
                self.kv2_data(body, path)
            }
            Some(_) => {
                let body = self.expect_ok(&segs, path).await?;
                self.plain_data(body, path)
            }
            None => self.read_unknown_mount(&segs, path).await,
        }
    }

    /// Reads `path` without knowing its mount: directly, and, when that is refused or
    /// finds nothing and the path has no `data/` segment, as KV v2's
    /// `<first segment>/data/<rest>`.
    async fn read_unknown_mount(
        &self,
        segs: &[&str],
        path: &str,
    ) -> Result<Map<String, Value>, Failure> {
        let (status, body) = self.get(segs).await?;
        if status.is_success() {
            let is_kv2 = body.pointer("/data/metadata").is_some_and(Value::is_object)
                && body.pointer("/data/data").is_some();
            return if is_kv2 {
                self.kv2_data(body, path)
            } else {
                self.plain_data(body, path)
            };
        }
        // A KV v2 secret written without `data/`: a policy for `secret/data/app` denies
        // `secret/app` (403), and a server may not know it (404).
        let maybe_kv2 = matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN);
        if maybe_kv2 && segs.len() >= 2 && segs[1] != "data" {
            let api: Vec<&str> = std::iter::once(segs[0])
                .chain(std::iter::once("data"))
                .chain(segs[1..].iter().copied())
                .collect();
            let (status2, body2) = self.get(&api).await?;
            if status2.is_success() {
                return self.kv2_data(body2, path);
            }
            // A "not found" says less than any other answer.
            if status == StatusCode::NOT_FOUND && status2 != StatusCode::NOT_FOUND {
                return Err(self.status_failure(status2, &body2, path));
            }
        }
        Err(self.status_failure(status, &body, path))
    }

    /// The mount `path` lives on, when the server says (it may not: older servers
    /// lack the endpoint, and some policies do not grant it).
    async fn mount(&self, segs: &[&str]) -> Result<Option<Mount>, Failure> {
        let api: Vec<&str> = ["sys", "internal", "ui", "mounts"]
            .into_iter()
            .chain(segs.iter().copied())
            .collect();
        let (status, body) = self.get(&api).await?;
        if !status.is_success() {
            tracing::debug!(%status, "Vault mount lookup unavailable; reading the path directly");
            return Ok(None);
        }
        let Some(mount_path) = body.pointer("/data/path").and_then(Value::as_str) else {
            return Ok(None);
        };
        let mount_path = mount_path.trim_matches('/').to_string();
        let joined = segs.join("/");
        let under = joined == mount_path || joined.starts_with(&format!("{mount_path}/"));
        if mount_path.is_empty() || !under {
            return Ok(None);
        }
        let kind = body.pointer("/data/type").and_then(Value::as_str);
        let version = body
            .pointer("/data/options/version")
            .and_then(Value::as_str);
        Ok(Some(Mount {
            kv2: matches!(kind, Some("kv" | "generic")) && version == Some("2"),
            path: mount_path,
        }))
    }

    fn kv2_data(&self, body: Value, path: &str) -> Result<Map<String, Value>, Failure> {
        match body.pointer("/data/data") {
            Some(Value::Object(map)) => Ok(map.clone()),
            _ => Err(self.deleted_or_empty(path)),
        }
    }

    fn plain_data(&self, body: Value, path: &str) -> Result<Map<String, Value>, Failure> {
        match body.get("data") {
            Some(Value::Object(map)) => Ok(map.clone()),
            _ => Err(self.deleted_or_empty(path)),
        }
    }

    fn deleted_or_empty(&self, path: &str) -> Failure {
        Failure::new(
            ErrorKind::NotFound,
            format!(
                "the Vault secret `{path}` at {} holds no data (its latest version may be deleted)",
                self.addr_shown
            ),
        )
    }

    /// GETs `/v1/<segs>`, expecting success.
    async fn expect_ok(&self, segs: &[&str], path: &str) -> Result<Value, Failure> {
        let (status, body) = self.get(segs).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.status_failure(status, &body, path))
        }
    }

    /// GETs `/v1/<segs>` (each segment percent-encoded). Any answer is `Ok`; only a
    /// transport failure is an error.
    async fn get(&self, segs: &[&str]) -> Result<(StatusCode, Value), Failure> {
        let mut url = self.addr.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Failure::new(
                    ErrorKind::Invalid,
                    format!("{} cannot carry a path", self.addr_shown),
                )
            })?
            .pop_if_empty()
            .push("v1")
            .extend(segs);
        tracing::debug!(path = url.path(), "Vault GET");
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.transport_failure(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(&e))?;
        // Error bodies are JSON too (`{"errors": [...]}`); anything else carries nothing
        // worth reporting beyond the status.
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        let cause = self.scrub(&causes(e));
        let addr = &self.addr_shown;
        if e.is_timeout() {
            return Failure::new(
                ErrorKind::Unavailable,
                format!("Vault at {addr} did not answer in time ({cause})"),
            )
            .hint("check that VAULT_ADDR points at a running, reachable server (`bao status`)");
        }
        if cause.contains("certificate") || cause.contains("Certificate") {
            return Failure::new(
                ErrorKind::Invalid,
                format!("the TLS certificate of Vault at {addr} is not trusted ({cause})"),
            )
            .hint(
                "set VAULT_CACERT to the PEM file of the CA that signed it \
                 (VAULT_SKIP_VERIFY=true turns checking off, for dev servers only)",
            );
        }
        Failure::new(
            ErrorKind::Unavailable,
            format!("cannot reach Vault at {addr}: {cause}"),
        )
        .hint("check that VAULT_ADDR is right and the server is running (`bao status`)")
    }

    fn status_failure(&self, status: StatusCode, body: &Value, path: &str) -> Failure {
        let addr = &self.addr_shown;
        let said = self.server_errors(body);
        let code = status.as_u16();
        match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Failure::new(
                ErrorKind::Auth,
                format!("Vault at {addr} denied reading `{path}` ({code}{said})"),
            )
            .hint(format!(
                "the token is invalid or expired, or its policy does not grant `read` on \
                 `{path}`; {TOKEN_HINT}"
            )),
            StatusCode::NOT_FOUND => Failure::new(
                ErrorKind::NotFound,
                format!("Vault at {addr} has no secret at `{path}`"),
            )
            .hint(format!(
                "check the path with `bao kv get {path}`; KV v2 paths may be written \
                 `<mount>/<name>` or `<mount>/data/<name>`"
            )),
            StatusCode::SERVICE_UNAVAILABLE => Failure::new(
                ErrorKind::Unavailable,
                format!("Vault at {addr} is sealed or not ready ({code}{said})"),
            )
            .hint("unseal it or wait for it to become active (`bao status`)"),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::INTERNAL_SERVER_ERROR => Failure::new(
                ErrorKind::Transient,
                format!("Vault at {addr} failed reading `{path}` ({code}{said})"),
            ),
            _ => Failure::new(
                ErrorKind::Platform,
                format!("Vault at {addr} refused reading `{path}` ({code}{said})"),
            ),
        }
    }

    /// `: <the server's errors>` from a Vault error body, or nothing.
    fn server_errors(&self, body: &Value) -> String {
        let errors: Vec<&str> = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if errors.is_empty() {
            String::new()
        } else {
            let tidy: Vec<String> = errors.iter().map(|e| tidy_server_error(e)).collect();
            format!(": {}", self.scrub(&tidy.join("; ")))
        }
    }

    /// `text` with the token replaced, in case a server or library ever echoes it.
    fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "***")
        }
    }
}

/// One server error on one line: Vault wraps errors as
/// `1 error occurred:\n\t* permission denied\n\n`, which reads as `permission denied`.
fn tidy_server_error(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let items = match flat.split_once(" occurred: ") {
        Some((head, rest)) if head.ends_with("error") || head.ends_with("errors") => rest,
        _ => flat.as_str(),
    };
    items
        .split("* ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The token: `VAULT_TOKEN`, else `~/.vault-token`.
fn read_token(env: &Env) -> Result<String, Failure> {
    if let Some((_, token)) = env.first_set(&["VAULT_TOKEN", "BAO_TOKEN"]) {
        return Ok(token.trim().to_string());
    }
    let Some(home) = env.home() else {
        return Err(Failure::new(
            ErrorKind::Auth,
            "no Vault token: VAULT_TOKEN is not set and there is no home directory to find \
             ~/.vault-token in",
        )
        .hint(TOKEN_HINT));
    };
    let file = home.join(".vault-token");
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(Failure::new(
            ErrorKind::Auth,
            format!(
                "no Vault token: VAULT_TOKEN is not set and `{}` is empty",
                file.display()
            ),
        )
        .hint(TOKEN_HINT)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
            ErrorKind::Auth,
            format!(
                "no Vault token: VAULT_TOKEN is not set and `{}` does not exist",
                file.display()
            ),
        )
        .hint(TOKEN_HINT)),
        Err(e) => Err(Failure::new(
            ErrorKind::Auth,
            format!("no Vault token: cannot read `{}`: {e}", file.display()),
        )
        .hint(TOKEN_HINT)),
    }
}

/// The CA certificates from `VAULT_CACERT` (a PEM file) and `VAULT_CAPATH` (a
/// directory of PEM files).
fn ca_certificates(env: &Env) -> Result<Vec<reqwest::Certificate>, Failure> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if let Some((var, file)) = env.first_set(&["VAULT_CACERT", "BAO_CACERT"]) {
        files.push((var, PathBuf::from(file)));
    }
    if let Some((var, dir)) = env.first_set(&["VAULT_CAPATH", "BAO_CAPATH"]) {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Failure::new(
                ErrorKind::Invalid,
                format!("{var} `{dir}` cannot be listed: {e}"),
            )
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found.into_iter().map(|p| (var.clone(), p)));
    }
    let mut certs = Vec::new();
    for (var, file) in files {
        let pem = std::fs::read(&file).map_err(|e| {
            Failure::new(
                ErrorKind::Invalid,
                format!("{var}: cannot read `{}`: {e}", file.display()),
            )
        })?;
        let bundle = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Invalid,
                    format!("{var}: `{}` holds no PEM certificate", file.display()),
                )
            })?;
        certs.extend(bundle);
    }
    Ok(certs)
}

/// `VAULT_SKIP_VERIFY`, parsed like the Vault CLI parses it (Go's `ParseBool`).
fn skip_verify(env: &Env) -> Result<bool, Failure> {
    let Some((var, value)) = env.first_set(&["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"]) else {
        return Ok(false);
    };
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(Failure::new(
            ErrorKind::Invalid,
            format!("{var} is `{other}`; expected true or false"),
        )),
    }
}

/// Makes ring the process's rustls crypto provider unless one is installed already.
///
/// reqwest is built with `rustls-no-provider` so that aws-lc-rs (a C library built
/// with cmake) stays out of the build; reqwest then uses the process default.
fn install_crypto_provider() {
    // Err means another provider was installed first; it serves just as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The messages of `e`'s causes, outermost first. reqwest's own message only repeats
/// the URL; the causes say what went wrong (connection refused, a bad certificate).
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper's wrapper ("client error (Connect)") says nothing its causes do not.
        let noise = text.starts_with("client error (");
        if !noise && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        if e.is_timeout() {
            "timed out".to_string()
        } else {
            e.to_string()
        }
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_checked() {
        assert_eq!(
            normalize_path("/secret/data/app/").ok().as_deref(),
            Some("secret/data/app")
        );
        for bad in ["", "/", "secret//app", "secret/../sys", "./x"] {
            let f = normalize_path(bad).err();
            assert_eq!(f.map(|f| f.kind), Some(ErrorKind::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn server_errors_read_as_one_line() {
        assert_eq!(
            tidy_server_error("1 error occurred:\n\t* permission denied\n\n"),
            "permission denied"
        );
        assert_eq!(
            tidy_server_error("2 errors occurred:\n\t* a\n\t* b\n"),
            "a; b"
        );
        assert_eq!(
            tidy_server_error("no handler for route"),
            "no handler for route"
        );
    }

    #[test]
    fn non_string_values_become_json() {
        assert_eq!(value_text(&Value::String("a b".into())), "a b");
        assert_eq!(value_text(&serde_json::json!(42)), "42");
        assert_eq!(value_text(&serde_json::json!({"a": [1]})), r#"{"a":[1]}"#);
    }

    #[test]
    fn skip_verify_parses_like_the_vault_cli() {
        let on = Env::from_vars([("VAULT_SKIP_VERIFY", "True")]);
        let off = Env::from_vars([("VAULT_SKIP_VERIFY", "0")]);
        let bad = Env::from_vars([("VAULT_SKIP_VERIFY", "yes")]);
        assert_eq!(skip_verify(&on), Ok(true));
        assert_eq!(skip_verify(&off), Ok(false));
        assert_eq!(skip_verify(&Env::default()), Ok(false));
        assert_eq!(
            skip_verify(&bad).map_err(|f| f.kind),
            Err(ErrorKind::Invalid)
        );
    }
}
