//! Escaping done by the engine, so that no template author has to remember a filter.
//!
//! Every template is named after the file it renders, and its extension picks a
//! [`Syntax`] through MiniJinja's auto-escape callback. The custom formatter then
//! serialises every printed value (`{{ value }}`) as a valid value of that syntax: a
//! string becomes a quoted YAML, TOML or JSON string, a map an inline (flow) mapping,
//! and so on. A value can never break out of its place in the file, whatever it
//! contains. The `document` filter writes a whole map or sequence as a readable block
//! document of the same syntax; it escapes the same way.
//!
//! Platform-level interpolation is handled here too where it applies to the whole file:
//! Compose expands `$` in every value, so in a compose file every `$` is written `$$`.
//! Kubernetes expands `$(VAR)` only in container env values, command and args, so that
//! is done where those fields are built (see `kubernetes.rs`), not here.
//!
//! A string marked safe (`Value::from_safe_string`, or the `safe` filter) and printed
//! directly is written as is: the renderer uses that for text it has already made valid
//! (comment lines, a user's own Dockerfile). Inside a map or sequence every string is
//! encoded normally.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Error, ErrorKind, Output, State};

/// The syntax of a rendered file, which decides how values are written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// YAML, read by YAML 1.1 (PyYAML, go-yaml v2) and 1.2 parsers alike.
    Yaml,
    /// A Compose file: YAML, with every `$` in a value doubled.
    Compose,
    /// TOML 1.0.
    Toml,
    /// JSON.
    Json,
    /// A Dockerfile: values are written as is, and refused when they would start a
    /// new instruction.
    Dockerfile,
}

impl Syntax {
    /// The syntax of the file a template is named after.
    pub(crate) fn for_template(name: &str) -> Option<Syntax> {
        let file = name.rsplit('/').next().unwrap_or(name);
        let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or(file);
        match ext {
            "yml" | "yaml" if file.contains("compose") => Some(Syntax::Compose),
            "yml" | "yaml" => Some(Syntax::Yaml),
            "toml" => Some(Syntax::Toml),
            "json" => Some(Syntax::Json),
            "Dockerfile" | "dockerfile" => Some(Syntax::Dockerfile),
            _ => None,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Syntax::Yaml => "yaml",
            Syntax::Compose => "compose",
            Syntax::Toml => "toml",
            Syntax::Json => "json",
            Syntax::Dockerfile => "dockerfile",
        }
    }

    fn from_auto_escape(ae: AutoEscape) -> Option<Syntax> {
        match ae {
            AutoEscape::Custom("yaml") => Some(Syntax::Yaml),
            AutoEscape::Custom("compose") => Some(Syntax::Compose),
            AutoEscape::Custom("toml") => Some(Syntax::Toml),
            AutoEscape::Custom("json") => Some(Syntax::Json),
            AutoEscape::Custom("dockerfile") => Some(Syntax::Dockerfile),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Syntax::Yaml => "YAML",
            Syntax::Compose => "a Compose file",
            Syntax::Toml => "TOML",
            Syntax::Json => "JSON",
            Syntax::Dockerfile => "a Dockerfile",
        }
    }
}

/// The auto-escape callback: the template's file name decides its syntax. Every
/// template sindri loads is named after a file of a known syntax (overrides must use
/// the built-in names), so `None` is only a fallback.
pub(crate) fn auto_escape(name: &str) -> AutoEscape {
    match Syntax::for_template(name) {
        Some(s) => AutoEscape::Custom(s.tag()),
        None => AutoEscape::None,
    }
}

/// The formatter: writes each printed value as a valid value of the template's syntax.
pub(crate) fn formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let Some(syntax) = Syntax::from_auto_escape(state.auto_escape()) else {
        return minijinja::escape_formatter(out, state, value);
    };
    let text = if value.is_safe() {
        value.to_string()
    } else {
        inline(syntax, value)?
    };
    out.write_str(&text)
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write the output"))
}

/// The `document` filter: a map or sequence as a block document of the template's
/// syntax (YAML block style, a TOML document with tables, pretty JSON).
pub(crate) fn document_filter(state: &State, value: Value) -> Result<Value, Error> {
    let syntax = Syntax::from_auto_escape(state.auto_escape()).ok_or_else(|| {
        invalid(format!(
            "the `document` filter needs a template named `*.yaml`, `*.yml`, `*.toml` or `*.json`; `{}` is none of them",
            state.name()
        ))
    })?;
    document(syntax, &value).map(Value::from_safe_string)
}

/// A reference to a variable of the shell that runs `docker compose`, written
/// `${VAR:?}` (or `${VAR:-}` when optional). Only sindri builds these (for secrets
/// exposed as environment variables); a template cannot make one from a string, so
/// user text is never interpolated.
#[derive(Debug, Clone)]
pub(crate) struct ComposeVar {
    /// The variable, a validated identifier.
    pub(crate) var: String,
    /// Fail `docker compose up` when it is unset or empty.
    pub(crate) required: bool,
}

impl ComposeVar {
    fn text(&self) -> String {
        let op = if self.required { ":?" } else { ":-" };
        format!("${{{}{op}}}", self.var)
    }
}

impl Object for ComposeVar {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// One value, classified for writing.
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Var(ComposeVar),
}

fn classify(value: &Value) -> Result<Node, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "an undefined value cannot be written into the file",
            ));
        }
        ValueKind::None => Node::Null,
        ValueKind::Bool => Node::Bool(value.is_true()),
        ValueKind::Number if value.is_integer() => Node::Int(i128::try_from(value.clone())?),
        ValueKind::Number => Node::Float(f64::try_from(value.clone())?),
        ValueKind::String => Node::Str(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Seq | ValueKind::Iterable => Node::Seq(value.try_iter()?.collect()),
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((key, item));
            }
            Node::Map(entries)
        }
        ValueKind::Plain => match value.downcast_object_ref::<ComposeVar>() {
            Some(v) => Node::Var(v.clone()),
            None => {
                return Err(invalid(format!(
                    "a value of kind `{}` cannot be written into the file",
                    value.kind()
                )));
            }
        },
        other => {
            return Err(invalid(format!(
                "a value of kind `{other}` cannot be written into the file"
            )));
        }
    })
}

/// A value written where a single value goes (after `key: `, inside a comment, in a
/// list): scalars, and flow/inline forms for collections, always on one line.
pub(crate) fn inline(syntax: Syntax, value: &Value) -> Result<String, Error> {
    match syntax {
        Syntax::Yaml | Syntax::Compose => {
            let mut out = String::new();
            yaml_flow(&mut out, value, syntax == Syntax::Compose)?;
            Ok(out)
        }
        Syntax::Toml => toml_inline(value),
        Syntax::Json => json_value(value, false),
        Syntax::Dockerfile => dockerfile_word(value),
    }
}

/// A value written as a whole document.
pub(crate) fn document(syntax: Syntax, value: &Value) -> Result<String, Error> {
    match syntax {
        Syntax::Yaml | Syntax::Compose => {
            let compose = syntax == Syntax::Compose;
            let mut out = String::new();
            if is_nonempty_collection(value)? {
                yaml_block(&mut out, value, 0, false, compose)?;
            } else {
                yaml_flow(&mut out, value, compose)?;
                out.push('\n');
            }
            Ok(out)
        }
        Syntax::Toml => {
            if value.kind() != ValueKind::Map {
                return Err(invalid(format!(
                    "a TOML document must be a table, found a value of kind `{}`",
                    value.kind()
                )));
            }
            toml::to_string_pretty(value)
                .map_err(|e| invalid(format!("cannot write the value as a TOML document: {e}")))
        }
        Syntax::Json => json_value(value, true).map(|mut s| {
            s.push('\n');
            s
        }),
        Syntax::Dockerfile => Err(invalid(
            "a Dockerfile has no document form; print values one at a time".to_string(),
        )),
    }
}

fn not_in(syntax: Syntax, what: &str) -> Error {
    invalid(format!("{what} cannot be written into {}", syntax.label()))
}

// ---------------------------------------------------------------- YAML

/// `s` as a YAML double-quoted scalar that is also a JSON string. Every character a
/// YAML 1.1 or 1.2 parser could treat as a line break or refuse as non-printable is
/// written as an escape, so the scalar stays on one line and reads back byte for byte.
pub(crate) fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if needs_unicode_escape(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Control characters, DEL, the C1 block (which holds NEL, a YAML 1.1 line break), the
/// Unicode line and paragraph separators, the byte order mark and the non-characters
/// U+FFFE/U+FFFF. All are in the Basic Multilingual Plane, so `\uXXXX` covers them.
fn needs_unicode_escape(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// True for keys that every YAML parser reads back as the same plain string.
fn yaml_plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return false;
    }
    if !k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return false;
    }
    // YAML 1.1 reads these as booleans or null.
    !matches!(
        k.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null"
    )
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    // YAML 1.1 needs a `.` and a signed exponent to read a float.
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.to_string()
            } else {
                format!("{mantissa}.0")
            };
            let exp = if exp.starts_with('-') {
                exp.to_string()
            } else {
                format!("+{exp}")
            };
            format!("{mantissa}e{exp}")
        }
        None => s,
    }
}

fn yaml_string(s: &str, compose: bool) -> String {
    if compose {
        yaml_quote(&s.replace('$', "$$"))
    } else {
        yaml_quote(s)
    }
}

fn yaml_key(out: &mut String, key: &Value) -> Result<(), Error> {
    match classify(key)? {
        Node::Str(k) if yaml_plain_key(&k) => out.push_str(&k),
        // Keys are not interpolated by Compose, so `$` stays as is.
        Node::Str(k) => out.push_str(&yaml_quote(&k)),
        Node::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Node::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        _ => {
            return Err(invalid(format!(
                "a map key of kind `{}` cannot be written into YAML",
                key.kind()
            )));
        }
    }
    Ok(())
}

fn yaml_flow(out: &mut String, value: &Value, compose: bool) -> Result<(), Error> {
    match classify(value)? {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Node::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Node::Float(f) => out.push_str(&yaml_float(f)),
        Node::Str(s) => out.push_str(&yaml_string(&s, compose)),
        Node::Var(v) if compose => out.push_str(&yaml_quote(&v.text())),
        Node::Var(_) => return Err(not_in(Syntax::Yaml, "a Compose variable reference")),
        Node::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_flow(out, item, compose)?;
            }
            out.push(']');
        }
        Node::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match classify(k)? {
                    Node::Str(k) => out.push_str(&yaml_quote(&k)),
                    _ => yaml_key(out, k)?,
                }
                out.push_str(": ");
                yaml_flow(out, v, compose)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn is_nonempty_collection(value: &Value) -> Result<bool, Error> {
    Ok(match value.kind() {
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable => value.try_iter()?.next().is_some(),
        _ => false,
    })
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes a non-empty map or sequence in block style at `indent`. When `continued`,
/// the cursor is already placed after a `- ` for the first line.
fn yaml_block(
    out: &mut String,
    value: &Value,
    indent: usize,
    continued: bool,
    compose: bool,
) -> Result<(), Error> {
    let mut first = true;
    let mut lead = |out: &mut String| {
        if !(first && continued) {
            push_indent(out, indent);
        }
        first = false;
    };
    match classify(value)? {
        Node::Map(entries) => {
            for (k, v) in entries {
                lead(out);
                yaml_key(out, &k)?;
                out.push(':');
                if is_nonempty_collection(&v)? {
                    out.push('\n');
                    yaml_block(out, &v, indent + 2, false, compose)?;
                } else {
                    out.push(' ');
                    yaml_flow(out, &v, compose)?;
                    out.push('\n');
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                lead(out);
                out.push_str("- ");
                if is_nonempty_collection(&item)? {
                    yaml_block(out, &item, indent + 2, true, compose)?;
                } else {
                    yaml_flow(out, &item, compose)?;
                    out.push('\n');
                }
            }
        }
        _ => {
            yaml_flow(out, value, compose)?;
            out.push('\n');
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- TOML

fn toml_string(s: &str) -> String {
    use toml_writer::ToTomlValue as _;
    // Always a one-line basic string: `inline` output may sit inside a comment.
    toml_writer::TomlStringBuilder::new(s)
        .as_basic()
        .to_toml_value()
}

fn toml_key(s: &str) -> String {
    use toml_writer::ToTomlKey as _;
    toml_writer::TomlKeyBuilder::new(s)
        .as_default()
        .to_toml_key()
}

fn toml_inline(value: &Value) -> Result<String, Error> {
    use toml_writer::ToTomlValue as _;
    Ok(match classify(value)? {
        Node::Null => {
            return Err(invalid(
                "TOML has no null: leave the key out instead of writing `none`".to_string(),
            ));
        }
        Node::Bool(b) => b.to_toml_value(),
        Node::Int(i) => i64::try_from(i)
            .map_err(|_| invalid(format!("{i} is outside TOML's 64-bit signed integer range")))?
            .to_toml_value(),
        Node::Float(f) => f.to_toml_value(),
        Node::Str(s) => toml_string(&s),
        Node::Var(_) => return Err(not_in(Syntax::Toml, "a Compose variable reference")),
        Node::Seq(items) => {
            let parts = items
                .iter()
                .map(toml_inline)
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", parts.join(", "))
        }
        Node::Map(entries) => {
            if entries.is_empty() {
                return Ok("{}".into());
            }
            let mut parts = Vec::with_capacity(entries.len());
            for (k, v) in &entries {
                let key = match classify(k)? {
                    Node::Str(k) => toml_key(&k),
                    _ => {
                        return Err(invalid(format!(
                            "TOML keys are strings; found a key of kind `{}`",
                            k.kind()
                        )));
                    }
                };
                parts.push(format!("{key} = {}", toml_inline(v)?));
            }
            format!("{{ {} }}", parts.join(", "))
        }
    })
}

// ---------------------------------------------------------------- JSON

fn json_value(value: &Value, pretty: bool) -> Result<String, Error> {
    fn check(value: &Value) -> Result<(), Error> {
        match classify(value)? {
            Node::Var(_) => Err(not_in(Syntax::Json, "a Compose variable reference")),
            Node::Float(f) if !f.is_finite() => Err(invalid(format!("JSON has no number {f}"))),
            Node::Seq(items) => items.iter().try_for_each(check),
            Node::Map(entries) => entries.iter().try_for_each(|(k, v)| {
                if k.kind() != ValueKind::String {
                    return Err(invalid(format!(
                        "JSON keys are strings; found a key of kind `{}`",
                        k.kind()
                    )));
                }
                check(v)
            }),
            _ => Ok(()),
        }
    }
    check(value)?;
    let result = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    result.map_err(|e| invalid(format!("cannot write the value as JSON: {e}")))
}

// ---------------------------------------------------------------- Dockerfile

/// A Dockerfile has no quoting that works in every instruction, so a value is written
/// as is and refused when it could end the line (a line break or other control
/// character, or a trailing `\`, which continues the line).
fn dockerfile_word(value: &Value) -> Result<String, Error> {
    let text = match classify(value)? {
        Node::Str(s) => s,
        Node::Int(i) => i.to_string(),
        Node::Bool(b) => b.to_string(),
        Node::Float(f) if f.is_finite() => f.to_string(),
        _ => {
            return Err(invalid(format!(
                "a value of kind `{}` cannot be written into a Dockerfile",
                value.kind()
            )));
        }
    };
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || needs_unicode_escape(*c))
    {
        return Err(invalid(format!(
            "{text:?} cannot be written into a Dockerfile: it contains the control character U+{:04X}, which would end the instruction",
            c as u32
        )));
    }
    if text.ends_with('\\') {
        return Err(invalid(format!(
            "{text:?} cannot be written into a Dockerfile: a trailing `\\` would continue the instruction onto the next line"
        )));
    }
    Ok(text)
}

/// Text made safe for a one-line comment in any of the syntaxes: every character that
/// could end the line (or that a parser refuses) is written as `\u{XXXX}`.
pub(crate) fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c != '\t' && (c.is_control() || needs_unicode_escape(c)) {
            let _ = write!(out, "\\u{{{:04X}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A comment line's text as a safe value: the template prints it after `# `.
pub(crate) fn comment(s: &str) -> Value {
    Value::from_safe_string(comment_text(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quote_escapes_everything_that_could_break_a_line() {
        assert_eq!(yaml_quote("a\"b\\c\nd\te"), r#""a\"b\\c\nd\te""#);
        assert_eq!(
            yaml_quote("\u{85}\u{2028}\u{7f}"),
            r#""\u0085\u2028\u007F""#
        );
        assert_eq!(yaml_quote("ünï 🦀"), "\"ünï 🦀\"");
    }

    #[test]
    fn yaml_keys_that_yaml_1_1_would_misread_are_quoted() {
        for k in ["on", "Yes", "null", "1abc", "a b", "a:b", ""] {
            assert!(!yaml_plain_key(k), "{k} must be quoted");
        }
        for k in ["sindri.managed", "nvidia.com/gpu", "API_KEY", "apiVersion"] {
            assert!(yaml_plain_key(k), "{k} can be plain");
        }
    }

    #[test]
    fn toml_documents_put_values_before_tables_whatever_the_order() {
        let v: Value = [
            ("table", Value::from_iter([("a", 1)])),
            ("x", Value::from(2)),
            ("list", Value::from(vec![Value::from_iter([("b", "c")])])),
            ("y", Value::from("z")),
        ]
        .into_iter()
        .collect();
        let text = document(Syntax::Toml, &v).unwrap();
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(back["x"].as_integer(), Some(2), "{text}");
        assert_eq!(back["y"].as_str(), Some("z"), "{text}");
        assert_eq!(back["table"]["a"].as_integer(), Some(1), "{text}");
        assert_eq!(back["list"][0]["b"].as_str(), Some("c"), "{text}");
    }

    #[test]
    fn yaml_floats_keep_a_dot_and_a_signed_exponent() {
        assert_eq!(yaml_float(0.5), "0.5");
        assert_eq!(yaml_float(2.0), "2.0");
        assert_eq!(yaml_float(1e-7), "1.0e-7");
        assert_eq!(yaml_float(1e21), "1.0e+21");
    }
}
