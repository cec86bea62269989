//! What a provider can do, declared up front.
//!
//! The CLI consults [`Capabilities`] before every call, so an operation a platform
//! lacks (Lyceum has no stop, E2B has no GPUs) is refused with a clear message before
//! anything is sent.

use std::fmt;

use serde::Serialize;

/// Every operation a command can ask of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Show what deploy would do.
    Plan,
    /// Create or update the environment.
    Deploy,
    /// Ask the platform for the environment's state.
    Status,
    /// Start a stopped or suspended environment.
    Start,
    /// Stop compute, keep disks.
    Stop,
    /// Snapshot memory and stop compute.
    Suspend,
    /// Run a command.
    Exec,
    /// Open an interactive shell.
    Connect,
    /// Read the environment's logs.
    Logs,
    /// Copy files into the environment.
    CopyIn,
    /// Copy files out of the environment.
    CopyOut,
    /// Remove the environment.
    Destroy,
    /// Find environments by sindri's labels.
    ListOwned,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 13] = [
        Operation::Plan,
        Operation::Deploy,
        Operation::Status,
        Operation::Start,
        Operation::Stop,
        Operation::Suspend,
        Operation::Exec,
        Operation::Connect,
        Operation::Logs,
        Operation::CopyIn,
        Operation::CopyOut,
        Operation::Destroy,
        Operation::ListOwned,
    ];

    /// The operation's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Plan => "plan",
            Operation::Deploy => "deploy",
            Operation::Status => "status",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Suspend => "suspend",
            Operation::Exec => "exec",
            Operation::Connect => "connect",
            Operation::Logs => "logs",
            Operation::CopyIn => "copy_in",
            Operation::CopyOut => "copy_out",
            Operation::Destroy => "destroy",
            Operation::ListOwned => "list_owned",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider supports. Plan, deploy, status, destroy and list_owned are
/// mandatory for every provider; the rest are declared here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// `stop` and `start`.
    pub start_stop: bool,
    /// `suspend` (and `start` to resume).
    pub suspend: bool,
    /// `exec`.
    pub exec: bool,
    /// `connect` with a real TTY.
    pub connect: bool,
    /// `logs`.
    pub logs: bool,
    /// `copy_in` and `copy_out`.
    pub copy: bool,
    /// GPUs can be requested.
    pub gpu: bool,
    /// Persistent volumes beyond home.
    pub volumes: bool,
    /// Published ports.
    pub ports: bool,
    /// Spot / interruptible capacity.
    pub spot: bool,
    /// Images built from `deployment.build`.
    pub build: bool,
    /// Why an unsupported operation is missing and what to do instead, shown when refusing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<(Operation, &'static str)>,
}

impl Capabilities {
    /// A provider that supports every operation and feature.
    pub fn all() -> Capabilities {
        Capabilities {
            start_stop: true,
            suspend: true,
            exec: true,
            connect: true,
            logs: true,
            copy: true,
            gpu: true,
            volumes: true,
            ports: true,
            spot: true,
            build: true,
            notes: Vec::new(),
        }
    }

    /// Whether `op` may be dispatched to this provider.
    pub fn supports(&self, op: Operation) -> bool {
        match op {
            Operation::Plan
            | Operation::Deploy
            | Operation::Status
            | Operation::Destroy
            | Operation::ListOwned => true,
            // Start resumes from either stopped or suspended.
            Operation::Start => self.start_stop || self.suspend,
            Operation::Stop => self.start_stop,
            Operation::Suspend => self.suspend,
            Operation::Exec => self.exec,
            Operation::Connect => self.connect,
            Operation::Logs => self.logs,
            Operation::CopyIn | Operation::CopyOut => self.copy,
        }
    }

    /// The provider's own explanation of why `op` is missing.
    pub fn note(&self, op: Operation) -> Option<&'static str> {
        self.notes.iter().find(|(o, _)| *o == op).map(|(_, n)| *n)
    }

    /// The operations this provider supports.
    pub fn operations(&self) -> Vec<Operation> {
        Operation::ALL
            .into_iter()
            .filter(|op| self.supports(*op))
            .collect()
    }
}
