//! Commands inside the workspace through `devpod ssh ID --command LINE`.
//!
//! DevPod runs `LINE` with the remote user's shell over its SSH tunnel. Without a
//! terminal on stdout it requests no PTY, so the command's stdout reaches DevPod's
//! stdout untouched and its stderr reaches DevPod's stderr (through DevPod's logger
//! writer, which passes the lines on); stdin is forwarded and closed at its end; the
//! command's exit status becomes `devpod`'s exit code. DevPod's own failures (a
//! workspace that is gone or stopped) also exit non-zero, with a `fatal` line on
//! stderr, so sindri checks the workspace before running anything.
//!
//! Every line sindri sends is `sh -c '…'` with every word single-quoted, so the remote
//! login shell only ever sees one quoted argument.

use std::process::Stdio;

use sindri_core::{Error, ExecCommand, ExecIo, Result};
use sindri_spec::ProviderKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cli::Cli;

/// Quotes `s` as one POSIX shell word.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=')
        })
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// True for a valid environment variable name.
fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The arguments of `devpod ssh` running `line`. Agent forwarding and DevPod's
/// credential and port-forwarding services are off: a scripted command needs neither,
/// and the user's SSH agent is not handed to the environment unasked.
pub fn ssh_args(id: &str, user: Option<&str>, line: &str) -> Vec<String> {
    let mut args = vec![
        "ssh".to_string(),
        id.to_string(),
        "--agent-forwarding=false".to_string(),
        "--start-services=false".to_string(),
    ];
    if let Some(u) = user {
        args.push("--user".into());
        args.push(u.to_string());
    }
    args.push("--command".into());
    args.push(line.to_string());
    args
}

/// Wraps a shell script as `sh -c '<script>'`.
fn wrap(script: &str) -> String {
    format!("sh -c {}", quote(script))
}

/// The prelude that loads sindri's secrets file when it exists.
fn load_secrets(secrets_file: Option<&str>) -> String {
    match secrets_file {
        Some(f) => {
            let q = quote(f);
            format!("if [ -r {q} ]; then . {q}; fi; ")
        }
        None => String::new(),
    }
}

/// The line that runs `cmd`: secrets loaded, working directory changed, variables
/// exported, then the argument vector `exec`ed.
pub fn exec_line(cmd: &ExecCommand, secrets_file: Option<&str>) -> Result<String> {
    if cmd.argv.is_empty() {
        return Err(Error::invalid("no command given").with_provider(ProviderKind::Devpod));
    }
    let mut s = load_secrets(secrets_file);
    if let Some(wd) = &cmd.workdir {
        s.push_str(&format!("cd -- {} || exit 1; ", quote(wd)));
    }
    for (k, v) in &cmd.env {
        if !is_env_name(k) {
            return Err(Error::invalid(format!(
                "`{k}` is not an environment variable name: use letters, digits and `_`, not starting with a digit"
            ))
            .with_provider(ProviderKind::Devpod));
        }
        s.push_str(&format!("export {k}={}; ", quote(v)));
    }
    s.push_str("exec");
    for a in &cmd.argv {
        s.push(' ');
        s.push_str(&quote(a));
    }
    Ok(wrap(&s))
}

/// The line of an interactive shell: secrets loaded, then the user's login shell.
pub fn login_line(secrets_file: Option<&str>) -> String {
    wrap(&format!(
        "{}exec \"${{SHELL:-/bin/sh}}\" -l",
        load_secrets(secrets_file)
    ))
}

/// The line that writes its stdin to `path` with mode 0600 (directories created).
pub fn write_file_line(path: &str) -> String {
    let q = quote(path);
    wrap(&format!(
        "umask 077 && mkdir -p -- \"$(dirname -- {q})\" && cat > {q} && chmod 600 {q}"
    ))
}

/// The content of the secrets file: one `export NAME='value'` line per variable.
pub fn secrets_file_content(vars: &[(String, String)]) -> String {
    let mut s = String::from(
        "# Written by sindri at deploy time; loaded by `sindri exec` and `sindri connect`.\n",
    );
    for (k, v) in vars {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s
}

/// Runs `devpod ARGS` with `io`: on this terminal when `io.tty` is set (DevPod then
/// requests a PTY and forwards resizes itself), else piped, stdout and stderr apart.
/// Returns `devpod`'s exit code, which is the command's.
pub async fn run(cli: &Cli, args: &[String], mut io: ExecIo) -> Result<i32> {
    if io.tty.is_some() {
        // The command owns the terminal; Ctrl-C is for it, not for sindri.
        #[cfg(unix)]
        let _keep = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        let status = cli
            .command(args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .map_err(|e| cli.spawn_error(&e))?;
        return Ok(exit_code(status));
    }
    let mut child = cli
        .command(args)
        .stdin(if io.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cli.spawn_error(&e))?;
    // Input is fed on its own task: the command may end without reading all of it, and
    // a source that never ends must not keep us waiting.
    let feeder = match (io.stdin.take(), child.stdin.take()) {
        (Some(mut src), Some(mut dst)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut src, &mut dst).await;
            let _ = dst.shutdown().await;
        })),
        _ => None,
    };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_w = &mut io.stdout;
    let err_w = &mut io.stderr;
    let copy_out = async {
        if let Some(s) = out.as_mut() {
            tokio::io::copy(s, out_w).await?;
        }
        out_w.flush().await
    };
    let copy_err = async {
        if let Some(s) = err.as_mut() {
            tokio::io::copy(s, err_w).await?;
        }
        err_w.flush().await
    };
    let (status, o, e) = tokio::join!(child.wait(), copy_out, copy_err);
    if let Some(f) = feeder {
        f.abort();
    }
    let status = status.map_err(|e| cli.spawn_error(&e))?;
    o.map_err(|e| pass_on_error("stdout", &e))?;
    e.map_err(|e| pass_on_error("stderr", &e))?;
    Ok(exit_code(status))
}

/// Runs `devpod ARGS` feeding `input`, collecting exit code, stdout and stderr.
pub async fn run_collect(
    cli: &Cli,
    args: &[String],
    input: Option<Vec<u8>>,
) -> Result<(i32, Vec<u8>, Vec<u8>)> {
    let mut child = cli
        .command(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cli.spawn_error(&e))?;
    let feeder = match (input, child.stdin.take()) {
        (Some(data), Some(mut dst)) => Some(tokio::spawn(async move {
            let _ = dst.write_all(&data).await;
            let _ = dst.shutdown().await;
        })),
        _ => None,
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut so = child
        .stdout
        .take()
        .ok_or_else(|| Error::internal("devpod's stdout was not captured"))?;
    let mut se = child
        .stderr
        .take()
        .ok_or_else(|| Error::internal("devpod's stderr was not captured"))?;
    let (a, b) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
    a?;
    b?;
    let status = child.wait().await.map_err(|e| cli.spawn_error(&e))?;
    if let Some(f) = feeder {
        let _ = f.await;
    }
    Ok((exit_code(status), out, err))
}

fn pass_on_error(stream: &str, e: &std::io::Error) -> Error {
    Error::internal(format!("cannot pass on the command's {stream}: {e}"))
        .with_provider(ProviderKind::Devpod)
}

/// A process's exit code, 128+N when killed by signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_lines_quote_every_word_once() {
        let dir = std::env::temp_dir().join(format!("sindri devpod quote {}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut cmd = ExecCommand::new(["printf", "%s|", "it's", "$HOME", "a b"]);
        cmd.env = vec![("K".into(), "v 'w'".into())];
        cmd.workdir = Some(dir.display().to_string());
        let line = exec_line(&cmd, Some("/nonexistent/secrets.env")).expect("line");
        assert!(line.starts_with("sh -c '"), "{line}");
        // Run it through a real shell, as the remote login shell would.
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's|$HOME|a b|");
        let pwd = ExecCommand {
            argv: vec!["sh".into(), "-c".into(), "printf '%s' \"$K|$PWD\"".into()],
            ..cmd.clone()
        };
        let out = std::process::Command::new("sh")
            .args(["-c", &exec_line(&pwd, None).expect("line")])
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("v 'w'|{}", dir.display())
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
        cmd.env = vec![("1BAD".into(), "v".into())];
        assert!(exec_line(&cmd, None).is_err());
    }

    #[test]
    fn secrets_file_lines_survive_quotes_and_newlines() {
        let content = secrets_file_content(&[("A".into(), "x'y\nz $HOME".into())]);
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("{content}\nprintf '%s' \"$A\"")])
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x'y\nz $HOME");
    }
}
