//! Runs the commands the fakes receive on this machine: a fake sandbox or machine is
//! a process namespace-less stand-in, good enough to prove exit codes, streams, stdin,
//! env and working directories travel correctly.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// Stdout.
    pub stdout: Vec<u8>,
    /// Stderr.
    pub stderr: Vec<u8>,
}

/// Runs `argv` to its end with `stdin` (closed when `None`).
pub async fn run(
    argv: &[String],
    stdin: Option<&[u8]>,
    env: &[(String, String)],
    cwd: Option<&str>,
) -> Output {
    let Some((cmd, args)) = argv.split_first() else {
        return Output {
            code: 127,
            stdout: Vec::new(),
            stderr: b"no command".to_vec(),
        };
    };
    let mut c = tokio::process::Command::new(cmd);
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return Output {
                code: 127,
                stdout: Vec::new(),
                stderr: format!("{cmd}: {e}\n").into_bytes(),
            };
        }
    };
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    match child.wait_with_output().await {
        Ok(o) => Output {
            code: exit_code(o.status),
            stdout: o.stdout,
            stderr: o.stderr,
        },
        Err(e) => Output {
            code: 127,
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        },
    }
}

/// An exit status as a shell reports it.
pub fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}
