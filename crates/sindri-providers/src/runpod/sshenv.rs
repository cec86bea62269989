//! What the RunPod and Lyceum providers share about machines they reach over SSH: the
//! user's public key (which the platform installs), waiting until SSH answers, and
//! delivering `deployment.env` and secrets into a file every `sindri exec` sources.
//!
//! Lyceum uses it through `crate::runpod::sshenv`, or includes this file by path when
//! the runpod feature is off, so each feature builds on its own.
//!
//! # Where env and secrets go
//! Neither platform has a secret store sindri could use: RunPod shows a pod's `env`
//! to anyone who can read the pod through the API, and Lyceum's create call takes no
//! environment at all. So after the machine answers SSH, `deploy` writes, through ssh
//! **stdin** (never a command line):
//! - `<dir>/env`: `export NAME='value'` lines for `deployment.env` and every secret
//!   without `mount`, mode 0600 in a 0700 directory;
//! - `<dir>/files/<NAME>` for each `mount:` secret, linked from its mount path.
//!
//! `<dir>` is `<home>/.sindri` on RunPod (the pod volume, so it survives stop/start)
//! and `~/.sindri` on Lyceum. The files live on the machine's disk and go with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sindri_core::{Error, ErrorKind, ResolvedSecret, Result};
use sindri_spec::ProviderKind;

use crate::http::Redactor;
use crate::ssh::{SshSession, quote};

/// The user's SSH public key, and the private key beside it when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// The `.pub` file.
    pub path: PathBuf,
    /// Its first line, e.g. `ssh-ed25519 AAAA... me@host`.
    pub text: String,
    /// The private key offered to ssh (`-i`), when it sits beside the public one.
    pub identity: Option<PathBuf>,
}

/// `~/x` with `home`; other paths as they are.
pub(crate) fn expand(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if path == "~" => home
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(path)),
        _ => PathBuf::from(path),
    }
}

/// Reads `configured` (the `ssh_public_key` setting, relative to `base_dir` when
/// relative), else `~/.ssh/id_ed25519.pub`, else `~/.ssh/id_rsa.pub`. `setting` names
/// the setting in messages.
pub(crate) fn public_key(
    provider: ProviderKind,
    setting: &str,
    configured: Option<&str>,
    base_dir: Option<&Path>,
    home: Option<&Path>,
) -> Result<PublicKey> {
    let candidates: Vec<PathBuf> = match configured.map(str::trim).filter(|s| !s.is_empty()) {
        Some(p) => {
            let path = expand(p, home);
            vec![match base_dir {
                Some(b) if path.is_relative() => b.join(path),
                _ => path,
            }]
        }
        None => match home {
            Some(h) => vec![h.join(".ssh/id_ed25519.pub"), h.join(".ssh/id_rsa.pub")],
            None => Vec::new(),
        },
    };
    for path in &candidates {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string();
                let ok = [
                    "ssh-ed25519 ",
                    "ssh-rsa ",
                    "ecdsa-sha2-",
                    "sk-ssh-ed25519@",
                    "sk-ecdsa-",
                ]
                .iter()
                .any(|p| text.starts_with(p));
                if !ok {
                    return Err(Error::invalid(format!(
                        "{} is not an OpenSSH public key (expected `ssh-ed25519 AAAA...` or `ssh-rsa AAAA...`)",
                        path.display()
                    ))
                    .with_provider(provider)
                    .with_hint(format!(
                        "point {setting} at the `.pub` file, never the private key"
                    )));
                }
                let private = path.with_extension("");
                let identity = (path.extension().is_some_and(|e| e == "pub") && private.is_file())
                    .then_some(private);
                return Ok(PublicKey {
                    path: path.clone(),
                    text,
                    identity,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(
                    Error::internal(format!("cannot read {}: {e}", path.display()))
                        .with_provider(provider),
                );
            }
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    let found = if tried.is_empty() {
        "HOME is not set, so ~/.ssh cannot be searched".to_string()
    } else {
        format!("looked for {}", tried.join(", "))
    };
    Err(Error::invalid(format!("no SSH public key found ({found})"))
        .with_provider(provider)
        .with_hint(format!(
            "create one with `ssh-keygen -t ed25519`, or set {setting}"
        )))
}

/// True for a name a POSIX shell accepts as a variable.
pub(crate) fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Refuses `deployment.env` names no shell can export, listing every one.
pub(crate) fn check_env_names(
    provider: ProviderKind,
    env: &BTreeMap<String, String>,
) -> Result<()> {
    let bad: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| !is_env_name(k))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "deployment.env: {} cannot be exported by a shell",
        bad.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .with_provider(provider)
    .with_hint("use letters, digits and `_`, not starting with a digit"))
}

/// The directory as a shell word: absolute paths quoted, relative ones under `$HOME`.
fn dir_word(dir: &str) -> String {
    if dir.starts_with('/') {
        quote(dir)
    } else {
        format!("\"$HOME\"/{}", quote(dir))
    }
}

/// The env file: `deployment.env` first, then env-style secrets (which win).
pub(crate) fn env_file(env: &BTreeMap<String, String>, secrets: &[ResolvedSecret]) -> String {
    let mut out = String::from("# written by sindri deploy; sourced by `sindri exec`\n");
    for (k, v) in env {
        out.push_str(&format!("export {k}={}\n", quote(v)));
    }
    for s in secrets.iter().filter(|s| s.mount.is_none()) {
        out.push_str(&format!("export {}={}\n", s.name, quote(s.value.expose())));
    }
    out
}

/// Writes the env file and the `mount:` secrets into `dir` on the machine (see the
/// module docs), each through ssh stdin. Error messages never carry a value.
pub(crate) async fn deliver(
    provider: ProviderKind,
    session: &SshSession,
    dir: &str,
    env: &BTreeMap<String, String>,
    secrets: &[ResolvedSecret],
) -> Result<()> {
    check_env_names(provider, env)?;
    if let Some(bad) = secrets
        .iter()
        .find(|s| s.mount.is_none() && !is_env_name(&s.name))
    {
        return Err(Error::invalid(format!(
            "secret `{}` cannot be an environment variable",
            bad.name
        ))
        .with_provider(provider)
        .with_hint("name it with letters, digits and `_`, or give it a `mount` path"));
    }
    let mut scrub = Redactor::new();
    for s in secrets {
        scrub.add(s.value.expose());
    }
    let d = dir_word(dir);
    let write_env = format!(
        "umask 077 && mkdir -p -- {d} && chmod 700 {d} && cat > {d}/env.tmp && mv -f -- {d}/env.tmp {d}/env"
    );
    run_step(
        provider,
        session,
        &write_env,
        env_file(env, secrets).into_bytes(),
        &format!("write {dir}/env"),
        &scrub,
    )
    .await?;
    for s in secrets {
        let Some(mount) = &s.mount else { continue };
        let file = format!("{d}/files/{}", quote(&s.name));
        let m = quote(mount);
        let line = format!(
            "umask 077 && mkdir -p -- {d}/files && cat > {file} && \
             {{ {{ mkdir -p -- \"$(dirname -- {m})\" && ln -sfn -- {file} {m}; }} 2>/dev/null || \
             sudo -n sh -c 'mkdir -p -- \"$(dirname -- \"$2\")\" && ln -sfn -- \"$1\" \"$2\"' sh {file} {m}; }}"
        );
        run_step(
            provider,
            session,
            &line,
            s.value.expose().as_bytes().to_vec(),
            &format!("place secret {} at {mount}", s.name),
            &scrub,
        )
        .await?;
    }
    Ok(())
}

async fn run_step(
    provider: ProviderKind,
    session: &SshSession,
    script: &str,
    input: Vec<u8>,
    what: &str,
    scrub: &Redactor,
) -> Result<()> {
    let line = format!("sh -c {}", quote(script));
    let (code, _out, err) = session.run(&line, Some(input)).await.map_err(|e| {
        let out = Error::new(e.kind(), scrub.redact(e.message())).with_provider(provider);
        match e.hint() {
            Some(h) => out.with_hint(scrub.redact(h)),
            None => out,
        }
    })?;
    if code == 0 {
        return Ok(());
    }
    let stderr = scrub.redact(String::from_utf8_lossy(&err).trim());
    Err(Error::platform(
        provider,
        format!(
            "could not {what} on {} (exit code {code}): {stderr}",
            session.target().host
        ),
    )
    .with_hint("check that the login user may write its home directory; mount paths outside it need passwordless sudo"))
}

/// How long to wait for a new machine's SSH server, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    /// Between two looks.
    pub interval: Duration,
    /// Looks in all before giving up.
    pub attempts: u32,
}

/// Connects until ssh answers: `Unavailable` (still booting, port not open yet) is
/// retried, anything else (a refused key) fails at once.
pub(crate) async fn wait_for_ssh(
    provider: ProviderKind,
    session: &SshSession,
    patience: Patience,
    hint: &str,
) -> Result<()> {
    let mut last = None;
    for attempt in 1..=patience.attempts.max(1) {
        match session.connect_check().await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                tracing::debug!(target: "sindri::ssh", "attempt {attempt}: {e}");
                last = Some(e);
                if attempt < patience.attempts {
                    tokio::time::sleep(patience.interval).await;
                }
            }
            Err(e) => return Err(e.with_provider(provider)),
        }
    }
    let why = last
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| "no attempt was made".into());
    Err(Error::new(
        ErrorKind::Unavailable,
        format!(
            "SSH to {} did not answer after {} attempts: {why}",
            session.target().url(),
            patience.attempts.max(1)
        ),
    )
    .with_provider(provider)
    .with_hint(hint.to_string()))
}

/// `ssh -V` answers: for `sindri doctor`.
pub(crate) async fn ssh_client_check() -> std::result::Result<String, Error> {
    match tokio::process::Command::new("ssh").arg("-V").output().await {
        Ok(o) => {
            let v = String::from_utf8_lossy(&o.stderr).trim().to_string();
            Ok(if v.is_empty() { "ssh is installed".into() } else { v })
        }
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            "the OpenSSH client `ssh` is not installed",
        )
        .with_hint("install it: `apt-get install openssh-client` (Debian/Ubuntu), `brew install openssh` (macOS)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sindri_core::SecretValue;

    #[test]
    fn public_keys_are_found_in_order_and_checked() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let e = public_key(ProviderKind::Runpod, "x", None, None, Some(h)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("id_ed25519.pub"), "{e}");
        std::fs::create_dir_all(h.join(".ssh")).unwrap();
        std::fs::write(h.join(".ssh/id_rsa.pub"), "ssh-rsa AAAB me\n").unwrap();
        std::fs::write(h.join(".ssh/id_rsa"), "private").unwrap();
        let k = public_key(ProviderKind::Runpod, "x", None, None, Some(h)).unwrap();
        assert_eq!(k.text, "ssh-rsa AAAB me");
        assert_eq!(k.identity, Some(h.join(".ssh/id_rsa")));
        std::fs::write(h.join(".ssh/id_ed25519.pub"), "\nssh-ed25519 AAAC you\n").unwrap();
        let k = public_key(ProviderKind::Runpod, "x", None, None, Some(h)).unwrap();
        assert_eq!(k.text, "ssh-ed25519 AAAC you");
        assert_eq!(k.identity, None, "no private key beside it: ssh chooses");
        let base = tempfile::tempdir().unwrap();
        std::fs::write(
            base.path().join("k.pub"),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        )
        .unwrap();
        let e = public_key(
            ProviderKind::Lyceum,
            "providers.lyceum.ssh_public_key",
            Some("k.pub"),
            Some(base.path()),
            Some(h),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(
            e.hint()
                .unwrap()
                .contains("providers.lyceum.ssh_public_key")
        );
        let k = public_key(
            ProviderKind::Lyceum,
            "x",
            Some("~/.ssh/id_rsa.pub"),
            None,
            Some(h),
        )
        .unwrap();
        assert_eq!(k.path, h.join(".ssh/id_rsa.pub"));
    }

    #[test]
    fn env_file_quotes_values_and_secrets_win() {
        let env = BTreeMap::from([
            ("A".to_string(), "it's".to_string()),
            ("B".to_string(), "x y".to_string()),
        ]);
        let secrets = vec![
            ResolvedSecret {
                name: "TOKEN".into(),
                value: SecretValue::new("s3cr$t"),
                mount: None,
            },
            ResolvedSecret {
                name: "FILE".into(),
                value: SecretValue::new("in a file"),
                mount: Some("/etc/x".into()),
            },
        ];
        let text = env_file(&env, &secrets);
        assert!(text.contains("export A='it'\\''s'\n"), "{text}");
        assert!(text.contains("export B='x y'\n"));
        assert!(text.contains("export TOKEN='s3cr$t'\n"));
        assert!(
            !text.contains("in a file"),
            "mounted secrets are files, not variables"
        );
        let bad = BTreeMap::from([("1X".to_string(), String::new())]);
        assert_eq!(
            check_env_names(ProviderKind::Runpod, &bad)
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn directories_are_absolute_or_under_home() {
        assert_eq!(dir_word("/root/.sindri"), "/root/.sindri");
        assert_eq!(dir_word(".sindri"), "\"$HOME\"/.sindri");
        assert_eq!(
            expand("~/.ssh/k.pub", Some(Path::new("/h"))),
            PathBuf::from("/h/.ssh/k.pub")
        );
    }
}
