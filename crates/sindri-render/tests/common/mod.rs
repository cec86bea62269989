//! Helpers shared by the integration tests: specs, parsers and the real validators.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sindri_core::{RenderedArtifact, ResolvedSpec};
use sindri_render::{ExportFormat, Renderer};
use sindri_spec::Spec;

/// The smallest useful spec.
pub const MINIMAL: &str = r#"
name: dev
deployment:
  provider: docker
  image: "ubuntu:24.04"
"#;

/// Everything at once: ports, GPU, volumes, secrets of every source, env, resources,
/// build, and every provider section the formats read.
pub const FULL: &str = r#"
name: full-env
deployment:
  provider: kubernetes
  image: "ghcr.io/acme/dev:1.2"
  build:
    dockerfile: docker/Dockerfile
    context: "."
    args: {PY_VERSION: "3.12"}
    target: dev
  resources: {cpus: 2.5, memory: 6GiB, disk: 40GiB, gpu: {count: 2, type: a100}}
  ports: [8080, "9000:90/udp", {container: 5432, host: 15432}]
  env: {EDITOR: vim, GREETING: "hello world"}
  volumes:
    - {name: data, path: /data, size: 5GiB}
    - {name: cache, path: /var/cache/app}
  home: /home/dev
secrets:
  - {name: API_TOKEN, source: env, var: HOST_API_TOKEN}
  - {name: TLS_CERT, source: file, path: certs/tls.pem, mount: /etc/tls/tls.pem}
  - {name: DB_PASSWORD, source: vault, path: secret/data/db, key: password, required: false}
  - {name: SSH_KEY, source: env, mount: /home/dev/.ssh/id_ed25519}
providers:
  docker: {dind: socket}
  kubernetes:
    namespace: team-a
    storage_class: fast-ssd
    node_selector: {"cloud.google.com/gke-accelerator": nvidia-tesla-a100}
    tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
    service_type: LoadBalancer
  fly: {app: full-app, regions: [ord, iad], cpu_kind: performance, auto_stop: stop}
  e2b: {template: full-template}
"#;

/// A build without an image, file and env secrets, ports and resources without GPU.
pub const BUILD_ONLY: &str = r#"
name: builder
deployment:
  provider: fly
  build: {dockerfile: Dockerfile, context: app, args: {MODE: release}}
  resources: {cpus: 1, memory: 1536MiB}
  ports: [3000]
  env: {PORT: "3000"}
secrets:
  - {name: API_TOKEN, source: env}
  - {name: CONFIG, source: file, path: config.json}
"#;

/// The Dockerfile BUILD_ONLY points at (e2b.Dockerfile copies it).
pub const BUILD_ONLY_DOCKERFILE: &str =
    "# syntax=docker/dockerfile:1\nFROM debian:12\nARG MODE\nRUN echo \"$MODE\"\n";

/// A spec from YAML, anchored in `dir` (which gets the files the specs refer to).
pub fn resolved(yaml: &str, dir: &Path) -> ResolvedSpec {
    let spec: Spec = serde_yaml::from_str(yaml).expect("test spec parses");
    for (path, text) in [
        ("Dockerfile", BUILD_ONLY_DOCKERFILE),
        ("docker/Dockerfile", "FROM ubuntu:24.04\n"),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("create dir");
        std::fs::write(p, text).expect("write Dockerfile");
    }
    ResolvedSpec::new(spec, &dir.join("sindri.yaml"))
}

/// All test specs, named.
pub fn all_specs() -> [(&'static str, &'static str); 3] {
    [
        ("minimal", MINIMAL),
        ("full", FULL),
        ("build-only", BUILD_ONLY),
    ]
}

/// Renders with the embedded templates.
pub fn render(format: ExportFormat, spec: &ResolvedSpec) -> Vec<RenderedArtifact> {
    Renderer::new(None)
        .expect("embedded templates load")
        .render(format, spec)
        .unwrap_or_else(|e| panic!("rendering {format} failed: {e} (hint: {:?})", e.hint()))
}

/// The content of the artifact named `name`.
pub fn artifact<'a>(artifacts: &'a [RenderedArtifact], name: &str) -> &'a str {
    &artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no artifact named {name}"))
        .content
}

/// Every YAML document of a (multi-document) file, as JSON values.
pub fn yaml_docs(content: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(content)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("YAML does not parse: {e}\n{content}"));
            serde_json::to_value(v).expect("YAML maps onto JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The repository's shared API specs: `<repo>/../shared/api-specs`.
pub fn api_specs() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared/api-specs");
    assert!(
        dir.is_dir(),
        "the platform schemas are missing: expected the directory {} (the repository's sibling `shared/api-specs`, holding compose/compose-spec.json and devcontainer/devContainer.base.schema.json)",
        dir.display()
    );
    dir
}

/// A validator for one of the shared JSON Schemas.
pub fn schema(relative: &str) -> jsonschema::Validator {
    let path = api_specs().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the schema {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the schema {} is not JSON: {e}", path.display()));
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the schema {} does not compile: {e}", path.display()))
}

/// Fails with every schema error, the instance path and the document.
pub fn assert_schema_valid(
    validator: &jsonschema::Validator,
    instance: &serde_json::Value,
    what: &str,
) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("  at `{}`: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate against its schema:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap_or_default()
    );
}

/// The newest Kubernetes version the installed kubernetes-validate knows: its
/// `--help` says "Defaults to X" (the default is the newest bundled schema).
pub fn newest_kubernetes_version() -> String {
    let out = Command::new("kubernetes-validate")
        .arg("--help")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubernetes-validate ({e}); install it with `pip install kubernetes-validate`")
        });
    let help = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = help.split_whitespace().collect();
    words
        .windows(3)
        .find(|w| w[0] == "Defaults" && w[1] == "to")
        .map(|w| w[2].trim_end_matches('.').to_string())
        .unwrap_or_else(|| {
            panic!("kubernetes-validate --help does not name its default version:\n{help}")
        })
}

/// Runs `kubernetes-validate --strict` for Kubernetes 1.30.0 and the newest version it
/// knows on `content`. Every document must be reported as passed for both versions: the
/// tool exits 0 even when it has no schema for a kind (it only warns), so the output is
/// checked line by line, not just the exit code.
pub fn kubernetes_validate(content: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("kubernetes.yaml");
    std::fs::write(&file, content).expect("write manifest");
    let newest = newest_kubernetes_version();
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(["--kubernetes-version", "1.30.0"])
        .args(["--kubernetes-version", &newest])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubernetes-validate ({e}); install it with `pip install kubernetes-validate`")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubernetes-validate failed ({}):\n{stdout}{stderr}\n--- manifest:\n{content}",
        out.status
    );
    let bad: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("INFO ")).collect();
    assert!(
        bad.is_empty(),
        "kubernetes-validate reported problems:\n{}\n--- manifest:\n{content}",
        bad.join("\n")
    );
    let docs = yaml_docs(content);
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    for doc in &docs {
        let resource = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap_or_default().to_lowercase(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        for version in ["1.30".to_string(), minor(&newest)] {
            let expected = format!("passed for resource {resource} against version {version}");
            assert!(
                stdout.lines().any(|l| l.ends_with(&expected)),
                "kubernetes-validate did not report `{expected}`:\n{stdout}"
            );
        }
    }
}

/// Parses TOML, failing with the document.
pub fn toml_doc(content: &str) -> toml::Table {
    content
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("TOML does not parse: {e}\n{content}"))
}

/// Parses JSON, failing with the document.
pub fn json_doc(content: &str) -> serde_json::Value {
    serde_json::from_str(content).unwrap_or_else(|e| panic!("JSON does not parse: {e}\n{content}"))
}

/// Undoes a platform's `$$` escaping (Compose everywhere, Kubernetes in env values).
pub fn unescape_dollars(s: &str) -> String {
    s.replace("$$", "$")
}

/// Applies `f` to every string in a JSON value.
pub fn map_strings(v: &serde_json::Value, f: &dyn Fn(&str) -> String) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(f(s)),
        serde_json::Value::Array(a) => a.iter().map(|x| map_strings(x, f)).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, x)| (k.clone(), map_strings(x, f)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}
