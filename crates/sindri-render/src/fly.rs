//! `fly.toml`: the Fly app, its image, env, the home volume, services for published
//! ports and the machine size. The Fly provider sizes machines with [`guest`] and names
//! things with [`app_name`] and [`HOME_VOLUME`], so a deploy matches this file.

use minijinja::Value;
use sindri_core::{ResolvedSpec, Result};
use sindri_spec::{AutoStop, SecretSource, Spec};

use crate::common::{
    DEFAULT_VOLUME_GIB, Obj, host_var, require_image_or_build, seq, shell_quote, string_map,
};
use crate::escape::comment;

/// Name of the Fly volume that holds the home directory (volumes are scoped to the app).
pub const HOME_VOLUME: &str = "home";

/// GPU kind used when the spec asks for GPUs without naming a model.
pub const DEFAULT_GPU_KIND: &str = "a10";

/// A Fly machine size, as `[[vm]]` in fly.toml and `guest` in the Machines API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlyGuest {
    /// `shared` or `performance`.
    pub cpu_kind: String,
    /// CPU count.
    pub cpus: u32,
    /// Memory in MiB, a multiple of 256 as Fly requires.
    pub memory_mb: u64,
    /// GPU model in Fly's naming (`a10`, `l40s`, `a100-pcie-40gb`, `a100-sxm4-80gb`).
    pub gpu_kind: Option<String>,
    /// GPU count.
    pub gpus: Option<u32>,
}

/// The Fly app name: `providers.fly.app`, else the environment name.
pub fn app_name(spec: &Spec) -> String {
    spec.providers
        .fly
        .as_ref()
        .and_then(|f| f.app.clone())
        .unwrap_or_else(|| spec.name.clone())
}

/// Maps a GPU model as written in sindri.yaml onto Fly's `gpu_kind`; unknown names are
/// passed through for Fly to judge.
pub fn gpu_kind(model: Option<&str>) -> String {
    let Some(model) = model else {
        return DEFAULT_GPU_KIND.to_string();
    };
    match model.to_ascii_lowercase().as_str() {
        "a100" | "a100-40gb" | "a100-pcie" => "a100-pcie-40gb".to_string(),
        "a100-80gb" | "a100-sxm4" => "a100-sxm4-80gb".to_string(),
        "l40s" => "l40s".to_string(),
        "a10" => "a10".to_string(),
        _ => model.to_string(),
    }
}

/// The machine size for a spec. CPUs default to 1 (8 with a GPU), the CPU kind to
/// `shared` (`performance` with a GPU), memory to 1024 MiB per shared CPU or 2048 MiB
/// per performance CPU; requested memory is rounded up to a multiple of 256 MiB.
pub fn guest(spec: &Spec) -> FlyGuest {
    let r = &spec.deployment.resources;
    let settings = spec.providers.fly.clone().unwrap_or_default();
    let gpu = r.gpu.as_ref();
    let cpu_kind = settings.cpu_kind.clone().unwrap_or_else(|| {
        if gpu.is_some() {
            "performance"
        } else {
            "shared"
        }
        .to_string()
    });
    let cpus = r
        .cpus
        .map(|c| c.whole().max(1))
        .unwrap_or(if gpu.is_some() { 8 } else { 1 });
    let memory_mb = match r.memory {
        Some(m) => m.mib_ceil().div_ceil(256).max(1) * 256,
        None if cpu_kind == "performance" => 2048 * u64::from(cpus),
        None => 1024,
    };
    FlyGuest {
        cpu_kind,
        cpus,
        memory_mb,
        gpu_kind: gpu.map(|g| gpu_kind(g.kind.as_deref())),
        gpus: gpu.map(|g| g.count),
    }
}

/// The value of `auto_stop_machines` (and the Machines API's `services[].autostop`).
pub fn auto_stop_value(a: AutoStop) -> &'static str {
    match a {
        AutoStop::Off => "off",
        AutoStop::Stop => "stop",
        AutoStop::Suspend => "suspend",
    }
}

pub(crate) fn context(spec: &ResolvedSpec) -> Result<(Value, Vec<Value>)> {
    let s = &spec.spec;
    let d = &s.deployment;
    require_image_or_build(s, "fly.toml")?;
    let settings = s.providers.fly.clone().unwrap_or_default();
    let app = app_name(s);
    let mut notes = Vec::new();

    let build = match (&d.image, &d.build) {
        (Some(image), _) => Obj::new().set("image", image.as_str()).build(),
        (None, Some(b)) => {
            if b.context != "." {
                notes.push(comment(&format!(
                    "The build context is {}: run `fly deploy {}`.",
                    b.context,
                    shell_quote(&b.context)
                )));
            }
            Obj::new()
                .set("dockerfile", b.dockerfile.as_str())
                .opt("build-target", b.target.as_deref())
                .nonempty("args", string_map(&b.args))
                .build()
        }
        (None, None) => Value::from(()),
    };

    let mounts = seq(vec![
        Obj::new()
            .set("source", HOME_VOLUME)
            .set("destination", d.home.as_str())
            .set(
                "initial_size",
                format!(
                    "{}gb",
                    d.resources
                        .disk
                        .map(|b| b.gib_ceil().max(1))
                        .unwrap_or(DEFAULT_VOLUME_GIB)
                ),
            )
            .build(),
    ]);
    for v in &d.volumes {
        notes.push(comment(&format!(
            "Fly machines mount one volume: volume {} at {} is not part of this file.",
            v.name, v.path
        )));
    }

    let auto_stop = auto_stop_value(settings.auto_stop);
    let services: Vec<Value> = d
        .ports
        .iter()
        .map(|p| {
            Obj::new()
                .set("internal_port", p.container)
                .set("protocol", p.protocol.as_str())
                .set("auto_stop_machines", auto_stop)
                .set("auto_start_machines", settings.auto_stop != AutoStop::Off)
                .set("min_machines_running", 0)
                .set("ports", seq(vec![Obj::new().set("port", p.host).build()]))
                .build()
        })
        .collect();

    let g = guest(s);
    let vm = Obj::new()
        .set("cpu_kind", g.cpu_kind.as_str())
        .set("cpus", g.cpus)
        .set("memory_mb", g.memory_mb)
        .opt("gpu_kind", g.gpu_kind.clone())
        .opt("gpus", g.gpus)
        .build();

    if !s.secrets.is_empty() {
        notes.push(comment(
            "Secrets are not in this file (values are never written here). Set them with:",
        ));
        let mut cmd = format!("  fly secrets set --app {}", shell_quote(&app));
        for sec in &s.secrets {
            let value = match sec.source {
                SecretSource::File => format!(
                    "\"$(cat {})\"",
                    shell_quote(sec.path.as_deref().unwrap_or_default())
                ),
                SecretSource::Env | SecretSource::Vault => format!("\"${}\"", host_var(sec)),
            };
            cmd.push_str(&format!(" {}={value}", sec.name));
        }
        notes.push(comment(&cmd));
        if s.secrets.iter().any(|x| x.mount.is_some()) {
            notes.push(comment(
                "Fly exposes secrets as environment variables; secrets with `mount` are written to files by sindri's Fly provider.",
            ));
        }
    }

    let doc = Obj::new()
        .set("app", app.as_str())
        .opt(
            "primary_region",
            settings.regions.first().map(String::as_str),
        )
        .set("build", build)
        .nonempty("env", string_map(&d.env))
        .set("mounts", mounts)
        .nonempty("services", seq(services))
        .set("vm", seq(vec![vm]))
        .build();
    Ok((doc, notes))
}
