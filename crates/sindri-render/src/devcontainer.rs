//! `.devcontainer/devcontainer.json`: the environment as a Dev Container.
//!
//! Paths are written relative to `.devcontainer/`, assuming the file is exported into
//! the project directory. Secrets exposed as variables become
//! `remoteEnv: {"NAME": "${localEnv:VAR}"}`, read from the machine that opens the
//! container; file secrets become bind mounts of the file (at `mount`, else at
//! `/run/secrets/NAME` as Compose does).

use minijinja::Value;
use sindri_core::{Error, ResolvedSpec, Result};
use sindri_spec::{ByteSize, SecretSource};

use crate::common::{
    HOME_VOLUME, Obj, host_var, labels, project_path, require_image_or_build, seq, string_map,
};

/// A size in the units hostRequirements takes (`tb`, `gb`, `mb`, `kb`).
fn size(b: ByteSize) -> String {
    if b.bytes() >= 1 << 30 && b.bytes().is_multiple_of(1 << 30) {
        format!("{}gb", b.bytes() >> 30)
    } else {
        format!("{}mb", b.mib_ceil())
    }
}

/// Finds `${...}`, which the Dev Containers tooling substitutes in every string value
/// and which has no escape.
fn substitution(s: &str) -> Option<&str> {
    let start = s.find("${")?;
    let end = s[start..].find('}')?;
    Some(&s[start..start + end + 1])
}

fn refuse_substitution(field: &str, value: &str) -> Result<()> {
    match substitution(value) {
        Some(found) => Err(Error::invalid(format!(
            "{field} contains `{found}`, which devcontainer.json would replace (it substitutes `${{...}}` in every value and has no escape)"
        ))
        .with_hint("remove the `${...}` from the value, or set it in the image instead")),
        None => Ok(()),
    }
}

/// A project path as a bind-mount source: relative paths are anchored at the
/// workspace folder, which the tooling substitutes.
fn workspace_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!(
            "${{localWorkspaceFolder}}/{}",
            path.strip_prefix("./").unwrap_or(path)
        )
    }
}

pub(crate) fn context(spec: &ResolvedSpec) -> Result<Value> {
    let s = &spec.spec;
    let d = &s.deployment;
    require_image_or_build(s, "devcontainer.json")?;
    for (k, v) in &d.env {
        refuse_substitution(&format!("deployment.env.{k}"), v)?;
    }
    if let Some(image) = &d.image {
        refuse_substitution("deployment.image", image)?;
    }
    refuse_substitution("deployment.home", &d.home)?;
    for v in &d.volumes {
        refuse_substitution(&format!("volume {} path", v.name), &v.path)?;
    }
    if let Some(b) = &d.build {
        refuse_substitution("deployment.build.dockerfile", &b.dockerfile)?;
        refuse_substitution("deployment.build.context", &b.context)?;
        for (k, v) in &b.args {
            refuse_substitution(&format!("deployment.build.args.{k}"), v)?;
        }
    }

    let mut dc = Obj::new().set("name", s.name.as_str());
    // The schema allows `image` or `build`, not both: a build wins, as in compose.
    dc = match (&d.build, &d.image) {
        (Some(b), _) => dc.set(
            "build",
            Obj::new()
                .set("dockerfile", project_path(&b.dockerfile, 1))
                .set("context", project_path(&b.context, 1))
                .nonempty("args", string_map(&b.args))
                .opt("target", b.target.as_deref())
                .build(),
        ),
        (None, Some(image)) => dc.set("image", image.as_str()),
        (None, None) => dc,
    };

    let mut forward: Vec<u16> = Vec::new();
    for p in &d.ports {
        if !forward.contains(&p.container) {
            forward.push(p.container);
        }
    }
    let forward: Vec<Value> = forward.into_iter().map(Value::from).collect();

    let volume = |name: &str| format!("{}-{name}", s.name);
    let mut mounts = vec![
        Obj::new()
            .set("type", "volume")
            .set("source", volume(HOME_VOLUME))
            .set("target", d.home.as_str())
            .build(),
    ];
    for v in &d.volumes {
        mounts.push(
            Obj::new()
                .set("type", "volume")
                .set("source", volume(&v.name))
                .set("target", v.path.as_str())
                .build(),
        );
    }
    let mut remote_env = Vec::new();
    for sec in &s.secrets {
        match (sec.source, &sec.mount) {
            // A file is mounted where `mount` says, else where Compose puts secrets.
            (SecretSource::File, target) => {
                let source = sec.path.as_deref().unwrap_or_default();
                let target = target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{}", sec.name));
                refuse_substitution(&format!("secret {} path", sec.name), source)?;
                refuse_substitution(&format!("secret {} mount", sec.name), &target)?;
                mounts.push(
                    Obj::new()
                        .set("type", "bind")
                        .set("source", workspace_path(source))
                        .set("target", target)
                        .build(),
                );
            }
            (_, None) => remote_env.push((
                sec.name.clone(),
                Value::from(format!("${{localEnv:{}}}", host_var(sec))),
            )),
            // A value from the environment or Vault cannot become a file through
            // devcontainer.json alone; sindri's providers write it at deploy time.
            (_, Some(_)) => {}
        }
    }

    let r = &d.resources;
    let host = Obj::new()
        .opt("cpus", r.cpus.map(|c| c.whole().max(1)))
        .opt("memory", r.memory.map(size))
        .opt("storage", r.disk.map(size))
        .opt("gpu", r.gpu.as_ref().map(|_| true))
        .build();

    let mut run_args = Vec::new();
    for (k, v) in labels(spec) {
        run_args.push(Value::from("--label"));
        run_args.push(Value::from(format!("{k}={v}")));
    }

    Ok(dc
        .nonempty("forwardPorts", seq(forward))
        .nonempty("containerEnv", string_map(&d.env))
        .nonempty("remoteEnv", remote_env.into_iter().collect())
        .set("mounts", seq(mounts))
        .nonempty("hostRequirements", host)
        .set("runArgs", seq(run_args))
        .build())
}
