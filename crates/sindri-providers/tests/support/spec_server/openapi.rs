//! An OpenAPI 3.0 description as a [`Contract`]: requests are matched to an
//! operation by path template and method, and their path, query and header
//! parameters, security headers and bodies are validated against it (bodies with
//! JSON Schema, `$ref`s resolved within the document). Answers of the fakes are
//! validated against the declared response schemas.
//!
//! OpenAPI 3.0 schemas are turned into JSON Schema first: `nullable: true` admits
//! `null`, and OpenAPI-only keywords (`example`, `discriminator`, `x-*`) are dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::server::{Contract, Matched, RawRequest, Violation, percent_decode};

/// A loaded OpenAPI description.
pub struct OpenApi {
    name: String,
    base_path: String,
    doc: Value,
    /// `{"components": {"schemas": ...converted}}`: the root every validator resolves
    /// `$ref`s in.
    root: Value,
    paths: Vec<(Vec<Seg>, String)>,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    /// When set, an answer's status must be one its operation declares; the pairs
    /// are (operation, status) the live API is known to answer beyond the copy.
    declared_statuses: Option<Vec<(String, u16)>>,
}

/// Statuses any HTTP service may answer whatever its description says: rate limits
/// and failures of the service or of a proxy in front of it.
const INFRASTRUCTURE_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Param(String),
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

impl OpenApi {
    /// Loads `file` (YAML or JSON). `base_path` is the servers' path prefix that
    /// requests carry (`/v1` for Fly); `patch` edits the document first, to add what
    /// the live API has and the published copy predates (say so where it is called).
    pub fn load(file: &Path, base_path: &str, patch: impl FnOnce(&mut Value)) -> OpenApi {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read the API description {}: {e}", file.display()));
        let mut doc: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML/JSON: {e}", file.display()));
        patch(&mut doc);
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), schema(v)))
                    .collect::<Map<_, _>>()
            })
            .unwrap_or_default();
        let root = json!({"components": {"schemas": schemas}});
        let mut paths = Vec::new();
        for template in doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let segs = template
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(p) => Seg::Param(p.to_string()),
                        None => Seg::Lit(s.to_string()),
                    },
                )
                .collect();
            paths.push((segs, template));
        }
        OpenApi {
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            base_path: base_path.trim_end_matches('/').to_string(),
            doc,
            root,
            paths,
            cache: Mutex::new(HashMap::new()),
            declared_statuses: None,
        }
    }

    /// Makes the fake's answers keep to the statuses each operation declares (besides
    /// [`INFRASTRUCTURE_STATUSES`], and 401/403 where the operation needs a
    /// credential): a fake that answers 404 where the service answers 400 would let
    /// a client's wrong reading pass. `also` lists (operation, status) pairs the live
    /// service is known to answer beyond the copy; say where that is known from
    /// where it is called. Off by default: descriptions such as Fly's declare few
    /// error statuses at all.
    pub fn declared_statuses_only(mut self, also: &[(&str, u16)]) -> OpenApi {
        self.declared_statuses = Some(also.iter().map(|(o, s)| (o.to_string(), *s)).collect());
        self
    }

    /// Why `status` is not an answer `op` may give, if it is not.
    fn undeclared_status(&self, op_id: &str, op: &Value, status: u16) -> Option<String> {
        let also = self.declared_statuses.as_ref()?;
        let responses = op.get("responses").and_then(Value::as_object)?;
        let declared = responses.contains_key(&status.to_string())
            || responses.contains_key(&format!("{}XX", status / 100))
            || responses.contains_key("default");
        let secured = op
            .get("security")
            .or_else(|| self.doc.get("security"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let allowed = declared
            || INFRASTRUCTURE_STATUSES.contains(&status)
            || (secured && matches!(status, 401 | 403))
            || also.iter().any(|(o, s)| o == op_id && *s == status);
        (!allowed).then(|| {
            format!(
                "status {status} is not an answer {op_id} declares (it declares {})",
                responses.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The raw document (after patches).
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Follows `$ref`s within the document.
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        let mut v = v;
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.doc.pointer(p)) {
                    Some(t) => v = t,
                    None => return v,
                },
                None => return v,
            }
        }
        v
    }

    /// A compiled validator for the (OpenAPI) schema at `key`.
    fn validator(&self, key: &str, openapi_schema: &Value) -> Arc<jsonschema::Validator> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(key) {
            return v.clone();
        }
        let mut doc = self.root.clone();
        doc["allOf"] = json!([schema(openapi_schema)]);
        let v = Arc::new(jsonschema::validator_for(&doc).unwrap_or_else(|e| {
            panic!("{}: the schema at {key} does not compile: {e}", self.name)
        }));
        cache.insert(key.to_string(), v.clone());
        v
    }

    fn errors(&self, key: &str, openapi_schema: &Value, instance: &Value) -> Vec<String> {
        let v = self.validator(key, openapi_schema);
        v.iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!(
                    "{} {}",
                    if at.is_empty() {
                        "(body)".to_string()
                    } else {
                        at
                    },
                    e
                )
            })
            .collect()
    }

    /// The (template, operation) for a method and decoded path segments.
    fn find(
        &self,
        method: &str,
        segs: &[String],
    ) -> Result<(String, BTreeMap<String, String>), Violation> {
        let mut best: Option<(usize, &String, BTreeMap<String, String>)> = None;
        for (tsegs, template) in &self.paths {
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut literal = 0;
            let ok = tsegs.iter().zip(segs).all(|(t, s)| match t {
                Seg::Lit(l) => {
                    literal += 1;
                    l == s
                }
                Seg::Param(p) => {
                    params.insert(p.clone(), s.clone());
                    !s.is_empty()
                }
            });
            if ok && best.as_ref().is_none_or(|(n, _, _)| literal > *n) {
                best = Some((literal, template, params));
            }
        }
        let Some((_, template, params)) = best else {
            return Err(Violation {
                status: 404,
                message: format!(
                    "{}: no path `/{}` in the API description",
                    self.name,
                    segs.join("/")
                ),
            });
        };
        let item = &self.doc["paths"][template.as_str()];
        if item.get(method.to_ascii_lowercase()).is_none() {
            let allowed: Vec<&str> = METHODS
                .iter()
                .copied()
                .filter(|m| item.get(*m).is_some())
                .collect();
            return Err(Violation {
                status: 405,
                message: format!(
                    "{}: `{template}` has no {method} (it has: {})",
                    self.name,
                    allowed.join(", ")
                ),
            });
        }
        Ok((template.clone(), params))
    }
}

impl Contract for OpenApi {
    fn check(&self, req: &RawRequest<'_>) -> Result<Matched, Violation> {
        let Some(rest) = req.path.strip_prefix(&self.base_path) else {
            return Err(Violation {
                status: 404,
                message: format!(
                    "{}: the path does not start with {}",
                    self.name, self.base_path
                ),
            });
        };
        let segs: Vec<String> = rest
            .trim_start_matches('/')
            .split('/')
            .map(|s| percent_decode(s, false))
            .collect();
        let (template, params) = self.find(req.method, &segs)?;
        let method = req.method.to_ascii_lowercase();
        let item = &self.doc["paths"][template.as_str()];
        let op = &item[method.as_str()];
        let op_id = op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {template}", req.method));
        let bad = |status: u16, m: String| Violation {
            status,
            message: format!("{}: {op_id} ({} {template}): {m}", self.name, req.method),
        };

        // Parameters of the path item and of the operation.
        let mut declared: Vec<&Value> = Vec::new();
        for list in [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
        {
            for p in list.as_array().into_iter().flatten() {
                declared.push(self.deref(p));
            }
        }
        let mut known_query = Vec::new();
        for p in &declared {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let place = p.get("in").and_then(Value::as_str).unwrap_or("");
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let s = p.get("schema").cloned().unwrap_or(json!({}));
            let raw: Option<String> = match place {
                "query" => {
                    known_query.push(name.to_string());
                    req.query
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                }
                "path" => params.get(name).cloned(),
                "header" => req
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                _ => None,
            };
            match raw {
                None if required => {
                    return Err(bad(
                        400,
                        format!("the required {place} parameter `{name}` is missing"),
                    ));
                }
                None => {}
                Some(raw) => {
                    let value = self.parameter_value(&s, &raw);
                    let errs = self.errors(&format!("{op_id}/param/{name}"), &s, &value);
                    if !errs.is_empty() {
                        return Err(bad(
                            400,
                            format!("{place} parameter `{name}`={raw:?}: {}", errs.join("; ")),
                        ));
                    }
                }
            }
        }
        for (k, _) in req.query {
            if !known_query.contains(k) {
                return Err(bad(400, format!("unknown query parameter `{k}`")));
            }
        }

        // Security: one of the alternatives must be satisfied.
        if let Some(alternatives) = op
            .get("security")
            .or_else(|| self.doc.get("security"))
            .and_then(Value::as_array)
        {
            let satisfied = alternatives.is_empty()
                || alternatives.iter().any(|alt| {
                    alt.as_object().is_some_and(|schemes| {
                        schemes
                            .keys()
                            .all(|scheme| self.has_credential(scheme, req))
                    })
                });
            if !satisfied {
                return Err(bad(
                    401,
                    "no credential of a scheme the operation accepts".into(),
                ));
            }
        }

        // Body.
        let body_spec = op.get("requestBody").map(|b| self.deref(b));
        match body_spec {
            None if !req.body.is_empty() => {
                return Err(bad(400, "the operation takes no request body".into()));
            }
            None => {}
            Some(spec) => {
                let required = spec
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if req.body.is_empty() {
                    if required {
                        return Err(bad(400, "the required request body is missing".into()));
                    }
                } else {
                    let ct = req
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let media = ct
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    let content = spec
                        .get("content")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    let Some(declared) = content.get(&media) else {
                        return Err(bad(
                            415,
                            format!(
                                "content type `{ct}` is not one the operation takes ({})",
                                content.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    };
                    let s = declared.get("schema").cloned().unwrap_or(json!({}));
                    if media.ends_with("json") {
                        let v: Value = serde_json::from_slice(req.body)
                            .map_err(|e| bad(400, format!("the body is not JSON: {e}")))?;
                        let errs = self.errors(&format!("{op_id}/body"), &s, &v);
                        if !errs.is_empty() {
                            return Err(bad(
                                400,
                                format!("the body does not match the schema: {}", errs.join("; ")),
                            ));
                        }
                    } else if media == "multipart/form-data" {
                        let parts = multipart_names(ct, req.body).map_err(|e| bad(400, e))?;
                        let s = self.deref(&s);
                        let props = s
                            .get("properties")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default();
                        for name in &parts {
                            if !props.contains_key(name) {
                                return Err(bad(
                                    400,
                                    format!("multipart part `{name}` is not a declared field"),
                                ));
                            }
                        }
                        if parts.is_empty() {
                            return Err(bad(400, "the multipart body has no parts".into()));
                        }
                    }
                }
            }
        }
        Ok(Matched {
            op: op_id,
            path: format!("/{}", segs.join("/")),
            params,
        })
    }

    fn check_reply(
        &self,
        op_id: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Vec<String> {
        let Some(op) = self.operation(op_id) else {
            return Vec::new();
        };
        if let Some(problem) = self.undeclared_status(op_id, op, status) {
            return vec![problem];
        }
        let Some(responses) = op.get("responses") else {
            return Vec::new();
        };
        let declared = responses
            .get(status.to_string())
            .or_else(|| responses.get(format!("{}XX", status / 100)))
            .or_else(|| responses.get("default"));
        let Some(declared) = declared.map(|r| self.deref(r)) else {
            return Vec::new();
        };
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.ends_with("json") || body.is_empty() {
            return Vec::new();
        }
        let Some(s) = declared.pointer("/content/application~1json/schema") else {
            return Vec::new();
        };
        if s.get("type").and_then(Value::as_str) == Some("string")
            && !s.as_object().is_some_and(|o| o.contains_key("$ref"))
        {
            // A text answer declared as a JSON string (e.g. Fly's exec in this copy).
            return Vec::new();
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return vec![format!("status {status}: the body is not JSON")];
        };
        self.errors(&format!("{op_id}/response/{status}"), s, &v)
            .into_iter()
            .map(|e| format!("status {status}: {e}"))
            .collect()
    }
}

impl OpenApi {
    fn operation(&self, op_id: &str) -> Option<&Value> {
        let paths = self.doc.get("paths")?.as_object()?;
        for item in paths.values() {
            for m in METHODS {
                if let Some(op) = item.get(m)
                    && op.get("operationId").and_then(Value::as_str) == Some(op_id)
                {
                    return Some(op);
                }
            }
        }
        // Operations without an id are named "<METHOD> <template>".
        let (method, template) = op_id.split_once(' ')?;
        paths.get(template)?.get(method.to_ascii_lowercase())
    }

    /// A query/path/header value typed by its schema (integers, booleans, arrays).
    fn parameter_value(&self, s: &Value, raw: &str) -> Value {
        let s = self.deref(s);
        match s.get("type").and_then(Value::as_str) {
            Some("integer") => raw
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.into())),
            Some("number") => raw
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.into())),
            Some("boolean") => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(raw.into()),
            },
            Some("array") => {
                let items = s.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    raw.split(',')
                        .map(|p| self.parameter_value(&items, p))
                        .collect(),
                )
            }
            _ => Value::String(raw.into()),
        }
    }

    fn has_credential(&self, scheme: &str, req: &RawRequest<'_>) -> bool {
        let Some(def) = self
            .doc
            .pointer(&format!("/components/securitySchemes/{scheme}"))
        else {
            return false;
        };
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match def.get("type").and_then(Value::as_str) {
            Some("apiKey") => {
                let name = def.get("name").and_then(Value::as_str).unwrap_or("");
                match def.get("in").and_then(Value::as_str) {
                    Some("header") => header(name).is_some_and(|v| !v.is_empty()),
                    Some("query") => req.query.iter().any(|(k, _)| k == name),
                    _ => false,
                }
            }
            Some("http") => {
                let scheme = def
                    .get("scheme")
                    .and_then(Value::as_str)
                    .unwrap_or("bearer");
                header("authorization").is_some_and(|v| {
                    v.to_ascii_lowercase()
                        .starts_with(&format!("{} ", scheme.to_ascii_lowercase()))
                })
            }
            _ => false,
        }
    }
}

/// The names of the parts of a multipart body.
fn multipart_names(content_type: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or("the multipart content type has no boundary")?;
    let parts = super::multipart::parse(body, &boundary)?;
    Ok(parts.into_iter().map(|p| p.name).collect())
}

/// An OpenAPI 3.0 schema as JSON Schema (2020-12).
pub fn schema(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in o {
        match k.as_str() {
            "example" | "examples" | "discriminator" | "xml" | "externalDocs" | "nullable" => {}
            k if k.starts_with("x-") => {}
            "properties" | "patternProperties" => {
                let m = val
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(n, s)| (n.clone(), schema(s)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(k.to_string(), Value::Object(m));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.to_string(), schema(val));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let a = val
                    .as_array()
                    .map(|a| a.iter().map(schema).collect())
                    .unwrap_or_default();
                out.insert(k.to_string(), Value::Array(a));
            }
            _ => {
                out.insert(k.to_string(), val.clone());
            }
        }
    }
    if o.get("nullable").and_then(Value::as_bool) == Some(true) {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(e)) = out.get_mut("enum") {
                e.push(Value::Null);
            }
        } else {
            return json!({"anyOf": [Value::Object(out), {"type": "null"}]});
        }
    }
    Value::Object(out)
}
