//! Exec, interactive shells, file copies and logs over the system OpenSSH client,
//! shared by every provider whose environments are machines reachable by SSH (EC2
//! now; RunPod and Lyceum later).
//!
//! # How `ssh` is run
//! Every call runs the `ssh` binary with
//! `-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=<sindri
//! state>/known_hosts -o ConnectTimeout=10`, so it never prompts, learns a new
//! machine's host key on first contact and refuses a changed one. The user's
//! `~/.ssh/config` still applies (proxies, jump hosts), but these options win because
//! command-line options come first.
//!
//! [`SshSession::connect_check`] (called before every operation) opens one master
//! connection per session with `ControlMaster=auto` and `ControlPersist`, so later
//! commands reuse it through a socket in a private directory instead of paying a
//! handshake each time; commands themselves run with `ControlMaster=no`, so a command
//! never becomes a lingering master. The check's stderr goes to a file, never to a
//! pipe a persisting master could hold open.
//!
//! A provider that replaces machines at recycled addresses (EC2 public IPs) sets
//! [`SshSession::host_key_alias`] to the machine's id, so its host key is remembered
//! per machine rather than per address.
//!
//! # Remote commands
//! `exec` runs `sh -c '<line>'` remotely, where the line sources the session's
//! [`env files`](SshSession::env_files), changes to the working directory, exports the
//! environment and `exec`s the argument vector, every word single-quoted. A command
//! for another user goes through `sudo -n -u USER`.

mod archive;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sindri_core::{
    Error, ErrorKind, ExecCommand, ExecIo, LogOptions, LogSink, Result, TransferStats,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

/// The exit code the copy-out script uses for a missing source.
const EXIT_MISSING: i32 = 44;
/// The exit code the logs script uses when no log source exists.
const EXIT_NO_LOGS: i32 = 45;
/// The longest Unix socket path ssh can bind, minus the random suffix it appends
/// while creating the socket (104 bytes on macOS, 108 on Linux).
const MAX_CONTROL_PATH: usize = 104 - 18;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port, usually 22.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key to offer (`-i`, with `IdentitiesOnly=yes`); `None` leaves the
    /// choice to ssh (agent, `~/.ssh/config`, default keys).
    pub identity: Option<PathBuf>,
}

impl SshTarget {
    /// A target on port 22 with no explicit identity.
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> SshTarget {
        SshTarget {
            host: host.into(),
            port: 22,
            user: user.into(),
            identity: None,
        }
    }

    /// Parses `[ssh://][user@]host[:port]`, with IPv6 hosts in brackets
    /// (`[::1]:2222`); `default_user` applies when no user is given.
    pub fn parse(address: &str, default_user: &str) -> Result<SshTarget> {
        let bad = |why: &str| {
            Error::invalid(format!("`{address}` is not an SSH address: {why}"))
                .with_hint("write it as `host`, `host:port`, `user@host:port` or `[::1]:2222`")
        };
        let rest = address.trim();
        let rest = rest.strip_prefix("ssh://").unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (u.to_string(), h),
            Some(_) => return Err(bad("the user before `@` is empty")),
            None => (default_user.to_string(), rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("`[` without `]`"))?;
            match after {
                "" => (h.to_string(), None),
                p => (
                    h.to_string(),
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else if hostport.matches(':').count() > 1 {
            // A bare IPv6 address: no port.
            (hostport.to_string(), None)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad(&format!("`{p}` is not a port (1-65535)"))),
            },
        };
        validate_host(&host).map_err(|why| bad(&why))?;
        validate_user(&user).map_err(|why| bad(&why))?;
        Ok(SshTarget {
            host,
            port,
            user,
            identity: None,
        })
    }

    /// This target with another port.
    pub fn with_port(mut self, port: u16) -> SshTarget {
        self.port = port;
        self
    }

    /// This target offering a specific private key.
    pub fn with_identity(mut self, identity: impl Into<PathBuf>) -> SshTarget {
        self.identity = Some(identity.into());
        self
    }

    /// `ssh://user@host:port`, for endpoints shown to people.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("ssh://{}@{host}:{}", self.user, self.port)
    }
}

fn validate_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.starts_with('-')
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(())
}

fn validate_user(user: &str) -> std::result::Result<(), String> {
    if user.is_empty()
        || user.starts_with('-')
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("`{user}` is not a user name"));
    }
    Ok(())
}

/// How `ssh` is run: the program, sindri's known_hosts file, the directory of
/// control sockets, and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The ssh client; default `ssh` from `PATH`.
    pub program: PathBuf,
    /// Host keys of the machines sindri connects to, kept apart from the user's own.
    pub known_hosts: PathBuf,
    /// Private directory of ControlMaster sockets; `None` turns multiplexing off.
    pub control_dir: Option<PathBuf>,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// How long an idle master connection stays open (`ControlPersist`).
    pub control_persist: Duration,
}

impl SshOptions {
    /// Options keeping known_hosts (and, when the path is short enough for a Unix
    /// socket, the control sockets) in sindri's state directory `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> SshOptions {
        let ssh_dir = state_dir.join("ssh");
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(|d| PathBuf::from(d).join("sindri-ssh"));
        let control_dir = [Some(ssh_dir), runtime]
            .into_iter()
            .flatten()
            .find(|d| d.is_absolute() && d.as_os_str().len() + 1 + 16 <= MAX_CONTROL_PATH);
        SshOptions {
            program: PathBuf::from("ssh"),
            known_hosts: state_dir.join("known_hosts"),
            control_dir,
            connect_timeout: Duration::from_secs(10),
            control_persist: Duration::from_secs(600),
        }
    }

    /// Options in sindri's state directory, found by the rules `sindri-state` uses:
    /// `SINDRI_STATE_DIR`, else `$XDG_STATE_HOME/sindri`, else `~/.local/state/sindri`.
    pub fn from_env() -> Result<SshOptions> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let dir = if let Some(d) = var("SINDRI_STATE_DIR") {
            PathBuf::from(d)
        } else if let Some(x) = var("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
        {
            x.join("sindri")
        } else if let Some(h) = var("HOME") {
            PathBuf::from(h).join(".local/state/sindri")
        } else {
            return Err(Error::internal(
                "cannot find sindri's state directory for SSH known hosts: SINDRI_STATE_DIR, XDG_STATE_HOME and HOME are unset",
            )
            .with_hint("set SINDRI_STATE_DIR to a writable directory"));
        };
        Ok(SshOptions::in_state_dir(&dir))
    }
}

/// Where `logs` reads from on the remote machine, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The systemd journal (the whole system, or one unit).
    Journal {
        /// `-u UNIT`, when only one unit's messages are wanted.
        unit: Option<String>,
    },
    /// A log file, read with `tail`.
    File(String),
}

/// One machine reached over SSH, with a master connection reused across calls.
#[derive(Debug, Clone)]
pub struct SshSession {
    target: SshTarget,
    options: SshOptions,
    key: String,
    host_key_alias: Option<String>,
    env_files: Vec<String>,
}

impl SshSession {
    /// A session for `target`. `key` names the environment (it picks the control
    /// socket, so two environments never share a connection). Does no I/O.
    pub fn new(key: &str, target: SshTarget, options: SshOptions) -> SshSession {
        SshSession {
            target,
            options,
            key: key.to_string(),
            host_key_alias: None,
            env_files: Vec::new(),
        }
    }

    /// Remembers the host key under `alias` (e.g. an instance id) instead of the address.
    pub fn host_key_alias(mut self, alias: impl Into<String>) -> SshSession {
        self.host_key_alias = Some(alias.into());
        self
    }

    /// Remote shell files sourced (when readable) before every `exec`, e.g. the
    /// environment's variables and delivered secrets.
    pub fn env_files(mut self, files: Vec<String>) -> SshSession {
        self.env_files = files;
        self
    }

    /// The machine this session reaches.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    fn control_path(&self) -> Option<PathBuf> {
        let dir = self.options.control_dir.as_ref()?;
        let mut h = Sha256::new();
        for part in [
            self.key.as_str(),
            self.target.user.as_str(),
            self.target.host.as_str(),
            &self.target.port.to_string(),
            self.host_key_alias.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let name: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(dir.join(name))
    }

    /// The options every invocation shares, ending with the destination.
    fn args(&self, master: bool) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut opt = |s: String| {
            a.push("-o".into());
            a.push(s.into());
        };
        opt("BatchMode=yes".into());
        opt("StrictHostKeyChecking=accept-new".into());
        opt(format!(
            "UserKnownHostsFile={}",
            self.options.known_hosts.display()
        ));
        opt(format!(
            "ConnectTimeout={}",
            self.options.connect_timeout.as_secs().max(1)
        ));
        opt("ServerAliveInterval=15".into());
        opt("ServerAliveCountMax=4".into());
        opt("LogLevel=ERROR".into());
        if let Some(alias) = &self.host_key_alias {
            opt(format!("HostKeyAlias={alias}"));
        }
        if let Some(id) = &self.target.identity {
            opt(format!("IdentityFile={}", id.display()));
            opt("IdentitiesOnly=yes".into());
        }
        match self.control_path() {
            Some(p) if master => {
                opt("ControlMaster=auto".into());
                opt(format!("ControlPath={}", p.display()));
                opt(format!(
                    "ControlPersist={}",
                    self.options.control_persist.as_secs().max(1)
                ));
            }
            Some(p) => {
                opt("ControlMaster=no".into());
                opt(format!("ControlPath={}", p.display()));
            }
            None => opt("ControlMaster=no".into()),
        }
        a.push("-p".into());
        a.push(self.target.port.to_string().into());
        a.push("-l".into());
        a.push(self.target.user.clone().into());
        a
    }

    fn command(&self, extra: &[&str], remote: Option<&str>) -> Command {
        let mut c = Command::new(&self.options.program);
        c.args(self.args(false));
        c.args(extra);
        c.arg("--").arg(&self.target.host);
        if let Some(r) = remote {
            c.arg(r);
        }
        c.kill_on_drop(true);
        c
    }

    fn prepare_dirs(&self) -> Result<()> {
        if let Some(parent) = self.options.known_hosts.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| archive::io_error("create the directory", parent, e))?;
        }
        if let Some(dir) = &self.options.control_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| archive::io_error("create the directory", dir, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| archive::io_error("restrict", dir, e))?;
            }
        }
        Ok(())
    }

    /// Connects (or finds the master connection alive) and maps any failure to a
    /// typed error: `Unavailable` when the machine cannot be reached (yet), `Auth`
    /// when the key is refused or the host key changed. Callers waiting for a new
    /// machine retry on `Unavailable`.
    pub async fn connect_check(&self) -> Result<()> {
        validate_host(&self.target.host).map_err(Error::invalid)?;
        self.prepare_dirs()?;
        if let Some(path) = self.control_path()
            && path.exists()
        {
            let alive = Command::new(&self.options.program)
                .args(self.args(false))
                .args(["-O", "check", "--", &self.target.host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .map(|s| s.success())
                .unwrap_or(false);
            if alive {
                return Ok(());
            }
        }
        // stderr goes to a file: a master that persists in the background keeps
        // whatever stderr it was given, and a pipe would never reach end of file.
        let log_dir = self
            .options
            .control_dir
            .clone()
            .or_else(|| self.options.known_hosts.parent().map(Path::to_path_buf))
            .unwrap_or_else(std::env::temp_dir);
        let log_path = log_dir.join(format!(
            "check-{}-{}.log",
            std::process::id(),
            unique_suffix()
        ));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| archive::io_error("create", &log_path, e))?;
        let status = Command::new(&self.options.program)
            .args(self.args(true))
            .args(["--", &self.target.host, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .status()
            .await;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let _ = std::fs::remove_file(&log_path);
        let status = status.map_err(|e| self.spawn_error(e))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.connect_error(&text))
        }
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorKind::Unavailable,
                format!("the OpenSSH client `{}` is not installed", self.options.program.display()),
            )
            .with_hint("install it: `apt-get install openssh-client` (Debian/Ubuntu), `brew install openssh` (macOS)")
        } else {
            Error::internal(format!(
                "cannot run `{}`: {e}",
                self.options.program.display()
            ))
        }
    }

    /// A typed error from ssh's own stderr.
    fn connect_error(&self, stderr: &str) -> Error {
        let who = format!(
            "{}@{}:{}",
            self.target.user, self.target.host, self.target.port
        );
        let text = stderr.trim();
        let has = |s: &str| text.contains(s);
        if has("Permission denied") || has("Too many authentication failures") {
            let key = match &self.target.identity {
                Some(k) => format!("the key {}", k.display()),
                None => "your SSH keys".to_string(),
            };
            Error::new(ErrorKind::Auth, format!("SSH to {who} refused {key}: {text}"))
                .with_hint("check that the matching public key was given to the machine (providers.<name>.ssh_public_key)")
        } else if has("Host key verification failed")
            || has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            let name = self.host_key_alias.as_deref().unwrap_or(&self.target.host);
            Error::new(
                ErrorKind::Auth,
                format!("the host key of {who} does not match the one sindri recorded"),
            )
            .with_hint(format!(
                "if the machine was replaced, forget its old key: `ssh-keygen -R {name} -f {}`",
                self.options.known_hosts.display()
            ))
        } else if [
            "Connection refused",
            "timed out",
            "No route to host",
            "Network is unreachable",
            "Could not resolve",
            "Connection closed",
            "Connection reset",
            "kex_exchange_identification",
            "not known",
        ]
        .iter()
        .any(|s| has(s))
        {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot reach {who} over SSH: {text}"),
            )
            .with_hint("the machine may still be booting, or a firewall blocks the port")
        } else {
            Error::new(
                ErrorKind::Unavailable,
                format!("SSH to {who} failed: {text}"),
            )
        }
    }

    /// The remote shell line that runs `cmd`.
    pub fn remote_line(&self, cmd: &ExecCommand) -> Result<String> {
        if cmd.argv.is_empty() {
            return Err(Error::invalid("no command given"));
        }
        let mut line = String::new();
        for f in &self.env_files {
            let q = quote(f);
            line.push_str(&format!("if [ -r {q} ]; then . {q}; fi; "));
        }
        if let Some(wd) = &cmd.workdir {
            line.push_str(&format!("cd -- {} || exit 1; ", quote(wd)));
        }
        for (k, v) in &cmd.env {
            if !is_env_name(k) {
                return Err(Error::invalid(format!(
                    "`{k}` is not an environment variable name: use letters, digits and `_`, not starting with a digit"
                )));
            }
            line.push_str(&format!("export {k}={}; ", quote(v)));
        }
        line.push_str("exec");
        for a in &cmd.argv {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let wrapped = format!("sh -c {}", quote(&line));
        Ok(match &cmd.user {
            Some(u) if *u != self.target.user => {
                validate_user(u).map_err(Error::invalid)?;
                format!("sudo -n -H -u {} -- {wrapped}", quote(u))
            }
            _ => wrapped,
        })
    }

    /// Runs `cmd` remotely, streaming its output; returns its exit code. With
    /// `io.tty`, ssh gets this process's terminal (`-t`) and handles resizes itself.
    pub async fn exec(&self, cmd: &ExecCommand, io: ExecIo) -> Result<i32> {
        let line = self.remote_line(cmd)?;
        self.connect_check().await?;
        if io.tty.is_some() {
            return self.interactive(Some(&line)).await;
        }
        self.piped(Some(&line), io).await
    }

    /// Opens the user's login shell: on this process's terminal when `io.tty` is
    /// set, else over the given streams without a TTY.
    pub async fn connect(&self, io: ExecIo) -> Result<i32> {
        self.connect_check().await?;
        if io.tty.is_some() {
            return self.interactive(None).await;
        }
        self.piped(None, io).await
    }

    async fn interactive(&self, remote: Option<&str>) -> Result<i32> {
        let status = self
            .command(&["-t"], remote)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .map_err(|e| self.spawn_error(e))?;
        exit_code(status)
    }

    async fn piped(&self, remote: Option<&str>, io: ExecIo) -> Result<i32> {
        let ExecIo {
            stdin,
            mut stdout,
            mut stderr,
            ..
        } = io;
        let mut child = self
            .command(&["-T"], remote)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        // Input is fed on its own task: the command may end without reading it all,
        // and a source that never ends (a terminal) must not keep us waiting.
        let feeder = match (stdin, child.stdin.take()) {
            (Some(mut src), Some(mut dst)) => Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut src, &mut dst).await;
                let _ = dst.shutdown().await;
            })),
            _ => None,
        };
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| Error::internal("ssh stdout was not captured"))?;
        let mut err = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("ssh stderr was not captured"))?;
        // A writer that fails (a closed pipe: `sindri exec ... | head`) ends the
        // command: nobody would read its output any more.
        let pumped = tokio::try_join!(pump(&mut out, &mut stdout), pump(&mut err, &mut stderr));
        if pumped.is_err() {
            let _ = child.start_kill();
        }
        let status = child.wait().await.map_err(|e| self.spawn_error(e));
        if let Some(f) = feeder {
            f.abort();
        }
        pumped?;
        exit_code(status?)
    }

    /// Runs a remote shell line, feeding `input`, and collects stdout, stderr and the
    /// exit code. For short control commands, not for streaming.
    pub async fn run(&self, line: &str, input: Option<Vec<u8>>) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        self.connect_check().await?;
        let mut child = self
            .command(&["-T"], Some(line))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
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
            .ok_or_else(|| Error::internal("ssh stdout was not captured"))?;
        let mut se = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("ssh stderr was not captured"))?;
        let (a, b) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
        a?;
        b?;
        let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
        if let Some(f) = feeder {
            let _ = f.await;
        }
        Ok((exit_code(status)?, out, err))
    }

    /// Copies a local file or directory to `to` on the machine. `to` names the copy
    /// itself: a directory's contents land in `to` (merged when it exists, created
    /// with its parents when not); a file becomes `to`, or `to/<name>` when `to` is an
    /// existing directory. A relative `to` is relative to the login directory.
    pub async fn copy_in(&self, from: &Path, to: &str) -> Result<TransferStats> {
        let to = normalize_remote(to)?;
        let meta = tokio::fs::metadata(from)
            .await
            .map_err(|e| archive::io_error("read", from, e))?;
        self.connect_check().await?;
        let q = quote(&to);
        if meta.is_dir() {
            let line = format!("mkdir -p -- {q} && tar -x -o -f - -C {q}");
            let root = from.to_path_buf();
            let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
            let packer = tokio::task::spawn_blocking(move || {
                let entries = archive::walk(&root)?;
                archive::pack(archive::stdin_writer(tx), &entries)
            });
            let (code, stderr) = self.feed(&line, rx).await?;
            let packed = packer
                .await
                .map_err(|e| Error::internal(format!("the archive writer failed: {e}")))?;
            self.check_copy(code, &stderr, &format!("copy {} to {to}", from.display()))?;
            packed
        } else if meta.is_file() {
            let name = from.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                Error::invalid(format!("{}: expected a file name in UTF-8", from.display()))
            })?;
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o7777
            };
            #[cfg(not(unix))]
            let mode = 0o644;
            let line = format!(
                "if [ -d {q} ]; then d={q}/{}; else mkdir -p -- \"$(dirname -- {q})\" && d={q}; fi && cat > \"$d\" && chmod {mode:o} \"$d\"",
                quote(name)
            );
            let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
            let path = from.to_path_buf();
            let reader = tokio::spawn(async move {
                let mut f = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| archive::io_error("open", &path, e))?;
                let mut total = 0u64;
                loop {
                    let mut buf = vec![0u8; archive::CHUNK];
                    let n = f
                        .read(&mut buf)
                        .await
                        .map_err(|e| archive::io_error("read", &path, e))?;
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    total += n as u64;
                    if tx.send(buf).await.is_err() {
                        break;
                    }
                }
                Ok::<u64, Error>(total)
            });
            let (code, stderr) = self.feed(&line, rx).await?;
            let bytes = reader
                .await
                .map_err(|e| Error::internal(format!("the file reader failed: {e}")))??;
            self.check_copy(code, &stderr, &format!("copy {} to {to}", from.display()))?;
            Ok(TransferStats { files: 1, bytes })
        } else {
            Err(Error::invalid(format!(
                "{} is neither a regular file nor a directory",
                from.display()
            )))
        }
    }

    /// Runs `line` with chunks from `rx` as its stdin; returns its exit code and stderr.
    async fn feed(&self, line: &str, mut rx: mpsc::Receiver<Vec<u8>>) -> Result<(i32, String)> {
        let mut child = self
            .command(&["-T"], Some(line))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::internal("ssh stdin was not captured"))?;
        let mut se = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("ssh stderr was not captured"))?;
        let send = async move {
            while let Some(chunk) = rx.recv().await {
                if stdin.write_all(&chunk).await.is_err() {
                    // The remote side stopped reading; its exit status says why.
                    break;
                }
            }
            let _ = stdin.shutdown().await;
        };
        let mut err = Vec::new();
        let (_, r) = tokio::join!(send, se.read_to_end(&mut err));
        r?;
        let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
        Ok((
            exit_code(status)?,
            String::from_utf8_lossy(&err).into_owned(),
        ))
    }

    fn check_copy(&self, code: i32, stderr: &str, what: &str) -> Result<()> {
        match code {
            0 => Ok(()),
            255 => Err(self.connect_error(stderr)),
            c => Err(Error::new(
                ErrorKind::Platform,
                format!(
                    "{what} failed on {} (exit code {c}): {}",
                    self.target.host,
                    stderr.trim()
                ),
            )),
        }
    }

    /// Copies `from` on the machine to a local path; `to` names the copy itself (see
    /// [`SshSession::copy_in`]). A missing `from` is `NotFound`.
    pub async fn copy_out(&self, from: &str, to: &Path) -> Result<TransferStats> {
        let from = normalize_remote(from)?;
        if from == "/" {
            return Err(Error::invalid(
                "refusing to copy the whole file system out (`/`)",
            ));
        }
        self.connect_check().await?;
        let q = quote(&from);
        let line = format!(
            "if [ -e {q} ] || [ -L {q} ]; then cd -- \"$(dirname -- {q})\" && exec tar -c -f - -- \"$(basename -- {q})\"; \
             else echo \"no such file or directory: \"{q} >&2; exit {EXIT_MISSING}; fi"
        );
        let mut child = self
            .command(&["-T"], Some(&line))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut so = child
            .stdout
            .take()
            .ok_or_else(|| Error::internal("ssh stdout was not captured"))?;
        let mut se = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("ssh stderr was not captured"))?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
        let dest = to.to_path_buf();
        let unpacker = tokio::task::spawn_blocking(move || {
            archive::unpack(archive::ChannelReader::new(rx), &dest)
        });
        let recv = async move {
            loop {
                let mut buf = vec![0u8; archive::CHUNK];
                match so.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(buf).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let mut err = Vec::new();
        let (_, r) = tokio::join!(recv, se.read_to_end(&mut err));
        r?;
        let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
        let unpacked = unpacker
            .await
            .map_err(|e| Error::internal(format!("the archive reader failed: {e}")))?;
        let stderr = String::from_utf8_lossy(&err);
        match exit_code(status)? {
            0 => unpacked,
            EXIT_MISSING => Err(Error::not_found(format!(
                "no such file or directory on {}: {from}",
                self.target.host
            ))),
            c => {
                self.check_copy(c, &stderr, &format!("copy {from} to {}", to.display()))?;
                unpacked
            }
        }
    }

    /// Writes the machine's logs to `out` from the first of `sources` that exists:
    /// the last `opts.tail` lines, then new ones while `opts.follow` (until the
    /// remote side ends or the future is dropped).
    pub async fn logs(
        &self,
        sources: &[LogSource],
        opts: LogOptions,
        out: LogSink<'_>,
    ) -> Result<()> {
        let line = logs_script(sources, opts);
        self.connect_check().await?;
        let mut child = self
            .command(&["-T"], Some(&line))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut so = child
            .stdout
            .take()
            .ok_or_else(|| Error::internal("ssh stdout was not captured"))?;
        let mut se = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("ssh stderr was not captured"))?;
        let mut err = Vec::new();
        let pumped = tokio::try_join!(pump(&mut so, out), async {
            se.read_to_end(&mut err).await.map_err(Error::from)
        });
        if let Err(e) = pumped {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(e);
        }
        let status = child.wait().await.map_err(|e| self.spawn_error(e))?;
        let stderr = String::from_utf8_lossy(&err);
        match exit_code(status)? {
            0 => Ok(()),
            EXIT_NO_LOGS => Err(Error::not_found(format!(
                "no logs on {}: {}",
                self.target.host,
                stderr.trim()
            ))),
            255 => Err(self.connect_error(&stderr)),
            c => Err(Error::new(
                ErrorKind::Platform,
                format!(
                    "reading logs on {} failed (exit code {c}): {}",
                    self.target.host,
                    stderr.trim()
                ),
            )),
        }
    }

    /// Closes the master connection, if one is open. Never fails: a master that is
    /// already gone is what was wanted.
    pub async fn disconnect(&self) {
        if let Some(p) = self.control_path()
            && p.exists()
        {
            let _ = Command::new(&self.options.program)
                .args(self.args(false))
                .args(["-O", "exit", "--", &self.target.host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
    }
}

/// Copies everything from `r` to `w`, flushing as it goes so output appears live.
async fn pump<R, W>(r: &mut R, w: &mut W) -> Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
    }
    Ok(())
}

fn exit_code(status: std::process::ExitStatus) -> Result<i32> {
    if let Some(c) = status.code() {
        return Ok(c);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Err(Error::new(
                ErrorKind::Interrupted,
                format!("ssh was ended by signal {sig}"),
            ));
        }
    }
    Err(Error::internal(format!(
        "ssh ended without an exit code: {status}"
    )))
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{}", N.fetch_add(1, Ordering::Relaxed))
}

fn normalize_remote(path: &str) -> Result<String> {
    let p = path.trim();
    if p.is_empty() {
        return Err(Error::invalid("the remote path is empty"));
    }
    if p.contains('\0') {
        return Err(Error::invalid("the remote path contains a NUL byte"));
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Quotes `s` as one word for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn logs_script(sources: &[LogSource], opts: LogOptions) -> String {
    let mut s = String::new();
    let mut tried = Vec::new();
    for src in sources {
        match src {
            LogSource::Journal { unit } => {
                let mut args = vec!["--no-pager".to_string(), "-q".to_string()];
                if let Some(u) = unit {
                    args.push("-u".into());
                    args.push(quote(u));
                }
                if let Some(n) = opts.tail {
                    args.push(format!("-n {n}"));
                }
                if opts.follow {
                    args.push("-f".into());
                }
                s.push_str(&format!(
                    "if command -v journalctl >/dev/null 2>&1 && journalctl -q -n 0 >/dev/null 2>&1; then exec journalctl {}; fi; ",
                    args.join(" ")
                ));
                tried.push("the systemd journal".to_string());
            }
            LogSource::File(path) => {
                let q = quote(path);
                let n = match opts.tail {
                    Some(n) => n.to_string(),
                    None => "+1".to_string(),
                };
                let follow = if opts.follow { " -F" } else { "" };
                s.push_str(&format!(
                    "if [ -r {q} ]; then exec tail -n {n}{follow} -- {q}; fi; "
                ));
                tried.push(path.clone());
            }
        }
    }
    s.push_str(&format!(
        "echo {} >&2; exit {EXIT_NO_LOGS}",
        quote(&format!("none of these exists: {}", tried.join(", ")))
    ));
    format!("sh -c {}", quote(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_users_ports_and_ipv6() {
        let t = SshTarget::parse("ubuntu@1.2.3.4:2222", "root").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("ubuntu", "1.2.3.4", 2222)
        );
        let t = SshTarget::parse("example.com", "root").unwrap();
        assert_eq!((t.user.as_str(), t.port), ("root", 22));
        let t = SshTarget::parse("ssh://me@[::1]:2200", "root").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port),
            ("me", "::1", 2200)
        );
        assert_eq!(t.url(), "ssh://me@[::1]:2200");
        let t = SshTarget::parse("fe80::1", "root").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 22));
        for bad in [
            "",
            "host:0",
            "host:70000",
            "host:x",
            "@host",
            "-oProxyCommand=x",
            "a b",
        ] {
            let e = SshTarget::parse(bad, "root").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
        }
    }

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a b;$(x)"), "'a b;$(x)'");
    }

    #[test]
    fn remote_lines_export_env_and_change_directory() {
        let s = SshSession::new(
            "env",
            SshTarget::new("ubuntu", "h"),
            SshOptions::in_state_dir(Path::new("/s")),
        )
        .env_files(vec!["/run/sindri/env".into()]);
        let mut cmd = ExecCommand::new(["echo", "a b"]);
        cmd.env = vec![("K".into(), "v'1".into())];
        cmd.workdir = Some("/tmp/x y".into());
        let line = s.remote_line(&cmd).unwrap();
        assert!(line.starts_with("sh -c '"), "{line}");
        assert!(line.contains("/run/sindri/env"), "{line}");
        cmd.env = vec![("1BAD".into(), "v".into())];
        assert_eq!(s.remote_line(&cmd).unwrap_err().kind(), ErrorKind::Invalid);
        let mut other = ExecCommand::new(["id"]);
        other.user = Some("postgres".into());
        assert!(
            s.remote_line(&other)
                .unwrap()
                .starts_with("sudo -n -H -u postgres -- sh -c ")
        );
    }

    #[test]
    fn control_sockets_fit_in_a_unix_socket_path() {
        let long = PathBuf::from(format!("/{}", "x".repeat(120)));
        let o = SshOptions::in_state_dir(&long);
        if let Some(d) = &o.control_dir {
            assert!(d.as_os_str().len() + 17 <= MAX_CONTROL_PATH);
        }
        let short = SshOptions::in_state_dir(Path::new("/state"));
        assert_eq!(short.control_dir, Some(PathBuf::from("/state/ssh")));
        assert_eq!(short.known_hosts, PathBuf::from("/state/known_hosts"));
    }

    #[test]
    fn ssh_errors_are_typed() {
        let s = SshSession::new(
            "e",
            SshTarget::new("u", "h"),
            SshOptions::in_state_dir(Path::new("/s")),
        );
        assert_eq!(
            s.connect_error("u@h: Permission denied (publickey).")
                .kind(),
            ErrorKind::Auth
        );
        assert_eq!(
            s.connect_error("ssh: connect to host h port 22: Connection refused")
                .kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            s.connect_error("Host key verification failed.").kind(),
            ErrorKind::Auth
        );
    }
}
