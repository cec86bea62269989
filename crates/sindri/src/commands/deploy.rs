//! `sindri plan` and `sindri deploy`.

use std::time::Instant;

use serde::Serialize;
use sindri_core::{
    DeployOptions, Deployment, DeploymentState, Endpoint, ErrorKind, Plan, PlanAction, dispatch,
    unix_now,
};

use crate::app::App;
use crate::cli::DeployArgs;
use crate::output::{CliResult, Report, human_duration};
use crate::progress::{CliProgress, PhaseTiming};
use crate::signals::interruptible;

#[derive(Serialize)]
struct PlanReport {
    #[serde(flatten)]
    plan: Plan,
    /// What deploy would install, keep or upgrade, when sindri.yaml asks for extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    extensions: Option<super::extension::ExtensionsPlan>,
}

impl Report for PlanReport {
    fn human(&self) -> String {
        let p = &self.plan;
        let mut s = format!("plan for `{}` on {}:\n", p.environment, p.provider);
        for step in &p.steps {
            let sign = match step.action {
                PlanAction::Create => "+ create ",
                PlanAction::Update => "~ update ",
                PlanAction::Replace => "± replace",
                PlanAction::Keep => "= keep   ",
                PlanAction::Delete => "- delete ",
            };
            s.push_str(&format!("  {sign} {}", step.resource));
            if let Some(r) = &step.reason {
                s.push_str(&format!("  ({r})"));
            }
            s.push('\n');
        }
        if let Some(x) = &self.extensions {
            s.push_str(&x.human());
        }
        if p.is_noop() && self.extensions.as_ref().is_none_or(|x| x.is_noop()) {
            s.push_str("no changes: the environment is up to date\n");
        }
        for a in &p.artifacts {
            s.push_str(&format!("\n--- {} ---\n{}\n", a.name, a.content.trim_end()));
        }
        s
    }
}

/// Computes and shows the plan. Opens the state store read-only and only if it exists,
/// so planning leaves no trace anywhere.
pub async fn plan(app: &App) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.resolve(spec).await?;
    // Extension problems are refused as deploy refuses them, before asking the platform.
    let resolved = super::extension::resolve_spec(&rs)?;
    let state = sindri_state::StateStore::open_existing_default()?;
    let current = match &state {
        Some(state) => state.get_deployment(&rs.project, rs.name())?,
        None => None,
    };
    let plan = interruptible(dispatch::plan(&*provider, &rs, current.as_ref())).await?;
    // A created or replaced environment keeps nothing that was installed in it.
    let recreated = current.is_none()
        || plan
            .steps
            .iter()
            .any(|s| matches!(s.action, PlanAction::Create | PlanAction::Replace));
    let extensions = super::extension::plan_extensions(&rs, &resolved, state.as_ref(), recreated)?;
    app.out.emit(&PlanReport { plan, extensions });
    Ok(())
}

#[derive(Serialize)]
struct DeployReport {
    environment: String,
    provider: String,
    resource_id: Option<String>,
    state: &'static str,
    phases: Vec<PhaseTiming>,
    total_millis: u128,
    endpoints: Vec<Endpoint>,
    #[serde(skip_serializing_if = "skip_extensions")]
    extensions: Option<super::extension::ExtensionsSummary>,
}

fn skip_extensions(e: &Option<super::extension::ExtensionsSummary>) -> bool {
    e.as_ref().is_none_or(|s| s.is_empty())
}

impl Report for DeployReport {
    fn human(&self) -> String {
        let mut s = format!(
            "`{}` is {} on {} ({} total)\n",
            self.environment,
            self.state,
            self.provider,
            human_duration(std::time::Duration::from_millis(self.total_millis as u64))
        );
        for e in &self.endpoints {
            s.push_str(&format!("  {}: {}\n", e.name, e.address));
        }
        if let Some(x) = self.extensions.as_ref().filter(|x| !x.is_empty()) {
            s.push_str(&x.human());
            if !s.ends_with('\n') {
                s.push('\n');
            }
        }
        s.push_str("next: `sindri connect` for a shell, `sindri exec -- CMD` to run a command");
        s
    }
}

/// Deploys. The record is written in `creating` before the provider creates anything,
/// so an interrupted deploy is always findable: the next `deploy` finishes it and
/// `destroy` removes it.
pub async fn deploy(app: &App, args: DeployArgs) -> CliResult {
    let started = Instant::now();
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.resolve(spec).await?;
    // Refuse what the provider cannot do, and extension problems (unknown names,
    // cycles, conflicts, unmet requirements), before anything is recorded or created.
    dispatch::check_spec(&*provider, &rs)?;
    if !args.no_extensions {
        super::extension::check_before_deploy(&rs)?;
    }

    let state = app.state()?;
    let hash = rs.spec_hash();
    let mut record = state
        .get_deployment(&rs.project, rs.name())?
        .unwrap_or_else(|| Deployment::creating(rs.name(), provider.kind(), &rs.project, &hash));
    record.provider = provider.kind();
    record.spec_hash = hash;
    record.state = DeploymentState::Creating;
    record.updated_at = unix_now();
    state.upsert_deployment(&record)?;
    state.record_event(&rs.project, rs.name(), "deploy", "deploy started")?;

    let progress = CliProgress::new(&app.out);
    let opts = DeployOptions {
        wait: !args.no_wait,
    };
    let result = interruptible(dispatch::deploy(&*provider, &rs, opts, &progress)).await;
    progress.finish();

    let mut deployed = match result {
        Ok(d) => d,
        Err(e) => {
            let (event, hint) = if e.kind() == ErrorKind::Interrupted {
                (
                    "deploy interrupted",
                    "nothing is lost: run `sindri deploy` again to finish, or `sindri destroy` to remove what was created",
                )
            } else {
                record.state = DeploymentState::Failed;
                record.updated_at = unix_now();
                state.upsert_deployment(&record)?;
                ("deploy failed", "")
            };
            state.record_event(&rs.project, rs.name(), "deploy", &format!("{event}: {e}"))?;
            return Err(if hint.is_empty() {
                e.into()
            } else {
                e.with_hint(hint).into()
            });
        }
    };
    deployed.state = if opts.wait {
        DeploymentState::Ready
    } else {
        DeploymentState::Creating
    };
    deployed.created_at = record.created_at;
    deployed.updated_at = unix_now();
    state.upsert_deployment(&deployed)?;
    state.record_event(&rs.project, rs.name(), "deploy", "deploy finished")?;

    let extensions = if args.no_extensions || !opts.wait {
        None
    } else {
        let summary =
            super::extension::install_after_deploy(app, &*provider, &deployed, &rs, &progress)
                .await;
        progress.finish();
        Some(summary?)
    };

    // Endpoints come from the platform, so what is printed is what is there.
    let endpoints = match dispatch::status(&*provider, &deployed).await {
        Ok(s) => s.endpoints,
        Err(_) => Vec::new(),
    };
    app.out.emit(&DeployReport {
        environment: deployed.name.clone(),
        provider: deployed.provider.to_string(),
        resource_id: deployed.resource_id.clone(),
        state: if opts.wait { "ready" } else { "created" },
        phases: progress.phases(),
        total_millis: started.elapsed().as_millis(),
        endpoints,
        extensions,
    });
    Ok(())
}
