//! Hostile values go in through env values, image names and paths; every artifact is
//! parsed back and each value must arrive byte for byte (after undoing the platform's
//! own `$$` escaping). A table of known troublemakers, then generated strings.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use sindri_core::{ErrorKind, ResolvedSpec};
use sindri_render::{ExportFormat, Renderer};
use sindri_spec::{BuildSpec, SecretSource, SecretSpec, Spec, VolumeSpec};

const HOSTILE: &[&str] = &[
    "plain",
    "",
    " leading and trailing ",
    "with \"double\" and 'single' quotes",
    "line1\nline2\r\nline3\n",
    "{{ name }}",
    "{% if true %}x{% endif %}{# comment #}",
    "# not a comment",
    "key: value",
    "a: b\n- c\n---\n...",
    "$HOME and $$ and $",
    "$(X) and $$(Y) and $(",
    "back\\slash\\",
    "\\u0041 \\n",
    "tab\there",
    "ünïcødé ✓ 日本語",
    "emoji 🦀🚀👩‍👩‍👧",
    "null",
    "true",
    "yes",
    "~",
    "0x1F",
    "1e3",
    "- item",
    "[a, b]",
    "{a: b}",
    "&anchor *alias !tag |block >fold",
    "% directive @at `tick`",
    "'''",
    "\"\"\"",
    "\u{85}NEL \u{2028}LS \u{2029}PS",
    "\u{7f}DEL \u{1b}[31mESC \u{1}SOH \u{0}NUL",
    "\u{feff}BOM \u{fffe}",
    "ghcr.io/org/image-name_x:1.0@sha256:abc123",
    "${HOME}",
    "${localEnv:PATH}",
];

/// The value as a file name: no `/` (it would make directories) and no NUL.
fn file_safe(v: &str) -> String {
    v.replace(['/', '\0'], "_")
}

/// What devcontainer.json would substitute: `${` followed later by `}`.
fn has_substitution(v: &str) -> bool {
    v.find("${").is_some_and(|i| v[i..].contains('}'))
}

fn is_image_reference(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

fn base() -> Spec {
    serde_yaml::from_str("name: dev\ndeployment: {provider: docker, image: x}\n").unwrap()
}

/// `v` as image, env value, home, volume path, secret file path and mount, and in the
/// provider settings that reach the files.
fn image_spec(v: &str, dir: &Path) -> ResolvedSpec {
    let mut spec = base();
    let d = &mut spec.deployment;
    d.image = Some(v.to_string());
    d.env.insert("V".into(), v.into());
    d.home = format!("/h/{v}");
    d.volumes.push(VolumeSpec {
        name: "data".into(),
        path: format!("/v/{v}"),
        size: None,
    });
    spec.secrets.push(SecretSpec {
        name: "S".into(),
        source: SecretSource::File,
        var: None,
        path: Some(format!("f/{v}")),
        key: None,
        mount: Some(format!("/s/{v}")),
        required: true,
    });
    spec.providers.kubernetes = Some(sindri_spec::KubernetesSettings {
        namespace: Some(v.into()),
        storage_class: Some(v.into()),
        node_selector: [("k".to_string(), v.to_string())].into(),
        ..Default::default()
    });
    spec.providers.fly = Some(sindri_spec::FlySettings {
        app: Some(v.into()),
        regions: vec![v.into()],
        ..Default::default()
    });
    spec.providers.e2b = Some(sindri_spec::E2bSettings {
        template: Some(v.into()),
        ..Default::default()
    });
    ResolvedSpec::new(spec, &dir.join("sindri.yaml"))
}

/// `v` in the build: context, args, target, the Dockerfile's name and its content.
fn build_spec(v: &str, dir: &Path) -> (ResolvedSpec, String, String) {
    let mut spec = base();
    let dockerfile = format!("df-{}", file_safe(v));
    let content = format!("FROM scratch\n# {v}\nLABEL x=\"{v}\"\n");
    std::fs::write(dir.join(&dockerfile), &content).expect("write the test Dockerfile");
    let mut args = std::collections::BTreeMap::new();
    args.insert("A".to_string(), v.to_string());
    spec.deployment.image = None;
    spec.deployment.build = Some(BuildSpec {
        dockerfile: dockerfile.clone(),
        context: v.to_string(),
        args,
        target: Some(v.to_string()),
    });
    (
        ResolvedSpec::new(spec, &dir.join("sindri.yaml")),
        dockerfile,
        content,
    )
}

/// A relative path with `.` and `..` resolved without touching the file system.
fn lexical(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                assert!(parts.pop().is_some(), "{} leaves the project", p.display());
            }
            std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            other => panic!("unexpected component {other:?} in {}", p.display()),
        }
    }
    parts.join("/")
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v}"))
}

fn t(v: &toml::Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v}"))
}

struct Checker {
    renderer: Renderer,
    compose: jsonschema::Validator,
    devcontainer: jsonschema::Validator,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            renderer: Renderer::new(None).unwrap(),
            compose: schema("compose/compose-spec.json"),
            devcontainer: schema("devcontainer/devContainer.base.schema.json"),
        }
    }

    fn one(&self, format: ExportFormat, spec: &ResolvedSpec, name: &str) -> String {
        let out = self
            .renderer
            .render(format, spec)
            .unwrap_or_else(|e| panic!("{format} failed: {e}"));
        artifact(&out, name).to_string()
    }

    fn compose(&self, spec: &ResolvedSpec, v: &str) -> Value {
        let text = self.one(ExportFormat::Compose, spec, "docker-compose.yml");
        let docs = yaml_docs(&text);
        assert_eq!(docs.len(), 1, "value {v:?}: one document\n{text}");
        assert_schema_valid(&self.compose, &docs[0], &format!("compose for {v:?}"));
        // Compose turns `$$` back into `$` in every value.
        map_strings(&docs[0], &unescape_dollars)
    }

    fn check_image_mode(&self, v: &str) {
        let dir = tempfile::tempdir().unwrap();
        let spec = image_spec(v, dir.path());

        let c = self.compose(&spec, v);
        let svc = &c["services"]["dev"];
        assert_eq!(s(&svc["image"]), v);
        assert_eq!(s(&svc["environment"]["V"]), v);
        assert_eq!(s(&svc["volumes"][0]["target"]), format!("/h/{v}"));
        assert_eq!(s(&svc["volumes"][1]["target"]), format!("/v/{v}"));
        assert_eq!(s(&svc["secrets"][0]["target"]), format!("/s/{v}"));
        assert_eq!(s(&c["secrets"]["S"]["file"]), format!("f/{v}"));

        let text = self.one(ExportFormat::Kubernetes, &spec, "kubernetes.yaml");
        let k = yaml_docs(&text);
        assert_eq!(k.len(), 1, "value {v:?}\n{text}");
        let sts = &k[0];
        assert_eq!(s(&sts["metadata"]["namespace"]), v);
        let pod = &sts["spec"]["template"]["spec"];
        assert_eq!(s(&pod["nodeSelector"]["k"]), v);
        let ctr = &pod["containers"][0];
        assert_eq!(s(&ctr["image"]), v);
        // Kubernetes turns `$$` into `$` in env values (and only there).
        assert_eq!(unescape_dollars(s(&ctr["env"][0]["value"])), v);
        let mounts: Vec<&str> = ctr["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| s(&m["mountPath"]))
            .collect();
        assert_eq!(
            mounts,
            [format!("/h/{v}"), format!("/v/{v}"), format!("/s/{v}")]
        );
        assert_eq!(
            s(&sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]),
            v
        );

        let f = toml_doc(&self.one(ExportFormat::Fly, &spec, "fly.toml"));
        assert_eq!(t(&f["app"]), v);
        assert_eq!(t(&f["primary_region"]), v);
        assert_eq!(t(&f["build"]["image"]), v);
        assert_eq!(t(&f["env"]["V"]), v);
        assert_eq!(t(&f["mounts"][0]["destination"]), format!("/h/{v}"));

        match self.renderer.render(ExportFormat::E2b, &spec) {
            Ok(out) => {
                assert!(
                    is_image_reference(v),
                    "{v:?} is not an image reference, yet e2b.Dockerfile was written"
                );
                let e = toml_doc(artifact(&out, "e2b.toml"));
                assert_eq!(t(&e["template_name"]), v);
                let df = artifact(&out, "e2b.Dockerfile");
                assert!(df.lines().any(|l| l == format!("FROM {v}")), "{df}");
            }
            Err(e) => {
                assert!(!is_image_reference(v), "{v:?} was refused: {e}");
                assert_eq!(e.kind(), ErrorKind::Invalid);
                assert!(e.message().contains("not an image reference"), "{e}");
            }
        }

        match self.renderer.render(ExportFormat::Devcontainer, &spec) {
            Ok(out) => {
                assert!(
                    !has_substitution(v),
                    "{v:?} would be substituted, yet devcontainer.json was written"
                );
                let d = json_doc(artifact(&out, ".devcontainer/devcontainer.json"));
                assert_schema_valid(&self.devcontainer, &d, &format!("devcontainer for {v:?}"));
                assert_eq!(s(&d["image"]), v);
                assert_eq!(s(&d["containerEnv"]["V"]), v);
                let targets: Vec<&str> = d["mounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| s(&m["target"]))
                    .collect();
                assert_eq!(
                    targets,
                    [format!("/h/{v}"), format!("/v/{v}"), format!("/s/{v}")]
                );
                assert_eq!(
                    s(&d["mounts"][2]["source"]),
                    format!("${{localWorkspaceFolder}}/f/{v}")
                );
            }
            Err(e) => {
                assert!(has_substitution(v), "{v:?} was refused: {e}");
                assert_eq!(e.kind(), ErrorKind::Invalid);
                assert!(e.message().contains("no escape"), "{e}");
            }
        }
    }

    fn check_build_mode(&self, v: &str) {
        let dir = tempfile::tempdir().unwrap();
        let (spec, dockerfile, content) = build_spec(v, dir.path());

        let c = self.compose(&spec, v);
        let b = &c["services"]["dev"]["build"];
        assert_eq!(s(&b["context"]), v);
        // Compose reads the Dockerfile relative to the context: it must name the same file.
        let seen = s(&b["dockerfile"]);
        if Path::new(seen).is_absolute() {
            assert_eq!(
                Path::new(seen),
                std::path::absolute(dir.path().join(&dockerfile)).unwrap()
            );
        } else {
            assert_eq!(
                lexical(&Path::new(v).join(seen)),
                dockerfile,
                "context {v:?}, dockerfile {seen:?}"
            );
        }
        assert_eq!(s(&b["args"]["A"]), v);
        assert_eq!(s(&b["target"]), v);

        let f = toml_doc(&self.one(ExportFormat::Fly, &spec, "fly.toml"));
        assert_eq!(t(&f["build"]["dockerfile"]), dockerfile);
        assert_eq!(t(&f["build"]["build-target"]), v);
        assert_eq!(t(&f["build"]["args"]["A"]), v);

        let out = self.renderer.render(ExportFormat::E2b, &spec).unwrap();
        assert_eq!(
            artifact(&out, "e2b.Dockerfile"),
            content,
            "the project's Dockerfile, byte for byte"
        );
        toml_doc(artifact(&out, "e2b.toml"));

        match self.renderer.render(ExportFormat::Devcontainer, &spec) {
            Ok(out) => {
                assert!(!has_substitution(v));
                let d = json_doc(artifact(&out, ".devcontainer/devcontainer.json"));
                assert_schema_valid(&self.devcontainer, &d, &format!("devcontainer for {v:?}"));
                let context = if v.starts_with('/') {
                    v.to_string()
                } else if v == "." {
                    "..".to_string()
                } else {
                    format!("../{}", v.strip_prefix("./").unwrap_or(v))
                };
                assert_eq!(s(&d["build"]["context"]), context);
                assert_eq!(s(&d["build"]["dockerfile"]), format!("../{dockerfile}"));
                assert_eq!(s(&d["build"]["args"]["A"]), v);
                assert_eq!(s(&d["build"]["target"]), v);
            }
            Err(e) => {
                assert!(has_substitution(v), "{v:?} was refused: {e}");
                assert_eq!(e.kind(), ErrorKind::Invalid);
            }
        }
    }
}

#[test]
fn hostile_values_arrive_byte_for_byte_in_every_format() {
    let checker = Checker::new();
    for v in HOSTILE {
        checker.check_image_mode(v);
        checker.check_build_mode(v);
    }
}

/// A small deterministic generator (xorshift64*): the same strings on every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "\"", "'", "\n", "\r", "\t", "\\", "{{", "}}", "{%", "%}", "{#", "#}", "#", ": ", "- ",
            "$", "$(", ")", "${", "}", "$$", "ü", "日", "🦀", "\u{85}", "\u{2028}", "\u{7f}",
            "\u{1}", "\u{0}", " ", "[", "]", ",", "&", "*", "!", "|", ">", "'''", "\"\"\"", "a",
            "Z", "0", "null", "yes", "~", "\u{feff}", "---", "...", "%", "@", "`", "=", "/",
        ];
        let len = (self.next() % 12) as usize;
        (0..len)
            .map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn generated_values_arrive_byte_for_byte_in_every_format() {
    let checker = Checker::new();
    let mut g = Gen(0x5EED_0F51_AD21);
    for _ in 0..300 {
        let v = g.string();
        checker.check_image_mode(&v);
        checker.check_build_mode(&v);
    }
}

/// The YAML files are read by YAML 1.1 parsers too (PyYAML in kubernetes-validate, and
/// go-yaml v2 style in tools): both must read exactly what serde_yaml reads, and the
/// Kubernetes file with every hostile value must still pass the strict validator.
#[test]
fn hostile_yaml_reads_the_same_in_yaml_1_1_and_passes_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = image_spec("ubuntu:24.04", dir.path());
    for (i, v) in HOSTILE.iter().enumerate() {
        spec.spec
            .deployment
            .env
            .insert(format!("V{i:02}"), v.to_string());
    }
    // Keys that YAML 1.1 reads as booleans must stay strings.
    spec.spec.deployment.env.insert("on".into(), "off".into());
    spec.spec.deployment.env.insert("yes".into(), "no".into());
    let renderer = Renderer::new(None).unwrap();
    for (format, name) in [
        (ExportFormat::Compose, "docker-compose.yml"),
        (ExportFormat::Kubernetes, "kubernetes.yaml"),
    ] {
        let out = renderer.render(format, &spec).unwrap();
        let text = artifact(&out, name);
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let py = Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml\n\
                 docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding='utf-8')) if d is not None]\n\
                 sys.stdout.write(json.dumps(docs))",
            ])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `pip install kubernetes-validate` (which brings PyYAML)"));
        assert!(
            py.status.success(),
            "PyYAML cannot read {name} (install it with `pip install kubernetes-validate` if the module is missing):\n{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let pyyaml: Value = serde_json::from_slice(&py.stdout).expect("python printed JSON");
        let serde = Value::Array(yaml_docs(text));
        assert_eq!(pyyaml, serde, "{name}: PyYAML and serde_yaml disagree");
        // And what PyYAML reads is the value itself.
        for (i, v) in HOSTILE.iter().enumerate() {
            let key = format!("V{i:02}");
            let read = match format {
                ExportFormat::Compose => pyyaml[0]["services"]["dev"]["environment"][&key].clone(),
                _ => pyyaml[0]["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .and_then(|env| env.iter().find(|e| e["name"] == key.as_str()))
                    .map(|e| e["value"].clone())
                    .unwrap_or_default(),
            };
            assert_eq!(
                unescape_dollars(s(&read)),
                *v,
                "{name}: {key} as read by PyYAML"
            );
        }
        for (key, value) in [("on", "off"), ("yes", "no")] {
            let read = match format {
                ExportFormat::Compose => pyyaml[0]["services"]["dev"]["environment"][key].clone(),
                _ => pyyaml[0]["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .and_then(|env| env.iter().find(|e| e["name"] == key))
                    .map(|e| e["value"].clone())
                    .unwrap_or_default(),
            };
            assert_eq!(
                read, value,
                "{name}: key {key} stays a string key in YAML 1.1"
            );
        }
        if format == ExportFormat::Kubernetes {
            kubernetes_validate(text);
        }
    }
}

#[test]
fn devcontainer_refuses_values_it_would_substitute() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = image_spec("ubuntu:24.04", dir.path());
    spec.spec
        .deployment
        .env
        .insert("PATHS".into(), "${localEnv:HOME}/bin".into());
    let err = Renderer::new(None)
        .unwrap()
        .render(ExportFormat::Devcontainer, &spec)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().contains("deployment.env.PATHS"), "{err}");
    assert!(err.message().contains("${localEnv:HOME}"), "{err}");
    // The other formats take the value literally.
    let c = &yaml_docs(
        &Renderer::new(None)
            .unwrap()
            .render(ExportFormat::Compose, &spec)
            .unwrap()[0]
            .content,
    )[0];
    assert_eq!(
        c["services"]["dev"]["environment"]["PATHS"],
        "$${localEnv:HOME}/bin"
    );
}
