//! Spec-validating test servers for the HTTP providers.
//!
//! Each server loads a platform's published API description from
//! `/work/shared/api-specs` (found from `CARGO_MANIFEST_DIR` as
//! `../../../shared/api-specs`) and checks every request against it before a
//! stateful fake answers: an unknown path or method, a missing required parameter or
//! body field, a wrong type or an undeclared property is answered 400/404/405 like
//! the real service and recorded. [`server::TestServer::assert_clean`] fails the test
//! on any, and so does dropping a server whose violations the test never checked
//! (tests that break the contract on purpose take them with
//! [`server::TestServer::take_violations`]). Faults (status codes with headers,
//! dropped connections, streams cut short) can be injected per operation.
#![allow(dead_code)]

pub mod client;
pub mod e2b;
pub mod envd_contract;
pub mod fly;
pub mod local;
pub mod lyceum;
pub mod multipart;
pub mod openapi;
pub mod proto;
pub mod runpod;
pub mod server;

use std::path::PathBuf;

use serde_json::{Value, json};

/// The directory of the published API descriptions.
pub fn api_specs() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/api-specs");
    assert!(
        dir.is_dir(),
        "the API descriptions are missing: expected them at {} (the repository's shared/api-specs)",
        dir.display()
    );
    dir
}

/// Makes every object schema with declared properties reject undeclared ones, so a
/// misspelt field fails the test instead of being ignored as the real API would.
pub fn strict(doc: &mut Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("properties")
                    && !o.contains_key("additionalProperties")
                    && !o.contains_key("unevaluatedProperties")
                {
                    o.insert("unevaluatedProperties".into(), json!(false));
                }
                for (k, child) in o.iter_mut() {
                    if k != "example" && k != "examples" {
                        walk(child);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(c) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")) {
        walk(c);
    }
    if let Some(p) = doc.get_mut("paths") {
        walk(p);
    }
}
