//! `sindri exec`, `sindri connect` and `sindri cp`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sindri_core::{Error, ExecCommand, ExecIo, Operation, TransferStats, dispatch};
use tokio::io::AsyncWrite;

use crate::app::App;
use crate::cli::{CpArgs, ExecArgs};
use crate::output::{CliError, CliResult, Report};
use crate::signals::interruptible;
use crate::terminal::{self, RawModeGuard};

/// Runs a command; the process exits with the command's own exit code.
pub async fn exec(app: &App, args: ExecArgs) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    dispatch::require(&*provider, Operation::Exec)?;
    let rs = app.identify(spec);
    let state = app.state()?;
    let d = app.require_deployment(&*provider, &rs, &state).await?;

    let mut env = Vec::new();
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            _ => {
                return Err(Error::invalid(format!("--env `{kv}` is not KEY=VALUE"))
                    .with_hint("write it as --env NAME=value")
                    .into());
            }
        }
    }
    let cmd = ExecCommand {
        argv: args.command,
        env,
        workdir: args.workdir,
        user: None,
    };

    if app.out.json() {
        // Programs get the output captured in one document, streams kept apart.
        let stdout = Capture::default();
        let stderr = Capture::default();
        let io = ExecIo {
            stdin: None,
            stdout: Box::new(stdout.clone()),
            stderr: Box::new(stderr.clone()),
            tty: None,
        };
        let code = interruptible(dispatch::exec(&*provider, &d, &cmd, io)).await?;
        #[derive(Serialize)]
        struct ExecReport {
            exit_code: i32,
            stdout: String,
            stderr: String,
        }
        impl Report for ExecReport {
            fn human(&self) -> String {
                String::new()
            }
        }
        app.out.emit(&ExecReport {
            exit_code: code,
            stdout: stdout.text(),
            stderr: stderr.text(),
        });
        return exit_with(code);
    }

    let tty = args.tty || terminal::interactive();
    let _raw = if tty {
        Some(RawModeGuard::enable())
    } else {
        None
    };
    let io = terminal::stdio(tty, true);
    let code = interruptible(dispatch::exec(&*provider, &d, &cmd, io)).await?;
    exit_with(code)
}

/// Opens a shell; the process exits with the shell's exit code.
pub async fn connect(app: &App) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    dispatch::require(&*provider, Operation::Connect)?;
    let rs = app.identify(spec);
    let state = app.state()?;
    let d = app.require_deployment(&*provider, &rs, &state).await?;
    let tty = terminal::interactive();
    let code = {
        // Raw mode sends Ctrl-C to the remote shell instead of killing sindri; the
        // guard restores the terminal however the session ends.
        let _raw = if tty {
            Some(RawModeGuard::enable())
        } else {
            None
        };
        dispatch::connect(&*provider, &d, terminal::stdio(tty, true)).await?
    };
    exit_with(code)
}

fn exit_with(code: i32) -> CliResult {
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(code))
    }
}

/// Collects a stream in memory for `--output json`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
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

#[derive(Serialize)]
struct CpReport {
    direction: &'static str,
    from: String,
    to: String,
    #[serde(flatten)]
    stats: TransferStats,
}

impl Report for CpReport {
    fn human(&self) -> String {
        format!(
            "copied {} file(s), {} bytes: {} → {}",
            self.stats.files, self.stats.bytes, self.from, self.to
        )
    }
}

/// Copies in (`LOCAL :REMOTE`) or out (`:REMOTE LOCAL`).
pub async fn cp(app: &App, args: CpArgs) -> CliResult {
    enum Direction<'a> {
        In(&'a str),
        Out(&'a str),
    }
    let direction = match (args.from.strip_prefix(':'), args.to.strip_prefix(':')) {
        (None, Some(remote)) => Direction::In(remote),
        (Some(remote), None) => Direction::Out(remote),
        _ => {
            return Err(Error::invalid(
                "exactly one side of `sindri cp` must be inside the environment",
            )
            .with_hint(
                "prefix the environment's path with `:`, e.g. `sindri cp ./data :/root/data`",
            )
            .into());
        }
    };
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    dispatch::require(
        &*provider,
        match direction {
            Direction::In(_) => Operation::CopyIn,
            Direction::Out(_) => Operation::CopyOut,
        },
    )?;
    let rs = app.identify(spec);
    let state = app.state()?;
    let d = app.require_deployment(&*provider, &rs, &state).await?;
    // Providers get absolute local paths: `back.txt` has an empty parent directory,
    // which is easy to mishandle and never what a user means.
    let local =
        |p: &str| std::path::absolute(Path::new(p)).unwrap_or_else(|_| Path::new(p).to_path_buf());
    let stats = match direction {
        Direction::In(remote) => {
            interruptible(dispatch::copy_in(
                &*provider,
                &d,
                &local(&args.from),
                remote,
            ))
            .await?
        }
        Direction::Out(remote) => {
            interruptible(dispatch::copy_out(&*provider, &d, remote, &local(&args.to))).await?
        }
    };
    app.out.emit(&CpReport {
        direction: if matches!(direction, Direction::In(_)) {
            "in"
        } else {
            "out"
        },
        from: args.from.clone(),
        to: args.to.clone(),
        stats,
    });
    Ok(())
}
