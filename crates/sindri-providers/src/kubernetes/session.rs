//! Sessions inside the pod through the API's exec (websocket, `v5.channel.k8s.io` with
//! a fallback to v4): commands, the interactive shell with TTY resize, logs, and file
//! copies as tar streams over exec.

use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status as ExecStatus;
use kube::Api;
use kube::api::{AttachParams, LogParams, TerminalSize};
use sindri_core::{
    Deployment, Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Result, TransferStats,
};
use sindri_spec::ProviderKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::archive;
use super::connect::Conn;
use super::status::{require_workload, running_pod, target};

/// Buffer of each exec stream; kube's default (1 KiB) makes copies slow.
const STREAM_BUF: usize = 64 * 1024;

/// The shell `connect` opens: a login bash when the image has it, else sh.
pub(crate) const SHELL: &str =
    "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi";

/// The argv that runs `cmd` with its environment and working directory: Kubernetes'
/// exec has neither, so `sh` sets them (without a shell when neither is asked for).
pub(crate) fn wrap(cmd: &ExecCommand) -> Result<Vec<String>> {
    if let Some(user) = &cmd.user {
        return Err(Error::invalid(format!(
            "the kubernetes provider cannot run a command as user `{user}`: the API's exec runs as the container's user"
        ))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("leave out the user, or set the image's USER"));
    }
    if cmd.env.is_empty() && cmd.workdir.is_none() {
        return Ok(cmd.argv.clone());
    }
    for (k, _) in &cmd.env {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::invalid(format!(
                "`{k}` is not a valid environment variable name"
            )));
        }
    }
    // `$0` is the working directory (or `.`); the rest is `env K=V... argv...`.
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        "cd -- \"$0\" && exec \"$@\"".to_string(),
        cmd.workdir.clone().unwrap_or_else(|| ".".to_string()),
        "env".to_string(),
    ];
    argv.extend(cmd.env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.extend(cmd.argv.iter().cloned());
    Ok(argv)
}

/// The exit code in an exec's final status: `Success` is 0; `NonZeroExitCode` carries
/// the code as the `ExitCode` cause.
pub(crate) fn exit_code(status: &ExecStatus) -> Result<i32> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse::<i32>().ok())
    {
        return Ok(code);
    }
    Err(Error::new(
        ErrorKind::Platform,
        format!(
            "the command could not be run in the pod: {}",
            status.message.as_deref().unwrap_or("no message")
        ),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint("is the program installed in the image and on its PATH?"))
}

/// Runs `argv` in the environment's pod, streaming `io`; returns the exit code.
pub(crate) async fn run(conn: &Conn, d: &Deployment, argv: Vec<String>, io: ExecIo) -> Result<i32> {
    let (ns, pod, container) = running_pod(conn, d).await?;
    let ExecIo {
        stdin,
        mut stdout,
        mut stderr,
        tty,
    } = io;
    let ap = AttachParams {
        container: Some(container),
        stdin: stdin.is_some(),
        stdout: true,
        stderr: tty.is_none(),
        tty: tty.is_some(),
        max_stdin_buf_size: Some(STREAM_BUF),
        max_stdout_buf_size: Some(STREAM_BUF),
        max_stderr_buf_size: Some(STREAM_BUF),
    };
    let mut attached = Api::<Pod>::namespaced(conn.stream.clone(), &ns)
        .exec(&pod, argv, &ap)
        .await
        .map_err(|e| conn.error("create", "pods/exec", Some(&pod), &ns, e))?;
    let status = attached
        .take_status()
        .ok_or_else(|| Error::internal("the exec status was already taken"))?;

    let had_stdin = stdin.is_some();
    // Input runs on its own: an interactive stdin may never end, and the session is
    // over when the command's status arrives.
    let input = match (stdin, attached.stdin()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        })),
        _ => None,
    };
    let resize = match (tty, attached.terminal_size()) {
        (Some(mut sizes), Some(mut tx)) => Some(tokio::spawn(async move {
            loop {
                let (width, height) = *sizes.borrow_and_update();
                if tx.send(TerminalSize { width, height }).await.is_err() {
                    break;
                }
                if sizes.changed().await.is_err() {
                    break;
                }
            }
        })),
        _ => None,
    };
    let (out_reader, err_reader) = (attached.stdout(), attached.stderr());
    let out = async {
        if let Some(mut r) = out_reader {
            tokio::io::copy(&mut r, &mut stdout).await?;
        }
        stdout.flush().await
    };
    let err = async {
        if let Some(mut r) = err_reader {
            tokio::io::copy(&mut r, &mut stderr).await?;
        }
        stderr.flush().await
    };
    let copy = async {
        let (out, err) = tokio::join!(out, err);
        out.and(err)
    };
    let mut copy = std::pin::pin!(copy);
    let mut status = std::pin::pin!(status);
    let mut copied = None;
    let status = loop {
        tokio::select! {
            s = &mut status => break s,
            c = &mut copy, if copied.is_none() => copied = Some(c),
        }
    };
    let copied = match (copied, &status) {
        (Some(c), _) => c,
        // kube closes the output streams after the status...
        (None, Some(_)) => copy.await,
        // ...but not when the stream broke: take what already arrived.
        (None, None) => tokio::time::timeout(Duration::from_millis(200), copy)
            .await
            .unwrap_or(Ok(())),
    };
    for task in [input, resize].into_iter().flatten() {
        task.abort();
    }
    let broke = attached.join().await.err();
    copied.map_err(|e| Error::internal(format!("cannot write the command's output: {e}")))?;
    match status {
        Some(s) => exit_code(&s),
        None => Err(Error::new(
            ErrorKind::Unavailable,
            match broke {
                Some(e) => format!(
                    "the exec stream to pod {pod} ended without an exit status: {e}"
                ),
                None => format!("the exec stream to pod {pod} ended without an exit status"),
            },
        )
        .with_provider(ProviderKind::Kubernetes)
        .with_hint(if had_stdin {
            // Over v4.channel.k8s.io the end of input can only be signalled by
            // closing the whole connection, which ends the command with it.
            "the connection to the API server dropped, or the server speaks only the v4 exec protocol (Kubernetes before 1.30), which cannot tell a command its input ended: commands that read their input to the end, and copies into the environment, need Kubernetes 1.30 or later"
        } else {
            "the connection to the API server dropped; run the command again"
        })),
    }
}

/// `logs`: the container's output, optionally followed until the container stops.
pub(crate) async fn logs(
    conn: &Conn,
    d: &Deployment,
    opts: LogOptions,
    out: LogSink<'_>,
) -> Result<()> {
    let t = target(conn, d);
    let w = require_workload(conn, d, &t).await?;
    let pods = super::status::pods(conn, &w, &t.ns).await?;
    let Some(pod) = pods.first() else {
        return Err(Error::invalid(format!(
            "environment `{}` has no pod, so no logs (it is stopped or still starting)",
            d.name
        ))
        .with_provider(ProviderKind::Kubernetes)
        .with_hint("start it with `sindri start`"));
    };
    let name = kube::ResourceExt::name_any(pod);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone());
    let lp = LogParams {
        container,
        follow: opts.follow,
        tail_lines: opts.tail.map(|n| n.min(i64::MAX as u64) as i64),
        ..Default::default()
    };
    let client = if opts.follow {
        &conn.stream
    } else {
        &conn.client
    };
    let reader = Api::<Pod>::namespaced(client.clone(), &t.ns)
        .log_stream(&name, &lp)
        .await
        .map_err(|e| conn.error("get", "pods/log", Some(&name), &t.ns, e))?;
    // futures-util's `io` feature comes with kube's `futures` dependency.
    let mut reader = std::pin::pin!(reader);
    let mut buf = vec![0u8; STREAM_BUF];
    loop {
        let n = futures_util::AsyncReadExt::read(&mut reader, &mut buf)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("the log stream of pod {name} broke: {e}"),
                )
                .with_provider(ProviderKind::Kubernetes)
            })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .await
            .map_err(|e| Error::internal(format!("cannot write the logs: {e}")))?;
        out.flush().await.ok();
    }
    Ok(())
}

/// `copy_in`: a local file or tree, packed on a blocking thread and unpacked by `tar`
/// in the pod. A directory becomes `to`; a file becomes `to`, or goes into `to` when
/// that is an existing directory.
pub(crate) async fn copy_in(
    conn: &Conn,
    d: &Deployment,
    from: &Path,
    to: &str,
) -> Result<TransferStats> {
    let meta = std::fs::metadata(from).map_err(|e| archive::io_error("read", from, e))?;
    running_pod(conn, d).await?;
    let script = if meta.is_dir() {
        "mkdir -p -- \"$0\" && tar -xf - -C \"$0\""
    } else {
        "if [ -d \"$0\" ]; then tar -xf - -C \"$0\"; else mkdir -p -- \"$(dirname -- \"$0\")\" && tar -xOf - > \"$0\"; fi"
    };
    let argv = vec!["sh".into(), "-c".into(), script.into(), to.to_string()];
    let entries = if meta.is_dir() {
        archive::walk(from)?
    } else {
        let name = from.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::invalid(format!("{}: the file name must be UTF-8", from.display()))
        })?;
        vec![archive::Entry {
            name: name.to_string(),
            path: from.to_path_buf(),
        }]
    };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let packer =
        tokio::task::spawn_blocking(move || archive::pack(archive::stdin_writer(tx), &entries));
    let (reader, mut writer) = tokio::io::duplex(STREAM_BUF);
    let feed = async move {
        while let Some(chunk) = rx.recv().await {
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    };
    let err = archive::SharedBuf::default();
    let io = ExecIo {
        stdin: Some(Box::new(reader)),
        stdout: Box::new(tokio::io::sink()),
        stderr: Box::new(err.clone()),
        tty: None,
    };
    let (code, ()) = tokio::join!(run(conn, d, argv, io), feed);
    let stats = packer
        .await
        .map_err(|e| Error::internal(format!("packing failed: {e}")))?;
    let code = code?;
    if code != 0 {
        return Err(remote_failure("unpack into", to, code, &err.text()));
    }
    stats
}

/// `copy_out`: `tar` in the pod packs `from` (named by its base name), and the archive
/// is unpacked here on a blocking thread.
pub(crate) async fn copy_out(
    conn: &Conn,
    d: &Deployment,
    from: &str,
    to: &Path,
) -> Result<TransferStats> {
    running_pod(conn, d).await?;
    let argv = vec![
        "sh".into(),
        "-c".into(),
        "cd -- \"$(dirname -- \"$0\")\" && tar -cf - -- \"$(basename -- \"$0\")\"".into(),
        from.trim_end_matches('/').to_string(),
    ];
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let dest = to.to_path_buf();
    let unpacker = tokio::task::spawn_blocking(move || {
        archive::unpack(archive::ChannelReader::new(rx), &dest)
    });
    let (writer, mut reader) = tokio::io::duplex(STREAM_BUF);
    let forward = async move {
        let mut buf = vec![0u8; STREAM_BUF];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let err = archive::SharedBuf::default();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(writer),
        stderr: Box::new(err.clone()),
        tty: None,
    };
    let (code, ()) = tokio::join!(run(conn, d, argv, io), forward);
    let result = unpacker
        .await
        .map_err(|e| Error::internal(format!("unpacking failed: {e}")))?;
    let code = code?;
    if code != 0 {
        let text = err.text();
        if text.contains("No such file") || text.contains("not found") || text.contains("can't") {
            return Err(Error::not_found(format!(
                "`{from}` does not exist in environment `{}`",
                d.name
            ))
            .with_provider(ProviderKind::Kubernetes));
        }
        return Err(remote_failure("pack", from, code, &text));
    }
    result
}

fn remote_failure(action: &str, path: &str, code: i32, stderr: &str) -> Error {
    Error::new(
        ErrorKind::Platform,
        format!(
            "tar in the pod could not {action} `{path}` (exit code {code}): {}",
            stderr.trim()
        ),
    )
    .with_provider(ProviderKind::Kubernetes)
    .with_hint("the image needs `sh` and `tar` for copies")
}
