//! A snapshot of environment variables, and the `env` secret source.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use sindri_core::{ErrorKind, SecretValue};

use crate::failure::Failure;

/// Environment variables captured once. Resolution reads this snapshot rather than the
/// live process environment so tests (and embedders) can hand in an environment
/// without mutating the process's, which is `unsafe` in edition 2024.
#[derive(Clone, Default)]
pub(crate) struct Env {
    vars: BTreeMap<OsString, OsString>,
}

/// A variable that is set but cannot be used as text.
pub(crate) struct NotUnicode;

impl Env {
    pub(crate) fn from_process() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    pub(crate) fn from_vars<I, K, V>(vars: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.vars.len()
    }

    /// The variable's value: `None` when unset.
    pub(crate) fn get(&self, name: &str) -> Option<Result<String, NotUnicode>> {
        self.vars
            .get(OsStr::new(name))
            .map(|v| v.clone().into_string().map_err(|_| NotUnicode))
    }

    /// The first of `names` that is set to a non-empty text value. Empty counts as
    /// unset, as it does for the Vault CLI (`VAULT_TOKEN=` does not mean "no token").
    pub(crate) fn first_set(&self, names: &[&str]) -> Option<(String, String)> {
        names.iter().find_map(|n| match self.get(n) {
            Some(Ok(v)) if !v.trim().is_empty() => Some(((*n).to_string(), v)),
            _ => None,
        })
    }

    /// The user's home directory, for `~/` paths and `~/.vault-token`.
    pub(crate) fn home(&self) -> Option<PathBuf> {
        ["HOME", "USERPROFILE"]
            .iter()
            .find_map(|n| self.vars.get(OsStr::new(n)).filter(|v| !v.is_empty()))
            .map(PathBuf::from)
    }
}

/// `source: env`: the variable `var` (default: the secret's name), used as is.
pub(crate) fn read(env: &Env, var: &str) -> Result<SecretValue, Failure> {
    match env.get(var) {
        Some(Ok(value)) => Ok(SecretValue::new(value)),
        Some(Err(NotUnicode)) => Err(Failure::new(
            ErrorKind::Invalid,
            format!("environment variable `{var}` is not valid UTF-8"),
        )
        .hint("sindri passes secrets as text; base64-encode binary values")),
        None => Err(Failure::new(
            ErrorKind::NotFound,
            format!("environment variable `{var}` is not set"),
        )
        .hint(format!(
            "export {var} before running sindri, or mark the secret `required: false`"
        ))),
    }
}
