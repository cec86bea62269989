//! Reads secret values at deploy time.
//!
//! A spec names each secret and where its value comes from (`sindri.yaml`'s
//! `secrets:`); this crate reads the values, just before a deploy needs them:
//!
//! - `env`: a variable of the process running sindri (`var`, default: the name),
//!   used exactly as set.
//! - `file`: a file (`path`, relative to the config file's directory; `~/` is the home
//!   directory), used as stored less ONE trailing line ending (see below).
//! - `vault`: a key (`key`) of a secret (`path`) in HashiCorp Vault or OpenBao,
//!   configured like their CLIs (`VAULT_ADDR`, `VAULT_TOKEN` or `~/.vault-token`,
//!   `VAULT_NAMESPACE`, `VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_SKIP_VERIFY`); KV v1
//!   and v2 mounts are told apart by asking the server.
//!
//! Every secret is attempted before anything is reported, so one failed deploy shows
//! every unreadable secret at once instead of one per attempt. A secret with
//! `required: false` that cannot be read is left out with a warning. Configuration
//! mistakes (a `vault` secret without `key`, a name used twice) fail even then: they
//! are bugs in the file, not missing values.
//!
//! Values are wrapped in [`SecretValue`](sindri_core::SecretValue) the moment they are read. Errors and
//! warnings name variables, files, paths and keys, never a value or a Vault token.
//!
//! # The trailing newline of `file` secrets
//! Editors and `echo token > file` end a file with a newline nobody means as part of
//! the secret, and a token that keeps it breaks the HTTP header it is later sent in.
//! Exactly one `\n` (or `\r\n`) is removed, nothing more, so a value that truly ends
//! in whitespace can still be stored.

mod env;
mod failure;
mod file;
mod vault;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use sindri_core::{Error, ErrorKind, ResolvedSecret, Result};
use sindri_spec::{SecretSource, SecretSpec};

use crate::env::Env;
use crate::failure::Failure;

/// The outcome of resolving a spec's secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The secrets that were read, in spec order.
    pub secrets: Vec<ResolvedSecret>,
    /// One line per `required: false` secret that could not be read and was left out,
    /// saying which and why. Meant to be shown to the user; holds no values.
    pub warnings: Vec<String>,
}

/// Reads every secret in `secrets` from this process's environment, files relative
/// to `base_dir`, and Vault.
///
/// Fails with one [`Error`] listing every required secret that could not be read (see
/// [`Resolver::resolve`]).
pub async fn resolve(secrets: &[SecretSpec], base_dir: &Path) -> Result<Resolved> {
    Resolver::from_process_env()
        .resolve(secrets, base_dir)
        .await
}

/// [`resolve`] for callers without an async runtime: runs it on a runtime of its own.
///
/// Fails with [`ErrorKind::Internal`] when called from inside an async runtime (which
/// cannot be blocked); call [`resolve`] there.
pub fn resolve_blocking(secrets: &[SecretSpec], base_dir: &Path) -> Result<Resolved> {
    Resolver::from_process_env().resolve_blocking(secrets, base_dir)
}

/// Resolves secrets against one environment snapshot, with tunable Vault timeouts.
///
/// [`resolve`] is `Resolver::from_process_env().resolve(..)`. Build one with
/// [`Resolver::with_env`] to resolve against a given set of variables instead of the
/// process's (tests, or a caller that merged settings from elsewhere).
#[derive(Clone)]
pub struct Resolver {
    env: Env,
    timeouts: vault::Timeouts,
}

impl fmt::Debug for Resolver {
    // The environment holds tokens (VAULT_TOKEN among them): never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("env", &format_args!("<{} variables>", self.env.len()))
            .field("vault_connect_timeout", &self.timeouts.connect)
            .field("vault_timeout", &self.timeouts.total)
            .finish()
    }
}

impl Resolver {
    /// A resolver reading this process's environment as it is now.
    pub fn from_process_env() -> Resolver {
        Resolver::new(Env::from_process())
    }

    /// A resolver that sees exactly `vars` as its environment: `env` secrets, `HOME`
    /// (for `~/` paths and `~/.vault-token`) and the `VAULT_*` settings are read from
    /// them and nowhere else.
    pub fn with_env<I, K, V>(vars: I) -> Resolver
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Resolver::new(Env::from_vars(vars))
    }

    fn new(env: Env) -> Resolver {
        Resolver {
            env,
            timeouts: vault::Timeouts {
                connect: vault::DEFAULT_CONNECT_TIMEOUT,
                total: vault::DEFAULT_TIMEOUT,
            },
        }
    }

    /// Sets how long to wait for a connection to Vault (default 3 s) and for one
    /// request in all (default 10 s). Past either, Vault counts as unavailable.
    pub fn vault_timeouts(mut self, connect: Duration, total: Duration) -> Resolver {
        self.timeouts = vault::Timeouts { connect, total };
        self
    }

    /// Reads every secret in `secrets`; relative `file` paths are anchored at
    /// `base_dir` (the config file's directory).
    ///
    /// Every secret is attempted. When any required secret cannot be read, or any
    /// secret is misconfigured, the result is one [`Error`] whose message lists each
    /// of them (name, source, what went wrong) and whose hint gathers what to do. Its
    /// kind is the failures' common kind when they share one ([`ErrorKind::NotFound`],
    /// [`ErrorKind::Auth`], [`ErrorKind::Unavailable`], ...), else
    /// [`ErrorKind::Invalid`].
    pub async fn resolve(&self, secrets: &[SecretSpec], base_dir: &Path) -> Result<Resolved> {
        let mut resolved = Resolved::default();
        let mut problems: Vec<(String, Failure)> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut vault: Option<vault::Session> = None;

        for spec in secrets {
            let label = format!("`{}` ({})", spec.name, source_label(spec));
            if !seen.insert(spec.name.as_str()) {
                let f = Failure::new(ErrorKind::Invalid, "the name is used by another secret")
                    .hint("give every secret a distinct name");
                problems.push((label, f));
                continue;
            }
            if let Err(f) = check(spec) {
                problems.push((label, f));
                continue;
            }
            let value = match spec.source {
                SecretSource::Env => {
                    env::read(&self.env, spec.var.as_deref().unwrap_or(&spec.name))
                }
                SecretSource::File => {
                    file::read(
                        &self.env,
                        base_dir,
                        spec.path.as_deref().unwrap_or_default(),
                    )
                    .await
                }
                SecretSource::Vault => {
                    let session =
                        vault.get_or_insert_with(|| vault::Session::new(&self.env, self.timeouts));
                    session
                        .read(
                            spec.path.as_deref().unwrap_or_default(),
                            spec.key.as_deref().unwrap_or_default(),
                        )
                        .await
                }
            };
            match value {
                Ok(value) => resolved.secrets.push(ResolvedSecret {
                    name: spec.name.clone(),
                    value,
                    mount: spec.mount.clone(),
                }),
                Err(f) if !spec.required => resolved.warnings.push(format!(
                    "secret {label} skipped (required: false): {}",
                    f.message
                )),
                Err(f) => problems.push((label, f)),
            }
        }

        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(combine(problems, secrets.len()))
        }
    }

    /// [`Resolver::resolve`] on a runtime of its own; see [`resolve_blocking`].
    pub fn resolve_blocking(&self, secrets: &[SecretSpec], base_dir: &Path) -> Result<Resolved> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::internal(
                "sindri_secrets::resolve_blocking was called inside an async runtime",
            )
            .with_hint("call `sindri_secrets::resolve(..).await` there instead"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(self.resolve(secrets, base_dir))
    }
}

/// Where a secret comes from, in the notation of the design notes: `env:NAME`,
/// `file:path`, `vault:path#key`.
fn source_label(spec: &SecretSpec) -> String {
    let or_missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    match spec.source {
        SecretSource::Env => format!("env:{}", spec.var.as_deref().unwrap_or(&spec.name)),
        SecretSource::File => format!("file:{}", or_missing(&spec.path)),
        SecretSource::Vault => {
            format!("vault:{}#{}", or_missing(&spec.path), or_missing(&spec.key))
        }
    }
}

/// Checks that a secret has the fields its source needs and none it would ignore.
fn check(spec: &SecretSpec) -> std::result::Result<(), Failure> {
    // (field, present) pairs.
    type Fields<'a> = &'a [(&'a str, bool)];
    let (source, needs, unused): (&str, Fields, Fields) = match spec.source {
        SecretSource::Env => (
            "env",
            &[],
            &[("path", spec.path.is_some()), ("key", spec.key.is_some())],
        ),
        SecretSource::File => (
            "file",
            &[("path", spec.path.is_some())],
            &[("var", spec.var.is_some()), ("key", spec.key.is_some())],
        ),
        SecretSource::Vault => (
            "vault",
            &[("path", spec.path.is_some()), ("key", spec.key.is_some())],
            &[("var", spec.var.is_some())],
        ),
    };
    if let Some((field, _)) = needs.iter().find(|(_, present)| !present) {
        let example = match (spec.source, *field) {
            (SecretSource::File, _) => "path: secrets/token.txt",
            (_, "path") => "path: secret/data/myapp",
            _ => "key: password",
        };
        return Err(Failure::new(
            ErrorKind::Invalid,
            format!("`source: {source}` needs `{field}`"),
        )
        .hint(format!("add e.g. `{example}` to the secret")));
    }
    if let Some((field, _)) = unused.iter().find(|(_, present)| *present) {
        return Err(Failure::new(
            ErrorKind::Invalid,
            format!("`{field}` is not used with `source: {source}`"),
        )
        .hint(
            "`var` belongs to env secrets, `path` to file and vault secrets, `key` to vault \
             secrets",
        ));
    }
    if spec.source == SecretSource::Env {
        let var = spec.var.as_deref().unwrap_or(&spec.name);
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(Failure::new(
                ErrorKind::Invalid,
                format!("`{var}` is not an environment variable name"),
            ));
        }
    }
    if let Some(mount) = &spec.mount
        && !mount.starts_with('/')
    {
        return Err(Failure::new(
            ErrorKind::Invalid,
            format!("`mount: {mount}` is not an absolute path"),
        )
        .hint("write the path inside the environment, e.g. `/run/secrets/token`"));
    }
    Ok(())
}

/// Folds every secret's failure into one error.
fn combine(problems: Vec<(String, Failure)>, total: usize) -> Error {
    let first_kind = problems[0].1.kind;
    let kind = if problems.iter().all(|(_, f)| f.kind == first_kind) {
        first_kind
    } else {
        ErrorKind::Invalid
    };
    let message = if let [(label, f)] = problems.as_slice() {
        format!("secret {label} cannot be read: {}", f.message)
    } else {
        let mut m = format!("{} of {total} secrets cannot be read:", problems.len());
        for (label, f) in &problems {
            m.push_str(&format!("\n  - {label}: {}", f.message));
        }
        m
    };
    let mut hints: Vec<&str> = Vec::new();
    for (_, f) in &problems {
        if let Some(h) = f.hint.as_deref()
            && !hints.contains(&h)
        {
            hints.push(h);
        }
    }
    let error = Error::new(kind, message);
    if hints.is_empty() {
        error
    } else {
        error.with_hint(hints.join("\n"))
    }
}
