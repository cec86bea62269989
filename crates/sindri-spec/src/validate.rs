//! The structural check: the positioned tree against the JSON Schema generated from
//! [`Spec`](crate::Spec).
//!
//! Walking the schema (rather than a hand-written list of keys) keeps the check and the
//! model from drifting apart: a field added to the model is known here at once. Every
//! problem is collected; nothing stops at the first one. Quantities (`ByteSize`,
//! `Cpus`, `Duration`, `PortMapping`) are checked by their own parsers, so the message
//! is the one the type itself gives. `pattern` keywords are not interpreted here: each
//! patterned string (names) is checked by [`crate::semantic`], which can say *why* a
//! name is not valid.

use serde::Deserialize;

use crate::de::NodeDe;
use crate::diagnostic::{PathBuf, Problem};
use crate::quantity::{ByteSize, Cpus, DurationValue, PortMapping};
use crate::table::Json;
use crate::yaml::{Kind, Node, ScalarValue};

/// Schema names of types whose scalar forms are checked by their own parser.
pub(crate) const LEAF_TYPES: [&str; 4] = ["ByteSize", "Cpus", "Duration", "PortMapping"];

/// Checks `root` against `schema`, returning every problem found.
pub(crate) fn check(root: &Node, schema: &'static Json) -> Vec<Problem> {
    let defs = schema.get("$defs").and_then(Json::as_object).unwrap_or(&[]);
    let mut c = Checker {
        defs,
        problems: Vec::new(),
        path: PathBuf::root(),
    };
    c.node(root, schema);
    c.problems
}

type Props = &'static [(&'static str, Json)];

struct Checker {
    defs: Props,
    problems: Vec<Problem>,
    path: PathBuf,
}

impl Checker {
    fn resolve(&self, schema: &'static Json) -> Option<(&'static str, &'static Json)> {
        let name = schema.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?;
        let def = self.defs.iter().find(|(k, _)| *k == name)?;
        Some((name, &def.1))
    }

    /// Follows `$ref`s to the schema that says what a value is.
    fn target(&self, schema: &'static Json) -> &'static Json {
        let mut s = schema;
        while let Some((_, def)) = self.resolve(s) {
            s = def;
        }
        s
    }

    fn problem(&mut self, node: &Node, found: String, expected: String, hint: Option<String>) {
        let mut p = Problem::new(node.start, self.path.clone(), found, expected, hint);
        if matches!(node.kind, Kind::Scalar(_)) {
            p = p.with_end(node.end);
        }
        self.problems.push(p);
    }

    fn node(&mut self, node: &Node, schema: &'static Json) {
        if let Some((name, def)) = self.resolve(schema) {
            let object_form = matches!(node.kind, Kind::Map(_));
            if LEAF_TYPES.contains(&name) && !(name == "PortMapping" && object_form) {
                self.leaf(name, node);
                return;
            }
            self.node(node, def);
            return;
        }
        if let Some(branches) = branches(schema) {
            if let Some(values) = consts(branches) {
                self.enumeration(node, &values);
                return;
            }
            let matching: Vec<&'static Json> =
                branches.iter().filter(|b| self.accepts(b, node)).collect();
            match matching.as_slice() {
                [] => self.type_error(node, schema),
                [only] => self.node(node, only),
                [first, rest @ ..] => {
                    // Several branches take this kind of value: the first that fits
                    // wins; if none does, report against the first.
                    let saved = std::mem::take(&mut self.problems);
                    for b in rest {
                        self.node(node, b);
                        if self.problems.is_empty() {
                            self.problems = saved;
                            return;
                        }
                        self.problems.clear();
                    }
                    self.problems = saved;
                    self.node(node, first);
                }
            }
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            let values: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
            self.enumeration(node, &values);
            return;
        }
        if let Some(t) = schema.get("type")
            && !type_matches(t, node)
        {
            self.type_error(node, schema);
            return;
        }
        match &node.kind {
            Kind::Map(_) => self.object(node, schema),
            Kind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let len = self.path.len();
                        self.path.push_index(i);
                        self.node(item, item_schema);
                        self.path.truncate(len);
                    }
                }
            }
            Kind::Scalar(s) => match s.value {
                ScalarValue::Int(_) | ScalarValue::UInt(_) | ScalarValue::Float(_) => {
                    self.number(node, schema)
                }
                ScalarValue::Str => self.string(node, schema),
                _ => {}
            },
        }
    }

    /// Whether `node` has a kind the branch could accept (used to pick the branch of
    /// an `anyOf` that a value was meant for).
    fn accepts(&self, branch: &'static Json, node: &Node) -> bool {
        let target = self.target(branch);
        if let Some(bs) = branches(target) {
            return bs.iter().any(|b| self.accepts(b, node));
        }
        if target.get("const").is_some() || target.get("enum").is_some() {
            return node.as_str().is_some();
        }
        match target.get("type") {
            Some(t) => type_matches(t, node),
            None => true,
        }
    }

    fn leaf(&mut self, name: &str, node: &Node) {
        let value = NodeDe(node);
        let result = match name {
            "ByteSize" => ByteSize::deserialize(value).map(drop),
            "Cpus" => Cpus::deserialize(value).map(drop),
            "Duration" => DurationValue::deserialize(value).map(drop),
            _ => PortMapping::deserialize(value).map(drop),
        };
        if let Err(e) = result {
            let (found, expected) = split_message(&e.to_string(), node);
            self.problem(node, found, expected, None);
        }
    }

    fn enumeration(&mut self, node: &Node, values: &[&str]) {
        if let Some(s) = node.as_str()
            && values.contains(&s)
        {
            return;
        }
        let hint = node
            .as_str()
            .or_else(|| scalar_text(node))
            .and_then(|s| did_you_mean(s, values.iter().copied()))
            .map(|v| format!("did you mean `{v}`?"));
        let found = describe_node(node);
        self.problem(node, found, one_of(values), hint);
    }

    fn type_error(&mut self, node: &Node, schema: &'static Json) {
        let expected = self.expected(schema);
        let target = self.target(schema);
        let hint = self.type_hint(node, target);
        let found = describe_node(node);
        self.problem(node, found, expected, hint);
    }

    fn type_hint(&self, node: &Node, target: &'static Json) -> Option<String> {
        let types = self.types_of(target);
        let has = |t: &str| types.iter().any(|x| x == t);
        match &node.kind {
            Kind::Scalar(s) => match s.value {
                ScalarValue::Null if has("object") || has("array") => {
                    Some("give it a value, or remove the key to use the default".to_string())
                }
                ScalarValue::Int(_)
                | ScalarValue::UInt(_)
                | ScalarValue::Float(_)
                | ScalarValue::Bool(_)
                    if has("string") =>
                {
                    Some(format!("quote it to make it text: `\"{}\"`", s.text))
                }
                ScalarValue::Str if has("boolean") => Some(format!(
                    "YAML 1.2 reads `{}` as text; write `true` or `false`",
                    s.text
                )),
                _ if has("object") => self.keys_hint(target),
                _ if has("array") => Some(format!(
                    "write a list: `[{}]`, or one `- item` per line",
                    s.text
                )),
                _ => None,
            },
            _ if has("object") => self.keys_hint(target),
            _ => None,
        }
    }

    fn keys_hint(&self, target: &'static Json) -> Option<String> {
        let props = self.object_schema(target)?.get("properties")?.as_object()?;
        let keys: Vec<String> = props.iter().map(|(k, _)| format!("`{k}`")).collect();
        Some(format!(
            "this is a mapping with the keys {}",
            keys.join(", ")
        ))
    }

    fn object_schema(&self, target: &'static Json) -> Option<&'static Json> {
        if target.get("properties").is_some() {
            return Some(target);
        }
        branches(target)?
            .iter()
            .map(|b| self.target(b))
            .find_map(|b| self.object_schema(b))
    }

    /// The JSON types a schema accepts, through `$ref`s and branches.
    fn types_of(&self, schema: &'static Json) -> Vec<String> {
        let target = self.target(schema);
        if let Some(bs) = branches(target) {
            return bs.iter().flat_map(|b| self.types_of(b)).collect();
        }
        if target.get("const").is_some() || target.get("enum").is_some() {
            return vec!["string".into()];
        }
        match target.get("type") {
            Some(Json::Str(t)) => vec![t.to_string()],
            Some(Json::Arr(ts)) => ts
                .iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// "What would be valid here", in words.
    fn expected(&self, schema: &'static Json) -> String {
        if let Some((name, def)) = self.resolve(schema) {
            if LEAF_TYPES.contains(&name) {
                return leaf_expected(name).to_string();
            }
            return self.expected(def);
        }
        if let Some(bs) = branches(schema) {
            if let Some(values) = consts(bs) {
                return one_of(&values);
            }
            let mut parts: Vec<String> = Vec::new();
            for b in bs {
                if self.target(b).get("type").and_then(Json::as_str) == Some("null") {
                    continue;
                }
                let e = self.expected(b);
                if !parts.contains(&e) {
                    parts.push(e);
                }
            }
            return parts.join(" or ");
        }
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            let values: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
            return one_of(&values);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Json::Str(t)) => vec![*t],
            Some(Json::Arr(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => return "a valid value".into(),
        };
        let parts: Vec<String> = types
            .iter()
            .filter(|t| **t != "null" || types.len() == 1)
            .map(|t| match *t {
                "string" => "a string".to_string(),
                "integer" => integer_expected(schema),
                "number" => "a number".to_string(),
                "boolean" => "`true` or `false`".to_string(),
                "object" => "a mapping".to_string(),
                "array" => "a list".to_string(),
                _ => "nothing (an empty value)".to_string(),
            })
            .collect();
        parts.join(" or ")
    }

    fn object(&mut self, node: &Node, schema: &'static Json) {
        let props = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        for entry in node.entries() {
            let len = self.path.len();
            self.path.push_key(&entry.key);
            match props.and_then(|p| member(p, &entry.key)) {
                Some(prop) => self.node(&entry.value, prop),
                None => match additional {
                    Some(Json::Bool(false)) => {
                        let known: Vec<&str> = props
                            .map(|p| p.iter().map(|(k, _)| *k).collect())
                            .unwrap_or_default();
                        // A key that exists one level down was put in the wrong
                        // place; that beats a one-letter typo of a sibling.
                        let hint = self.belongs_under(&entry.key, props).or_else(|| {
                            did_you_mean(&entry.key, known.iter().copied())
                                .map(|k| format!("did you mean `{k}`?"))
                        });
                        let p = Problem::new(
                            entry.key_start,
                            self.path.clone(),
                            format!("unknown key `{}`", entry.key),
                            one_of(&known),
                            hint,
                        )
                        .with_end(entry.key_end);
                        self.problems.push(p);
                    }
                    Some(extra @ Json::Obj(_)) => self.node(&entry.value, extra),
                    _ => {}
                },
            }
            self.path.truncate(len);
        }
        let required = schema.get("required").and_then(Json::as_array);
        for key in required.into_iter().flatten().filter_map(Json::as_str) {
            if node.entry(key).is_some() {
                continue;
            }
            let prop = props.and_then(|p| member(p, key));
            let what = prop
                .and_then(|p| p.get("description"))
                .and_then(Json::as_str)
                .map(first_sentence)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            let hint = prop.and_then(|p| {
                let values = consts(branches(self.target(p))?)?;
                Some(format!("add `{key}: {}`; {}", values[0], one_of(&values)))
            });
            let p = Problem::new(
                node.start,
                self.path.with_key(key),
                format!("a mapping without `{key}`"),
                format!("the required key `{key}`{what}"),
                hint,
            );
            self.problems.push(p);
        }
    }

    /// For an unknown key, says which sibling mapping has it (`provider` written at
    /// the top level instead of under `deployment`).
    fn belongs_under(&self, key: &str, props: Option<Props>) -> Option<String> {
        for (name, prop) in props? {
            let target = self.target(prop);
            if let Some(obj) = self.object_schema(target)
                && obj
                    .get("properties")
                    .and_then(Json::as_object)
                    .is_some_and(|p| member(p, key).is_some())
            {
                return Some(format!("`{key}` belongs under `{name}`"));
            }
        }
        None
    }

    fn number(&mut self, node: &Node, schema: &'static Json) {
        let Kind::Scalar(s) = &node.kind else { return };
        let v = match s.value {
            ScalarValue::Int(i) => i as f64,
            ScalarValue::UInt(u) => u as f64,
            ScalarValue::Float(f) => f,
            _ => return,
        };
        if !v.is_finite() {
            let expected = self.expected(schema);
            self.problem(
                node,
                format!("`{}`", s.text),
                format!(
                    "a finite {}",
                    expected.trim_start_matches("a ").trim_start_matches("an ")
                ),
                None,
            );
            return;
        }
        let (min, max) = bounds(schema);
        let too_small = min.is_some_and(|m| v < m)
            || schema
                .get("exclusiveMinimum")
                .and_then(Json::as_f64)
                .is_some_and(|m| v <= m);
        let too_large = max.is_some_and(|m| v > m);
        if too_small || too_large {
            let found = if v < 0.0 && min.is_some_and(|m| m >= 0.0) {
                format!("`{}`, a negative number", s.text)
            } else {
                format!("`{}`", s.text)
            };
            let expected = self.expected(schema);
            self.problem(node, found, expected, None);
        }
    }

    fn string(&mut self, node: &Node, schema: &'static Json) {
        if schema.get("pattern").is_some() {
            return;
        }
        let Some(text) = node.as_str() else { return };
        let n = text.chars().count() as u64;
        let min = schema
            .get("minLength")
            .and_then(Json::as_f64)
            .map(|m| m as u64);
        let max = schema
            .get("maxLength")
            .and_then(Json::as_f64)
            .map(|m| m as u64);
        if min.is_some_and(|m| n < m) {
            let found = if n == 0 {
                "an empty string".to_string()
            } else {
                format!("`{text}` ({n} characters)")
            };
            self.problem(
                node,
                found,
                format!("at least {} characters", min.unwrap_or(0)),
                None,
            );
        } else if let Some(m) = max.filter(|m| n > *m) {
            self.problem(
                node,
                format!("a string of {n} characters"),
                format!("at most {m} characters"),
                None,
            );
        }
    }
}

/// The property `key` of a `properties` object.
fn member(props: Props, key: &str) -> Option<&'static Json> {
    props.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// `anyOf` or `oneOf`.
fn branches(schema: &'static Json) -> Option<&'static [Json]> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Json::as_array)
}

/// The values when every branch is a `const` (how schemars writes a documented enum).
fn consts(branches: &'static [Json]) -> Option<Vec<&'static str>> {
    branches
        .iter()
        .map(|b| b.get("const").and_then(Json::as_str))
        .collect()
}

fn type_matches(t: &Json, node: &Node) -> bool {
    match t {
        Json::Str(t) => kind_is(t, node),
        Json::Arr(ts) => ts.iter().filter_map(Json::as_str).any(|t| kind_is(t, node)),
        _ => true,
    }
}

fn kind_is(t: &str, node: &Node) -> bool {
    match &node.kind {
        Kind::Map(_) => t == "object",
        Kind::Seq(_) => t == "array",
        Kind::Scalar(s) => match s.value {
            ScalarValue::Null => t == "null",
            ScalarValue::Bool(_) => t == "boolean",
            ScalarValue::Int(_) | ScalarValue::UInt(_) => t == "integer" || t == "number",
            ScalarValue::Float(_) => t == "number",
            ScalarValue::Str => t == "string",
        },
    }
}

/// Bounds from `minimum`/`maximum` and from schemars' integer `format`s.
fn bounds(schema: &Json) -> (Option<f64>, Option<f64>) {
    let (fmin, fmax) = match schema.get("format").and_then(Json::as_str) {
        Some("uint8") => (Some(0.0), Some(u8::MAX as f64)),
        Some("uint16") => (Some(0.0), Some(u16::MAX as f64)),
        Some("uint32") => (Some(0.0), Some(u32::MAX as f64)),
        Some("uint64" | "uint") => (Some(0.0), None),
        Some("int32") => (Some(i32::MIN as f64), Some(i32::MAX as f64)),
        _ => (None, None),
    };
    let min = schema.get("minimum").and_then(Json::as_f64).or(fmin);
    let max = schema.get("maximum").and_then(Json::as_f64).or(fmax);
    (min, max)
}

fn integer_expected(schema: &Json) -> String {
    let (min, max) = bounds(schema);
    // u32::MAX as an upper bound is the type's limit, not a rule worth repeating.
    let max = max.filter(|m| *m < u32::MAX as f64);
    match (min, max) {
        (Some(lo), Some(hi)) => format!("an integer from {lo} to {hi}"),
        (Some(lo), None) => format!("an integer of at least {lo}"),
        (None, Some(hi)) => format!("an integer of at most {hi}"),
        (None, None) => "an integer".to_string(),
    }
}

fn leaf_expected(name: &str) -> &'static str {
    match name {
        "ByteSize" => "a size such as `512MiB`, `2GiB` or `10GB`",
        "Cpus" => "a number of CPU cores greater than 0, e.g. `2` or `0.5`",
        "Duration" => "a duration such as `90s`, `30m`, `12h` or `1h 30m`",
        _ => "a port such as `8080`, `\"8080:80\"` or `{container: 80, host: 8080}`",
    }
}

fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.as_slice() {
        [] => "nothing here".to_string(),
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

fn first_sentence(s: &str) -> String {
    let s = s.split("\n\n").next().unwrap_or(s).replace('\n', " ");
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    let sentence = s[..end].trim_end_matches('.');
    let mut chars = sentence.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn scalar_text(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar(s) => Some(&s.text),
        _ => None,
    }
}

/// Splits a quantity parser's message (`found X; expected Y`, or serde's
/// `invalid type: X, expected Y`) into its two halves.
fn split_message(msg: &str, node: &Node) -> (String, String) {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let expected = rest
                .split_once(", expected ")
                .map(|(_, e)| e)
                .unwrap_or(rest);
            return (describe_node(node), expected.to_string());
        }
    }
    match msg.split_once("; expected ") {
        Some((found, expected)) => (
            found.strip_prefix("found ").unwrap_or(found).to_string(),
            expected.to_string(),
        ),
        None => (
            msg.strip_prefix("found ").unwrap_or(msg).to_string(),
            "a valid value".into(),
        ),
    }
}

/// What a node is, in words: "the string `abc`", "a list", "an empty value".
pub(crate) fn describe_node(node: &Node) -> String {
    match &node.kind {
        Kind::Map(_) => "a mapping".into(),
        Kind::Seq(_) => "a list".into(),
        Kind::Scalar(s) => {
            let text = shorten(&s.text);
            match s.value {
                ScalarValue::Null if s.text.is_empty() => "an empty value".into(),
                ScalarValue::Null => format!("`{text}` (null)"),
                ScalarValue::Bool(_) => format!("the boolean `{text}`"),
                ScalarValue::Int(_) | ScalarValue::UInt(_) => format!("the integer `{text}`"),
                ScalarValue::Float(_) => format!("the number `{text}`"),
                ScalarValue::Str if s.text.is_empty() => "an empty string".into(),
                ScalarValue::Str => format!("the string `{text}`"),
            }
        }
    }
}

fn shorten(s: &str) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() > 40 {
        let cut: String = one_line.chars().take(37).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely typo:
/// same letters ignoring case and `_`/`-` (camelCase, kebab-case), or a small edit
/// distance relative to the word's length.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(word);
    if w.is_empty() {
        return None;
    }
    let limit = match w.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    // Ties on distance go to the candidate sharing the longer prefix (Jaro-Winkler):
    // `gpus` is `gpu`, not `cpus`.
    let mut best: Option<(usize, f64, &str)> = None;
    for c in candidates {
        let n = norm(c);
        let d = strsim::damerau_levenshtein(&w, &n);
        if d > limit {
            continue;
        }
        let jw = strsim::jaro_winkler(&w, &n);
        if best.is_none_or(|(bd, bjw, _)| d < bd || (d == bd && jw > bjw)) {
            best = Some((d, jw, c));
        }
    }
    best.map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_only_when_close() {
        let keys = ["cpus", "memory", "disk", "gpu"];
        assert_eq!(did_you_mean("memroy", keys), Some("memory"));
        assert_eq!(did_you_mean("Memory", keys), Some("memory"));
        assert_eq!(did_you_mean("gpus", keys), Some("gpu"));
        assert_eq!(did_you_mean("bandwidth", keys), None);
        assert_eq!(
            did_you_mean("nodeSelector", ["namespace", "node_selector"]),
            Some("node_selector")
        );
        assert_eq!(did_you_mean("dokcer", ["docker", "devpod"]), Some("docker"));
        assert_eq!(did_you_mean("x", ["docker", "fly"]), None);
    }

    #[test]
    fn first_sentence_of_a_doc_comment() {
        assert_eq!(
            first_sentence("The provider that runs the environment."),
            "the provider that runs the environment"
        );
        assert_eq!(
            first_sentence("Name of the environment. A DNS label."),
            "name of the environment"
        );
    }
}
