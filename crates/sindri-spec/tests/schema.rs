//! The JSON Schema is generated from the model, is valid draft 2020-12, accepts every
//! example configuration and starter, and rejects what the loader rejects.

use std::path::Path;

use serde_json::Value;
use sindri_spec::{ProviderKind, load_str, schema, schema_string, starter};

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the generated schema compiles")
}

/// YAML → JSON through an independent parser (serde_yaml), so the schema is tested
/// on its own, not through the loader.
fn instance(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("test YAML parses")
}

fn schema_errors(v: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let inst = instance(yaml);
    v.iter_errors(&inst)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_schema_is_draft_2020_12_and_valid() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(jsonschema::meta::is_valid(&s));
    assert_eq!(s["required"], serde_json::json!(["name", "deployment"]));
    assert_eq!(s["additionalProperties"], false);
    // Descriptions come from the model's doc comments.
    let desc = s["$defs"]["Resources"]["properties"]["memory"]["description"]
        .as_str()
        .unwrap();
    assert!(desc.contains("2GiB"));
}

#[test]
fn schema_string_is_the_schema_pretty_printed() {
    let text = schema_string();
    assert!(text.starts_with("{\n  \""));
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, schema());
}

#[test]
fn the_schema_accepts_every_starter() {
    let v = validator();
    for kind in ProviderKind::ALL {
        let errors = schema_errors(&v, &starter(kind));
        assert!(errors.is_empty(), "starter {kind}: {errors:#?}");
    }
}

#[test]
fn the_schema_accepts_every_valid_fixture() {
    let v = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "many-errors.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // serde_yaml resolves `<<` merges and anchors like the loader does.
        let errors = schema_errors(&v, &text);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// Mistakes an editor flags through the schema are the ones `sindri config validate`
/// reports: both reject each of these.
#[test]
fn the_schema_and_the_loader_reject_the_same_mistakes() {
    let v = validator();
    let head = "name: dev\ndeployment:\n  provider: docker\n  image: ubuntu\n";
    let cases = [
        format!("{head}  resources:\n    memroy: 2GiB\n"),
        format!("{head}extra: 1\n"),
        "name: dev\ndeployment:\n  provider: dokcer\n  image: x\n".to_string(),
        "name: dev\ndeployment:\n  image: x\n".to_string(),
        format!("{head}  resources:\n    gpu: {{count: -1}}\n"),
        format!("{head}  resources:\n    memory: 2 parsecs\n"),
        format!("{head}  ports: [70000]\n"),
        format!("{head}  env: {{PORT: 8080}}\n"),
        format!("{head}run:\n  command: make\n  max_restarts: 1000\n"),
        "name: My_Env\ndeployment:\n  provider: docker\n  image: x\n".to_string(),
        format!("{head}providers:\n  e2b:\n    auto_pause: yes\n"),
    ];
    for case in &cases {
        assert!(
            !schema_errors(&v, case).is_empty(),
            "the schema accepts:\n{case}"
        );
        assert!(load_str(case, "x").is_err(), "the loader accepts:\n{case}");
    }
    // And the unknown key is named by the schema too.
    let errors = schema_errors(&v, &cases[0]);
    assert!(errors.iter().any(|e| e.contains("memroy")), "{errors:#?}");
}
