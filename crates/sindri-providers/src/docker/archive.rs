//! Tar archives streamed to and from the engine: build contexts, `copy_in`, `copy_out`.
//!
//! Archives are written and read on a blocking thread and carried through a bounded
//! channel, so a large tree never sits in memory whole and the async runtime is never
//! blocked on the file system.

use std::io::{self, Read, Write};
use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use sindri_core::{Error, Result, TransferStats};
use tokio::sync::mpsc;

use super::ignore::Ignore;
pub(crate) use crate::archive::walk_filtered as walk;
pub(crate) use crate::archive::{ChannelWriter, Entry, Walk, append_entries, io_error};

/// A `Read` over chunks arriving on a channel, for a blocking tar reader.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A tar archive being written on a blocking thread: the stream to send, and the
/// writer's outcome.
pub(crate) struct TarUpload<T> {
    /// The archive's bytes, for `bollard::body_stream`.
    pub body: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    /// Resolves when the writer is done; an error here explains a truncated upload.
    pub done: tokio::task::JoinHandle<Result<T>>,
}

/// Runs `write` on a blocking thread with a tar builder whose output streams out.
pub(crate) fn tar_upload<T, F>(write: F) -> TarUpload<T>
where
    T: Send + 'static,
    F: FnOnce(&mut tar::Builder<ChannelWriter<Bytes>>) -> Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let done = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(ChannelWriter::new(tx, "the engine"));
        builder.follow_symlinks(false);
        let out = write(&mut builder)?;
        let mut w = builder
            .into_inner()
            .map_err(|e| Error::internal(format!("cannot finish the archive: {e}")))?;
        w.flush()
            .map_err(|e| Error::internal(format!("cannot send the archive: {e}")))?;
        Ok(out)
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    TarUpload {
        body: Box::pin(body),
        done,
    }
}

/// Waits for the writer of an upload; a writer error is the better explanation of a
/// failed request.
pub(crate) async fn finish<T>(done: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    done.await
        .map_err(|e| Error::internal(format!("the archive writer failed: {e}")))?
}

/// Appends an in-memory file (a Dockerfile from outside the context).
pub(crate) fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, data)
        .map_err(|e| Error::internal(format!("cannot archive {name}: {e}")))
}

/// The build context after `.dockerignore`: what is sent, and a digest of it.
#[derive(Debug, Clone)]
pub(crate) struct BuildContext {
    /// Entries, named relative to the context.
    pub entries: Vec<Entry>,
    /// The Dockerfile's name inside the archive.
    pub dockerfile: String,
    /// The Dockerfile's content, when it lies outside the context and must be added.
    pub extra_dockerfile: Option<Vec<u8>>,
    /// SHA-256 over the Dockerfile, build arguments, target, and every sent file's name,
    /// mode and content: equal digests build equal images.
    pub digest: String,
}

/// Name given to a Dockerfile that lives outside the context.
const OUTSIDE_DOCKERFILE: &str = ".sindri.Dockerfile";

/// Scans a build context: applies `.dockerignore`, hashes the inputs.
pub(crate) fn scan_context(
    context: &Path,
    dockerfile: &Path,
    args: &std::collections::BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<BuildContext> {
    let context_meta = std::fs::metadata(context).map_err(|e| {
        io_error("read the build context", context, e)
            .with_hint("deployment.build.context is relative to the directory of sindri.yaml")
    })?;
    if !context_meta.is_dir() {
        return Err(Error::invalid(format!(
            "deployment.build.context: {} is not a directory",
            context.display()
        )));
    }
    let dockerfile_bytes = std::fs::read(dockerfile).map_err(|e| {
        io_error("read the Dockerfile", dockerfile, e)
            .with_hint("deployment.build.dockerfile is relative to the directory of sindri.yaml")
    })?;
    let canon_ctx = context
        .canonicalize()
        .map_err(|e| io_error("resolve", context, e))?;
    let canon_df = dockerfile
        .canonicalize()
        .map_err(|e| io_error("resolve", dockerfile, e))?;
    let (df_name, extra) = match canon_df.strip_prefix(&canon_ctx) {
        Ok(rel) => (
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/"),
            None,
        ),
        Err(_) => (
            OUTSIDE_DOCKERFILE.to_string(),
            Some(dockerfile_bytes.clone()),
        ),
    };
    let ignore_text = match std::fs::read_to_string(canon_ctx.join(".dockerignore")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error("read", &canon_ctx.join(".dockerignore"), e)),
    };
    let ignore = Ignore::parse(&ignore_text, &[df_name.as_str(), ".dockerignore"])?;
    let entries = walk(&canon_ctx, "", &|rel, is_dir| {
        if !ignore.excludes(rel) {
            Walk::Include
        } else if is_dir && ignore.may_reinclude_under(rel) {
            Walk::Descend
        } else {
            Walk::Skip
        }
    })?;

    let mut h = Sha256::new();
    h.update(b"dockerfile\0");
    h.update(df_name.as_bytes());
    h.update([0]);
    h.update(&dockerfile_bytes);
    for (k, v) in args {
        h.update(b"arg\0");
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update(b"target\0");
    h.update(target.unwrap_or("").as_bytes());
    for e in &entries {
        let meta =
            std::fs::symlink_metadata(&e.path).map_err(|err| io_error("stat", &e.path, err))?;
        h.update(b"entry\0");
        h.update(e.name.as_bytes());
        h.update([0]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            h.update(meta.permissions().mode().to_le_bytes());
        }
        if meta.is_file() {
            let mut f =
                std::fs::File::open(&e.path).map_err(|err| io_error("read", &e.path, err))?;
            io::copy(&mut f, &mut h).map_err(|err| io_error("read", &e.path, err))?;
        } else if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&e.path).map_err(|err| io_error("read link", &e.path, err))?;
            h.update(target.to_string_lossy().as_bytes());
        }
    }
    let digest: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(BuildContext {
        entries,
        dockerfile: df_name,
        extra_dockerfile: extra,
        digest,
    })
}

/// Unpacks an archive downloaded from the engine into `to`.
///
/// The archive's first entry is the copied object itself (`name` or `name/`); `to`
/// becomes that object: a directory's contents land in `to` (merged when it exists), a
/// file becomes `to`, or `to/<name>` when `to` is an existing directory. Entries that
/// would escape `to` (absolute paths, `..`, paths through a symlink) are refused.
pub(crate) async fn unpack<S>(stream: S, to: &Path) -> Result<TransferStats>
where
    S: Stream<Item = std::result::Result<Bytes, Error>> + Send,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let to = to.to_path_buf();
    let worker = tokio::task::spawn_blocking(move || {
        unpack_blocking(
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            &to,
        )
    });
    let mut stream = std::pin::pin!(stream);
    let mut stream_error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::other("the download was interrupted")))
                    .await;
                stream_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let result = worker
        .await
        .map_err(|e| Error::internal(format!("the archive reader failed: {e}")))?;
    match stream_error {
        Some(e) => Err(e),
        None => result,
    }
}

/// The blocking half of [`unpack`]: the shared unpacker, naming the engine as the
/// sender.
fn unpack_blocking(reader: impl Read, to: &Path) -> Result<TransferStats> {
    crate::archive::unpack(reader, to, "the engine")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("top.txt"), "top").unwrap();
        std::fs::write(dir.join("a/b/deep.bin"), [0u8, 1, 2, 255]).unwrap();
        std::fs::write(dir.join("a/empty"), "").unwrap();
        std::fs::write(dir.join("skip.log"), "noise").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("top.txt", dir.join("link")).unwrap();
    }

    async fn roundtrip(
        src: &Path,
        prefix: &'static str,
        to: &Path,
    ) -> (TransferStats, TransferStats) {
        let entries = walk(src, prefix, &|_, _| Walk::Include).unwrap();
        let mut all = vec![];
        if !prefix.is_empty() {
            all.push(Entry {
                name: format!("{prefix}/"),
                path: src.to_path_buf(),
            });
        }
        all.extend(entries);
        let up = tar_upload(move |b| append_entries(b, &all));
        let stream = up.body.map(Ok::<_, Error>);
        let got = unpack(stream, to).await.unwrap();
        let sent = finish(up.done).await.unwrap();
        (sent, got)
    }

    #[tokio::test]
    async fn a_tree_survives_a_roundtrip_with_counts() {
        let src = tempfile::tempdir().unwrap();
        tree(src.path());
        let dst = tempfile::tempdir().unwrap();
        let out = dst.path().join("copy");
        let (sent, got) = roundtrip(src.path(), "src", &out).await;
        assert_eq!(sent, got);
        assert_eq!(
            sent,
            TransferStats {
                files: 4,
                bytes: 3 + 4 + 5
            }
        );
        assert_eq!(
            std::fs::read(out.join("a/b/deep.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("top.txt")
        );
    }

    #[tokio::test]
    async fn a_file_lands_inside_an_existing_directory() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f.txt"), "hello").unwrap();
        let entries = vec![Entry {
            name: "f.txt".into(),
            path: src.path().join("f.txt"),
        }];
        let dst = tempfile::tempdir().unwrap();
        let up = tar_upload(move |b| append_entries(b, &entries));
        let got = unpack(up.body.map(Ok::<_, Error>), dst.path())
            .await
            .unwrap();
        assert_eq!(got, TransferStats { files: 1, bytes: 5 });
        assert_eq!(
            std::fs::read_to_string(dst.path().join("f.txt")).unwrap(),
            "hello"
        );
    }

    #[tokio::test]
    async fn entries_escaping_the_destination_are_refused() {
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
        b.append_link(&mut l, "d/out", "/").unwrap();
        let mut f = tar::Header::new_gnu();
        f.set_size(1);
        f.set_mode(0o644);
        f.set_cksum();
        b.append_data(&mut f, "d/out/evil", &b"x"[..]).unwrap();
        let data = Bytes::from(b.into_inner().unwrap());
        let dst = tempfile::tempdir().unwrap();
        let stream = futures_util::stream::iter(vec![Ok::<_, Error>(data)]);
        let e = unpack(stream, &dst.path().join("d")).await.unwrap_err();
        assert!(e.message().contains("outside the destination"), "{e}");
        assert!(!Path::new("/evil").exists());
    }

    #[test]
    fn context_scan_honours_dockerignore_and_digests_content() {
        let ctx = tempfile::tempdir().unwrap();
        tree(ctx.path());
        std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(ctx.path().join(".dockerignore"), "*.log\na/b\n").unwrap();
        let args = Default::default();
        let c = scan_context(ctx.path(), &ctx.path().join("Dockerfile"), &args, None).unwrap();
        let names: Vec<&str> = c.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "a",
                "a/empty",
                "link",
                "top.txt"
            ]
        );
        assert_eq!(c.dockerfile, "Dockerfile");
        assert!(c.extra_dockerfile.is_none());
        // Ignored files do not change the digest; sent ones do.
        std::fs::write(ctx.path().join("skip.log"), "other noise").unwrap();
        let same = scan_context(ctx.path(), &ctx.path().join("Dockerfile"), &args, None).unwrap();
        assert_eq!(c.digest, same.digest);
        std::fs::write(ctx.path().join("top.txt"), "changed").unwrap();
        let changed =
            scan_context(ctx.path(), &ctx.path().join("Dockerfile"), &args, None).unwrap();
        assert_ne!(c.digest, changed.digest);
        let target = scan_context(
            ctx.path(),
            &ctx.path().join("Dockerfile"),
            &args,
            Some("dev"),
        )
        .unwrap();
        assert_ne!(changed.digest, target.digest);
    }

    #[test]
    fn a_dockerfile_outside_the_context_is_carried_along() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("ctx")).unwrap();
        std::fs::write(root.path().join("Dockerfile.dev"), "FROM scratch\n").unwrap();
        let c = scan_context(
            &root.path().join("ctx"),
            &root.path().join("Dockerfile.dev"),
            &Default::default(),
            None,
        )
        .unwrap();
        assert_eq!(c.dockerfile, OUTSIDE_DOCKERFILE);
        assert_eq!(c.extra_dockerfile.as_deref(), Some(&b"FROM scratch\n"[..]));
        let missing = scan_context(
            &root.path().join("ctx"),
            &root.path().join("nope"),
            &Default::default(),
            None,
        )
        .unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }
}
