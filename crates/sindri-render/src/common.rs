//! What every artifact shares: the ownership labels, validated names, the image, and
//! how each secret is referenced (never its value).

use minijinja::Value;
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{PortMapping, SecretSource, SecretSpec, Spec};

/// Label saying sindri created the object; `list_owned` and cleanup look for it.
pub const LABEL_MANAGED: &str = "sindri.managed";
/// Label holding the environment name.
pub const LABEL_ENVIRONMENT: &str = "sindri.environment";
/// Label holding the project id, so two projects' environments of one name stay apart.
pub const LABEL_PROJECT: &str = "sindri.project";

/// Name of the home volume in every format, and so a volume name users cannot take.
pub const HOME_VOLUME: &str = "home";

/// Default size of a volume when the spec gives none (`resources.disk` for home).
pub const DEFAULT_VOLUME_GIB: u64 = 10;

/// The ownership labels every object carries, in a stable order.
pub fn labels(spec: &ResolvedSpec) -> Vec<(&'static str, String)> {
    vec![
        (LABEL_MANAGED, "true".to_string()),
        (LABEL_ENVIRONMENT, spec.name().to_string()),
        (LABEL_PROJECT, spec.project.clone()),
    ]
}

pub(crate) fn labels_value(spec: &ResolvedSpec) -> Value {
    labels(spec)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

/// The image a spec runs: `deployment.image`, or for a build without one the tag sindri
/// builds it as ([`built_image`]).
pub fn image_ref(spec: &Spec) -> Option<String> {
    match (&spec.deployment.image, &spec.deployment.build) {
        (Some(image), _) => Some(image.clone()),
        (None, Some(_)) => Some(built_image(&spec.name)),
        (None, None) => None,
    }
}

/// The tag of an image sindri builds from `deployment.build` when no `image` is given.
pub fn built_image(name: &str) -> String {
    format!("sindri-{name}:latest")
}

/// A map (preserving insertion order) under construction.
#[derive(Default)]
pub(crate) struct Obj(Vec<(String, Value)>);

impl Obj {
    pub(crate) fn new() -> Obj {
        Obj::default()
    }

    pub(crate) fn set(mut self, key: &str, value: impl Into<Value>) -> Obj {
        self.0.push((key.to_string(), value.into()));
        self
    }

    pub(crate) fn opt<V: Into<Value>>(self, key: &str, value: Option<V>) -> Obj {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Sets `key` unless `value` is an empty map or sequence.
    pub(crate) fn nonempty(self, key: &str, value: Value) -> Obj {
        if value.len() == Some(0) {
            self
        } else {
            self.set(key, value)
        }
    }

    pub(crate) fn extend(&mut self, other: Obj) {
        self.0.extend(other.0);
    }

    pub(crate) fn build(self) -> Value {
        self.0.into_iter().collect()
    }
}

/// A sequence value.
pub(crate) fn seq(items: Vec<Value>) -> Value {
    Value::from(items)
}

/// A map value from string pairs.
pub(crate) fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    pairs
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks what the formats rely on and the loader may not have seen (a `ResolvedSpec`
/// can be built in code): names are DNS labels or identifiers, paths are absolute, no
/// two volumes, secrets or published ports collide.
pub(crate) fn validate(spec: &Spec) -> Result<()> {
    if !is_dns_label(&spec.name) {
        return Err(Error::invalid(format!(
            "environment name `{}` is not a DNS label",
            spec.name
        ))
        .with_hint(
            "use lowercase letters, digits and `-`, starting with a letter, at most 63 characters",
        ));
    }
    let d = &spec.deployment;
    if !d.home.starts_with('/') {
        return Err(Error::invalid(format!(
            "deployment.home `{}` is not an absolute path",
            d.home
        )));
    }
    let mut seen = Vec::new();
    for v in &d.volumes {
        if !is_dns_label(&v.name) {
            return Err(
                Error::invalid(format!("volume name `{}` is not a DNS label", v.name))
                    .with_hint("use lowercase letters, digits and `-`, starting with a letter"),
            );
        }
        if v.name == HOME_VOLUME {
            return Err(Error::invalid(
                "volume name `home` is reserved for the home directory's volume",
            )
            .with_hint("rename the volume; the home directory is always persistent"));
        }
        if seen.contains(&v.name.as_str()) {
            return Err(Error::invalid(format!(
                "volume `{}` is listed twice in deployment.volumes",
                v.name
            )));
        }
        seen.push(&v.name);
        if !v.path.starts_with('/') {
            return Err(Error::invalid(format!(
                "volume `{}` has path `{}`, which is not absolute",
                v.name, v.path
            )));
        }
    }
    let mut names = Vec::new();
    for s in &spec.secrets {
        if !is_identifier(&s.name) {
            return Err(Error::invalid(format!(
                "secret name `{}` is not a valid environment variable name",
                s.name
            ))
            .with_hint("use letters, digits and `_`, not starting with a digit"));
        }
        if names.contains(&s.name.as_str()) {
            return Err(Error::invalid(format!(
                "secret `{}` is listed twice",
                s.name
            )));
        }
        names.push(&s.name);
        if s.mount.is_none() && spec.deployment.env.contains_key(&s.name) {
            return Err(Error::invalid(format!(
                "secret `{}` has the same name as a variable in deployment.env",
                s.name
            ))
            .with_hint(
                "rename the secret or the variable: each environment variable is set once",
            ));
        }
        if let Some(var) = &s.var
            && !is_identifier(var)
        {
            return Err(Error::invalid(format!(
                "secret `{}` reads variable `{var}`, which is not a valid environment variable name",
                s.name
            )));
        }
        if let Some(mount) = &s.mount
            && !mount.starts_with('/')
        {
            return Err(Error::invalid(format!(
                "secret `{}` is mounted at `{mount}`, which is not an absolute path",
                s.name
            )));
        }
        if s.source != SecretSource::Env && s.path.is_none() {
            return Err(Error::invalid(format!(
                "secret `{}` has source `{}` but no `path`",
                s.name,
                source_name(s.source)
            )));
        }
    }
    let mut published: Vec<(u16, &str)> = Vec::new();
    for p in &d.ports {
        let key = (p.host, p.protocol.as_str());
        if published.contains(&key) {
            return Err(Error::invalid(format!(
                "port {}/{} is published twice in deployment.ports",
                p.host,
                p.protocol.as_str()
            )));
        }
        published.push(key);
    }
    Ok(())
}

/// The formats need something to run.
pub(crate) fn require_image_or_build(spec: &Spec, format: &str) -> Result<()> {
    if spec.deployment.image.is_none() && spec.deployment.build.is_none() {
        return Err(Error::invalid(format!(
            "cannot render {format}: the deployment has neither `image` nor `build`"
        ))
        .with_hint("set deployment.image (e.g. `ubuntu:24.04`) or deployment.build"));
    }
    Ok(())
}

pub(crate) fn source_name(s: SecretSource) -> &'static str {
    match s {
        SecretSource::Env => "env",
        SecretSource::File => "file",
        SecretSource::Vault => "vault",
    }
}

/// The variable of the machine running sindri (or `docker compose`) that holds a
/// secret's value: `var` (default `name`) for `env`; for `vault` the secret's own name,
/// which the user exports after reading the value from Vault.
pub(crate) fn host_var(s: &SecretSpec) -> &str {
    match (s.source, &s.var) {
        (SecretSource::Env, Some(var)) => var,
        _ => &s.name,
    }
}

/// The secret references as template context: names, sources and paths, never values.
pub(crate) fn secrets_value(spec: &Spec) -> Value {
    seq(spec
        .secrets
        .iter()
        .map(|s| {
            Obj::new()
                .set("name", s.name.as_str())
                .set("source", source_name(s.source))
                .set("var", host_var(s))
                .opt("path", s.path.as_deref())
                .opt("key", s.key.as_deref())
                .opt("mount", s.mount.as_deref())
                .set("required", s.required)
                .build()
        })
        .collect())
}

/// Ports with duplicate container ports (same port and protocol) removed, for lists
/// of exposed container ports.
pub(crate) fn container_ports(ports: &[PortMapping]) -> Vec<PortMapping> {
    let mut out: Vec<PortMapping> = Vec::new();
    for p in ports {
        if !out
            .iter()
            .any(|q| q.container == p.container && q.protocol == p.protocol)
        {
            out.push(*p);
        }
    }
    out
}

/// A path from the spec (relative to the config file's directory) as seen from a
/// file written `depth` directories below the project directory.
pub(crate) fn project_path(path: &str, depth: usize) -> String {
    if path.starts_with('/') || depth == 0 {
        return path.to_string();
    }
    let up = "../".repeat(depth);
    match path.strip_prefix("./") {
        Some(rest) => format!("{up}{rest}"),
        None if path == "." => up.trim_end_matches('/').to_string(),
        None => format!("{up}{path}"),
    }
}

/// Quotes a word for a POSIX shell command shown in a comment.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '%' | '+' | ',')
        })
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
