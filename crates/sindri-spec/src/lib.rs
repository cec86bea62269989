//! The `sindri.yaml` model.
//!
//! [`Spec`] is the single source of truth for the configuration file: serde reads it,
//! schemars generates the JSON Schema that editors use (`sindri config schema`), and
//! [`load`] turns a file into a validated `Spec` or a list of precise, positioned
//! diagnostics. Quantities (sizes, CPU counts, durations, ports) are parsed into typed
//! values here, once, so no other crate ever re-parses a string from the file.

pub mod model;
pub mod quantity;

pub use model::*;
pub use quantity::{ByteSize, Cpus, DurationValue, PortMapping, Protocol};
