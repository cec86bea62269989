//! Exec sessions: commands and shells inside the container, streamed.
//!
//! Every command runs through a tiny `sh` prelude that sources the env-style secrets
//! from the tmpfs, so secret values reach the process environment without ever being
//! part of an exec request (which `docker inspect` of the exec would show).

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use sindri_core::{Error, ExecIo, Result};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::engine::api_error;
use super::request::SECRETS_DIR;

/// Sources the secrets file when the caller may read it, then runs the command.
pub(crate) const PRELUDE: &str =
    "[ -r /run/sindri/secrets.env ] && . /run/sindri/secrets.env; exec \"$@\"";

/// The shell `connect` opens: bash when the image has it, else sh.
pub(crate) const SHELL: &str = "[ -r /run/sindri/secrets.env ] && . /run/sindri/secrets.env; \
if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi";

/// `argv` wrapped in the secrets prelude.
pub(crate) fn wrap(argv: &[String]) -> Vec<String> {
    debug_assert!(PRELUDE.contains(SECRETS_DIR));
    let mut v = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        PRELUDE.to_string(),
        "sindri-exec".to_string(),
    ];
    v.extend(argv.iter().cloned());
    v
}

/// The command line for an interactive shell.
pub(crate) fn shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string(), SHELL.to_string()]
}

/// One exec request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecRequest {
    /// The full command line (already wrapped when it should be).
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User, e.g. `0` or `app`.
    pub user: Option<String>,
}

/// Runs a command in `container`, streaming its output into `io`; returns its exit code.
pub(crate) async fn run(
    docker: &Docker,
    container: &str,
    req: ExecRequest,
    io: ExecIo,
) -> Result<i32> {
    let ExecIo {
        stdin,
        mut stdout,
        mut stderr,
        tty,
    } = io;
    let with_tty = tty.is_some();
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(with_tty),
                env: (!req.env.is_empty()).then_some(req.env),
                cmd: Some(req.argv),
                user: req.user,
                working_dir: req.workdir,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| api_error(&format!("start a command in {container}"), e))?;
    let exec_id = created.id;
    let started = docker
        .start_exec(
            &exec_id,
            Some(StartExecOptions {
                detach: false,
                tty: with_tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| api_error(&format!("start a command in {container}"), e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(Error::internal("the engine detached an attached exec"));
    };

    // The size is set before any input reaches the command: with API 1.41 an exec
    // starts at 0x0, and a command read from stdin at once would see no terminal size.
    let resize_task = match tty {
        Some(mut sizes) => {
            let (cols, rows) = *sizes.borrow_and_update();
            resize(docker, &exec_id, cols, rows).await;
            let docker = docker.clone();
            let id = exec_id.clone();
            Some(tokio::spawn(async move {
                while sizes.changed().await.is_ok() {
                    let (cols, rows) = *sizes.borrow_and_update();
                    resize(&docker, &id, cols, rows).await;
                }
            }))
        }
        None => None,
    };

    let mut input = Some(input);
    let stdin_task = match (stdin, input.take()) {
        (Some(mut reader), Some(mut writer)) => Some(tokio::spawn(async move {
            // EOF on the caller's input closes the command's stdin (a half-close).
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
            writer
        })),
        (_, w) => {
            input = w;
            None
        }
    };

    let streamed = pump(&mut output, &mut *stdout, &mut *stderr).await;
    if let Some(t) = resize_task {
        t.abort();
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
    drop(input);
    streamed.map_err(|e| match e {
        PumpError::Engine(e) => {
            api_error(&format!("read the output of a command in {container}"), e)
        }
        PumpError::Local(e) => Error::from(e),
    })?;
    exit_code(docker, &exec_id).await
}

enum PumpError {
    Engine(bollard::errors::Error),
    Local(std::io::Error),
}

/// Resizes an exec's TTY; a command that already ended cannot be resized, which is fine.
async fn resize(docker: &Docker, id: &str, cols: u16, rows: u16) {
    let size = ResizeExecOptions {
        height: rows,
        width: cols,
    };
    if let Err(e) = docker.resize_exec(id, size).await {
        tracing::debug!("resize of exec {id} failed: {e}");
    }
}

/// Copies the demultiplexed output into the caller's writers until the command ends.
async fn pump(
    output: &mut (
             impl futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
             + Unpin
         ),
    stdout: &mut (dyn AsyncWrite + Send + Unpin),
    stderr: &mut (dyn AsyncWrite + Send + Unpin),
) -> std::result::Result<(), PumpError> {
    while let Some(item) = output.next().await {
        match item.map_err(PumpError::Engine)? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.write_all(&message).await.map_err(PumpError::Local)?;
                stdout.flush().await.map_err(PumpError::Local)?;
            }
            LogOutput::StdErr { message } => {
                stderr.write_all(&message).await.map_err(PumpError::Local)?;
                stderr.flush().await.map_err(PumpError::Local)?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    stdout.flush().await.map_err(PumpError::Local)?;
    stderr.flush().await.map_err(PumpError::Local)?;
    Ok(())
}

/// The exit code of a finished exec. The engine may report it a moment after the
/// output stream closes, so a still-running exec is asked again briefly.
async fn exit_code(docker: &Docker, exec_id: &str) -> Result<i32> {
    let mut delay = std::time::Duration::from_millis(5);
    for _ in 0..60 {
        let info = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| api_error("read the exit code of a command", e))?;
        if info.running != Some(true)
            && let Some(code) = info.exit_code
        {
            return Ok(i32::try_from(code).unwrap_or(i32::MAX));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_millis(200));
    }
    Err(Error::new(
        sindri_core::ErrorKind::Transient,
        "the engine did not report the command's exit code",
    )
    .with_provider(sindri_spec::ProviderKind::Docker))
}

/// What a command printed and how it ended; for sindri's own short commands.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Captured {
    /// Stderr as text, for error messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Runs a short command, feeding `stdin`, and collects its output.
pub(crate) async fn capture(
    docker: &Docker,
    container: &str,
    req: ExecRequest,
    stdin: Option<Vec<u8>>,
) -> Result<Captured> {
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let io = ExecIo {
        stdin: stdin.map(|b| {
            Box::new(std::io::Cursor::new(b)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
        }),
        stdout: Box::new(out.clone()),
        stderr: Box::new(err.clone()),
        tty: None,
    };
    let code = run(docker, container, req, io).await?;
    Ok(Captured {
        code,
        stdout: out.take(),
        stderr: err.take(),
    })
}

/// An in-memory writer that can be read after being handed away.
#[derive(Debug, Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl AsyncWrite for SharedBuf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
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
    fn commands_run_through_the_secrets_prelude() {
        let argv = wrap(&["echo".into(), "a b".into()]);
        assert_eq!(argv[..2], ["/bin/sh".to_string(), "-c".into()]);
        assert!(argv[2].contains(". /run/sindri/secrets.env"));
        assert!(argv[2].ends_with("exec \"$@\""));
        // "$0" is a placeholder; the command follows untouched, without re-splitting.
        assert_eq!(
            argv[3..],
            ["sindri-exec".to_string(), "echo".into(), "a b".into()]
        );
        assert!(shell()[2].contains("command -v bash"));
    }
}
