//! Local processes for `exec` and `connect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sindri_core::{Error, ExecIo, Result};
use sindri_spec::ProviderKind;
use tokio::io::AsyncWriteExt;

/// What to run.
pub struct Spawn<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to this process's environment.
    pub env: BTreeMap<String, String>,
}

/// Runs a process and returns its exit code (128+N when killed by signal N). A
/// program that cannot be started is reported as a shell would: a message on the
/// command's stderr and 127 (not found) or 126 (not executable).
///
/// With `io.tty`, the process shares this terminal (stdio inherited) after `stty sane`
/// undoes the raw mode the CLI set for remote sessions; otherwise its streams are
/// piped to `io`, stdout and stderr apart. Dropping the future kills the process.
pub async fn run(spawn: Spawn<'_>, mut io: ExecIo) -> Result<i32> {
    let Some((program, args)) = spawn.argv.split_first() else {
        return Err(Error::invalid("no command given").with_provider(ProviderKind::Local));
    };
    if !spawn.cwd.is_dir() {
        return Err(Error::not_found(format!(
            "the working directory {} does not exist",
            spawn.cwd.display()
        ))
        .with_provider(ProviderKind::Local));
    }
    let tty = io.tty.is_some();
    let mut command = if tty {
        let mut c = tokio::process::Command::new("sh");
        c.args(["-c", "stty sane 2>/dev/null; exec \"$@\"", "sh", program])
            .args(args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        c
    } else {
        let mut c = tokio::process::Command::new(program);
        c.args(args)
            .stdin(if io.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    command
        .current_dir(&spawn.cwd)
        .envs(&spawn.env)
        .kill_on_drop(true);

    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => {
                    return Err(Error::internal(format!("cannot start `{program}`: {e}"))
                        .with_provider(ProviderKind::Local));
                }
            };
            let msg = format!("sindri: cannot run `{program}`: {e}\n");
            let _ = io.stderr.write_all(msg.as_bytes()).await;
            let _ = io.stderr.flush().await;
            return Ok(code);
        }
    };

    if tty {
        // The process owns the terminal; Ctrl-C is for it. Listening for SIGINT here
        // keeps sindri itself from dying of it while the process runs.
        #[cfg(unix)]
        let _keep = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        let status = child.wait().await?;
        return Ok(exit_code(status));
    }

    let stdin_task = match (io.stdin.take(), child.stdin.take()) {
        (Some(mut input), Some(mut pipe)) => Some(tokio::spawn(async move {
            // A command that exits without reading its input ends this with EPIPE.
            let _ = tokio::io::copy(&mut input, &mut pipe).await;
            let _ = pipe.shutdown().await;
        })),
        _ => None,
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_writer = &mut io.stdout;
    let err_writer = &mut io.stderr;
    let copy_out = async {
        if let Some(s) = stdout.as_mut() {
            tokio::io::copy(s, out_writer).await?;
        }
        out_writer.flush().await
    };
    let copy_err = async {
        if let Some(s) = stderr.as_mut() {
            tokio::io::copy(s, err_writer).await?;
        }
        err_writer.flush().await
    };
    let (status, out_result, err_result) = tokio::join!(child.wait(), copy_out, copy_err);
    if let Some(task) = stdin_task {
        task.abort();
    }
    let status = status?;
    out_result.map_err(|e| output_error("stdout", e))?;
    err_result.map_err(|e| output_error("stderr", e))?;
    Ok(exit_code(status))
}

fn output_error(stream: &str, e: std::io::Error) -> Error {
    Error::internal(format!("cannot pass on the command's {stream}: {e}"))
        .with_provider(ProviderKind::Local)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
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

/// `workdir` of an exec: absolute as given, relative to the environment directory.
pub fn resolve_cwd(dir: &Path, workdir: Option<&str>) -> PathBuf {
    match workdir {
        Some(w) if Path::new(w).is_absolute() => PathBuf::from(w),
        Some(w) => dir.join(w),
        None => dir.to_path_buf(),
    }
}
