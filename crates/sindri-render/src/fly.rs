//! `fly.toml`: the Fly app, its image, env, the home volume, services for published
//! ports, the machine size and its main process. The Fly provider sizes machines with
//! [`guest`], names things with [`app_name`] and [`HOME_VOLUME`], and runs
//! [`init_exec`], so a deploy matches this file (`[experimental] exec` is what flyctl
//! turns into the machine's `init.exec`).

use minijinja::Value;
use sindri_core::{ResolvedSpec, Result};
use sindri_spec::{AutoStop, SecretSource, Spec};

use crate::common::{
    DEFAULT_VOLUME_GIB, Obj, host_var, require_image_or_build, seq, shell_quote, string_map,
};
use crate::escape::comment;

/// Name of the Fly volume that holds the home directory (volumes are scoped to the app).
pub const HOME_VOLUME: &str = "home";

/// The machine's main process: sleeps until told to stop, so any image with a POSIX
/// `sh` works and the machine stays up for `exec` (the same loop as the Docker
/// provider's).
pub const KEEPALIVE: &str = "trap 'exit 0' TERM INT HUP; while :; do sleep 3600 & wait $!; done";

/// Where sindri's Fly provider writes secrets on the machine (never in its config or
/// env, both readable through the API).
pub const SECRETS_DIR: &str = "/run/sindri";

/// The machine's `init.exec` (fly.toml's `[experimental] exec`): [`KEEPALIVE`] under
/// `/bin/sh`.
pub fn init_exec() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), KEEPALIVE.into()]
}

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
        for line in [
            "Secrets are not in this file, and `sindri deploy` does not store them with Fly",
            "either: once the machine runs, it writes them through the Machines API's exec",
            &format!(
                "(on stdin, never on a command line) into {SECRETS_DIR} on the machine, mode 0600:"
            ),
            &format!(
                "env-style ones as `export` lines in {SECRETS_DIR}/secrets.env, which `sindri exec`"
            ),
            &format!(
                "sources (in a shell: `. {SECRETS_DIR}/secrets.env`), `mount:` ones as files linked from"
            ),
            "their paths. A restart from stopped clears them: run `sindri deploy` again.",
            "Deploying this file with `fly deploy` instead, Fly's own secrets are the nearest",
            "thing, though Fly then keeps the values and every process sees them in its env:",
        ] {
            notes.push(comment(line));
        }
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
                "Fly's secrets are environment variables only: write `mount:` secrets to their files yourself.",
            ));
        }
    }
    for line in [
        "Machine metadata sindri.managed, sindri.environment, sindri.project, sindri.spec-hash",
        "and sindri.app-created mark a machine `sindri deploy` made; fly.toml has no place for",
        "them, so machines made by `fly deploy` are not sindri's to manage.",
    ] {
        notes.push(comment(line));
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
        .set(
            "experimental",
            Obj::new()
                .set(
                    "exec",
                    seq(init_exec().into_iter().map(Value::from).collect()),
                )
                .build(),
        )
        .build();
    Ok((doc, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExportFormat, Renderer};

    fn render(yaml: &str) -> String {
        let spec = sindri_spec::load_str(yaml, "sindri.yaml").unwrap_or_else(|d| panic!("{d}"));
        let spec = ResolvedSpec::new(spec, std::path::Path::new("/p/sindri.yaml"));
        Renderer::new(None)
            .unwrap()
            .render(ExportFormat::Fly, &spec)
            .unwrap()
            .remove(0)
            .content
    }

    #[test]
    fn the_file_runs_the_keep_alive_process_and_explains_how_secrets_travel() {
        let text = render(
            "name: s\ndeployment:\n  provider: fly\n  image: img:1\nsecrets:\n  - {name: API_TOKEN, source: env}\n  - {name: CERT, source: file, path: c.pem, mount: /etc/c.pem}\n",
        );
        let doc: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let exec: Vec<&str> = doc["experimental"]["exec"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(exec, ["/bin/sh", "-c", KEEPALIVE]);
        assert!(
            text.contains("/run/sindri/secrets.env") && text.contains("exec"),
            "deploy's mechanism is explained: {text}"
        );
        assert!(
            text.contains(
                "#   fly secrets set --app s API_TOKEN=\"$API_TOKEN\" CERT=\"$(cat c.pem)\""
            ),
            "{text}"
        );
        assert!(
            text.contains("write `mount:` secrets to their files yourself"),
            "{text}"
        );
    }
}
