//! Exec for the test API server: the websocket upgrade with the
//! `v5.channel.k8s.io`/`v4.channel.k8s.io` subprotocols, and a real process per
//! command, run with busybox in a chroot that is the pod's root file system.
//!
//! Channels: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error (a `Status`
//! JSON with the exit code, sent last), 4 resize (`{"Width":..,"Height":..}`), and in
//! v5 the close signal `[255, 0]` that ends stdin. With a TTY, stderr is merged into
//! stdout (as a terminal does) and stderr is not a channel; there is no real pty.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Body, Key, State, full, status_error};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a pod's root file system is on this machine: its own directory, or for a
/// Deployment's pod with a volume claim the claim's (see `controller.rs`), so what a
/// pod wrote there outlives the pod as a claim's data does.
pub(crate) fn pod_root(st: &State, ns: &str, pod: &str) -> PathBuf {
    let shared = st
        .lock()
        .objects
        .get(&Key::new("pods", ns, pod))
        .and_then(|p| p["metadata"]["annotations"][ROOT_ANNOTATION].as_str())
        .map(str::to_string);
    st.root.join(ns).join(shared.as_deref().unwrap_or(pod))
}

/// The annotation naming a pod's root directory when it is not the pod's own.
pub(crate) const ROOT_ANNOTATION: &str = "sindri-test/root";

/// The root directory of the pods that mount claim `claim`.
pub(crate) fn claim_root(claim: &str) -> String {
    format!("claim-{claim}")
}

fn secret_value(st: &State, ns: &str, secret: &str, key: &str) -> Option<Vec<u8>> {
    let g = st.lock();
    let data = g.objects.get(&Key::new("secrets", ns, secret))?["data"][key]
        .as_str()?
        .to_string();
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

/// Creates the pod's root (busybox and its applets, /tmp, /root, /etc) once, makes
/// the mount points, and writes secrets mounted as files.
pub(crate) fn prepare_root(st: &State, ns: &str, pod: &Value) -> std::io::Result<()> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("pod");
    let root = pod_root(st, ns, name);
    let bin = root.join("bin");
    if !bin.join("busybox").exists() {
        std::fs::create_dir_all(&bin)?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))?;
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link)?;
            }
        }
        for d in ["tmp", "root", "etc", "dev", "usr/bin"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    }
    std::fs::write(root.join("etc/hostname"), format!("{name}\n"))?;
    let container = &pod["spec"]["containers"][0];
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let path = m["mountPath"].as_str().unwrap_or("/");
        let target = root.join(path.trim_start_matches('/'));
        let volume = volumes.iter().find(|v| v["name"] == m["name"]);
        match (
            volume.and_then(|v| v["secret"]["secretName"].as_str()),
            m["subPath"].as_str(),
        ) {
            (Some(secret), Some(key)) => {
                if let Some(value) = secret_value(st, ns, secret, key) {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&target, value)?;
                }
            }
            _ => std::fs::create_dir_all(&target)?,
        }
    }
    Ok(())
}

/// The container's environment as the kubelet would set it.
fn environment(st: &State, ns: &str, pod: &Value, tty: bool) -> Vec<(String, String)> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("pod");
    let mut env = vec![
        ("PATH".to_string(), PATH.to_string()),
        ("HOSTNAME".to_string(), name.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    if tty {
        env.push(("TERM".into(), "xterm".into()));
    }
    for e in pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(k) = e["name"].as_str() else {
            continue;
        };
        if let Some(v) = e["value"].as_str() {
            env.push((k.to_string(), v.replace("$$", "$")));
        } else if let (Some(secret), Some(key)) = (
            e["valueFrom"]["secretKeyRef"]["name"].as_str(),
            e["valueFrom"]["secretKeyRef"]["key"].as_str(),
        ) && let Some(v) = secret_value(st, ns, secret, key)
        {
            env.push((k.to_string(), String::from_utf8_lossy(&v).into_owned()));
        }
    }
    env
}

fn found_in_root(root: &Path, program: &str) -> bool {
    if program.contains('/') {
        return root.join(program.trim_start_matches('/')).exists();
    }
    PATH.split(':')
        .any(|d| root.join(d.trim_start_matches('/')).join(program).exists())
}

fn exit_status(code: i32) -> Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    }
}

/// Answers an exec request: checks the pod and the handshake, switches protocols and
/// runs the command on the upgraded connection.
pub(crate) async fn upgrade(
    st: Arc<State>,
    req: Request<Incoming>,
    ns: &str,
    pod_name: &str,
    params: &[(String, String)],
) -> Response<Body> {
    let Some(pod) = st
        .lock()
        .objects
        .get(&Key::new("pods", ns, pod_name))
        .cloned()
    else {
        return status_error(
            404,
            "NotFound",
            &format!("pods \"{pod_name}\" not found"),
            Some(json!({"name": pod_name, "kind": "pods"})),
        );
    };
    if pod["status"]["phase"].as_str() != Some("Running") {
        return status_error(
            400,
            "BadRequest",
            &format!("pod {pod_name} is not running"),
            None,
        );
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !header("upgrade").eq_ignore_ascii_case("websocket")
        || header("sec-websocket-key").is_empty()
    {
        return status_error(
            400,
            "BadRequest",
            "exec needs a websocket upgrade in this test server",
            None,
        );
    }
    let offered: Vec<String> = header("sec-websocket-protocol")
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    let speaks = st.lock().exec_offered.clone();
    let Some(protocol) = speaks.into_iter().find(|p| offered.iter().any(|o| o == p)) else {
        return status_error(
            400,
            "BadRequest",
            "no supported exec subprotocol offered (v5.channel.k8s.io, v4.channel.k8s.io)",
            None,
        );
    };
    st.lock().exec_protocols.push(protocol.to_string());
    let flag =
        |k: &str| super::param(params, k) == Some("true") || super::param(params, k) == Some("1");
    let argv: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return status_error(
            400,
            "BadRequest",
            "you must specify at least one command for the container",
            None,
        );
    }
    let opts = Opts {
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        tty: flag("tty"),
        v5: protocol.starts_with("v5"),
    };
    if opts.tty && opts.stderr {
        return status_error(
            400,
            "BadRequest",
            "tty and stderr cannot both be true",
            None,
        );
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
        header("sec-websocket-key").as_bytes(),
    );
    let root = pod_root(&st, ns, pod_name);
    let env = environment(&st, ns, &pod, opts.tty);
    let st2 = st.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        session(st2, ws, root, env, argv, opts).await;
    });
    let mut resp = full(
        StatusCode::SWITCHING_PROTOCOLS,
        "application/octet-stream",
        Vec::new(),
    );
    let h = resp.headers_mut();
    h.remove("content-type");
    h.insert("upgrade", "websocket".parse().expect("header"));
    h.insert("connection", "Upgrade".parse().expect("header"));
    h.insert("sec-websocket-accept", accept.parse().expect("header"));
    h.insert("sec-websocket-protocol", protocol.parse().expect("header"));
    resp
}

#[derive(Debug, Clone, Copy)]
struct Opts {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    v5: bool,
}

async fn session<S>(
    st: Arc<State>,
    mut ws: WebSocketStream<S>,
    root: PathBuf,
    env: Vec<(String, String)>,
    argv: Vec<String>,
    opts: Opts,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // The API server opens each output channel with an empty frame.
    for ch in [1u8, 2, 3] {
        if ws.send(Message::binary(vec![ch])).await.is_err() {
            return;
        }
    }
    if !found_in_root(&root, &argv[0]) {
        let status = json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": format!("Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown", argv[0]),
            "details": {"causes": [{"message": format!("exec: \"{}\": executable file not found in $PATH", argv[0])}]},
            "code": 500,
        });
        let mut frame = vec![3u8];
        frame.extend(serde_json::to_vec(&status).unwrap_or_default());
        let _ = ws.send(Message::binary(frame)).await;
        let _ = ws.close(None).await;
        return;
    }
    let mut cmd = tokio::process::Command::new("chroot");
    cmd.arg(&root);
    if opts.tty {
        // A terminal shows both streams in one.
        cmd.args(["/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"]);
    }
    cmd.args(&argv)
        .env_clear()
        .envs(env)
        .stdin(if opts.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError", "message": format!("test server cannot run chroot: {e}")});
            let mut frame = vec![3u8];
            frame.extend(serde_json::to_vec(&status).unwrap_or_default());
            let _ = ws.send(Message::binary(frame)).await;
            return;
        }
    };
    let mut child_stdin = child.stdin.take();
    let (tx, mut rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
    for (ch, stream) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut stream) = stream else { continue };
        let tx = tx.clone();
        let send = (ch == 1 && opts.stdout) || (ch == 2 && opts.stderr);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if send && tx.send((ch, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let mut outputs_open = true;
    loop {
        tokio::select! {
            out = rx.recv(), if outputs_open => match out {
                Some((ch, data)) => {
                    let mut frame = vec![ch];
                    frame.extend(data);
                    if ws.send(Message::binary(frame)).await.is_err() {
                        return;
                    }
                }
                None => outputs_open = false,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => match b[0] {
                    0 => {
                        if let Some(stdin) = child_stdin.as_mut()
                            && stdin.write_all(&b[1..]).await.is_err()
                        {
                            child_stdin = None;
                        }
                    }
                    4 => {
                        if let Ok(size) = serde_json::from_slice::<Value>(&b[1..]) {
                            let w = size["Width"].as_u64().unwrap_or(0) as u16;
                            let h = size["Height"].as_u64().unwrap_or(0) as u16;
                            st.lock().resizes.push((w, h));
                        }
                    }
                    255 if opts.v5 && b.get(1) == Some(&0) => child_stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away (v4 ends stdin this way): stop the command.
                    let _ = child.start_kill();
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
        if !outputs_open {
            break;
        }
    }
    drop(child_stdin);
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + s.signal().unwrap_or(0)
        }),
        Err(_) => 255,
    };
    let mut frame = vec![3u8];
    frame.extend(serde_json::to_vec(&exit_status(code)).unwrap_or_default());
    let _ = ws.send(Message::binary(frame)).await;
    let _ = ws.close(None).await;
}
