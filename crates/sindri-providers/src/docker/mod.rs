//! The Docker provider (being written).
use std::sync::Arc;
use sindri_core::{Provider, Result};
use sindri_spec::ProvidersSpec;

/// Builds the Docker provider from `providers.docker`.
pub fn factory(_settings: &ProvidersSpec) -> Result<Arc<dyn Provider>> {
    Err(sindri_core::Error::internal("docker provider is being written"))
}
