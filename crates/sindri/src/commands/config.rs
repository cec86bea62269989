//! `sindri config init|schema|validate|show`.

use serde::Serialize;
use sindri_core::Error;

use crate::app::App;
use crate::cli::{ConfigCommand, InitArgs};
use crate::output::{CliResult, Report};

/// Where `config init` puts the schema the starter's modeline points at.
const SCHEMA_PATH: &str = ".sindri/sindri.schema.json";

pub async fn run(app: &App, cmd: ConfigCommand) -> CliResult {
    match cmd {
        ConfigCommand::Init(a) => init(app, a),
        ConfigCommand::Schema => {
            // The schema is JSON already; both output formats print it as is.
            println!("{}", sindri_spec::schema_string());
            Ok(())
        }
        ConfigCommand::Validate => validate(app),
        ConfigCommand::Show => show(app),
    }
}

#[derive(Serialize)]
struct InitReport {
    config: String,
    schema: String,
    provider: String,
}

impl Report for InitReport {
    fn human(&self) -> String {
        format!(
            "wrote {} for {} (schema for editors: {})\nnext: edit it, then `sindri plan` and `sindri deploy`",
            self.config, self.provider, self.schema
        )
    }
}

fn init(app: &App, args: InitArgs) -> CliResult {
    let path = &app.global.config;
    if path.exists() && !args.force {
        return Err(Error::invalid(format!("{} already exists", path.display()))
            .with_hint("pass --force to overwrite it")
            .into());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = match args.name {
        Some(n) => n,
        None => {
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            dns_label(abs.file_name().and_then(|n| n.to_str()).unwrap_or(""))
        }
    };
    // The starter names its environment `my-env`; put the real name in its place and let
    // validation judge a name given with --name like any other.
    let starter = sindri_spec::starter(args.provider).replacen(
        "\nname: my-env\n",
        &format!("\nname: {name}\n"),
        1,
    );
    if let Err(d) = sindri_spec::load_str(&starter, &path.display().to_string()) {
        return Err(d.into());
    }
    // Only now, with the content known good, write anything.
    let schema_path = dir.join(SCHEMA_PATH);
    if let Some(parent) = schema_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&schema_path, sindri_spec::schema_string())?;
    std::fs::write(path, starter)?;
    app.out.emit(&InitReport {
        config: path.display().to_string(),
        schema: schema_path.display().to_string(),
        provider: args.provider.to_string(),
    });
    Ok(())
}

/// Makes a directory name a DNS label: lowercase, `-` for anything else, starting with a
/// letter, at most 63 characters; `dev` when nothing usable is left.
fn dns_label(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut s: String = s.chars().take(63).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "dev".to_string() } else { s }
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_names_become_dns_labels() {
        assert_eq!(super::dns_label("My_Project"), "my-project");
        assert_eq!(super::dns_label("2024 experiments!"), "experiments");
        assert_eq!(super::dns_label("___"), "dev");
        assert_eq!(super::dns_label(&"a".repeat(80)).len(), 63);
    }
}

#[derive(Serialize)]
struct ValidateReport {
    valid: bool,
    config: String,
    environment: String,
    provider: String,
}

impl Report for ValidateReport {
    fn human(&self) -> String {
        format!(
            "{} is valid: environment `{}` on {}",
            self.config, self.environment, self.provider
        )
    }
}

fn validate(app: &App) -> CliResult {
    let spec = app.load()?;
    // What `deploy` would refuse about the extensions (unknown names, cycles,
    // conflicts, unmet requirements) is a problem of this file too.
    let rs = app.identify(spec.clone());
    super::extension::check_before_deploy(&rs)?;
    app.out.emit(&ValidateReport {
        valid: true,
        config: app.global.config.display().to_string(),
        environment: spec.name.clone(),
        provider: spec.deployment.provider.to_string(),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(transparent)]
struct ShowReport(sindri_spec::Spec);

impl Report for ShowReport {
    fn human(&self) -> String {
        serde_yaml::to_string(&self.0).unwrap_or_default()
    }
}

/// The spec holds only references to secrets (env var names, paths, vault paths),
/// never values, so showing it reveals nothing secret.
fn show(app: &App) -> CliResult {
    let spec = app.load()?;
    app.out.emit(&ShowReport(spec));
    Ok(())
}
