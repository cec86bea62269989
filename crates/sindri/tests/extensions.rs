//! `sindri extension ...`, `sindri profile ...` and the extension step of `deploy`, as a
//! user runs them. The deploy tests use the real Docker Engine and the Debian image
//! built by `.ci/images/debian/build.sh` (apt reaches Debian's mirrors).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn sindri(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sindri"))
        .args(args)
        .current_dir(dir)
        .env("SINDRI_STATE_DIR", dir.join("state"))
        .env_remove("SINDRI_CONFIG")
        .env_remove("SINDRI_OUTPUT")
        .output()
        .expect("the sindri binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn the_catalog_and_profiles_can_be_browsed_without_a_config_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = sindri(dir.path(), &["extension", "list", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = json(&out);
    let names: Vec<&str> = list["extensions"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    for want in ["git", "python", "cuda-toolkit", "kubectl", "ripgrep"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    let out = sindri(dir.path(), &["profile", "show", "ml", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ml = json(&out);
    let waves: Vec<Vec<String>> = serde_json::from_value(ml["waves"].clone()).expect("waves");
    let wave_of = |n: &str| {
        waves
            .iter()
            .position(|w| w.iter().any(|x| x == n))
            .expect(n)
    };
    assert!(wave_of("python") < wave_of("jupyter"), "{waves:?}");
    assert!(
        ml["extends"]
            .as_array()
            .expect("extends")
            .iter()
            .any(|e| e == "python")
    );

    let out = sindri(dir.path(), &["extension", "info", "cuda-toolkit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("needs: a GPU"),
        "{}",
        text(&out.stdout)
    );

    let out = sindri(dir.path(), &["extension", "schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert_eq!(schema["title"], "sindri extension manifest");
}

#[test]
fn a_misspelled_name_gets_a_suggestion() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = sindri(dir.path(), &["extension", "info", "pyhton"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown extension `pyhton`") && err.contains("did you mean `python`?"),
        "{err}"
    );
    let out = sindri(dir.path(), &["profile", "show", "fulstack"]);
    assert!(
        text(&out.stderr).contains("did you mean `fullstack`?"),
        "{}",
        text(&out.stderr)
    );
}

fn ensure_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/debian/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{} failed: {}{}\nThese tests need Docker, root, debootstrap and Debian's mirrors.",
            script.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
    });
}

/// A project directory whose environment is destroyed (with its volumes) at the end,
/// also when the test fails.
struct Project {
    dir: tempfile::TempDir,
    name: String,
}

impl Project {
    fn new(tag: &str, extensions: &str) -> Project {
        ensure_image();
        let dir = tempfile::tempdir().expect("tmp");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("t-cli-{tag}-{}-{nanos:x}", std::process::id());
        std::fs::write(
            dir.path().join("sindri.yaml"),
            format!(
                "name: {name}\ndeployment:\n  provider: docker\n  image: sindri-test/debian:bookworm\nextensions:\n{extensions}"
            ),
        )
        .expect("write config");
        Project { dir, name }
    }

    fn run(&self, args: &[&str]) -> Output {
        sindri(self.dir.path(), args)
    }

    fn labelled(&self) -> String {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=sindri.environment={}", self.name),
            ])
            .output()
            .expect("docker runs");
        text(&out.stdout)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["destroy", "--volumes", "--yes"]);
    }
}

#[test]
fn a_bad_extension_config_fails_deploy_before_anything_is_created() {
    let p = Project::new("bad", "  active: [jq, ripgrepp]\n  profile: ml-gpu\n");
    let out = p.run(&["deploy"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "unknown extension `ripgrepp` (listed in extensions.active); did you mean `ripgrep`?"
        ),
        "{err}"
    );
    assert!(
        err.contains("`cuda-toolkit` (in profile `ml-gpu`) needs a GPU"),
        "{err}"
    );
    assert_eq!(p.labelled(), "", "nothing was created");
}

#[test]
fn deploy_installs_status_shows_validate_passes_and_remove_undoes() {
    let p = Project::new("life", "  active: [jq, tree]\n");
    let out = p.run(&["deploy", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let d = json(&out);
    let mut installed: Vec<String> =
        serde_json::from_value(d["extensions"]["installed"].clone()).expect("installed");
    installed.sort();
    assert_eq!(installed, ["jq", "tree"]);

    // A second deploy changes nothing.
    let out = p.run(&["deploy", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d = json(&out);
    assert_eq!(d["extensions"]["installed"], serde_json::json!([]));
    assert_eq!(
        d["extensions"]["unchanged"].as_array().map(Vec::len),
        Some(2)
    );

    let out = p.run(&["extension", "status", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = json(&out);
    for e in st["extensions"].as_array().expect("rows") {
        assert_eq!(e["state"], "ok", "{e}");
        assert_eq!(e["installed"], e["version"], "{e}");
    }

    let out = p.run(&["extension", "validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("✓ jq"), "{}", text(&out.stdout));

    let out = p.run(&["extension", "remove", "tree"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("removed tree (packages: tree)"), "{said}");
    assert!(
        said.contains("the next `sindri deploy` installs it again"),
        "{said}"
    );
    let out = p.run(&["exec", "--", "sh", "-c", "command -v tree"]);
    assert_ne!(out.status.code(), Some(0), "tree is gone");
    let st = json(&p.run(&["extension", "status", "--output", "json"]));
    let tree = st["extensions"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|e| e["name"] == "tree")
        .cloned();
    assert_eq!(
        tree.map(|t| t["state"].clone()),
        Some(serde_json::json!("missing"))
    );
}
