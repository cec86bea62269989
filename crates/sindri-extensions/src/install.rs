//! Installing, validating and removing extensions inside an environment.
//!
//! Everything runs through [`sindri_core::dispatch::exec`], so it works on every
//! provider that can exec. The environment is the source of truth for what is
//! installed: sindri leaves a marker file per extension in it (see
//! [`script::MARKER_DIR`]) and mirrors it into the state store. A marker that is gone
//! (the provider replaced the container) means "install again", whatever the state
//! says; an unchanged version means "leave alone".
//!
//! A wave of independent extensions is installed together: their leading `apt` steps
//! become one `apt-get install` (dpkg allows one at a time anyway, and one run resolves
//! dependencies once); then the next step of each, when it is a `pip`, `npm` or `cargo`
//! step, is batched the same way with the others' of the same kind and options (one
//! `pip install` sees every requirement at once); the rest of their steps run
//! concurrently. Runs of one package manager never overlap: apt, pip, npm and cargo
//! each have a lock, held by every step that uses them (a `script` step says which
//! with `uses`). Two `pip install`s into one environment, or a `dpkg -i` during an
//! `apt-get install`, would otherwise break each other. An extension whose
//! requirement failed is skipped, not attempted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use sindri_core::{Deployment, Error, Provider, Result, unix_now};
use sindri_state::{InstalledExtension, StateStore};

use crate::catalog::Catalog;
use crate::exec::{self, Ran};
use crate::graph;
use crate::manifest::{CargoStep, Manager, Manifest, NpmStep, PipStep, Step};
use crate::resolve::Resolution;
use crate::script::{self, Probed};

/// Receives progress of an install, validation or removal. Calls for different
/// extensions may interleave (they run concurrently); calls for one are in order.
pub trait InstallProgress: Send + Sync {
    /// An extension is about to be worked on, in `phases` phases.
    fn extension_started(&self, name: &str, version: &str, phases: usize);
    /// Phase `index` (0-based) of the extension began.
    fn phase_started(&self, name: &str, index: usize, label: &str);
    /// A line of output of the current phase.
    fn output(&self, name: &str, line: &str);
    /// The extension is done, whatever the outcome.
    fn extension_finished(&self, name: &str, result: &ExtensionResult);
    /// Something about the run as a whole (e.g. `apt-get update`).
    fn message(&self, text: &str) {
        let _ = text;
    }
}

/// Discards all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoInstallProgress;

impl InstallProgress for NoInstallProgress {
    fn extension_started(&self, _: &str, _: &str, _: usize) {}
    fn phase_started(&self, _: &str, _: usize, _: &str) {}
    fn output(&self, _: &str, _: &str) {}
    fn extension_finished(&self, _: &str, _: &ExtensionResult) {}
}

/// Why an extension is (or is not) installed by a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Not in the environment yet.
    Install,
    /// In the environment at another version.
    Upgrade {
        /// The version found.
        from: String,
    },
    /// The state store says it was installed, but the environment does not have it
    /// (it was replaced or rebuilt).
    Restore,
    /// Installed again because the user asked (`--force`).
    Reinstall,
    /// Already there at this version.
    Keep,
}

impl Action {
    /// True for every action that runs the install.
    pub fn installs(&self) -> bool {
        !matches!(self, Action::Keep)
    }

    /// In words, for people.
    pub fn describe(&self) -> String {
        match self {
            Action::Install => "new".into(),
            Action::Upgrade { from } => format!("version changed from {from}"),
            Action::Restore => "recorded as installed but missing from the environment".into(),
            Action::Reinstall => "reinstall asked for".into(),
            Action::Keep => "unchanged".into(),
        }
    }
}

/// One extension of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// The extension.
    pub name: String,
    /// The version to be installed.
    pub version: String,
    /// What will happen.
    #[serde(flatten)]
    pub action: Action,
}

/// What an install will do, computed from a resolution and what the environment has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallPlan {
    /// Every extension of the resolution, in install order.
    pub items: Vec<PlanItem>,
    /// The extensions to install, in waves (dependencies already present are not in
    /// it, so unrelated extensions may move to an earlier wave).
    pub waves: Vec<Vec<String>>,
}

impl InstallPlan {
    /// True when nothing needs installing.
    pub fn is_noop(&self) -> bool {
        self.waves.is_empty()
    }

    /// The extensions that will be installed.
    pub fn to_install(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|i| i.action.installs())
    }
}

/// Where and how an extension failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// 1-based number of the phase that failed.
    pub phase: usize,
    /// How many phases there were.
    pub phases: usize,
    /// The phase, e.g. `apt-get install jq`.
    pub label: String,
    /// The exit code, when a command ran.
    pub exit_code: Option<i32>,
    /// What went wrong.
    pub message: String,
    /// The last lines of the phase's output.
    pub log_tail: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failed at step {}/{} ({}): {}",
            self.phase, self.phases, self.label, self.message
        )?;
        if !self.log_tail.is_empty() {
            write!(f, "\n    --- last {} lines ---", self.log_tail.len())?;
            for l in &self.log_tail {
                write!(f, "\n    {l}")?;
            }
        }
        Ok(())
    }
}

/// How one extension ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Installed and validated.
    Installed {
        /// Why it was installed.
        reason: String,
    },
    /// Already there at this version; nothing ran.
    Unchanged,
    /// Something failed; nothing was recorded.
    Failed(Failure),
    /// Not attempted because a requirement failed.
    Skipped {
        /// Which requirement.
        reason: String,
    },
    /// Its validation passed (`validate`).
    Validated,
    /// Removed from the environment and the state (`remove`).
    Removed,
}

/// One extension's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionResult {
    /// The extension.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// A `post_deploy` hook that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookFailure {
    /// The extension whose hook it is.
    pub extension: String,
    /// The exit code, when the hook ran.
    pub exit_code: Option<i32>,
    /// What went wrong.
    pub message: String,
    /// The last lines of its output.
    pub log_tail: Vec<String>,
}

/// What an install did, extension by extension, in install order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    /// One result per extension of the plan.
    pub results: Vec<ExtensionResult>,
    /// `post_deploy` hooks that failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hook_failures: Vec<HookFailure>,
    /// How many `apt-get install` runs there were (batching makes it one per wave).
    pub apt_runs: usize,
}

impl InstallReport {
    /// The extensions installed by this run.
    pub fn installed(&self) -> Vec<&str> {
        self.with(|o| matches!(o, Outcome::Installed { .. }))
    }

    /// The extensions left as they were.
    pub fn unchanged(&self) -> Vec<&str> {
        self.with(|o| matches!(o, Outcome::Unchanged))
    }

    /// The extensions that failed or were skipped.
    pub fn failed(&self) -> Vec<&ExtensionResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::Skipped { .. }))
            .collect()
    }

    /// True when everything installed and every hook passed.
    pub fn is_success(&self) -> bool {
        self.failed().is_empty() && self.hook_failures.is_empty()
    }

    fn with(&self, f: impl Fn(&Outcome) -> bool) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| f(&r.outcome))
            .map(|r| r.name.as_str())
            .collect()
    }

    /// An error describing every failure (for commands that fail when an install
    /// fails), or `None` on success.
    pub fn error(&self) -> Option<Error> {
        if self.is_success() {
            return None;
        }
        let mut lines = Vec::new();
        for r in self.failed() {
            match &r.outcome {
                Outcome::Failed(f) => lines.push(format!("extension `{}` {f}", r.name)),
                Outcome::Skipped { reason } => {
                    lines.push(format!("extension `{}` skipped: {reason}", r.name))
                }
                _ => {}
            }
        }
        for h in &self.hook_failures {
            let mut l = format!(
                "post_deploy hook of `{}` failed: {}",
                h.extension, h.message
            );
            for t in &h.log_tail {
                l.push_str(&format!("\n    {t}"));
            }
            lines.push(l);
        }
        let installed = self.installed();
        let mut hint = String::from(
            "fix the cause and run the same command again: what succeeded is kept and not reinstalled",
        );
        if !installed.is_empty() {
            hint.push_str(&format!(" (installed this time: {})", installed.join(", ")));
        }
        Some(Error::new(sindri_core::ErrorKind::Platform, lines.join("\n")).with_hint(hint))
    }
}

/// The result of one validation command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The command.
    pub run: String,
    /// It exited 0 and its output matched.
    pub ok: bool,
    /// Its exit code, when it ran.
    pub exit_code: Option<i32>,
    /// The expected pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Its output (trimmed, at most a few lines).
    pub output: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The validation of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    /// The extension.
    pub name: String,
    /// Its installed version.
    pub version: String,
    /// Every check passed.
    pub ok: bool,
    /// One result per `validate` command.
    pub checks: Vec<CheckResult>,
}

/// The removal of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// The extension.
    pub name: String,
    /// Removed from the environment and the state store.
    pub ok: bool,
    /// apt packages removed.
    pub removed_packages: Vec<String>,
    /// apt packages kept because another installed extension lists them or they
    /// were there before sindri.
    pub kept_packages: Vec<String>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Things the user should know (e.g. steps that could not be undone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What the environment has, as the installer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Facts and markers read from the environment.
    pub env: Probed,
    /// Records of the state store for this environment, by name.
    pub recorded: BTreeMap<String, InstalledExtension>,
}

impl Probe {
    /// The version installed in the environment, if any.
    pub fn installed_version(&self, name: &str) -> Option<&str> {
        self.env.markers.get(name).map(|m| m.version.as_str())
    }

    /// Names of the extensions installed in the environment.
    pub fn installed(&self) -> Vec<String> {
        self.env.markers.keys().cloned().collect()
    }
}

/// Installs extensions into one deployed environment.
pub struct Installer<'a> {
    provider: &'a dyn Provider,
    deployment: &'a Deployment,
    catalog: &'a Catalog,
    state: &'a StateStore,
    progress: &'a dyn InstallProgress,
    concurrency: usize,
}

/// A phase of one extension's install.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Prepare(String),
    Batched,
    Step(usize),
    PostInstall(String),
    Validate,
    Record,
}

/// One extension being installed.
struct Job<'m> {
    name: String,
    manifest: &'m Manifest,
    reason: String,
    phases: Vec<(Phase, String)>,
    next: usize,
    apt_added: Vec<String>,
    started: Instant,
}

impl<'m> Job<'m> {
    fn fail(
        &self,
        at: usize,
        exit_code: Option<i32>,
        message: String,
        log_tail: Vec<String>,
    ) -> Failure {
        Failure {
            phase: at + 1,
            phases: self.phases.len(),
            label: self.phases.get(at).map(|p| p.1.clone()).unwrap_or_default(),
            exit_code,
            message,
            log_tail,
        }
    }
}

/// Shared by the jobs of one run: each package manager runs one at a time, and the
/// package lists are updated once.
struct RunState {
    /// apt and dpkg; true once `apt-get update` ran.
    apt: tokio::sync::Mutex<bool>,
    pip: tokio::sync::Mutex<()>,
    npm: tokio::sync::Mutex<()>,
    cargo: tokio::sync::Mutex<()>,
    apt_runs: Mutex<usize>,
}

impl RunState {
    fn new() -> RunState {
        RunState {
            apt: tokio::sync::Mutex::new(false),
            pip: tokio::sync::Mutex::new(()),
            npm: tokio::sync::Mutex::new(()),
            cargo: tokio::sync::Mutex::new(()),
            apt_runs: Mutex::new(0),
        }
    }

    /// Holds the locks of `managers` until dropped. Always taken in the same order
    /// (apt, pip, npm, cargo), so two steps using several cannot deadlock.
    async fn lock(&self, managers: &BTreeSet<Manager>) -> Held<'_> {
        let mut held = Held::default();
        for m in managers {
            match m {
                Manager::Apt => held._apt = Some(self.apt.lock().await),
                Manager::Pip => held._other.push(self.pip.lock().await),
                Manager::Npm => held._other.push(self.npm.lock().await),
                Manager::Cargo => held._other.push(self.cargo.lock().await),
            }
        }
        held
    }
}

/// Package-manager locks held by a running step.
#[derive(Default)]
struct Held<'r> {
    _apt: Option<tokio::sync::MutexGuard<'r, bool>>,
    _other: Vec<tokio::sync::MutexGuard<'r, ()>>,
}

/// Steps of different extensions that can run as one command: the same package
/// manager with the same options.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum BatchKey {
    Pip(Option<String>),
    Npm,
    Cargo(bool),
}

impl BatchKey {
    fn of(step: &Step) -> Option<BatchKey> {
        match step {
            Step::Pip(p) => Some(BatchKey::Pip(p.index_url.clone())),
            Step::Npm(_) => Some(BatchKey::Npm),
            Step::Cargo(c) => Some(BatchKey::Cargo(c.locked)),
            _ => None,
        }
    }

    fn manager(&self) -> Manager {
        match self {
            BatchKey::Pip(_) => Manager::Pip,
            BatchKey::Npm => Manager::Npm,
            BatchKey::Cargo(_) => Manager::Cargo,
        }
    }

    /// One step installing `packages` (those of every step of the batch, in order,
    /// without repeats).
    fn step(&self, packages: Vec<String>) -> Step {
        match self {
            BatchKey::Pip(index_url) => Step::Pip(PipStep {
                packages,
                index_url: index_url.clone(),
            }),
            BatchKey::Npm => Step::Npm(NpmStep { packages }),
            BatchKey::Cargo(locked) => Step::Cargo(CargoStep {
                crates: packages,
                locked: *locked,
            }),
        }
    }
}

fn step_packages(step: &Step) -> &[String] {
    match step {
        Step::Apt(a) => &a.packages,
        Step::Pip(p) => &p.packages,
        Step::Npm(n) => &n.packages,
        Step::Cargo(c) => &c.crates,
        Step::Script(_) | Step::Download(_) => &[],
    }
}

/// The package managers whose lock a step holds while it runs (apt steps take the apt
/// lock themselves, in [`Installer::apt`]).
fn step_locks(step: &Step) -> BTreeSet<Manager> {
    match step {
        Step::Apt(_) | Step::Download(_) => BTreeSet::new(),
        Step::Pip(_) => BTreeSet::from([Manager::Pip]),
        Step::Npm(_) => BTreeSet::from([Manager::Npm]),
        Step::Cargo(_) => BTreeSet::from([Manager::Cargo]),
        Step::Script(s) => s.uses.iter().copied().collect(),
    }
}

/// What installing `order` would do to an environment that has `installed` (name →
/// version) and for which the state store recorded `recorded`; `force` names
/// extensions to install again even when unchanged. `Installer::plan` judges against
/// the environment's own markers; `sindri plan`, which does not touch the
/// environment, against the state store.
pub fn plan_items(
    catalog: &Catalog,
    order: &[String],
    installed: &BTreeMap<String, String>,
    recorded: &BTreeSet<String>,
    force: &BTreeSet<String>,
) -> Result<Vec<PlanItem>> {
    let mut items = Vec::new();
    for name in order {
        let m = catalog
            .manifest(name)
            .ok_or_else(|| Error::not_found(format!("extension `{name}` is not in the catalog")))?;
        let action = match installed.get(name) {
            _ if force.contains(name) => Action::Reinstall,
            Some(v) if *v == m.version => Action::Keep,
            Some(v) => Action::Upgrade { from: v.clone() },
            None if recorded.contains(name) => Action::Restore,
            None => Action::Install,
        };
        items.push(PlanItem {
            name: name.clone(),
            version: m.version.clone(),
            action,
        });
    }
    Ok(items)
}

impl<'a> Installer<'a> {
    /// An installer for `deployment`, taking manifests from `catalog` and recording in
    /// `state`.
    pub fn new(
        provider: &'a dyn Provider,
        deployment: &'a Deployment,
        catalog: &'a Catalog,
        state: &'a StateStore,
        progress: &'a dyn InstallProgress,
    ) -> Installer<'a> {
        Installer {
            provider,
            deployment,
            catalog,
            state,
            progress,
            concurrency: 4,
        }
    }

    /// At most `n` extensions of a wave are worked on at once (default 4).
    pub fn with_concurrency(mut self, n: usize) -> Installer<'a> {
        self.concurrency = n.max(1);
        self
    }

    /// Reads what the environment has (one exec) and what the state store recorded.
    /// Markers without a record are recorded (the state was lost or another machine
    /// installed them), so the state follows the environment.
    pub async fn probe(&self) -> Result<Probe> {
        let ran = exec::run(self.provider, self.deployment, sh(script::probe()), &|_| {}).await?;
        if ran.code != 0 {
            return Err(Error::new(
                sindri_core::ErrorKind::Platform,
                format!(
                    "could not inspect the environment (exit code {}): {}",
                    ran.code,
                    ran.tail.join("\n")
                ),
            )
            .with_hint("extensions need a POSIX `sh` in the environment"));
        }
        let env = script::parse_probe(&ran.stdout);
        let d = self.deployment;
        let mut recorded: BTreeMap<String, InstalledExtension> = self
            .state
            .extensions(&d.project, &d.name)?
            .into_iter()
            .map(|r| (r.extension.clone(), r))
            .collect();
        for (name, m) in &env.markers {
            let stale = recorded.get(name).is_none_or(|r| r.version != m.version);
            if stale && !m.version.is_empty() {
                let rec = InstalledExtension {
                    project: d.project.clone(),
                    environment: d.name.clone(),
                    extension: name.clone(),
                    version: m.version.clone(),
                    installed_at: m.installed_at.unwrap_or_else(unix_now),
                    validated_at: None,
                };
                self.state.record_extension(&rec)?;
                recorded.insert(name.clone(), rec);
            }
        }
        Ok(Probe { env, recorded })
    }

    /// What installing `resolution` would do given `probe`; `force` names extensions
    /// to install again even when unchanged. Refuses, before anything runs, an
    /// environment that cannot take the install (no apt-get for apt steps, no root).
    pub fn plan(
        &self,
        resolution: &Resolution,
        probe: &Probe,
        force: &BTreeSet<String>,
    ) -> Result<InstallPlan> {
        let installed: BTreeMap<String, String> = probe
            .env
            .markers
            .iter()
            .map(|(n, m)| (n.clone(), m.version.clone()))
            .collect();
        let recorded: BTreeSet<String> = probe.recorded.keys().cloned().collect();
        let items = plan_items(
            self.catalog,
            &resolution.order,
            &installed,
            &recorded,
            force,
        )?;
        let todo: Vec<&PlanItem> = items.iter().filter(|i| i.action.installs()).collect();
        self.preflight(todo.iter().map(|i| i.name.as_str()), probe)?;
        // Waves over the extensions to install only: what is kept is already there.
        let names: Vec<&str> = todo.iter().map(|i| i.name.as_str()).collect();
        let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let deps: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                self.catalog
                    .manifest(n)
                    .map(|m| {
                        m.requires
                            .iter()
                            .filter_map(|r| index.get(r.as_str()).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let waves = graph::waves(&deps)
            .map_err(|c| Error::internal(format!("cycle among extensions to install: {c:?}")))?
            .into_iter()
            .map(|w| w.into_iter().map(|i| names[i].to_string()).collect())
            .collect();
        Ok(InstallPlan { items, waves })
    }

    fn preflight<'n>(&self, names: impl Iterator<Item = &'n str>, probe: &Probe) -> Result<()> {
        let mut apt_users = Vec::new();
        let mut any = false;
        for n in names {
            any = true;
            if self
                .manifest(n)?
                .install
                .iter()
                .any(|s| matches!(s, Step::Apt(_)))
            {
                apt_users.push(n.to_string());
            }
        }
        if !apt_users.is_empty() && !probe.env.apt {
            return Err(Error::invalid(format!(
                "the environment has no apt-get, and {} install{} with apt",
                apt_users.join(", "),
                if apt_users.len() == 1 { "s" } else { "" }
            ))
            .with_hint(
                "use a Debian or Ubuntu image (deployment.image), or leave these extensions out",
            ));
        }
        if any && probe.env.uid != Some(0) && !probe.env.sudo {
            return Err(Error::invalid(format!(
                "installing extensions needs root, and the environment runs as uid {} without sudo",
                probe
                    .env
                    .uid
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ))
            .with_hint("use an image whose user is root or has passwordless sudo"));
        }
        Ok(())
    }

    fn manifest(&self, name: &str) -> Result<&'a Manifest> {
        self.catalog
            .manifest(name)
            .ok_or_else(|| Error::not_found(format!("extension `{name}` is not in the catalog")))
    }

    /// Installs what `plan` says, wave by wave. Failures are in the report, not
    /// errors: what succeeded stays installed and recorded.
    pub async fn install(&self, plan: &InstallPlan, probe: &Probe) -> InstallReport {
        let run = RunState::new();
        let mut results: BTreeMap<String, ExtensionResult> = BTreeMap::new();
        let reasons: BTreeMap<&str, String> = plan
            .items
            .iter()
            .map(|i| (i.name.as_str(), i.action.describe()))
            .collect();
        for wave in &plan.waves {
            let mut jobs = Vec::new();
            for name in wave {
                let Ok(m) = self.manifest(name) else { continue };
                let broken = m.requires.iter().find(|r| {
                    results.get(*r).is_some_and(|res| {
                        matches!(res.outcome, Outcome::Failed(_) | Outcome::Skipped { .. })
                    })
                });
                if let Some(r) = broken {
                    let res = ExtensionResult {
                        name: name.clone(),
                        version: m.version.clone(),
                        outcome: Outcome::Skipped {
                            reason: format!("requires `{r}`, which did not install"),
                        },
                        millis: 0,
                    };
                    self.progress.extension_finished(name, &res);
                    results.insert(name.clone(), res);
                    continue;
                }
                jobs.push(self.job(
                    name,
                    m,
                    reasons.get(name.as_str()).cloned().unwrap_or_default(),
                ));
            }
            for res in self.run_wave(jobs, probe, &run).await {
                results.insert(res.name.clone(), res);
            }
        }
        let mut ordered = Vec::new();
        for item in &plan.items {
            match results.remove(&item.name) {
                Some(r) => ordered.push(r),
                None if !item.action.installs() => ordered.push(ExtensionResult {
                    name: item.name.clone(),
                    version: item.version.clone(),
                    outcome: Outcome::Unchanged,
                    millis: 0,
                }),
                None => {}
            }
        }
        let apt_runs = *run.apt_runs.lock().unwrap_or_else(|e| e.into_inner());
        InstallReport {
            results: ordered,
            hook_failures: Vec::new(),
            apt_runs,
        }
    }

    fn job<'m>(&self, name: &str, m: &'m Manifest, reason: String) -> Job<'m> {
        let mut phases = Vec::new();
        if script::prepare(m).is_some() {
            let label = match (script::env_file(m).is_some(), m.hooks.pre_install.is_some()) {
                (true, true) => "set environment, pre_install hook",
                (true, false) => "set environment",
                _ => "pre_install hook",
            };
            phases.push((Phase::Prepare(label.into()), label.to_string()));
        }
        let batched = m.leading_apt_steps();
        if batched > 0 {
            let pkgs: Vec<&str> = m.install[..batched]
                .iter()
                .flat_map(|s| match s {
                    Step::Apt(a) => a.packages.iter().map(String::as_str).collect(),
                    _ => Vec::new(),
                })
                .collect();
            phases.push((
                Phase::Batched,
                format!("apt-get install {}", pkgs.join(" ")),
            ));
        }
        for (i, s) in m.install.iter().enumerate().skip(batched) {
            phases.push((Phase::Step(i), s.label()));
        }
        if let Some(h) = &m.hooks.post_install {
            phases.push((Phase::PostInstall(h.clone()), "post_install hook".into()));
        }
        if !m.validate.is_empty() {
            phases.push((Phase::Validate, "validate".into()));
        }
        phases.push((Phase::Record, "record".into()));
        Job {
            name: name.to_string(),
            manifest: m,
            reason,
            phases,
            next: 0,
            apt_added: Vec::new(),
            started: Instant::now(),
        }
    }

    /// One wave: prepare everyone, one batched apt run, then the rest concurrently.
    async fn run_wave(
        &self,
        jobs: Vec<Job<'_>>,
        probe: &Probe,
        run: &RunState,
    ) -> Vec<ExtensionResult> {
        for j in &jobs {
            self.progress
                .extension_started(&j.name, &j.manifest.version, j.phases.len());
        }
        // 1. Environment files and pre_install hooks.
        let prepared: Vec<std::result::Result<Job<'_>, ExtensionResult>> =
            futures_util::stream::iter(jobs)
                .map(|mut j| async move {
                    if let Some((Phase::Prepare(_), label)) = j.phases.first().cloned() {
                        self.progress.phase_started(&j.name, 0, &label);
                        let Some(s) = script::prepare(j.manifest) else {
                            return Ok(j);
                        };
                        if let Err(f) = self.run_phase(&j, 0, s, true, probe).await {
                            return Err(self.finish(&j, Outcome::Failed(f)));
                        }
                        j.next = 1;
                    }
                    Ok(j)
                })
                .buffered(self.concurrency)
                .collect()
                .await;
        let mut done = Vec::new();
        let mut jobs = Vec::new();
        for p in prepared {
            match p {
                Ok(j) => jobs.push(j),
                Err(r) => done.push(r),
            }
        }

        // 2. The leading apt steps of the whole wave in one apt-get install.
        let batch: Vec<usize> = (0..jobs.len())
            .filter(|&i| matches!(jobs[i].phases.get(jobs[i].next), Some((Phase::Batched, _))))
            .collect();
        if !batch.is_empty() {
            let mut packages: Vec<String> = Vec::new();
            for &i in &batch {
                let j = &jobs[i];
                self.progress
                    .phase_started(&j.name, j.next, &j.phases[j.next].1);
                for p in j.manifest.install[..j.manifest.leading_apt_steps()]
                    .iter()
                    .flat_map(apt_packages)
                {
                    if !packages.contains(p) {
                        packages.push(p.clone());
                    }
                }
            }
            let names: Vec<&str> = batch.iter().map(|&i| jobs[i].name.as_str()).collect();
            let label = names.join(",");
            let outcome = self.apt(&label, &packages, false, probe, run).await;
            let mut failed_batch = false;
            match outcome {
                Ok(added) => {
                    for &i in &batch {
                        let j = &mut jobs[i];
                        let mine: BTreeSet<&str> = j.manifest.install
                            [..j.manifest.leading_apt_steps()]
                            .iter()
                            .flat_map(apt_packages)
                            .map(|p| p.split('=').next().unwrap_or(p))
                            .collect();
                        j.apt_added = added
                            .iter()
                            .filter(|p| mine.contains(p.as_str()))
                            .cloned()
                            .collect();
                        j.next += 1;
                    }
                }
                Err(_) if batch.len() > 1 => failed_batch = true,
                Err((code, msg, tail)) => {
                    let i = batch[0];
                    let f = jobs[i].fail(jobs[i].next, code, msg, tail);
                    jobs[i].next = usize::MAX;
                    done.push(self.finish(&jobs[i], Outcome::Failed(f)));
                }
            }
            if failed_batch {
                // Say exactly whose packages failed: each extension's apt on its own.
                self.progress.message("the batched apt-get install failed; installing each extension's packages separately to find the cause");
                for &i in &batch {
                    let j = &jobs[i];
                    let pkgs: Vec<String> = j.manifest.install[..j.manifest.leading_apt_steps()]
                        .iter()
                        .flat_map(apt_packages)
                        .cloned()
                        .collect();
                    match self.apt(&j.name, &pkgs, false, probe, run).await {
                        Ok(added) => {
                            let j = &mut jobs[i];
                            j.apt_added = added;
                            j.next += 1;
                        }
                        Err((code, msg, tail)) => {
                            let f = jobs[i].fail(jobs[i].next, code, msg, tail);
                            jobs[i].next = usize::MAX;
                            done.push(self.finish(&jobs[i], Outcome::Failed(f)));
                        }
                    }
                }
            }
        }
        jobs.retain(|j| j.next != usize::MAX);

        // 3. The next step of each, when it is pip, npm or cargo: one run per kind and
        //    options. A batch that fails is not an error: its steps run one by one
        //    below, which finds whose packages are at fault.
        let mut groups: BTreeMap<BatchKey, Vec<usize>> = BTreeMap::new();
        for (i, j) in jobs.iter().enumerate() {
            if let Some((Phase::Step(s), _)) = j.phases.get(j.next)
                && let Some(key) = BatchKey::of(&j.manifest.install[*s])
            {
                groups.entry(key).or_default().push(i);
            }
        }
        groups.retain(|_, members| members.len() > 1);
        let batched: Vec<bool> = futures_util::future::join_all(
            groups
                .iter()
                .map(|(key, members)| self.run_batch(key, members, &jobs, probe, run)),
        )
        .await;
        for ((_, members), ok) in groups.iter().zip(batched) {
            if ok {
                for &i in members {
                    jobs[i].next += 1;
                }
            }
        }

        // 4. Everything else, extensions concurrently, each in its own order.
        let rest: Vec<ExtensionResult> = futures_util::stream::iter(jobs)
            .map(|j| self.finish_job(j, probe, run))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        done.extend(rest);
        done
    }

    /// Runs the current step of `members` (all of `key`'s kind) as one command, under
    /// the package manager's lock. True when it succeeded.
    async fn run_batch(
        &self,
        key: &BatchKey,
        members: &[usize],
        jobs: &[Job<'_>],
        probe: &Probe,
        run: &RunState,
    ) -> bool {
        let mut packages: Vec<String> = Vec::new();
        let mut names = Vec::new();
        for &i in members {
            let j = &jobs[i];
            let Some((Phase::Step(s), label)) = j.phases.get(j.next) else {
                continue;
            };
            self.progress.phase_started(&j.name, j.next, label);
            names.push(j.name.as_str());
            for p in step_packages(&j.manifest.install[*s]) {
                if !packages.contains(p) {
                    packages.push(p.clone());
                }
            }
        }
        let step = key.step(packages);
        let on_line = |l: &str| {
            for n in &names {
                self.progress.output(n, l);
            }
        };
        let _held = run.lock(&BTreeSet::from([key.manager()])).await;
        let ok = matches!(
            exec::run(
                self.provider,
                self.deployment,
                self.argv(script::step(&step), true, probe),
                &on_line,
            )
            .await,
            Ok(Ran { code: 0, .. })
        );
        if !ok {
            self.progress.message(&format!(
                "the batched `{}` failed; running each extension's step separately to find the cause",
                step.label()
            ));
        }
        ok
    }

    async fn finish_job(&self, mut j: Job<'_>, probe: &Probe, run: &RunState) -> ExtensionResult {
        let m = j.manifest;
        while j.next < j.phases.len() {
            let at = j.next;
            let (phase, label) = j.phases[at].clone();
            self.progress.phase_started(&j.name, at, &label);
            let r = match phase {
                Phase::Prepare(_) | Phase::Batched => Ok(()),
                Phase::Step(i) => match &m.install[i] {
                    Step::Apt(a) => {
                        match self.apt(&j.name, &a.packages, a.update, probe, run).await {
                            Ok(added) => {
                                j.apt_added.extend(added);
                                Ok(())
                            }
                            Err((code, msg, tail)) => Err(j.fail(at, code, msg, tail)),
                        }
                    }
                    step => {
                        let root = match step {
                            Step::Script(s) => s.root,
                            _ => true,
                        };
                        let _held = run.lock(&step_locks(step)).await;
                        self.run_phase(&j, at, script::step(step), root, probe)
                            .await
                    }
                },
                Phase::PostInstall(h) => self.run_phase(&j, at, h, true, probe).await,
                Phase::Validate => {
                    let v = self.validate_one(&j.name, m, probe).await;
                    if v.ok {
                        Ok(())
                    } else {
                        let bad = v.checks.iter().find(|c| !c.ok);
                        Err(j.fail(
                            at,
                            bad.and_then(|c| c.exit_code),
                            bad.map(|c| {
                                format!("`{}`: {}", c.run, c.problem.clone().unwrap_or_default())
                            })
                            .unwrap_or_default(),
                            bad.map(|c| c.output.lines().map(str::to_string).collect())
                                .unwrap_or_default(),
                        ))
                    }
                }
                Phase::Record => self.record(&j, at, probe).await,
            };
            if let Err(f) = r {
                self.cleanup_failed(&j, probe).await;
                return self.finish(&j, Outcome::Failed(f));
            }
            j.next += 1;
        }
        let reason = j.reason.clone();
        self.finish(&j, Outcome::Installed { reason })
    }

    fn finish(&self, j: &Job<'_>, outcome: Outcome) -> ExtensionResult {
        let res = ExtensionResult {
            name: j.name.clone(),
            version: j.manifest.version.clone(),
            outcome,
            millis: j.started.elapsed().as_millis() as u64,
        };
        self.progress.extension_finished(&j.name, &res);
        res
    }

    /// A failed install leaves no environment file behind (its PATH would point at
    /// nothing); installed packages stay, so a retry is quick.
    async fn cleanup_failed(&self, j: &Job<'_>, probe: &Probe) {
        if script::env_file(j.manifest).is_some() {
            let s = format!("rm -f {}/{}.sh\n", script::ENV_DIR, j.name);
            let _ = exec::run(
                self.provider,
                self.deployment,
                self.argv(s, true, probe),
                &|_| {},
            )
            .await;
        }
    }

    /// Writes the marker and the state record.
    async fn record(
        &self,
        j: &Job<'_>,
        at: usize,
        probe: &Probe,
    ) -> std::result::Result<(), Failure> {
        let now = unix_now();
        // A reinstall keeps the packages an earlier install added on the list to remove.
        let mut added = probe
            .env
            .markers
            .get(&j.name)
            .map(|m| m.apt.clone())
            .unwrap_or_default();
        for p in &j.apt_added {
            if !added.contains(p) {
                added.push(p.clone());
            }
        }
        self.run_phase(
            j,
            at,
            script::write_marker(&j.name, &j.manifest.version, now, &added),
            true,
            probe,
        )
        .await?;
        let rec = InstalledExtension {
            project: self.deployment.project.clone(),
            environment: self.deployment.name.clone(),
            extension: j.name.clone(),
            version: j.manifest.version.clone(),
            installed_at: now,
            validated_at: (!j.manifest.validate.is_empty()).then_some(now),
        };
        self.state.record_extension(&rec).map_err(|e| {
            j.fail(
                at,
                None,
                format!("recording in the state store: {e}"),
                Vec::new(),
            )
        })
    }

    /// Runs a script as one phase of a job.
    async fn run_phase(
        &self,
        j: &Job<'_>,
        at: usize,
        body: String,
        root: bool,
        probe: &Probe,
    ) -> std::result::Result<(), Failure> {
        let name = j.name.as_str();
        let on_line = |l: &str| self.progress.output(name, l);
        match exec::run(
            self.provider,
            self.deployment,
            self.argv(body, root, probe),
            &on_line,
        )
        .await
        {
            Ok(Ran { code: 0, .. }) => Ok(()),
            Ok(r) => Err(j.fail(at, Some(r.code), format!("exit code {}", r.code), r.tail)),
            Err(e) => Err(j.fail(at, None, e.to_string(), Vec::new())),
        }
    }

    /// One `apt-get install`, serialised with every other apt run of this install and
    /// preceded once by `apt-get update`. Returns the packages it added.
    async fn apt(
        &self,
        who: &str,
        packages: &[String],
        update: bool,
        probe: &Probe,
        run: &RunState,
    ) -> std::result::Result<Vec<String>, (Option<i32>, String, Vec<String>)> {
        let mut updated = run.apt.lock().await;
        let body = script::apt_install(packages, update || !*updated);
        if !*updated {
            self.progress.message("apt-get update");
        }
        let names: Vec<&str> = who.split(',').collect();
        let on_line = |l: &str| {
            for n in &names {
                self.progress.output(n, l);
            }
        };
        *run.apt_runs.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        match exec::run(
            self.provider,
            self.deployment,
            self.argv(body, true, probe),
            &on_line,
        )
        .await
        {
            Ok(r) if r.code == 0 => {
                *updated = true;
                Ok(r.tags
                    .iter()
                    .filter_map(|t| t.strip_prefix("new-apt "))
                    .map(str::to_string)
                    .collect())
            }
            Ok(r) => {
                // The lists were updated even when the install failed; a package
                // name that apt does not know is the common mistake.
                *updated = true;
                let unknown: Vec<&str> = r
                    .tail
                    .iter()
                    .filter_map(|l| l.strip_prefix("E: Unable to locate package "))
                    .collect();
                let msg = if unknown.is_empty() {
                    format!("apt-get exited with code {}", r.code)
                } else {
                    format!(
                        "apt-get exited with code {}: no package named {}",
                        r.code,
                        unknown.join(", ")
                    )
                };
                Err((Some(r.code), msg, r.tail))
            }
            Err(e) => Err((None, e.to_string(), Vec::new())),
        }
    }

    fn argv(&self, body: String, root: bool, probe: &Probe) -> Vec<String> {
        let script = format!("{}{body}", script::preamble());
        if root && probe.env.uid != Some(0) && probe.env.sudo {
            vec!["sudo".into(), "-n".into(), "sh".into(), "-c".into(), script]
        } else {
            sh(script)
        }
    }

    /// Runs the `validate` commands of each extension (as the environment's user) and
    /// records when they passed.
    pub async fn validate(&self, names: &[String], probe: &Probe) -> Result<Vec<Validation>> {
        let mut out = Vec::new();
        for name in names {
            let m = self.manifest(name)?;
            self.progress.extension_started(name, &m.version, 1);
            self.progress.phase_started(name, 0, "validate");
            let started = Instant::now();
            let v = self.validate_one(name, m, probe).await;
            if v.ok
                && let Some(rec) = probe.recorded.get(name)
            {
                let mut rec = rec.clone();
                rec.validated_at = Some(unix_now());
                self.state.record_extension(&rec)?;
            }
            let outcome = if v.ok {
                Outcome::Validated
            } else {
                let bad = v.checks.iter().find(|c| !c.ok);
                Outcome::Failed(Failure {
                    phase: 1,
                    phases: 1,
                    label: "validate".into(),
                    exit_code: bad.and_then(|c| c.exit_code),
                    message: bad.and_then(|c| c.problem.clone()).unwrap_or_default(),
                    log_tail: Vec::new(),
                })
            };
            self.progress.extension_finished(
                name,
                &ExtensionResult {
                    name: name.clone(),
                    version: m.version.clone(),
                    outcome,
                    millis: started.elapsed().as_millis() as u64,
                },
            );
            out.push(v);
        }
        Ok(out)
    }

    async fn validate_one(&self, name: &str, m: &Manifest, probe: &Probe) -> Validation {
        let mut checks = Vec::new();
        for c in &m.validate {
            let on_line = |l: &str| self.progress.output(name, l);
            let body = format!("{}\n", c.run);
            let r = exec::run(
                self.provider,
                self.deployment,
                self.argv(body, false, probe),
                &on_line,
            )
            .await;
            let result = match r {
                Err(e) => CheckResult {
                    run: c.run.clone(),
                    ok: false,
                    exit_code: None,
                    expect: c.expect.clone(),
                    output: String::new(),
                    problem: Some(e.to_string()),
                },
                Ok(r) => {
                    let output = r.tail.join("\n").trim().to_string();
                    let problem = if r.code != 0 {
                        Some(format!("exit code {}", r.code))
                    } else {
                        match &c.expect {
                            Some(re) => match regex::Regex::new(re) {
                                Ok(rx) if rx.is_match(&output) => None,
                                Ok(_) => Some(format!(
                                    "output `{}` does not match `{re}`",
                                    output.lines().next().unwrap_or("")
                                )),
                                Err(e) => Some(format!("`{re}` is not a regular expression: {e}")),
                            },
                            None => None,
                        }
                    };
                    CheckResult {
                        run: c.run.clone(),
                        ok: problem.is_none(),
                        exit_code: Some(r.code),
                        expect: c.expect.clone(),
                        output: output.lines().take(8).collect::<Vec<_>>().join("\n"),
                        problem,
                    }
                }
            };
            checks.push(result);
        }
        Validation {
            name: name.to_string(),
            version: m.version.clone(),
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// Runs the `post_deploy` hooks of `names` (in that order) that are installed.
    pub async fn post_deploy(&self, names: &[String], probe: &Probe, report: &mut InstallReport) {
        let failed: BTreeSet<&str> = report.failed().iter().map(|r| r.name.as_str()).collect();
        let mut failures = Vec::new();
        for name in names {
            if failed.contains(name.as_str()) {
                continue;
            }
            let Ok(m) = self.manifest(name) else { continue };
            let Some(hook) = &m.hooks.post_deploy else {
                continue;
            };
            self.progress.message(&format!("{name}: post_deploy hook"));
            let on_line = |l: &str| self.progress.output(name, l);
            match exec::run(
                self.provider,
                self.deployment,
                self.argv(hook.clone(), true, probe),
                &on_line,
            )
            .await
            {
                Ok(r) if r.code == 0 => {}
                Ok(r) => failures.push(HookFailure {
                    extension: name.clone(),
                    exit_code: Some(r.code),
                    message: format!("exit code {}", r.code),
                    log_tail: r.tail,
                }),
                Err(e) => failures.push(HookFailure {
                    extension: name.clone(),
                    exit_code: None,
                    message: e.to_string(),
                    log_tail: Vec::new(),
                }),
            }
        }
        report.hook_failures.extend(failures);
    }

    /// Brings the environment to `resolution`: probe, plan, install what changed, then
    /// the `post_deploy` hooks. What deploy runs.
    pub async fn sync(&self, resolution: &Resolution) -> Result<(InstallPlan, InstallReport)> {
        let probe = self.probe().await?;
        let plan = self.plan(resolution, &probe, &BTreeSet::new())?;
        let mut report = self.install(&plan, &probe).await;
        self.post_deploy(&resolution.order, &probe, &mut report)
            .await;
        Ok((plan, report))
    }

    /// Removes `names` (dependents first). Refuses, before anything runs, to remove an
    /// extension another installed one requires, or one that is not installed.
    pub async fn remove(&self, names: &[String], probe: &Probe) -> Result<Vec<Removal>> {
        let installed = probe.installed();
        check_removal(self.catalog, &installed, names)?;
        let order = removal_order(self.catalog, names);
        // Packages other remaining extensions use stay.
        let remaining: Vec<&String> = installed.iter().filter(|n| !names.contains(n)).collect();
        let mut keep_apt: BTreeSet<String> = BTreeSet::new();
        let mut keep_other: BTreeSet<String> = BTreeSet::new();
        for r in &remaining {
            if let Some(m) = self.catalog.manifest(r) {
                for s in &m.install {
                    match s {
                        Step::Apt(a) => keep_apt.extend(
                            a.packages
                                .iter()
                                .map(|p| p.split('=').next().unwrap_or(p).to_string()),
                        ),
                        Step::Pip(p) => keep_other
                            .extend(p.packages.iter().map(|p| script::pip_name(p).to_string())),
                        Step::Npm(n) => keep_other
                            .extend(n.packages.iter().map(|p| script::npm_name(p).to_string())),
                        Step::Cargo(c) => keep_other.extend(
                            c.crates
                                .iter()
                                .map(|c| c.split('@').next().unwrap_or(c).to_string()),
                        ),
                        _ => {}
                    }
                }
            }
            if let Some(mk) = probe.env.markers.get(*r) {
                keep_apt.extend(mk.apt.iter().cloned());
            }
        }
        let mut out = Vec::new();
        for name in order {
            out.push(
                self.remove_one(&name, probe, &keep_apt, &keep_other)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn remove_one(
        &self,
        name: &str,
        probe: &Probe,
        keep_apt: &BTreeSet<String>,
        keep_other: &BTreeSet<String>,
    ) -> Result<Removal> {
        let manifest = self.catalog.manifest(name);
        let marker = probe.env.markers.get(name).cloned().unwrap_or_default();
        let version = manifest
            .map(|m| m.version.clone())
            .unwrap_or_else(|| marker.version.clone());
        let mut warnings = Vec::new();
        if manifest.is_none() {
            warnings.push(format!(
                "`{name}` is no longer in the catalog: only its apt packages, environment and record are removed"
            ));
        }
        let (removed, kept): (Vec<String>, Vec<String>) = marker
            .apt
            .iter()
            .cloned()
            .partition(|p| !keep_apt.contains(p));
        let mut kept = kept;
        if let Some(m) = manifest {
            for p in m.apt_packages() {
                let p = p.split('=').next().unwrap_or(p).to_string();
                if !removed.contains(&p) && !kept.contains(&p) {
                    kept.push(p);
                }
            }
        }
        let mut phases: Vec<(String, String)> = Vec::new();
        if let Some(s) = manifest.and_then(|m| m.remove.script.clone()) {
            phases.push(("remove script".into(), s));
        }
        let keep = |p: &str| keep_other.contains(p);
        phases.push((
            "remove packages, environment and marker".into(),
            script::auto_remove(manifest, name, &removed, &keep),
        ));
        self.progress
            .extension_started(name, &version, phases.len() + 1);
        let started = Instant::now();
        let total = phases.len() + 1;
        for (i, (label, body)) in phases.iter().enumerate() {
            self.progress.phase_started(name, i, label);
            let on_line = |l: &str| self.progress.output(name, l);
            let failure = match exec::run(
                self.provider,
                self.deployment,
                self.argv(body.clone(), true, probe),
                &on_line,
            )
            .await
            {
                Ok(r) if r.code == 0 => None,
                Ok(r) => Some((Some(r.code), format!("exit code {}", r.code), r.tail)),
                Err(e) => Some((None, e.to_string(), Vec::new())),
            };
            if let Some((exit_code, message, log_tail)) = failure {
                let f = Failure {
                    phase: i + 1,
                    phases: total,
                    label: label.clone(),
                    exit_code,
                    message,
                    log_tail,
                };
                let res = ExtensionResult {
                    name: name.to_string(),
                    version: version.clone(),
                    outcome: Outcome::Failed(f.clone()),
                    millis: started.elapsed().as_millis() as u64,
                };
                self.progress.extension_finished(name, &res);
                return Ok(Removal {
                    name: name.to_string(),
                    ok: false,
                    removed_packages: Vec::new(),
                    kept_packages: kept,
                    failure: Some(f),
                    warnings,
                });
            }
        }
        self.progress.phase_started(name, total - 1, "forget");
        self.state
            .remove_extension(&self.deployment.project, &self.deployment.name, name)?;
        self.progress.extension_finished(
            name,
            &ExtensionResult {
                name: name.to_string(),
                version,
                outcome: Outcome::Removed,
                millis: started.elapsed().as_millis() as u64,
            },
        );
        Ok(Removal {
            name: name.to_string(),
            ok: true,
            removed_packages: removed,
            kept_packages: kept,
            failure: None,
            warnings,
        })
    }
}

fn apt_packages(s: &Step) -> std::slice::Iter<'_, String> {
    match s {
        Step::Apt(a) => a.packages.iter(),
        _ => [].iter(),
    }
}

fn sh(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

/// Refuses to remove what is not installed, or what a remaining installed extension
/// requires (saying which, and the command that removes both).
pub fn check_removal(catalog: &Catalog, installed: &[String], remove: &[String]) -> Result<()> {
    let mut problems = Vec::new();
    for r in remove {
        if !installed.contains(r) {
            let mut p = format!("`{r}` is not installed in this environment");
            if let Some(s) = crate::catalog::did_you_mean(r, installed.iter().map(String::as_str)) {
                p.push_str(&format!("; did you mean `{s}`?"));
            }
            problems.push(p);
        }
    }
    for i in installed.iter().filter(|i| !remove.contains(i)) {
        let Some(m) = catalog.manifest(i) else {
            continue;
        };
        for req in m.requires.iter().filter(|r| remove.contains(r)) {
            problems.push(format!(
                "`{i}` requires `{req}`: remove both (`sindri extension remove {i} {}`)",
                remove.join(" ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(problems.join("\n"))
            .with_hint("nothing was removed; `sindri extension status` lists what is installed"))
    }
}

/// `names` ordered so that an extension comes before what it requires.
pub fn removal_order(catalog: &Catalog, names: &[String]) -> Vec<String> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.dedup();
    let index: BTreeMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = sorted
        .iter()
        .map(|n| {
            catalog
                .manifest(n)
                .map(|m| {
                    m.requires
                        .iter()
                        .filter_map(|r| index.get(r.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    match graph::waves(&deps) {
        Ok(w) => w
            .into_iter()
            .rev()
            .flatten()
            .map(|i| sorted[i].clone())
            .collect(),
        Err(_) => sorted.into_iter().cloned().collect(),
    }
}
