//! Extensions: tools declared in sindri.yaml (`extensions: {profile: ml, active: [rust]}`)
//! and installed into any environment after it is deployed.
//!
//! - [`manifest`]: the YAML manifest of one extension and of a profile, with the JSON
//!   Schema generated from the types ([`manifest_schema`]).
//! - [`catalog`]: the built-in catalog embedded in the binary, plus the user's
//!   directories (`extensions.sources`).
//! - [`resolve`]: from a request to an install order in waves, with every problem
//!   (unknown names, cycles, conflicts, unmet requirements) found before anything runs.
//! - [`install`]: the installer, which works through `sindri_core::dispatch::exec` on
//!   any provider, batches apt, pip, npm and cargo and never runs one package manager
//!   twice at once, records what it did in the environment and in the state store,
//!   validates and removes.
//!
//! ```no_run
//! # async fn demo(provider: &dyn sindri_core::Provider, d: &sindri_core::Deployment,
//! #               rs: &sindri_core::ResolvedSpec, state: &sindri_state::StateStore) -> sindri_core::Result<()> {
//! use sindri_extensions::{Catalog, Installer, NoInstallProgress, Request, Target, resolve};
//! let catalog = Catalog::for_spec(&rs.spec.extensions, &rs.base_dir)?;
//! let resolution = resolve(&catalog, &Request::from_spec(&rs.spec.extensions), &Target::from_spec(&rs.spec))?;
//! let installer = Installer::new(provider, d, &catalog, state, &NoInstallProgress);
//! let (_plan, report) = installer.sync(&resolution).await?;
//! if let Some(e) = report.error() { return Err(e); }
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod exec;
pub mod graph;
pub mod install;
pub mod manifest;
pub mod resolve;
pub mod script;

pub use catalog::{Catalog, Entry, ProfileEntry, Source, did_you_mean};
pub use install::{
    Action, CheckResult, ExtensionResult, Failure, HookFailure, InstallPlan, InstallProgress,
    InstallReport, Installer, NoInstallProgress, Outcome, PlanItem, Probe, Removal, Validation,
    check_removal, plan_items, removal_order,
};
pub use manifest::{
    Category, Manager, Manifest, Profile, Step, managers_used, manifest_schema, profile_schema,
};
pub use resolve::{Problem, Reason, Request, Resolution, ResolveError, Target, resolve};

/// [`manifest_schema`] as pretty-printed JSON, as `sindri extension schema` prints it.
pub fn manifest_schema_string() -> String {
    serde_json::to_string_pretty(&manifest_schema()).unwrap_or_default() + "\n"
}
