//! Batch and training runs: `sindri run` and `sindri runs`, on any provider.
//!
//! Everything here is built from the [`sindri_core::dispatch`] verbs (deploy, status,
//! exec, copy_in, copy_out, stop, destroy), never from provider code, so a provider
//! that implements them runs jobs:
//!
//! 1. **deploy or reuse** the environment ([`Orchestrator::ensure_environment`]);
//! 2. **sync** the workdir ([`sync`]): `.gitignore` and `run.exclude` respected, only
//!    changed files sent on a re-run, deleted ones removed, driven by a manifest kept
//!    in the environment;
//! 3. **supervise** ([`supervisor`]): a POSIX sh script started detached in the
//!    environment runs the job in its own process group and records heartbeat, exit
//!    code and end time in the run directory, enforces `run.max_duration` on the
//!    machine and uploads `run.checkpoints`;
//! 4. **follow** the log until the exit code file appears ([`Orchestrator::follow`]);
//!    dropping the future detaches, it never touches the job;
//! 5. **collect** `run.artifacts` ([`Orchestrator::collect_artifacts`]) and apply
//!    `on_finish` ([`Orchestrator::finish`]).
//!
//! # No machine left billing
//! At launch the provider is asked how its machine ends itself
//! (`sindri_core::Provider::self_end`: a shutdown on EC2, an API call with the pod's
//! own key on RunPod, a `DELETE` of the VM on Lyceum). The supervisor runs that command
//! after the job's exit code is recorded, also after a `max_duration` kill, unless a
//! sindri following the run holds the end (it renews `end_hold` while it streams the
//! log and copies artifacts) or applied `on_finish` itself ([`Orchestrator::finish`]
//! writes `end_handled` first), or another run still runs there. So a detached run, a
//! Ctrl-C or a closed laptop never leaves a cloud machine billing, and a followed run
//! gets its policy applied once.
//!
//! # Spot interruptions
//! A deployment may name a command that reports the platform's notice that it
//! reclaims the machine ([`deployment_keys::INTERRUPTION_CHECK`]; AWS spot instances
//! poll IMDSv2). The supervisor runs it every [`supervisor::INTERRUPTION_EVERY`]; on a
//! notice it uploads the checkpoints, records reason `interrupted` and stops the job's
//! group. [`Orchestrator::relaunch`] then (while `restarts < run.max_restarts`, see
//! [`Orchestrator::should_relaunch`]) destroys the reclaimed environment, deploys a new
//! one, syncs, restores the last checkpoint into `run.checkpoints` and starts the job
//! again under the same run id, counting `restarts`. `sindri run` does that while it
//! follows; a detached run is not relaunched.
//!
//! ```no_run
//! # async fn example(provider: &dyn sindri_core::Provider, rs: &sindri_core::ResolvedSpec) -> sindri_core::Result<()> {
//! use sindri_runs::{Orchestrator, RunRequest};
//! let state = sindri_state::StateStore::open_default()?;
//! let orch = Orchestrator::new(provider, &state, &sindri_core::NoProgress);
//! let req = RunRequest::new(rs, provider.kind(), vec!["python".into(), "train.py".into()])?;
//! let run = orch.prepare(rs, &req)?;
//! let launched = orch.launch(rs, &req, run).await?;
//! let followed = orch.follow(&launched.run, &mut tokio::io::stdout()).await?;
//! orch.collect_artifacts(&followed.run, None).await?;
//! orch.finish(&followed.run, req.on_finish).await?;
//! # Ok(()) }
//! ```
//!
//! # Checkpoints
//! With `run.checkpoints` (a directory relative to the workdir) and
//! `run.checkpoint_store`, the supervisor copies the checkpoint directory to
//! `<store>/<run id>/` every [`supervisor::CHECKPOINT_EVERY`] while the job runs and
//! once more when it ends (before the exit code is recorded). Two kinds of store:
//! - `s3://bucket/prefix`, with `aws s3 sync`: the `aws` CLI must be installed in the
//!   environment, with credentials there (an instance role, or environment variables);
//! - a path in the environment, `file:///path` or `/path`, with `cp -R` (a mounted
//!   volume, or on the local provider a directory of this machine).
//!
//! A failed upload never fails the run: it is recorded (`checkpoint_error`) and shown
//! by `sindri runs status`. The job finds the directory in `$SINDRI_CHECKPOINT_DIR`
//! (and its run id in `$SINDRI_RUN_ID`).
//!
//! Where runs live in the environment: the workdir at the deployment detail
//! [`deployment_keys::WORKDIR`] (default `$HOME/work`), run directories under
//! [`deployment_keys::RUN_ROOT`] (default `$HOME/.sindri/runs`), one per run id.
//! The environment needs a POSIX `sh` with `setsid`, `date`, `sleep`, `kill`, `tail`,
//! `head`, `wc` and `tar` (busybox provides all of them).

mod orchestrator;
pub mod remote;
mod request;
mod shell;
pub mod supervisor;
pub mod sync;

pub use orchestrator::{
    ArtifactsReport, CancelReport, CopiedArtifact, FinishReport, Followed, Launched, Orchestrator,
    RunView,
};
pub use remote::RemoteStatus;
pub use request::{RunRequest, default_on_finish, deployment_keys, on_finish_name, run_keys};
pub use shell::{join_argv, sh_quote};
pub use sync::SyncReport;
