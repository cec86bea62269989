//! `sindri providers` and `sindri doctor`.

use serde::Serialize;
use sindri_core::{Capabilities, Check, CheckStatus};
use sindri_spec::{ProviderKind, ProvidersSpec};

use crate::app::App;
use crate::cli::DoctorArgs;
use crate::output::{CliError, CliResult, Report, table};

#[derive(Serialize)]
struct ProviderInfo {
    name: String,
    description: &'static str,
    operations: Vec<&'static str>,
    capabilities: Capabilities,
}

#[derive(Serialize)]
struct ProvidersReport {
    providers: Vec<ProviderInfo>,
}

impl Report for ProvidersReport {
    fn human(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .providers
            .iter()
            .map(|p| {
                let c = &p.capabilities;
                let features: Vec<&str> = [
                    (c.gpu, "gpu"),
                    (c.spot, "spot"),
                    (c.volumes, "volumes"),
                    (c.ports, "ports"),
                    (c.build, "build"),
                ]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
                vec![
                    p.name.clone(),
                    p.operations.join(" "),
                    features.join(" "),
                    p.description.to_string(),
                ]
            })
            .collect();
        table(
            &["PROVIDER", "OPERATIONS", "FEATURES", "DESCRIPTION"],
            &rows,
        )
    }
}

/// Lists every provider in the registry with its capabilities. Builds each provider
/// (no I/O by contract) to ask it.
pub fn providers(app: &App) -> CliResult {
    let mut providers = Vec::new();
    for kind in app.registry.kinds() {
        let p = app.registry.create(kind, &ProvidersSpec::default())?;
        let capabilities = p.capabilities();
        providers.push(ProviderInfo {
            name: kind.to_string(),
            description: app.registry.description(kind).unwrap_or(""),
            operations: capabilities
                .operations()
                .iter()
                .map(|o| o.as_str())
                .collect(),
            capabilities,
        });
    }
    app.out.emit(&ProvidersReport { providers });
    Ok(())
}

#[derive(Serialize)]
struct ProviderChecks {
    provider: String,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct DoctorReport {
    config: Vec<Check>,
    providers: Vec<ProviderChecks>,
}

impl Report for DoctorReport {
    fn human(&self) -> String {
        let mut rows = Vec::new();
        let mut push = |scope: &str, c: &Check| {
            let mark = match c.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            let mut detail = c.detail.clone();
            if let Some(h) = &c.hint {
                detail.push_str(&format!(" (hint: {h})"));
            }
            rows.push(vec![
                scope.to_string(),
                mark.to_string(),
                c.name.clone(),
                detail,
            ]);
        };
        for c in &self.config {
            push("sindri", c);
        }
        for p in &self.providers {
            for c in &p.checks {
                push(&p.provider, c);
            }
        }
        table(&["SCOPE", "STATUS", "CHECK", "DETAIL"], &rows)
    }
}

/// Checks the config, the state store and each provider's prerequisites. Exits 1 when
/// a check of the provider that matters (the one asked for, else the config's) fails.
pub async fn doctor(app: &App, args: DoctorArgs) -> CliResult {
    let mut config_checks = Vec::new();
    let mut settings = ProvidersSpec::default();
    let mut wanted: Option<ProviderKind> = args.provider;
    if app.global.config.exists() {
        match app.load() {
            Ok(spec) => {
                config_checks.push(ok_check(
                    "config",
                    format!("{} is valid", app.global.config.display()),
                ));
                wanted = wanted.or(Some(spec.deployment.provider));
                settings = spec.providers;
            }
            Err(CliError::Config(d)) => config_checks.push(Check {
                name: "config".into(),
                status: CheckStatus::Fail,
                detail: format!("{} has {} problem(s)", app.global.config.display(), d.len()),
                hint: Some("run `sindri config validate` to see them".into()),
            }),
            Err(e) => return Err(e),
        }
    } else {
        config_checks.push(Check {
            name: "config".into(),
            status: CheckStatus::Warn,
            detail: format!("no {}", app.global.config.display()),
            hint: Some("`sindri config init` writes one".into()),
        });
    }
    match app.state() {
        Ok(s) => config_checks.push(ok_check(
            "state",
            format!("{} is usable", s.path().display()),
        )),
        Err(CliError::Core(e)) => config_checks.push(Check {
            name: "state".into(),
            status: CheckStatus::Fail,
            detail: e.to_string(),
            hint: e.hint().map(str::to_string),
        }),
        Err(e) => return Err(e),
    }

    let kinds = match args.provider {
        Some(k) => vec![k],
        None => app.registry.kinds(),
    };
    let mut providers = Vec::new();
    for kind in kinds {
        let p = app.registry.create(kind, &settings)?;
        providers.push(ProviderChecks {
            provider: kind.to_string(),
            checks: p.check().await,
        });
    }
    let failed = config_checks.iter().any(|c| c.status == CheckStatus::Fail)
        || providers
            .iter()
            .filter(|p| wanted.is_some_and(|w| w.as_str() == p.provider))
            .any(|p| p.checks.iter().any(|c| c.status == CheckStatus::Fail));
    app.out.emit(&DoctorReport {
        config: config_checks,
        providers,
    });
    if failed {
        return Err(CliError::Exit(1));
    }
    Ok(())
}

fn ok_check(name: &str, detail: String) -> Check {
    Check {
        name: name.into(),
        status: CheckStatus::Ok,
        detail,
        hint: None,
    }
}
