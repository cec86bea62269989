//! The local side of a sync: which files of the workdir are considered, and their
//! content hashes.
//!
//! Files come from a walk that honours `.gitignore` (also outside a git repository),
//! `.ignore`, `.sindriignore` and the global git excludes, plus the spec's
//! `run.exclude` patterns (gitignore syntax, relative to the workdir). The `.git`
//! directory and sindri's own manifest files are never sent. Symbolic links are sent
//! as links; empty directories and special files are not sent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sindri_core::{Error, Result};

use super::is_own_file;
use super::manifest::hex;

/// A file found by the local scan.
#[derive(Debug, Clone)]
pub(crate) struct LocalFile {
    /// Where it is.
    pub abs: PathBuf,
    /// Size in bytes (of the link target's text for a link).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    /// `f` for a regular file, `l` for a symbolic link.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
}

/// Lists the files of `root` a sync considers: gitignore rules, `excludes`
/// (gitignore syntax, relative to `root`), never `.git` or the manifest. Paths are
/// relative, with `/` separators, sorted.
pub fn scan(root: &Path, excludes: &[String]) -> Result<Vec<String>> {
    Ok(Workdir::new(root, excludes)?.files()?.into_keys().collect())
}

/// A local workdir and its `run.exclude` patterns, checked: building one is where bad
/// input is refused, before anything reaches the environment.
#[derive(Debug, Clone)]
pub(crate) struct Workdir {
    root: PathBuf,
    excluded: Arc<ignore::gitignore::Gitignore>,
}

impl Workdir {
    /// Checks that `root` is a directory and every pattern is valid gitignore syntax.
    pub fn new(root: &Path, excludes: &[String]) -> Result<Workdir> {
        let root = root.canonicalize().map_err(|e| {
            Error::invalid(format!(
                "cannot read the run workdir {}: {e}",
                root.display()
            ))
            .with_hint("`run.workdir` is relative to the directory of sindri.yaml; point it at an existing directory")
        })?;
        if !root.is_dir() {
            return Err(Error::invalid(format!(
                "the run workdir {} is not a directory",
                root.display()
            )));
        }
        let mut builder = ignore::gitignore::GitignoreBuilder::new(&root);
        for pattern in excludes {
            builder.add_line(None, pattern).map_err(|e| {
                Error::invalid(format!(
                    "run.exclude: `{pattern}` is not a valid gitignore pattern: {e}"
                ))
                .with_hint("write patterns as in .gitignore, e.g. `data/`, `*.ckpt`, `/outputs`")
            })?;
        }
        let excluded = Arc::new(builder.build().map_err(|e| {
            Error::invalid(format!("run.exclude: {e}"))
                .with_hint("write patterns as in .gitignore, e.g. `data/`, `*.ckpt`, `/outputs`")
        })?);
        Ok(Workdir { root, excluded })
    }

    /// Walks the workdir: every file the sync considers, by relative path.
    pub fn files(&self) -> Result<BTreeMap<String, LocalFile>> {
        let root = &self.root;
        let filter = Arc::clone(&self.excluded);
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .git_ignore(true)
            .git_exclude(true)
            .git_global(true)
            .require_git(false)
            .add_custom_ignore_filename(".sindriignore")
            .follow_links(false)
            .filter_entry(move |entry| {
                if entry.depth() == 0 {
                    return true;
                }
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                if is_dir && entry.file_name() == ".git" {
                    return false;
                }
                !filter.matched(entry.path(), is_dir).is_ignore()
            })
            .build();

        let mut files = BTreeMap::new();
        for entry in walker {
            let entry = entry.map_err(|e| {
                Error::internal(format!(
                    "cannot scan the run workdir {}: {e}",
                    root.display()
                ))
            })?;
            let Some(file_type) = entry.file_type() else {
                continue;
            };
            if !(file_type.is_file() || file_type.is_symlink()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let Some(rel) = rel
                .to_str()
                .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if is_own_file(&rel) {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path())?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let (kind, size) = if file_type.is_symlink() {
                let target = std::fs::read_link(entry.path())?;
                ('l', target.as_os_str().len() as u64)
            } else {
                ('f', meta.len())
            };
            files.insert(
                rel,
                LocalFile {
                    abs: entry.path().to_path_buf(),
                    size,
                    mtime,
                    kind,
                    mode: file_mode(&meta),
                },
            );
        }
        Ok(files)
    }
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Hex SHA-256 of a file's content, or of a link's target text.
pub(crate) fn hash_file(file: &LocalFile) -> Result<String> {
    let mut h = Sha256::new();
    if file.kind == 'l' {
        h.update(
            std::fs::read_link(&file.abs)?
                .as_os_str()
                .as_encoded_bytes(),
        );
    } else {
        let mut f = std::fs::File::open(&file.abs)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(hex(&h.finalize()))
}

/// Hashes `files` ([`hash_file`]) on up to as many threads as there are cores; the
/// hashes come back in the order of `files`.
pub(crate) fn hash_files(files: &[&LocalFile]) -> Result<Vec<String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads < 2 || files.len() < 64 {
        return files.iter().map(|f| hash_file(f)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|f| hash_file(f))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for w in workers {
            out.extend(
                w.join()
                    .map_err(|_| Error::internal("a file hashing thread panicked"))??,
            );
        }
        Ok(out)
    })
}
