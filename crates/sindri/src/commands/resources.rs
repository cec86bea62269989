//! `sindri resources list|cleanup`: what sindri's labels say it owns, on every
//! provider, whatever local state remembers.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use clap::Subcommand;
use serde::Serialize;
use sindri_core::{Deployment, DestroyOptions, Error, dispatch};
use sindri_spec::{ProviderKind, ProvidersSpec};

use crate::app::App;
use crate::output::{CliResult, Report, table};

/// `sindri resources ...`.
#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// List every environment carrying sindri's labels, on every provider (or one),
    /// with whether local state knows it and what it costs per hour.
    List {
        /// Only this provider.
        #[arg(short, long, value_parser = parse_provider)]
        provider: Option<ProviderKind>,
    },
    /// Destroy orphans: environments of this project carrying sindri's labels that
    /// local state does not know (a lost state file, an interrupted deploy). Volumes
    /// are removed too. Never touches anything without sindri's labels, nor other
    /// projects' environments unless `--all-projects`.
    Cleanup {
        /// Only this provider.
        #[arg(short, long, value_parser = parse_provider)]
        provider: Option<ProviderKind>,
        /// Only this environment name.
        #[arg(short, long)]
        environment: Option<String>,
        /// Also destroy environments local state knows.
        #[arg(long)]
        all: bool,
        /// Look beyond this project (the config file's directory): every project's
        /// environments on this machine's providers.
        #[arg(long)]
        all_projects: bool,
        /// Show what would be destroyed and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(short, long)]
        yes: bool,
    },
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse()
}

#[derive(Serialize)]
struct OwnedRow {
    provider: String,
    environment: String,
    project: String,
    resource_id: Option<String>,
    state: String,
    known_locally: bool,
    cost_per_hour: Option<f64>,
}

#[derive(Serialize)]
struct ResourcesReport {
    resources: Vec<OwnedRow>,
    /// Providers that could not be asked (no credentials, unreachable), with why.
    unavailable: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destroyed: Option<Vec<String>>,
    /// `list`, `dry_run` or `cleanup`.
    mode: &'static str,
}

impl Report for ResourcesReport {
    fn human(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .resources
            .iter()
            .map(|r| {
                vec![
                    r.provider.clone(),
                    r.environment.clone(),
                    r.project.clone(),
                    r.state.clone(),
                    if r.known_locally {
                        "yes".into()
                    } else {
                        "no (orphan)".into()
                    },
                    r.cost_per_hour
                        .map(|c| format!("${c:.3}/h"))
                        .unwrap_or_else(|| "-".into()),
                    r.resource_id.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut s = if rows.is_empty() {
            match self.mode {
                "list" => "no resources carry sindri's labels\n".to_string(),
                _ => "nothing to clean up in this project (`--all-projects` looks further, `--all` includes known environments)\n".to_string(),
            }
        } else if self.mode == "dry_run" {
            format!(
                "would destroy (with volumes):\n{}",
                table(
                    &[
                        "PROVIDER",
                        "ENVIRONMENT",
                        "PROJECT",
                        "STATE",
                        "IN STATE",
                        "COST",
                        "ID"
                    ],
                    &rows
                )
            )
        } else {
            table(
                &[
                    "PROVIDER",
                    "ENVIRONMENT",
                    "PROJECT",
                    "STATE",
                    "IN STATE",
                    "COST",
                    "ID",
                ],
                &rows,
            )
        };
        for (p, why) in &self.unavailable {
            s.push_str(&format!("note: {p} not checked: {why}\n"));
        }
        if let Some(d) = &self.destroyed {
            for x in d {
                s.push_str(&format!("destroyed {x}\n"));
            }
        }
        s
    }
}

pub async fn run(app: &App, cmd: ResourcesCommand) -> CliResult {
    match cmd {
        ResourcesCommand::List { provider } => {
            let (found, unavailable) = discover(app, provider).await?;
            let resources = rows(app, &found).await;
            app.out.emit(&ResourcesReport {
                resources,
                unavailable,
                destroyed: None,
                mode: "list",
            });
            Ok(())
        }
        ResourcesCommand::Cleanup {
            provider,
            environment,
            all,
            all_projects,
            dry_run,
            yes,
        } => {
            let (found, unavailable) = discover(app, provider).await?;
            let known = known()?;
            let project = current_project(app);
            let targets: Vec<Deployment> = found
                .into_iter()
                .filter(|d| all_projects || d.project == project)
                .filter(|d| environment.as_deref().is_none_or(|e| e == d.name))
                .filter(|d| all || !known.contains(&(d.project.clone(), d.name.clone())))
                .collect();
            let resources = rows(app, &targets).await;
            if dry_run || targets.is_empty() {
                let mode = if dry_run { "dry_run" } else { "cleanup" };
                app.out.emit(&ResourcesReport {
                    resources,
                    unavailable,
                    destroyed: Some(Vec::new()),
                    mode,
                });
                return Ok(());
            }
            if !yes {
                confirm(targets.len())?;
            }
            let state = app.state()?;
            let mut destroyed = Vec::new();
            for d in &targets {
                let p = app.registry.create(d.provider, &provider_settings(app))?;
                dispatch::destroy(&*p, d, DestroyOptions { volumes: true }).await?;
                state.delete_deployment(&d.project, &d.name)?;
                state.record_event(
                    &d.project,
                    &d.name,
                    "cleanup",
                    "destroyed by `sindri resources cleanup`",
                )?;
                destroyed.push(format!(
                    "{} `{}` (project {})",
                    d.provider, d.name, d.project
                ));
            }
            app.out.emit(&ResourcesReport {
                resources,
                unavailable,
                destroyed: Some(destroyed),
                mode: "cleanup",
            });
            Ok(())
        }
    }
}

/// The `providers:` settings of the config in reach, if any: cleanup works without a
/// config, but uses its settings (contexts, regions) when there is one.
fn provider_settings(app: &App) -> ProvidersSpec {
    if app.global.config.exists() {
        app.load().map(|s| s.providers).unwrap_or_default()
    } else {
        ProvidersSpec::default()
    }
}

/// The project id of the config file's directory: the same id the labels carry.
fn current_project(app: &App) -> String {
    let dir = app
        .global
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    sindri_core::project_id(dir)
}

type Unavailable = Vec<(String, String)>;

async fn discover(
    app: &App,
    only: Option<ProviderKind>,
) -> CliResult<(Vec<Deployment>, Unavailable)> {
    let settings = provider_settings(app);
    let kinds = match only {
        Some(k) => vec![k],
        None => app.registry.kinds(),
    };
    let mut found = Vec::new();
    let mut unavailable = Vec::new();
    for kind in kinds {
        let p = app.registry.create(kind, &settings)?;
        match dispatch::list_owned(&*p).await {
            Ok(mut owned) => found.append(&mut owned),
            // Asked about one provider explicitly, its failure is the answer.
            Err(e) if only.is_some() => return Err(e.into()),
            Err(e) => unavailable.push((kind.to_string(), e.to_string())),
        }
    }
    Ok((found, unavailable))
}

fn known() -> CliResult<BTreeSet<(String, String)>> {
    Ok(match sindri_state::StateStore::open_existing_default()? {
        Some(s) => s
            .list_deployments()?
            .into_iter()
            .map(|d| (d.project, d.name))
            .collect(),
        None => BTreeSet::new(),
    })
}

async fn rows(app: &App, found: &[Deployment]) -> Vec<OwnedRow> {
    let known = known().unwrap_or_default();
    let settings = provider_settings(app);
    let mut rows = Vec::new();
    for d in found {
        // Cost comes from the platform's live status where it reports one.
        let cost = match app.registry.create(d.provider, &settings) {
            Ok(p) => dispatch::status(&*p, d)
                .await
                .ok()
                .and_then(|s| s.cost_per_hour),
            Err(_) => None,
        };
        rows.push(OwnedRow {
            provider: d.provider.to_string(),
            environment: d.name.clone(),
            project: d.project.clone(),
            resource_id: d.resource_id.clone(),
            state: d.state.as_str().to_string(),
            known_locally: known.contains(&(d.project.clone(), d.name.clone())),
            cost_per_hour: cost,
        });
    }
    rows
}

fn confirm(n: usize) -> CliResult {
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid("refusing to destroy without confirmation")
            .with_hint("pass --yes when not running on a terminal, or --dry-run to look first")
            .into());
    }
    eprint!("destroy {n} environment(s) and their volumes? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::invalid("cancelled; nothing was changed").into())
    }
}
