//! `sindri status|start|stop|suspend|destroy`.

use std::io::IsTerminal;

use serde::Serialize;
use sindri_core::{
    DeploymentState, DestroyOptions, DestroyReport, Error, Status, StatusState, dispatch, unix_now,
};

use crate::app::App;
use crate::cli::DestroyArgs;
use crate::output::{CliResult, Report};
use crate::signals::interruptible;

#[derive(Serialize)]
struct StatusReport {
    environment: String,
    provider: String,
    deployed: bool,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_state: Option<&'static str>,
    #[serde(rename = "live", skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    notes: Vec<String>,
}

impl Report for StatusReport {
    fn human(&self) -> String {
        let mut s = format!("{}  {}  {}\n", self.environment, self.provider, self.state);
        if let Some(st) = &self.status {
            if let Some(m) = &st.message {
                s.push_str(&format!("  {m}\n"));
            }
            for e in &st.endpoints {
                s.push_str(&format!("  {}: {}\n", e.name, e.address));
            }
            if let Some(c) = st.cost_per_hour {
                s.push_str(&format!("  cost: ${c:.3}/hour\n"));
            }
            for (k, v) in &st.details {
                s.push_str(&format!("  {k}: {v}\n"));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

/// Asks the platform; the local record only says where to look.
pub async fn status(app: &App) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.identify(spec);
    let state = app.state()?;
    let Some(d) = app.find_deployment(&*provider, &rs, &state).await? else {
        app.out.emit(&StatusReport {
            environment: rs.name().to_string(),
            provider: provider.kind().to_string(),
            deployed: false,
            state: "not deployed",
            recorded_state: None,
            status: None,
            notes: vec!["run `sindri deploy` to create it".into()],
        });
        return Ok(());
    };
    let live = interruptible(dispatch::status(&*provider, &d)).await?;
    if d.resource_id.is_none() && live.state == StatusState::Missing {
        // Only what an earlier destroy kept is left.
        app.out.emit(&StatusReport {
            environment: rs.name().to_string(),
            provider: provider.kind().to_string(),
            deployed: false,
            state: "not deployed",
            recorded_state: None,
            status: None,
            notes: vec![
                "volumes kept by an earlier destroy remain: `sindri deploy` reuses them, `sindri destroy --volumes` removes them".into(),
            ],
        });
        return Ok(());
    }
    let mut notes = Vec::new();
    match d.state {
        DeploymentState::Creating => notes.push(
            "a deploy was started but did not finish (interrupted?): `sindri deploy` finishes it, `sindri destroy` removes it".into(),
        ),
        DeploymentState::Failed => notes.push("the last deploy failed: `sindri deploy` retries it".into()),
        _ => {}
    }
    if live.state == StatusState::Missing {
        notes.push(
            "the platform has no such environment any more: `sindri deploy` recreates it".into(),
        );
    }
    app.out.emit(&StatusReport {
        environment: d.name.clone(),
        provider: d.provider.to_string(),
        deployed: live.state != StatusState::Missing,
        state: live.state.as_str(),
        recorded_state: Some(d.state.as_str()),
        status: Some(live),
        notes,
    });
    Ok(())
}

#[derive(Serialize)]
struct ChangeReport {
    environment: String,
    provider: String,
    action: &'static str,
    state: &'static str,
}

impl Report for ChangeReport {
    fn human(&self) -> String {
        format!("`{}` {} on {}", self.environment, self.state, self.provider)
    }
}

#[derive(Clone, Copy)]
enum Change {
    Start,
    Stop,
    Suspend,
}

async fn change(app: &App, what: Change) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.identify(spec);
    // Refuse before touching state or the platform.
    let op = match what {
        Change::Start => sindri_core::Operation::Start,
        Change::Stop => sindri_core::Operation::Stop,
        Change::Suspend => sindri_core::Operation::Suspend,
    };
    dispatch::require(&*provider, op)?;
    let state = app.state()?;
    let mut d = app.require_deployment(&*provider, &rs, &state).await?;
    let (action, new_state, label) = match what {
        Change::Start => {
            interruptible(dispatch::start(&*provider, &d)).await?;
            // Secrets live in memory (tmpfs, the platform's process env) and do not
            // survive a stop. An unchanged-spec deploy changes nothing else and puts
            // them back, so a started environment is as complete as a deployed one.
            if !rs.spec.secrets.is_empty() {
                let full = app.resolve(rs.spec.clone()).await?;
                let progress = crate::progress::CliProgress::new(&app.out);
                let restored = interruptible(dispatch::deploy(
                    &*provider,
                    &full,
                    sindri_core::DeployOptions::default(),
                    &progress,
                ))
                .await;
                progress.finish();
                d = restored?;
            }
            ("start", DeploymentState::Ready, "started")
        }
        Change::Stop => {
            interruptible(dispatch::stop(&*provider, &d)).await?;
            ("stop", DeploymentState::Stopped, "stopped")
        }
        Change::Suspend => {
            interruptible(dispatch::suspend(&*provider, &d)).await?;
            ("suspend", DeploymentState::Suspended, "suspended")
        }
    };
    d.state = new_state;
    d.updated_at = unix_now();
    state.upsert_deployment(&d)?;
    state.record_event(&d.project, &d.name, action, label)?;
    app.out.emit(&ChangeReport {
        environment: d.name.clone(),
        provider: d.provider.to_string(),
        action,
        state: label,
    });
    Ok(())
}

pub async fn start(app: &App) -> CliResult {
    change(app, Change::Start).await
}

pub async fn stop(app: &App) -> CliResult {
    change(app, Change::Stop).await
}

pub async fn suspend(app: &App) -> CliResult {
    change(app, Change::Suspend).await
}

#[derive(Serialize)]
struct DestroyOutput {
    environment: String,
    provider: String,
    existed: bool,
    #[serde(flatten)]
    report: DestroyReport,
}

impl Report for DestroyOutput {
    fn human(&self) -> String {
        let mut s = if self.existed {
            format!("destroyed `{}` on {}\n", self.environment, self.provider)
        } else {
            format!(
                "`{}` is not deployed on {}: nothing to destroy\n",
                self.environment, self.provider
            )
        };
        for r in &self.report.removed {
            s.push_str(&format!("  removed {r}\n"));
        }
        for k in &self.report.kept {
            s.push_str(&format!("  kept {k}\n"));
        }
        s
    }
}

/// Destroys; destroying what is already gone succeeds.
pub async fn destroy(app: &App, args: DestroyArgs) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    let rs = app.identify(spec);
    if args.volumes && !args.yes {
        confirm(&format!(
            "destroy `{}` and DELETE its volumes (home directory data is lost)?",
            rs.name()
        ))?;
    }
    let state = app.state()?;
    let Some(mut d) = app.find_deployment(&*provider, &rs, &state).await? else {
        app.out.emit(&DestroyOutput {
            environment: rs.name().to_string(),
            provider: provider.kind().to_string(),
            existed: false,
            report: DestroyReport::default(),
        });
        return Ok(());
    };
    d.state = DeploymentState::Destroying;
    d.updated_at = unix_now();
    state.upsert_deployment(&d)?;
    let report = interruptible(dispatch::destroy(
        &*provider,
        &d,
        DestroyOptions {
            volumes: args.volumes,
        },
    ))
    .await?;
    state.delete_deployment(&d.project, &d.name)?;
    state.record_event(
        &d.project,
        &d.name,
        "destroy",
        &format!("destroyed (volumes: {})", args.volumes),
    )?;
    // What was found may be only what an earlier destroy kept (the home volume): the
    // environment existed only if something was removed now.
    app.out.emit(&DestroyOutput {
        environment: d.name.clone(),
        provider: d.provider.to_string(),
        existed: !report.removed.is_empty(),
        report,
    });
    Ok(())
}

/// Asks a yes/no question on the terminal; refuses when there is no terminal to ask.
fn confirm(question: &str) -> CliResult {
    if !std::io::stdin().is_terminal() {
        return Err(
            Error::invalid("refusing to delete volumes without confirmation")
                .with_hint("pass --yes to confirm when not running on a terminal")
                .into(),
        );
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::invalid("cancelled; nothing was changed").into())
    }
}
