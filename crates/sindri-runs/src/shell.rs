//! Running small POSIX sh scripts in an environment through `dispatch::exec`, and
//! capturing what they print.
//!
//! Every script is a constant passed as `sh -c SCRIPT sindri ARG...`: values travel as
//! positional arguments, never spliced into the script text, so no path or command
//! from the user can change what a script does.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use sindri_core::{Deployment, Error, ExecCommand, ExecIo, Provider, Result, dispatch};
use tokio::io::AsyncWrite;

/// Shell functions shared by the scripts: liveness checks that tell a zombie from a
/// running process.
///
/// A process whose parent never reaps it (a container's init that is not an init, a
/// sandbox's pid 1) stays a zombie, and `kill -0` succeeds on zombies; deciding that a
/// job still runs from `kill -0` alone would follow a dead job forever. On Linux the
/// state letter in `/proc/PID/stat` settles it; elsewhere (macOS, for the local
/// provider) `kill -0` is all there is, and there zombies are reaped by launchd.
pub(crate) const FUNCTIONS: &str = r#"
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  read -r _s < "/proc/$1/stat" 2>/dev/null || return 1
  _s=${_s##*) }
  case "$_s" in Z*|X*) return 1 ;; esac
  return 0
}
group_alive() {
  kill -0 -"$1" 2>/dev/null || return 1
  [ -d /proc/self ] || return 0
  for _f in /proc/[0-9]*/stat; do
    read -r _s < "$_f" 2>/dev/null || continue
    _s=${_s##*) }
    set -- "$1" $_s
    [ "$4" = "$1" ] || continue
    case "$2" in Z*|X*) continue ;; esac
    return 0
  done
  return 1
}
"#;

/// Quotes `s` for a POSIX shell: the result is one word whatever `s` holds.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An argument vector as one shell line, for showing a command to people.
pub fn join_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a script printed and how it exited.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured {
    /// The exit code.
    pub code: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

impl Captured {
    /// Itself when the command exited 0; otherwise a platform error saying `doing`
    /// failed, with the exit code and the command's stderr.
    pub fn success(self, p: &dyn Provider, d: &Deployment, doing: &str) -> Result<Captured> {
        if self.code == 0 {
            return Ok(self);
        }
        let detail = self.stderr_text();
        Err(Error::platform(
            p.kind(),
            format!(
                "{doing} failed in environment `{}` (exit code {}){}",
                d.name,
                self.code,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
        ))
    }

    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, trimmed, for error messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// The command that runs `script` with `args` as `$1`, `$2`, ...
pub(crate) fn script_command<I, S>(script: &str, args: I) -> ExecCommand
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("{FUNCTIONS}\n{script}"),
        "sindri".to_string(),
    ];
    argv.extend(args.into_iter().map(Into::into));
    ExecCommand::new(argv)
}

/// Runs `cmd` and collects its output in memory.
pub(crate) async fn capture(
    p: &dyn Provider,
    d: &Deployment,
    cmd: &ExecCommand,
) -> Result<Captured> {
    let stdout = Buffer::default();
    let stderr = Buffer::default();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        tty: None,
    };
    let code = dispatch::exec(p, d, cmd, io).await?;
    Ok(Captured {
        code,
        stdout: stdout.take(),
        stderr: stderr.take(),
    })
}

/// Runs a script and fails, with what it printed on stderr, unless it exits 0.
pub(crate) async fn run_ok(
    p: &dyn Provider,
    d: &Deployment,
    doing: &str,
    cmd: &ExecCommand,
) -> Result<Captured> {
    capture(p, d, cmd).await?.success(p, d, doing)
}

/// An in-memory sink shared between the exec call and the caller.
#[derive(Clone, Default)]
pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written so far, leaving the buffer empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AsyncWrite for Buffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An exec output sink that hands chunks to the task that writes them out.
pub(crate) struct ChannelWriter(pub tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.0.send(buf.to_vec()) {
            Ok(()) => std::task::Poll::Ready(Ok(buf.len())),
            Err(_) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the log reader is gone",
            ))),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte_as_one_word() {
        assert_eq!(sh_quote("train.py"), "train.py");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("it's a $HOME"), r"'it'\''s a $HOME'");
        assert_eq!(
            join_argv(&["python".into(), "-c".into(), "print(1)".into()]),
            "python -c 'print(1)'"
        );
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let tricky = ["a b", "it's", "$(echo no)", "`x`", "\\n", "*", "-e", "\n"];
        let line = format!(
            "for a in {}; do printf '%s\\0' \"$a\"; done",
            tricky
                .iter()
                .map(|s| sh_quote(s))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .expect("sh must be installed");
        let words: Vec<&str> = std::str::from_utf8(&out.stdout)
            .expect("utf-8")
            .split_terminator('\0')
            .collect();
        assert_eq!(words, tricky);
    }
}
