//! The `sindri.yaml` model.
//!
//! [`Spec`] is the single source of truth for the configuration file: serde reads it,
//! schemars generates the JSON Schema that editors use ([`schema`], printed by
//! `sindri config schema`), and [`load_file`] / [`load_str`] turn a file into a
//! validated `Spec` or into [`Diagnostics`]: every problem of the file, each with its
//! line, column, key path, what was found and what was expected. Quantities (sizes,
//! CPU counts, durations, ports) are parsed into typed values here, once, so no other
//! crate ever re-parses a string from the file. [`starter`] writes the commented file
//! `sindri config init` starts from.

mod de;
mod diagnostic;
mod load;
pub mod model;
pub mod quantity;
mod schema;
mod semantic;
mod starter;
mod table;
mod validate;
mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{load_file, load_str};
pub use model::*;
pub use quantity::{ByteSize, Cpus, DurationValue, PortMapping, Protocol};
pub use schema::{schema, schema_string};
pub use starter::{SCHEMA_PATH, starter};
