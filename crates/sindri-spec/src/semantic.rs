//! Checks that need more than one value at a time, or that must say *why* a value is
//! wrong: names that are not DNS labels, `image`/`build` against the provider, secret
//! fields against their source, uniqueness of names and host ports, absolute paths.
//!
//! They run on the positioned tree, not on the typed `Spec`, so they still run (and
//! report) when some other part of the file has a structural error: one run lists
//! every problem. Values of the wrong type were reported by the structural check and
//! are skipped here.

use serde::Deserialize;

use crate::de::NodeDe;
use crate::diagnostic::{PathBuf, Problem};
use crate::model::ProviderKind;
use crate::quantity::PortMapping;
use crate::yaml::{Entry, Kind, Node};

/// Runs every semantic check over the top-level mapping.
pub(crate) fn check(root: &Node) -> Vec<Problem> {
    let mut out = Vec::new();
    let root_path = PathBuf::root();
    if let Some(name) = root.get("name") {
        dns_label(name, &root_path.with_key("name"), "environment", &mut out);
    }
    let env_keys = root
        .get("deployment")
        .and_then(|d| d.get("env"))
        .map(|e| e.entries())
        .unwrap_or(&[]);
    if let Some(deployment) = root.get("deployment") {
        check_deployment(deployment, &root_path.with_key("deployment"), &mut out);
    }
    if let Some(secrets) = root.get("secrets") {
        check_secrets(secrets, env_keys, &root_path.with_key("secrets"), &mut out);
    }
    out
}

fn problem(
    out: &mut Vec<Problem>,
    node: &Node,
    path: PathBuf,
    found: String,
    expected: impl Into<String>,
    hint: Option<String>,
) {
    let mut p = Problem::new(node.start, path, found, expected, hint);
    if matches!(node.kind, Kind::Scalar(_)) {
        p = p.with_end(node.end);
    }
    out.push(p);
}

/// Providers that run a container image and so need `image` or `build`.
fn needs_image(kind: ProviderKind) -> bool {
    matches!(
        kind,
        ProviderKind::Docker
            | ProviderKind::Kubernetes
            | ProviderKind::Fly
            | ProviderKind::Devpod
            | ProviderKind::Runpod
    )
}

/// The entry for `key` unless its value is missing or null (`image: ~` means "not set").
fn present<'a>(map: &'a Node, key: &str) -> Option<&'a Entry> {
    map.entry(key).filter(|e| !e.value.is_null())
}

fn check_deployment(d: &Node, path: &PathBuf, out: &mut Vec<Problem>) {
    let provider_node = d.get("provider");
    let provider = provider_node
        .and_then(Node::as_str)
        .and_then(ProviderKind::parse);
    let image = present(d, "image");
    let build = present(d, "build");
    match (image, build) {
        (None, None) => {
            if let (Some(kind), Some(pnode)) = (provider, provider_node)
                && needs_image(kind)
            {
                problem(
                    out,
                    pnode,
                    path.with_key("image"),
                    format!("provider `{kind}` without `image` or `build`"),
                    format!("`image` or `build`: `{kind}` runs a container image"),
                    Some("add `image: ubuntu:24.04`, or `build: {dockerfile: Dockerfile}` to build one".into()),
                );
            }
        }
        (Some(i), Some(b)) => {
            let (first, second) = if i.key_start <= b.key_start {
                (i, b)
            } else {
                (b, i)
            };
            out.push(
                Problem::new(
                    second.key_start,
                    path.with_key(&second.key),
                    format!(
                        "both `{}` (line {}) and `{}`",
                        first.key, first.key_start.line, second.key
                    ),
                    "only one of `image` and `build`",
                    Some(
                        "keep `image` to pull an image, or `build` to build one from a Dockerfile"
                            .into(),
                    ),
                )
                .with_end(second.key_end),
            );
        }
        _ => {}
    }
    if let Some(home) = d.get("home") {
        absolute_path(home, &path.with_key("home"), "/root", out);
    }
    if let Some(env) = d.get("env") {
        let env_path = path.with_key("env");
        for e in env.entries() {
            variable_name(e, &env_path.with_key(&e.key), "environment variable", out);
        }
    }
    if let Some(volumes) = d.get("volumes") {
        check_volumes(volumes, &path.with_key("volumes"), out);
    }
    if let Some(ports) = d.get("ports") {
        check_ports(ports, &path.with_key("ports"), out);
    }
}

fn check_volumes(volumes: &Node, path: &PathBuf, out: &mut Vec<Problem>) {
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for (i, v) in volumes.items().iter().enumerate() {
        let vpath = path.with_index(i);
        if let Some(name) = v.get("name") {
            let npath = vpath.with_key("name");
            dns_label(name, &npath, "volume", out);
            if let Some(n) = name.as_str() {
                if let Some((_, line)) = seen.iter().find(|(s, _)| *s == n) {
                    problem(
                        out,
                        name,
                        npath,
                        format!("the volume name `{n}` again (first used on line {line})"),
                        "each volume name once",
                        Some("give each volume its own name".into()),
                    );
                } else {
                    seen.push((n, name.start.line));
                }
            }
        }
        if let Some(p) = v.get("path") {
            absolute_path(p, &vpath.with_key("path"), "/data", out);
        }
    }
}

fn check_ports(ports: &Node, path: &PathBuf, out: &mut Vec<Problem>) {
    let mut seen: Vec<(u16, &str, u32)> = Vec::new();
    for (i, p) in ports.items().iter().enumerate() {
        // Ports that do not parse were reported by the structural check.
        let Ok(port) = PortMapping::deserialize(NodeDe(p)) else {
            continue;
        };
        let proto = port.protocol.as_str();
        if let Some((_, _, line)) = seen
            .iter()
            .find(|(h, pr, _)| *h == port.host && *pr == proto)
        {
            problem(
                out,
                p,
                path.with_index(i),
                format!(
                    "host port {}/{proto} again (first published on line {line})",
                    port.host
                ),
                "each host port published once",
                Some(format!(
                    "map the container port to another host port, e.g. `\"{}:{}\"`",
                    port.host.saturating_add(1),
                    port.container
                )),
            );
        } else {
            seen.push((port.host, proto, p.start.line));
        }
    }
}

fn check_secrets(secrets: &Node, env: &[Entry], path: &PathBuf, out: &mut Vec<Problem>) {
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for (i, s) in secrets.items().iter().enumerate() {
        let spath = path.with_index(i);
        if let Some(name_entry) = s.entry("name") {
            let name = &name_entry.value;
            let npath = spath.with_key("name");
            variable_name_value(name, &npath, "secret", out);
            if let Some(n) = name.as_str() {
                if let Some((_, line)) = seen.iter().find(|(x, _)| *x == n) {
                    problem(
                        out,
                        name,
                        npath.clone(),
                        format!("the secret name `{n}` again (first used on line {line})"),
                        "each secret name once",
                        Some("remove the repeated secret, or rename it".into()),
                    );
                } else {
                    seen.push((n, name.start.line));
                }
                if present(s, "mount").is_none()
                    && let Some(e) = env.iter().find(|e| e.key == n)
                {
                    problem(
                        out,
                        name,
                        npath,
                        format!(
                            "the secret `{n}`, an environment variable also set in `deployment.env` (line {})",
                            e.key_start.line
                        ),
                        "each environment variable set once",
                        Some(format!(
                            "remove `{n}` from `deployment.env`, or give the secret a `mount` path"
                        )),
                    );
                }
            }
        }
        if let Some(mount) = s.get("mount") {
            absolute_path(mount, &spath.with_key("mount"), "/run/secrets/token", out);
        }
        let Some(source_node) = s.get("source") else {
            continue;
        };
        let Some(source) = source_node.as_str() else {
            continue;
        };
        let (needs, allowed): (&[(&str, &str)], &[&str]) = match source {
            "env" => (&[], &["var"]),
            "file" => (
                &[("path", "the file to read, e.g. `path: secrets/token`")],
                &["path"],
            ),
            "vault" => (
                &[
                    ("path", "the secret's path, e.g. `path: secret/data/myapp`"),
                    ("key", "the key inside the secret, e.g. `key: api_key`"),
                ],
                &["path", "key"],
            ),
            _ => continue,
        };
        for (field, what) in needs {
            if present(s, field).is_none() {
                problem(
                    out,
                    source_node,
                    spath.with_key(field),
                    format!("`source: {source}` without `{field}`"),
                    format!("`{field}`: {what}"),
                    Some(format!("add `{field}:` to this secret")),
                );
            }
        }
        for field in ["var", "path", "key"] {
            if allowed.contains(&field) {
                continue;
            }
            let Some(e) = present(s, field) else { continue };
            let applies_to = match field {
                "var" => "`source: env`",
                "path" => "`source: file` or `source: vault`",
                _ => "`source: vault`",
            };
            out.push(
                Problem::new(
                    e.key_start,
                    spath.with_key(field),
                    format!("`{field}` in a secret with `source: {source}`"),
                    format!("`{field}` only with {applies_to}"),
                    Some(format!("remove `{field}`, or change `source`")),
                )
                .with_end(e.key_end),
            );
        }
    }
}

fn absolute_path(node: &Node, path: &PathBuf, example: &str, out: &mut Vec<Problem>) {
    let Some(p) = node.as_str() else { return };
    if p.starts_with('/') {
        return;
    }
    let hint = (!p.is_empty()).then(|| format!("did you mean `/{}`?", p.trim_start_matches("./")));
    problem(
        out,
        node,
        path.clone(),
        if p.is_empty() {
            "an empty path".to_string()
        } else {
            format!("the relative path `{p}`")
        },
        format!("an absolute path inside the environment, such as `{example}`"),
        hint,
    );
}

/// Why `s` is not a DNS label (RFC 1123 as Kubernetes applies it, starting with a
/// letter because several platforms require that), or `None` if it is one.
pub(crate) fn dns_label_reasons(s: &str) -> Option<Vec<String>> {
    let mut reasons = Vec::new();
    if s.is_empty() {
        return Some(vec!["it is empty".into()]);
    }
    let n = s.chars().count();
    if n > 63 {
        reasons.push(format!("it is {n} characters long"));
    }
    let upper: Vec<char> = s.chars().filter(char::is_ascii_uppercase).collect();
    if !upper.is_empty() {
        reasons.push(format!(
            "it has uppercase letters ({})",
            quote_chars(&upper)
        ));
    }
    if s.contains('_') {
        reasons.push("it has an underscore".into());
    }
    let other: Vec<char> = s
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        .collect();
    if !other.is_empty() {
        reasons.push(format!("it has the characters {}", quote_chars(&other)));
    }
    let first = s.chars().next().unwrap_or('a');
    if first.is_ascii_digit() {
        reasons.push("it starts with a digit".into());
    } else if first == '-' {
        reasons.push("it starts with `-`".into());
    }
    if s.ends_with('-') {
        reasons.push("it ends with `-`".into());
    }
    (!reasons.is_empty()).then_some(reasons)
}

fn quote_chars(chars: &[char]) -> String {
    let mut uniq: Vec<char> = Vec::new();
    for c in chars {
        if !uniq.contains(c) {
            uniq.push(*c);
        }
    }
    uniq.iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A DNS label close to `s`, to suggest.
fn dns_label_suggestion(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let trimmed: String = out
        .trim_start_matches(|c: char| !c.is_ascii_lowercase())
        .chars()
        .take(63)
        .collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    // Suggest only a respelling (case, separators), never one that drops characters.
    let letters = |x: &str| -> String {
        x.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    (dns_label_reasons(&trimmed).is_none() && trimmed != s && letters(&trimmed) == letters(s))
        .then_some(trimmed)
}

fn dns_label(node: &Node, path: &PathBuf, what: &str, out: &mut Vec<Problem>) {
    let Some(s) = node.as_str() else { return };
    let Some(reasons) = dns_label_reasons(s) else {
        return;
    };
    let hint = dns_label_suggestion(s).map(|x| format!("did you mean `{x}`?"));
    problem(
        out,
        node,
        path.clone(),
        format!(
            "the {what} name `{s}`, which is not a DNS label: {}",
            reasons.join(", ")
        ),
        "a DNS label: lowercase letters, digits and `-`, starting with a letter, not ending with `-`, at most 63 characters",
        hint,
    );
}

/// Why `s` is not a portable environment variable name, or `None`.
fn variable_name_reasons(s: &str) -> Option<Vec<String>> {
    if s.is_empty() {
        return Some(vec!["it is empty".into()]);
    }
    let mut reasons = Vec::new();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        reasons.push("it starts with a digit".to_string());
    }
    let bad: Vec<char> = s
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        .collect();
    if !bad.is_empty() {
        reasons.push(format!("it has the characters {}", quote_chars(&bad)));
    }
    (!reasons.is_empty()).then_some(reasons)
}

fn variable_suggestion(s: &str) -> Option<String> {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (variable_name_reasons(&out).is_none() && out != s).then_some(out)
}

const VARIABLE_EXPECTED: &str =
    "a variable name: letters, digits and `_`, not starting with a digit";

/// An env key (the position is the key's).
fn variable_name(e: &Entry, path: &PathBuf, what: &str, out: &mut Vec<Problem>) {
    let Some(reasons) = variable_name_reasons(&e.key) else {
        return;
    };
    out.push(
        Problem::new(
            e.key_start,
            path.clone(),
            format!(
                "the {what} `{}`, which is not a valid name: {}",
                e.key,
                reasons.join(", ")
            ),
            VARIABLE_EXPECTED,
            variable_suggestion(&e.key).map(|x| format!("did you mean `{x}`?")),
        )
        .with_end(e.key_end),
    );
}

/// A secret's `name` value.
fn variable_name_value(node: &Node, path: &PathBuf, what: &str, out: &mut Vec<Problem>) {
    let Some(s) = node.as_str() else { return };
    let Some(reasons) = variable_name_reasons(s) else {
        return;
    };
    problem(
        out,
        node,
        path.clone(),
        format!(
            "the {what} name `{s}`, which is not a valid variable name: {}",
            reasons.join(", ")
        ),
        VARIABLE_EXPECTED,
        variable_suggestion(s).map(|x| format!("did you mean `{x}`?")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_label_reasons_say_why() {
        assert!(dns_label_reasons("my-env").is_none());
        assert!(dns_label_reasons("a").is_none());
        assert_eq!(
            dns_label_reasons("My_Env").unwrap(),
            vec![
                "it has uppercase letters (`M`, `E`)",
                "it has an underscore"
            ]
        );
        assert_eq!(
            dns_label_reasons(&"a".repeat(64)).unwrap(),
            vec!["it is 64 characters long"]
        );
        assert_eq!(
            dns_label_reasons("1abc").unwrap(),
            vec!["it starts with a digit"]
        );
        assert_eq!(dns_label_reasons("abc-").unwrap(), vec!["it ends with `-`"]);
        assert_eq!(
            dns_label_reasons("a.b").unwrap(),
            vec!["it has the characters `.`"]
        );
        assert_eq!(dns_label_suggestion("My_Env").as_deref(), Some("my-env"));
    }

    #[test]
    fn variable_names() {
        assert!(variable_name_reasons("MY_VAR").is_none());
        assert!(variable_name_reasons("_x1").is_none());
        assert_eq!(
            variable_name_reasons("MY-VAR").unwrap(),
            vec!["it has the characters `-`"]
        );
        assert_eq!(variable_suggestion("MY-VAR").as_deref(), Some("MY_VAR"));
        assert_eq!(variable_suggestion("1X").as_deref(), Some("_1X"));
    }
}
