//! Getting secrets into a running container without writing them to the host's disk.
//!
//! The container has a tmpfs (RAM) at `/run/sindri`, mode 0700. After every start,
//! sindri writes into it through `exec` with the value on the exec's **stdin**: never in
//! an exec's command line or environment, a label, the create request, or a file on the
//! host. Then:
//! - env-style secrets are `export NAME='value'` lines in `/run/sindri/secrets.env`,
//!   which every `exec` and `connect` sources (see `session::PRELUDE`);
//! - `mount:` secrets are files `/run/sindri/files/NAME`, and the requested path is a
//!   symlink to that file (its parent directories are created). The symlink lives in
//!   the container's writable layer but holds only the tmpfs path, never the value.
//! - `/run/sindri/delivered` marks a complete delivery; a stopped container loses the
//!   tmpfs, so `deploy` re-delivers whenever the marker is missing.
//!
//! When the image runs as a non-root user, the tmpfs is handed to that user first, so
//! its commands can read their secrets and nobody else's can.

use bollard::Docker;
use sindri_core::{Error, ErrorKind, ResolvedSecret, Result};
use sindri_spec::ProviderKind;

use super::request::SECRETS_DIR;
use super::session::{ExecRequest, capture};

/// Written last; its presence means every secret is in place.
pub(crate) const DELIVERED_MARKER: &str = "/run/sindri/delivered";

/// Single-quotes a value for `sh`: every byte but `'` stands for itself inside quotes.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The content of `secrets.env`: one `export` per env-style secret.
pub(crate) fn env_file(secrets: &[ResolvedSecret]) -> String {
    let mut out = String::new();
    for s in secrets.iter().filter(|s| s.mount.is_none()) {
        out.push_str("export ");
        out.push_str(&s.name);
        out.push('=');
        out.push_str(&shell_quote(s.value.expose()));
        out.push('\n');
    }
    out
}

/// Where a `mount:` secret's value is kept inside the tmpfs.
pub(crate) fn file_path(name: &str) -> String {
    format!("{SECRETS_DIR}/files/{name}")
}

/// Writes stdin to `$1` with mode 0600, atomically.
const WRITE_SCRIPT: &str =
    "umask 077 && mkdir -p \"${1%/*}\" && cat > \"$1.tmp\" && mv -f \"$1.tmp\" \"$1\"";
/// Makes `$2` a symlink to `$1`, creating `$2`'s parent (`$3`).
const LINK_SCRIPT: &str = "mkdir -p \"$3\" && ln -sfn \"$1\" \"$2\"";
/// Hands the tmpfs to `$1` (`uid:gid`).
const CHOWN_SCRIPT: &str = "chown \"$1\" /run/sindri && chmod 0700 /run/sindri";

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("");
    name.is_empty() || name == "root" || name == "0"
}

async fn run_ok(
    docker: &Docker,
    container: &str,
    what: &str,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
) -> Result<String> {
    let out = capture(docker, container, req, stdin).await?;
    if out.code == 0 {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        // stderr of these scripts comes from mkdir/cat/ln and never echoes stdin.
        Err(Error::platform(
            ProviderKind::Docker,
            format!(
                "could not {what} in container {container} (exit code {}): {}",
                out.code,
                out.stderr_text()
            ),
        )
        .with_hint("sindri needs `sh`, `mkdir`, `cat`, `mv`, `ln` (and `id`, `chown` for a non-root image user) in the image"))
    }
}

fn script(user: Option<&str>, script: &str, args: &[&str]) -> ExecRequest {
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "sindri".to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    ExecRequest {
        argv,
        user: user.map(str::to_string),
        ..Default::default()
    }
}

/// Delivers every secret into the running container and sets the marker.
/// `image_user` is the container's configured user (`Config.User`).
pub(crate) async fn deliver(
    docker: &Docker,
    container: &str,
    image_user: &str,
    secrets: &[ResolvedSecret],
) -> Result<()> {
    if !is_root(image_user) {
        let ids = run_ok(
            docker,
            container,
            "find the image user's ids",
            script(None, "printf '%s:%s' \"$(id -u)\" \"$(id -g)\"", &[]),
            None,
        )
        .await?;
        run_ok(
            docker,
            container,
            "prepare /run/sindri",
            script(Some("0"), CHOWN_SCRIPT, &[&ids]),
            None,
        )
        .await?;
    }
    for s in secrets {
        let Some(mount) = &s.mount else { continue };
        let stored = file_path(&s.name);
        run_ok(
            docker,
            container,
            &format!("write secret {}", s.name),
            script(None, WRITE_SCRIPT, &[&stored]),
            Some(s.value.expose().as_bytes().to_vec()),
        )
        .await?;
        let parent = match mount.trim_end_matches('/').rsplit_once('/') {
            Some(("", _)) | None => "/".to_string(),
            Some((p, _)) => p.to_string(),
        };
        run_ok(
            docker,
            container,
            &format!("link secret {} at {mount}", s.name),
            script(Some("0"), LINK_SCRIPT, &[&stored, mount, &parent]),
            None,
        )
        .await?;
    }
    let env = env_file(secrets);
    run_ok(
        docker,
        container,
        "write the secrets environment",
        script(
            None,
            &format!("{WRITE_SCRIPT} && : > {DELIVERED_MARKER}"),
            &[&format!("{SECRETS_DIR}/secrets.env")],
        ),
        Some(env.into_bytes()),
    )
    .await?;
    Ok(())
}

/// Whether a complete delivery is in place (the tmpfs survives only while running).
pub(crate) async fn delivered(docker: &Docker, container: &str) -> Result<bool> {
    let out = capture(
        docker,
        container,
        script(None, "test -e \"$1\"", &[DELIVERED_MARKER]),
        None,
    )
    .await?;
    match out.code {
        0 => Ok(true),
        1 => Ok(false),
        n => Err(Error::new(
            ErrorKind::Platform,
            format!(
                "could not check secrets in container {container}: `test` exited with {n}: {}",
                out.stderr_text()
            ),
        )
        .with_provider(ProviderKind::Docker)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_core::SecretValue;

    #[test]
    fn env_file_quotes_every_value_for_sh() {
        let s = |name: &str, v: &str, mount: Option<&str>| ResolvedSecret {
            name: name.into(),
            value: SecretValue::new(v),
            mount: mount.map(str::to_string),
        };
        let text = env_file(&[
            s("A", "plain", None),
            s("B", "it's $HOME `x`\nline2", None),
            s("C", "file-only", Some("/etc/c")),
        ]);
        assert_eq!(
            text,
            "export A='plain'\nexport B='it'\\''s $HOME `x`\nline2'\n"
        );
        assert!(
            !text.contains("file-only"),
            "mounted secrets are files, not variables"
        );
        assert_eq!(file_path("C"), "/run/sindri/files/C");
    }

    #[test]
    fn root_detection_covers_names_and_ids() {
        assert!(is_root(""));
        assert!(is_root("root"));
        assert!(is_root("0:0"));
        assert!(!is_root("1000"));
        assert!(!is_root("app:app"));
    }
}
