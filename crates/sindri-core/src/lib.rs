//! The contract between sindri's commands and its providers.
//!
//! Every command resolves a [`Provider`] from the [`Registry`] and calls it only through
//! [`dispatch`], which refuses an operation the provider's [`Capabilities`] do not offer
//! before anything is sent to the platform. Nothing here knows about a particular
//! provider: provider code lives in `sindri-providers`.

pub mod capability;
pub mod dispatch;
pub mod error;
pub mod progress;
pub mod provider;
pub mod record;
pub mod registry;
pub mod resolved;

pub use capability::{Capabilities, Operation};
pub use error::{Error, ErrorKind, Result};
pub use progress::{NoProgress, Progress};
pub use provider::{
    Check, CheckStatus, DeployOptions, DestroyOptions, DestroyReport, ExecCommand, ExecIo,
    LogOptions, LogSink, Provider, TransferStats, TtySize,
};
pub use record::unix_now;
pub use record::{
    Deployment, DeploymentState, Endpoint, Plan, PlanAction, PlanStep, RenderedArtifact, Status,
    StatusState,
};
pub use registry::{ProviderFactory, Registry};
pub use resolved::{ResolvedSecret, ResolvedSpec, SecretValue, project_id};
