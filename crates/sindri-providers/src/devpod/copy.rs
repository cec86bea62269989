//! `copy_in` and `copy_out`: a tar stream through `devpod ssh --command 'tar …'`,
//! on its stdin or from its stdout.
//!
//! The archive is written and read on a blocking thread straight into and out of the
//! `devpod` process's pipes. `to` names the copy itself, as `cp -r` would with a new
//! name: a directory's contents land in `to` (merged when it exists, created with its
//! parents when not); a file becomes `to`, or `to/<name>` when `to` is an existing
//! directory. A relative remote path is relative to the workspace folder (DevPod's
//! working directory for `devpod ssh`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sindri_core::{Error, ErrorKind, Result, TransferStats};
use sindri_spec::ProviderKind;

use super::session::{exit_code, quote, ssh_args};
use crate::archive::{self, Entry};

/// The exit code the copy-out line uses for a missing source.
const EXIT_MISSING: i32 = 44;

fn io_error(action: &str, path: &Path, e: &std::io::Error) -> Error {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Internal
    };
    Error::new(kind, format!("cannot {action} {}: {e}", path.display()))
        .with_provider(ProviderKind::Devpod)
}

fn remote_path(p: &str) -> Result<String> {
    let t = p.trim_end_matches('/');
    if t.is_empty() && !p.is_empty() {
        return Ok("/".into());
    }
    if t.is_empty() {
        return Err(Error::invalid("the remote path is empty").with_provider(ProviderKind::Devpod));
    }
    Ok(t.to_string())
}

/// What a blocking copy needs to start `devpod ssh`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `devpod` binary.
    pub bin: PathBuf,
    /// The workspace id.
    pub id: String,
}

impl Target {
    fn spawn(&self, line: &str, stdin: Stdio, stdout: Stdio) -> Result<std::process::Child> {
        Command::new(&self.bin)
            .args(ssh_args(&self.id, None, &format!("sh -c {}", quote(line))))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot run {}: {e}", self.bin.display()),
                )
                .with_provider(ProviderKind::Devpod)
            })
    }

    fn failed(&self, what: &str, code: i32, stderr: &str) -> Error {
        Error::new(
            ErrorKind::Platform,
            format!(
                "{what} in workspace {} failed (exit code {code}): {}",
                self.id,
                stderr.trim()
            ),
        )
        .with_provider(ProviderKind::Devpod)
    }
}

/// Collects a child's stderr on a thread of its own.
fn drain(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    })
}

/// Copies local `from` to `to` in the workspace. Blocking.
pub fn copy_in(t: &Target, from: &Path, to: &str) -> Result<TransferStats> {
    let to = remote_path(to)?;
    let meta = std::fs::metadata(from).map_err(|e| io_error("read", from, &e))?;
    let q = quote(&to);
    if meta.is_dir() {
        let entries = walk(from)?;
        let mut child = t.spawn(
            &format!("mkdir -p -- {q} && tar -x -o -f - -C {q}"),
            Stdio::piped(),
            Stdio::null(),
        )?;
        let err = drain(&mut child);
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::internal("devpod's stdin was not captured"))?;
        let packed = pack(stdin, &entries);
        let status = child.wait().map_err(|e| io_error("wait for", &t.bin, &e))?;
        let stderr = err.join().unwrap_or_default();
        match exit_code(status) {
            0 => packed,
            c => Err(t.failed(&format!("copying {} to {to}", from.display()), c, &stderr)),
        }
    } else if meta.is_file() {
        let name = from.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::invalid(format!("{}: expected a UTF-8 file name", from.display()))
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
        let mut child = t.spawn(&line, Stdio::piped(), Stdio::null())?;
        let err = drain(&mut child);
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::internal("devpod's stdin was not captured"))?;
        let mut file = std::fs::File::open(from).map_err(|e| io_error("open", from, &e))?;
        // A remote side that stops reading shows in its exit code, checked below.
        let sent = std::io::copy(&mut file, &mut stdin);
        drop(stdin);
        let status = child.wait().map_err(|e| io_error("wait for", &t.bin, &e))?;
        let stderr = err.join().unwrap_or_default();
        match exit_code(status) {
            0 => {
                let bytes = sent.map_err(|e| io_error("send", from, &e))?;
                Ok(TransferStats { files: 1, bytes })
            }
            c => Err(t.failed(&format!("copying {} to {to}", from.display()), c, &stderr)),
        }
    } else {
        Err(Error::invalid(format!(
            "{} is neither a regular file nor a directory",
            from.display()
        ))
        .with_provider(ProviderKind::Devpod))
    }
}

/// Copies `from` in the workspace to local `to`. Blocking. A missing `from` is
/// `NotFound`.
pub fn copy_out(t: &Target, from: &str, to: &Path) -> Result<TransferStats> {
    let from = remote_path(from)?;
    if from == "/" {
        return Err(
            Error::invalid("refusing to copy the whole file system out (`/`)")
                .with_provider(ProviderKind::Devpod),
        );
    }
    let q = quote(&from);
    let line = format!(
        "if [ -e {q} ] || [ -L {q} ]; then cd -- \"$(dirname -- {q})\" && exec tar -c -f - -- \"$(basename -- {q})\"; \
         else echo \"no such file or directory: \"{q} >&2; exit {EXIT_MISSING}; fi"
    );
    let mut child = t.spawn(&line, Stdio::null(), Stdio::piped())?;
    let err = drain(&mut child);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::internal("devpod's stdout was not captured"))?;
    let unpacked = unpack(stdout, to);
    let status = child.wait().map_err(|e| io_error("wait for", &t.bin, &e))?;
    let stderr = err.join().unwrap_or_default();
    match exit_code(status) {
        0 => unpacked,
        EXIT_MISSING => Err(Error::not_found(format!(
            "no such file or directory in workspace {}: {from}",
            t.id
        ))
        .with_provider(ProviderKind::Devpod)),
        c => Err(t.failed(&format!("copying {from} to {}", to.display()), c, &stderr)),
    }
}

/// The shared walk ([`crate::archive::walk`]), its errors tagged as DevPod's.
fn walk(root: &Path) -> Result<Vec<Entry>> {
    archive::walk(root).map_err(|e| e.with_provider(ProviderKind::Devpod))
}

/// The shared packer ([`crate::archive::pack`]), its errors tagged as DevPod's.
fn pack<W: Write>(w: W, entries: &[Entry]) -> Result<TransferStats> {
    archive::pack(w, entries).map_err(|e| e.with_provider(ProviderKind::Devpod))
}

/// The shared unpacker ([`crate::archive::unpack`]: `to` becomes the copied object,
/// entries landing outside `to` are refused), naming the workspace as the sender and
/// tagging errors as DevPod's.
fn unpack(reader: impl Read, to: &Path) -> Result<TransferStats> {
    archive::unpack(reader, to, "the workspace").map_err(|e| e.with_provider(ProviderKind::Devpod))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_errors_name_the_workspace_and_are_tagged_as_devpod() {
        let d = tempfile::tempdir().expect("scratch");
        let mut b = tar::Builder::new(Vec::new());
        b.finish().expect("finish");
        let data = b.into_inner().expect("archive");
        let e = unpack(data.as_slice(), d.path()).expect_err("empty");
        assert!(e.is_not_found(), "{e}");
        assert!(e.message().contains("the workspace"), "{e}");
        assert_eq!(e.provider(), Some(ProviderKind::Devpod));
    }
}
