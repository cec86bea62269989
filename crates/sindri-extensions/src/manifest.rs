//! The extension manifest: one YAML file per tool, typed here.
//!
//! Like `sindri.yaml`, every struct denies unknown fields, and the JSON Schema editors
//! use ([`manifest_schema`]) is generated from these types, so the schema and the
//! loader cannot disagree. Doc comments become the schema's descriptions: they are
//! written for the person writing a manifest.
//!
//! serde checks the shape; [`Manifest::check`] then checks what a schema cannot say
//! well (a regex that compiles, a script step that says how to undo it) and lists every
//! problem at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sindri_spec::ByteSize;

/// The pattern every extension and profile name matches: a DNS label.
pub const NAME_PATTERN: &str = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$";

/// A tool sindri installs into an environment, with everything needed to install,
/// check and remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The extension's name, used in `extensions.active`, profiles and `requires`.
    /// Lowercase letters, digits and single `-`; the file must be named `<name>.yaml`.
    #[schemars(
        regex(pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"),
        length(min = 1, max = 63)
    )]
    pub name: String,

    /// The manifest's version. Changing it makes the next deploy reinstall the
    /// extension, so bump it whenever the install steps change.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[0-9A-Za-z][0-9A-Za-z.+~_-]*$")
    )]
    pub version: String,

    /// One line saying what the tool is, shown by `sindri extension list`.
    #[schemars(length(min = 1, max = 200))]
    pub description: String,

    /// What kind of tool this is, for grouping in listings.
    #[serde(default)]
    pub category: Category,

    /// Extensions installed (and validated) before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,

    /// Extensions that cannot be installed in the same environment as this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,

    /// What the environment must offer, checked against `deployment.resources`
    /// before anything is installed.
    #[serde(default, skip_serializing_if = "Requirements::is_empty")]
    pub requirements: Requirements,

    /// The install steps, run in order. `apt` steps at the start of the list are
    /// batched with those of other extensions into one `apt-get install`; the first
    /// step after them, when it is `pip`, `npm` or `cargo`, is likewise batched with
    /// the others' of the same kind into one command.
    // YAML writes each step as a one-key map (`- apt: {...}`), which serde_yaml reads
    // as an enum only through this adapter.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    #[schemars(with = "Vec<Step>")]
    pub install: Vec<Step>,

    /// Environment variables the tool needs, exported to every shell in the
    /// environment and to later install steps. Values may refer to other variables
    /// (`$HOME/.cargo`); they may not contain `"`, `` ` ``, `\` or newlines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,

    /// Directories put in front of `PATH` (absolute paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,

    /// Commands that prove the tool works, run after install and by
    /// `sindri extension validate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validate: Vec<ValidateCheck>,

    /// Shell scripts run at fixed points of the extension's life.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,

    /// How `sindri extension remove` undoes the install.
    #[serde(default, skip_serializing_if = "Remove::is_empty")]
    pub remove: Remove,
}

/// What kind of tool an extension is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// A programming language or its toolchain.
    Language,
    /// Build tools, compilers, package managers.
    Build,
    /// Version control and code hosting.
    Vcs,
    /// Containers and orchestration.
    Containers,
    /// Cloud and infrastructure tooling.
    Cloud,
    /// Machine learning and data science.
    Ml,
    /// Database clients.
    Database,
    /// Shells and terminal multiplexers.
    Shell,
    /// Editors.
    Editor,
    /// Command-line utilities.
    #[default]
    Utility,
}

impl Category {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Language => "language",
            Category::Build => "build",
            Category::Vcs => "vcs",
            Category::Containers => "containers",
            Category::Cloud => "cloud",
            Category::Ml => "ml",
            Category::Database => "database",
            Category::Shell => "shell",
            Category::Editor => "editor",
            Category::Utility => "utility",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an extension needs from the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Disk the installed tool takes, e.g. `2GiB`. The extensions of one environment
    /// together must fit in `deployment.resources.disk` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    /// Memory the tool needs to be useful, e.g. `4GiB`; checked against
    /// `deployment.resources.memory` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// The tool needs a GPU: `deployment.resources.gpu` must be set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gpu: bool,
    /// Installing downloads from the internet (package mirrors, PyPI, release pages).
    /// Implied by `apt`, `pip`, `npm`, `cargo` and `download` steps; set it when a
    /// script downloads. An environment the spec cuts off from the network
    /// (`providers.docker.network: none`) refuses such extensions before anything is
    /// installed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub network: bool,
}

impl Requirements {
    /// True when nothing is required.
    pub fn is_empty(&self) -> bool {
        *self == Requirements::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One install step. Exactly one key: `apt`, `pip`, `npm`, `cargo`, `script` or
/// `download`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Debian/Ubuntu packages, installed with `apt-get install --no-install-recommends`.
    Apt(AptStep),
    /// Python packages, installed with `python3 -m pip install` (into the virtual
    /// environment the `python` extension puts on `PATH`).
    Pip(PipStep),
    /// Node.js packages, installed globally with `npm install -g`.
    Npm(NpmStep),
    /// Rust crates, installed with `cargo install`.
    Cargo(CargoStep),
    /// A POSIX shell script.
    Script(ScriptStep),
    /// A file downloaded from a pinned URL and verified against its SHA-256 before
    /// it is used.
    Download(DownloadStep),
}

impl Step {
    /// A short description for progress lines and errors, e.g. `apt-get install jq`.
    pub fn label(&self) -> String {
        match self {
            Step::Apt(s) => format!("apt-get install {}", s.packages.join(" ")),
            Step::Pip(s) => format!("pip install {}", s.packages.join(" ")),
            Step::Npm(s) => format!("npm install -g {}", s.packages.join(" ")),
            Step::Cargo(s) => format!("cargo install {}", s.crates.join(" ")),
            Step::Script(s) => {
                let first = s
                    .run
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                match first {
                    Some(l) if l.chars().count() > 60 => {
                        format!("script: {}…", l.chars().take(59).collect::<String>())
                    }
                    Some(l) => format!("script: {l}"),
                    None => "script".to_string(),
                }
            }
            Step::Download(s) => match &s.install {
                DownloadInstall::Binary(p) => format!("download {p}"),
                DownloadInstall::Extract(e) => format!("download and extract into {}", e.dir),
            },
        }
    }
}

/// `apt`: Debian/Ubuntu packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AptStep {
    /// Package names, optionally pinned: `jq`, `git=1:2.39.5-0+deb12u1`.
    #[schemars(length(min = 1))]
    pub packages: Vec<String>,
    /// Run `apt-get update` first, e.g. after a script step added a repository.
    /// (sindri always updates the package lists once before the first apt step.)
    #[serde(default, skip_serializing_if = "is_false")]
    pub update: bool,
}

/// `pip`: Python packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipStep {
    /// Requirement specifiers: `jupyterlab`, `ruff==0.6.9`, `uvicorn[standard]`.
    #[schemars(length(min = 1))]
    pub packages: Vec<String>,
    /// Package index to use instead of PyPI, e.g. PyTorch's CPU wheel index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_url: Option<String>,
}

/// `npm`: Node.js packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NpmStep {
    /// Package specifiers: `typescript`, `pnpm@9`.
    #[schemars(length(min = 1))]
    pub packages: Vec<String>,
}

/// `cargo`: Rust crates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CargoStep {
    /// Crate names, optionally `name@version`.
    #[schemars(length(min = 1))]
    pub crates: Vec<String>,
    /// Use the crates' own lock files (`--locked`, default true): reproducible builds.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub locked: bool,
}

/// `script`: a POSIX shell script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    /// The script, run with `sh -e`. The environment variables of installed
    /// extensions (and this one's) are set.
    #[schemars(length(min = 1))]
    pub run: String,
    /// Run as root (through `sudo` when the environment's user is not root). Default
    /// true; false runs as the environment's user.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub root: bool,
    /// The package managers the script runs (`dpkg -i` or `apt-get install` → `apt`,
    /// `pip install` → `pip`, `npm install -g` → `npm`, `cargo install` → `cargo`).
    /// sindri runs the script while no other step uses them: two of their runs at once
    /// fail on a lock or break each other's files. Required when the script runs one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<Manager>,
}

/// A package manager whose runs sindri never overlaps within one environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Manager {
    /// apt and dpkg (one dpkg database, one lock).
    Apt,
    /// pip, into the shared Python environment.
    Pip,
    /// npm's global packages.
    Npm,
    /// `cargo install`, into the shared `CARGO_HOME`.
    Cargo,
}

impl Manager {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Pip => "pip",
            Manager::Npm => "npm",
            Manager::Cargo => "cargo",
        }
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The package managers a shell script changes things with, found by looking at the
/// command word of each simple command (`apt-get install`, `dpkg -i`, `pip install`,
/// `python3 -m pip install`, `npm install -g`, `cargo install`, and their removal
/// forms). Read-only uses (`dpkg --print-architecture`, `apt-cache`) do not count.
pub fn managers_used(script: &str) -> BTreeSet<Manager> {
    const PREFIXES: &[&str] = &[
        "sudo", "env", "exec", "command", "nohup", "time", "then", "do", "else", "if", "!", "{",
        "while", "until",
    ];
    let mut found = BTreeSet::new();
    for cmd in script.split(['\n', ';', '&', '|', '(', ')', '`']) {
        let words: Vec<&str> = cmd
            .split_whitespace()
            .map(|w| w.trim_matches(['"', '\'']))
            .take_while(|w| !w.starts_with('#'))
            .collect();
        // The command word: past variable assignments, `sudo -n`, `env` and the like.
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let assignment = w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if assignment || PREFIXES.contains(&w) || (i > 0 && w.starts_with('-')) {
                i += 1;
            } else {
                break;
            }
        }
        let Some(cmd_word) = words.get(i) else {
            continue;
        };
        let base = cmd_word.rsplit('/').next().unwrap_or(cmd_word);
        let mut args = &words[i + 1..];
        if base.starts_with("python") && args.len() >= 2 && args[0] == "-m" && args[1] == "pip" {
            args = &args[2..];
        } else if base.starts_with("python") {
            continue;
        }
        let verb = args
            .iter()
            .find(|a| !a.starts_with('-') && !a.starts_with('+'));
        let verb_in = |set: &[&str]| verb.is_some_and(|v| set.contains(v));
        let flag = |set: &[&str]| args.iter().any(|a| set.contains(a));
        let manager = match base {
            "apt-get" | "apt" | "aptitude"
                if verb_in(&[
                    "install",
                    "remove",
                    "purge",
                    "update",
                    "upgrade",
                    "dist-upgrade",
                    "full-upgrade",
                    "autoremove",
                    "reinstall",
                ]) =>
            {
                Some(Manager::Apt)
            }
            "dpkg"
                if flag(&[
                    "-i",
                    "--install",
                    "-r",
                    "--remove",
                    "-P",
                    "--purge",
                    "--configure",
                    "--unpack",
                    "-a",
                ]) =>
            {
                Some(Manager::Apt)
            }
            "pip" | "pip3" if verb_in(&["install", "uninstall"]) => Some(Manager::Pip),
            b if b.starts_with("python") && verb_in(&["install", "uninstall"]) => {
                Some(Manager::Pip)
            }
            "npm"
                if verb_in(&[
                    "install",
                    "i",
                    "add",
                    "uninstall",
                    "un",
                    "remove",
                    "rm",
                    "update",
                    "link",
                ]) && flag(&["-g", "--global", "--location=global"]) =>
            {
                Some(Manager::Npm)
            }
            "cargo" if verb_in(&["install", "uninstall"]) => Some(Manager::Cargo),
            _ => None,
        };
        found.extend(manager);
    }
    found
}

/// `download`: a pinned file, verified with `sha256sum -c` before use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadStep {
    /// One file per CPU architecture; the environment's architecture picks one.
    #[schemars(length(min = 1))]
    pub files: Vec<DownloadFile>,
    /// What to do with the verified file.
    pub install: DownloadInstall,
}

/// One downloadable file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadFile {
    /// The CPU architecture the file is for.
    pub arch: Arch,
    /// Where to download it from (`https://`).
    #[schemars(regex(pattern = r"^https://"))]
    pub url: String,
    /// The file's SHA-256, 64 lowercase hex digits. A mismatch stops the install
    /// before the file is used.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// A CPU architecture, as Debian names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (`x86_64`).
    Amd64,
    /// 64-bit ARM (`aarch64`).
    Arm64,
}

impl Arch {
    /// Debian's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Where a verified download goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DownloadInstall {
    /// The file is an executable: installed at this absolute path with mode 0755.
    /// `remove` deletes it.
    Binary(String),
    /// The file is a `.tar.gz`/`.tar.xz`: extracted into a directory. Such a step
    /// needs `remove.script` to say what to delete.
    Extract(ExtractTarget),
}

/// Where an archive is extracted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractTarget {
    /// Absolute directory to extract into (created if missing).
    pub dir: String,
    /// Leading path components stripped from the archive's entries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub strip_components: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A command that proves the tool works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateCheck {
    /// A shell command line; it must exit 0.
    #[schemars(length(min = 1))]
    pub run: String,
    /// A regular expression its output (stdout then stderr, trimmed) must match,
    /// e.g. `^jq-1\.` for the expected major version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// Scripts run at fixed points; each runs as root with `sh -e`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before the first install step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<String>,
    /// After the last install step, before validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<String>,
    /// After every deploy of an environment that has the extension, also when nothing
    /// was reinstalled (e.g. to start a daemon again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_deploy: Option<String>,
}

impl Hooks {
    /// True when no hook is set.
    pub fn is_empty(&self) -> bool {
        *self == Hooks::default()
    }
}

/// How an extension is removed. sindri always undoes what it can itself: apt
/// packages it installed (never ones that were there before or that another installed
/// extension lists), pip, npm and cargo packages, downloaded binaries, the exported
/// environment. `script` undoes the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    /// A script run as root before the automatic steps. Required when the install
    /// has `script` steps or extracts an archive (use `"true"` when there is
    /// nothing to undo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl Remove {
    /// True when no removal script is set.
    pub fn is_empty(&self) -> bool {
        *self == Remove::default()
    }
}

/// A named set of extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name, used in `extensions.profile`. The file must be named
    /// `<name>.yaml`.
    #[schemars(
        regex(pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"),
        length(min = 1, max = 63)
    )]
    pub name: String,
    /// One line saying what the profile is for.
    #[schemars(length(min = 1, max = 200))]
    pub description: String,
    /// Profiles whose extensions this one includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// The profile's own extensions (their `requires` are added automatically).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// The JSON Schema (draft 2020-12) of an extension manifest, as
/// `sindri extension schema` prints it.
pub fn manifest_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Manifest).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), "sindri extension manifest".into());
    }
    schema
}

/// The JSON Schema of a profile file.
pub fn profile_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Profile).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), "sindri extension profile".into());
    }
    schema
}

/// True for a valid extension or profile name.
pub fn is_valid_name(name: &str) -> bool {
    let mut prev_dash = true;
    if name.is_empty() || name.len() > 63 || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return false;
    }
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => prev_dash = false,
            '-' if !prev_dash => prev_dash = true,
            _ => return false,
        }
    }
    !prev_dash
}

impl Manifest {
    /// Parses a manifest and checks it. `origin` names the file in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, Vec<String>> {
        let m: Manifest = parse_yaml(text, origin)?;
        let problems = m.check();
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(problems
                .into_iter()
                .map(|p| format!("{origin}: {p}"))
                .collect())
        }
    }

    /// Every problem serde cannot see, each as `field: what is wrong`.
    pub fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !is_valid_name(&self.name) {
            p.push(format!(
                "name: `{}` is not a valid name (lowercase letters, digits and single `-`, starting with a letter, at most 63 characters)",
                self.name
            ));
        }
        if self.version.is_empty()
            || self.version.len() > 64
            || !self
                .version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~_-".contains(c))
            || !self
                .version
                .starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            p.push(format!(
                "version: `{}` is not a version (letters, digits and `.+~_-`, e.g. `1.2.0`)",
                self.version
            ));
        }
        if self.description.trim().is_empty() {
            p.push("description: must not be empty".into());
        }
        check_names(&mut p, "requires", &self.requires, &self.name);
        check_names(&mut p, "conflicts", &self.conflicts, &self.name);
        for both in self.requires.iter().filter(|r| self.conflicts.contains(r)) {
            p.push(format!("`{both}` is both required and a conflict"));
        }
        if self.install.is_empty() && self.requires.is_empty() {
            p.push("install: an extension needs at least one install step (or `requires`, for a bundle)".into());
        }
        let mut needs_remove_script = false;
        for (i, step) in self.install.iter().enumerate() {
            let at = format!("install[{i}]");
            match step {
                Step::Apt(s) => {
                    check_list(&mut p, &at, "packages", &s.packages, is_apt_package);
                }
                Step::Pip(s) => {
                    check_list(&mut p, &at, "packages", &s.packages, is_plain_spec);
                    if let Some(u) = &s.index_url
                        && !u.starts_with("https://")
                    {
                        p.push(format!("{at}.index_url: `{u}` must be an https:// URL"));
                    }
                }
                Step::Npm(s) => check_list(&mut p, &at, "packages", &s.packages, is_plain_spec),
                Step::Cargo(s) => check_list(&mut p, &at, "crates", &s.crates, is_plain_spec),
                Step::Script(s) => {
                    needs_remove_script = true;
                    if s.run.trim().is_empty() {
                        p.push(format!("{at}.run: the script is empty"));
                    }
                    let mut declared = BTreeSet::new();
                    for u in &s.uses {
                        if !declared.insert(*u) {
                            p.push(format!("{at}.uses: `{u}` is listed twice"));
                        }
                    }
                    for m in managers_used(&s.run).difference(&declared) {
                        p.push(format!(
                            "{at}.run: the script runs {m}: add `uses: [{m}]` to the step, so sindri does not run it while another step uses {m}"
                        ));
                    }
                }
                Step::Download(d) => {
                    let mut seen = BTreeSet::new();
                    for (j, f) in d.files.iter().enumerate() {
                        if !seen.insert(f.arch) {
                            p.push(format!(
                                "{at}.files[{j}]: a second file for {}",
                                f.arch.as_str()
                            ));
                        }
                        if !f.url.starts_with("https://") || f.url.contains(['\'', '"', ' ', '\n'])
                        {
                            p.push(format!("{at}.files[{j}].url: `{}` must be an https:// URL without quotes or spaces", f.url));
                        }
                        if f.sha256.len() != 64
                            || !f
                                .sha256
                                .chars()
                                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                        {
                            p.push(format!(
                                "{at}.files[{j}].sha256: `{}` is not a SHA-256 (64 lowercase hex digits)",
                                f.sha256
                            ));
                        }
                    }
                    if d.files.is_empty() {
                        p.push(format!("{at}.files: at least one file is needed"));
                    }
                    match &d.install {
                        DownloadInstall::Binary(path) => {
                            if !is_abs_path(path) {
                                p.push(format!(
                                    "{at}.install.binary: `{path}` must be an absolute path"
                                ));
                            }
                        }
                        DownloadInstall::Extract(e) => {
                            needs_remove_script = true;
                            if !is_abs_path(&e.dir) {
                                p.push(format!(
                                    "{at}.install.extract.dir: `{}` must be an absolute path",
                                    e.dir
                                ));
                            }
                        }
                    }
                }
            }
        }
        if needs_remove_script && self.remove.script.is_none() {
            p.push(
                "remove.script: required because the install runs a script or extracts an archive, \
                 which sindri cannot undo by itself (write `script: \"true\"` if there is nothing to undo)"
                    .into(),
            );
        }
        // Hooks run alongside other extensions' steps and cannot declare `uses`.
        for (hook, body) in [
            ("pre_install", &self.hooks.pre_install),
            ("post_install", &self.hooks.post_install),
        ] {
            let Some(body) = body else { continue };
            for m in managers_used(body) {
                p.push(format!(
                    "hooks.{hook}: the hook runs {m}: move that into a `script` install step with `uses: [{m}]`, so sindri does not run it while another step uses {m}"
                ));
            }
        }
        for (k, v) in &self.env {
            if !is_env_name(k) {
                p.push(format!(
                    "env: `{k}` is not a variable name (letters, digits, `_`)"
                ));
            }
            if k == "PATH" {
                p.push("env: set `path:` instead of PATH".into());
            }
            if v.contains(['"', '`', '\\', '\n']) {
                p.push(format!(
                    "env.{k}: the value may not contain `\"`, `` ` ``, `\\` or newlines"
                ));
            }
        }
        for d in &self.path {
            if !is_abs_path(d) || d.contains(':') {
                p.push(format!(
                    "path: `{d}` must be an absolute directory without `:`"
                ));
            }
        }
        for (i, v) in self.validate.iter().enumerate() {
            if v.run.trim().is_empty() {
                p.push(format!("validate[{i}].run: the command is empty"));
            }
            // Parsing checks the syntax; compiling (what `validate` does later) would
            // cost ~50 µs a pattern on every command that loads the catalog.
            if let Some(re) = &v.expect
                && let Err(e) = regex_syntax::Parser::new().parse(re)
            {
                p.push(format!(
                    "validate[{i}].expect: `{re}` is not a regular expression: {e}"
                ));
            }
        }
        p
    }

    /// True when installing needs the network: `requirements.network`, or a step that
    /// fetches packages or files.
    pub fn needs_network(&self) -> bool {
        self.requirements.network || self.install.iter().any(|s| !matches!(s, Step::Script(_)))
    }

    /// The apt packages of every `apt` step.
    pub fn apt_packages(&self) -> impl Iterator<Item = &str> {
        self.install.iter().flat_map(|s| match s {
            Step::Apt(a) => a.packages.iter().map(String::as_str).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }

    /// How many leading `apt` steps there are: those can be batched with other
    /// extensions' into one `apt-get install`, the rest must keep their order.
    pub fn leading_apt_steps(&self) -> usize {
        self.install
            .iter()
            .take_while(|s| matches!(s, Step::Apt(a) if !a.update))
            .count()
    }
}

impl Profile {
    /// Parses a profile and checks it. `origin` names the file in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, Vec<String>> {
        let p: Profile = parse_yaml(text, origin)?;
        let mut problems = Vec::new();
        if !is_valid_name(&p.name) {
            problems.push(format!("name: `{}` is not a valid name", p.name));
        }
        if p.description.trim().is_empty() {
            problems.push("description: must not be empty".into());
        }
        check_names(&mut problems, "extends", &p.extends, &p.name);
        check_names(&mut problems, "extensions", &p.extensions, "");
        if p.extends.is_empty() && p.extensions.is_empty() {
            problems.push("extensions: a profile needs at least one extension or `extends`".into());
        }
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems
                .into_iter()
                .map(|m| format!("{origin}: {m}"))
                .collect())
        }
    }
}

/// YAML into a typed value, with the file and position in the error.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, Vec<String>> {
    serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        vec![format!("{origin}{at}: {e}")]
    })
}

fn check_names(p: &mut Vec<String>, field: &str, names: &[String], own: &str) {
    let mut seen = BTreeSet::new();
    for n in names {
        if !is_valid_name(n) {
            p.push(format!("{field}: `{n}` is not a valid name"));
        } else if n == own {
            p.push(format!("{field}: `{n}` names itself"));
        } else if !seen.insert(n) {
            p.push(format!("{field}: `{n}` is listed twice"));
        }
    }
}

fn check_list(p: &mut Vec<String>, at: &str, field: &str, items: &[String], ok: fn(&str) -> bool) {
    if items.is_empty() {
        p.push(format!("{at}.{field}: at least one is needed"));
    }
    for item in items {
        if !ok(item) {
            p.push(format!(
                "{at}.{field}: `{item}` is not a valid package name"
            ));
        }
    }
}

/// A Debian package name with an optional `=version`.
fn is_apt_package(s: &str) -> bool {
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
    });
    name_ok && version_ok
}

/// A package specifier (pip, npm, cargo) without anything a shell would interpret.
fn is_plain_spec(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-[],<>=!~@/^*+".contains(c))
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_abs_path(s: &str) -> bool {
    s.starts_with('/') && !s.contains(['\'', '"', '\n', ' ', '`', '$', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const JQ: &str = r#"
name: jq
version: "1.0.0"
description: Command-line JSON processor.
install:
  - apt: {packages: [jq]}
validate:
  - run: jq --version
    expect: '^jq-1\.'
"#;

    #[test]
    fn a_small_manifest_parses() {
        let m = Manifest::parse(JQ, "jq.yaml").expect("valid");
        assert_eq!(m.name, "jq");
        assert_eq!(m.category, Category::Utility);
        assert_eq!(m.apt_packages().collect::<Vec<_>>(), ["jq"]);
        assert_eq!(m.install[0].label(), "apt-get install jq");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_position() {
        let text = JQ.replace("validate:", "validat:");
        let e = Manifest::parse(&text, "jq.yaml").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("jq.yaml:7:1:"), "{e:?}");
        assert!(e[0].contains("unknown field `validat`"), "{e:?}");
    }

    #[test]
    fn every_semantic_problem_is_listed_at_once() {
        let text = r#"
name: Bad_Name
version: "1 0"
description: x
requires: [bad-, bad-]
install:
  - script: {run: "echo hi"}
  - download:
      files:
        - {arch: amd64, url: "http://x", sha256: "abc"}
        - {arch: amd64, url: "https://x", sha256: "abc"}
      install: {binary: "usr/bin/x"}
env: {PATH: /x, "1X": 'a"b'}
validate:
  - run: x --version
    expect: "("
"#;
        let e = Manifest::parse(text, "bad.yaml").unwrap_err();
        let all = e.join("\n");
        for want in [
            "name: `Bad_Name`",
            "version: `1 0`",
            "requires: `bad-` is not a valid name",
            "a second file for amd64",
            "url: `http://x` must be an https:// URL",
            "sha256: `abc` is not a SHA-256",
            "binary: `usr/bin/x` must be an absolute path",
            "remove.script: required",
            "set `path:` instead of PATH",
            "env: `1X` is not a variable name",
            "env.1X: the value may not contain",
            "expect: `(` is not a regular expression",
        ] {
            assert!(all.contains(want), "missing `{want}` in:\n{all}");
        }
        assert!(e.iter().all(|l| l.starts_with("bad.yaml: ")), "{all}");
    }

    #[test]
    fn apt_names_and_specs_are_checked() {
        assert!(is_apt_package("build-essential"));
        assert!(is_apt_package("g++"));
        assert!(is_apt_package("git=1:2.39.5-0+deb12u1"));
        assert!(!is_apt_package("jq; rm -rf /"));
        assert!(!is_apt_package("J"));
        assert!(is_plain_spec("uvicorn[standard]>=0.30"));
        assert!(is_plain_spec("@types/node@20"));
        assert!(!is_plain_spec("--index-url"));
        assert!(!is_plain_spec("x$(id)"));
    }

    #[test]
    fn names_are_dns_labels() {
        for ok in ["git", "build-essential", "cuda-toolkit", "k9s", "a1-b2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-git", "git-", "Git", "a--b", "a_b", "1git"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_leading_apt_steps_without_update_are_batchable() {
        let text = r#"
name: docker-cli
version: "1"
description: x
install:
  - apt: {packages: [ca-certificates, curl]}
  - apt: {packages: [gnupg]}
  - script: {run: "echo add repo"}
  - apt: {packages: [docker-ce-cli], update: true}
remove: {script: "true"}
"#;
        let m = Manifest::parse(text, "d.yaml").expect("valid");
        assert_eq!(m.leading_apt_steps(), 2);
    }

    #[test]
    fn package_manager_runs_are_found_in_scripts() {
        let found = |s: &str| managers_used(s).into_iter().collect::<Vec<_>>();
        assert_eq!(found(r#"dpkg -i "$tmp/cuda-keyring.deb""#), [Manager::Apt]);
        assert_eq!(found("sudo -n apt-get -y install jq"), [Manager::Apt]);
        assert_eq!(
            found("DEBIAN_FRONTEND=noninteractive apt install -y x"),
            [Manager::Apt]
        );
        assert_eq!(
            found("if true; then /usr/bin/dpkg --purge x; fi"),
            [Manager::Apt]
        );
        assert_eq!(found("python3 -m pip install torch"), [Manager::Pip]);
        assert_eq!(
            found("pip3 uninstall -y x && npm i -g pnpm"),
            [Manager::Pip, Manager::Npm]
        );
        assert_eq!(found("cargo +stable install ripgrep"), [Manager::Cargo]);
        // Reading is not changing; a word that is not the command is not a run.
        for quiet in [
            "echo \"deb [arch=$(dpkg --print-architecture)] https://x stable main\"",
            "dpkg-query -W jq",
            "apt-cache policy jq",
            "echo apt-get install jq",
            "npm install typescript",
            "python3 -m venv /opt/sindri/python",
            "cargo build --release",
            "# apt-get install jq",
        ] {
            assert_eq!(found(quiet), [], "{quiet}");
        }
    }

    #[test]
    fn a_script_that_runs_a_package_manager_must_say_so() {
        let text = r#"
name: keyring
version: "1"
description: x
install:
  - script: {run: "dpkg -i /tmp/keyring.deb"}
hooks:
  post_install: python3 -m pip install x
remove: {script: "true"}
"#;
        let e = Manifest::parse(text, "k.yaml").unwrap_err().join("\n");
        assert!(
            e.contains("install[0].run: the script runs apt: add `uses: [apt]` to the step"),
            "{e}"
        );
        assert!(
            e.contains("hooks.post_install: the hook runs pip: move that into a `script` install step with `uses: [pip]`"),
            "{e}"
        );
        let fixed = text.replace("{run: ", "{uses: [apt], run: ").replace(
            "  post_install: python3 -m pip install x\n",
            "  post_install: \"true\"\n",
        );
        let m = Manifest::parse(&fixed, "k.yaml").expect("valid once declared");
        let Step::Script(s) = &m.install[0] else {
            panic!("a script step")
        };
        assert_eq!(s.uses, [Manager::Apt]);
    }

    #[test]
    fn the_schema_describes_fields_from_doc_comments() {
        let s = manifest_schema();
        assert_eq!(s["additionalProperties"], false);
        let req = s["required"].as_array().expect("required");
        for f in ["name", "version", "description"] {
            assert!(req.iter().any(|r| r == f), "{f} required: {req:?}");
        }
        let desc = s["properties"]["version"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(desc.contains("reinstall"), "{desc}");
    }
}
