//! `sindri export FORMAT -o DIR`.

use serde::Serialize;
use sindri_core::Error;
use sindri_render::{ExportFormat, Renderer};

use crate::app::App;
use crate::cli::ExportArgs;
use crate::output::{CliResult, Report};

#[derive(Serialize)]
struct ExportReport {
    format: String,
    files: Vec<String>,
}

impl Report for ExportReport {
    fn human(&self) -> String {
        let mut s = format!("wrote {} file(s) for {}:\n", self.files.len(), self.format);
        for f in &self.files {
            s.push_str(&format!("  {f}\n"));
        }
        s
    }
}

/// Renders and writes. Secret values are never read: exports carry references only.
pub async fn export(app: &App, args: ExportArgs) -> CliResult {
    let format: ExportFormat = args.format.parse().map_err(|e: String| {
        Error::invalid(e).with_hint("formats: compose, kubernetes, fly, e2b, devcontainer")
    })?;
    let spec = app.load()?;
    let rs = app.identify(spec);
    let overrides = rs.base_dir.join(".sindri").join("templates");
    let renderer = Renderer::new(Some(&overrides))?;
    let artifacts = renderer.render(format, &rs)?;
    // Check every target first so a refusal writes nothing.
    let targets: Vec<_> = artifacts.iter().map(|a| args.out.join(&a.name)).collect();
    if !args.force {
        let existing: Vec<String> = targets
            .iter()
            .filter(|t| t.exists())
            .map(|t| t.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(
                Error::invalid(format!("would overwrite {}", existing.join(", ")))
                    .with_hint("pass --force to overwrite, or choose another -o DIR")
                    .into(),
            );
        }
    }
    for (a, target) in artifacts.iter().zip(&targets) {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, &a.content)?;
    }
    app.out.emit(&ExportReport {
        format: format.to_string(),
        files: targets.iter().map(|t| t.display().to_string()).collect(),
    });
    Ok(())
}
