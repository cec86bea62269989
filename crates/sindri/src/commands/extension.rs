//! `sindri extension ...`, `sindri profile ...`, and the extension step of `deploy`.
//!
//! The catalog is the built-in one plus `extensions.sources` of sindri.yaml; commands
//! that only read the catalog (`list`, `info`, `schema`, `profile ...`) work without a
//! config file. Commands that touch the environment (`install`, `remove`, `validate`,
//! `status`) need it deployed, and run everything through the provider's `exec`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sindri_core::{Deployment, Error, Progress, Provider, ResolvedSpec};
use sindri_extensions::{
    Action, Catalog, ExtensionResult, InstallProgress, Installer, Outcome, PlanItem, Reason,
    Removal, Request, Resolution, Target, Validation, plan_items, resolve,
};
use sindri_spec::Spec;

use crate::app::App;
use crate::output::{CliError, CliResult, Output, Report, human_duration, table};
use crate::signals::interruptible;

/// `sindri extension ...`: tools installed into the environment.
///
/// An extension is a YAML manifest: install steps (apt, pip, npm, cargo, a script, or a
/// download pinned by SHA-256), what it requires and conflicts with, the environment it
/// exports, and commands that validate it. Declare them in sindri.yaml and `deploy`
/// installs them after the environment is ready:
///
///     extensions:
///       profile: python        # a curated set: `sindri profile list`
///       active: [rust, jq]     # more, by name: `sindri extension list`
///       sources: [./extensions]  # your own manifests, relative to sindri.yaml
///
/// A redeploy installs only what is new or changed (a manifest's `version`).
#[derive(Debug, clap::Subcommand)]
pub enum ExtensionCommand {
    /// List the extensions sindri knows, built in and from `extensions.sources`.
    ///
    /// Marks those sindri.yaml asks for and, when the environment was deployed, the
    /// version recorded as installed (from local state; `status` asks the environment).
    List(ListArgs),

    /// Show one extension: what it installs, requires, exports and how it is checked.
    Info {
        /// The extension's name.
        name: String,
    },

    /// Install extensions into the deployed environment now, with what they require.
    ///
    /// Already-installed extensions at the same version are skipped unless `--force`.
    /// To keep them across redeploys of a new environment, add them to
    /// `extensions.active` in sindri.yaml.
    Install(InstallArgs),

    /// Remove extensions from the environment: their remove scripts run, the packages
    /// sindri added go (never ones that were there before or that another installed
    /// extension lists), and their records are deleted.
    ///
    /// Refused when another installed extension requires one of them; name both.
    Remove {
        /// The extensions to remove.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },

    /// Run the validation commands of installed extensions (all, or those named) and
    /// record when they passed. Exits 1 if any fails.
    Validate {
        /// Extensions to validate; default: every installed one.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },

    /// Compare what sindri.yaml asks for with what the environment has installed.
    ///
    /// States: `ok`, `outdated` (the catalog has another version: `deploy` upgrades
    /// it), `missing` (asked for, not installed: `deploy` installs it), `extra`
    /// (installed, no longer asked for: `sindri extension remove` takes it out).
    Status,

    /// Print the JSON Schema of an extension manifest, generated from sindri's types.
    Schema,
}

/// `sindri extension list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only extensions of this category (language, build, vcs, containers, cloud, ml,
    /// database, shell, editor, utility).
    #[arg(long)]
    pub category: Option<String>,
}

/// `sindri extension install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The extensions to install.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Install the named extensions again even when the same version is installed.
    #[arg(long)]
    pub force: bool,
}

/// `sindri profile ...`: curated sets of extensions.
///
/// Use one with `extensions: {profile: NAME}` in sindri.yaml; `active` adds more.
#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List the profiles, built in and from `extensions.sources`.
    List,
    /// Show a profile's extensions and the order they install in.
    Show {
        /// The profile's name.
        name: String,
    },
}

// ----- catalog access ---------------------------------------------------------------

/// The spec (when there is a config file) and the catalog it sees.
fn catalog(app: &App) -> CliResult<(Option<Spec>, Catalog)> {
    if app.global.config.exists() {
        let spec = app.load()?;
        let rs = app.identify(spec.clone());
        let c = Catalog::for_spec(&spec.extensions, &rs.base_dir)?;
        Ok((Some(spec), c))
    } else {
        Ok((None, Catalog::builtin()?))
    }
}

fn unknown_extension(c: &Catalog, name: &str) -> CliError {
    let e = Error::not_found(format!("unknown extension `{name}`"));
    match c.suggest_extension(name) {
        Some(s) => e.with_hint(format!(
            "did you mean `{s}`? (`sindri extension list` shows every extension)"
        )),
        None => e.with_hint("`sindri extension list` shows every extension"),
    }
    .into()
}

/// What sindri.yaml asks for, resolved, or an error listing every problem.
fn wanted(spec: &Spec, c: &Catalog) -> CliResult<Resolution> {
    Ok(resolve(
        c,
        &Request::from_spec(&spec.extensions),
        &Target::from_spec(spec),
    )
    .map_err(Error::from)?)
}

/// What the commands that touch the environment share.
struct Live {
    spec: Spec,
    rs: ResolvedSpec,
    catalog: Catalog,
    provider: std::sync::Arc<dyn Provider>,
    state: sindri_state::StateStore,
    deployment: Deployment,
}

async fn live(app: &App) -> CliResult<Live> {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.identify(spec.clone());
    let catalog = Catalog::for_spec(&spec.extensions, &rs.base_dir)?;
    let state = app.state()?;
    let deployment = app.require_deployment(&*provider, &rs, &state).await?;
    Ok(Live {
        spec,
        rs,
        catalog,
        provider,
        state,
        deployment,
    })
}

// ----- progress -----------------------------------------------------------------------

/// A bar per extension on a terminal, plain lines otherwise, nothing with `--quiet`
/// or `--output json`.
struct Bars {
    visible: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, (ProgressBar, String)>>,
}

impl Bars {
    fn new(out: &Output) -> Bars {
        let visible = !out.quiet && !out.json();
        let tty = visible && std::io::stderr().is_terminal();
        Bars {
            visible,
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, text: &str) {
        if !self.visible {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, (pb, _)) in std::mem::take(&mut *bars) {
                if !pb.is_finished() {
                    pb.finish_and_clear();
                }
            }
        }
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

impl InstallProgress for Bars {
    fn extension_started(&self, name: &str, version: &str, phases: usize) {
        let Some(m) = &self.multi else { return };
        let pb = m.add(ProgressBar::new(phases as u64));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>18.bold} [{bar:16}] {pos}/{len} {elapsed:>4} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(short(name, 18));
        pb.set_message(format!("v{version}"));
        pb.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(name.to_string(), (pb, String::new()));
        }
    }

    fn phase_started(&self, name: &str, index: usize, label: &str) {
        match &self.multi {
            Some(_) => {
                if let Ok(mut bars) = self.bars.lock()
                    && let Some((pb, current)) = bars.get_mut(name)
                {
                    pb.set_position(index as u64);
                    *current = label.to_string();
                    pb.set_message(label.to_string());
                }
            }
            None => self.line(&format!("{name}: {label}")),
        }
    }

    fn output(&self, name: &str, line: &str) {
        // The latest line shows next to the bar; the full log is the failure's tail.
        if let Ok(bars) = self.bars.lock()
            && let Some((pb, current)) = bars.get(name)
            && !line.trim().is_empty()
        {
            pb.set_message(format!("{current}: {}", line.trim()));
        }
    }

    fn extension_finished(&self, name: &str, result: &ExtensionResult) {
        let took = human_duration(Duration::from_millis(result.millis));
        let text = match &result.outcome {
            Outcome::Installed { reason } => {
                format!("✓ {name} {} installed ({reason}, {took})", result.version)
            }
            Outcome::Unchanged => format!("= {name} {} unchanged", result.version),
            Outcome::Validated => format!("✓ {name} {} valid", result.version),
            Outcome::Removed => format!("✓ {name} removed ({took})"),
            Outcome::Failed(f) => format!(
                "✗ {name} failed at step {}/{}: {}",
                f.phase, f.phases, f.label
            ),
            Outcome::Skipped { reason } => format!("- {name} skipped: {reason}"),
        };
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(name));
        match bar {
            Some((pb, _)) => {
                pb.finish_and_clear();
                self.line(&text);
            }
            None => self.line(&text),
        }
    }

    fn message(&self, text: &str) {
        self.line(&format!("  {text}"));
    }
}

// ----- the deploy step ------------------------------------------------------------------

/// What the extension step of `deploy` did, for its report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExtensionsSummary {
    /// Installed (new or changed) by this deploy.
    pub installed: Vec<String>,
    /// Already there at the wanted version.
    pub unchanged: Vec<String>,
    /// What was decided for each extension, in install order (`install`, `upgrade`,
    /// `restore` when the environment lost it, `keep`).
    pub plan: Vec<PlanItem>,
    /// How long the step took, in milliseconds.
    pub millis: u128,
}

impl ExtensionsSummary {
    /// True when sindri.yaml asks for no extension.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty() && self.unchanged.is_empty()
    }
}

impl Report for ExtensionsSummary {
    fn human(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let mut s = String::from("extensions: ");
        if !self.installed.is_empty() {
            s.push_str(&format!("installed {}", self.installed.join(", ")));
        }
        if !self.unchanged.is_empty() {
            if !self.installed.is_empty() {
                s.push_str("; ");
            }
            s.push_str(&format!("{} unchanged", self.unchanged.len()));
        }
        s
    }
}

/// Checks sindri.yaml's `extensions:` against the catalog and the spec's resources
/// (unknown names, cycles, conflicts, a GPU for cuda-toolkit, a network...), so
/// `deploy`, `plan` and `config validate` refuse the same problems, before anything is
/// created.
pub fn check_before_deploy(rs: &ResolvedSpec) -> CliResult<()> {
    resolve_spec(rs).map(|_| ())
}

/// What sindri.yaml's `extensions:` resolved to: the catalog and the install order,
/// or `None` when it asks for none.
pub type SpecExtensions = Option<(Catalog, Resolution)>;

/// The catalog and resolution of sindri.yaml's `extensions:`, or `None` when it asks for
/// none. A user directory that does not load is an error too.
pub fn resolve_spec(rs: &ResolvedSpec) -> CliResult<SpecExtensions> {
    let ext = &rs.spec.extensions;
    let none_asked = ext.profile.is_none() && ext.active.is_empty();
    // Every command that loads sindri.yaml gets here: without extensions or extension
    // directories there is no catalog to load.
    if none_asked && ext.sources.is_empty() {
        return Ok(None);
    }
    let c = Catalog::for_spec(ext, &rs.base_dir)?;
    if none_asked {
        return Ok(None);
    }
    let r = wanted(&rs.spec, &c)?;
    Ok(Some((c, r)))
}

/// One extension of `sindri plan`.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionPlanRow {
    /// The extension.
    pub name: String,
    /// The version deploy would leave installed.
    pub version: String,
    /// What deploy would do.
    #[serde(flatten)]
    pub action: Action,
    /// Why, in words.
    pub reason: String,
}

/// The extension part of `sindri plan`: what `deploy` would do with each extension
/// sindri.yaml asks for (requirements included), in install order.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionsPlan {
    /// One row per extension.
    pub extensions: Vec<ExtensionPlanRow>,
}

impl ExtensionsPlan {
    /// True when deploy would install nothing.
    pub fn is_noop(&self) -> bool {
        self.extensions.iter().all(|e| !e.action.installs())
    }
}

impl Report for ExtensionsPlan {
    fn human(&self) -> String {
        let mut s = String::from(
            "extensions (judged by what local state recorded; deploy checks the environment itself and installs anything missing):\n",
        );
        for e in &self.extensions {
            let sign = match e.action {
                Action::Install => "+ install",
                Action::Upgrade { .. } => "~ upgrade",
                Action::Restore | Action::Reinstall => "± install",
                Action::Keep => "= keep   ",
            };
            s.push_str(&format!(
                "  {sign} {} {}  ({})\n",
                e.name, e.version, e.reason
            ));
        }
        s
    }
}

/// Resolves sindri.yaml's extensions, refusing every problem `deploy` would, and says
/// what `deploy` would do with each, without touching the environment: judged by the
/// versions `state` recorded for it. `recreated` says the deploy creates or replaces
/// the environment's compute, so nothing installed survives. `None` when sindri.yaml
/// asks for no extension.
pub fn plan_extensions(
    rs: &ResolvedSpec,
    resolved: &SpecExtensions,
    state: Option<&sindri_state::StateStore>,
    recreated: bool,
) -> CliResult<Option<ExtensionsPlan>> {
    let Some((catalog, resolution)) = resolved else {
        return Ok(None);
    };
    let records = match state {
        Some(s) => s.extensions(&rs.project, rs.name())?,
        None => Vec::new(),
    };
    let recorded: BTreeSet<String> = records.iter().map(|r| r.extension.clone()).collect();
    let installed: BTreeMap<String, String> = if recreated {
        BTreeMap::new()
    } else {
        records
            .into_iter()
            .map(|r| (r.extension, r.version))
            .collect()
    };
    let items = plan_items(
        catalog,
        &resolution.order,
        &installed,
        &recorded,
        &BTreeSet::new(),
    )?;
    let extensions = items
        .into_iter()
        .map(|i| {
            let reason = match &i.action {
                Action::Restore => {
                    "recorded as installed; the deploy recreates the environment".to_string()
                }
                Action::Install => match resolution.reasons.get(&i.name) {
                    Some(why) => format!("new, {why}"),
                    None => "new".to_string(),
                },
                other => other.describe(),
            };
            ExtensionPlanRow {
                name: i.name,
                version: i.version,
                action: i.action,
                reason,
            }
        })
        .collect();
    Ok(Some(ExtensionsPlan { extensions }))
}

/// Installs the extensions sindri.yaml asks for into a freshly deployed (or redeployed)
/// environment: only what is new or changed, then every `post_deploy` hook. Called at
/// the end of `deploy` unless `--no-extensions`. Fails, after installing everything it
/// could, when an extension or hook failed, saying which step and showing its log tail.
pub async fn install_after_deploy(
    app: &App,
    provider: &dyn Provider,
    d: &Deployment,
    rs: &ResolvedSpec,
    progress: &dyn Progress,
) -> CliResult<ExtensionsSummary> {
    if rs.spec.extensions.profile.is_none() && rs.spec.extensions.active.is_empty() {
        return Ok(ExtensionsSummary::default());
    }
    let started = Instant::now();
    let catalog = Catalog::for_spec(&rs.spec.extensions, &rs.base_dir)?;
    let resolution = wanted(&rs.spec, &catalog)?;
    let state = app.state()?;
    let bars = Bars::new(&app.out);
    let installer = Installer::new(provider, d, &catalog, &state, &bars);
    let result = interruptible(installer.sync(&resolution)).await;
    bars.finish();
    let (plan, report) = result?;
    progress.phase_finished("install extensions", started.elapsed());
    let summary = ExtensionsSummary {
        installed: report.installed().iter().map(|s| s.to_string()).collect(),
        unchanged: report.unchanged().iter().map(|s| s.to_string()).collect(),
        plan: plan.items,
        millis: started.elapsed().as_millis(),
    };
    let event = match report.error() {
        None if summary.installed.is_empty() => {
            format!("extensions unchanged ({})", summary.unchanged.len())
        }
        None => format!("installed extensions: {}", summary.installed.join(", ")),
        Some(_) => format!(
            "extension install failed: {}",
            report
                .failed()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    state.record_event(&d.project, &d.name, "extensions", &event)?;
    match report.error() {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

// ----- commands ---------------------------------------------------------------------------

/// Runs `sindri extension ...`.
pub async fn extension(app: &App, cmd: ExtensionCommand) -> CliResult {
    match cmd {
        ExtensionCommand::List(a) => list(app, a),
        ExtensionCommand::Info { name } => info(app, &name),
        ExtensionCommand::Install(a) => install(app, a).await,
        ExtensionCommand::Remove { names } => remove(app, names).await,
        ExtensionCommand::Validate { names } => validate(app, names).await,
        ExtensionCommand::Status => status(app).await,
        ExtensionCommand::Schema => {
            print!("{}", sindri_extensions::manifest_schema_string());
            Ok(())
        }
    }
}

/// Runs `sindri profile ...`.
pub async fn profile(app: &App, cmd: ProfileCommand) -> CliResult {
    match cmd {
        ProfileCommand::List => profile_list(app),
        ProfileCommand::Show { name } => profile_show(app, &name),
    }
}

#[derive(Serialize)]
struct ListRow {
    name: String,
    version: String,
    category: String,
    description: String,
    source: String,
    requires: Vec<String>,
    /// Asked for by sindri.yaml (directly, through the profile, or as a requirement).
    wanted: bool,
    /// The version recorded as installed in this project's environment.
    installed: Option<String>,
}

#[derive(Serialize)]
struct ListReport {
    extensions: Vec<ListRow>,
}

impl Report for ListReport {
    fn human(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .extensions
            .iter()
            .map(|r| {
                let mark = match (&r.installed, r.wanted) {
                    (Some(v), _) => format!("installed {v}"),
                    (None, true) => "wanted".into(),
                    _ => String::new(),
                };
                vec![
                    r.name.clone(),
                    r.version.clone(),
                    r.category.clone(),
                    mark,
                    short(&r.description, 60),
                ]
            })
            .collect();
        let mut s = table(
            &["NAME", "VERSION", "CATEGORY", "STATUS", "DESCRIPTION"],
            &rows,
        );
        s.push_str(&format!(
            "{} extensions; `sindri extension info NAME` for details",
            self.extensions.len()
        ));
        s
    }
}

fn list(app: &App, args: ListArgs) -> CliResult {
    let (spec, c) = catalog(app)?;
    let wanted: BTreeSet<String> = match &spec {
        Some(s) => resolve(&c, &Request::from_spec(&s.extensions), &Target::default())
            .map(|r| r.order.into_iter().collect())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    let installed: BTreeMap<String, String> =
        match (&spec, sindri_state::StateStore::open_existing_default()?) {
            (Some(s), Some(state)) => {
                let rs = app.identify(s.clone());
                state
                    .extensions(&rs.project, rs.name())?
                    .into_iter()
                    .map(|r| (r.extension, r.version))
                    .collect()
            }
            _ => BTreeMap::new(),
        };
    if let Some(cat) = &args.category
        && !c.extensions().any(|e| e.manifest.category.as_str() == cat)
    {
        return Err(Error::invalid(format!("no extension has category `{cat}`"))
            .with_hint("categories: language, build, vcs, containers, cloud, ml, database, shell, editor, utility")
            .into());
    }
    let extensions = c
        .extensions()
        .filter(|e| {
            args.category
                .as_deref()
                .is_none_or(|cat| e.manifest.category.as_str() == cat)
        })
        .map(|e| ListRow {
            name: e.manifest.name.clone(),
            version: e.manifest.version.clone(),
            category: e.manifest.category.to_string(),
            description: e.manifest.description.clone(),
            source: e.source.to_string(),
            requires: e.manifest.requires.clone(),
            wanted: wanted.contains(&e.manifest.name),
            installed: installed.get(&e.manifest.name).cloned(),
        })
        .collect();
    app.out.emit(&ListReport { extensions });
    Ok(())
}

#[derive(Serialize)]
struct InfoReport {
    source: String,
    #[serde(flatten)]
    manifest: sindri_extensions::Manifest,
    /// Everything it pulls in, in install order (itself last).
    install_order: Vec<String>,
    /// Built-in or user extensions that require it.
    required_by: Vec<String>,
}

impl Report for InfoReport {
    fn human(&self) -> String {
        let m = &self.manifest;
        let mut s = format!(
            "{} {} ({})\n  {}\n  source: {}\n",
            m.name, m.version, m.category, m.description, self.source
        );
        if !m.requires.is_empty() {
            s.push_str(&format!("  requires: {}\n", m.requires.join(", ")));
        }
        if self.install_order.len() > 1 {
            s.push_str(&format!(
                "  installs, in order: {}\n",
                self.install_order.join(" → ")
            ));
        }
        if !self.required_by.is_empty() {
            s.push_str(&format!("  required by: {}\n", self.required_by.join(", ")));
        }
        if !m.conflicts.is_empty() {
            s.push_str(&format!("  conflicts with: {}\n", m.conflicts.join(", ")));
        }
        let r = &m.requirements;
        let mut needs = Vec::new();
        if r.gpu {
            needs.push("a GPU".to_string());
        }
        if let Some(mem) = r.memory {
            needs.push(format!("{mem} memory"));
        }
        if let Some(d) = r.disk {
            needs.push(format!("{d} disk"));
        }
        if m.needs_network() {
            needs.push("network access".to_string());
        }
        if !needs.is_empty() {
            s.push_str(&format!("  needs: {}\n", needs.join(", ")));
        }
        s.push_str("  install steps:\n");
        for (i, step) in m.install.iter().enumerate() {
            s.push_str(&format!("    {}. {}\n", i + 1, step.label()));
        }
        let hooks = [
            ("pre_install", &m.hooks.pre_install),
            ("post_install", &m.hooks.post_install),
            ("post_deploy", &m.hooks.post_deploy),
        ];
        for (when, hook) in hooks {
            if let Some(h) = hook {
                s.push_str(&format!(
                    "  {when} hook: {}\n",
                    short(h.lines().next().unwrap_or(""), 70)
                ));
            }
        }
        if !m.env.is_empty() || !m.path.is_empty() {
            s.push_str("  exports:\n");
            for (k, v) in &m.env {
                s.push_str(&format!("    {k}={v}\n"));
            }
            if !m.path.is_empty() {
                s.push_str(&format!("    PATH+={}\n", m.path.join(":")));
            }
        }
        if !m.validate.is_empty() {
            s.push_str("  validated by:\n");
            for v in &m.validate {
                match &v.expect {
                    Some(e) => s.push_str(&format!("    {}  (expects /{e}/)\n", v.run)),
                    None => s.push_str(&format!("    {}\n", v.run)),
                }
            }
        }
        s
    }
}

fn info(app: &App, name: &str) -> CliResult {
    let (_, c) = catalog(app)?;
    let Some(entry) = c.get(name) else {
        return Err(unknown_extension(&c, name));
    };
    let install_order = resolve(
        &c,
        &Request::named(&[name]),
        &Target {
            gpus: Some(1),
            ..Default::default()
        },
    )
    .map(|r| r.order)
    .unwrap_or_default();
    let required_by = c
        .extensions()
        .filter(|e| e.manifest.requires.iter().any(|r| r == name))
        .map(|e| e.manifest.name.clone())
        .collect();
    app.out.emit(&InfoReport {
        source: entry.source.to_string(),
        manifest: entry.manifest.clone(),
        install_order,
        required_by,
    });
    Ok(())
}

#[derive(Serialize)]
struct InstallReport {
    environment: String,
    plan: Vec<PlanItem>,
    results: Vec<ExtensionResult>,
    notes: Vec<String>,
}

impl Report for InstallReport {
    fn human(&self) -> String {
        let pick = |f: fn(&Outcome) -> bool| -> Vec<&str> {
            self.results
                .iter()
                .filter(|r| f(&r.outcome))
                .map(|r| r.name.as_str())
                .collect()
        };
        let installed = pick(|o| matches!(o, Outcome::Installed { .. }));
        let unchanged = pick(|o| matches!(o, Outcome::Unchanged));
        let failed = pick(|o| matches!(o, Outcome::Failed(_) | Outcome::Skipped { .. }));
        let mut s = String::new();
        if !installed.is_empty() {
            s.push_str(&format!(
                "installed in `{}`: {}\n",
                self.environment,
                installed.join(", ")
            ));
        }
        if !unchanged.is_empty() {
            s.push_str(&format!("already installed: {}\n", unchanged.join(", ")));
        }
        if !failed.is_empty() {
            s.push_str(&format!("not installed: {}\n", failed.join(", ")));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

async fn install(app: &App, args: InstallArgs) -> CliResult {
    let l = live(app).await?;
    for n in &args.names {
        if l.catalog.get(n).is_none() {
            return Err(unknown_extension(&l.catalog, n));
        }
    }
    let bars = Bars::new(&app.out);
    let installer = Installer::new(&*l.provider, &l.deployment, &l.catalog, &l.state, &bars);
    let probe = interruptible(installer.probe()).await?;
    let mut req = Request::named(&args.names);
    req.present = probe.installed();
    let resolution = resolve(&l.catalog, &req, &Target::from_spec(&l.spec)).map_err(Error::from)?;
    let force: BTreeSet<String> = if args.force {
        args.names.iter().cloned().collect()
    } else {
        BTreeSet::new()
    };
    let plan = installer.plan(&resolution, &probe, &force)?;
    let report =
        interruptible(async { Ok::<_, Error>(installer.install(&plan, &probe).await) }).await;
    bars.finish();
    let report = report?;
    let wanted = wanted(&l.spec, &l.catalog)
        .map(|r| r.order)
        .unwrap_or_default();
    let mut notes = Vec::new();
    let extra: Vec<&str> = report
        .installed()
        .into_iter()
        .filter(|n| !wanted.iter().any(|w| w == n))
        .collect();
    if !extra.is_empty() {
        notes.push(format!(
            "{} {} not in sindri.yaml: add {} to extensions.active so a new environment gets {} too",
            extra.join(", "),
            if extra.len() == 1 { "is" } else { "are" },
            if extra.len() == 1 { "it" } else { "them" },
            if extra.len() == 1 { "it" } else { "them" },
        ));
    }
    let error = report.error();
    l.state.record_event(
        &l.rs.project,
        l.rs.name(),
        "extensions",
        &format!("extension install: {}", args.names.join(", ")),
    )?;
    app.out.emit(&InstallReport {
        environment: l.deployment.name.clone(),
        plan: plan.items,
        results: report.results,
        notes,
    });
    match error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct RemoveReport {
    environment: String,
    removed: Vec<Removal>,
    notes: Vec<String>,
}

impl Report for RemoveReport {
    fn human(&self) -> String {
        let mut s = String::new();
        for r in &self.removed {
            if r.ok {
                s.push_str(&format!("removed {}", r.name));
                if !r.removed_packages.is_empty() {
                    s.push_str(&format!(" (packages: {})", r.removed_packages.join(" ")));
                }
                s.push('\n');
            }
            for w in &r.warnings {
                s.push_str(&format!("warning: {w}\n"));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

async fn remove(app: &App, names: Vec<String>) -> CliResult {
    let l = live(app).await?;
    let bars = Bars::new(&app.out);
    let installer = Installer::new(&*l.provider, &l.deployment, &l.catalog, &l.state, &bars);
    let probe = interruptible(installer.probe()).await?;
    let result = interruptible(installer.remove(&names, &probe)).await;
    bars.finish();
    let removed = result?;
    let wanted = wanted(&l.spec, &l.catalog)
        .map(|r| r.order)
        .unwrap_or_default();
    let mut notes = Vec::new();
    let still: Vec<&str> = removed
        .iter()
        .filter(|r| r.ok && wanted.contains(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !still.is_empty() {
        notes.push(format!(
            "sindri.yaml still asks for {}: the next `sindri deploy` installs {} again",
            still.join(", "),
            if still.len() == 1 { "it" } else { "them" }
        ));
    }
    let failed: Vec<String> = removed
        .iter()
        .filter_map(|r| {
            r.failure
                .as_ref()
                .map(|f| format!("extension `{}` {f}", r.name))
        })
        .collect();
    l.state.record_event(
        &l.rs.project,
        l.rs.name(),
        "extensions",
        &format!("extension remove: {}", names.join(", ")),
    )?;
    app.out.emit(&RemoveReport {
        environment: l.deployment.name.clone(),
        removed,
        notes,
    });
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(sindri_core::ErrorKind::Platform, failed.join("\n"))
            .with_hint("the extension's record is kept; fix the cause and run `sindri extension remove` again")
            .into())
    }
}

#[derive(Serialize)]
struct ValidateReport {
    environment: String,
    validations: Vec<Validation>,
}

impl Report for ValidateReport {
    fn human(&self) -> String {
        let mut s = String::new();
        for v in &self.validations {
            s.push_str(&format!(
                "{} {} {}\n",
                if v.ok { "✓" } else { "✗" },
                v.name,
                v.version
            ));
            for c in v.checks.iter().filter(|c| !c.ok) {
                s.push_str(&format!(
                    "    `{}`: {}\n",
                    c.run,
                    c.problem.as_deref().unwrap_or("failed")
                ));
                for l in c.output.lines() {
                    s.push_str(&format!("      {l}\n"));
                }
            }
        }
        if self.validations.is_empty() {
            s.push_str("no extension is installed\n");
        }
        s
    }
}

async fn validate(app: &App, names: Vec<String>) -> CliResult {
    let l = live(app).await?;
    let bars = Bars::new(&app.out);
    let installer = Installer::new(&*l.provider, &l.deployment, &l.catalog, &l.state, &bars);
    let probe = interruptible(installer.probe()).await?;
    let installed = probe.installed();
    let names = if names.is_empty() {
        installed
            .iter()
            .filter(|n| l.catalog.get(n).is_some())
            .cloned()
            .collect()
    } else {
        for n in &names {
            if !installed.contains(n) {
                let mut e =
                    Error::not_found(format!("`{n}` is not installed in `{}`", l.deployment.name));
                if let Some(s) =
                    sindri_extensions::did_you_mean(n, installed.iter().map(String::as_str))
                {
                    e = e.with_hint(format!("did you mean `{s}`?"));
                } else {
                    e = e.with_hint("`sindri extension status` lists what is installed");
                }
                return Err(e.into());
            }
            if l.catalog.get(n).is_none() {
                return Err(unknown_extension(&l.catalog, n));
            }
        }
        names
    };
    let result = interruptible(installer.validate(&names, &probe)).await;
    bars.finish();
    let validations = result?;
    let failed: Vec<String> = validations
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.name.clone())
        .collect();
    app.out.emit(&ValidateReport {
        environment: l.deployment.name.clone(),
        validations,
    });
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            sindri_core::ErrorKind::Platform,
            format!("validation failed: {}", failed.join(", ")),
        )
        .with_hint("`sindri extension install --force NAME` reinstalls an extension")
        .into())
    }
}

#[derive(Serialize)]
struct StatusRow {
    name: String,
    /// ok, outdated, missing or extra.
    state: &'static str,
    /// Why sindri.yaml wants it, when it does.
    wanted: Option<Reason>,
    /// The catalog's version.
    version: Option<String>,
    /// The version installed in the environment.
    installed: Option<String>,
    /// Unix seconds of the install, from local state.
    installed_at: Option<i64>,
    /// Unix seconds of the last passed validation, from local state.
    validated_at: Option<i64>,
}

#[derive(Serialize)]
struct StatusReport {
    environment: String,
    extensions: Vec<StatusRow>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        if self.extensions.is_empty() {
            return format!(
                "`{}` has no extensions and sindri.yaml asks for none",
                self.environment
            );
        }
        let now = sindri_core::unix_now();
        let ago = |t: Option<i64>| {
            t.map(|t| {
                format!(
                    "{} ago",
                    human_duration(Duration::from_secs((now - t).max(0) as u64))
                )
            })
            .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<Vec<String>> = self
            .extensions
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.state.to_string(),
                    r.installed.clone().unwrap_or_else(|| "-".into()),
                    r.version.clone().unwrap_or_else(|| "-".into()),
                    ago(r.validated_at),
                    r.wanted.as_ref().map(|w| w.to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        table(
            &[
                "NAME",
                "STATE",
                "INSTALLED",
                "CATALOG",
                "VALIDATED",
                "WANTED",
            ],
            &rows,
        )
    }
}

async fn status(app: &App) -> CliResult {
    let l = live(app).await?;
    let bars = Bars::new(&app.out);
    let installer = Installer::new(&*l.provider, &l.deployment, &l.catalog, &l.state, &bars);
    let probe = interruptible(installer.probe()).await?;
    let wanted = wanted(&l.spec, &l.catalog)?;
    let mut names: BTreeSet<String> = wanted.order.iter().cloned().collect();
    names.extend(probe.installed());
    let extensions = names
        .into_iter()
        .map(|n| {
            let version = l.catalog.manifest(&n).map(|m| m.version.clone());
            let installed = probe.installed_version(&n).map(str::to_string);
            let rec = probe.recorded.get(&n);
            let why = wanted.reasons.get(&n).cloned();
            let state = match (&why, &installed) {
                (Some(_), None) => "missing",
                (None, Some(_)) => "extra",
                (_, Some(v)) if Some(v) != version.as_ref() => "outdated",
                _ => "ok",
            };
            StatusRow {
                name: n,
                state,
                wanted: why,
                version,
                installed,
                installed_at: rec.map(|r| r.installed_at),
                validated_at: rec.and_then(|r| r.validated_at),
            }
        })
        .collect();
    app.out.emit(&StatusReport {
        environment: l.deployment.name.clone(),
        extensions,
    });
    Ok(())
}

#[derive(Serialize)]
struct ProfileRow {
    name: String,
    description: String,
    extends: Vec<String>,
    extensions: Vec<String>,
    source: String,
}

#[derive(Serialize)]
struct ProfileListReport {
    profiles: Vec<ProfileRow>,
}

impl Report for ProfileListReport {
    fn human(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .profiles
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.extensions.len().to_string(),
                    p.description.clone(),
                ]
            })
            .collect();
        let mut s = table(&["NAME", "EXTENSIONS", "DESCRIPTION"], &rows);
        s.push_str(
            "use one with `extensions: {profile: NAME}`; `sindri profile show NAME` for details",
        );
        s
    }
}

fn profile_list(app: &App) -> CliResult {
    let (_, c) = catalog(app)?;
    let profiles = c
        .profiles()
        .map(|p| ProfileRow {
            name: p.profile.name.clone(),
            description: p.profile.description.clone(),
            extends: p.profile.extends.clone(),
            extensions: c.profile_extensions(&p.profile.name).unwrap_or_default(),
            source: p.source.to_string(),
        })
        .collect();
    app.out.emit(&ProfileListReport { profiles });
    Ok(())
}

#[derive(Serialize)]
struct ProfileShowReport {
    name: String,
    description: String,
    extends: Vec<String>,
    source: String,
    /// The profile's extensions, with those of the profiles it extends.
    extensions: Vec<String>,
    /// Everything installed, requirements included, in waves that install together.
    waves: Vec<Vec<String>>,
    /// Requirements the spec must meet (e.g. a GPU), as the resolver reported them.
    problems: Vec<String>,
}

impl Report for ProfileShowReport {
    fn human(&self) -> String {
        let mut s = format!(
            "{}: {}\n  source: {}\n",
            self.name, self.description, self.source
        );
        if !self.extends.is_empty() {
            s.push_str(&format!("  extends: {}\n", self.extends.join(", ")));
        }
        s.push_str(&format!("  extensions: {}\n", self.extensions.join(", ")));
        if !self.waves.is_empty() {
            s.push_str("  install order (each line installs together):\n");
            for (i, w) in self.waves.iter().enumerate() {
                s.push_str(&format!("    {}. {}\n", i + 1, w.join(", ")));
            }
        }
        for p in &self.problems {
            s.push_str(&format!("  note: {p}\n"));
        }
        s
    }
}

fn profile_show(app: &App, name: &str) -> CliResult {
    let (spec, c) = catalog(app)?;
    let Some(p) = c.profile(name) else {
        let e = Error::not_found(format!("unknown profile `{name}`"));
        return Err(match c.suggest_profile(name) {
            Some(s) => e.with_hint(format!(
                "did you mean `{s}`? (`sindri profile list` shows every profile)"
            )),
            None => e.with_hint("`sindri profile list` shows every profile"),
        }
        .into());
    };
    let extensions = c.profile_extensions(name)?;
    let req = Request {
        profile: Some(name.to_string()),
        ..Default::default()
    };
    // Without a config file the environment's resources are unknown: nothing to check.
    let target = spec.as_ref().map(Target::from_spec).unwrap_or(Target {
        gpus: Some(1),
        ..Default::default()
    });
    let (waves, problems) = match resolve(&c, &req, &target) {
        Ok(r) => (r.waves, Vec::new()),
        Err(e) => {
            // Show the order anyway when the only problems are the spec's resources.
            let lenient = resolve(
                &c,
                &req,
                &Target {
                    gpus: Some(1),
                    ..Default::default()
                },
            );
            (
                lenient.map(|r| r.waves).unwrap_or_default(),
                e.problems.iter().map(|p| p.to_string()).collect(),
            )
        }
    };
    app.out.emit(&ProfileShowReport {
        name: p.profile.name.clone(),
        description: p.profile.description.clone(),
        extends: p.profile.extends.clone(),
        source: p.source.to_string(),
        extensions,
        waves,
        problems,
    });
    Ok(())
}
