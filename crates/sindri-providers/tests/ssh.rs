//! `sindri_providers::ssh` against a real OpenSSH server started by each test on
//! 127.0.0.1 (Debian's `openssh-server`; the test fails saying how to install it when
//! `/usr/sbin/sshd` is missing), through the system `ssh` client.
#![cfg(feature = "ssh")]

#[path = "support/aws/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sindri_core::{ErrorKind, ExecCommand, ExecIo, LogOptions, TransferStats};
use sindri_providers::conformance::SharedBuffer;
use sindri_providers::ssh::{LogSource, SshSession, SshTarget};
use sshd::Sshd;

/// Runs `cmd` and returns (exit code, stdout, stderr).
async fn run(s: &SshSession, cmd: &ExecCommand, stdin: Option<Vec<u8>>) -> (i32, String, String) {
    let out = SharedBuffer::default();
    let err = SharedBuffer::default();
    let io = ExecIo {
        stdin: stdin.map(|b| {
            Box::new(std::io::Cursor::new(b)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
        }),
        stdout: Box::new(out.clone()),
        stderr: Box::new(err.clone()),
        tty: None,
    };
    let code = s
        .exec(cmd, io)
        .await
        .unwrap_or_else(|e| panic!("exec {:?}: {e} (hint: {:?})", cmd.argv, e.hint()));
    (code, out.text(), err.text())
}

fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let e = e.expect("entry");
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                go(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).expect("under root").to_path_buf(),
                    std::fs::read(&p).expect("read"),
                );
            }
        }
    }
    let mut m = BTreeMap::new();
    go(root, root, &mut m);
    m
}

#[tokio::test]
async fn exec_keeps_stdout_and_stderr_apart_and_returns_the_exit_code() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("exec", state.path());

    let (code, out, err) = run(&s, &ExecCommand::new(["echo", "hello world"]), None).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello world\n", ""));

    let (code, out, err) = run(
        &s,
        &ExecCommand::shell("echo to-out; echo to-err >&2; exit 3"),
        None,
    )
    .await;
    assert_eq!(code, 3, "the remote exit code comes back unchanged");
    assert_eq!(out, "to-out\n");
    assert_eq!(err, "to-err\n");

    // Words with quotes, spaces and shell syntax arrive as they were given.
    let tricky = ["it's", "a b", "$(echo no)", "*", ""];
    let mut argv = vec!["printf".to_string(), "[%s]\\n".to_string()];
    argv.extend(tricky.iter().map(|s| s.to_string()));
    let (code, out, _) = run(&s, &ExecCommand::new(argv), None).await;
    assert_eq!(code, 0);
    assert_eq!(out, "[it's]\n[a b]\n[$(echo no)]\n[*]\n[]\n");

    let mut cmd = ExecCommand::shell("echo \"$GREETING\"; pwd");
    cmd.env = vec![("GREETING".into(), "value with 'quotes' and spaces".into())];
    cmd.workdir = Some("/tmp".into());
    let (_, out, _) = run(&s, &cmd, None).await;
    assert_eq!(
        out, "value with 'quotes' and spaces\n/tmp\n",
        "env and workdir are applied"
    );

    // The master connection is kept for the next command, then closed on request.
    let sockets = || {
        std::fs::read_dir(state.path().join("ssh"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(sockets(), 1, "one control socket for the session");
    s.disconnect().await;
    assert_eq!(sockets(), 0, "disconnect closes the master");
    let (code, out, _) = run(&s, &ExecCommand::new(["echo", "again"]), None).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "again\n"),
        "a new master is opened on demand"
    );
    s.disconnect().await;
}

#[tokio::test]
async fn stdin_reaches_the_command_and_is_closed_at_its_end() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("stdin", state.path());
    let input: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (code, out, _) = run(&s, &ExecCommand::shell("wc -c"), Some(input.clone())).await;
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        input.len().to_string(),
        "every byte of stdin arrives"
    );
    let (code, out, _) = run(
        &s,
        &ExecCommand::new(["cat"]),
        Some(b"line one\nline two\n".to_vec()),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "line one\nline two\n"));
    // Without stdin, a reader sees end of file at once instead of hanging.
    let (code, out, _) = run(&s, &ExecCommand::new(["cat"]), None).await;
    assert_eq!((code, out.as_str()), (0, ""));
    s.disconnect().await;
}

#[tokio::test]
async fn copy_in_and_copy_out_round_trip_a_tree_byte_for_byte() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("copy", state.path());
    let local = tempfile::tempdir().expect("local");
    let remote_root = tempfile::tempdir().expect("remote root");
    let src = local.path().join("tree");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"alpha\n".to_vec()),
        (
            "bin.dat",
            (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
        ("empty", Vec::new()),
        ("sub/deeper/note.md", b"deep\n".to_vec()),
        ("sub/space name.txt", b"spaces are fine\n".to_vec()),
    ];
    let mut expected = TransferStats::default();
    for (rel, data) in &files {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
        expected.files += 1;
        expected.bytes += data.len() as u64;
    }
    let remote = remote_root
        .path()
        .join("not/yet/there")
        .to_string_lossy()
        .into_owned();
    let sent = s.copy_in(&src, &remote).await.expect("copy_in of a tree");
    assert_eq!(sent, expected, "copy_in counts files and bytes");
    assert_eq!(
        read_tree(Path::new(&remote)),
        read_tree(&src),
        "the tree arrives where it was sent"
    );

    let back = local.path().join("back");
    let got = s
        .copy_out(&remote, &back)
        .await
        .expect("copy_out of a tree");
    assert_eq!(got, expected, "copy_out counts files and bytes");
    assert_eq!(
        read_tree(&back),
        read_tree(&src),
        "the tree comes back byte for byte"
    );

    // A single file: to a new path, then into an existing directory.
    let single = local.path().join("single.sh");
    std::fs::write(&single, b"#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&single, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .expect("chmod");
    let remote_file = format!("{remote}/copied.sh");
    let one = s
        .copy_in(&single, &remote_file)
        .await
        .expect("copy_in of a file");
    assert_eq!(
        one,
        TransferStats {
            files: 1,
            bytes: 18
        }
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&remote_file).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o750, "the file mode is kept");
    s.copy_in(&single, &remote)
        .await
        .expect("copy_in into a directory");
    assert!(
        Path::new(&remote).join("single.sh").is_file(),
        "a file sent to a directory lands inside it"
    );
    let back_file = local.path().join("single-back.sh");
    let one_back = s
        .copy_out(&remote_file, &back_file)
        .await
        .expect("copy_out of a file");
    assert_eq!(
        one_back,
        TransferStats {
            files: 1,
            bytes: 18
        }
    );
    assert_eq!(
        std::fs::read(&back_file).expect("read"),
        b"#!/bin/sh\necho hi\n"
    );

    let missing = s
        .copy_out(&format!("{remote}/nope"), &local.path().join("x"))
        .await
        .expect_err("copy_out of a missing path");
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let missing_local = s
        .copy_in(&local.path().join("nope"), &remote)
        .await
        .expect_err("copy_in of a missing local path");
    assert_eq!(missing_local.kind(), ErrorKind::NotFound, "{missing_local}");
    s.disconnect().await;
}

#[tokio::test]
async fn host_and_port_are_parsed_and_failures_are_typed() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let addr = format!("{}@127.0.0.1:{}", server.user, server.port);
    let target = SshTarget::parse(&addr, "nobody")
        .expect("parse")
        .with_identity(&server.identity);
    assert_eq!(target, server.target());
    let opts = sindri_providers::ssh::SshOptions::in_state_dir(state.path());
    let s = SshSession::new("parsed", target.clone(), opts.clone());
    let (code, out, _) = run(&s, &ExecCommand::new(["echo", "ok"]), None).await;
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    s.disconnect().await;

    // Nothing listens on this port: Unavailable, so a caller waiting for a new
    // machine knows to retry.
    let closed = SshSession::new(
        "closed",
        target.clone().with_port(sshd::free_port()),
        opts.clone(),
    );
    let e = closed.connect_check().await.expect_err("nothing listens");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");

    // A key the server does not accept: Auth.
    let other_key = state.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let refused = SshSession::new(
        "refused",
        target.clone().with_identity(&other_key),
        opts.clone(),
    );
    let e = refused.connect_check().await.expect_err("key refused");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
}

#[tokio::test]
async fn a_changed_host_key_is_refused_with_a_hint() {
    let mut first = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = first
        .session("hostkey", state.path())
        .host_key_alias("i-0123456789");
    s.connect_check()
        .await
        .expect("first contact records the host key");
    let found = std::process::Command::new("ssh-keygen")
        .args(["-F", "i-0123456789", "-f"])
        .arg(state.path().join("known_hosts"))
        .output()
        .expect("ssh-keygen -F");
    assert!(
        found.status.success(),
        "the host key is recorded under the alias, in sindri's own known_hosts"
    );
    s.disconnect().await;
    let port = first.port;
    let key = first.identity.clone();
    let keep_key = state.path().join("client_key");
    std::fs::copy(&key, &keep_key).expect("keep key");
    std::fs::copy(key.with_extension("pub"), keep_key.with_extension("pub")).expect("keep pub");
    first.stop();
    drop(first);

    let second = Sshd::start_on(port, Some(&keep_key));
    let s2 = second
        .session("hostkey", state.path())
        .host_key_alias("i-0123456789");
    let e = s2
        .connect_check()
        .await
        .expect_err("a different host key behind the same alias");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.hint()
            .unwrap_or("")
            .contains("ssh-keygen -R i-0123456789"),
        "{:?}",
        e.hint()
    );
    // Another alias (a replaced machine) is a new machine: accepted.
    let s3 = second
        .session("hostkey-new", state.path())
        .host_key_alias("i-new");
    s3.connect_check()
        .await
        .expect("a new machine id is trusted on first use");
    s3.disconnect().await;
}

#[tokio::test]
async fn logs_read_the_first_source_that_exists() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("logs", state.path());
    let dir = tempfile::tempdir().expect("logs dir");
    let file = dir.path().join("app.log");
    std::fs::write(&file, "one\ntwo\nthree\n").expect("write log");
    let sources = [
        LogSource::File(
            dir.path()
                .join("missing.log")
                .to_string_lossy()
                .into_owned(),
        ),
        LogSource::File(file.to_string_lossy().into_owned()),
    ];
    let mut sink = SharedBuffer::default();
    s.logs(
        &sources,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
        &mut sink,
    )
    .await
    .expect("logs");
    assert_eq!(sink.text(), "two\nthree\n", "the last two lines");
    let mut all = SharedBuffer::default();
    s.logs(&sources, LogOptions::default(), &mut all)
        .await
        .expect("logs");
    assert_eq!(all.text(), "one\ntwo\nthree\n");
    let e = s
        .logs(
            &sources[..1],
            LogOptions::default(),
            &mut SharedBuffer::default(),
        )
        .await
        .expect_err("no source exists");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    s.disconnect().await;
}

/// A writer that accepts `limit` bytes, then fails like a closed pipe.
struct ClosedAfter {
    limit: usize,
    written: usize,
}

impl tokio::io::AsyncWrite for ClosedAfter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.written >= self.limit {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        self.written += buf.len();
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

#[tokio::test]
async fn a_closed_output_ends_an_endless_command() {
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("closed", state.path());
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(ClosedAfter {
            limit: 100_000,
            written: 0,
        }),
        stderr: Box::new(tokio::io::sink()),
        tty: None,
    };
    // `yes` never ends by itself: only stopping the command ends this exec.
    let e = s
        .exec(&ExecCommand::new(["yes"]), io)
        .await
        .expect_err("the output closed");
    assert!(e.message().to_lowercase().contains("broken pipe"), "{e}");
    s.disconnect().await;
}

#[tokio::test]
async fn the_test_machine_cannot_be_powered_off_by_a_run_end_hook() {
    // The sshd of these tests logs into this very host; a run's end hook
    // (`shutdown -h now` on a cloud VM) must meet a stand-in, never the real command.
    let server = Sshd::start();
    let state = tempfile::tempdir().expect("state");
    let s = server.session("power", state.path());
    let (code, out, _) = run(
        &s,
        &ExecCommand::shell("for c in shutdown poweroff halt reboot; do command -v $c; done"),
        None,
    )
    .await;
    assert_eq!(code, 0);
    for line in out.lines() {
        assert!(
            line.starts_with(&server.dir.path().join("bin").display().to_string()),
            "a real power command is reachable: {out}"
        );
    }
    assert_eq!(out.lines().count(), 4, "{out}");
}
