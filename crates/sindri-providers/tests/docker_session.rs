//! Sessions on the real engine: connect with and without a TTY (bash or sh), exec
//! details, logs with tail and follow, and copy's edge cases.
#![cfg(feature = "docker")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use sindri_core::{
    DeployOptions, Deployment, DestroyOptions, ErrorKind, ExecCommand, ExecIo, LogOptions,
    Provider, TransferStats, dispatch,
};
use sindri_providers::conformance::{Recorder, SharedBuffer, exec_capture};
use support::TestEnv;
use tokio::io::AsyncWriteExt;

async fn deployed(env: &TestEnv) -> (Arc<dyn Provider>, Deployment) {
    let p = support::provider();
    let d = dispatch::deploy(
        p.as_ref(),
        &env.spec,
        DeployOptions::default(),
        &Recorder::new(),
    )
    .await
    .expect("deploy");
    (p, d)
}

async fn finish(p: &Arc<dyn Provider>, d: &Deployment, env: &TestEnv) {
    dispatch::destroy(p.as_ref(), d, DestroyOptions { volumes: true })
        .await
        .unwrap();
    assert!(support::leftovers(&env.name).await.is_empty());
}

/// Polls until `buf` contains `text`; bounded by attempts.
async fn wait_for_text(buf: &SharedBuffer, text: &str) {
    for _ in 0..100 {
        if buf.text().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw {text:?}; got {:?}", buf.text());
}

async fn connect_plain(p: &Arc<dyn Provider>, d: &Deployment, script: &str) -> (i32, String) {
    let out = SharedBuffer::default();
    let io = ExecIo {
        stdin: Some(Box::new(std::io::Cursor::new(script.as_bytes().to_vec()))),
        stdout: Box::new(out.clone()),
        stderr: Box::new(SharedBuffer::default()),
        tty: None,
    };
    let code = dispatch::connect(p.as_ref(), d, io).await.expect("connect");
    (code, out.text())
}

#[tokio::test]
async fn connect_opens_bash_when_present_else_sh() {
    let with_bash = TestEnv::new("connect-bash", serde_json::json!({}));
    let without = TestEnv::new(
        "connect-sh",
        serde_json::json!({"image": support::IMAGE_NOBASH}),
    );
    let (p, d1) = deployed(&with_bash).await;
    let (_, d2) = deployed(&without).await;
    let script = "echo \"shell=${BASH_VERSION:-sh}\"; exit 4\n";
    let (code, out) = connect_plain(&p, &d1, script).await;
    assert_eq!(code, 4, "the shell's exit code is returned");
    assert!(
        out.starts_with("shell=5."),
        "bash is used when present: {out:?}"
    );
    let (code, out) = connect_plain(&p, &d2, script).await;
    assert_eq!(
        (code, out.as_str()),
        (4, "shell=sh\n"),
        "sh is the fallback"
    );
    finish(&p, &d1, &with_bash).await;
    finish(&p, &d2, &without).await;
}

#[tokio::test]
async fn connect_with_a_tty_follows_window_resizes() {
    let mut env = TestEnv::new("tty", serde_json::json!({}));
    env.secret("TTY_SECRET", "visible-in-shell", None);
    let (p, d) = deployed(&env).await;
    let (sizes, rx) = tokio::sync::watch::channel((80u16, 24u16));
    let (mut keyboard, stdin) = tokio::io::duplex(4096);
    let screen = SharedBuffer::default();
    let io = ExecIo {
        stdin: Some(Box::new(stdin)),
        stdout: Box::new(screen.clone()),
        stderr: Box::new(SharedBuffer::default()),
        tty: Some(rx),
    };
    let (p2, d2) = (p.clone(), d.clone());
    let session = tokio::spawn(async move { dispatch::connect(p2.as_ref(), &d2, io).await });

    keyboard
        .write_all(b"stty size; echo \"[$TTY_SECRET]\"\n")
        .await
        .unwrap();
    wait_for_text(&screen, "24 80").await;
    wait_for_text(&screen, "[visible-in-shell]").await;
    sizes.send((132, 40)).unwrap();
    let mut resized = false;
    for _ in 0..50 {
        keyboard.write_all(b"stty size\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if screen.text().contains("40 132") {
            resized = true;
            break;
        }
    }
    assert!(resized, "the TTY was not resized: {:?}", screen.text());
    keyboard.write_all(b"exit 5\n").await.unwrap();
    let code = session.await.unwrap().expect("connect");
    assert_eq!(code, 5);
    finish(&p, &d, &env).await;
}

#[tokio::test]
async fn exec_streams_large_input_runs_as_a_user_and_reports_failures() {
    let env = TestEnv::new("exec", serde_json::json!({}));
    let (p, d) = deployed(&env).await;
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let cat = exec_capture(p.as_ref(), &d, &ExecCommand::new(["cat"]), Some(&big))
        .await
        .unwrap();
    assert_eq!(cat.code, 0);
    assert!(
        cat.stdout == big,
        "2 MB of stdin came back unchanged ({} bytes)",
        cat.stdout.len()
    );

    let mut as_nobody = ExecCommand::new(["id", "-u"]);
    as_nobody.user = Some("65534".into());
    let id = exec_capture(p.as_ref(), &d, &as_nobody, None)
        .await
        .unwrap();
    assert_eq!(id.out(), "65534\n");

    let missing = exec_capture(p.as_ref(), &d, &ExecCommand::new(["no-such-program"]), None)
        .await
        .unwrap();
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(missing.err().contains("no-such-program"), "{missing:?}");

    let e = dispatch::exec(p.as_ref(), &d, &ExecCommand::default(), ExecIo::null())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "an empty command is refused");

    dispatch::stop(p.as_ref(), &d).await.unwrap();
    let e = exec_capture(p.as_ref(), &d, &ExecCommand::new(["true"]), None)
        .await
        .unwrap_err();
    assert!(e.message().contains("not running"), "{e}");
    assert!(e.hint().unwrap().contains("sindri start"));
    finish(&p, &d, &env).await;
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let env = TestEnv::new("logs", serde_json::json!({}));
    let (p, d) = deployed(&env).await;
    // Docker reads a container's stdout and stderr separately, so their relative order
    // is only kept across separate commands.
    for cmd in [
        "echo err-line >/proc/1/fd/2",
        "for i in 1 2 3 4 5; do echo line$i; done >/proc/1/fd/1",
    ] {
        let w = exec_capture(p.as_ref(), &d, &ExecCommand::shell(cmd), None)
            .await
            .unwrap();
        assert_eq!(w.code, 0, "{w:?}");
    }

    let mut all = SharedBuffer::default();
    dispatch::logs(p.as_ref(), &d, LogOptions::default(), &mut all)
        .await
        .unwrap();
    assert!(
        all.text().contains("err-line\n"),
        "stderr is in the logs: {:?}",
        all.text()
    );
    assert!(all.text().contains("line1\nline2\nline3\nline4\nline5\n"));
    let mut tail = SharedBuffer::default();
    dispatch::logs(
        p.as_ref(),
        &d,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
        &mut tail,
    )
    .await
    .unwrap();
    assert_eq!(tail.text(), "line4\nline5\n");

    let followed = SharedBuffer::default();
    let (p2, d2, mut sink) = (p.clone(), d.clone(), followed.clone());
    let follower = tokio::spawn(async move {
        dispatch::logs(
            p2.as_ref(),
            &d2,
            LogOptions {
                follow: true,
                tail: Some(0),
            },
            &mut sink,
        )
        .await
    });
    exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("echo late-line >/proc/1/fd/1"),
        None,
    )
    .await
    .unwrap();
    wait_for_text(&followed, "late-line").await;
    assert!(
        !followed.text().contains("line1"),
        "tail 0 starts at the end"
    );
    dispatch::stop(p.as_ref(), &d).await.unwrap();
    follower
        .await
        .unwrap()
        .expect("follow ends cleanly when the environment stops");
    finish(&p, &d, &env).await;
}

#[tokio::test]
async fn copy_edge_cases() {
    let env = TestEnv::new("copy", serde_json::json!({}));
    let (p, d) = deployed(&env).await;
    let local = tempfile::tempdir().unwrap();
    let file = support::write(&local.path().join("note.txt"), "note\n");

    let e = dispatch::copy_in(p.as_ref(), &d, &local.path().join("absent"), "/tmp/x")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = dispatch::copy_out(p.as_ref(), &d, "/no/such/path", &local.path().join("o"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = dispatch::copy_in(p.as_ref(), &d, &file, "relative/path")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);

    // Missing parents are created.
    let s = dispatch::copy_in(p.as_ref(), &d, &file, "/root/a/b/renamed.txt")
        .await
        .unwrap();
    assert_eq!(s, TransferStats { files: 1, bytes: 5 });
    // Into an existing directory, a file keeps its name.
    dispatch::copy_in(p.as_ref(), &d, &file, "/tmp")
        .await
        .unwrap();
    let check = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::shell("cat /root/a/b/renamed.txt /tmp/note.txt; stat -c %a /root/a"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(check.out(), "note\nnote\n755\n");

    // A directory onto a file is refused; into a directory it merges.
    let e = dispatch::copy_in(p.as_ref(), &d, local.path(), "/tmp/note.txt")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    let one = tempfile::tempdir().unwrap();
    support::write(&one.path().join("first"), "1");
    let two = tempfile::tempdir().unwrap();
    support::write(&two.path().join("second"), "2");
    dispatch::copy_in(p.as_ref(), &d, one.path(), "/root/merged")
        .await
        .unwrap();
    dispatch::copy_in(p.as_ref(), &d, two.path(), "/root/merged/")
        .await
        .unwrap();
    let ls = exec_capture(
        p.as_ref(),
        &d,
        &ExecCommand::new(["ls", "/root/merged"]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ls.out(), "first\nsecond\n");

    // Out of the environment: a file into an existing local directory keeps its name.
    let out_dir = tempfile::tempdir().unwrap();
    let s = dispatch::copy_out(p.as_ref(), &d, "/tmp/note.txt", out_dir.path())
        .await
        .unwrap();
    assert_eq!(s, TransferStats { files: 1, bytes: 5 });
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("note.txt")).unwrap(),
        "note\n"
    );
    // Copies work on a stopped environment too.
    dispatch::stop(p.as_ref(), &d).await.unwrap();
    let s = dispatch::copy_out(p.as_ref(), &d, "/root/merged", &out_dir.path().join("m"))
        .await
        .unwrap();
    assert_eq!(s, TransferStats { files: 2, bytes: 2 });
    finish(&p, &d, &env).await;
}
