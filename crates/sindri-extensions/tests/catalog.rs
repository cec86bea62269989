//! The built-in catalog: every manifest and profile is valid against the generated
//! JSON Schema (checked by an independent validator on an independent YAML parse),
//! loads, and fits together; user directories add to and override it.

use std::collections::BTreeSet;
use std::path::Path;

use sindri_extensions::manifest::{Step, profile_schema};
use sindri_extensions::{Catalog, Request, Source, Target, manifest_schema, resolve};

fn catalog_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/catalog"))
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("catalog dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

fn schema_errors(schema: &serde_json::Value, file: &Path) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the generated schema compiles");
    let text = std::fs::read_to_string(file).expect("read");
    let instance: serde_json::Value = serde_yaml::from_str(&text).expect("YAML parses");
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {}: {e}", file.display(), e.instance_path()))
        .collect()
}

#[test]
fn every_builtin_manifest_and_profile_validates_against_the_generated_schema() {
    let schema = manifest_schema();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "the manifest schema is a valid JSON Schema"
    );
    let files = yaml_files(catalog_dir());
    assert!(
        files.len() >= 20,
        "at least 20 built-in extensions, found {}",
        files.len()
    );
    let errors: Vec<String> = files
        .iter()
        .flat_map(|f| schema_errors(&schema, f))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations:\n{}",
        errors.join("\n")
    );

    let pschema = profile_schema();
    let profiles = yaml_files(&catalog_dir().join("profiles"));
    assert!(
        profiles.len() >= 5,
        "at least 5 profiles, found {}",
        profiles.len()
    );
    let errors: Vec<String> = profiles
        .iter()
        .flat_map(|f| schema_errors(&pschema, f))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let schema = manifest_schema();
    let validator = jsonschema::validator_for(&schema).expect("compiles");
    let bad = [
        // unknown key
        r#"{"name": "x", "version": "1", "description": "d", "instal": []}"#,
        // two step kinds in one step
        r#"{"name": "x", "version": "1", "description": "d", "install": [{"apt": {"packages": ["a1"]}, "pip": {"packages": ["b"]}}]}"#,
        // not a sha256
        r#"{"name": "x", "version": "1", "description": "d", "install": [{"download": {"files": [{"arch": "amd64", "url": "https://x", "sha256": "abc"}], "install": {"binary": "/x"}}}]}"#,
        // bad name
        r#"{"name": "X", "version": "1", "description": "d"}"#,
    ];
    for b in bad {
        let v: serde_json::Value = serde_json::from_str(b).expect("json");
        assert!(!validator.is_valid(&v), "the schema should reject {b}");
        let as_yaml = serde_yaml::to_string(&v).expect("yaml");
        assert!(
            sindri_extensions::Manifest::parse(&as_yaml, "x.yaml").is_err(),
            "the loader should reject {b}"
        );
    }
}

#[test]
fn the_builtin_catalog_loads_and_hangs_together() {
    let c = Catalog::builtin().expect("built-in catalog loads");
    assert_eq!(
        c.len(),
        yaml_files(catalog_dir()).len(),
        "every file is embedded"
    );
    for want in [
        "git",
        "build-essential",
        "curl",
        "python",
        "uv",
        "nodejs",
        "rust",
        "golang",
        "docker-cli",
        "kubectl",
        "gh",
        "jupyter",
        "pytorch-cpu",
        "cuda-toolkit",
        "tmux",
        "zsh",
        "jq",
        "ripgrep",
        "htop",
        "neovim",
    ] {
        assert!(
            c.get(want).is_some(),
            "built-in extension `{want}` is missing"
        );
    }
    let mut problems = Vec::new();
    for e in c.extensions() {
        let m = &e.manifest;
        assert_eq!(e.source, Source::Builtin);
        for r in m.requires.iter().chain(&m.conflicts) {
            if c.get(r).is_none() {
                problems.push(format!("{}: names unknown extension `{r}`", m.name));
            }
        }
        if m.validate.is_empty() {
            problems.push(format!("{}: has no validate command", m.name));
        }
        // Tools a step needs come from a required extension, so install order is right.
        let closure = closure(&c, &m.name);
        for s in &m.install {
            let needs = match s {
                Step::Pip(_) => Some("python"),
                Step::Npm(_) => Some("nodejs"),
                Step::Cargo(_) => Some("rust"),
                Step::Download(_) => Some("curl"),
                Step::Script(sc) if sc.run.contains("curl ") => Some("curl"),
                _ => None,
            };
            if let Some(n) = needs
                && !closure.contains(n)
            {
                problems.push(format!(
                    "{}: a step needs `{n}`, which it does not require",
                    m.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn closure(c: &Catalog, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        if let Some(m) = c.manifest(&n) {
            for r in &m.requires {
                if out.insert(r.clone()) {
                    todo.push(r.clone());
                }
            }
        }
    }
    out
}

#[test]
fn every_profile_resolves_and_the_whole_catalog_has_no_cycle() {
    let c = Catalog::builtin().expect("loads");
    let gpu = Target {
        gpus: Some(1),
        ..Default::default()
    };
    for p in c.profiles() {
        let name = &p.profile.name;
        let req = Request {
            profile: Some(name.clone()),
            ..Default::default()
        };
        let r = resolve(&c, &req, &gpu).unwrap_or_else(|e| panic!("profile `{name}`: {e}"));
        assert!(!r.is_empty(), "profile `{name}` installs something");
        for e in c.profile_extensions(name).expect("expands") {
            assert!(r.contains(&e), "profile `{name}` lost `{e}`");
        }
    }
    // Everything at once (less the declared conflicts) resolves: no cycle anywhere.
    let all: Vec<String> = c
        .extensions()
        .map(|e| e.manifest.name.clone())
        .filter(|n| n != "podman" && n != "pytorch-cpu")
        .collect();
    let r = resolve(&c, &Request::named(&all), &gpu).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.order.len(), all.len());
    let pos = |n: &str| r.order.iter().position(|o| o == n).expect("ordered");
    for n in &all {
        for req in &c.manifest(n).expect("exists").requires {
            assert!(pos(req) < pos(n), "`{req}` must come before `{n}`");
        }
    }
}

#[test]
fn gpu_profile_without_a_gpu_is_refused_before_anything_runs() {
    let c = Catalog::builtin().expect("loads");
    let req = Request {
        profile: Some("ml-gpu".into()),
        ..Default::default()
    };
    let e = resolve(&c, &req, &Target::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`cuda-toolkit` (in profile `ml-gpu`) needs a GPU"),
        "{e}"
    );
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn a_user_directory_adds_extensions_and_profiles_and_overrides_builtins() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "team/jq.yaml",
        "name: jq\nversion: \"9.9.9\"\ndescription: our jq\ninstall:\n  - apt: {packages: [jq]}\n",
    );
    write(
        dir.path(),
        "team/protoc.yaml",
        "name: protoc\nversion: \"1\"\ndescription: protobuf compiler\nrequires: [build-essential]\ninstall:\n  - apt: {packages: [protobuf-compiler]}\n",
    );
    write(
        dir.path(),
        "team/profiles/team.yaml",
        "name: team\ndescription: ours\nextends: [minimal]\nextensions: [protoc]\n",
    );
    let spec = sindri_spec::ExtensionsSpec {
        profile: Some("team".into()),
        active: vec![],
        sources: vec!["team".into()],
    };
    let c = Catalog::for_spec(&spec, dir.path()).expect("loads");
    assert_eq!(
        c.manifest("jq").expect("jq").version,
        "9.9.9",
        "the user's jq replaces the built-in"
    );
    assert_eq!(
        c.get("jq").expect("jq").source,
        Source::File(dir.path().join("team/jq.yaml"))
    );
    let r = resolve(&c, &Request::from_spec(&spec), &Target::default()).expect("resolves");
    assert!(
        r.contains("protoc") && r.contains("build-essential") && r.contains("git"),
        "{r:?}"
    );
}

#[test]
fn every_problem_of_a_user_directory_is_reported_with_its_file() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "ext/a.yaml",
        "name: b\nversion: \"1\"\ndescription: x\ninstall:\n  - apt: {packages: [jq]}\n",
    );
    write(
        dir.path(),
        "ext/c.yaml",
        "name: c\nversion: \"1\"\ndescription: x\ninstal: []\n",
    );
    write(
        dir.path(),
        "ext/d.yaml",
        "name: d\nversion: \"1\"\ndescription: x\ninstall:\n  - script: {run: make}\n",
    );
    let spec = sindri_spec::ExtensionsSpec {
        sources: vec!["ext".into(), "missing".into()],
        ..Default::default()
    };
    let e = Catalog::for_spec(&spec, dir.path()).unwrap_err();
    let msg = e.message().to_string();
    assert!(
        msg.contains("a.yaml: defines extension `b`; name the file `b.yaml`"),
        "{msg}"
    );
    assert!(msg.contains("c.yaml:4:1: unknown field `instal`"), "{msg}");
    assert!(msg.contains("d.yaml: remove.script: required"), "{msg}");
    assert!(msg.contains("missing: not a directory"), "{msg}");
    assert!(msg.starts_with("4 problem(s)"), "{msg}");
}
