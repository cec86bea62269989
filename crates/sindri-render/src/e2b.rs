//! `e2b.toml` and `e2b.Dockerfile`: an E2B sandbox template, built with
//! `e2b template build` from the directory holding both files.
//!
//! With `deployment.image` the Dockerfile is `FROM <image>`; with `deployment.build` it
//! is the project's own Dockerfile, copied as is (E2B builds from the directory holding
//! e2b.toml, so the context must be that directory).

use minijinja::Value;
use sindri_core::{Error, ResolvedSpec, Result};

use crate::common::{Obj, require_image_or_build};
use crate::escape::comment;

/// The name of the Dockerfile e2b.toml points at.
pub const DOCKERFILE: &str = "e2b.Dockerfile";

/// True when `image` can follow `FROM` unchanged: the characters of an image reference
/// (name, `:tag`, `@digest`), nothing a Dockerfile would expand or split.
fn is_image_reference(image: &str) -> bool {
    !image.is_empty()
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

pub(crate) fn context(spec: &ResolvedSpec) -> Result<Obj> {
    let s = &spec.spec;
    let d = &s.deployment;
    require_image_or_build(s, "e2b.toml")?;
    let settings = s.providers.e2b.clone().unwrap_or_default();
    let mut notes = Vec::new();

    let mut ctx = Obj::new();
    match (&d.image, &d.build) {
        (Some(image), _) => {
            if !is_image_reference(image) {
                return Err(Error::invalid(format!(
                    "deployment.image {image:?} is not an image reference, so it cannot be written after FROM in e2b.Dockerfile"
                ))
                .with_hint("use a reference such as `ubuntu:24.04` or `ghcr.io/org/image@sha256:...`"));
            }
            ctx = ctx.set("base_image", image.as_str());
        }
        (None, Some(b)) => {
            let path = spec.path(&b.dockerfile);
            let content = std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid(format!(
                    "cannot read deployment.build.dockerfile `{}` for e2b.Dockerfile: {e}",
                    path.display()
                ))
                .with_hint("e2b.Dockerfile is a copy of the project's Dockerfile; check the path in sindri.yaml")
            })?;
            // The user's own Dockerfile: already in the target syntax, written as is.
            ctx = ctx.set("dockerfile", Value::from_safe_string(content));
            if !b.args.is_empty() {
                notes.push(comment(
                    "E2B builds take no build arguments: give the ARGs in e2b.Dockerfile default values.",
                ));
            }
            if b.context != "." {
                notes.push(comment(&format!(
                    "E2B builds from this directory; deployment.build.context {} is not used.",
                    b.context
                )));
            }
        }
        (None, None) => {}
    }
    if !d.env.is_empty() || !s.secrets.is_empty() {
        notes.push(comment(
            "Environment variables and secrets are passed when a sandbox is created, not baked into the template.",
        ));
    }

    let r = &d.resources;
    let doc = Obj::new()
        .set(
            "template_name",
            settings.template.as_deref().unwrap_or(s.name.as_str()),
        )
        .set("dockerfile", DOCKERFILE)
        .opt("cpu_count", r.cpus.map(|c| c.whole().max(1)))
        // E2B takes an even number of MiB.
        .opt("memory_mb", r.memory.map(|m| m.mib_ceil().div_ceil(2) * 2))
        .build();
    Ok(ctx.set("e2b", doc).set("notes", Value::from(notes)))
}
