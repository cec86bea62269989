//! Tar archives for `copy_in` and `copy_out`, shared by every provider that moves files
//! as a tar stream (docker, ssh, kubernetes, devpod).
//!
//! One implementation, so the safety checks on unpacking (no `..`, no absolute paths,
//! no writes through a symlink out of the destination) and the docker-cp-like
//! destination rules cannot drift apart between providers. What differs per provider
//! (who is on the other end of the stream, which provider an error is tagged with)
//! is passed in or wrapped by the caller.

// Each provider uses part of this module (docker its own reader, devpod no channels,
// ssh no filters), so a build with only some of them leaves the rest unused.
#![cfg_attr(
    not(all(
        feature = "docker",
        feature = "ssh",
        feature = "kubernetes",
        feature = "devpod"
    )),
    allow(dead_code)
)]

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use sindri_core::{Error, ErrorKind, Result, TransferStats};
use tokio::sync::mpsc;

/// Chunk size of streamed archives: large enough to keep channel traffic low, small
/// enough that a few chunks in flight stay cheap.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A `Write` that sends what it is given down a channel, for a tar writer on a
/// blocking thread. `T` is the chunk type the receiving side wants (`Vec<u8>`, or
/// `bytes::Bytes` for the Docker API body).
pub(crate) struct ChannelWriter<T: From<Vec<u8>> = Vec<u8>> {
    tx: mpsc::Sender<T>,
    buf: Vec<u8>,
    /// Named in the error when the receiver is gone, so the user learns which side
    /// stopped (the engine, the ssh process, the pod).
    peer: &'static str,
    /// Whether dropping the writer sends what is still buffered; callers that may drop
    /// the writer without a final flush (the ssh transport) want this.
    flush_on_drop: bool,
}

impl<T: From<Vec<u8>>> ChannelWriter<T> {
    /// A writer into `tx`; `peer` names the reading side in a broken-pipe error.
    pub(crate) fn new(tx: mpsc::Sender<T>, peer: &'static str) -> ChannelWriter<T> {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            peer,
            flush_on_drop: false,
        }
    }

    /// Makes dropping the writer send its buffered tail.
    pub(crate) fn flushing_on_drop(mut self) -> ChannelWriter<T> {
        self.flush_on_drop = true;
        self
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = T::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let peer = self.peer;
        self.tx.blocking_send(chunk).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, format!("{peer} stopped reading"))
        })
    }
}

impl<T: From<Vec<u8>>> Write for ChannelWriter<T> {
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

impl<T: From<Vec<u8>>> Drop for ChannelWriter<T> {
    fn drop(&mut self) {
        if self.flush_on_drop {
            let _ = self.send();
        }
    }
}

/// A `Read` over chunks arriving on a channel, for a tar reader on a blocking thread.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// A reader that ends when every sender of `rx` is gone.
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

/// One file system object to archive.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Its name inside the archive (`/`-separated, relative).
    pub name: String,
    /// Where it is on this machine.
    pub path: PathBuf,
}

/// What [`walk_filtered`] does with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Archive it (and descend, for a directory).
    Include,
    /// Leave it out, but descend: something below may be included.
    Descend,
    /// Leave it and everything below out.
    Skip,
}

/// Everything below `root` (not following symlinks; sockets, fifos and devices left
/// out), named by relative `/`-separated paths, sorted so archives are reproducible.
pub(crate) fn walk(root: &Path) -> Result<Vec<Entry>> {
    walk_filtered(root, "", &|_, _| Walk::Include)
}

/// Like [`walk`], but names each entry `prefix/<relative path>` and lets
/// `keep(relative, is_dir)` filter (a build context's `.dockerignore`).
pub(crate) fn walk_filtered(
    root: &Path,
    prefix: &str,
    keep: &dyn Fn(&str, bool) -> Walk,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_into(root, "", prefix, keep, &mut out)?;
    Ok(out)
}

fn walk_into(
    dir: &Path,
    rel: &str,
    prefix: &str,
    keep: &dyn Fn(&str, bool) -> Walk,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_error("read directory", dir, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| io_error("read directory", dir, e))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::invalid(format!(
                "{}: file names must be UTF-8 to be archived",
                entry.path().display()
            )));
        };
        let child_rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let ft = std::fs::symlink_metadata(&path)
            .map_err(|e| io_error("stat", &path, e))?
            .file_type();
        if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
            // Sockets, fifos and devices cannot be archived meaningfully.
            continue;
        }
        let decision = keep(&child_rel, ft.is_dir());
        if decision == Walk::Include {
            out.push(Entry {
                name: join(prefix, &child_rel),
                path: path.clone(),
            });
        }
        if ft.is_dir() && decision != Walk::Skip {
            walk_into(&path, &child_rel, prefix, keep, out)?;
        }
    }
    Ok(())
}

fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", prefix.trim_end_matches('/'))
    }
}

/// An I/O failure on a local path; a missing path is `NotFound` so callers can tell
/// "nothing there" from "could not read it".
pub(crate) fn io_error(action: &str, path: &Path, e: io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("cannot {action} {}: {e}", path.display()))
}

/// Appends entries to an archive (as they are: symlinks are not followed when the
/// builder says so), counting regular files and their bytes.
pub(crate) fn append_entries<W: Write>(
    builder: &mut tar::Builder<W>,
    entries: &[Entry],
) -> Result<TransferStats> {
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
    Ok(stats)
}

/// Writes `entries` as a whole tar archive to `w` (symlinks archived as links),
/// counting regular files and their bytes. A failure to finish the stream is
/// `Unavailable`: the receiving side went away.
pub(crate) fn pack<W: Write>(w: W, entries: &[Entry]) -> Result<TransferStats> {
    let mut builder = tar::Builder::new(w);
    builder.follow_symlinks(false);
    let stats = append_entries(&mut builder, entries)?;
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
/// `name/`), as `docker cp` does: `to` becomes that object. A directory's contents land
/// in `to` (merged when it exists); a file becomes `to`, or `to/<name>` when `to` is an
/// existing directory. Entries that would escape `to` (absolute paths, `..`, paths
/// through a symlink unpacked earlier) are refused, since the archive comes from a
/// machine we do not trust with this one's file system. `peer` names the sending side
/// in the error for an empty archive ("the engine", "the pod").
pub(crate) fn unpack(reader: impl Read, to: &Path, peer: &str) -> Result<TransferStats> {
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
                // The first entry is the copied object: decide where it goes.
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
            // A symlink unpacked earlier must not lead writes outside the destination.
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
        return Err(Error::not_found(format!("{peer} sent an empty archive")));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree packed the way `copy_in` does it (the object itself, then its contents).
    fn packed_tree(src: &Path) -> (Vec<u8>, TransferStats) {
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("top.txt"), "top").unwrap();
        std::fs::write(src.join("a/b/deep.bin"), [0u8, 1, 2, 255]).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("top.txt", src.join("link")).unwrap();
        let mut entries = vec![Entry {
            name: "tree/".into(),
            path: src.to_path_buf(),
        }];
        entries.extend(walk_filtered(src, "tree", &|_, _| Walk::Include).unwrap());
        let mut bytes = Vec::new();
        let sent = pack(&mut bytes, &entries).unwrap();
        (bytes, sent)
    }

    #[test]
    fn a_packed_tree_unpacks_to_the_same_bytes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, sent) = packed_tree(&dir.path().join("src"));
        assert_eq!(sent, TransferStats { files: 2, bytes: 7 });
        let out = dir.path().join("out");
        let got = unpack(bytes.as_slice(), &out, "the test").unwrap();
        assert_eq!(got, sent);
        assert_eq!(
            std::fs::read(out.join("a/b/deep.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        assert_eq!(std::fs::read_to_string(out.join("top.txt")).unwrap(), "top");
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("top.txt")
        );
    }

    #[test]
    fn a_file_lands_inside_an_existing_directory_or_becomes_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), "hello").unwrap();
        let entries = [Entry {
            name: "f.txt".into(),
            path: dir.path().join("f.txt"),
        }];
        let mut bytes = Vec::new();
        pack(&mut bytes, &entries).unwrap();
        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        let got = unpack(bytes.as_slice(), &existing, "the test").unwrap();
        assert_eq!(got, TransferStats { files: 1, bytes: 5 });
        assert_eq!(
            std::fs::read_to_string(existing.join("f.txt")).unwrap(),
            "hello"
        );
        let renamed = dir.path().join("renamed.txt");
        unpack(bytes.as_slice(), &renamed, "the test").unwrap();
        assert_eq!(std::fs::read_to_string(&renamed).unwrap(), "hello");
    }

    #[test]
    fn dot_dot_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            // `append_data` refuses `..`, so write the name into the header directly.
            h.as_old_mut().name[..9].copy_from_slice(b"../escape");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let e = unpack(bytes.as_slice(), &dir.path().join("dest"), "the test").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.message().contains("outside the destination"), "{e}");
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn writes_through_a_symlink_out_of_the_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "d/", io::empty()).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        l.set_mode(0o777);
        b.append_link(&mut l, "d/out", &outside).unwrap();
        let mut f = tar::Header::new_gnu();
        f.set_size(1);
        f.set_mode(0o644);
        f.set_cksum();
        b.append_data(&mut f, "d/out/evil", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let e = unpack(data.as_slice(), &dir.path().join("d"), "the test").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.message().contains("through a symlink"), "{e}");
        assert!(!outside.join("evil").exists());
    }

    #[test]
    fn an_empty_archive_is_not_found_and_names_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.finish().unwrap();
        let data = b.into_inner().unwrap();
        let e = unpack(data.as_slice(), dir.path(), "the pod").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.message().contains("the pod sent an empty archive"), "{e}");
    }

    #[test]
    fn a_broken_channel_names_the_reader_that_stopped() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(1);
        drop(rx);
        let mut w = ChannelWriter::new(tx, "the pod");
        let e = w.write_all(&[0u8; CHUNK]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("the pod stopped reading"), "{e}");
    }
}
