//! A small positioned YAML tree built from `saphyr-parser` events.
//!
//! serde's YAML deserialisers forget where a value was written, so the loader builds
//! its own tree: every node and every mapping key keeps its line and column, which is
//! what lets each diagnostic point at the offending text. The tree also catches what a
//! plain deserialiser silently accepts: duplicate keys, tags, and more than one
//! document. Scalars are resolved with the YAML 1.2 core schema, so `yes`, `on` and
//! `no` stay strings (YAML 1.1 read them as booleans).

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::diagnostic::{Mark, PathBuf, Problem};

/// How many nodes alias expansion may produce, so a "billion laughs" file fails fast
/// instead of exhausting memory.
const MAX_NODES: usize = 100_000;

/// How deeply collections may nest. sindri.yaml needs about six levels; the limit
/// keeps a hostile file from exhausting the stack of the recursive checks.
const MAX_DEPTH: usize = 64;

/// A node of the tree with the span it was written at.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub start: Mark,
    pub end: Mark,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A scalar: its text as written (after YAML unescaping) and its resolved value.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub text: String,
    pub value: ScalarValue,
    /// Written without quotes or block indicators.
    pub plain: bool,
}

/// A scalar resolved with the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ScalarValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// The value is the scalar's text.
    Str,
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_start: Mark,
    pub key_end: Mark,
    pub value: Node,
}

impl Node {
    /// The value under `key` if this is a mapping (the first, if the key is repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// The entry for `key` if this is a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    /// The entries if this is a mapping.
    pub fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items if this is a sequence.
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The text if this is a scalar resolved as a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(Scalar {
                text,
                value: ScalarValue::Str,
                ..
            }) => Some(text),
            _ => None,
        }
    }

    /// True for `~`, `null` and empty values.
    pub fn is_null(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Scalar(Scalar {
                value: ScalarValue::Null,
                ..
            })
        )
    }

    /// Converts to JSON. Non-finite floats have no JSON form; they become null.
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar(s) => match s.value {
                ScalarValue::Null => Value::Null,
                ScalarValue::Bool(b) => Value::Bool(b),
                ScalarValue::Int(i) => Value::from(i),
                ScalarValue::UInt(u) => Value::from(u),
                ScalarValue::Float(f) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                ScalarValue::Str => Value::String(s.text.clone()),
            },
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for e in entries {
                    // The first occurrence wins, matching `get`; repeats are reported.
                    if !map.contains_key(&e.key) {
                        map.insert(e.key.clone(), e.value.to_json());
                    }
                }
                Value::Object(map)
            }
        }
    }

    /// How many nodes this subtree holds (for the alias expansion budget).
    fn size(&self) -> usize {
        match &self.kind {
            Kind::Scalar(_) => 1,
            Kind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Kind::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// The outcome of parsing: the document's root (if it has any content) and the
/// problems found on the way. When `fatal` is set the tree is incomplete and must not
/// be checked further.
pub(crate) struct Parsed {
    pub root: Option<Node>,
    pub problems: Vec<Problem>,
    pub fatal: bool,
}

fn mark(m: saphyr_parser::Marker) -> Mark {
    Mark {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

/// A collection being built.
enum Frame {
    Seq {
        start: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Mark,
        anchor: usize,
        entries: Vec<Entry>,
        /// Mappings merged in with `<<`; explicit keys win over them.
        merges: Vec<Node>,
        key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    problems: Vec<Problem>,
    nodes: usize,
}

/// Parses `source` into a positioned tree.
pub(crate) fn parse(source: &str) -> Parsed {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        problems: Vec::new(),
        nodes: 0,
    };
    let mut parser = Parser::new_from_str(source);
    let mut documents = 0;
    while let Some(event) = parser.next_event() {
        let (event, span) = match event {
            Ok(ev) => ev,
            Err(e) => {
                let at = mark(*e.marker());
                let path = b.path();
                b.problems.push(syntax_problem(e.info(), at, path, source));
                return b.finish(true);
            }
        };
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    b.problems.push(Problem::new(
                        mark(span.start),
                        PathBuf::root(),
                        "a second YAML document (after `---`)",
                        "one document per sindri.yaml",
                        Some("remove the `---` line and everything after it, or move it into its own file".into()),
                    ));
                    return b.finish(false);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = b.scalar(text, style, tag, span);
                b.complete(node, anchor);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if b.stack.len() >= MAX_DEPTH => {
                let path = b.path();
                b.problems.push(Problem::new(
                    mark(span.start),
                    path,
                    format!("collections nested more than {MAX_DEPTH} levels deep"),
                    "a configuration of reasonable depth",
                    None,
                ));
                return b.finish(true);
            }
            Event::SequenceStart(anchor, tag) => {
                b.check_collection_tag(tag.as_deref(), "seq", span);
                b.stack.push(Frame::Seq {
                    start: mark(span.start),
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                b.check_collection_tag(tag.as_deref(), "map", span);
                b.stack.push(Frame::Map {
                    start: mark(span.start),
                    anchor,
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    start,
                    anchor,
                    items,
                }) = b.stack.pop()
                {
                    let node = Node {
                        kind: Kind::Seq(items),
                        start,
                        end: mark(span.end),
                    };
                    b.complete(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    start,
                    anchor,
                    mut entries,
                    merges,
                    ..
                }) = b.stack.pop()
                {
                    apply_merges(&mut entries, merges);
                    let node = Node {
                        kind: Kind::Map(entries),
                        start,
                        end: mark(span.end),
                    };
                    b.complete(node, anchor);
                }
            }
            Event::Alias(id) => {
                let Some(node) = b.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    // The parser refuses unknown anchors itself; nothing to add.
                    continue;
                };
                let node = node.1.clone();
                b.nodes += node.size();
                if b.nodes > MAX_NODES {
                    b.problems.push(Problem::new(
                        mark(span.start),
                        b.path(),
                        "an alias that expands the document past 100000 nodes",
                        "a configuration of reasonable size",
                        Some(
                            "aliases referring to aliases multiply; inline the values instead"
                                .into(),
                        ),
                    ));
                    return b.finish(true);
                }
                // An alias is written here, but its content (and any problem in it) is
                // where the anchor was written, so the content keeps its positions.
                b.complete(node, 0);
            }
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    b.finish(false)
}

/// Adds the entries of `<<` merges that are not written explicitly, in merge order
/// (an earlier merge wins over a later one, as in YAML 1.1's merge key type).
fn apply_merges(entries: &mut Vec<Entry>, merges: Vec<Node>) {
    for merged in merges {
        let sources: Vec<Node> = match merged.kind {
            Kind::Map(_) => vec![merged],
            Kind::Seq(items) => items,
            Kind::Scalar(_) => Vec::new(),
        };
        for source in sources {
            if let Kind::Map(more) = source.kind {
                for e in more {
                    if !entries.iter().any(|x| x.key == e.key) {
                        entries.push(e);
                    }
                }
            }
        }
    }
}

fn syntax_problem(info: &str, at: Mark, path: PathBuf, source: &str) -> Problem {
    let line = source
        .lines()
        .nth(at.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let hint = if info.contains("tab") || line.starts_with('\t') {
        Some("indent with spaces; YAML does not allow tabs for indentation".to_string())
    } else if info.contains("mapping values are not allowed") {
        Some("a value containing `: ` must be quoted, or the line is indented deeper than its siblings".to_string())
    } else if info.contains("quoted scalar") {
        Some("a quoted string is not closed on this line; add the closing quote".to_string())
    } else if info.contains("did not find expected '-'")
        || info.contains("did not find expected key")
    {
        Some(
            "check the indentation: items of one list or mapping must start in the same column"
                .to_string(),
        )
    } else if info.contains("unexpected character") {
        Some("values starting with `@` or a backtick must be quoted".to_string())
    } else {
        None
    };
    Problem::new(
        at,
        path,
        format!("invalid YAML ({info})"),
        "valid YAML 1.2",
        hint,
    )
}

impl Builder {
    fn finish(self, fatal: bool) -> Parsed {
        Parsed {
            root: if fatal { None } else { self.root },
            problems: self.problems,
            fatal,
        }
    }

    /// The path of the node about to be completed, from the open collections.
    fn path(&self) -> PathBuf {
        let mut path = PathBuf::root();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path.push_index(items.len()),
                Frame::Map { key: Some(k), .. } => {
                    path.push_key(key_text(k).unwrap_or("?"));
                }
                Frame::Map { key: None, .. } => {}
            }
        }
        path
    }

    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: ScalarStyle,
        tag: Option<Cow<'_, Tag>>,
        span: Span,
    ) -> Node {
        let start = mark(span.start);
        let end = mark(span.end);
        let text = text.into_owned();
        let value = match tag.as_deref() {
            None if style == ScalarStyle::Plain => resolve_plain(&text),
            None => ScalarValue::Str,
            Some(tag) => self.resolve_tagged(&text, tag, start),
        };
        Node {
            kind: Kind::Scalar(Scalar {
                text,
                value,
                plain: style == ScalarStyle::Plain,
            }),
            start,
            end,
        }
    }

    fn resolve_tagged(&mut self, text: &str, tag: &Tag, at: Mark) -> ScalarValue {
        let core = tag.is_yaml_core_schema();
        let resolved = match (core, tag.suffix.as_str()) {
            (true, "str") => Some(ScalarValue::Str),
            (true, "null") => {
                matches!(resolve_plain(text), ScalarValue::Null).then_some(ScalarValue::Null)
            }
            (true, "bool") => {
                matches!(resolve_plain(text), ScalarValue::Bool(_)).then(|| resolve_plain(text))
            }
            (true, "int") => matches!(
                resolve_plain(text),
                ScalarValue::Int(_) | ScalarValue::UInt(_)
            )
            .then(|| resolve_plain(text)),
            (true, "float") => match resolve_plain(text) {
                ScalarValue::Float(f) => Some(ScalarValue::Float(f)),
                ScalarValue::Int(i) => Some(ScalarValue::Float(i as f64)),
                ScalarValue::UInt(u) => Some(ScalarValue::Float(u as f64)),
                _ => None,
            },
            _ => {
                let path = self.path();
                self.problems.push(Problem::new(
                    at,
                    path,
                    format!("the tag `{tag}`"),
                    "plain YAML without application tags",
                    Some("remove the tag; sindri.yaml only uses the standard tags `!!str`, `!!int`, `!!float`, `!!bool` and `!!null`".into()),
                ));
                return ScalarValue::Str;
            }
        };
        match resolved {
            Some(v) => v,
            None => {
                let path = self.path();
                self.problems.push(Problem::new(
                    at,
                    path,
                    format!("`{text}` tagged `{tag}`"),
                    format!("a value that is a valid `!!{}`", tag.suffix),
                    None,
                ));
                ScalarValue::Str
            }
        }
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, ok: &str, span: Span) {
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && tag.suffix == ok)
        {
            let path = self.path();
            self.problems.push(Problem::new(
                mark(span.start),
                path,
                format!("the tag `{tag}`"),
                "plain YAML without application tags",
                Some("remove the tag".into()),
            ));
        }
    }

    /// Places a finished node into its parent (or makes it the root).
    fn complete(&mut self, node: Node, anchor: usize) {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let key = match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
                return;
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                return;
            }
            Some(Frame::Map { key, .. }) => match key.take() {
                None => {
                    *key = Some(node);
                    return;
                }
                Some(k) => k,
            },
        };
        // A `key: value` pair is complete. The path (costly to build) is only needed
        // for a problem, so it is built with the key put back in place.
        let Some(text) = key_text(&key).map(str::to_owned) else {
            let found = match &key.kind {
                Kind::Seq(_) => "a list used as a key",
                _ => "a mapping used as a key",
            };
            let path = self.path();
            self.problems.push(Problem::new(
                key.start,
                path,
                found,
                "a plain key such as `name`",
                None,
            ));
            return;
        };
        let is_merge = text == "<<" && matches!(&key.kind, Kind::Scalar(s) if s.plain);
        let first_line = match self.stack.last() {
            Some(Frame::Map { entries, .. }) if !is_merge => entries
                .iter()
                .find(|e| e.key == text)
                .map(|e| e.key_start.line),
            _ => None,
        };
        let mergeable = match &node.kind {
            Kind::Map(_) => true,
            Kind::Seq(items) => items.iter().all(|i| matches!(i.kind, Kind::Map(_))),
            Kind::Scalar(_) => false,
        };
        if (is_merge && !mergeable) || first_line.is_some() {
            let (start, end) = (key.start, key.end);
            if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
                *slot = Some(key);
            }
            let path = self.path();
            let problem = match first_line {
                Some(first_line) => Problem::new(
                    start,
                    path,
                    format!("duplicate key `{text}` (first written on line {first_line})"),
                    "each key once per mapping",
                    Some(format!(
                        "remove one of the two `{text}` entries (lines {first_line} and {})",
                        start.line
                    )),
                )
                .with_end(end),
                None => Problem::new(
                    node.start,
                    path,
                    crate::validate::describe_node(&node),
                    "a mapping (or a list of mappings) to merge with `<<`",
                    Some("write `<<: *anchor` where `&anchor` names a mapping".into()),
                ),
            };
            self.problems.push(problem);
            let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() else {
                return;
            };
            let Some(k) = slot.take() else { return };
            if is_merge {
                return;
            }
            return self.insert(text, k, node);
        }
        if is_merge {
            if let Some(Frame::Map { merges, .. }) = self.stack.last_mut() {
                merges.push(node);
            }
            return;
        }
        self.insert(text, key, node);
    }

    fn insert(&mut self, text: String, key: Node, value: Node) {
        if let Some(Frame::Map { entries, .. }) = self.stack.last_mut() {
            entries.push(Entry {
                key: text,
                key_start: key.start,
                key_end: key.end,
                value,
            });
        }
    }
}

/// The text of a scalar key; `None` for a collection used as a key.
fn key_text(k: &Node) -> Option<&str> {
    match &k.kind {
        Kind::Scalar(s) => Some(&s.text),
        _ => None,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
pub(crate) fn resolve_plain(text: &str) -> ScalarValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarValue::Null,
        "true" | "True" | "TRUE" => return ScalarValue::Bool(true),
        "false" | "False" | "FALSE" => return ScalarValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return ScalarValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return ScalarValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return ScalarValue::Float(f64::NAN),
        _ => {}
    }
    let bytes = text.as_bytes();
    let first = bytes[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return ScalarValue::Str;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return int_value(u64::from_str_radix(hex, 16).ok(), text);
        }
        return ScalarValue::Str;
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
            return int_value(u64::from_str_radix(oct, 8).ok(), text);
        }
        return ScalarValue::Str;
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return ScalarValue::Int(i);
        }
        if let Ok(u) = digits.parse::<u64>()
            && !text.starts_with('-')
        {
            return ScalarValue::UInt(u);
        }
        return text
            .parse::<f64>()
            .map(ScalarValue::Float)
            .unwrap_or(ScalarValue::Str);
    }
    if is_core_float(digits) {
        return text
            .parse::<f64>()
            .map(ScalarValue::Float)
            .unwrap_or(ScalarValue::Str);
    }
    ScalarValue::Str
}

fn int_value(v: Option<u64>, text: &str) -> ScalarValue {
    match v {
        Some(u) => i64::try_from(u).map_or(ScalarValue::UInt(u), ScalarValue::Int),
        None => text
            .parse::<f64>()
            .map(ScalarValue::Float)
            .unwrap_or(ScalarValue::Str),
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the core schema's float form
/// (sign already stripped).
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.bytes().all(|c| c.is_ascii_digit())
                && frac.bytes().all(|c| c.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        for s in ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"] {
            assert_eq!(resolve_plain(s), ScalarValue::Str, "{s}");
        }
        assert_eq!(resolve_plain("true"), ScalarValue::Bool(true));
        assert_eq!(resolve_plain("FALSE"), ScalarValue::Bool(false));
    }

    #[test]
    fn core_schema_numbers() {
        assert_eq!(resolve_plain("8080"), ScalarValue::Int(8080));
        assert_eq!(resolve_plain("-1"), ScalarValue::Int(-1));
        assert_eq!(resolve_plain("0x1F"), ScalarValue::Int(31));
        assert_eq!(resolve_plain("0o17"), ScalarValue::Int(15));
        assert_eq!(resolve_plain("0.5"), ScalarValue::Float(0.5));
        assert_eq!(resolve_plain(".5"), ScalarValue::Float(0.5));
        assert_eq!(resolve_plain("1e3"), ScalarValue::Float(1000.0));
        assert_eq!(
            resolve_plain("18446744073709551615"),
            ScalarValue::UInt(u64::MAX)
        );
        // Not numbers in YAML 1.2: sexagesimal, underscores, versions.
        for s in ["1:30", "1_000", "24.04.1", "2GiB", "0b101", "+", "-", "."] {
            assert_eq!(resolve_plain(s), ScalarValue::Str, "{s}");
        }
        assert_eq!(resolve_plain("~"), ScalarValue::Null);
        assert_eq!(resolve_plain(""), ScalarValue::Null);
    }

    #[test]
    fn positions_are_one_based() {
        let p = parse("a: 1\nbb:\n  c: x\n");
        let root = p.root.unwrap();
        let c = root.get("bb").unwrap().entry("c").unwrap();
        assert_eq!((c.key_start.line, c.key_start.col), (3, 3));
        assert_eq!((c.value.start.line, c.value.start.col), (3, 6));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let p = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n");
        assert!(p.problems.is_empty());
        let root = p.root.unwrap();
        let other = root.get("other").unwrap().to_json();
        assert_eq!(other, serde_json::json!({"y": 3, "x": 1}));
        assert_eq!(
            root.get("list").unwrap().to_json(),
            serde_json::json!([{"x": 1, "y": 2}])
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        let p = parse(&src);
        assert!(p.fatal);
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].found.contains("nested more than 64 levels"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let p = parse(&src);
        assert!(p.fatal);
        assert!(p.problems[0].found.contains("100000 nodes"));
    }
}
