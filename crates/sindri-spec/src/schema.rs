//! The JSON Schema of `sindri.yaml`, generated from [`Spec`] by schemars.
//!
//! Editors use it (through the `yaml-language-server` modeline the starter file
//! carries), and the loader walks the same schema (generated at build time, see
//! `build.rs`), so the editor and `sindri config validate` agree on what is valid.

use serde_json::Value;

use crate::model::Spec;

/// The JSON Schema (draft 2020-12) of `sindri.yaml`.
pub fn schema() -> Value {
    let mut schema = schemars::schema_for!(Spec).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::from("sindri.yaml"));
    }
    schema
}

/// [`schema`] as pretty-printed JSON, as `sindri config schema` prints it.
pub fn schema_string() -> String {
    // Serialising a `Value` cannot fail (its keys are strings).
    serde_json::to_string_pretty(&schema()).unwrap_or_default() + "\n"
}
