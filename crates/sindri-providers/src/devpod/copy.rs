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
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use sindri_core::{Error, ErrorKind, Result, TransferStats};
use sindri_spec::ProviderKind;

use super::session::{exit_code, quote, ssh_args};

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

/// One object to archive: its name in the archive and where it is here.
struct Entry {
    name: String,
    path: PathBuf,
}

/// Everything below `root` (symlinks not followed; sockets, fifos and devices left
/// out), by relative `/`-separated name, sorted.
fn walk(root: &Path) -> Result<Vec<Entry>> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<Entry>) -> Result<()> {
        let mut items: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io_error("read directory", dir, &e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| io_error("read directory", dir, &e))?;
        items.sort_by_key(|e| e.file_name());
        for item in items {
            let file_name = item.file_name();
            let Some(name) = file_name.to_str() else {
                return Err(Error::invalid(format!(
                    "{}: file names must be UTF-8 to be copied",
                    item.path().display()
                )));
            };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let path = item.path();
            let ft = std::fs::symlink_metadata(&path)
                .map_err(|e| io_error("stat", &path, &e))?
                .file_type();
            if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                continue;
            }
            out.push(Entry {
                name: child.clone(),
                path: path.clone(),
            });
            if ft.is_dir() {
                go(&path, &child, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(root, "", &mut out)?;
    Ok(out)
}

/// Writes `entries` as a tar archive to `w`, counting regular files and their bytes.
fn pack<W: Write>(w: W, entries: &[Entry]) -> Result<TransferStats> {
    let mut builder = tar::Builder::new(w);
    builder.follow_symlinks(false);
    let mut stats = TransferStats::default();
    for e in entries {
        let meta =
            std::fs::symlink_metadata(&e.path).map_err(|err| io_error("stat", &e.path, &err))?;
        builder
            .append_path_with_name(&e.path, &e.name)
            .map_err(|err| io_error("send", &e.path, &err))?;
        if meta.is_file() {
            stats.files += 1;
            stats.bytes += meta.len();
        }
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("sending the archive failed: {e}"),
            )
            .with_provider(ProviderKind::Devpod)
        })?;
    Ok(stats)
}

/// Unpacks an archive whose first entry is the copied object itself (`name` or
/// `name/`) so that `to` becomes that object. Entries that would land outside `to`
/// (absolute, `..`, through a symlink) are refused.
fn unpack(reader: impl Read, to: &Path) -> Result<TransferStats> {
    let bad = |msg: String| Error::invalid(msg).with_provider(ProviderKind::Devpod);
    let mut archive = tar::Archive::new(reader);
    archive.set_overwrite(true);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    let mut stats = TransferStats::default();
    let mut root: Option<PathBuf> = None;
    let entries = archive
        .entries()
        .map_err(|e| Error::internal(format!("cannot read the archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::internal(format!("cannot read the archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Error::internal(format!("bad path in the archive: {e}")))?
            .into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_os_string()),
                Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "refusing archive entry `{}`: it points outside the destination",
                        path.display()
                    )));
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let is_dir = entry.header().entry_type().is_dir();
        let base = match &root {
            Some(r) => r.clone(),
            None => {
                let r = if !is_dir && to.is_dir() {
                    to.join(&parts[0])
                } else {
                    to.to_path_buf()
                };
                root = Some(r.clone());
                r
            }
        };
        let mut target = base.clone();
        for p in &parts[1..] {
            target.push(p);
        }
        if parts.len() == 1 && is_dir {
            std::fs::create_dir_all(&target).map_err(|e| io_error("create", &target, &e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
            let anchor = if parts.len() == 1 {
                parent.to_path_buf()
            } else {
                base.clone()
            };
            let canon_anchor = anchor
                .canonicalize()
                .map_err(|e| io_error("resolve", &anchor, &e))?;
            let canon_parent = parent
                .canonicalize()
                .map_err(|e| io_error("resolve", parent, &e))?;
            if !canon_parent.starts_with(&canon_anchor) {
                return Err(bad(format!(
                    "refusing archive entry `{}`: it leads outside the destination through a symlink",
                    path.display()
                )));
            }
        }
        let is_file = entry.header().entry_type().is_file();
        let size = entry.size();
        entry
            .unpack(&target)
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", target.display())))?;
        if is_file {
            stats.files += 1;
            stats.bytes += size;
        }
    }
    if root.is_none() {
        return Err(Error::not_found("the workspace sent an empty archive")
            .with_provider(ProviderKind::Devpod));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sindri-devpod-copy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    #[test]
    fn a_packed_tree_unpacks_under_the_new_name() {
        let d = scratch("tree");
        std::fs::create_dir_all(d.join("src/a/b")).expect("mkdir");
        std::fs::write(d.join("src/top.txt"), "top").expect("write");
        std::fs::write(d.join("src/a/b/deep.bin"), [0u8, 1, 255]).expect("write");
        let mut entries = vec![Entry {
            name: "src/".into(),
            path: d.join("src"),
        }];
        for mut e in walk(&d.join("src")).expect("walk") {
            e.name = format!("src/{}", e.name);
            entries.push(e);
        }
        let mut bytes = Vec::new();
        let sent = pack(&mut bytes, &entries).expect("pack");
        assert_eq!(sent, TransferStats { files: 2, bytes: 6 });
        let got = unpack(bytes.as_slice(), &d.join("out")).expect("unpack");
        assert_eq!(got, sent);
        assert_eq!(
            std::fs::read(d.join("out/a/b/deep.bin")).expect("read"),
            [0u8, 1, 255]
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        let d = scratch("escape");
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            if let Some(gnu) = h.as_gnu_mut() {
                gnu.name[..9].copy_from_slice(b"../escape");
            }
            h.set_cksum();
            b.append(&h, &b"x"[..]).expect("append");
            b.finish().expect("finish");
        }
        let e = unpack(bytes.as_slice(), &d.join("dest")).expect_err("escape");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(!d.join("escape").exists());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
