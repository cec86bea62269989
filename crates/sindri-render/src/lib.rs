//! The platform files rendered from a spec: `docker-compose.yml`, `kubernetes.yaml`,
//! `fly.toml`, `e2b.toml` + `e2b.Dockerfile` and `.devcontainer/devcontainer.json`.
//!
//! `sindri plan` shows them and `sindri export FORMAT -o DIR` writes them; providers
//! apply the same content (the Kubernetes provider applies [`kubernetes::objects`], the
//! Fly provider sizes machines with [`fly::guest`]).
//!
//! # Templates
//! Each file comes from a MiniJinja template embedded in the binary and named after the
//! file (`docker-compose.yml`, `kubernetes.yaml`, `fly.toml`, `e2b.toml`,
//! `e2b.Dockerfile`, `devcontainer.json`). A file of the same name in the project's
//! `.sindri/templates/` replaces it. The document itself is built as a typed value in
//! Rust and the templates stay thin: a header comment and `{{ doc | document }}`.
//!
//! # Escaping
//! Template authors never escape anything. The template's file extension selects the
//! syntax (`yaml`/`yml`, `toml`, `json`, `Dockerfile`) through MiniJinja's auto-escape
//! callback, and a custom formatter writes every printed value as a valid value of that
//! syntax: `{{ x }}` prints a quoted string, a number, or a one-line flow/inline
//! collection, so no value can break the file's structure. In a compose file every `$`
//! in a value is written `$$` (Compose interpolates values). Kubernetes expands
//! `$(VAR)` in env values only, so those are escaped where they are built; the
//! `objects` variable of `kubernetes.yaml` already holds them escaped.
//!
//! # Template context
//! Every template sees `name`, `project`, `format`, `labels` (the ownership labels),
//! `spec` (sindri.yaml as loaded), `secrets` (name, source, var, path, key, mount,
//! required of each secret: references only, never a value) and `notes` (comment lines,
//! already safe to print after `# `). Then per template: `compose`; `objects` (the
//! Kubernetes objects, in order); `fly`; `e2b` plus, for `e2b.Dockerfile`, either
//! `base_image` or `dockerfile` (the project's Dockerfile text); `devcontainer`.
//!
//! # Secrets
//! Secret values are never rendered: the renderer reads only the spec's secret
//! references, never [`ResolvedSpec::secrets`].

mod common;
mod compose;
mod devcontainer;
pub mod e2b;
mod escape;
pub mod fly;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use minijinja::{Environment, UndefinedBehavior, Value};
use sindri_core::{Error, RenderedArtifact, ResolvedSpec, Result};
use sindri_spec::ProviderKind;

pub use common::{
    DEFAULT_VOLUME_GIB, HOME_VOLUME, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, built_image,
    image_ref, labels,
};

use crate::common::Obj;

/// A platform format sindri can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportFormat {
    /// `docker-compose.yml`.
    Compose,
    /// `kubernetes.yaml`: a StatefulSet and, with ports, a Service.
    Kubernetes,
    /// `fly.toml`.
    Fly,
    /// `e2b.toml` and `e2b.Dockerfile`.
    E2b,
    /// `.devcontainer/devcontainer.json`.
    Devcontainer,
}

impl ExportFormat {
    /// Every format, in the order they are documented.
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Compose,
        ExportFormat::Kubernetes,
        ExportFormat::Fly,
        ExportFormat::E2b,
        ExportFormat::Devcontainer,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Compose => "compose",
            ExportFormat::Kubernetes => "kubernetes",
            ExportFormat::Fly => "fly",
            ExportFormat::E2b => "e2b",
            ExportFormat::Devcontainer => "devcontainer",
        }
    }

    /// The files this format renders: (template name, path of the written file,
    /// relative to the export directory).
    pub fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            ExportFormat::Compose => &[("docker-compose.yml", "docker-compose.yml")],
            ExportFormat::Kubernetes => &[("kubernetes.yaml", "kubernetes.yaml")],
            ExportFormat::Fly => &[("fly.toml", "fly.toml")],
            ExportFormat::E2b => &[
                ("e2b.toml", "e2b.toml"),
                ("e2b.Dockerfile", "e2b.Dockerfile"),
            ],
            ExportFormat::Devcontainer => {
                &[("devcontainer.json", ".devcontainer/devcontainer.json")]
            }
        }
    }

    /// The format a provider deploys, for `sindri plan` to show.
    pub fn for_provider(kind: ProviderKind) -> Option<ExportFormat> {
        match kind {
            ProviderKind::Docker => Some(ExportFormat::Compose),
            ProviderKind::Kubernetes => Some(ExportFormat::Kubernetes),
            ProviderKind::Fly => Some(ExportFormat::Fly),
            ProviderKind::E2b => Some(ExportFormat::E2b),
            ProviderKind::Devpod => Some(ExportFormat::Devcontainer),
            _ => None,
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.as_str()).collect();
                format!(
                    "unknown export format `{s}`; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// The embedded templates, by name.
const TEMPLATES: [(&str, &str); 6] = [
    (
        "docker-compose.yml",
        include_str!("../templates/docker-compose.yml"),
    ),
    (
        "kubernetes.yaml",
        include_str!("../templates/kubernetes.yaml"),
    ),
    ("fly.toml", include_str!("../templates/fly.toml")),
    ("e2b.toml", include_str!("../templates/e2b.toml")),
    (
        "e2b.Dockerfile",
        include_str!("../templates/e2b.Dockerfile"),
    ),
    (
        "devcontainer.json",
        include_str!("../templates/devcontainer.json"),
    ),
];

/// The built-in template of that name, e.g. for a user to copy into
/// `.sindri/templates/` and edit.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The names of all templates, which are also the file names an override must have.
pub fn template_names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|(n, _)| *n)
}

/// Renders platform files from a spec with the embedded templates, or the project's
/// overrides of them.
pub struct Renderer {
    env: Environment<'static>,
    overrides: BTreeMap<&'static str, PathBuf>,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Loads the templates. `override_dir` is the project's template directory
    /// (normally `<project>/.sindri/templates`); a file there named like a template
    /// replaces it. A missing directory means no overrides. Fails on a file there that
    /// is not a template's name, and on a template that does not parse (naming the file
    /// and line).
    pub fn new(override_dir: Option<&Path>) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(escape::auto_escape);
        env.set_formatter(escape::formatter);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("document", escape::document_filter);

        let overrides = match override_dir {
            Some(dir) => read_overrides(dir)?,
            None => BTreeMap::new(),
        };
        let mut loaded = BTreeMap::new();
        for (name, embedded) in TEMPLATES {
            let source = match overrides.get(name) {
                Some((path, text)) => {
                    loaded.insert(name, path.clone());
                    text.clone()
                }
                None => embedded.to_string(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| template_error(&e, name, loaded.get(name), "parse"))?;
        }
        Ok(Renderer {
            env,
            overrides: loaded,
        })
    }

    /// The templates replaced by the project, with the files they came from.
    pub fn overrides(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.overrides.iter().map(|(n, p)| (*n, p.as_path()))
    }

    /// Renders the files of `format` for `spec`. Secret values are never read.
    pub fn render(
        &self,
        format: ExportFormat,
        spec: &ResolvedSpec,
    ) -> Result<Vec<RenderedArtifact>> {
        common::validate(&spec.spec)?;
        let base = Obj::new()
            .set("name", spec.name())
            .set("project", spec.project.as_str())
            .set("format", format.as_str())
            .set("labels", common::labels_value(spec))
            .set("spec", Value::from_serialize(&spec.spec))
            .set("secrets", common::secrets_value(&spec.spec));
        let ctx = match format {
            ExportFormat::Compose => {
                let (doc, notes) = compose::context(spec)?;
                base.set("compose", doc).set("notes", Value::from(notes))
            }
            ExportFormat::Kubernetes => base
                .set("objects", Value::from(kubernetes::objects_value(spec)?))
                .set("notes", Value::from(kubernetes::notes(spec))),
            ExportFormat::Fly => {
                let (doc, notes) = fly::context(spec)?;
                base.set("fly", doc).set("notes", Value::from(notes))
            }
            ExportFormat::E2b => {
                let extra = e2b::context(spec)?;
                let mut merged = base;
                merged.extend(extra);
                merged
            }
            ExportFormat::Devcontainer => base
                .set("devcontainer", devcontainer::context(spec)?)
                .set("notes", Value::from(Vec::<Value>::new())),
        }
        .build();

        format
            .files()
            .iter()
            .map(|(template, file)| {
                let content = self
                    .env
                    .get_template(template)
                    .and_then(|t| t.render(&ctx))
                    .map_err(|e| {
                        template_error(&e, template, self.overrides.get(template), "render")
                    })?;
                Ok(RenderedArtifact {
                    name: (*file).to_string(),
                    content,
                })
            })
            .collect()
    }
}

/// Reads `dir`'s override templates: (template name → (path, text)).
fn read_overrides(dir: &Path) -> Result<BTreeMap<&'static str, (PathBuf, String)>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(Error::invalid(format!(
                "cannot read the template directory {}: {e}",
                dir.display()
            ))
            .with_source(e));
        }
    };
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::internal(format!(
                "cannot read the template directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = entry.path();
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with('.') {
            continue;
        }
        let Some(name) = template_names().find(|n| *n == file_name) else {
            let names: Vec<&str> = template_names().collect();
            return Err(Error::invalid(format!(
                "{} is not the name of a sindri template",
                path.display()
            ))
            .with_hint(format!(
                "templates in {} must be named one of: {}",
                dir.display(),
                names.join(", ")
            )));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the override template {}: {e}",
                path.display()
            ))
        })?;
        out.insert(name, (path, text));
    }
    Ok(out)
}

/// A template failure as a sindri error naming the file and line.
fn template_error(
    e: &minijinja::Error,
    template: &str,
    override_path: Option<&PathBuf>,
    stage: &str,
) -> Error {
    let detail = e.detail().map(str::to_string).unwrap_or_default();
    let what = if detail.is_empty() {
        e.kind().to_string()
    } else {
        format!("{}: {detail}", e.kind())
    };
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    match override_path {
        Some(path) => Error::invalid(format!(
            "cannot {stage} the override template {}{line}: {what}",
            path.display()
        ))
        .with_hint("fix the template, or delete it to use sindri's built-in one"),
        // A built-in template that does not parse is a bug; one that cannot render
        // a spec's value (a line break in a Dockerfile word) is the input's fault.
        None if stage == "parse" => Error::internal(format!(
            "cannot parse the built-in template {template}{line}: {what}"
        )),
        None => Error::invalid(format!(
            "cannot render {template} (built-in template{line}): {what}"
        )),
    }
}
