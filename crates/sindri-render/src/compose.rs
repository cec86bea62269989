//! `docker-compose.yml`: one service named after the environment.
//!
//! Secrets are Compose secrets whose values Compose reads itself when the file is used
//! (`environment: VAR` or `file: path`); a secret exposed as an environment variable is
//! also set as `NAME: ${VAR:?}`, an interpolation of the same variable. Paths are
//! relative to the project directory, where the file is meant to be written.

use std::path::{Component, Path};

use minijinja::Value;
use sindri_core::{ResolvedSpec, Result};
use sindri_spec::{ByteSize, DindMode, Protocol, SecretSource};

use crate::common::{
    HOME_VOLUME, Obj, host_var, labels_value, require_image_or_build, seq, string_map,
};
use crate::escape::{ComposeVar, comment};

/// A Compose memory value: `4g`, `512m`, or bytes.
fn memory(size: ByteSize) -> String {
    let b = size.bytes();
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{}g", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{}m", b >> 20)
    } else {
        b.to_string()
    }
}

/// Compose reads `build.dockerfile` relative to the build context, sindri.yaml relative
/// to the project: the same file, seen from the context directory. When the context
/// leaves the project (`..`, an absolute path), the Dockerfile's absolute path is used.
fn dockerfile_from_context(spec: &ResolvedSpec, context: &str, dockerfile: &str) -> String {
    if Path::new(dockerfile).is_absolute() {
        return dockerfile.to_string();
    }
    let mut depth = 0;
    for c in Path::new(context).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(_) => depth += 1,
            _ => {
                let full = spec.path(dockerfile);
                return std::path::absolute(&full)
                    .unwrap_or(full)
                    .to_string_lossy()
                    .into_owned();
            }
        }
    }
    let dockerfile = dockerfile.strip_prefix("./").unwrap_or(dockerfile);
    format!("{}{dockerfile}", "../".repeat(depth))
}

pub(crate) fn context(spec: &ResolvedSpec) -> Result<(Value, Vec<Value>)> {
    let s = &spec.spec;
    let d = &s.deployment;
    require_image_or_build(s, "docker-compose.yml")?;
    let labels = labels_value(spec);
    let mut notes = Vec::new();

    let build = d.build.as_ref().map(|b| {
        Obj::new()
            .set("context", b.context.as_str())
            .set(
                "dockerfile",
                dockerfile_from_context(spec, &b.context, &b.dockerfile),
            )
            .nonempty("args", string_map(&b.args))
            .opt("target", b.target.as_deref())
            .build()
    });

    let mut environment: Vec<(String, Value)> = d
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let mut service_secrets = Vec::new();
    let mut secrets = Vec::new();
    for sec in &s.secrets {
        let source = match sec.source {
            SecretSource::File => Obj::new()
                .set("file", sec.path.as_deref().unwrap_or_default())
                .build(),
            SecretSource::Env | SecretSource::Vault => {
                Obj::new().set("environment", host_var(sec)).build()
            }
        };
        secrets.push((sec.name.clone(), source));
        service_secrets.push(
            Obj::new()
                .set("source", sec.name.as_str())
                .opt("target", sec.mount.as_deref())
                .build(),
        );
        if sec.mount.is_none() {
            match sec.source {
                SecretSource::Env | SecretSource::Vault => environment.push((
                    sec.name.clone(),
                    Value::from_object(ComposeVar {
                        var: host_var(sec).to_string(),
                        required: sec.required,
                    }),
                )),
                SecretSource::File => notes.push(comment(&format!(
                    "secret {} comes from a file: Compose mounts it at /run/secrets/{}, not as an environment variable",
                    sec.name, sec.name
                ))),
            }
        }
        if sec.source == SecretSource::Vault {
            notes.push(comment(&format!(
                "secret {} comes from Vault: export {} with its value before `docker compose up`",
                sec.name, sec.name
            )));
        }
    }
    let mut volumes = vec![
        Obj::new()
            .set("type", "volume")
            .set("source", HOME_VOLUME)
            .set("target", d.home.as_str())
            .build(),
    ];
    let mut top_volumes = vec![(
        HOME_VOLUME.to_string(),
        Obj::new().set("labels", labels.clone()).build(),
    )];
    for v in &d.volumes {
        volumes.push(
            Obj::new()
                .set("type", "volume")
                .set("source", v.name.as_str())
                .set("target", v.path.as_str())
                .build(),
        );
        top_volumes.push((
            v.name.clone(),
            Obj::new().set("labels", labels.clone()).build(),
        ));
    }

    let docker = s.providers.docker.clone().unwrap_or_default();
    let mut runtime = docker.runtime.clone();
    let mut privileged = false;
    match docker.dind {
        DindMode::None => {}
        DindMode::Socket => volumes.push(
            Obj::new()
                .set("type", "bind")
                .set("source", "/var/run/docker.sock")
                .set("target", "/var/run/docker.sock")
                .build(),
        ),
        DindMode::Privileged => privileged = true,
        DindMode::Sysbox => {
            runtime.get_or_insert_with(|| "sysbox-runc".to_string());
        }
    }

    let ports: Vec<Value> = d
        .ports
        .iter()
        .map(|p| {
            Obj::new()
                .set("target", p.container)
                .set("published", p.host.to_string())
                .set(
                    "protocol",
                    match p.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    },
                )
                .build()
        })
        .collect();
    let r = &d.resources;
    let mut limits = Obj::new();
    if let Some(c) = r.cpus {
        limits = limits.set("cpus", c.to_string());
    }
    if let Some(m) = r.memory {
        limits = limits.set("memory", memory(m));
    }
    let reservations = r.gpu.as_ref().map(|g| {
        Obj::new()
            .set(
                "devices",
                seq(vec![
                    Obj::new()
                        .set("driver", "nvidia")
                        .set("count", g.count)
                        .set("capabilities", seq(vec![Value::from("gpu")]))
                        .build(),
                ]),
            )
            .build()
    });
    let resources = Obj::new()
        .nonempty("limits", limits.build())
        .opt("reservations", reservations)
        .build();

    let networks = docker
        .network
        .as_ref()
        .map(|n| seq(vec![Value::from(n.as_str())]));
    let service = Obj::new()
        .opt("image", d.image.as_deref())
        .opt("build", build)
        .set("stdin_open", true)
        .set("tty", true)
        .set("labels", labels.clone())
        .nonempty("environment", environment.into_iter().collect())
        .nonempty("ports", seq(ports))
        .set("volumes", seq(volumes))
        .nonempty("secrets", seq(service_secrets))
        .opt("runtime", runtime)
        .opt("privileged", privileged.then_some(true))
        .opt("networks", networks)
        .nonempty(
            "deploy",
            Obj::new().nonempty("resources", resources).build(),
        )
        .build();

    let top_networks = docker.network.as_ref().map(|n| {
        [(n.clone(), Obj::new().set("external", true).build())]
            .into_iter()
            .collect::<Value>()
    });
    let doc = Obj::new()
        .set("name", s.name.as_str())
        .set(
            "services",
            [(s.name.clone(), service)].into_iter().collect::<Value>(),
        )
        .set("volumes", top_volumes.into_iter().collect::<Value>())
        .nonempty("secrets", secrets.into_iter().collect())
        .opt("networks", top_networks)
        .build();
    Ok((doc, notes))
}
