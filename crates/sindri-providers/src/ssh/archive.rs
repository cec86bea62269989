//! Tar streams for `copy_in` and `copy_out` over SSH: a local tree packed on a blocking
//! thread and sent down a channel, and an archive arriving from the remote `tar`
//! unpacked on a blocking thread.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use sindri_core::{Error, ErrorKind, Result, TransferStats};
use tokio::sync::mpsc;

/// Chunk size of streamed archives.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A `Write` that sends what it is given down a channel; used on a blocking thread.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Vec<u8>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the ssh process stopped reading")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A `Read` over chunks arriving on a channel; used on a blocking thread.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One file system object to archive: its name in the archive and where it is here.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub path: PathBuf,
}

/// Everything below `root` (not following symlinks; sockets, fifos and devices left
/// out), named by relative `/`-separated paths, sorted so archives are reproducible.
pub(crate) fn walk(root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_into(root, "", &mut out)?;
    Ok(out)
}

fn walk_into(dir: &Path, rel: &str, out: &mut Vec<Entry>) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_error("read directory", dir, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| io_error("read directory", dir, e))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::invalid(format!(
                "{}: file names must be UTF-8 to be copied",
                entry.path().display()
            )));
        };
        let child = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let ft = std::fs::symlink_metadata(&path)
            .map_err(|e| io_error("stat", &path, e))?
            .file_type();
        if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
            continue;
        }
        out.push(Entry {
            name: child.clone(),
            path: path.clone(),
        });
        if ft.is_dir() {
            walk_into(&path, &child, out)?;
        }
    }
    Ok(())
}

/// Writes `entries` as a tar archive to `w`, counting regular files and their bytes.
pub(crate) fn pack<W: Write>(w: W, entries: &[Entry]) -> Result<TransferStats> {
    let mut builder = tar::Builder::new(w);
    builder.follow_symlinks(false);
    let mut stats = TransferStats::default();
    for e in entries {
        let meta =
            std::fs::symlink_metadata(&e.path).map_err(|err| io_error("stat", &e.path, err))?;
        builder
            .append_path_with_name(&e.path, &e.name)
            .map_err(|err| io_error("archive", &e.path, err))?;
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
        })?;
    Ok(stats)
}

/// Unpacks an archive whose first entry is the copied object itself (`name` or
/// `name/`): `to` becomes that object. A directory's contents land in `to` (merged
/// when it exists); a file becomes `to`, or `to/<name>` when `to` is an existing
/// directory. Entries that would escape `to` (absolute paths, `..`, paths through a
/// symlink) are refused.
pub(crate) fn unpack(reader: impl Read, to: &Path) -> Result<TransferStats> {
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
                    return Err(Error::invalid(format!(
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
            std::fs::create_dir_all(&target).map_err(|e| io_error("create", &target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
            let anchor = if parts.len() == 1 {
                parent.to_path_buf()
            } else {
                base.clone()
            };
            let canon_anchor = anchor
                .canonicalize()
                .map_err(|e| io_error("resolve", &anchor, e))?;
            let canon_parent = parent
                .canonicalize()
                .map_err(|e| io_error("resolve", parent, e))?;
            if !canon_parent.starts_with(&canon_anchor) {
                return Err(Error::invalid(format!(
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
        return Err(Error::not_found("the remote side sent an empty archive"));
    }
    Ok(stats)
}

pub(crate) fn io_error(action: &str, path: &Path, e: io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("cannot {action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_tree_unpacks_to_the_same_bytes() {
        let src = tempfile_dir();
        std::fs::create_dir_all(src.join("tree/a/b")).unwrap();
        std::fs::write(src.join("tree/top.txt"), "top").unwrap();
        std::fs::write(src.join("tree/a/b/deep.bin"), [0u8, 1, 2, 255]).unwrap();
        let mut entries = vec![Entry {
            name: "tree/".into(),
            path: src.join("tree"),
        }];
        for mut e in walk(&src.join("tree")).unwrap() {
            e.name = format!("tree/{}", e.name);
            entries.push(e);
        }
        let mut bytes = Vec::new();
        let sent = pack(&mut bytes, &entries).unwrap();
        assert_eq!(sent, TransferStats { files: 2, bytes: 7 });
        let dest = src.join("out");
        let got = unpack(bytes.as_slice(), &dest).unwrap();
        assert_eq!(got, sent);
        assert_eq!(
            std::fs::read(dest.join("a/b/deep.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        std::fs::remove_dir_all(&src).unwrap();
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        let dir = tempfile_dir();
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            // `append_data` refuses `..`, so write the name into the header directly.
            h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let e = unpack(bytes.as_slice(), &dir.join("dest")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(!dir.join("escape").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "sindri-ssh-archive-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
