//! What to run: the `run` section with the command line's overrides, the defaults
//! sindri applies, and the keys under which runs and deployments record their facts.

use std::path::PathBuf;

use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{OnFinish, ProviderKind, RunSpec};

use crate::shell::join_argv;
use crate::supervisor;

/// Keys of [`Deployment::details`] a provider may set to place runs; each has a
/// provider-agnostic default.
pub mod deployment_keys {
    /// Absolute path in the environment where `sindri run` syncs the workdir.
    /// Default: `$HOME/work`.
    pub const WORKDIR: &str = "run_workdir";
    /// Absolute path in the environment under which run directories are made.
    /// Default: `$HOME/.sindri/runs`.
    pub const RUN_ROOT: &str = "run_root";
    /// `true` when the environment's workdir *is* the local workdir (the local
    /// provider's `in_place`): nothing is synced.
    pub const IN_PLACE: &str = "run_in_place";
    /// Written by the orchestrator: the hash of the spec without its `run` section
    /// (but with `run.workdir`), so a run whose command changed reuses the environment.
    pub const ENV_HASH: &str = "run_env_hash";
    /// A command in the environment that exits 0 and prints the platform's notice
    /// when the machine is about to be reclaimed (a spot interruption), 1 when not;
    /// the run supervisor polls it. Set by providers whose machines can be reclaimed
    /// (AWS spot instances).
    pub const INTERRUPTION_CHECK: &str = "run_interruption_check";
}

/// The spec hash of `rs` with the `run` section reduced to what can shape an
/// environment (`run.workdir`, which an in-place local environment runs in).
pub(crate) fn environment_hash(rs: &ResolvedSpec) -> String {
    let mut stripped = rs.clone();
    stripped.spec.run = rs.spec.run.as_ref().map(|r| RunSpec {
        command: sindri_spec::CommandLine::Shell(String::new()),
        workdir: r.workdir.clone(),
        exclude: Vec::new(),
        artifacts: Vec::new(),
        checkpoints: None,
        checkpoint_store: None,
        on_finish: None,
        max_duration: None,
        max_restarts: 0,
    });
    stripped.spec_hash()
}

/// Keys of [`RunRecord::details`] the orchestrator writes.
pub mod run_keys {
    /// Absolute path of the run directory in the environment.
    pub const RUN_DIR: &str = "run_dir";
    /// Absolute path of the workdir in the environment.
    pub const WORKDIR: &str = "workdir";
    /// `run.artifacts`, as a JSON array of strings.
    pub const ARTIFACTS: &str = "artifacts";
    /// The local directory artifacts are copied to.
    pub const ARTIFACTS_DIR: &str = "artifacts_dir";
    /// `keep`, `stop` or `destroy`.
    pub const ON_FINISH: &str = "on_finish";
    /// USD per hour the provider reported at launch.
    pub const COST_PER_HOUR: &str = "cost_per_hour";
    /// Why the run ended as it did, when that is not plain from its state.
    pub const REASON: &str = "reason";
    /// `run.max_duration`, in seconds.
    pub const MAX_DURATION: &str = "max_duration_secs";
    /// `run.checkpoint_store`.
    pub const CHECKPOINT_STORE: &str = "checkpoint_store";
    /// Why the last checkpoint upload failed.
    pub const CHECKPOINT_ERROR: &str = "checkpoint_error";
    /// `true` once artifacts were collected and `on_finish` applied.
    pub const FINALIZED: &str = "finalized";
    /// Unix seconds (this machine's clock) when the job started in the environment.
    pub const JOB_STARTED_AT: &str = "job_started_at";
    /// The failure that stopped the run before its job started.
    pub const ERROR: &str = "error";
    /// `stop` or `destroy`: what the machine does to itself when the job ends and no
    /// sindri follows the run (see `sindri_core::Provider::self_end`).
    pub const SELF_END: &str = "self_end";
    /// Set once the machine ended itself after the run (`stop` or `destroy`).
    pub const SELF_ENDED: &str = "self_ended";
    /// Why the machine did not end itself after the run.
    pub const SELF_END_SKIPPED: &str = "self_end_skipped";
    /// The platform's notice that it reclaims the machine, as the supervisor saw it.
    pub const INTERRUPTION: &str = "interruption";
    /// The notice that led to the last relaunch.
    pub const LAST_INTERRUPTION: &str = "last_interruption";
    /// `true` when the supervisor watches for the platform reclaiming the machine
    /// (the deployment named an interruption check).
    pub const INTERRUPTIBLE: &str = "interruptible";
    /// `run.max_restarts`.
    pub const MAX_RESTARTS: &str = "max_restarts";
}

/// What `on_finish` is when the spec does not say: cloud machines are stopped so they
/// stop billing; a container or this machine costs nothing to keep.
pub fn default_on_finish(kind: ProviderKind) -> OnFinish {
    match kind {
        ProviderKind::Docker | ProviderKind::Local => OnFinish::Keep,
        _ => OnFinish::Stop,
    }
}

/// The name of an `on_finish` policy as written in sindri.yaml.
pub fn on_finish_name(p: OnFinish) -> &'static str {
    match p {
        OnFinish::Keep => "keep",
        OnFinish::Stop => "stop",
        OnFinish::Destroy => "destroy",
    }
}

pub(crate) fn parse_on_finish(s: &str) -> Option<OnFinish> {
    match s {
        "keep" => Some(OnFinish::Keep),
        "stop" => Some(OnFinish::Stop),
        "destroy" => Some(OnFinish::Destroy),
        _ => None,
    }
}

/// One run to launch: the spec's `run` section with the command line's overrides.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job's argument vector.
    pub argv: Vec<String>,
    /// The command as shown to people and recorded.
    pub command: String,
    /// The effective `run` section (its `command` is the spec's, or the override).
    pub run: RunSpec,
    /// The local directory synced to the environment.
    pub local_workdir: PathBuf,
    /// Where artifacts are copied back to; `None`: `runs/<id>/artifacts` next to
    /// sindri.yaml.
    pub artifacts_dir: Option<PathBuf>,
    /// What happens to the environment at the end.
    pub on_finish: OnFinish,
    /// True when nothing will follow the run (`sindri run --detach`): the machine
    /// applies `on_finish` to itself as soon as the job ends. False holds that end
    /// briefly for the sindri that follows (it renews the hold while it follows).
    pub detach: bool,
}

impl RunRequest {
    /// The request for `rs`'s `run` section, or for `command` when given (which then
    /// replaces `run.command`). Fails when there is no command at all, or the section
    /// asks for something impossible (artifacts outside the workdir, an unknown
    /// checkpoint store).
    pub fn new(
        rs: &ResolvedSpec,
        provider: ProviderKind,
        command: Vec<String>,
    ) -> Result<RunRequest> {
        let mut run = match (&rs.spec.run, command.is_empty()) {
            (Some(run), _) => run.clone(),
            (None, false) => RunSpec {
                command: sindri_spec::CommandLine::Argv(command.clone()),
                workdir: ".".into(),
                exclude: Vec::new(),
                artifacts: Vec::new(),
                checkpoints: None,
                checkpoint_store: None,
                on_finish: None,
                max_duration: None,
                max_restarts: 0,
            },
            (None, true) => {
                return Err(Error::invalid("no command to run")
                    .with_hint("give one after `--` (`sindri run -- python train.py`) or add a `run:` section with a `command` to sindri.yaml"));
            }
        };
        if !command.is_empty() {
            run.command = sindri_spec::CommandLine::Argv(command);
        }
        let argv = run.command.to_argv();
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(Error::invalid("run.command is empty")
                .with_hint("write the command to run, e.g. `command: python train.py`"));
        }
        let command = match &run.command {
            sindri_spec::CommandLine::Shell(s) => s.clone(),
            sindri_spec::CommandLine::Argv(v) => join_argv(v),
        };
        for a in &run.artifacts {
            check_relative("run.artifacts", a)?;
        }
        if let Some(c) = &run.checkpoints {
            check_relative("run.checkpoints", c)?;
        }
        if let Some(store) = &run.checkpoint_store {
            supervisor::check_store(store)?;
            if run.checkpoints.is_none() {
                return Err(Error::invalid("run.checkpoint_store is set but run.checkpoints is not")
                    .with_hint("set `checkpoints:` to the directory (relative to the workdir) the job writes checkpoints to"));
            }
        }
        let on_finish = run.on_finish.unwrap_or_else(|| default_on_finish(provider));
        let local_workdir = rs.path(&run.workdir);
        if !local_workdir.is_dir() {
            return Err(Error::invalid(format!(
                "run.workdir: {} is not a directory",
                local_workdir.display()
            ))
            .with_hint("`run.workdir` is relative to the directory of sindri.yaml; it is the directory synced to the environment"));
        }
        Ok(RunRequest {
            argv,
            command,
            local_workdir,
            run,
            artifacts_dir: None,
            on_finish,
            detach: false,
        })
    }
}

/// A path from the spec that must stay inside the workdir.
pub(crate) fn check_relative(field: &str, p: &str) -> Result<()> {
    let bad = p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..");
    if bad {
        return Err(Error::invalid(format!(
            "{field}: found `{p}`; expected a path relative to the workdir, without `..`"
        ))
        .with_hint("artifacts and checkpoints are read from the run's workdir in the environment, e.g. `outputs/` or `model.pt`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_providers_stop_by_default_and_local_ones_keep() {
        assert_eq!(default_on_finish(ProviderKind::Aws), OnFinish::Stop);
        assert_eq!(default_on_finish(ProviderKind::Runpod), OnFinish::Stop);
        assert_eq!(default_on_finish(ProviderKind::Docker), OnFinish::Keep);
        assert_eq!(default_on_finish(ProviderKind::Local), OnFinish::Keep);
        for p in [OnFinish::Keep, OnFinish::Stop, OnFinish::Destroy] {
            assert_eq!(parse_on_finish(on_finish_name(p)), Some(p));
        }
    }

    #[test]
    fn artifact_paths_must_stay_in_the_workdir() {
        assert!(check_relative("run.artifacts", "outputs/model.pt").is_ok());
        assert!(check_relative("run.artifacts", "out/*.csv").is_ok());
        for bad in ["/etc/passwd", "../up", "a/../../b", ""] {
            assert!(check_relative("run.artifacts", bad).is_err(), "{bad}");
        }
    }
}
