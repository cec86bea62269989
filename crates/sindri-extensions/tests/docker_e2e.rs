//! End to end on the real Docker Engine: a Debian rootfs image built locally by
//! `.ci/images/debian/build.sh`, deployed through the Docker provider from the registry
//! and the dispatcher, with extensions installed by apt from Debian's mirrors.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use sindri_core::{DeployOptions, Deployment, NoProgress, Provider, ResolvedSpec, dispatch};
use sindri_extensions::{
    Action, Catalog, Installer, NoInstallProgress, Outcome, Request, Target, check_removal, exec,
    resolve,
};
use sindri_spec::{ProviderKind, ProvidersSpec, Spec};
use sindri_state::StateStore;

const IMAGE: &str = "sindri-test/debian:bookworm";

/// Builds the Debian image once per process (fast when it exists).
fn ensure_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/images/debian/build.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "building {IMAGE} failed ({}):\n{}{}\nThese tests need a running Docker Engine \
             (`sudo systemctl start docker`), root, debootstrap (`sudo apt-get install -y debootstrap`) \
             and access to Debian's mirrors.",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// An environment under test: its project directory, state and spec; removes every
/// Docker object labelled with its name when dropped, also when the test fails.
struct Env {
    name: String,
    dir: tempfile::TempDir,
    state_dir: tempfile::TempDir,
    spec: ResolvedSpec,
    provider: Arc<dyn Provider>,
}

impl Env {
    fn new(tag: &str, active: &[&str]) -> Env {
        ensure_image();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        remove_stale();
        let name = format!("t-ext-{tag}-{}-{nanos:x}", std::process::id());
        let dir = tempfile::tempdir().expect("project dir");
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "name": name,
            "deployment": {"provider": "docker", "image": IMAGE},
            "extensions": {"active": active, "sources": ["catalog"]},
        }))
        .expect("valid spec");
        let spec = ResolvedSpec::new(spec, &dir.path().join("sindri.yaml"));
        let provider = sindri_providers::registry()
            .create(ProviderKind::Docker, &ProvidersSpec::default())
            .expect("docker provider");
        Env {
            name,
            dir,
            state_dir: tempfile::tempdir().expect("state dir"),
            spec,
            provider,
        }
    }

    fn write_ext(&self, name: &str, body: &str) {
        let p = self.dir.path().join("catalog").join(format!("{name}.yaml"));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write manifest");
    }

    fn catalog(&self) -> Catalog {
        Catalog::for_spec(&self.spec.spec.extensions, &self.spec.base_dir).expect("catalog loads")
    }

    fn state(&self) -> StateStore {
        StateStore::open(self.state_dir.path()).expect("state")
    }

    async fn deploy(&self) -> Deployment {
        dispatch::deploy(
            self.provider.as_ref(),
            &self.spec,
            DeployOptions::default(),
            &NoProgress,
        )
        .await
        .expect("deploy")
    }

    /// Runs a shell line in the environment: (exit code, output).
    async fn sh(&self, d: &Deployment, line: &str) -> (i32, String) {
        let r = exec::run(
            self.provider.as_ref(),
            d,
            vec!["sh".into(), "-c".into(), line.into()],
            &|_| {},
        )
        .await
        .expect("exec");
        (r.code, r.stdout.join("\n"))
    }
}

/// Removes what earlier runs of these tests left when they were killed (a timeout
/// skips `Drop`): environments named `t-ext-TAG-PID-…` whose process is gone.
fn remove_stale() {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=sindri.managed=true",
            "--format",
            "{{.Label \"sindri.environment\"}}",
        ])
        .output();
    let Ok(out) = out else { return };
    for env in String::from_utf8_lossy(&out.stdout).lines() {
        let parts: Vec<&str> = env.split('-').collect();
        if env.starts_with("t-ext-")
            && parts.len() >= 5
            && let Ok(pid) = parts[parts.len() - 2].parse::<u32>()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            remove_labelled(env);
        }
    }
}

fn remove_labelled(name: &str) {
    let label = format!("label=sindri.environment={name}");
    let list = |args: &[&str]| -> Vec<String> {
        std::process::Command::new("docker")
            .args(args)
            .args(["--filter", &label])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let rm = |args: &[&str], ids: Vec<String>| {
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(args)
                .args(&ids)
                .output();
        }
    };
    rm(&["rm", "-f", "-v"], list(&["ps", "-aq"]));
    rm(&["volume", "rm", "-f"], list(&["volume", "ls", "-q"]));
    rm(&["network", "rm"], list(&["network", "ls", "-q"]));
}

impl Drop for Env {
    fn drop(&mut self) {
        remove_labelled(&self.name);
    }
}

fn apt_ext(name: &str, version: &str, package: &str, requires: &[&str], extra: &str) -> String {
    format!(
        "name: {name}\nversion: \"{version}\"\ndescription: test extension installing {package}\n\
         requires: [{}]\ninstall:\n  - apt: {{packages: [{package}]}}\n{extra}",
        requires.join(", ")
    )
}

#[tokio::test]
async fn a_chain_installs_in_order_redeploys_as_a_noop_upgrades_one_and_removes() {
    let env = Env::new("chain", &["ext-a"]);
    // ext-a requires ext-b requires ext-c; ext-c exports a variable ext-a's check reads.
    env.write_ext(
        "ext-c",
        &apt_ext("ext-c", "1", "jq", &[], "env: {EXT_C_GREETING: hello-from-c}\nvalidate:\n  - run: jq --version\n    expect: '^jq-1\\.'\n"),
    );
    env.write_ext(
        "ext-b",
        &apt_ext(
            "ext-b",
            "1",
            "less",
            &["ext-c"],
            "validate:\n  - run: less --version\n    expect: '^less \\d+'\n",
        ),
    );
    env.write_ext(
        "ext-a",
        &apt_ext(
            "ext-a",
            "1",
            "tree",
            &["ext-b"],
            "validate:\n  - run: tree --version\n    expect: '^tree v2'\n  - run: echo \"$EXT_C_GREETING\"\n    expect: '^hello-from-c$'\n\
             hooks:\n  post_deploy: echo deployed >> /var/tmp/ext-a-post-deploy\n",
        ),
    );
    let catalog = env.catalog();
    let req = Request::from_spec(&env.spec.spec.extensions);
    let resolution = resolve(&catalog, &req, &Target::from_spec(&env.spec.spec)).expect("resolves");
    assert_eq!(
        resolution.waves,
        vec![vec!["ext-c"], vec!["ext-b"], vec!["ext-a"]]
    );

    let d = env.deploy().await;
    let state = env.state();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d,
        &catalog,
        &state,
        &NoInstallProgress,
    );

    // First install: all three, in order, one apt run per wave, validated.
    let (plan, report) = installer.sync(&resolution).await.expect("sync");
    assert!(
        plan.items.iter().all(|i| i.action == Action::Install),
        "{plan:?}"
    );
    assert!(report.is_success(), "{:?}", report.error());
    assert_eq!(report.installed(), ["ext-c", "ext-b", "ext-a"]);
    assert_eq!(report.apt_runs, 3);
    let (code, out) = env
        .sh(
            &d,
            "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' jq less tree",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "jq installed\nless installed\ntree installed");
    // Login shells get the exported environment.
    let (_, greeting) = env.sh(&d, ". /etc/profile; echo \"$EXT_C_GREETING\"").await;
    assert_eq!(greeting, "hello-from-c");
    let recorded = state.extensions(&d.project, &d.name).expect("records");
    assert_eq!(
        recorded
            .iter()
            .map(|r| r.extension.as_str())
            .collect::<Vec<_>>(),
        ["ext-a", "ext-b", "ext-c"]
    );
    assert!(
        recorded
            .iter()
            .all(|r| r.version == "1" && r.validated_at.is_some()),
        "{recorded:?}"
    );

    // `validate` runs the checks again and passes.
    let probe = installer.probe().await.expect("probe");
    let names: Vec<String> = resolution.order.clone();
    let v = installer.validate(&names, &probe).await.expect("validate");
    assert!(v.iter().all(|v| v.ok), "{v:?}");

    // Redeploy with the same spec: same container, nothing reinstalled, state untouched.
    let d2 = env.deploy().await;
    assert_eq!(
        d2.resource_id, d.resource_id,
        "an unchanged deploy keeps the container"
    );
    let installer = Installer::new(
        env.provider.as_ref(),
        &d2,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (plan, report) = installer.sync(&resolution).await.expect("sync again");
    assert!(plan.is_noop(), "{plan:?}");
    assert!(report.installed().is_empty(), "{report:?}");
    assert_eq!(report.unchanged(), ["ext-c", "ext-b", "ext-a"]);
    assert_eq!(report.apt_runs, 0);
    let again = state.extensions(&d.project, &d.name).expect("records");
    for (a, b) in recorded.iter().zip(&again) {
        assert_eq!(
            a.installed_at, b.installed_at,
            "{} was not reinstalled",
            a.extension
        );
    }
    // post_deploy hooks run after every deploy, also when nothing changed.
    let (_, hook_runs) = env.sh(&d2, "cat /var/tmp/ext-a-post-deploy").await;
    assert_eq!(hook_runs, "deployed\ndeployed");

    // A new version of the middle extension reinstalls only it.
    env.write_ext(
        "ext-b",
        &apt_ext(
            "ext-b",
            "2",
            "less",
            &["ext-c"],
            "validate:\n  - run: less --version\n    expect: '^less \\d+'\n",
        ),
    );
    let catalog = env.catalog();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d2,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (plan, report) = installer.sync(&resolution).await.expect("sync upgrade");
    let actions: Vec<(&str, &Action)> = plan
        .items
        .iter()
        .map(|i| (i.name.as_str(), &i.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("ext-c", &Action::Keep),
            ("ext-b", &Action::Upgrade { from: "1".into() }),
            ("ext-a", &Action::Keep)
        ]
    );
    assert_eq!(report.installed(), ["ext-b"]);
    let b = state
        .extensions(&d.project, &d.name)
        .expect("records")
        .into_iter()
        .find(|r| r.extension == "ext-b");
    assert_eq!(b.map(|r| r.version), Some("2".into()));

    // Removing what something else requires is refused before anything runs.
    let probe = installer.probe().await.expect("probe");
    let e = installer
        .remove(&["ext-b".into()], &probe)
        .await
        .expect_err("refused");
    assert!(e.message().contains("`ext-a` requires `ext-b`"), "{e}");
    let (code, _) = env.sh(&d2, "command -v less").await;
    assert_eq!(code, 0, "nothing was removed");

    // Remove the top: its package and record go, the rest stays.
    let removed = installer
        .remove(&["ext-a".into()], &probe)
        .await
        .expect("remove ext-a");
    assert!(removed[0].ok, "{removed:?}");
    assert_eq!(removed[0].removed_packages, ["tree"]);
    let (code, _) = env.sh(&d2, "command -v tree").await;
    assert_ne!(code, 0, "tree is gone");
    let (code, _) = env.sh(&d2, "command -v jq && command -v less").await;
    assert_eq!(code, 0, "jq and less stay");
    let left: Vec<String> = state
        .extensions(&d.project, &d.name)
        .expect("records")
        .into_iter()
        .map(|r| r.extension)
        .collect();
    assert_eq!(left, ["ext-b", "ext-c"]);

    // Then the rest, dependents first; the environment file goes with ext-c.
    let probe = installer.probe().await.expect("probe");
    let removed = installer
        .remove(&["ext-c".into(), "ext-b".into()], &probe)
        .await
        .expect("remove rest");
    assert_eq!(
        removed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["ext-b", "ext-c"]
    );
    assert!(removed.iter().all(|r| r.ok), "{removed:?}");
    let (code, out) = env.sh(&d2, "command -v jq || command -v less || find /etc/sindri/env.d /var/lib/sindri/extensions -type f").await;
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "packages, environment files and markers are gone"
    );
    assert!(
        state
            .extensions(&d.project, &d.name)
            .expect("records")
            .is_empty()
    );
    let probe = installer.probe().await.expect("probe");
    assert!(probe.env.markers.is_empty());
    assert!(check_removal(&catalog, &probe.installed(), &["ext-a".into()]).is_err());
}

#[tokio::test]
async fn a_bad_package_fails_only_its_extension_and_skips_its_dependents() {
    let env = Env::new("fail", &["good", "bad", "after-bad"]);
    env.write_ext("good", &apt_ext("good", "1", "tree", &[], ""));
    env.write_ext(
        "bad",
        &apt_ext("bad", "1", "sindri-no-such-package", &[], ""),
    );
    env.write_ext("after-bad", &apt_ext("after-bad", "1", "jq", &["bad"], ""));
    let catalog = env.catalog();
    let resolution = resolve(
        &catalog,
        &Request::from_spec(&env.spec.spec.extensions),
        &Target::default(),
    )
    .expect("resolves");
    assert_eq!(
        resolution.waves,
        vec![vec!["bad", "good"], vec!["after-bad"]]
    );
    let d = env.deploy().await;
    let state = env.state();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (_, report) = installer.sync(&resolution).await.expect("sync");

    // The batched apt run failed; each extension's packages were then tried alone, so
    // the good one is installed and the bad one is named, with apt's own words.
    assert_eq!(report.installed(), ["good"]);
    let bad = report
        .results
        .iter()
        .find(|r| r.name == "bad")
        .expect("bad");
    let Outcome::Failed(f) = &bad.outcome else {
        panic!("bad should fail: {bad:?}")
    };
    assert_eq!(
        (f.phase, f.phases, f.label.as_str()),
        (1, 2, "apt-get install sindri-no-such-package")
    );
    assert_eq!(f.exit_code, Some(100));
    assert!(
        f.message
            .contains("no package named sindri-no-such-package"),
        "{f:?}"
    );
    assert!(
        f.log_tail
            .iter()
            .any(|l| l.contains("Unable to locate package")),
        "{f:?}"
    );
    let after = report
        .results
        .iter()
        .find(|r| r.name == "after-bad")
        .expect("after-bad");
    assert_eq!(
        after.outcome,
        Outcome::Skipped {
            reason: "requires `bad`, which did not install".into()
        }
    );
    let text = report.error().expect("an error").to_string();
    assert!(
        text.contains(
            "extension `bad` failed at step 1/2 (apt-get install sindri-no-such-package)"
        ),
        "{text}"
    );
    assert!(text.contains("extension `after-bad` skipped"), "{text}");

    let recorded: BTreeSet<String> = state
        .extensions(&d.project, &d.name)
        .expect("records")
        .into_iter()
        .map(|r| r.extension)
        .collect();
    assert_eq!(
        recorded,
        BTreeSet::from(["good".to_string()]),
        "only what installed is recorded"
    );
    let (code, _) = env.sh(&d, "command -v tree").await;
    assert_eq!(code, 0);
}

/// Built-in extensions that need hosts other than Debian's mirrors and PyPI (the only
/// ones this test can reach), or a GPU. Every other built-in extension is installed
/// and validated for real below, so a wrong package name or version pattern fails CI.
/// PyPI is reachable from this machine but not from its containers (they do not trust
/// the network's TLS proxy), so pip-based extensions are left out too.
const NEEDS_OTHER_HOSTS: &[&str] = &[
    "cuda-toolkit", // NVIDIA's repository, and a GPU
    "docker-cli",   // download.docker.com
    "gh",           // github.com release downloads
    "golang",       // dl.google.com
    "jupyter",      // PyPI over TLS
    "kubectl",      // dl.k8s.io
    "nodejs",       // deb.nodesource.com
    "pnpm",         // registry.npmjs.org
    "pytorch-cpu",  // download.pytorch.org
    "ruff",         // PyPI over TLS
    "rust",         // sh.rustup.rs
    "terraform",    // apt.releases.hashicorp.com
    "typescript",   // registry.npmjs.org
    "uv",           // PyPI over TLS
];

/// Whether an extension belongs to the toolchain half of the catalog test (the two
/// halves run in parallel, each well inside the per-test time limit).
fn is_toolchain(m: &sindri_extensions::Manifest) -> bool {
    use sindri_extensions::Category;
    matches!(
        m.category,
        Category::Language | Category::Build | Category::Vcs
    )
}

#[test]
fn the_extensions_left_out_of_the_catalog_test_exist() {
    let catalog = Catalog::builtin().expect("built-in catalog");
    for n in NEEDS_OTHER_HOSTS {
        assert!(
            catalog.get(n).is_some(),
            "{n} is listed as left out but is not in the catalog"
        );
    }
    // Every other extension is in exactly one half, by `is_toolchain`.
}

/// Installs one half; returns the environment and deployment for further checks.
async fn install_builtin_half(tag: &str, toolchain: bool) -> (Env, Deployment) {
    let env = Env::new(tag, &[]);
    let catalog = Catalog::builtin().expect("built-in catalog");
    let names: Vec<String> = catalog
        .extensions()
        .filter(|e| !NEEDS_OTHER_HOSTS.contains(&e.manifest.name.as_str()))
        .filter(|e| is_toolchain(&e.manifest) == toolchain)
        .map(|e| e.manifest.name.clone())
        .collect();
    let resolution =
        resolve(&catalog, &Request::named(&names), &Target::default()).expect("resolves");
    let d = env.deploy().await;
    let state = env.state();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (_, report) = installer.sync(&resolution).await.expect("sync");
    if let Some(e) = report.error() {
        panic!("{e}");
    }
    assert_eq!(
        report.installed().len(),
        resolution.order.len(),
        "{report:?}"
    );
    for n in &names {
        assert!(report.installed().contains(&n.as_str()), "{n} installed");
    }
    (env, d)
}

#[tokio::test]
async fn builtin_toolchains_install_and_validate_on_debian() {
    let (env, d) = install_builtin_half("tools", true).await;
    // Login and interactive shells see what extensions export.
    let (code, out) = env
        .sh(&d, ". /etc/profile; command -v python3; echo $VIRTUAL_ENV")
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "/opt/sindri/python/bin/python3\n/opt/sindri/python");
    let (_, out) = env
        .sh(&d, "bash -ic 'command -v python3' 2>/dev/null")
        .await;
    assert_eq!(
        out, "/opt/sindri/python/bin/python3",
        "interactive bash sources the environment too"
    );
}

#[tokio::test]
async fn builtin_utilities_install_and_validate_on_debian() {
    let (env, d) = install_builtin_half("utils", false).await;
    // Debian's fdfind and batcat are reachable under their usual names.
    let (code, out) = env.sh(&d, "for c in fd bat; do command -v $c; done").await;
    assert_eq!(
        (code, out.as_str()),
        (0, "/usr/local/bin/fd\n/usr/local/bin/bat")
    );
}

/// Stand-ins for pip (`python3`), npm and cargo that log when they start and end, take
/// a second and fail for a package named `bad-pkg`, and a wrapper around the real apt-get that logs the same: together
/// they show whether two runs of one package manager ever overlapped.
const RECORDING_SHIMS: &str = r#"name: shims
version: "1"
description: package managers that record when they run
install:
  - script:
      run: |
        for tool in python3 npm cargo; do
          printf '%s\n' '#!/bin/sh' \
            "echo \"start $tool \$\$ \$(date +%s%N) \$*\" >> /var/tmp/pm.log" \
            'sleep 1' \
            "echo \"end $tool \$\$ \$(date +%s%N)\" >> /var/tmp/pm.log" \
            'case " $* " in *" bad-pkg "*) echo "ERROR: No matching distribution found for bad-pkg" >&2; exit 1 ;; esac' \
            > /usr/local/bin/$tool
          chmod 0755 /usr/local/bin/$tool
        done
        printf '%s\n' '#!/bin/sh' \
          'echo "start apt-get $$ $(date +%s%N) $*" >> /var/tmp/pm.log' \
          '/usr/bin/apt-get "$@"; rc=$?' \
          'echo "end apt-get $$ $(date +%s%N)" >> /var/tmp/pm.log' \
          'exit $rc' > /usr/local/bin/apt-get
        chmod 0755 /usr/local/bin/apt-get
remove:
  script: rm -f /usr/local/bin/python3 /usr/local/bin/npm /usr/local/bin/cargo /usr/local/bin/apt-get
"#;

/// One run of a (stand-in) package manager, from the shims' log.
#[derive(Debug)]
struct PmRun {
    tool: String,
    start: u128,
    end: u128,
    args: String,
}

fn pm_runs(log: &str) -> Vec<PmRun> {
    let mut runs: Vec<(String, PmRun)> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.splitn(5, ' ').collect();
        let (Some(kind), Some(tool), Some(pid), Some(ts)) =
            (f.first(), f.get(1), f.get(2), f.get(3))
        else {
            panic!("bad log line `{line}`")
        };
        let ts: u128 = ts.parse().expect("a timestamp");
        match *kind {
            "start" => runs.push((
                format!("{tool}-{pid}"),
                PmRun {
                    tool: tool.to_string(),
                    start: ts,
                    end: u128::MAX,
                    args: f.get(4).unwrap_or(&"").to_string(),
                },
            )),
            "end" => {
                let key = format!("{tool}-{pid}");
                let r = runs
                    .iter_mut()
                    .rev()
                    .find(|(k, r)| *k == key && r.end == u128::MAX)
                    .expect("a start for every end");
                r.1.end = ts;
            }
            other => panic!("bad log line kind {other}"),
        }
    }
    runs.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test]
async fn runs_of_one_package_manager_never_overlap_and_a_wave_batches_them() {
    let env = Env::new(
        "locks",
        &[
            "pip-a", "pip-b", "pip-c", "pip-d", "npm-a", "npm-b", "apt-x", "dpkg-y",
        ],
    );
    env.write_ext("shims", RECORDING_SHIMS);
    let ext = |name: &str, steps: &str| {
        env.write_ext(
            name,
            &format!(
                "name: {name}\nversion: \"1\"\ndescription: test\nrequires: [shims]\ninstall:\n{steps}remove: {{script: \"true\"}}\n"
            ),
        )
    };
    // pip-a and pip-b start with a pip step with the same index: one batch. pip-c's pip
    // step comes after a script, pip-d uses another index: each runs on its own, and
    // the three must take turns. apt-x's apt step runs alongside dpkg-y's script, which
    // says it uses apt (as cuda-toolkit's `dpkg -i` does): they must take turns too.
    ext("pip-a", "  - pip: {packages: [pkg-a]}\n");
    ext("pip-b", "  - pip: {packages: [pkg-b, pkg-a]}\n");
    ext(
        "pip-c",
        "  - script: {run: \"true\"}\n  - pip: {packages: [pkg-c]}\n",
    );
    ext(
        "pip-d",
        "  - pip: {packages: [pkg-d], index_url: \"https://pypi.example.invalid/simple\"}\n",
    );
    ext("npm-a", "  - npm: {packages: [npm-a]}\n");
    ext("npm-b", "  - npm: {packages: [npm-b]}\n");
    ext(
        "apt-x",
        "  - script: {run: \"true\"}\n  - apt: {packages: [tree]}\n",
    );
    ext(
        "dpkg-y",
        "  - script:\n      uses: [apt]\n      run: |\n        echo \"start dpkg $$ $(date +%s%N)\" >> /var/tmp/pm.log\n        sleep 2\n        echo \"end dpkg $$ $(date +%s%N)\" >> /var/tmp/pm.log\n",
    );
    let catalog = env.catalog();
    let resolution = resolve(
        &catalog,
        &Request::from_spec(&env.spec.spec.extensions),
        &Target::default(),
    )
    .expect("resolves");
    assert_eq!(resolution.waves.len(), 2, "{:?}", resolution.waves);
    assert_eq!(resolution.waves[1].len(), 8, "{:?}", resolution.waves);

    let d = env.deploy().await;
    let state = env.state();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (_, report) = installer.sync(&resolution).await.expect("sync");
    assert!(report.is_success(), "{:?}", report.error());
    assert_eq!(report.installed().len(), 9, "{report:?}");

    let (code, log) = env.sh(&d, "cat /var/tmp/pm.log").await;
    assert_eq!(code, 0, "{log}");
    let runs = pm_runs(&log);
    for class in [&["python3"][..], &["npm"], &["apt-get", "dpkg"]] {
        let of: Vec<&PmRun> = runs
            .iter()
            .filter(|r| class.contains(&r.tool.as_str()))
            .collect();
        for (i, a) in of.iter().enumerate() {
            for b in &of[i + 1..] {
                assert!(
                    a.end <= b.start || b.end <= a.start,
                    "{a:?} and {b:?} ran at the same time:\n{log}"
                );
            }
        }
    }
    let pip: Vec<&str> = runs
        .iter()
        .filter(|r| r.tool == "python3")
        .map(|r| r.args.as_str())
        .collect();
    assert_eq!(
        pip.len(),
        3,
        "one batch for pip-a and pip-b, then pip-c, pip-d: {pip:?}"
    );
    assert!(
        pip.iter()
            .any(|a| a.ends_with("--progress-bar off pkg-a pkg-b")),
        "pip-a and pip-b in one run, each package once: {pip:?}"
    );
    assert!(pip.iter().any(|a| a.ends_with(" pkg-c")), "{pip:?}");
    assert!(
        pip.iter()
            .any(|a| a.ends_with("--index-url https://pypi.example.invalid/simple pkg-d")),
        "{pip:?}"
    );
    let npm: Vec<&str> = runs
        .iter()
        .filter(|r| r.tool == "npm")
        .map(|r| r.args.as_str())
        .collect();
    assert_eq!(npm.len(), 1, "{npm:?}");
    assert!(npm[0].ends_with("npm-a npm-b"), "{npm:?}");
    assert!(
        runs.iter().any(|r| r.tool == "dpkg") && runs.iter().any(|r| r.tool == "apt-get"),
        "{log}"
    );
}

#[tokio::test]
async fn a_failed_pip_batch_is_retried_step_by_step_and_names_the_bad_package() {
    let env = Env::new("pipfail", &["pip-good", "pip-bad", "after-bad"]);
    env.write_ext("shims", RECORDING_SHIMS);
    for (name, pkg, requires) in [
        ("pip-good", "good-pkg", "[shims]"),
        ("pip-bad", "bad-pkg", "[shims]"),
        ("after-bad", "other-pkg", "[pip-bad]"),
    ] {
        env.write_ext(
            name,
            &format!(
                "name: {name}\nversion: \"1\"\ndescription: test\nrequires: {requires}\ninstall:\n  - pip: {{packages: [{pkg}]}}\n"
            ),
        );
    }
    let catalog = env.catalog();
    let resolution = resolve(
        &catalog,
        &Request::from_spec(&env.spec.spec.extensions),
        &Target::default(),
    )
    .expect("resolves");
    let d = env.deploy().await;
    let state = env.state();
    let installer = Installer::new(
        env.provider.as_ref(),
        &d,
        &catalog,
        &state,
        &NoInstallProgress,
    );
    let (_, report) = installer.sync(&resolution).await.expect("sync");
    assert_eq!(report.installed(), ["shims", "pip-good"], "{report:?}");
    let bad = report
        .results
        .iter()
        .find(|r| r.name == "pip-bad")
        .expect("pip-bad");
    let Outcome::Failed(f) = &bad.outcome else {
        panic!("pip-bad should fail: {bad:?}")
    };
    assert_eq!(
        (f.phase, f.phases, f.label.as_str(), f.exit_code),
        (1, 2, "pip install bad-pkg", Some(1))
    );
    assert!(
        f.log_tail
            .iter()
            .any(|l| l.contains("No matching distribution found for bad-pkg")),
        "{f:?}"
    );
    let after = report
        .results
        .iter()
        .find(|r| r.name == "after-bad")
        .expect("after-bad");
    assert!(
        matches!(after.outcome, Outcome::Skipped { .. }),
        "{after:?}"
    );

    // The batch, then each step alone: good-pkg's succeeded, bad-pkg's failed.
    let (_, log) = env.sh(&d, "cat /var/tmp/pm.log").await;
    let pip: Vec<String> = pm_runs(&log)
        .into_iter()
        .filter(|r| r.tool == "python3")
        .map(|r| r.args.rsplit("off ").next().unwrap_or("").to_string())
        .collect();
    assert_eq!(pip.len(), 3, "{pip:?}");
    assert_eq!(pip[0], "bad-pkg good-pkg", "{pip:?}");
    let mut alone = pip[1..].to_vec();
    alone.sort();
    assert_eq!(alone, ["bad-pkg", "good-pkg"]);
}
