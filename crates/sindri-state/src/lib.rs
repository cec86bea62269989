//! sindri's local state: deployments, their event history, runs and installed
//! extensions, in one SQLite file shared by every `sindri` process of a user.
//!
//! ```no_run
//! use sindri_core::{Deployment, DeploymentState};
//! use sindri_spec::ProviderKind;
//! use sindri_state::StateStore;
//!
//! # fn main() -> sindri_core::Result<()> {
//! let state = StateStore::open_default()?;
//! // Recorded before the first resource exists, so an interrupted deploy is findable.
//! state.upsert_deployment(&Deployment::creating("dev", ProviderKind::Docker, "a1b2c3", "h1"))?;
//! state.record_event("a1b2c3", "dev", "deploy", "creating container sindri-dev")?;
//! state.set_deployment_state("a1b2c3", "dev", DeploymentState::Ready)?;
//! # Ok(())
//! # }
//! ```
//!
//! Where the file lives is decided by [`resolve_state_dir`]. Opening applies the
//! schema's numbered, forward-only migrations up to [`SCHEMA_VERSION`] (kept in
//! `PRAGMA user_version`) and refuses a file from a newer sindri. Nothing here ever
//! holds a secret (see [`StateStore`]).

mod paths;
mod records;
mod schema;
mod store;

pub use paths::{
    STATE_DIR_ENV, STATE_FILE_NAME, XDG_STATE_HOME_ENV, default_state_dir, resolve_state_dir,
};
pub use records::{Event, InstalledExtension, RunFilter, RunRecord, RunState, new_run_id};
pub use schema::SCHEMA_VERSION;
pub use store::{BUSY_TIMEOUT, StateStore};
