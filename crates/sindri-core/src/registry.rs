//! The registry: the only place the CLI gets a provider from.

use std::sync::Arc;

use sindri_spec::{ProviderKind, ProvidersSpec};

use crate::error::{Error, Result};
use crate::provider::Provider;

/// Builds a provider from the `providers:` section of sindri.yaml. Must not do I/O.
pub type ProviderFactory = fn(&ProvidersSpec) -> Result<Arc<dyn Provider>>;

/// The providers compiled into this binary.
#[derive(Default, Clone)]
pub struct Registry {
    entries: Vec<(ProviderKind, &'static str, ProviderFactory)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a provider; a later registration of the same kind replaces the earlier.
    pub fn register(
        &mut self,
        kind: ProviderKind,
        description: &'static str,
        factory: ProviderFactory,
    ) {
        self.entries.retain(|(k, _, _)| *k != kind);
        self.entries.push((kind, description, factory));
    }

    /// The registered kinds, in registration order.
    pub fn kinds(&self) -> Vec<ProviderKind> {
        self.entries.iter().map(|(k, _, _)| *k).collect()
    }

    /// A one-line description of a registered provider.
    pub fn description(&self, kind: ProviderKind) -> Option<&'static str> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, d, _)| *d)
    }

    /// Builds the provider of `kind` with the given settings.
    pub fn create(
        &self,
        kind: ProviderKind,
        settings: &ProvidersSpec,
    ) -> Result<Arc<dyn Provider>> {
        match self.entries.iter().find(|(k, _, _)| *k == kind) {
            Some((_, _, factory)) => factory(settings),
            None => {
                let available: Vec<String> = self.kinds().iter().map(|k| k.to_string()).collect();
                Err(Error::invalid(format!(
                    "provider `{kind}` is not built into this sindri binary"
                ))
                .with_hint(format!(
                    "this build includes: {} (`sindri providers` shows what each supports)",
                    available.join(", ")
                )))
            }
        }
    }
}
