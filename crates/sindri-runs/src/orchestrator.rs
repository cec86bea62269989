//! The run orchestrator: deploy-or-reuse, sync, supervise, follow, collect, clean up,
//! built only from `sindri_core::dispatch` verbs, so every provider that implements
//! them runs jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sindri_core::progress::phase;
use sindri_core::{
    DeployOptions, Deployment, DeploymentState, DestroyOptions, DestroyReport, Error, ErrorKind,
    Operation, Progress, Provider, ResolvedSpec, Result, StatusState, dispatch, unix_now,
};
use sindri_spec::{OnFinish, ProviderKind};
use sindri_state::{RunFilter, RunRecord, RunState, StateStore};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::remote::{self, RemoteStatus};
use crate::request::{
    RunRequest, check_relative, default_on_finish, deployment_keys, environment_hash,
    on_finish_name, parse_on_finish, run_keys,
};
use crate::shell::{ChannelWriter, capture, run_ok, script_command};
use crate::supervisor::{self, SupervisorConfig};
use crate::sync::{SyncReport, SyncTarget, cache_file, sync_workdir};

/// What [`Orchestrator::launch`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Launched {
    /// The run, now `running`.
    pub run: RunRecord,
    /// The environment it runs in.
    pub deployment: Deployment,
    /// What the workdir sync sent; `None` when the environment runs in place.
    pub sync: Option<SyncReport>,
    /// True when the environment was deployed (or redeployed) for this run.
    pub deployed: bool,
}

/// How following a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Followed {
    /// The run, settled from its files.
    pub run: RunRecord,
    /// Log bytes received.
    pub log_bytes: u64,
}

/// A run with what its directory says right now.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The run, updated.
    pub run: RunRecord,
    /// What the supervisor's files said; `None` when they could not be read.
    pub remote: Option<RemoteStatus>,
    /// Why the remote state could not be read, or what is odd about it.
    pub note: Option<String>,
}

/// One artifact copied back.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedArtifact {
    /// Its path relative to the workdir.
    pub path: String,
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// What [`Orchestrator::collect_artifacts`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactsReport {
    /// The local directory they were copied into.
    pub dir: PathBuf,
    /// What was copied.
    pub copied: Vec<CopiedArtifact>,
    /// Patterns that matched nothing in the workdir.
    pub missing: Vec<String>,
}

/// What [`Orchestrator::finish`] did with the environment.
#[derive(Debug, Clone, Serialize)]
pub struct FinishReport {
    /// The policy applied.
    pub policy: &'static str,
    /// `kept`, `stopped`, `destroyed` or `skipped`.
    pub action: &'static str,
    /// Why it was skipped, or what to know.
    pub note: Option<String>,
}

/// What [`Orchestrator::cancel`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CancelReport {
    /// The run afterwards.
    pub run: RunRecord,
    /// `terminated` (gone after SIGTERM), `killed` (needed SIGKILL), `finished`
    /// (had already ended), `not-started` or `missing`.
    pub outcome: String,
}

/// Runs jobs through one provider, recording them in the state store.
pub struct Orchestrator<'a> {
    provider: &'a dyn Provider,
    state: &'a StateStore,
    progress: &'a dyn Progress,
}

impl<'a> Orchestrator<'a> {
    /// An orchestrator for runs on `provider`.
    pub fn new(
        provider: &'a dyn Provider,
        state: &'a StateStore,
        progress: &'a dyn Progress,
    ) -> Orchestrator<'a> {
        Orchestrator {
            provider,
            state,
            progress,
        }
    }

    fn kind(&self) -> ProviderKind {
        self.provider.kind()
    }

    /// Where the local copy of a run's log goes: `<state dir>/runs/<id>/log`.
    pub fn local_log_path(&self, run_id: &str) -> PathBuf {
        self.state
            .path()
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("runs")
            .join(run_id)
            .join("log")
    }

    /// Records a new `pending` run for `req` in environment `rs`, before anything is
    /// deployed, so an interrupted launch is still listed. The operations the run
    /// needs are checked first: nothing is recorded for a provider that cannot run
    /// jobs.
    pub fn prepare(&self, rs: &ResolvedSpec, req: &RunRequest) -> Result<RunRecord> {
        for op in [Operation::Exec, Operation::CopyIn, Operation::CopyOut] {
            dispatch::require(self.provider, op).map_err(|e| {
                let hint = format!(
                    "`sindri run` needs exec and copy; {}",
                    e.hint()
                        .unwrap_or("choose another provider with --provider")
                );
                e.with_hint(hint)
            })?;
        }
        let mut run = RunRecord::new(&rs.project, rs.name(), self.kind(), &req.command);
        let artifacts_dir = req
            .artifacts_dir
            .clone()
            .unwrap_or_else(|| rs.base_dir.join("runs").join(&run.id).join("artifacts"));
        let artifacts_dir = absolute(&artifacts_dir);
        let details = &mut run.details;
        details.insert(
            run_keys::ARTIFACTS.into(),
            serde_json::to_string(&req.run.artifacts).unwrap_or_else(|_| "[]".into()),
        );
        details.insert(
            run_keys::ARTIFACTS_DIR.into(),
            artifacts_dir.display().to_string(),
        );
        details.insert(
            run_keys::ON_FINISH.into(),
            on_finish_name(req.on_finish).into(),
        );
        if let Some(m) = req.run.max_duration {
            details.insert(run_keys::MAX_DURATION.into(), m.get().as_secs().to_string());
        }
        if let Some(s) = &req.run.checkpoint_store {
            details.insert(run_keys::CHECKPOINT_STORE.into(), s.clone());
        }
        if req.run.max_restarts > 0 {
            details.insert(
                run_keys::MAX_RESTARTS.into(),
                req.run.max_restarts.to_string(),
            );
        }
        run.log_path = Some(self.local_log_path(&run.id).display().to_string());
        self.state.insert_run(&run)?;
        Ok(run)
    }

    /// Deploys the environment, or reuses it when it is deployed from the same spec
    /// and running (starting it when it is stopped and the provider can start it).
    /// Records the deployment as `sindri deploy` does. Returns it and whether a deploy
    /// happened.
    pub async fn ensure_environment(&self, rs: &ResolvedSpec) -> Result<(Deployment, bool)> {
        let p = self.provider;
        let hash = rs.spec_hash();
        let env_hash = environment_hash(rs);
        let recorded = self.state.get_deployment(&rs.project, rs.name())?;
        if let Some(d) = &recorded {
            if d.provider != p.kind() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "environment `{}` is deployed on {}, not {}",
                        d.name,
                        d.provider,
                        p.kind()
                    ),
                )
                .with_hint(format!(
                    "run on {} (drop --provider), give this run its own environment with `--name NAME`, or `sindri destroy` the {} one first",
                    d.provider, d.provider
                )));
            }
            // Editing only the `run` section changes the spec hash but not the
            // environment: reuse it rather than redeploy.
            let same =
                d.spec_hash == hash || d.detail(deployment_keys::ENV_HASH) == Some(&env_hash);
            let reusable = same
                && matches!(
                    d.state,
                    DeploymentState::Ready | DeploymentState::Stopped | DeploymentState::Suspended
                );
            if reusable {
                let live = dispatch::status(p, d).await?;
                match live.state {
                    StatusState::Running => {
                        let mut kept = d.clone();
                        if kept.detail(deployment_keys::ENV_HASH) != Some(&env_hash) {
                            kept.details
                                .insert(deployment_keys::ENV_HASH.into(), env_hash.clone());
                            self.state.upsert_deployment(&kept)?;
                        }
                        return Ok((kept, false));
                    }
                    StatusState::Stopped | StatusState::Suspended
                        if p.capabilities().supports(Operation::Start) =>
                    {
                        phase(self.progress, "start environment", dispatch::start(p, d)).await?;
                        let mut started = d.clone();
                        started
                            .details
                            .insert(deployment_keys::ENV_HASH.into(), env_hash.clone());
                        started.state = DeploymentState::Ready;
                        started.updated_at = unix_now();
                        self.state.upsert_deployment(&started)?;
                        self.state.record_event(
                            &d.project,
                            &d.name,
                            "start",
                            "started for a run",
                        )?;
                        return Ok((started, false));
                    }
                    _ => {}
                }
            }
        }

        dispatch::check_spec(p, rs)?;
        let mut record = recorded
            .unwrap_or_else(|| Deployment::creating(rs.name(), p.kind(), &rs.project, &hash));
        record.provider = p.kind();
        record.spec_hash = hash;
        record.state = DeploymentState::Creating;
        record.updated_at = unix_now();
        self.state.upsert_deployment(&record)?;
        self.state
            .record_event(&rs.project, rs.name(), "deploy", "deploy started for a run")?;
        let result = dispatch::deploy(p, rs, DeployOptions { wait: true }, self.progress).await;
        let mut deployed = match result {
            Ok(d) => d,
            Err(e) => {
                if e.kind() != ErrorKind::Interrupted {
                    record.state = DeploymentState::Failed;
                    record.updated_at = unix_now();
                    self.state.upsert_deployment(&record)?;
                }
                self.state.record_event(
                    &rs.project,
                    rs.name(),
                    "deploy",
                    &format!("deploy for a run failed: {e}"),
                )?;
                return Err(e);
            }
        };
        deployed.state = DeploymentState::Ready;
        deployed
            .details
            .insert(deployment_keys::ENV_HASH.into(), env_hash);
        deployed.created_at = record.created_at;
        deployed.updated_at = unix_now();
        self.state.upsert_deployment(&deployed)?;
        self.state
            .record_event(&rs.project, rs.name(), "deploy", "deploy finished")?;
        Ok((deployed, true))
    }

    /// The recorded deployment a run ran in; rediscovered from the provider's labels
    /// when the local record is gone.
    async fn deployment_of(&self, run: &RunRecord) -> Result<Option<Deployment>> {
        if let Some(d) = self.state.get_deployment(&run.project, &run.environment)?
            && d.provider == run.provider
        {
            return Ok(Some(d));
        }
        let owned = dispatch::list_owned(self.provider).await?;
        Ok(owned
            .into_iter()
            .find(|d| d.name == run.environment && d.project == run.project))
    }

    async fn require_deployment(&self, run: &RunRecord) -> Result<Deployment> {
        self.deployment_of(run).await?.ok_or_else(|| {
            Error::not_found(format!(
                "environment `{}` of run {} is no longer deployed on {}",
                run.environment, run.id, run.provider
            ))
            .with_hint(
                "its remote files went with it; `sindri runs status` shows what was recorded",
            )
        })
    }

    /// The environment's home, for the default workdir and run root; takes the machine
    /// for run `run_id`, so the supervisor of a finished run leaves its end to it.
    async fn prepare_machine(
        &self,
        d: &Deployment,
        run_root: Option<&str>,
        run_id: &str,
    ) -> Result<String> {
        let out = run_ok(
            self.provider,
            d,
            "reading $HOME",
            &script_command(
                remote::PREPARE,
                [run_root.unwrap_or("").to_string(), run_id.to_string()],
            ),
        )
        .await?;
        let home = out.stdout_text().trim().trim_end_matches('/').to_string();
        let needs_home = d.detail(deployment_keys::WORKDIR).is_none() || run_root.is_none();
        if needs_home && !home.starts_with('/') {
            return Err(Error::platform(
                self.kind(),
                format!(
                    "environment `{}` has no usable $HOME (found `{home}`); cannot place the run",
                    d.name
                ),
            )
            .with_hint(
                "set HOME in the image, or have the provider record `run_workdir` and `run_root`",
            ));
        }
        Ok(home)
    }

    /// Marks a run that could not start as failed (or interrupted), with why.
    fn fail_run(&self, run: &mut RunRecord, state: RunState, why: &str) -> Result<()> {
        run.state = state;
        run.ended_at = Some(unix_now());
        run.details.insert(run_keys::ERROR.into(), why.to_string());
        self.state.update_run(run)
    }

    /// Marks a run still `pending` (its launch was abandoned, e.g. by Ctrl-C) as
    /// interrupted. A run that got further is left as it is.
    pub fn abandon(&self, run_id: &str, why: &str) -> Result<()> {
        if let Some(mut run) = self.state.get_run(run_id)?
            && run.state == RunState::Pending
        {
            self.fail_run(&mut run, RunState::Interrupted, why)?;
        }
        Ok(())
    }

    /// Everything up to the job running: deploy-or-reuse, sync the workdir, start the
    /// supervisor. The run must come from [`Orchestrator::prepare`]; it is updated in
    /// the state store at each step and marked failed if a step fails.
    pub async fn launch(
        &self,
        rs: &ResolvedSpec,
        req: &RunRequest,
        run: RunRecord,
    ) -> Result<Launched> {
        let mut run = run;
        let result = self.launch_steps(rs, req, &mut run, false).await;
        self.failed_launch(&mut run, result, "")
    }

    /// Passes `result` on; when it is an error, marks `run` failed (interrupted on
    /// Ctrl-C) with the error after `context`.
    fn failed_launch(
        &self,
        run: &mut RunRecord,
        result: Result<Launched>,
        context: &str,
    ) -> Result<Launched> {
        if let Err(e) = &result {
            let state = if e.kind() == ErrorKind::Interrupted {
                RunState::Interrupted
            } else {
                RunState::Failed
            };
            self.fail_run(run, state, &format!("{context}{e}"))?;
        }
        result
    }

    /// True when `run` ended because the platform reclaimed its machine and
    /// `run.max_restarts` of `req` allows another try: the supervisor saw the notice,
    /// or the machine of a run that watched for notices vanished before its exit code
    /// could be read.
    pub fn should_relaunch(run: &RunRecord, req: &RunRequest) -> bool {
        let reclaimed = run.details.contains_key(run_keys::INTERRUPTION)
            || (run.exit_code.is_none()
                && run.details.get(run_keys::INTERRUPTIBLE).map(String::as_str) == Some("true"));
        run.state == RunState::Interrupted && reclaimed && run.restarts < req.run.max_restarts
    }

    /// Relaunches a run whose machine the platform reclaimed: the old environment is
    /// destroyed (it is going away; its volumes are kept), a new one deployed, the
    /// workdir synced, the last checkpoint from `run.checkpoint_store` restored into
    /// `run.checkpoints`, and the job started again under the same run id, with
    /// `restarts` one higher. See [`Orchestrator::should_relaunch`].
    pub async fn relaunch(
        &self,
        rs: &ResolvedSpec,
        req: &RunRequest,
        run: RunRecord,
    ) -> Result<Launched> {
        let mut run = run;
        let attempt = run.restarts + 1;
        let notice = run
            .details
            .get(run_keys::INTERRUPTION)
            .cloned()
            .unwrap_or_default();
        self.progress.warn(&format!(
            "run {} was interrupted ({notice}): relaunching it on a new machine from its last checkpoint (restart {attempt} of {})",
            run.id, req.run.max_restarts
        ));
        let result = async {
            if let Some(d) = self.deployment_of(&run).await? {
                self.destroy_recorded(
                    &d,
                    "replace the reclaimed machine",
                    &format!("replaced: the platform reclaimed it during run {}", run.id),
                )
                .await?;
            }
            run.restarts = attempt;
            run.state = RunState::Pending;
            run.exit_code = None;
            run.ended_at = None;
            for k in [
                run_keys::REASON,
                run_keys::ERROR,
                run_keys::INTERRUPTION,
                run_keys::SELF_ENDED,
                run_keys::SELF_END_SKIPPED,
                run_keys::JOB_STARTED_AT,
            ] {
                run.details.remove(k);
            }
            run.details
                .insert(run_keys::LAST_INTERRUPTION.into(), notice.clone());
            self.state.update_run(&run)?;
            self.state.record_event(
                &run.project,
                &run.environment,
                "run",
                &format!(
                    "run {} relaunched after an interruption (restart {attempt})",
                    run.id
                ),
            )?;
            self.launch_steps(rs, req, &mut run, true).await
        }
        .await;
        self.failed_launch(&mut run, result, "relaunch failed: ")
    }

    /// Deploy-or-reuse, sync, (on a relaunch, `restore` the last checkpoint), start.
    async fn launch_steps(
        &self,
        rs: &ResolvedSpec,
        req: &RunRequest,
        run: &mut RunRecord,
        restore: bool,
    ) -> Result<Launched> {
        self.refuse_concurrent(run).await?;
        let (d, deployed) = phase(
            self.progress,
            "prepare environment",
            self.ensure_environment(rs),
        )
        .await?;

        let home = self
            .prepare_machine(&d, d.detail(deployment_keys::RUN_ROOT), &run.id)
            .await?;
        let workdir = d
            .detail(deployment_keys::WORKDIR)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{home}/work"));
        let run_root = d
            .detail(deployment_keys::RUN_ROOT)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{home}/.sindri/runs"));
        let run_dir = format!("{}/{}", run_root.trim_end_matches('/'), run.id);
        run.details
            .insert(run_keys::WORKDIR.into(), workdir.clone());
        run.details
            .insert(run_keys::RUN_DIR.into(), run_dir.clone());
        self.state.update_run(run)?;

        let sync = if d.detail(deployment_keys::IN_PLACE) == Some("true") {
            self.progress
                .message("the environment runs in the project directory itself: nothing to sync");
            None
        } else {
            let excludes = self.excludes(req, run)?;
            let report = phase(
                self.progress,
                "sync workdir",
                sync_workdir(
                    self.provider,
                    &d,
                    &req.local_workdir,
                    &excludes,
                    &SyncTarget {
                        workdir: &workdir,
                        archive: &format!("{run_dir}/sync.tar"),
                        cache: self
                            .state
                            .path()
                            .parent()
                            .map(|dir| cache_file(dir, &d, &workdir)),
                    },
                ),
            )
            .await?;
            self.progress.message(&report.summary());
            Some(report)
        };

        let checkpoint_dir = req
            .run
            .checkpoints
            .as_ref()
            .map(|c| format!("{workdir}/{}", c.trim_end_matches('/')));
        if restore && let (Some(store), Some(dir)) = (&req.run.checkpoint_store, &checkpoint_dir) {
            let out = phase(
                self.progress,
                "restore checkpoint",
                run_ok(
                    self.provider,
                    &d,
                    "restoring the last checkpoint",
                    &script_command(
                        remote::RESTORE,
                        [store.clone(), run.id.clone(), dir.clone()],
                    ),
                ),
            )
            .await?;
            let files = out.stdout_text().trim().to_string();
            self.progress.message(&if files == "0" {
                format!("no checkpoint in {store} yet: the job starts over")
            } else {
                format!("restored {files} checkpoint file(s) from {store} into {dir}")
            });
        }

        if let Ok(status) = dispatch::status(self.provider, &d).await
            && let Some(rate) = status.cost_per_hour
        {
            run.details
                .insert(run_keys::COST_PER_HOUR.into(), rate.to_string());
        }

        // The machine applies on_finish to itself when the job ends, unless a sindri
        // that follows does it first: a closed laptop cannot leave it billing.
        let self_end = match dispatch::self_end(self.provider, &d, req.on_finish).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.progress.warn(&format!(
                    "the machine cannot apply on_finish ({}) to itself: {e}; it is applied only while sindri follows the run",
                    on_finish_name(req.on_finish)
                ));
                None
            }
        };
        if d.detail(deployment_keys::INTERRUPTION_CHECK).is_some() {
            run.details
                .insert(run_keys::INTERRUPTIBLE.into(), "true".into());
        } else {
            run.details.remove(run_keys::INTERRUPTIBLE);
        }
        match &self_end {
            Some(e) => {
                run.details
                    .insert(run_keys::SELF_END.into(), on_finish_name(e.action).into());
            }
            None => {
                run.details.remove(run_keys::SELF_END);
            }
        }

        let config = SupervisorConfig {
            run_id: run.id.clone(),
            run_dir: run_dir.clone(),
            workdir: workdir.clone(),
            argv: req.argv.clone(),
            max_duration: req.run.max_duration.map(|m| m.get()),
            grace: supervisor::TIMEOUT_GRACE,
            heartbeat_every: supervisor::HEARTBEAT_EVERY,
            checkpoint_dir,
            checkpoint_store: req.run.checkpoint_store.clone(),
            checkpoint_every: supervisor::CHECKPOINT_EVERY,
            self_end,
            interruption_check: d
                .detail(deployment_keys::INTERRUPTION_CHECK)
                .map(str::to_string),
            interruption_every: supervisor::INTERRUPTION_EVERY,
        };
        let hold = if req.detach {
            0
        } else {
            supervisor::END_HOLD.as_secs()
        };
        let launch = script_command(
            supervisor::LAUNCH,
            [run_dir.clone(), config.render(), hold.to_string()],
        );
        let out = phase(
            self.progress,
            "start job",
            capture(self.provider, &d, &launch),
        )
        .await?;
        if out.code != 0 {
            let detail = out.stderr_text();
            let mut e = Error::platform(
                self.kind(),
                format!(
                    "cannot start the run supervisor in environment `{}` (exit code {}): {detail}",
                    d.name, out.code
                ),
            );
            if out.code == 127 {
                e = e.with_hint("the environment needs a POSIX sh with setsid, date, sleep and tar (busybox or coreutils + util-linux)");
            }
            return Err(e);
        }
        run.state = RunState::Running;
        self.state.update_run(run)?;
        self.state.record_event(
            &run.project,
            &run.environment,
            "run",
            &format!("run {} started: {}", run.id, run.command),
        )?;
        Ok(Launched {
            run: run.clone(),
            deployment: d,
            sync,
            deployed,
        })
    }

    /// `run.exclude`, plus sindri's own directories when they lie inside the workdir:
    /// the local artifacts directory (artifacts copied back must not be sent out
    /// again) and the state directory (which holds local environments).
    fn excludes(&self, req: &RunRequest, run: &RunRecord) -> Result<Vec<String>> {
        let mut out = req.run.exclude.clone();
        let workdir = absolute(&req.local_workdir);
        let workdir = workdir.canonicalize().unwrap_or(workdir);
        if let Some(state_dir) = self.state.path().parent()
            && let Ok(rel) = canonical_prefix(state_dir).strip_prefix(&workdir)
            && !rel.as_os_str().is_empty()
        {
            out.push(format!(
                "/{}/",
                rel.to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/")
            ));
        }
        let Some(dir) = run.details.get(run_keys::ARTIFACTS_DIR) else {
            return Ok(out);
        };
        let dir = PathBuf::from(dir);
        let default_root = dir
            .parent()
            .and_then(Path::parent)
            .filter(|_| req.artifacts_dir.is_none());
        let (anchor, pattern_tail) = match default_root {
            // runs/<id>/artifacts: every run's artifacts, not only this one's.
            Some(runs) => (runs.to_path_buf(), "/*/artifacts/"),
            None => (dir.clone(), "/"),
        };
        let anchor = canonical_prefix(&anchor);
        if let Ok(rel) = anchor.strip_prefix(&workdir) {
            let rel = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            if rel.is_empty() {
                return Err(Error::invalid(format!(
                    "the artifacts directory {} is the workdir itself",
                    dir.display()
                ))
                .with_hint("choose another --artifacts-dir"));
            }
            out.push(format!("/{rel}{pattern_tail}"));
        }
        Ok(out)
    }

    /// Refuses a second run in an environment whose previous run still runs: the sync
    /// would change files under it.
    async fn refuse_concurrent(&self, run: &RunRecord) -> Result<()> {
        let filter = RunFilter {
            project: Some(&run.project),
            environment: Some(&run.environment),
        };
        for other in self.state.list_runs(&filter, 20)? {
            if other.id == run.id
                || other.provider != run.provider
                || other.state != RunState::Running
            {
                continue;
            }
            let view = self.refresh(&other).await?;
            if view.run.state == RunState::Running {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "run {} is still running in environment `{}`",
                        other.id, run.environment
                    ),
                )
                .with_hint(format!(
                    "wait for it (`sindri runs logs --follow {id}`), cancel it (`sindri runs cancel {id}`), or run in another environment with `--name NAME`",
                    id = other.id
                )));
            }
        }
        Ok(())
    }

    /// Reads the run's files in the environment and records what they say.
    pub async fn refresh(&self, run: &RunRecord) -> Result<RunView> {
        let mut run = run.clone();
        let Some(run_dir) = run.details.get(run_keys::RUN_DIR).cloned() else {
            return Ok(RunView {
                run,
                remote: None,
                note: Some("the run never reached its environment".into()),
            });
        };
        // A finished run is final; only a cancelled one may still get the exit code
        // its supervisor records as the job dies.
        let awaiting_code = run.state == RunState::Cancelled && run.exit_code.is_none();
        if run.state.is_finished() && !awaiting_code {
            return Ok(RunView {
                run,
                remote: None,
                note: None,
            });
        }
        let found = match self.deployment_of(&run).await? {
            Some(d) => {
                let read = run_ok(
                    self.provider,
                    &d,
                    "reading the run's status",
                    &script_command(remote::STATUS, [run_dir]),
                )
                .await;
                match read {
                    Ok(out) => Some(out),
                    // Only traces of it are left (a kept volume): as good as gone.
                    Err(e) if e.is_not_found() => None,
                    Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
                    Err(e) => {
                        // A machine that stopped itself after the run keeps the run's
                        // files on its disk, out of reach until it starts again.
                        let stopped = match run.details.get(run_keys::SELF_END) {
                            Some(_) => dispatch::status(self.provider, &d)
                                .await
                                .is_ok_and(|s| s.state == StatusState::Stopped),
                            None => false,
                        };
                        if !stopped {
                            return Err(e);
                        }
                        return Ok(RunView {
                            run,
                            remote: None,
                            note: Some(format!(
                                "environment `{}` is stopped: its machine stops itself when a run nobody follows ends (on_finish: stop); its exit code and log are on its disk: `sindri start`, then `sindri runs status`",
                                d.name
                            )),
                        });
                    }
                }
            }
            None => None,
        };
        let out = match found {
            Some(out) => out,
            None => {
                if !run.state.is_finished() {
                    run.state = RunState::Interrupted;
                    run.ended_at = Some(unix_now());
                    let why = if run.details.get(run_keys::SELF_END).map(String::as_str)
                        == Some("destroy")
                    {
                        "the machine destroyed itself when the job ended (on_finish: destroy), and the run's files with it: its exit code is unknown (follow a run to keep it)"
                    } else {
                        "the environment is gone; the run's files went with it"
                    };
                    run.details.insert(run_keys::REASON.into(), why.into());
                    self.settle_cost(&mut run);
                    self.state.update_run(&run)?;
                }
                return Ok(RunView {
                    run,
                    remote: None,
                    note: Some("the environment is no longer deployed".into()),
                });
            }
        };
        let status = RemoteStatus::parse(&out.stdout_text());
        let note = self.apply(&mut run, &status)?;
        Ok(RunView {
            run,
            remote: Some(status),
            note,
        })
    }

    /// Records what `status` says about `run`; returns a note when something is odd.
    fn apply(&self, run: &mut RunRecord, status: &RemoteStatus) -> Result<Option<String>> {
        let (state, why) = status.verdict();
        let skew = status.now.map(|n| unix_now() - n).unwrap_or(0);
        if let Some(started) = status.started_at {
            run.details.insert(
                run_keys::JOB_STARTED_AT.into(),
                (started + skew).to_string(),
            );
        }
        if let Some(err) = &status.checkpoint_error {
            run.details
                .insert(run_keys::CHECKPOINT_ERROR.into(), err.clone());
        } else {
            run.details.remove(run_keys::CHECKPOINT_ERROR);
        }
        for (key, value) in [
            (run_keys::INTERRUPTION, &status.interruption),
            (run_keys::SELF_ENDED, &status.self_end),
            (run_keys::SELF_END_SKIPPED, &status.self_end_skipped),
        ] {
            if let Some(v) = value {
                run.details.insert(key.into(), v.clone());
            }
        }
        let mut note = None;
        // A cancel recorded locally stays a cancel even if the files say otherwise.
        let state = if run.state == RunState::Cancelled && !state.is_finished() {
            RunState::Cancelled
        } else {
            state
        };
        if state.is_finished() {
            run.state = state;
            run.exit_code = status.exit_code;
            if run.ended_at.is_none() || status.ended_at.is_some() {
                run.ended_at = Some(status.ended_at.map_or_else(unix_now, |e| e + skew));
            }
            if let Some(w) = &why {
                run.details.insert(run_keys::REASON.into(), w.clone());
            }
        } else {
            run.state = RunState::Running;
            note = why;
        }
        self.settle_cost(run);
        self.state.update_run(run)?;
        Ok(note)
    }

    /// Hours so far (or in all) × the rate the provider reported at launch.
    fn settle_cost(&self, run: &mut RunRecord) {
        if let Some(rate) = run
            .details
            .get(run_keys::COST_PER_HOUR)
            .and_then(|r| r.parse::<f64>().ok())
        {
            let end = run.ended_at.unwrap_or_else(unix_now);
            let hours = (end - run.started_at).max(0) as f64 / 3600.0;
            run.cost_estimate_usd = Some(hours * rate);
        }
    }

    /// Streams the run's log to `out` from its first byte until the run ends, keeping
    /// a local copy at the run's `log_path`; then records how it ended. Dropping the
    /// future (Ctrl-C) detaches: the job is never touched. A connection lost mid-way
    /// is resumed from the last byte received.
    pub async fn follow(
        &self,
        run: &RunRecord,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<Followed> {
        let d = self.require_deployment(run).await?;
        let run_dir = run_dir_of(run)?;
        let mut local_log = match &run.log_path {
            Some(p) => {
                let path = PathBuf::from(p);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                // A relaunched run's log continues the local copy of the earlier tries.
                let mut open = tokio::fs::OpenOptions::new();
                open.create(true);
                if run.restarts > 0 {
                    open.append(true);
                } else {
                    open.write(true).truncate(true);
                }
                Some(open.open(&path).await?)
            }
            None => None,
        };
        let mut offset: u64 = 0;
        let mut retries = 0u32;
        let code = loop {
            let cmd = script_command(
                remote::FOLLOW,
                [
                    run_dir.clone(),
                    offset.to_string(),
                    supervisor::END_HOLD.as_secs().to_string(),
                ],
            );
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            let io = sindri_core::ExecIo {
                stdin: None,
                stdout: Box::new(ChannelWriter(tx)),
                stderr: Box::new(tokio::io::sink()),
                tty: None,
            };
            let exec = dispatch::exec(self.provider, &d, &cmd, io);
            let drain = async {
                let mut n = 0u64;
                while let Some(chunk) = rx.recv().await {
                    out.write_all(&chunk).await?;
                    out.flush().await?;
                    if let Some(f) = local_log.as_mut() {
                        f.write_all(&chunk).await?;
                    }
                    n += chunk.len() as u64;
                }
                Ok::<u64, std::io::Error>(n)
            };
            let (result, drained) = tokio::join!(exec, drain);
            offset += drained?;
            match result {
                Ok(code) => break code,
                Err(e)
                    if (e.is_transient() || e.kind() == ErrorKind::Unavailable) && retries < 5 =>
                {
                    retries += 1;
                    self.progress.warn(&format!(
                        "lost the log stream ({e}); reconnecting from byte {offset}"
                    ));
                    tokio::time::sleep(Duration::from_secs(2 * u64::from(retries))).await;
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(f) = local_log.as_mut() {
            f.flush().await?;
        }
        match code {
            0 | 3 | 4 => {}
            other => {
                return Err(Error::platform(
                    self.kind(),
                    format!(
                        "following the log of run {} failed (exit code {other})",
                        run.id
                    ),
                ));
            }
        }
        let view = self.refresh(run).await?;
        Ok(Followed {
            run: view.run,
            log_bytes: offset,
        })
    }

    /// Writes the run's log (its last `tail` lines, when given) to `out`: from the
    /// environment while it exists, else from the local copy.
    pub async fn logs(
        &self,
        run: &RunRecord,
        tail: Option<u64>,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<()> {
        // The environment's copy is complete even for runs nobody followed; the local
        // copy is what is left once the environment is gone.
        let mut remote_problem = None;
        if let (Some(d), Some(run_dir)) = (
            self.deployment_of(run).await?,
            run.details.get(run_keys::RUN_DIR),
        ) {
            let cmd = script_command(
                remote::LOG,
                [
                    run_dir.clone(),
                    tail.map(|t| t.to_string()).unwrap_or_default(),
                ],
            );
            match capture(self.provider, &d, &cmd).await {
                Ok(got) if got.code == 0 => {
                    out.write_all(&got.stdout).await?;
                    out.flush().await?;
                    return Ok(());
                }
                Ok(got) => remote_problem = Some(got.stderr_text()),
                Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
                Err(e) => remote_problem = Some(e.to_string()),
            }
        }
        let Some(path) = run.log_path.as_deref().filter(|p| Path::new(p).is_file()) else {
            return Err(Error::not_found(format!(
                "no log of run {}: {}, and no local copy was kept",
                run.id,
                remote_problem.as_deref().unwrap_or("its environment is gone")
            ))
            .with_hint("sindri keeps a local copy of the log of a run it followed (`sindri run` without --detach, or `sindri runs logs --follow`)"));
        };
        let bytes = tokio::fs::read(path).await?;
        let bytes = match tail {
            Some(n) => last_lines(&bytes, n),
            None => &bytes[..],
        };
        out.write_all(bytes).await?;
        out.flush().await?;
        Ok(())
    }

    /// Copies the run's `run.artifacts` (paths or glob patterns, relative to the
    /// workdir) into `dest`, or the directory recorded at launch.
    pub async fn collect_artifacts(
        &self,
        run: &RunRecord,
        dest: Option<&Path>,
    ) -> Result<ArtifactsReport> {
        let dir = match dest {
            Some(d) => absolute(d),
            None => run
                .details
                .get(run_keys::ARTIFACTS_DIR)
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::internal(format!(
                        "run {} has no artifacts directory recorded",
                        run.id
                    ))
                })?,
        };
        let patterns: Vec<String> = run
            .details
            .get(run_keys::ARTIFACTS)
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        let report = ArtifactsReport {
            dir: dir.clone(),
            copied: Vec::new(),
            missing: Vec::new(),
        };
        if patterns.is_empty() {
            return Ok(report);
        }
        let d = self.require_deployment(run).await?;
        let workdir = run.details.get(run_keys::WORKDIR).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "run {} never reached its environment: no artifacts",
                run.id
            ))
        })?;
        self.holding(
            run,
            &d,
            self.copy_artifacts(&d, &workdir, &patterns, report),
        )
        .await
    }

    /// Lists `patterns` in `workdir` and copies what matched into `report.dir`.
    async fn copy_artifacts(
        &self,
        d: &Deployment,
        workdir: &str,
        patterns: &[String],
        mut report: ArtifactsReport,
    ) -> Result<ArtifactsReport> {
        let d = d.clone();
        let dir = report.dir.clone();
        let mut args = vec![workdir.to_string()];
        args.extend(patterns.iter().cloned());
        let listed = run_ok(
            self.provider,
            &d,
            "listing artifacts",
            &script_command(remote::ARTIFACTS, args),
        )
        .await?;
        for item in listed.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let item = String::from_utf8_lossy(item);
            if let Some(missing) = item.strip_prefix('!') {
                report.missing.push(missing.to_string());
                continue;
            }
            let Some(path) = item.strip_prefix('+') else {
                continue;
            };
            let path = path
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            if check_relative("artifact", &path).is_err() {
                continue;
            }
            let local = dir.join(&path);
            if let Some(parent) = local.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let stats =
                dispatch::copy_out(self.provider, &d, &format!("{workdir}/{path}"), &local).await?;
            report.copied.push(CopiedArtifact {
                path,
                files: stats.files,
                bytes: stats.bytes,
            });
        }
        Ok(report)
    }

    /// Runs `work` while holding the machine's own `on_finish` of `run` (renewing
    /// `end_hold` in its run directory), so the machine cannot stop itself while sindri
    /// still copies from it.
    async fn holding<T>(
        &self,
        run: &RunRecord,
        d: &Deployment,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(run_dir) = run
            .details
            .get(run_keys::RUN_DIR)
            .filter(|_| run.details.contains_key(run_keys::SELF_END))
        else {
            return work.await;
        };
        let hold = script_command(
            remote::HOLD,
            [run_dir.clone(), supervisor::END_HOLD.as_secs().to_string()],
        );
        let renew = async {
            loop {
                if let Err(e) = capture(self.provider, d, &hold).await {
                    tracing::debug!(target: "sindri::runs", "renewing the end hold of run {}: {e}", run.id);
                }
                tokio::time::sleep(supervisor::END_HOLD / 3).await;
            }
        };
        tokio::select! {
            r = work => r,
            never = renew => never,
        }
    }

    /// Tells the run's supervisor that sindri applies `on_finish` itself, so the
    /// machine does not also end itself. Best effort: an unreachable machine has
    /// nothing left to tell.
    async fn mark_handled(&self, run: &RunRecord, policy: OnFinish) {
        let Some(run_dir) = run.details.get(run_keys::RUN_DIR) else {
            return;
        };
        let Ok(Some(d)) = self.deployment_of(run).await else {
            return;
        };
        let cmd = script_command(
            remote::HANDLED,
            [
                run_dir.clone(),
                format!("on_finish: {}", on_finish_name(policy)),
            ],
        );
        if let Err(e) = capture(self.provider, &d, &cmd).await {
            tracing::debug!(target: "sindri::runs", "marking run {} handled: {e}", run.id);
        }
    }

    /// Applies `on_finish` to the run's environment: keep, stop (skipped with a note
    /// when the provider cannot stop), or destroy (its volumes are kept). Skipped while
    /// another run still runs there. The machine's own end (`Provider::self_end`) is
    /// called off first, so the policy is applied once.
    pub async fn finish(&self, run: &RunRecord, policy: OnFinish) -> Result<FinishReport> {
        if run.details.contains_key(run_keys::SELF_END) {
            self.mark_handled(run, policy).await;
        }
        let report = self.apply_policy(run, policy).await?;
        if let Some(mut current) = self.state.get_run(&run.id)? {
            current
                .details
                .insert(run_keys::FINALIZED.into(), "true".into());
            self.state.update_run(&current)?;
        }
        Ok(report)
    }

    async fn apply_policy(&self, run: &RunRecord, policy: OnFinish) -> Result<FinishReport> {
        let name = on_finish_name(policy);
        let report = |action, note: Option<String>| FinishReport {
            policy: name,
            action,
            note,
        };
        if policy == OnFinish::Keep {
            return Ok(report("kept", None));
        }
        let Some(d) = self.deployment_of(run).await? else {
            return Ok(report(
                "skipped",
                Some("the environment is already gone".into()),
            ));
        };
        let filter = RunFilter {
            project: Some(&run.project),
            environment: Some(&run.environment),
        };
        if let Some(other) =
            self.state.list_runs(&filter, 20)?.into_iter().find(|r| {
                r.id != run.id && r.state == RunState::Running && r.provider == run.provider
            })
        {
            return Ok(report(
                "skipped",
                Some(format!("run {} still runs in `{}`", other.id, d.name)),
            ));
        }
        match policy {
            OnFinish::Keep => Ok(report("kept", None)),
            OnFinish::Stop => {
                // `stop` exists to end compute billing. Where the platform cannot stop
                // (Lyceum, a one-time spot instance), destroying is the only way to
                // honour that; the artifacts were copied back before this point.
                let caps = self.provider.capabilities();
                if !caps.supports(Operation::Stop) {
                    let why = caps
                        .note(Operation::Stop)
                        .unwrap_or("the provider cannot stop environments");
                    return self
                        .destroy_after(
                            run,
                            &d,
                            Some(format!(
                                "cannot stop ({why}); destroyed instead so nothing keeps billing"
                            )),
                        )
                        .await;
                }
                match phase(
                    self.progress,
                    "stop environment",
                    dispatch::stop(self.provider, &d),
                )
                .await
                {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::Unsupported(_)) => {
                        let why = e.hint().unwrap_or(e.message()).to_string();
                        return self
                            .destroy_after(run, &d, Some(format!("cannot stop ({why}); destroyed instead so nothing keeps billing")))
                            .await;
                    }
                    Err(e) => return Err(e),
                }
                let mut stopped = d.clone();
                stopped.state = DeploymentState::Stopped;
                stopped.updated_at = unix_now();
                self.state.upsert_deployment(&stopped)?;
                self.state.record_event(
                    &d.project,
                    &d.name,
                    "stop",
                    &format!("stopped after run {} (on_finish: stop)", run.id),
                )?;
                Ok(report("stopped", None))
            }
            OnFinish::Destroy => self.destroy_after(run, &d, None).await,
        }
    }

    /// Destroys the run's environment (volumes kept) and records why.
    async fn destroy_after(
        &self,
        run: &RunRecord,
        d: &Deployment,
        why: Option<String>,
    ) -> Result<FinishReport> {
        let policy = Self::recorded_on_finish(run);
        let destroyed = self
            .destroy_recorded(
                d,
                "destroy environment",
                &format!(
                    "destroyed after run {} (on_finish: {})",
                    run.id,
                    on_finish_name(policy)
                ),
            )
            .await?;
        if let Some(w) = &why {
            self.progress.warn(w);
        }
        let kept =
            (!destroyed.kept.is_empty()).then(|| format!("kept: {}", destroyed.kept.join("; ")));
        let note = match (why, kept) {
            (Some(w), Some(k)) => Some(format!("{w}; {k}")),
            (w, k) => w.or(k),
        };
        Ok(FinishReport {
            policy: on_finish_name(policy),
            action: "destroyed",
            note,
        })
    }

    /// Destroys `d` (volumes kept) as the phase `phase_name`, recorded as destroying
    /// first so an interruption leaves it findable, then forgotten, with `event` in
    /// the event log.
    async fn destroy_recorded(
        &self,
        d: &Deployment,
        phase_name: &str,
        event: &str,
    ) -> Result<DestroyReport> {
        let mut destroying = d.clone();
        destroying.state = DeploymentState::Destroying;
        destroying.updated_at = unix_now();
        self.state.upsert_deployment(&destroying)?;
        let destroyed = phase(
            self.progress,
            phase_name,
            dispatch::destroy(self.provider, d, DestroyOptions { volumes: false }),
        )
        .await?;
        self.state.delete_deployment(&d.project, &d.name)?;
        self.state
            .record_event(&d.project, &d.name, "destroy", event)?;
        Ok(destroyed)
    }

    /// The `on_finish` policy recorded for a run at launch.
    pub fn recorded_on_finish(run: &RunRecord) -> OnFinish {
        run.details
            .get(run_keys::ON_FINISH)
            .and_then(|s| parse_on_finish(s))
            .unwrap_or_else(|| default_on_finish(run.provider))
    }

    /// Stops a running job: SIGTERM to its process group, SIGKILL after `grace`. The
    /// supervisor records the exit code; the run is recorded as cancelled.
    pub async fn cancel(&self, run: &RunRecord, grace: Duration) -> Result<CancelReport> {
        if run.state.is_finished() {
            return Ok(CancelReport {
                run: run.clone(),
                outcome: "finished".into(),
            });
        }
        let d = self.require_deployment(run).await?;
        let run_dir = run_dir_of(run)?;
        let out = run_ok(
            self.provider,
            &d,
            "cancelling the run",
            &script_command(remote::CANCEL, [run_dir, grace.as_secs().to_string()]),
        )
        .await?;
        let outcome = out.stdout_text().trim().to_string();
        let mut view = self.refresh(run).await?;
        if matches!(outcome.as_str(), "terminated" | "killed" | "not-started")
            && view.run.state != RunState::Cancelled
            && !view.run.state.is_finished()
        {
            view.run.state = RunState::Cancelled;
            view.run.ended_at = Some(unix_now());
            view.run
                .details
                .insert(run_keys::REASON.into(), "cancelled".into());
            self.settle_cost(&mut view.run);
            self.state.update_run(&view.run)?;
        }
        if outcome != "finished" {
            self.state.record_event(
                &run.project,
                &run.environment,
                "run",
                &format!("run {} cancelled ({outcome})", run.id),
            )?;
        }
        Ok(CancelReport {
            run: view.run,
            outcome,
        })
    }
}

fn run_dir_of(run: &RunRecord) -> Result<String> {
    run.details.get(run_keys::RUN_DIR).cloned().ok_or_else(|| {
        Error::not_found(format!(
            "run {} never reached its environment (it is {})",
            run.id, run.state
        ))
    })
}

/// `p` made absolute against the current directory, without `.` components.
fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The longest existing ancestor of `p` canonicalized, with the rest appended, so
/// paths that do not exist yet compare with canonical ones.
fn canonical_prefix(p: &Path) -> PathBuf {
    let p = absolute(p);
    let mut rest = Vec::new();
    let mut cur = p.as_path();
    loop {
        if let Ok(c) = cur.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return p,
        }
    }
}

/// The last `n` lines of `bytes`.
fn last_lines(bytes: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(last_lines(b"a\n", 5), b"a\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
    }
}
