//! The standard AWS configuration chain, as the AWS CLI and SDKs read it.
//!
//! Credentials, first found wins:
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), unless
//!    `providers.aws.profile` names a profile explicitly;
//! 2. the profile (`providers.aws.profile`, else `AWS_PROFILE`, else `default`) from
//!    the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`, section `[name]`) and the config file (`AWS_CONFIG_FILE`,
//!    else `~/.aws/config`, section `[profile name]` or `[default]`): static keys, or a
//!    `credential_process`;
//! 3. the instance metadata service, IMDSv2 only (a token `PUT`, then `GET`s, with
//!    one-second timeouts), unless `AWS_EC2_METADATA_DISABLED=true`;
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it.
//!
//! Region: `providers.aws.region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
//! `region`, then the metadata service's placement region.
//!
//! Profiles that assume roles (`role_arn`) or use IAM Identity Center (`sso_*`) are
//! refused with a hint to export temporary keys with `aws configure export-credentials`.
//!
//! Secrets are held as [`SecretValue`] and never appear in messages: a message names
//! the *source* (a variable, a file and profile, the metadata role), never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sindri_core::{Error, ErrorKind, Result, SecretValue};
use sindri_spec::{AwsSettings, ProviderKind};

use super::time::parse_iso8601;

/// A snapshot of the environment variables the provider reads, taken when it is
/// built, so the chain is a function of its inputs (and testable without touching
/// the process environment).
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsEnv {
    vars: BTreeMap<String, String>,
}

impl AwsEnv {
    /// The current process environment.
    pub(crate) fn from_process() -> AwsEnv {
        AwsEnv::from_vars(std::env::vars())
    }

    pub(crate) fn from_vars<I, K, V>(vars: I) -> AwsEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        AwsEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable, unless unset or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// True for `true` (any case) or `1`.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.trim() == "1")
    }

    pub(crate) fn home(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }

    /// `~/x` expanded with this environment's `HOME`.
    pub(crate) fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.home()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if path == "~" => self.home().unwrap_or_else(|| PathBuf::from(path)),
            _ => PathBuf::from(path),
        }
    }

    /// The variables, for child processes (`credential_process`).
    pub(crate) fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }
}

/// Temporary or long-lived AWS credentials, and where they came from.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretValue,
    pub session_token: Option<SecretValue>,
    /// Unix seconds when they expire, for those that do.
    pub expires_at: Option<i64>,
    /// Where they came from, in words, for messages and `sindri doctor`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// True when they expire within `margin` seconds.
    pub(crate) fn expiring(&self, now: i64, margin: i64) -> bool {
        self.expires_at.is_some_and(|t| t - now <= margin)
    }
}

/// A profile's settings, merged from the config and credentials files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    pub name: String,
    /// How the name was chosen, e.g. `AWS_PROFILE`.
    pub chosen_by: &'static str,
    /// Values from the config file, then overridden by the credentials file.
    pub values: BTreeMap<String, String>,
    /// Where the credentials-bearing values were found, for messages.
    pub found_in: Vec<PathBuf>,
    pub config_file: PathBuf,
    pub credentials_file: PathBuf,
}

impl Profile {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn describe(&self) -> String {
        let files: Vec<String> = self
            .found_in
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!("profile `{}` in {}", self.name, files.join(" and "))
    }
}

/// Parses an AWS INI file into sections of key/value pairs. Indented lines (nested
/// settings such as `s3 =` blocks) and comments are skipped.
pub(crate) fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            let v = v.trim();
            // Inline comments need whitespace before `#`/`;` (as botocore reads them).
            let v = v
                .split_once(" #")
                .or_else(|| v.split_once(" ;"))
                .map(|(a, _)| a.trim_end())
                .unwrap_or(v);
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.to_string());
        }
    }
    out
}

/// The profile chosen by settings and environment, read from its files. Missing files
/// are fine; an explicitly named profile that exists nowhere is an error.
pub(crate) fn load_profile(env: &AwsEnv, settings: &AwsSettings) -> Result<Profile> {
    let (name, chosen_by) = if let Some(p) = settings.profile.as_deref().filter(|p| !p.is_empty()) {
        (p.to_string(), "providers.aws.profile")
    } else if let Some(p) = env.get("AWS_PROFILE") {
        (p.to_string(), "AWS_PROFILE")
    } else if let Some(p) = env.get("AWS_DEFAULT_PROFILE") {
        (p.to_string(), "AWS_DEFAULT_PROFILE")
    } else {
        ("default".to_string(), "the default")
    };
    let config_file = env
        .get("AWS_CONFIG_FILE")
        .map(|p| env.expand(p))
        .unwrap_or_else(|| env.expand("~/.aws/config"));
    let credentials_file = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .map(|p| env.expand(p))
        .unwrap_or_else(|| env.expand("~/.aws/credentials"));
    let mut p = Profile {
        name: name.clone(),
        chosen_by,
        config_file: config_file.clone(),
        credentials_file: credentials_file.clone(),
        ..Default::default()
    };
    let mut found = false;
    if let Some(text) = read_optional(&config_file)? {
        let sections = parse_ini(&text);
        let key = if name == "default" {
            sections
                .contains_key("default")
                .then(|| "default".to_string())
                .or_else(|| {
                    sections
                        .contains_key("profile default")
                        .then(|| "profile default".to_string())
                })
        } else {
            sections
                .contains_key(&format!("profile {name}"))
                .then(|| format!("profile {name}"))
        };
        if let Some(section) = key.and_then(|k| sections.get(&k)) {
            found = true;
            p.values.extend(section.clone());
            if section.contains_key("aws_access_key_id")
                || section.contains_key("credential_process")
            {
                p.found_in.push(config_file.clone());
            }
        }
    }
    if let Some(text) = read_optional(&credentials_file)? {
        let sections = parse_ini(&text);
        if let Some(section) = sections.get(&name) {
            found = true;
            p.values.extend(section.clone());
            p.found_in.push(credentials_file.clone());
        }
    }
    if !found && chosen_by != "the default" {
        return Err(Error::invalid(format!(
            "the AWS profile `{name}` ({chosen_by}) is in neither {} nor {}",
            config_file.display(),
            credentials_file.display()
        ))
        .with_provider(ProviderKind::Aws)
        .with_hint(format!(
            "create it with `aws configure --profile {name}`, or name an existing profile"
        )));
    }
    Ok(p)
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(
            ErrorKind::Internal,
            format!("cannot read the AWS file {}: {e}", path.display()),
        )
        .with_provider(ProviderKind::Aws)),
    }
}

fn auth(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Auth, message).with_provider(ProviderKind::Aws)
}

/// Credentials from the environment variables, if they are set.
pub(crate) fn from_env_vars(env: &AwsEnv) -> Result<Option<Credentials>> {
    match (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.trim().to_string(),
            secret_access_key: SecretValue::new(secret.trim()),
            session_token: env
                .get("AWS_SESSION_TOKEN")
                .or_else(|| env.get("AWS_SECURITY_TOKEN"))
                .map(|t| SecretValue::new(t.trim())),
            expires_at: env.get("AWS_CREDENTIAL_EXPIRATION").and_then(parse_iso8601),
            source: "the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        })),
        (Some(_), None) => Err(
            auth("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
                .with_hint("set both, or unset AWS_ACCESS_KEY_ID to use a profile"),
        ),
        (None, Some(_)) => Err(
            auth("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
                .with_hint("set both, or unset AWS_SECRET_ACCESS_KEY to use a profile"),
        ),
        (None, None) => Ok(None),
    }
}

/// Credentials from a profile: static keys or a `credential_process`.
pub(crate) async fn from_profile(env: &AwsEnv, p: &Profile) -> Result<Option<Credentials>> {
    if let (Some(id), Some(secret)) = (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
        return Ok(Some(Credentials {
            access_key_id: id.to_string(),
            secret_access_key: SecretValue::new(secret),
            session_token: p
                .get("aws_session_token")
                .or_else(|| p.get("aws_security_token"))
                .map(SecretValue::new),
            expires_at: None,
            source: p.describe(),
        }));
    }
    if p.get("aws_access_key_id").is_some() {
        return Err(auth(format!(
            "{} has aws_access_key_id but no aws_secret_access_key",
            p.describe()
        ))
        .with_hint(format!("run `aws configure --profile {}`", p.name)));
    }
    if let Some(cmd) = p.get("credential_process") {
        return credential_process(env, p, cmd).await.map(Some);
    }
    if p.get("role_arn").is_some() || p.values.keys().any(|k| k.starts_with("sso_")) {
        let kind = if p.get("role_arn").is_some() {
            "assumes a role (role_arn)"
        } else {
            "uses IAM Identity Center (sso_*)"
        };
        return Err(auth(format!("the AWS profile `{}` {kind}, which sindri cannot do yet", p.name)).with_hint(format!(
            "export temporary keys first: `eval \"$(aws configure export-credentials --profile {} --format env)\"`",
            p.name
        )));
    }
    Ok(None)
}

/// The output of a `credential_process` (version 1 of the format).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput {
    version: Option<u32>,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expiration: Option<String>,
}

async fn credential_process(env: &AwsEnv, p: &Profile, cmd: &str) -> Result<Credentials> {
    let source = format!("the credential_process of profile `{}`", p.name);
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .envs(env.vars())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| auth(format!("cannot run {source}: {e}")))?;
    if !out.status.success() {
        // stderr is the tool's own message (never the credentials, which go to stdout).
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(
            auth(format!("{source} failed ({}): {}", out.status, err.trim())).with_hint(
                "run the command yourself to see why; it must print credentials as JSON",
            ),
        );
    }
    // stdout holds the secret: its text never goes into a message.
    let parsed: ProcessOutput = serde_json::from_slice(&out.stdout).map_err(|e| {
        auth(format!(
            "{source} printed something that is not credential JSON (at line {}, column {})",
            e.line(),
            e.column()
        ))
        .with_hint("it must print {\"Version\": 1, \"AccessKeyId\": ..., \"SecretAccessKey\": ...}")
    })?;
    if parsed.version.is_some_and(|v| v != 1) {
        return Err(auth(format!(
            "{source} printed credentials of an unknown version (expected 1)"
        )));
    }
    Ok(Credentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: SecretValue::new(parsed.secret_access_key),
        session_token: parsed.session_token.map(SecretValue::new),
        expires_at: parsed.expiration.as_deref().and_then(parse_iso8601),
        source,
    })
}

/// The instance metadata service, IMDSv2 only.
pub(crate) struct Imds {
    http: reqwest::Client,
    endpoint: String,
    attempts: u32,
    /// The session token, fetched once (it lives six hours).
    token: tokio::sync::Mutex<Option<String>>,
}

/// The IMDS credential document.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

impl Imds {
    /// The metadata service this environment points at, or `None` when disabled.
    pub(crate) fn new(env: &AwsEnv) -> Result<Option<Imds>> {
        if env.flag("AWS_EC2_METADATA_DISABLED") {
            return Ok(None);
        }
        let timeout = env
            .get("AWS_METADATA_SERVICE_TIMEOUT")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        let attempts = env
            .get("AWS_METADATA_SERVICE_NUM_ATTEMPTS")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .clamp(1, 5);
        let endpoint = env
            .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or("http://169.254.169.254")
            .trim_end_matches('/')
            .to_string();
        super::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(timeout))
            .timeout(Duration::from_secs(timeout))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the metadata client: {e}")))?;
        Ok(Some(Imds {
            http,
            endpoint,
            attempts,
            token: tokio::sync::Mutex::new(None),
        }))
    }

    async fn token(&self) -> Option<String> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            return Some(t.clone());
        }
        let t = self.fetch_token().await?;
        *cached = Some(t.clone());
        Some(t)
    }

    async fn fetch_token(&self) -> Option<String> {
        for _ in 0..self.attempts {
            let r = self
                .http
                .put(format!("{}/latest/api/token", self.endpoint))
                .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
                && let Ok(t) = r.text().await
            {
                return Some(t.trim().to_string());
            }
        }
        None
    }

    async fn get(&self, token: &str, path: &str) -> Option<String> {
        for _ in 0..self.attempts {
            let r = self
                .http
                .get(format!("{}/latest/{path}", self.endpoint))
                .header("X-aws-ec2-metadata-token", token)
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
                && let Ok(t) = r.text().await
            {
                return Some(t);
            }
        }
        None
    }

    /// The instance role's credentials, when running on EC2 with a role.
    pub(crate) async fn credentials(&self) -> Option<Credentials> {
        let token = self.token().await?;
        let roles = self
            .get(&token, "meta-data/iam/security-credentials/")
            .await?;
        let role = roles
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())?
            .to_string();
        let doc = self
            .get(
                &token,
                &format!("meta-data/iam/security-credentials/{role}"),
            )
            .await?;
        let c: ImdsCredentials = serde_json::from_str(&doc).ok()?;
        Some(Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: SecretValue::new(c.secret_access_key),
            session_token: c.token.map(SecretValue::new),
            expires_at: c.expiration.as_deref().and_then(parse_iso8601),
            source: format!("the instance metadata service (role `{role}`)"),
        })
    }

    /// The region this instance runs in.
    pub(crate) async fn region(&self) -> Option<String> {
        let token = self.token().await?;
        self.get(&token, "meta-data/placement/region")
            .await
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
    }
}

/// Walks the credential chain.
pub(crate) async fn resolve_credentials(
    env: &AwsEnv,
    settings: &AwsSettings,
    profile: &Profile,
    imds: Option<&Imds>,
) -> Result<Credentials> {
    let explicit_profile = settings.profile.as_deref().is_some_and(|p| !p.is_empty());
    if !explicit_profile && let Some(c) = from_env_vars(env)? {
        return Ok(c);
    }
    if let Some(c) = from_profile(env, profile).await? {
        return Ok(c);
    }
    let mut tried = Vec::new();
    if !explicit_profile {
        tried.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string());
    }
    tried.push(format!(
        "profile `{}` ({}) in {} and {}",
        profile.name,
        profile.chosen_by,
        profile.credentials_file.display(),
        profile.config_file.display()
    ));
    if let Some(imds) = imds {
        if let Some(c) = imds.credentials().await {
            return Ok(c);
        }
        tried.push(format!(
            "the instance metadata service at {}",
            imds.endpoint
        ));
    } else {
        tried.push(
            "(the instance metadata service is disabled by AWS_EC2_METADATA_DISABLED)".to_string(),
        );
    }
    Err(auth(format!("no AWS credentials found; tried {}", tried.join(", ")))
        .with_hint("run `aws configure` (or `aws sso login` and export the keys), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
}

/// Finds the region, and says where it came from.
pub(crate) async fn resolve_region(
    env: &AwsEnv,
    settings: &AwsSettings,
    profile: &Profile,
    imds: Option<&Imds>,
) -> Result<(String, String)> {
    if let Some(r) = settings.region.as_deref().filter(|r| !r.is_empty()) {
        return Ok((r.to_string(), "providers.aws.region".into()));
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = env.get(var) {
            return Ok((r.trim().to_string(), var.into()));
        }
    }
    if let Some(r) = profile.get("region") {
        return Ok((
            r.to_string(),
            format!(
                "profile `{}` in {}",
                profile.name,
                profile.config_file.display()
            ),
        ));
    }
    if let Some(imds) = imds
        && let Some(r) = imds.region().await
    {
        return Ok((r, "the instance metadata service".into()));
    }
    Err(Error::invalid("no AWS region is configured")
        .with_provider(ProviderKind::Aws)
        .with_hint(
            "set providers.aws.region in sindri.yaml, AWS_REGION, or `region` in ~/.aws/config",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_files_parse_like_the_aws_cli() {
        let text = "[default]\nregion = eu-west-1 # comment\n\n[profile  dev]\naws_access_key_id=AKID\n\
                    s3 =\n  max_concurrent_requests = 20\n; comment\n[other]\nx = y;z\n";
        let s = parse_ini(text);
        assert_eq!(s["default"]["region"], "eu-west-1");
        assert_eq!(s["profile dev"]["aws_access_key_id"], "AKID");
        assert!(!s["profile dev"].contains_key("max_concurrent_requests"));
        assert_eq!(
            s["other"]["x"], "y;z",
            "`;` without whitespace before it is part of the value"
        );
    }

    #[test]
    fn env_credentials_need_both_halves() {
        let e = AwsEnv::from_vars([("AWS_ACCESS_KEY_ID", "AKID")]);
        let err = from_env_vars(&e).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth);
        let e = AwsEnv::from_vars([
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ]);
        let c = from_env_vars(&e).unwrap().unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert!(
            !format!("{c:?}").contains("s3cr3t-value"),
            "Debug never shows the secret"
        );
    }
}
