//! Protocol Buffers service definitions as a Connect-with-JSON contract.
//!
//! The `.proto` files are parsed (messages, nested messages, enums, oneofs, maps,
//! services) and each message becomes a JSON Schema following the proto3 JSON
//! mapping: lowerCamelCase field names (the original names are accepted too), 64-bit
//! integers as numbers or decimal strings, bytes as base64, enums by name or number,
//! at most one field of a oneof, and no unknown fields.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// An RPC.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// `/package.Service/Method`.
    pub path: String,
    /// Full name of the request message.
    pub input: String,
    /// Full name of the response message.
    pub output: String,
    /// The client sends a stream.
    pub client_streaming: bool,
    /// The server answers with a stream.
    pub server_streaming: bool,
}

#[derive(Debug, Clone)]
enum Ty {
    Scalar(String),
    Named(String),
    Map(String, Box<Ty>),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Ty,
    repeated: bool,
    oneof: Option<String>,
}

#[derive(Debug, Default)]
struct Msg {
    fields: Vec<Field>,
}

/// Parsed `.proto` files.
pub struct Protos {
    rpcs: Vec<Rpc>,
    defs: Map<String, Value>,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Protos {
    /// Parses the files.
    pub fn load(files: &[&Path]) -> Protos {
        let mut messages: BTreeMap<String, (String, Msg)> = BTreeMap::new();
        let mut enums: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut rpcs_raw: Vec<(String, String, String, bool, String, bool)> = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            let toks = tokenize(&text);
            let mut p = Parser {
                toks,
                pos: 0,
                package: String::new(),
            };
            p.file(&mut messages, &mut enums, &mut rpcs_raw);
        }
        let resolve = |scope: &str, name: &str| -> String {
            if let Some(abs) = name.strip_prefix('.') {
                return abs.to_string();
            }
            let mut s = scope.to_string();
            loop {
                let candidate = if s.is_empty() {
                    name.to_string()
                } else {
                    format!("{s}.{name}")
                };
                if messages.contains_key(&candidate) || enums.contains_key(&candidate) {
                    return candidate;
                }
                match s.rfind('.') {
                    Some(i) => s.truncate(i),
                    None if !s.is_empty() => s.clear(),
                    None => return name.to_string(),
                }
            }
        };
        let mut defs = Map::new();
        for (full, enum_values) in &enums {
            defs.insert(
                full.clone(),
                json!({"anyOf": [{"enum": enum_values}, {"type": "integer"}]}),
            );
        }
        defs.insert(
            "google.protobuf.Timestamp".into(),
            json!({"type": "string"}),
        );
        for (full, (scope, msg)) in &messages {
            let mut props = Map::new();
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in &msg.fields {
                let one = ty_schema(&f.ty, &|n| resolve(scope, n));
                let s = if f.repeated {
                    json!({"type": "array", "items": one})
                } else {
                    one
                };
                let camel = lower_camel(&f.name);
                props.insert(camel.clone(), s.clone());
                if camel != f.name {
                    props.insert(f.name.clone(), s);
                }
                if let Some(g) = &f.oneof {
                    let names = groups.entry(g.clone()).or_default();
                    names.push(camel.clone());
                    if camel != f.name {
                        names.push(f.name.clone());
                    }
                }
            }
            let mut s =
                json!({"type": "object", "additionalProperties": false, "properties": props});
            let mut all = Vec::new();
            for names in groups.values() {
                let mut pairs = Vec::new();
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        pairs.push(json!({"required": [a, b]}));
                    }
                }
                if !pairs.is_empty() {
                    all.push(json!({"not": {"anyOf": pairs}}));
                }
            }
            if !all.is_empty() {
                s["allOf"] = Value::Array(all);
            }
            defs.insert(full.clone(), s);
        }
        let rpcs = rpcs_raw
            .into_iter()
            .map(|(pkg, service, method, cs, input, ss)| {
                let scope = pkg.clone();
                let (input_name, output_name) = input.split_once('|').unwrap_or((&input, ""));
                Rpc {
                    path: format!("/{pkg}.{service}/{method}"),
                    input: resolve(&scope, input_name),
                    output: resolve(&scope, output_name),
                    client_streaming: cs,
                    server_streaming: ss,
                }
            })
            .collect();
        Protos {
            rpcs,
            defs,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The RPC served at `path`.
    pub fn rpc(&self, path: &str) -> Option<&Rpc> {
        self.rpcs.iter().find(|r| r.path == path)
    }

    /// Problems with `value` as a JSON message of type `message`.
    pub fn errors(&self, message: &str, value: &Value) -> Vec<String> {
        let v = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entry(message.to_string())
                .or_insert_with(|| {
                    assert!(
                        self.defs.contains_key(message),
                        "no message {message} in the .proto files"
                    );
                    let doc = json!({"$defs": self.defs, "$ref": format!("#/$defs/{message}")});
                    Arc::new(
                        jsonschema::validator_for(&doc)
                            .unwrap_or_else(|e| panic!("schema of {message}: {e}")),
                    )
                })
                .clone()
        };
        v.iter_errors(value)
            .map(|e| format!("{message}{} {e}", e.instance_path()))
            .collect()
    }
}

fn lower_camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn ty_schema(t: &Ty, resolve: &dyn Fn(&str) -> String) -> Value {
    match t {
        Ty::Scalar(s) => match s.as_str() {
            "string" => json!({"type": "string"}),
            "bool" => json!({"type": "boolean"}),
            "int32" | "sint32" | "sfixed32" => json!({"type": "integer"}),
            "uint32" | "fixed32" => json!({"type": "integer", "minimum": 0}),
            "int64" | "sint64" | "sfixed64" => {
                json!({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}]})
            }
            "uint64" | "fixed64" => {
                json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]})
            }
            "float" | "double" => {
                json!({"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]})
            }
            "bytes" => json!({"type": "string", "pattern": "^[A-Za-z0-9+/]*={0,2}$"}),
            other => panic!("unknown scalar type {other}"),
        },
        Ty::Named(n) => json!({"$ref": format!("#/$defs/{}", resolve(n))}),
        Ty::Map(_, v) => json!({"type": "object", "additionalProperties": ty_schema(v, resolve)}),
    }
}

const SCALARS: [&str; 15] = [
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

fn ty_of(name: &str) -> Ty {
    if SCALARS.contains(&name) {
        Ty::Scalar(name.to_string())
    } else {
        Ty::Named(name.to_string())
    }
}

fn tokenize(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let q = c;
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != q {
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(format!("\"{s}\""));
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let mut s = String::new();
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '.') {
                s.push(b[i]);
                i += 1;
            }
            out.push(s);
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
    package: String,
}

type RawRpc = (String, String, String, bool, String, bool);

impl Parser {
    fn peek(&self) -> &str {
        self.toks.get(self.pos).map(String::as_str).unwrap_or("")
    }

    fn next(&mut self) -> String {
        let t = self.toks.get(self.pos).cloned().unwrap_or_default();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: &str) {
        let got = self.next();
        assert_eq!(
            got, t,
            "proto parse error: expected `{t}`, found `{got}` at token {}",
            self.pos
        );
    }

    fn skip_statement(&mut self) {
        let mut depth = 0;
        loop {
            let t = self.next();
            match t.as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth <= 0 {
                        return;
                    }
                }
                ";" if depth == 0 => return,
                "" => return,
                _ => {}
            }
        }
    }

    fn file(
        &mut self,
        msgs: &mut BTreeMap<String, (String, Msg)>,
        enums: &mut BTreeMap<String, Vec<String>>,
        rpcs: &mut Vec<RawRpc>,
    ) {
        while self.pos < self.toks.len() {
            match self.peek() {
                "package" => {
                    self.next();
                    self.package = self.next();
                    self.expect(";");
                }
                "message" => {
                    self.next();
                    let scope = self.package.clone();
                    self.message(&scope, msgs, enums);
                }
                "enum" => {
                    self.next();
                    let scope = self.package.clone();
                    self.enumeration(&scope, enums);
                }
                "service" => {
                    self.next();
                    self.service(rpcs);
                }
                _ => self.skip_statement(),
            }
        }
    }

    fn message(
        &mut self,
        scope: &str,
        msgs: &mut BTreeMap<String, (String, Msg)>,
        enums: &mut BTreeMap<String, Vec<String>>,
    ) {
        let name = self.next();
        let full = format!("{scope}.{name}");
        self.expect("{");
        let mut msg = Msg::default();
        loop {
            match self.peek() {
                "}" => {
                    self.next();
                    break;
                }
                "message" => {
                    self.next();
                    self.message(&full, msgs, enums);
                }
                "enum" => {
                    self.next();
                    self.enumeration(&full, enums);
                }
                "oneof" => {
                    self.next();
                    let group = self.next();
                    self.expect("{");
                    while self.peek() != "}" {
                        if self.peek() == "option" {
                            self.skip_statement();
                            continue;
                        }
                        let mut f = self.field();
                        f.oneof = Some(group.clone());
                        msg.fields.push(f);
                    }
                    self.next();
                }
                "option" | "reserved" | "extensions" => self.skip_statement(),
                _ => {
                    let f = self.field();
                    msg.fields.push(f);
                }
            }
        }
        msgs.insert(full.clone(), (full, msg));
    }

    fn field(&mut self) -> Field {
        let mut repeated = false;
        let mut t = self.next();
        if t == "repeated" {
            repeated = true;
            t = self.next();
        } else if t == "optional" || t == "required" {
            t = self.next();
        }
        let ty = if t == "map" {
            self.expect("<");
            let k = self.next();
            self.expect(",");
            let v = self.next();
            self.expect(">");
            Ty::Map(k, Box::new(ty_of(&v)))
        } else {
            ty_of(&t)
        };
        let name = self.next();
        self.expect("=");
        self.next();
        if self.peek() == "[" {
            while self.next() != "]" {}
        }
        self.expect(";");
        Field {
            name,
            ty,
            repeated,
            oneof: None,
        }
    }

    fn enumeration(&mut self, scope: &str, enums: &mut BTreeMap<String, Vec<String>>) {
        let name = self.next();
        self.expect("{");
        let mut values = Vec::new();
        loop {
            match self.peek() {
                "}" => {
                    self.next();
                    break;
                }
                "option" | "reserved" => self.skip_statement(),
                _ => {
                    values.push(self.next());
                    self.skip_statement();
                }
            }
        }
        enums.insert(format!("{scope}.{name}"), values);
    }

    fn service(&mut self, rpcs: &mut Vec<RawRpc>) {
        let service = self.next();
        self.expect("{");
        loop {
            match self.peek() {
                "}" => {
                    self.next();
                    return;
                }
                "rpc" => {
                    self.next();
                    let method = self.next();
                    self.expect("(");
                    let mut cs = false;
                    let mut input = self.next();
                    if input == "stream" {
                        cs = true;
                        input = self.next();
                    }
                    self.expect(")");
                    self.expect("returns");
                    self.expect("(");
                    let mut ss = false;
                    let mut output = self.next();
                    if output == "stream" {
                        ss = true;
                        output = self.next();
                    }
                    self.expect(")");
                    if self.peek() == "{" {
                        self.skip_statement();
                    } else {
                        self.expect(";");
                    }
                    rpcs.push((
                        self.package.clone(),
                        service.clone(),
                        method,
                        cs,
                        format!("{input}|{output}"),
                        ss,
                    ));
                }
                _ => self.skip_statement(),
            }
        }
    }
}
