//! The `Provider` trait: the one seam between sindri's commands and a platform.
//!
//! # Contract
//! Every implementation guarantees:
//! - **No I/O at construction.** A provider is built from settings alone; the platform
//!   is contacted only by the methods below, so `sindri providers` and `--help` never
//!   wait on a network.
//! - **Ownership by labels.** Every resource it creates carries `sindri.managed=true`,
//!   `sindri.environment=<name>` and `sindri.project=<project id>` (or the platform's
//!   nearest equivalent) and it never modifies or removes a resource without them.
//! - **Idempotence.** `deploy` of an unchanged spec changes nothing; `destroy` of
//!   something already gone succeeds.
//! - **Resumability.** `deploy` finds resources an interrupted earlier deploy left
//!   behind (by label) and finishes or replaces them.
//! - **Live status.** `status` asks the platform, never a cache.
//! - **No secrets out.** Secret values go only to the platform's secret mechanism,
//!   never into labels, logs, errors or returned records.
//! - **Capabilities are truthful.** A method whose operation is not in
//!   [`Provider::capabilities`] is never called (the dispatcher refuses first).
//! - **Machines end themselves only as asked.** [`Provider::self_end`] returns the
//!   command a machine runs to stop or destroy itself when a run is over (so a
//!   detached run never leaves it billing), or `None` where the platform offers no
//!   way to do that from inside. The command holds no secret value: what it needs is
//!   delivered to the machine as secrets are, and read there from a file or the
//!   platform's own environment.

use std::path::Path;

use async_trait::async_trait;
use serde::Serialize;
use sindri_spec::{OnFinish, ProviderKind};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::capability::Capabilities;
use crate::error::Result;
use crate::progress::Progress;
use crate::record::{Deployment, Plan, Status};
use crate::resolved::ResolvedSpec;

/// A command to run inside an environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecCommand {
    /// Program and arguments; run without a shell.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory inside the environment.
    pub workdir: Option<String>,
    /// User to run as; default: the environment's user.
    pub user: Option<String>,
}

impl ExecCommand {
    /// A command from its argument vector.
    pub fn new<I, S>(argv: I) -> ExecCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// A shell command line run through `sh -c`.
    pub fn shell(line: &str) -> ExecCommand {
        ExecCommand::new(["sh", "-c", line])
    }
}

/// Terminal size in columns and rows.
pub type TtySize = (u16, u16);

/// The streams of an exec or connect session.
pub struct ExecIo {
    /// Input for the command; `None` closes its stdin at once.
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Receives the command's stdout (and, with a TTY, everything).
    pub stdout: Box<dyn AsyncWrite + Send + Unpin>,
    /// Receives the command's stderr.
    pub stderr: Box<dyn AsyncWrite + Send + Unpin>,
    /// Present when the session should have a TTY: the initial size and a channel of
    /// size changes (window resizes).
    pub tty: Option<tokio::sync::watch::Receiver<TtySize>>,
}

impl ExecIo {
    /// Discards output and sends no input.
    pub fn null() -> ExecIo {
        ExecIo {
            stdin: None,
            stdout: Box::new(tokio::io::sink()),
            stderr: Box::new(tokio::io::sink()),
            tty: None,
        }
    }
}

/// Where `logs` writes.
pub type LogSink<'a> = &'a mut (dyn AsyncWrite + Send + Unpin);

/// Options of `destroy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyOptions {
    /// Also remove persistent volumes (home) and networks.
    pub volumes: bool,
}

/// What `destroy` did, for the user to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    /// Resources removed.
    pub removed: Vec<String>,
    /// Resources deliberately kept (e.g. the home volume), each with how to remove it.
    pub kept: Vec<String>,
}

/// Options of `deploy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployOptions {
    /// Wait until the environment is ready (default); false returns once it exists.
    pub wait: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions { wait: true }
    }
}

/// Options of `logs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the environment stops or the user interrupts.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
}

/// Files and bytes moved by a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferStats {
    /// Regular files transferred.
    pub files: u64,
    /// Bytes of file content transferred.
    pub bytes: u64,
}

/// The outcome of one prerequisite check, for `sindri doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Works, but something is off.
    Warn,
    /// This provider cannot work until fixed.
    Fail,
}

/// One prerequisite check (credentials, daemon reachable, binary installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not ok.
    pub hint: Option<String>,
}

/// How a machine ends itself when a run is over: what [`Provider::self_end`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfEnd {
    /// A POSIX `sh` command line the run supervisor runs on the machine, as the
    /// environment's user, once the job's exit code is recorded. It holds no secret
    /// value (see the module docs); what it prints goes to the run's supervisor log.
    pub command: String,
    /// What it does to the machine: [`OnFinish::Stop`] or [`OnFinish::Destroy`]. It may
    /// be more than was asked for: a machine that cannot stop (a one-time spot
    /// instance, a Lyceum VM) is destroyed, as `on_finish: stop` does everywhere.
    pub action: OnFinish,
}

/// A platform that can run sindri environments. See the module docs for the contract.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// What this provider can do; consulted before every call.
    fn capabilities(&self) -> Capabilities;

    /// Prerequisites and credentials, for `sindri doctor`. Never fails: problems are checks.
    async fn check(&self) -> Vec<Check>;

    /// What `deploy` would do, with the rendered platform artifacts. Changes nothing.
    async fn plan(&self, spec: &ResolvedSpec, current: Option<&Deployment>) -> Result<Plan>;

    /// Creates or updates the environment and, unless told otherwise, waits until it is
    /// ready. Idempotent and resumable.
    async fn deploy(
        &self,
        spec: &ResolvedSpec,
        opts: DeployOptions,
        progress: &dyn Progress,
    ) -> Result<Deployment>;

    /// The environment's live state.
    async fn status(&self, d: &Deployment) -> Result<Status>;

    /// Starts a stopped or suspended environment.
    async fn start(&self, d: &Deployment) -> Result<()>;

    /// Stops compute, keeping disks.
    async fn stop(&self, d: &Deployment) -> Result<()>;

    /// Snapshots memory and stops compute.
    async fn suspend(&self, d: &Deployment) -> Result<()>;

    /// Runs a command, streaming its output; returns its exit code.
    async fn exec(&self, d: &Deployment, cmd: &ExecCommand, io: ExecIo) -> Result<i32>;

    /// Opens an interactive shell; returns the shell's exit code.
    async fn connect(&self, d: &Deployment, io: ExecIo) -> Result<i32>;

    /// Writes the environment's logs to `out`.
    async fn logs(&self, d: &Deployment, opts: LogOptions, out: LogSink<'_>) -> Result<()>;

    /// Copies a local file or directory to `to` inside the environment.
    async fn copy_in(&self, d: &Deployment, from: &Path, to: &str) -> Result<TransferStats>;

    /// Copies `from` inside the environment to a local path.
    async fn copy_out(&self, d: &Deployment, from: &str, to: &Path) -> Result<TransferStats>;

    /// Removes the environment. Succeeds when it is already gone.
    async fn destroy(&self, d: &Deployment, opts: DestroyOptions) -> Result<DestroyReport>;

    /// Every environment this provider finds carrying sindri's labels, even when local
    /// state is lost.
    async fn list_owned(&self) -> Result<Vec<Deployment>>;

    /// Prepares environment `d` to apply `policy` to itself when a run ends, and
    /// returns the command that does it ([`SelfEnd`]), so that no machine is left
    /// billing when nothing follows the run. Called when a run starts; it may call the
    /// platform (to set what a shutdown from inside does) or deliver what the command
    /// needs to the machine, as secrets are delivered.
    ///
    /// `Ok(None)`, the default, means the machine cannot end itself (or `policy` is
    /// `keep`): `on_finish` is then applied only by a sindri that follows the run.
    /// A provider that returns a command must make it safe to run twice and harmless
    /// once the machine is already stopping.
    async fn self_end(&self, d: &Deployment, policy: OnFinish) -> Result<Option<SelfEnd>> {
        let _ = (d, policy);
        Ok(None)
    }
}
