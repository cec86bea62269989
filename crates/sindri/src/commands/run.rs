//! `sindri run` and `sindri runs`: batch and training jobs on any provider, built on
//! `sindri_runs::Orchestrator`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use sindri_core::{Error, ErrorKind, Provider, unix_now};
use sindri_runs::{ArtifactsReport, FinishReport, Orchestrator, RunRequest, SyncReport, run_keys};
use sindri_spec::{OnFinish, ProviderKind};
use sindri_state::{RunFilter, RunRecord, RunState, StateStore};
use tokio::io::AsyncWrite;

use crate::app::App;
use crate::output::{CliError, CliResult, Report, human_duration, table};
use crate::progress::CliProgress;
use crate::signals::{interrupted, interruptible};

/// Run a batch or training job in the environment and follow it to the end.
///
/// Deploys the environment (or reuses it), syncs the workdir into it (`run.workdir`,
/// default: the directory of sindri.yaml; `.gitignore` and `run.exclude` are respected,
/// and a re-run sends only what changed), starts the job under a supervisor in the
/// environment, streams its log, copies `run.artifacts` back to
/// `runs/<id>/artifacts/`, and applies `run.on_finish` (default: `stop` on cloud
/// providers, `keep` on docker and local).
///
/// The command comes after `--` (`sindri run -- python train.py`), or from
/// `run.command` in sindri.yaml. sindri exits with the job's exit code.
///
/// Ctrl-C detaches and never stops the job: re-attach with
/// `sindri runs logs --follow ID`, stop it with `sindri runs cancel ID`.
/// `run.max_duration` is enforced on the machine itself, so the limit holds even when
/// nothing is attached; on aws, runpod and lyceum the machine also applies
/// `on_finish` to itself when the job ends and no sindri follows (`--detach`, Ctrl-C,
/// a closed laptop), so it never keeps billing.
///
/// With `run.max_restarts`, a run whose spot machine is reclaimed is relaunched on a
/// new one and resumed from its last checkpoint (`run.checkpoints`, saved to
/// `run.checkpoint_store` when the notice came), while `sindri run` follows it.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run on this provider instead of `deployment.provider`, e.g. `local`.
    #[arg(short, long, value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,

    /// Run in the environment NAME instead of the spec's `name` (deployed if needed),
    /// e.g. to run experiments side by side.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Start the job and return at once with its id; the job runs on without sindri.
    #[arg(short, long)]
    pub detach: bool,

    /// Copy artifacts here instead of `runs/<id>/artifacts/` next to sindri.yaml.
    #[arg(long, value_name = "DIR")]
    pub artifacts_dir: Option<PathBuf>,

    /// What to do with the environment afterwards; overrides `run.on_finish`.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_finish: Option<OnFinishArg>,

    /// The command and its arguments, after `--`; default: `run.command`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `--on-finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFinishArg {
    /// Leave the environment running.
    Keep,
    /// Stop its compute (disks kept); skipped with a note where the provider cannot stop.
    Stop,
    /// Destroy it (volumes kept).
    Destroy,
}

impl From<OnFinishArg> for OnFinish {
    fn from(a: OnFinishArg) -> OnFinish {
        match a {
            OnFinishArg::Keep => OnFinish::Keep,
            OnFinishArg::Stop => OnFinish::Stop,
            OnFinishArg::Destroy => OnFinish::Destroy,
        }
    }
}

/// Inspect and control runs: list, status, logs, cancel, artifacts.
///
/// A run is named by its id or any unique prefix of it, as git commits are.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, with state, exit code, duration and cost.
    ///
    /// Runs recorded as running are checked in their environment first.
    List(RunsListArgs),

    /// Show one run: its state as its environment reports it, exit code, duration,
    /// cost, and where its log and artifacts are.
    Status(RunIdArgs),

    /// Print a run's log (default: the last run).
    ///
    /// With `--follow`, streams it until the run ends and then exits with the job's exit
    /// code; a detached run's artifacts are copied back and its `on_finish` applied then
    /// (the machine waits for that while it is followed, instead of ending itself).
    /// Ctrl-C stops following, never the job.
    Logs(RunsLogsArgs),

    /// Stop a running job: SIGTERM to its whole process group, SIGKILL after `--grace`.
    Cancel(RunsCancelArgs),

    /// Copy a run's `run.artifacts` back from its environment.
    Artifacts(RunsArtifactsArgs),
}

/// `sindri runs list`.
#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// At most this many runs.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,
    /// Runs of every project, not only this one's.
    #[arg(short, long)]
    pub all: bool,
}

/// A run id argument.
#[derive(Debug, Args)]
pub struct RunIdArgs {
    /// The run id, or a unique prefix of it.
    pub id: String,
}

/// `sindri runs logs`.
#[derive(Debug, Args)]
pub struct RunsLogsArgs {
    /// Keep streaming until the run ends.
    #[arg(short, long)]
    pub follow: bool,
    /// The most recent run (of this project when sindri.yaml is here); the default.
    #[arg(short, long, conflicts_with = "id")]
    pub last: bool,
    /// Only the last N lines (without --follow).
    #[arg(short = 'n', long, value_name = "N", conflicts_with = "follow")]
    pub tail: Option<u64>,
    /// The run id, or a unique prefix of it.
    pub id: Option<String>,
}

/// `sindri runs cancel`.
#[derive(Debug, Args)]
pub struct RunsCancelArgs {
    /// Time between SIGTERM and SIGKILL, e.g. `10s`, `1m` or seconds.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// The run id, or a unique prefix of it.
    pub id: String,
}

/// `sindri runs artifacts`.
#[derive(Debug, Args)]
pub struct RunsArtifactsArgs {
    /// Copy into this directory instead of the one chosen at launch.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The run id, or a unique prefix of it.
    pub id: String,
}

/// A line for people on stderr (stdout carries the job's log), unless `--quiet` or
/// `--output json`.
fn note(app: &App, text: &str) {
    if !app.out.quiet && !app.out.json() {
        eprintln!("{text}");
    }
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    serde_json::from_value::<sindri_spec::DurationValue>(serde_json::Value::String(t.to_string()))
        .map(|d| d.get())
        .map_err(|e| e.to_string())
}

/// An environment name must be a DNS label, as `name` in sindri.yaml.
fn check_env_name(n: &str) -> CliResult {
    let b = n.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("--name `{n}` is not a valid environment name"))
            .with_hint("lowercase letters, digits and `-`, starting with a letter, at most 63 characters")
            .into())
    }
}

/// What `sindri run` did.
#[derive(Serialize)]
struct RunReport {
    id: String,
    environment: String,
    provider: String,
    command: String,
    state: RunState,
    exit_code: Option<i32>,
    detached: bool,
    duration_secs: Option<i64>,
    cost_estimate_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<SyncReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifacts: Option<ArtifactsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_finish: Option<FinishReport>,
    log_path: Option<String>,
    /// Relaunches after the platform reclaimed the machine.
    restarts: u32,
    /// What the machine does to itself when the job ends and nothing follows:
    /// `stop` or `destroy`; absent when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    self_end: Option<String>,
    notes: Vec<String>,
}

impl Report for RunReport {
    fn human(&self) -> String {
        if self.detached {
            let mut s = format!(
                "run {id} started in `{env}` on {provider}\n  follow: sindri runs logs --follow {id}\n  cancel: sindri runs cancel {id}",
                id = self.id,
                env = self.environment,
                provider = self.provider
            );
            match self.self_end.as_deref() {
                Some("destroy") => s.push_str(
                    "\nwhen the job ends the machine destroys itself (on_finish), unless a sindri follows the run",
                ),
                Some(action) => s.push_str(&format!(
                    "\nwhen the job ends the machine {action}s itself (on_finish), unless a sindri follows the run"
                )),
                None => {}
            }
            for n in &self.notes {
                s.push_str(&format!("\nnote: {n}"));
            }
            return s;
        }
        // After a followed run, stdout carries only the job's log; the summary goes
        // to stderr (see `summary`).
        String::new()
    }
}

impl RunReport {
    fn summary(&self) -> String {
        let mut s = format!("run {} {}", self.id, self.state);
        if let Some(c) = self.exit_code {
            s.push_str(&format!(" (exit code {c})"));
        }
        if let Some(d) = self.duration_secs {
            s.push_str(&format!(
                " after {}",
                human_duration(Duration::from_secs(d.max(0) as u64))
            ));
        }
        s.push_str(&format!(" on {} in `{}`", self.provider, self.environment));
        if self.restarts > 0 {
            s.push_str(&format!(
                ", relaunched {} time(s) after interruptions",
                self.restarts
            ));
        }
        if let Some(c) = self.cost_estimate_usd {
            s.push_str(&format!(", about ${c:.2}"));
        }
        if let Some(a) = &self.artifacts
            && !a.copied.is_empty()
        {
            let files: u64 = a.copied.iter().map(|c| c.files).sum();
            s.push_str(&format!(
                "\n  artifacts: {} ({files} file(s))",
                a.dir.display()
            ));
        }
        if let Some(f) = &self.on_finish {
            s.push_str(&format!(
                "\n  environment {} (on_finish: {})",
                f.action, f.policy
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("\nnote: {n}"));
        }
        s
    }
}

fn duration_of(run: &RunRecord) -> i64 {
    run.ended_at.unwrap_or_else(unix_now) - run.started_at
}

fn report_for(run: &RunRecord, detached: bool) -> RunReport {
    let mut notes = Vec::new();
    if let Some(r) = run.details.get(run_keys::REASON)
        && run.state != RunState::Cancelled
    {
        notes.push(r.clone());
    }
    if let Some(e) = run.details.get(run_keys::CHECKPOINT_ERROR) {
        notes.push(format!("checkpoints: {e}"));
    }
    if let Some(e) = run.details.get(run_keys::ERROR) {
        notes.push(e.clone());
    }
    RunReport {
        id: run.id.clone(),
        environment: run.environment.clone(),
        provider: run.provider.to_string(),
        command: run.command.clone(),
        state: run.state,
        exit_code: run.exit_code,
        detached,
        duration_secs: (!detached).then(|| duration_of(run)),
        cost_estimate_usd: run.cost_estimate_usd,
        sync: None,
        artifacts: None,
        on_finish: None,
        log_path: run.log_path.clone(),
        restarts: run.restarts,
        self_end: run.details.get(run_keys::SELF_END).cloned(),
        notes,
    }
}

/// The exit of `sindri run` (and `runs logs --follow`) for a finished run: the job's
/// own code; an error when the job has none (its machine was lost).
fn exit_for(run: &RunRecord) -> CliResult {
    match run.exit_code {
        Some(0) => Ok(()),
        Some(c) => Err(CliError::Exit(c)),
        None => Err(Error::new(
            ErrorKind::Platform,
            format!(
                "run {} ended {} without an exit code: {}",
                run.id,
                run.state,
                run.details
                    .get(run_keys::REASON)
                    .or_else(|| run.details.get(run_keys::ERROR))
                    .map_or("its supervisor is gone", String::as_str)
            ),
        )
        .with_provider(run.provider)
        .into()),
    }
}

/// Where the job's log is streamed: stdout for people; stderr with `--output json`,
/// whose stdout holds only the JSON document.
fn log_stream(app: &App) -> Box<dyn AsyncWrite + Send + Unpin> {
    if app.out.json() {
        Box::new(tokio::io::stderr())
    } else {
        Box::new(tokio::io::stdout())
    }
}

fn detach_note(app: &App, id: &str) {
    note(
        app,
        &format!(
            "\ndetached from run {id}: the job keeps running.\n  re-attach: sindri runs logs --follow {id}\n  stop it:   sindri runs cancel {id}"
        ),
    );
}

/// `sindri run`: deploy-or-reuse, sync, start, follow, collect, on_finish. Exits with
/// the job's exit code.
pub async fn run(app: &App, args: RunArgs) -> CliResult {
    let mut spec = app.load()?;
    if let Some(p) = args.provider {
        spec.deployment.provider = p;
    }
    if let Some(n) = &args.name {
        check_env_name(n)?;
        spec.name = n.clone();
    }
    let provider = app.provider(&spec)?;
    let rs = app.resolve(spec).await?;
    let mut req = RunRequest::new(&rs, provider.kind(), args.command)?;
    req.artifacts_dir = args.artifacts_dir;
    req.detach = args.detach;
    if let Some(p) = args.on_finish {
        req.on_finish = p.into();
    }
    let state = app.state()?;
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, &state, &progress);
    let run = orch.prepare(&rs, &req)?;
    let run_id = run.id.clone();
    note(
        app,
        &format!(
            "run {run_id}: `{}` in `{}` on {}",
            req.command,
            rs.name(),
            provider.kind()
        ),
    );

    let launched = match interruptible(orch.launch(&rs, &req, run)).await {
        Ok(l) => l,
        Err(e) => {
            progress.finish();
            if e.kind() == ErrorKind::Interrupted {
                orch.abandon(&run_id, "the launch was interrupted")?;
                if let Some(r) = state.get_run(&run_id)?
                    && r.state == RunState::Running
                {
                    detach_note(app, &run_id);
                    return Err(CliError::Exit(130));
                }
            }
            return Err(e.into());
        }
    };
    progress.finish();

    if args.detach {
        let mut report = report_for(&launched.run, true);
        report.sync = launched.sync;
        if req.on_finish != OnFinish::Keep && report.self_end.is_none() {
            report.notes.push(format!(
                "this {} machine does not end itself: on_finish ({}) is applied only by a sindri that follows the run (`sindri runs logs --follow {}`)",
                provider.kind(),
                sindri_runs::on_finish_name(req.on_finish),
                launched.run.id
            ));
        }
        if req.run.max_restarts > 0 {
            report.notes.push(
                "a detached run is not relaunched after an interruption: that needs the `sindri run` that follows it".into(),
            );
        }
        app.out.emit(&report);
        return Ok(());
    }

    let mut launched = launched;
    let followed = loop {
        let mut out = log_stream(app);
        let followed = tokio::select! {
            r = orch.follow(&launched.run, &mut *out) => match r {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e.into()),
                // The platform may have reclaimed the machine under the log stream.
                Err(e) => match orch.refresh(&launched.run).await {
                    Ok(view) if Orchestrator::should_relaunch(&view.run, &req) => {
                        sindri_runs::Followed { run: view.run, log_bytes: 0 }
                    }
                    _ => return Err(e.into()),
                },
            },
            _ = interrupted() => {
                detach_note(app, &run_id);
                if app.out.json() {
                    let mut report = report_for(&launched.run, true);
                    report.sync = launched.sync;
                    app.out.emit(&report);
                }
                return Err(CliError::Exit(130));
            }
        };
        if !Orchestrator::should_relaunch(&followed.run, &req) {
            break followed;
        }
        // The platform reclaimed the machine: a new one, the last checkpoint, again.
        launched = match interruptible(orch.relaunch(&rs, &req, followed.run)).await {
            Ok(l) => l,
            Err(e) => {
                progress.finish();
                return Err(e.into());
            }
        };
        progress.finish();
    };
    let mut report = report_for(&followed.run, false);
    report.sync = launched.sync;
    complete(&orch, &followed.run, req.on_finish, &mut report).await;
    if app.out.json() {
        app.out.emit(&report);
    } else {
        note(app, &report.summary());
    }
    exit_for(&followed.run)
}

/// After a followed run ends: artifacts back, then `on_finish`. Failures here are
/// notes: the job's own outcome is what the command reports.
async fn complete(
    orch: &Orchestrator<'_>,
    run: &RunRecord,
    policy: OnFinish,
    report: &mut RunReport,
) {
    let has_artifacts = run
        .details
        .get(run_keys::ARTIFACTS)
        .is_some_and(|a| a != "[]");
    if has_artifacts && run.details.contains_key(run_keys::RUN_DIR) {
        match orch.collect_artifacts(run, None).await {
            Ok(a) => {
                for m in &a.missing {
                    report
                        .notes
                        .push(format!("artifact `{m}` was not found in the workdir"));
                }
                report.artifacts = Some(a);
            }
            Err(e) => report.notes.push(format!("copying artifacts failed: {e}")),
        }
    }
    match orch.finish(run, policy).await {
        Ok(f) => {
            if let Some(n) = &f.note {
                report.notes.push(n.clone());
            }
            report.on_finish = Some(f);
        }
        Err(e) => {
            report.notes.push(format!(
                "on_finish: {} failed: {e}; the environment may still be running (`sindri status`)",
                sindri_runs::on_finish_name(policy)
            ));
        }
    }
}

/// `sindri runs ...`.
pub async fn runs(app: &App, cmd: RunsCommand) -> CliResult {
    match cmd {
        RunsCommand::List(a) => list(app, a).await,
        RunsCommand::Status(a) => status(app, a).await,
        RunsCommand::Logs(a) => logs(app, a).await,
        RunsCommand::Cancel(a) => cancel(app, a).await,
        RunsCommand::Artifacts(a) => artifacts(app, a).await,
    }
}

/// The provider a recorded run ran on, with this project's provider settings when
/// sindri.yaml is here.
fn provider_for(app: &App, kind: ProviderKind) -> CliResult<Arc<dyn Provider>> {
    let providers = if app.global.config.exists() {
        app.load().map(|s| s.providers).unwrap_or_default()
    } else {
        Default::default()
    };
    Ok(app.registry.create(kind, &providers)?)
}

/// This project's id, when sindri.yaml is here.
fn this_project(app: &App) -> Option<String> {
    if !app.global.config.exists() {
        return None;
    }
    app.load().ok().map(|spec| app.identify(spec).project)
}

fn find_run(state: &StateStore, id: &str) -> CliResult<RunRecord> {
    state.get_run_by_prefix(id)?.ok_or_else(|| {
        Error::not_found(format!("no run matches `{id}`"))
            .with_hint("`sindri runs list` shows recent runs")
            .into()
    })
}

fn last_run(app: &App, state: &StateStore) -> CliResult<RunRecord> {
    let found = match this_project(app) {
        Some(p) => state.last_run(&p)?,
        None => state
            .list_runs(&RunFilter::default(), 1)?
            .into_iter()
            .next(),
    };
    found.ok_or_else(|| {
        Error::not_found("no runs recorded yet")
            .with_hint("start one with `sindri run -- CMD`")
            .into()
    })
}

#[derive(Serialize)]
struct ListReport {
    runs: Vec<ListedRun>,
}

#[derive(Serialize)]
struct ListedRun {
    #[serde(flatten)]
    run: RunRecord,
    duration_secs: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn cost_text(c: Option<f64>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("${c:.2}"))
}

impl Report for ListReport {
    fn human(&self) -> String {
        if self.runs.is_empty() {
            return "no runs yet: start one with `sindri run -- CMD`".into();
        }
        let now = unix_now();
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|l| {
                let r = &l.run;
                let mut command: String = r.command.chars().take(40).collect();
                if r.command.chars().count() > 40 {
                    command.push('…');
                }
                vec![
                    r.id.chars().take(12).collect(),
                    r.state.to_string(),
                    r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                    r.environment.clone(),
                    r.provider.to_string(),
                    ago(now - r.started_at),
                    human_duration(Duration::from_secs(l.duration_secs.max(0) as u64)),
                    cost_text(r.cost_estimate_usd),
                    command,
                ]
            })
            .collect();
        table(
            &[
                "ID",
                "STATE",
                "EXIT",
                "ENVIRONMENT",
                "PROVIDER",
                "STARTED",
                "DURATION",
                "COST",
                "COMMAND",
            ],
            &rows,
        )
    }
}

async fn list(app: &App, args: RunsListArgs) -> CliResult {
    let state = app.state()?;
    let project = if args.all { None } else { this_project(app) };
    let filter = RunFilter {
        project: project.as_deref(),
        environment: None,
    };
    let mut listed = Vec::new();
    for run in state.list_runs(&filter, args.limit)? {
        let (run, note) = if run.state == RunState::Running {
            refreshed(app, &state, run).await
        } else {
            (run, None)
        };
        listed.push(ListedRun {
            duration_secs: duration_of(&run),
            run,
            note,
        });
    }
    app.out.emit(&ListReport { runs: listed });
    Ok(())
}

/// The run as its environment reports it now; on failure the recorded run, with why.
async fn refreshed(app: &App, state: &StateStore, run: RunRecord) -> (RunRecord, Option<String>) {
    let provider = match provider_for(app, run.provider) {
        Ok(p) => p,
        Err(_) => {
            return (
                run,
                Some("its provider is not built into this sindri".into()),
            );
        }
    };
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, state, &progress);
    match orch.refresh(&run).await {
        Ok(view) => (view.run, view.note),
        Err(e) => (run, Some(format!("could not check its environment: {e}"))),
    }
}

#[derive(Serialize)]
struct StatusReport {
    #[serde(flatten)]
    run: RunRecord,
    duration_secs: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_age_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        let r = &self.run;
        let mut rows: Vec<(&str, String)> = vec![
            ("run", r.id.clone()),
            ("state", r.state.to_string()),
            (
                "exit code",
                r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            ),
            ("command", r.command.clone()),
            ("environment", format!("{} ({})", r.environment, r.provider)),
            ("started", ago(unix_now() - r.started_at)),
            (
                "duration",
                human_duration(Duration::from_secs(self.duration_secs.max(0) as u64)),
            ),
            ("cost", cost_text(r.cost_estimate_usd)),
        ];
        if r.restarts > 0 || r.details.contains_key(run_keys::MAX_RESTARTS) {
            let max = r
                .details
                .get(run_keys::MAX_RESTARTS)
                .map_or(String::new(), |m| format!(" of at most {m}"));
            rows.push(("restarts", format!("{}{max}", r.restarts)));
        }
        if let Some(h) = self.heartbeat_age_secs {
            rows.push(("heartbeat", ago(h)));
        }
        for (label, key) in [
            ("reason", run_keys::REASON),
            ("error", run_keys::ERROR),
            ("checkpoints", run_keys::CHECKPOINT_ERROR),
            ("checkpoint store", run_keys::CHECKPOINT_STORE),
            ("interruption", run_keys::INTERRUPTION),
            ("last interruption", run_keys::LAST_INTERRUPTION),
            ("machine ends itself", run_keys::SELF_END),
            ("machine ended itself", run_keys::SELF_ENDED),
            ("machine kept", run_keys::SELF_END_SKIPPED),
            ("artifacts", run_keys::ARTIFACTS_DIR),
            ("remote run dir", run_keys::RUN_DIR),
        ] {
            if let Some(v) = r.details.get(key) {
                rows.push((label, v.clone()));
            }
        }
        if let Some(l) = &r.log_path {
            rows.push(("local log", l.clone()));
        }
        let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut s: String = rows
            .iter()
            .map(|(l, v)| format!("{l:width$}  {v}\n"))
            .collect();
        if let Some(n) = &self.note {
            s.push_str(&format!("note: {n}\n"));
        }
        if r.state == RunState::Running {
            s.push_str(&format!(
                "follow: sindri runs logs --follow {id}   cancel: sindri runs cancel {id}\n",
                id = r.id
            ));
        }
        s
    }
}

async fn status(app: &App, args: RunIdArgs) -> CliResult {
    let state = app.state()?;
    let run = find_run(&state, &args.id)?;
    let provider = provider_for(app, run.provider)?;
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, &state, &progress);
    let (run, remote, note) = match interruptible(orch.refresh(&run)).await {
        Ok(v) => (v.run, v.remote, v.note),
        Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e.into()),
        Err(e) => (
            run,
            None,
            Some(format!("could not check its environment: {e}")),
        ),
    };
    let heartbeat_age_secs = remote
        .as_ref()
        .filter(|_| run.state == RunState::Running)
        .and_then(|r| Some(r.now? - r.heartbeat?));
    app.out.emit(&StatusReport {
        duration_secs: duration_of(&run),
        run,
        heartbeat_age_secs,
        note,
    });
    Ok(())
}

#[derive(Serialize)]
struct LogsReport {
    id: String,
    lines: Vec<String>,
}

impl Report for LogsReport {
    fn human(&self) -> String {
        self.lines.join("\n")
    }
}

async fn logs(app: &App, args: RunsLogsArgs) -> CliResult {
    let state = app.state()?;
    let run = match &args.id {
        Some(id) => find_run(&state, id)?,
        None => last_run(app, &state)?,
    };
    let provider = provider_for(app, run.provider)?;
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, &state, &progress);

    if !args.follow {
        if app.out.json() {
            let mut buf: Vec<u8> = Vec::new();
            interruptible(orch.logs(&run, args.tail, &mut buf)).await?;
            let text = String::from_utf8_lossy(&buf);
            app.out.emit(&LogsReport {
                id: run.id.clone(),
                lines: text.lines().map(str::to_string).collect(),
            });
        } else {
            let mut out = tokio::io::stdout();
            interruptible(orch.logs(&run, args.tail, &mut out)).await?;
        }
        return Ok(());
    }

    if run.state.is_finished() && run.exit_code.is_some() {
        // Nothing more will come: print it all and exit like the job did.
        let mut out = log_stream(app);
        interruptible(orch.logs(&run, None, &mut *out)).await?;
        return exit_for(&run);
    }
    let mut out = log_stream(app);
    let followed = tokio::select! {
        r = orch.follow(&run, &mut *out) => r?,
        _ = interrupted() => {
            note(app, &format!("\nstopped following run {}: the job keeps running", run.id));
            return Ok(());
        }
    };
    let mut report = report_for(&followed.run, false);
    // The run was detached: nobody collected its artifacts or applied on_finish yet.
    if followed
        .run
        .details
        .get(run_keys::FINALIZED)
        .map(String::as_str)
        != Some("true")
    {
        let policy = Orchestrator::recorded_on_finish(&followed.run);
        complete(&orch, &followed.run, policy, &mut report).await;
    }
    if app.out.json() {
        app.out.emit(&report);
    } else {
        note(app, &report.summary());
    }
    exit_for(&followed.run)
}

#[derive(Serialize)]
struct CancelOutput {
    #[serde(flatten)]
    run: RunRecord,
    outcome: String,
}

impl Report for CancelOutput {
    fn human(&self) -> String {
        match self.outcome.as_str() {
            "finished" => format!("run {} had already ended ({})", self.run.id, self.run.state),
            "terminated" => format!(
                "run {} cancelled: its processes ended on SIGTERM",
                self.run.id
            ),
            "killed" => format!(
                "run {} cancelled: its processes ignored SIGTERM and were killed",
                self.run.id
            ),
            "not-started" => format!("run {} cancelled before its job started", self.run.id),
            other => format!("run {}: {other}", self.run.id),
        }
    }
}

async fn cancel(app: &App, args: RunsCancelArgs) -> CliResult {
    let state = app.state()?;
    let run = find_run(&state, &args.id)?;
    let provider = provider_for(app, run.provider)?;
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, &state, &progress);
    let report = interruptible(orch.cancel(&run, args.grace)).await?;
    app.out.emit(&CancelOutput {
        run: report.run,
        outcome: report.outcome,
    });
    Ok(())
}

#[derive(Serialize)]
struct ArtifactsOutput {
    id: String,
    #[serde(flatten)]
    report: ArtifactsReport,
}

impl Report for ArtifactsOutput {
    fn human(&self) -> String {
        if self.report.copied.is_empty() && self.report.missing.is_empty() {
            return format!("run {} has no `run.artifacts`", self.id);
        }
        let mut s = format!(
            "artifacts of run {} in {}:\n",
            self.id,
            self.report.dir.display()
        );
        for c in &self.report.copied {
            s.push_str(&format!(
                "  {}  ({} file(s), {} bytes)\n",
                c.path, c.files, c.bytes
            ));
        }
        for m in &self.report.missing {
            s.push_str(&format!("  {m}  (not found)\n"));
        }
        s
    }
}

async fn artifacts(app: &App, args: RunsArtifactsArgs) -> CliResult {
    let state = app.state()?;
    let run = find_run(&state, &args.id)?;
    let provider = provider_for(app, run.provider)?;
    let progress = CliProgress::new(&app.out);
    let orch = Orchestrator::new(&*provider, &state, &progress);
    let report = interruptible(orch.collect_artifacts(&run, args.dir.as_deref())).await?;
    app.out.emit(&ArtifactsOutput {
        id: run.id.clone(),
        report,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_spec() {
        assert_eq!(parse_duration("10").expect("secs"), Duration::from_secs(10));
        assert_eq!(parse_duration("1m").expect("1m"), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn environment_names_are_dns_labels() {
        assert!(check_env_name("exp-1").is_ok());
        for bad in ["", "Exp", "1exp", "exp-", "a_b"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }
}
