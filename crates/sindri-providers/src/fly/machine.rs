//! The machine sindri creates for a spec, and how commands run on it.
//!
//! Sizes, names, autostop and the main process come from `sindri_render::fly` so a
//! deployed machine matches the `fly.toml` that `sindri export fly` writes.

use serde_json::{Map, Value, json};
use sindri_core::{Error, ExecCommand, ResolvedSecret, ResolvedSpec, Result};
use sindri_render::fly::{SECRETS_DIR, auto_stop_value, guest, init_exec};
use sindri_spec::{AutoStop, ProviderKind};

use super::api::{META_APP_CREATED, META_SPEC_HASH};

/// Where secrets are written on the machine (never in its config or env).
pub const DEFAULT_SECRETS_DIR: &str = SECRETS_DIR;

/// The script every exec runs: sources the secrets in `secrets_dir`, changes to `$1`
/// (when not empty), exports each `NAME=value` up to `--`, then runs the rest.
fn exec_prelude(secrets_dir: &str) -> String {
    let env = shell_quote(&format!(
        "{}/secrets.env",
        secrets_dir.trim_end_matches('/')
    ));
    format!(
        "[ -r {env} ] && . {env}; \
if [ -n \"$1\" ]; then cd \"$1\" || exit 126; fi; shift; \
while [ \"$#\" -gt 0 ] && [ \"$1\" != \"--\" ]; do export \"$1\"; shift; done; shift; exec \"$@\""
    )
}

/// The ownership labels plus the spec hash, as machine metadata.
pub fn metadata(spec: &ResolvedSpec, app_created: bool) -> Map<String, Value> {
    let mut m: Map<String, Value> = sindri_render::labels(spec)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    m.insert(META_SPEC_HASH.into(), Value::String(spec.spec_hash()));
    if app_created {
        m.insert(META_APP_CREATED.into(), Value::String("true".into()));
    }
    m
}

/// The `config` of the machine for `spec`, mounting `volume_id` at home.
pub fn config(spec: &ResolvedSpec, volume_id: &str, app_created: bool) -> Result<Value> {
    let s = &spec.spec;
    let d = &s.deployment;
    let image = d.image.as_deref().ok_or_else(|| {
        Error::invalid("the fly provider needs deployment.image: Fly machines run an image from a registry")
            .with_provider(ProviderKind::Fly)
            .with_hint("push the image to a registry (e.g. `fly deploy --build-only --push`) and set deployment.image")
    })?;
    let settings = s.providers.fly.clone().unwrap_or_default();
    let g = guest(s);
    let mut guest_v = json!({
        "cpu_kind": g.cpu_kind,
        "cpus": g.cpus,
        "memory_mb": g.memory_mb,
    });
    if let Some(kind) = &g.gpu_kind {
        guest_v["gpu_kind"] = json!(kind);
    }
    if let Some(n) = g.gpus {
        guest_v["gpus"] = json!(n);
    }
    let services: Vec<Value> = d
        .ports
        .iter()
        .map(|p| {
            json!({
                "protocol": p.protocol.as_str(),
                "internal_port": p.container,
                "ports": [{"port": p.host}],
                "autostop": auto_stop_value(settings.auto_stop),
                "autostart": settings.auto_stop != AutoStop::Off,
                "min_machines_running": 0,
            })
        })
        .collect();
    let mut config = json!({
        "image": image,
        "guest": guest_v,
        "env": d.env,
        "mounts": [{"volume": volume_id, "path": d.home}],
        "metadata": metadata(spec, app_created),
        "init": {"exec": init_exec()},
    });
    if !services.is_empty() {
        config["services"] = Value::Array(services);
    }
    Ok(config)
}

/// The argument vector that runs `cmd` on the machine with its env and working
/// directory, after sourcing the secrets delivered to `secrets_dir`.
pub fn exec_argv(cmd: &ExecCommand, secrets_dir: &str) -> Result<Vec<String>> {
    if let Some(user) = &cmd.user {
        return Err(Error::invalid(format!(
            "the fly provider cannot run a command as `{user}`: the Machines API runs commands as the image's user"
        ))
        .with_provider(ProviderKind::Fly)
        .with_hint("leave out the user, or run `su` inside the command"));
    }
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        exec_prelude(secrets_dir),
        "sindri-exec".to_string(),
        cmd.workdir.clone().unwrap_or_default(),
    ];
    for (k, v) in &cmd.env {
        if !is_env_name(k) {
            return Err(
                Error::invalid(format!("`{k}` is not a valid environment variable name"))
                    .with_provider(ProviderKind::Fly),
            );
        }
        argv.push(format!("{k}={v}"));
    }
    argv.push("--".to_string());
    argv.extend(cmd.argv.iter().cloned());
    Ok(argv)
}

fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Single-quotes a value for `sh`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `secrets.env`: one `export` per env-style secret.
pub fn secrets_env(secrets: &[ResolvedSecret]) -> String {
    secrets
        .iter()
        .filter(|s| s.mount.is_none())
        .map(|s| format!("export {}={}\n", s.name, shell_quote(s.value.expose())))
        .collect()
}

/// Writes stdin to `$1` (mode 0600, atomically) and, when `$2` is given, links `$2`
/// to it (creating `$2`'s directory). Its errors never echo stdin.
pub const WRITE_SECRET: &str = "umask 077 && mkdir -p \"${1%/*}\" && cat > \"$1.tmp\" && mv -f \"$1.tmp\" \"$1\" \
&& if [ -n \"$2\" ]; then mkdir -p \"${2%/*}\" && ln -sfn \"$1\" \"$2\"; fi";

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_core::SecretValue;

    #[test]
    fn exec_argv_carries_workdir_env_and_argv_in_order() {
        let mut c = ExecCommand::new(["echo", "a b"]);
        c.env = vec![("X".into(), "v w".into())];
        c.workdir = Some("/tmp".into());
        let a = exec_argv(&c, DEFAULT_SECRETS_DIR).unwrap();
        assert_eq!(
            &a[3..],
            ["sindri-exec", "/tmp", "X=v w", "--", "echo", "a b"]
        );
        c.env = vec![("1X".into(), "v".into())];
        assert!(exec_argv(&c, DEFAULT_SECRETS_DIR).is_err());
        let mut u = ExecCommand::new(["id"]);
        u.user = Some("bob".into());
        assert!(exec_argv(&u, DEFAULT_SECRETS_DIR).is_err());
    }

    #[test]
    fn secrets_env_quotes_values_and_skips_mounted_ones() {
        let s = vec![
            ResolvedSecret {
                name: "A".into(),
                value: SecretValue::new("it's"),
                mount: None,
            },
            ResolvedSecret {
                name: "B".into(),
                value: SecretValue::new("f"),
                mount: Some("/x".into()),
            },
        ];
        assert_eq!(secrets_env(&s), "export A='it'\\''s'\n");
    }

    #[test]
    fn the_prelude_runs_commands_with_env_and_workdir() {
        let mut c = ExecCommand::shell("echo \"$V\"; pwd");
        c.env = vec![("V".into(), "x y".into())];
        c.workdir = Some("/".into());
        let argv = exec_argv(&c, DEFAULT_SECRETS_DIR).unwrap();
        let out = std::process::Command::new("sh")
            .args(&argv[1..])
            .output()
            .expect("run sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x y\n/\n");
    }
}
