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
        Project::with_deployment(tag, "", extensions)
    }

    /// `deployment` is extra YAML under `deployment:` (indented two spaces).
    fn with_deployment(tag: &str, deployment: &str, extensions: &str) -> Project {
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
                "name: {name}\ndeployment:\n  provider: docker\n  image: sindri-test/debian:bookworm\n{deployment}extensions:\n{extensions}"
            ),
        )
        .expect("write config");
        Project { dir, name }
    }

    fn run(&self, args: &[&str]) -> Output {
        sindri(self.dir.path(), args)
    }

    /// Runs sindri, asserts it succeeded and returns its JSON report.
    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "sindri {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        json(&out)
    }

    fn write(&self, rel: &str, body: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    /// Replaces `from` with `to` in sindri.yaml.
    fn edit_config(&self, from: &str, to: &str) {
        let p = self.dir.path().join("sindri.yaml");
        let text = std::fs::read_to_string(&p).expect("read config");
        assert!(text.contains(from), "`{from}` not in:\n{text}");
        std::fs::write(&p, text.replacen(from, to, 1)).expect("write config");
    }

    /// Runs a shell line in the environment: (exit code, stdout).
    fn sh(&self, line: &str) -> (Option<i32>, String) {
        let out = self.run(&["exec", "--", "sh", "-c", line]);
        (out.status.code(), text(&out.stdout).trim().to_string())
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

/// `(name, action)` of each row of a plan's or deploy's extension list.
fn actions(rows: &serde_json::Value) -> Vec<(String, String)> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn config_validate_and_plan_refuse_what_deploy_refuses() {
    // No Docker needed: every problem is found before the platform is asked anything.
    let dir = tempfile::tempdir().expect("tmp");
    let write = |rel: &str, body: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    };
    let ext = |name: &str, requires: &str| {
        format!(
            "name: {name}\nversion: \"1\"\ndescription: test\nrequires: [{requires}]\ninstall:\n  - apt: {{packages: [tree]}}\n"
        )
    };
    write("exts/loop-a.yaml", &ext("loop-a", "loop-b"));
    write("exts/loop-b.yaml", &ext("loop-b", "loop-a"));
    write(
        "sindri.yaml",
        "name: bad-exts\ndeployment:\n  provider: docker\n  image: sindri-test/debian:bookworm\n\
         extensions:\n  active: [ripgrepp, loop-a, docker-cli, podman, cuda-toolkit]\n  sources: [exts]\n",
    );
    let want = [
        "4 problems with the requested extensions",
        "unknown extension `ripgrepp` (listed in extensions.active); did you mean `ripgrep`?",
        "extensions require each other in a cycle: loop-a → loop-b → loop-a",
        "`docker-cli` (listed in extensions.active) conflicts with `podman` (listed in extensions.active); choose one",
        "`cuda-toolkit` (listed in extensions.active) needs a GPU, and deployment.resources.gpu is not set",
    ];
    let mut said = Vec::new();
    for args in [&["config", "validate"][..], &["plan"], &["deploy"]] {
        let out = sindri(dir.path(), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?} does not say `{w}`:\n{err}");
        }
        said.push(err);
    }
    assert_eq!(said[0], said[1], "validate and plan say the same");
    assert_eq!(said[0], said[2], "validate and deploy say the same");

    // JSON consumers get the same message in the error document.
    let out = sindri(dir.path(), &["--output", "json", "config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    let doc = json(&out);
    assert_eq!(doc["error"]["kind"], "invalid", "{doc}");
    let msg = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("loop-a → loop-b → loop-a"), "{doc}");

    // An environment cut off from the network refuses what downloads.
    write(
        "sindri.yaml",
        "name: offline\ndeployment:\n  provider: docker\n  image: sindri-test/debian:bookworm\n\
         providers:\n  docker: {network: none}\nextensions:\n  active: [jq]\n",
    );
    let out = sindri(dir.path(), &["config", "validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "`jq` downloads while installing, and the environment has no network (providers.docker.network is `none`)"
        ),
        "{}",
        text(&out.stderr)
    );
    // The same file without extensions is valid.
    write(
        "sindri.yaml",
        "name: offline\ndeployment:\n  provider: docker\n  image: sindri-test/debian:bookworm\n\
         providers:\n  docker: {network: none}\n",
    );
    let out = sindri(dir.path(), &["config", "validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Three apt-based extensions in a chain (`ext-a` requires `ext-b` requires `ext-c`),
/// from the project's own directory, with a `requirements:` block.
fn write_chain(p: &Project) {
    let ext = |name: &str, pkg: &str, requires: &str, more: &str| {
        format!(
            "name: {name}\nversion: \"1\"\ndescription: test extension installing {pkg}\n\
             requires: [{requires}]\ninstall:\n  - apt: {{packages: [{pkg}]}}\n{more}"
        )
    };
    p.write(
        "exts/ext-c.yaml",
        &ext(
            "ext-c",
            "jq",
            "",
            "validate:\n  - run: jq --version\n    expect: '^jq-1\\.'\n",
        ),
    );
    p.write("exts/ext-b.yaml", &ext("ext-b", "less", "ext-c", ""));
    p.write(
        "exts/ext-a.yaml",
        &ext(
            "ext-a",
            "tree",
            "ext-b",
            "requirements:\n  memory: 256MiB\n  disk: 20MiB\nvalidate:\n  - run: tree --version\n    expect: '^tree v2'\n",
        ),
    );
}

#[test]
fn a_chain_with_requirements_deploys_in_order_and_comes_back_in_a_replaced_container() {
    let p = Project::with_deployment(
        "chain",
        "  resources: {memory: 128MiB}\n",
        "  active: [ext-a]\n  sources: [exts]\n",
    );
    write_chain(&p);

    // The requirement is checked before anything is created.
    for args in [&["config", "validate"][..], &["plan"], &["deploy"]] {
        let out = p.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(
                "`ext-a` (listed in extensions.active) needs 256MiB of memory, and deployment.resources.memory is 128MiB"
            ),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(p.labelled(), "", "nothing was created");
    p.edit_config("memory: 128MiB", "memory: 1GiB");

    let plan = p.ok_json(&["plan"]);
    assert_eq!(
        actions(&plan["extensions"]["extensions"]),
        pairs(&[
            ("ext-c", "install"),
            ("ext-b", "install"),
            ("ext-a", "install")
        ])
    );

    let d = p.ok_json(&["deploy"]);
    assert_eq!(
        d["extensions"]["installed"],
        serde_json::json!(["ext-c", "ext-b", "ext-a"])
    );
    let (code, out) = p.sh("dpkg-query -W -f='${Package} ${db:Status-Status}\\n' jq less tree");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "jq installed\nless installed\ntree installed");
    let container = p.labelled();

    let plan = p.ok_json(&["plan"]);
    assert_eq!(
        actions(&plan["extensions"]["extensions"]),
        pairs(&[("ext-c", "keep"), ("ext-b", "keep"), ("ext-a", "keep")])
    );
    let human = text(&p.run(&["plan"]).stdout);
    assert!(
        human.contains("no changes: the environment is up to date"),
        "{human}"
    );

    // A spec change replaces the container: what it had installed is gone, and deploy
    // installs it again (`restore`), in order, having said so in the plan first.
    p.edit_config("  resources:", "  env: {CHANGED: \"1\"}\n  resources:");
    let plan = p.ok_json(&["plan"]);
    assert!(
        plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["action"] == "replace"),
        "{plan}"
    );
    assert_eq!(
        actions(&plan["extensions"]["extensions"]),
        pairs(&[
            ("ext-c", "restore"),
            ("ext-b", "restore"),
            ("ext-a", "restore")
        ])
    );
    let d = p.ok_json(&["deploy"]);
    assert_ne!(p.labelled(), container, "the container was replaced");
    assert_eq!(
        d["extensions"]["installed"],
        serde_json::json!(["ext-c", "ext-b", "ext-a"])
    );
    assert_eq!(
        actions(&d["extensions"]["plan"]),
        pairs(&[
            ("ext-c", "restore"),
            ("ext-b", "restore"),
            ("ext-a", "restore")
        ])
    );
    let (code, out) = p.sh("command -v jq less tree");
    assert_eq!(code, Some(0), "{out}");
    let st = p.ok_json(&["extension", "status"]);
    let states: Vec<&str> = st["extensions"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|e| e["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["ok", "ok", "ok"], "{st}");
}

#[test]
fn deploy_without_extensions_then_install_by_name_and_force() {
    let p = Project::new("noext", "  active: [jq]\n");
    let d = p.ok_json(&["deploy", "--no-extensions"]);
    assert!(d.get("extensions").is_none(), "{d}");
    let (code, out) = p.sh("command -v jq; ls /var/lib/sindri/extensions 2>/dev/null");
    assert_ne!(code, Some(0), "nothing installed: {out}");
    assert_eq!(out, "");
    let st = p.ok_json(&["extension", "status"]);
    assert_eq!(st["extensions"][0]["name"], "jq");
    assert_eq!(st["extensions"][0]["state"], "missing");

    // `extension install NAME` installs it, with what it requires.
    let r = p.ok_json(&["extension", "install", "jq"]);
    assert_eq!(actions(&r["plan"]), pairs(&[("jq", "install")]));
    assert_eq!(r["results"][0]["status"], "installed", "{r}");
    let (code, out) = p.sh("jq --version");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("jq-1."), "{out}");
    let first = p.sh("cat /var/lib/sindri/extensions/jq").1;

    // Again: nothing to do. With --force: installed again.
    let out = p.run(&["extension", "install", "jq"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("already installed: jq"),
        "{}",
        text(&out.stdout)
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = p.ok_json(&["extension", "install", "--force", "jq"]);
    assert_eq!(actions(&r["plan"]), pairs(&[("jq", "reinstall")]));
    assert_eq!(r["results"][0]["status"], "installed", "{r}");
    let again = p.sh("cat /var/lib/sindri/extensions/jq").1;
    assert_ne!(
        first, again,
        "the marker was written again:\n{first}\n{again}"
    );

    // One that sindri.yaml does not ask for installs too, with a note saying so.
    let out = p.run(&["extension", "install", "tree"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("tree is not in sindri.yaml: add it to extensions.active"),
        "{}",
        text(&out.stdout)
    );
    // An unknown name changes nothing.
    let out = p.run(&["extension", "install", "jqq"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did you mean `jq`?"),
        "{}",
        text(&out.stderr)
    );
    let st = p.ok_json(&["extension", "status"]);
    let rows: Vec<(String, String)> = st["extensions"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, pairs(&[("jq", "ok"), ("tree", "extra")]));
}

/// An HTTPS file server on this machine, on the address the environment's container
/// reaches it by (its network's gateway), with a certificate from a throwaway CA.
/// Stopped when dropped.
struct HttpsServer {
    child: std::process::Child,
    url: String,
    ca_pem: String,
    log: std::path::PathBuf,
}

impl HttpsServer {
    /// Serves `root` on `ip`.
    fn start(work: &Path, root: &Path, ip: &str) -> HttpsServer {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(work)
                .output()
                .expect("openssl is needed for this test (Debian: openssl, pulled in by ca-certificates)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                text(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sindri test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=sindri-test-downloads",
        ]);
        openssl(&csr);
        std::fs::write(
            work.join("srv.ext"),
            format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n"),
        )
        .expect("write");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "srv.ext",
        ]);
        const SERVER: &str = "import functools, http.server, ssl, sys\n\
            cert, key, root, ip = sys.argv[1:5]\n\
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)\n\
            srv = http.server.ThreadingHTTPServer((ip, 0), handler)\n\
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
            ctx.load_cert_chain(cert, key)\n\
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
            print(srv.server_address[1], flush=True)\n\
            srv.serve_forever()\n";
        let log = work.join("server.log");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(work.join("srv.pem"))
            .arg(work.join("srv.key"))
            .arg(root)
            .arg(ip)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("python3 is needed for this test's HTTPS server");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut port)
            .expect("the server prints its port");
        assert!(
            !port.trim().is_empty(),
            "the HTTPS server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        HttpsServer {
            child,
            url: format!("https://{ip}:{}", port.trim()),
            ca_pem: std::fs::read_to_string(work.join("ca.pem")).expect("CA"),
            log,
        }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) runs");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_pinned_download_is_installed_when_its_sha256_matches_and_refused_when_not() {
    let p = Project::new("dl", "  sources: [exts]\n");
    p.write("exts/.keep", "");
    p.ok_json(&["deploy"]);
    let container = p.labelled();
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
            container.trim(),
        ])
        .output()
        .expect("docker runs");
    let gateway = text(&out.stdout).trim().to_string();
    assert!(!gateway.is_empty(), "no gateway: {}", text(&out.stderr));

    let work = tempfile::tempdir().expect("tmp");
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("tool"), "#!/bin/sh\necho sindri-dl-tool 1.0\n").expect("write");
    std::fs::write(files.join("other"), "#!/bin/sh\necho not what was pinned\n").expect("write");
    let server = HttpsServer::start(work.path(), &files, &gateway);

    // The environment trusts the test CA as it would a company CA; downloads then go
    // through the same curl and TLS verification as any https:// URL.
    let ca: String = server
        .ca_pem
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    p.write(
        "exts/test-ca.yaml",
        &format!(
            "name: test-ca\nversion: \"1\"\ndescription: trusts the test CA\nrequires: [curl]\ninstall:\n  - script:\n      run: |\n        cat > /usr/local/share/ca-certificates/sindri-test-ca.crt <<'PEM'\n{ca}        PEM\n        update-ca-certificates\nremove:\n  script: rm -f /usr/local/share/ca-certificates/sindri-test-ca.crt && update-ca-certificates --fresh\n"
        ),
    );
    let dl = |name: &str, file: &str, sha: &str| {
        format!(
            "name: {name}\nversion: \"1\"\ndescription: a pinned download\nrequires: [test-ca]\ninstall:\n  - download:\n      files:\n        - {{arch: amd64, url: \"{url}/{file}\", sha256: {sha}}}\n        - {{arch: arm64, url: \"{url}/{file}\", sha256: {sha}}}\n      install: {{binary: /usr/local/bin/{name}}}\nvalidate:\n  - run: {name}\n    expect: '^sindri-dl-tool 1\\.0$'\n",
            url = server.url
        )
    };
    let good_sum = sha256_of(&files.join("tool"));
    p.write("exts/dl-ok.yaml", &dl("dl-ok", "tool", &good_sum));
    // dl-bad pins the checksum of `tool` but its URL serves another file.
    p.write("exts/dl-bad.yaml", &dl("dl-bad", "other", &good_sum));

    let r = p.ok_json(&["extension", "install", "dl-ok"]);
    let installed: Vec<&str> = r["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|x| x["status"] == "installed")
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(installed, ["curl", "test-ca", "dl-ok"], "{r}");
    assert!(
        server.requests().contains("GET /tool "),
        "{}",
        server.requests()
    );
    let (code, out) = p.sh("dl-ok");
    assert_eq!((code, out.as_str()), (Some(0), "sindri-dl-tool 1.0"));
    let v = p.ok_json(&["extension", "validate", "dl-ok"]);
    assert_eq!(v["validations"][0]["ok"], true, "{v}");

    let out = p.run(&["extension", "install", "dl-bad"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "extension `dl-bad` failed at step 1/3 (download /usr/local/bin/dl-bad): exit code 4"
        ),
        "{err}"
    );
    let other_sum = sha256_of(&files.join("other"));
    assert!(
        err.contains(&format!(
            "checksum mismatch for {}/other: expected {good_sum}, got {other_sum}; the file was not used",
            server.url
        )),
        "{err}"
    );
    assert!(
        server.requests().contains("GET /other "),
        "{}",
        server.requests()
    );
    let (code, out) = p.sh(
        "ls /usr/local/bin/dl-bad /var/lib/sindri/extensions/dl-bad 2>&1; ls /usr/local/bin | grep -c sindri-new",
    );
    assert_ne!(code, Some(0), "nothing of dl-bad is left: {out}");
    assert!(out.ends_with('0'), "no half-installed file: {out}");
    let st = p.ok_json(&["extension", "status"]);
    let names: Vec<&str> = st["extensions"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(!names.contains(&"dl-bad"), "dl-bad is not recorded: {st}");
    assert!(names.contains(&"dl-ok"), "{st}");
}
