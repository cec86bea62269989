//! What every command needs: the loaded config, the provider from the registry, the
//! state store, and the deployment record they share.

use std::sync::Arc;

use sindri_core::{Deployment, Error, Provider, Registry, ResolvedSpec, dispatch};
use sindri_spec::Spec;
use sindri_state::StateStore;

use crate::cli::GlobalArgs;
use crate::output::{CliResult, Output};

/// The command's environment.
pub struct App {
    /// Global flags.
    pub global: GlobalArgs,
    /// Where results go.
    pub out: Output,
    /// The providers built in.
    pub registry: Registry,
}

impl App {
    /// Builds the context from the global flags.
    pub fn new(global: GlobalArgs) -> App {
        let out = Output {
            format: global.output,
            quiet: global.quiet,
        };
        App {
            global,
            out,
            registry: sindri_providers::registry(),
        }
    }

    /// Loads and validates the config file; every problem is reported at once.
    pub fn load(&self) -> CliResult<Spec> {
        let path = &self.global.config;
        if !path.exists() {
            return Err(
                Error::invalid(format!("no config file at {}", path.display()))
                    .with_hint("run `sindri config init` to write one, or pass `-c FILE`")
                    .into(),
            );
        }
        Ok(sindri_spec::load_file(path)?)
    }

    /// The spec with its identity (name, project) but no secrets read: enough to find,
    /// inspect, stop or destroy a deployment.
    pub fn identify(&self, spec: Spec) -> ResolvedSpec {
        ResolvedSpec::new(spec, &self.global.config)
    }

    /// The spec with its secrets read, for plan and deploy.
    pub async fn resolve(&self, spec: Spec) -> CliResult<ResolvedSpec> {
        let mut rs = self.identify(spec);
        let resolved = sindri_secrets::resolve(&rs.spec.secrets, &rs.base_dir).await?;
        for w in &resolved.warnings {
            if !self.global.quiet {
                eprintln!("warning: {w}");
            }
        }
        rs.secrets = resolved.secrets;
        Ok(rs)
    }

    /// The provider the spec names, from the registry.
    pub fn provider(&self, spec: &Spec) -> CliResult<Arc<dyn Provider>> {
        Ok(self
            .registry
            .create(spec.deployment.provider, &spec.providers)?)
    }

    /// The local state store.
    pub fn state(&self) -> CliResult<StateStore> {
        Ok(StateStore::open_default()?)
    }

    /// The deployment record of this environment: from local state, else rediscovered
    /// from the platform's labels (and recorded again), else `None`.
    pub async fn find_deployment(
        &self,
        provider: &dyn Provider,
        rs: &ResolvedSpec,
        state: &StateStore,
    ) -> CliResult<Option<Deployment>> {
        if let Some(d) = state.get_deployment(&rs.project, rs.name())? {
            return Ok(Some(d));
        }
        let owned = dispatch::list_owned(provider).await?;
        match owned
            .into_iter()
            .find(|d| d.name == rs.name() && d.project == rs.project)
        {
            // Only an environment with a running resource is adopted back into state;
            // leftovers a destroy kept on purpose (a home volume) are returned so
            // `destroy --volumes` can find them, but are not an environment again.
            Some(d) if d.resource_id.is_some() => {
                state.upsert_deployment(&d)?;
                state.record_event(
                    &d.project,
                    &d.name,
                    "adopted",
                    "record rebuilt from the platform's labels",
                )?;
                Ok(Some(d))
            }
            other => Ok(other),
        }
    }

    /// Like [`App::find_deployment`], but a missing deployment is an error.
    pub async fn require_deployment(
        &self,
        provider: &dyn Provider,
        rs: &ResolvedSpec,
        state: &StateStore,
    ) -> CliResult<Deployment> {
        match self.find_deployment(provider, rs, state).await? {
            Some(d) => Ok(d),
            None => Err(Error::not_found(format!(
                "environment `{}` is not deployed on {}",
                rs.name(),
                provider.kind()
            ))
            .with_hint("run `sindri deploy` first")
            .into()),
        }
    }
}
