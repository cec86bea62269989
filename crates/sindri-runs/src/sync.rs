//! Syncing the local workdir into the environment, sending only what changed.
//!
//! The environment keeps a manifest of what the last sync sent, at
//! `<remote workdir>/.sindri-sync-manifest`: every file's path, size, modification time
//! and SHA-256. A sync reads it back (so it survives a lost local state), scans the
//! local workdir, and then
//! - sends the new and changed files, with the new manifest, as one tar through
//!   `copy_in`, unpacked in the environment with `tar -xf`;
//! - removes, through `exec`, the files the manifest lists that are gone locally (and
//!   directories left empty by that).
//!
//! A file whose size and modification time match the manifest is taken as unchanged
//! without being read; one whose metadata changed is hashed, and sent only if its
//! content changed. Files come from a walk that honours `.gitignore` (also outside a
//! git repository), `.ignore`, `.sindriignore` and the global git excludes, plus the
//! spec's `run.exclude` patterns (gitignore syntax, relative to the workdir). The `.git`
//! directory is never sent. Symbolic links are sent as links; empty directories and
//! special files are not sent.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sindri_core::{Deployment, Error, Provider, Result, TransferStats, dispatch};

use crate::shell::{capture, run_ok, script_command};

/// The manifest's file name, in the remote workdir.
pub const MANIFEST_NAME: &str = ".sindri-sync-manifest";

/// The manifest format this build writes and reads; another version means "send all".
const MANIFEST_VERSION: u32 = 1;

/// How many paths one removal `exec` takes, well below any `ARG_MAX`.
const DELETE_BATCH: usize = 500;

/// How many changed or deleted paths a [`SyncReport`] lists by name.
pub const LISTED_PATHS: usize = 200;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Files in the local workdir after `.gitignore` and `run.exclude`.
    pub files: u64,
    /// Files sent because they are new or their content changed.
    pub files_sent: u64,
    /// Content bytes of the files sent.
    pub bytes_sent: u64,
    /// Files removed from the environment because they are gone locally.
    pub files_deleted: u64,
    /// True when the environment had no usable manifest, so everything was sent.
    pub full: bool,
    /// What `copy_in` moved: the one archive, when anything was sent.
    pub transfer: TransferStats,
    /// Paths sent, at most [`LISTED_PATHS`] of them.
    pub sent: Vec<String>,
    /// Paths removed, at most [`LISTED_PATHS`] of them.
    pub deleted: Vec<String>,
}

/// One file as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// Size in bytes (of the link target's text for a link).
    size: u64,
    /// Modification time, nanoseconds since the epoch.
    mtime: i64,
    /// `f` for a regular file, `l` for a symbolic link.
    kind: char,
    /// Hex SHA-256 of the content (of the target's text for a link).
    hash: String,
}

/// The record of what the environment holds, written by each sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    files: BTreeMap<String, Entry>,
}

/// A file found by the local scan.
#[derive(Debug, Clone)]
struct LocalFile {
    abs: PathBuf,
    size: u64,
    mtime: i64,
    kind: char,
    mode: u32,
}

/// The local side of a sync: which files, decided before anything is sent.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    manifest: Manifest,
    send: Vec<String>,
    delete: Vec<String>,
    files: BTreeMap<String, LocalFile>,
    full: bool,
    manifest_changed: bool,
}

impl SyncPlan {
    /// Paths that will be sent.
    pub fn to_send(&self) -> &[String] {
        &self.send
    }

    /// Paths that will be removed remotely.
    pub fn to_delete(&self) -> &[String] {
        &self.delete
    }
}

/// Lists the files of `root` a sync considers: gitignore rules, `excludes`
/// (gitignore syntax, relative to `root`), never `.git` or the manifest. Paths are
/// relative, with `/` separators, sorted.
pub fn scan(root: &Path, excludes: &[String]) -> Result<Vec<String>> {
    Ok(scan_files(root, excludes)?.into_keys().collect())
}

fn scan_files(root: &Path, excludes: &[String]) -> Result<BTreeMap<String, LocalFile>> {
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

    let filter = Arc::clone(&excluded);
    let walker = ignore::WalkBuilder::new(&root)
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
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let Some(rel) = rel
            .to_str()
            .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if rel == MANIFEST_NAME {
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
fn hash_file(file: &LocalFile) -> Result<String> {
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
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares the local workdir with the remote manifest text (`None`: no manifest).
/// Reads only files whose size or modification time differ from the manifest.
pub fn plan(root: &Path, excludes: &[String], remote_manifest: Option<&[u8]>) -> Result<SyncPlan> {
    let files = scan_files(root, excludes)?;
    let previous: Option<Manifest> = remote_manifest
        .and_then(|text| serde_json::from_slice::<Manifest>(text).ok())
        .filter(|m| m.version == MANIFEST_VERSION);
    let full = previous.is_none();
    let previous = previous.unwrap_or_default();

    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        files: BTreeMap::new(),
    };
    let mut send = Vec::new();
    for (path, file) in &files {
        let old = previous.files.get(path);
        let entry = match old {
            Some(e) if e.size == file.size && e.mtime == file.mtime && e.kind == file.kind => {
                e.clone()
            }
            _ => {
                let hash = hash_file(file)?;
                if old.is_none_or(|e| e.hash != hash || e.kind != file.kind) {
                    send.push(path.clone());
                }
                Entry {
                    size: file.size,
                    mtime: file.mtime,
                    kind: file.kind,
                    hash,
                }
            }
        };
        manifest.files.insert(path.clone(), entry);
    }
    let delete: Vec<String> = previous
        .files
        .keys()
        .filter(|p| !files.contains_key(*p))
        .cloned()
        .collect();
    let manifest_changed = full || manifest != previous;
    Ok(SyncPlan {
        manifest,
        send,
        delete,
        files,
        full,
        manifest_changed,
    })
}

/// Writes the files to send, and the new manifest last, as a tar at `dest`. Owners
/// are recorded as root (0:0) so unpacking never assigns this machine's user ids.
fn write_archive(plan: &SyncPlan, dest: &Path) -> Result<()> {
    let file = std::fs::File::create(dest)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    for path in &plan.send {
        let Some(local) = plan.files.get(path) else {
            continue;
        };
        let meta = std::fs::symlink_metadata(&local.abs)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(local.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        if local.kind == 'l' {
            let target = std::fs::read_link(&local.abs)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, path, &target)?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let f = std::fs::File::open(&local.abs)?;
            tar.append_data(&mut header, path, f)?;
        }
    }
    let manifest = serde_json::to_vec(&plan.manifest)
        .map_err(|e| Error::internal(format!("cannot encode the sync manifest: {e}")))?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(sindri_core::unix_now().max(0) as u64);
    header.set_size(manifest.len() as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST_NAME, manifest.as_slice())?;
    let mut out = tar.into_inner()?;
    out.flush()?;
    Ok(())
}

/// Creates workdir `$1` and staging directory `$3`, and prints the manifest `$1/$2`
/// if there is one (none on a first sync).
const READ_MANIFEST: &str = r#"
mkdir -p "$1" "$3" || exit 1
if [ -f "$1/$2" ]; then cat "$1/$2"; fi
"#;

/// Removes `$3...` from workdir `$1` (and directories left empty), then unpacks the
/// archive `$2` there, if given, and removes it.
const APPLY: &str = r#"
wd=$1; archive=$2; shift 2
cd "$wd" || exit 1
for f in "$@"; do
  rm -f -- "$f" || exit 1
  d=$(dirname -- "$f")
  while [ "$d" != . ] && [ "$d" != / ] && rmdir -- "$d" 2>/dev/null; do d=$(dirname -- "$d"); done
done
if [ -n "$archive" ]; then
  tar -xf "$archive" || exit 1
  rm -f -- "$archive"
fi
"#;

/// Syncs `local_dir` into `remote_workdir` (an absolute path in the environment),
/// staging the archive at `remote_archive` (a path in the environment that does not
/// exist yet, outside the workdir).
pub async fn sync_workdir(
    p: &dyn Provider,
    d: &Deployment,
    local_dir: &Path,
    excludes: &[String],
    remote_workdir: &str,
    remote_archive: &str,
) -> Result<SyncReport> {
    let read = capture(
        p,
        d,
        &script_command(
            READ_MANIFEST,
            [remote_workdir, MANIFEST_NAME, parent_dir(remote_archive)],
        ),
    )
    .await?;
    if read.code != 0 {
        return Err(Error::platform(
            p.kind(),
            format!(
                "cannot create the workdir {remote_workdir} in environment `{}`: {}",
                d.name,
                read.stderr_text()
            ),
        ));
    }
    let manifest_text = (!read.stdout.is_empty()).then_some(read.stdout);

    let root = local_dir.to_path_buf();
    let excludes_owned = excludes.to_vec();
    let plan =
        tokio::task::spawn_blocking(move || plan(&root, &excludes_owned, manifest_text.as_deref()))
            .await
            .map_err(|e| Error::internal(format!("the workdir scan stopped: {e}")))??;

    let mut report = SyncReport {
        files: plan.files.len() as u64,
        files_sent: plan.send.len() as u64,
        bytes_sent: plan
            .send
            .iter()
            .filter_map(|p| plan.files.get(p))
            .filter(|f| f.kind == 'f')
            .map(|f| f.size)
            .sum(),
        files_deleted: plan.delete.len() as u64,
        full: plan.full,
        transfer: TransferStats::default(),
        sent: plan.send.iter().take(LISTED_PATHS).cloned().collect(),
        deleted: plan.delete.iter().take(LISTED_PATHS).cloned().collect(),
    };
    if !plan.manifest_changed && plan.delete.is_empty() {
        return Ok(report);
    }

    // Deletions first and the archive (with the new manifest) last: an interrupted
    // sync leaves the old manifest, and the next sync redoes the work.
    let chunks: Vec<&[String]> = plan.delete.chunks(DELETE_BATCH).collect();
    for chunk in &chunks {
        let mut args = vec![remote_workdir.to_string(), String::new()];
        args.extend(chunk.iter().cloned());
        run_ok(
            p,
            d,
            "removing deleted files from the workdir",
            &script_command(APPLY, args),
        )
        .await?;
    }

    let staging = tempfile::Builder::new()
        .prefix("sindri-sync-")
        .suffix(".tar")
        .tempfile()
        .map_err(|e| {
            Error::internal(format!(
                "cannot create a temporary file for the sync archive: {e}"
            ))
        })?;
    let archive_path = staging.path().to_path_buf();
    let plan_for_archive = plan.clone();
    tokio::task::spawn_blocking(move || write_archive(&plan_for_archive, &archive_path))
        .await
        .map_err(|e| Error::internal(format!("building the sync archive stopped: {e}")))??;
    report.transfer = dispatch::copy_in(p, d, staging.path(), remote_archive).await?;
    run_ok(
        p,
        d,
        "unpacking the workdir archive",
        &script_command(APPLY, [remote_workdir, remote_archive]),
    )
    .await?;
    Ok(report)
}

/// The directory part of a `/`-separated path in the environment.
fn parent_dir(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }

    fn manifest_bytes(plan: &SyncPlan) -> Vec<u8> {
        serde_json::to_vec(&plan.manifest).expect("json")
    }

    #[test]
    fn scan_honours_gitignore_excludes_and_never_sends_git_or_the_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "train.py", "print(1)");
        write(root, ".gitignore", "data/\n*.log\n");
        write(root, "data/big.bin", "x");
        write(root, "debug.log", "x");
        write(root, "notes/keep.md", "x");
        write(root, "secret/key", "x");
        write(root, ".sindriignore", "scratch/\n");
        write(root, "scratch/tmp", "x");
        write(root, ".git/config", "x");
        write(root, MANIFEST_NAME, "{}");
        write(root, ".env.example", "x");
        let files = scan(root, &["secret/".to_string()]).expect("scan");
        assert_eq!(
            files,
            vec![
                ".env.example",
                ".gitignore",
                ".sindriignore",
                "notes/keep.md",
                "train.py"
            ]
        );
    }

    #[test]
    fn a_bad_exclude_pattern_is_invalid_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = scan(dir.path(), &["data/[z-a]".to_string()]).expect_err("must fail");
        assert_eq!(err.kind(), sindri_core::ErrorKind::Invalid);
        assert!(err.message().contains("run.exclude"), "{err}");
    }

    #[test]
    fn first_sync_sends_everything_then_only_changes_and_deletions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "a.txt", "one");
        write(root, "b.txt", "two");
        write(root, "sub/c.txt", "three");

        let first = plan(root, &[], None).expect("plan");
        assert!(first.full);
        assert_eq!(first.to_send(), ["a.txt", "b.txt", "sub/c.txt"]);

        // Unchanged: nothing to send, nothing to delete, same manifest.
        let same = plan(root, &[], Some(&manifest_bytes(&first))).expect("plan");
        assert!(same.to_send().is_empty() && same.to_delete().is_empty());
        assert!(!same.manifest_changed);

        write(root, "a.txt", "one, edited");
        std::fs::remove_file(root.join("sub/c.txt")).expect("rm");
        let next = plan(root, &[], Some(&manifest_bytes(&first))).expect("plan");
        assert!(!next.full);
        assert_eq!(next.to_send(), ["a.txt"]);
        assert_eq!(next.to_delete(), ["sub/c.txt"]);
    }

    #[test]
    fn a_touched_but_identical_file_is_not_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "a.txt", "same");
        let first = plan(root, &[], None).expect("plan");
        // Same content, another modification time: hashed, found equal, not sent.
        std::fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .and_then(|f| {
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000))
            })
            .expect("set mtime");
        let next = plan(root, &[], Some(&manifest_bytes(&first))).expect("plan");
        assert!(next.to_send().is_empty());
        // The manifest learns the new time, so the next sync need not hash it again.
        assert!(next.manifest_changed);
    }

    #[test]
    fn an_unreadable_manifest_means_a_full_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.txt", "x");
        let p = plan(dir.path(), &[], Some(b"not json")).expect("plan");
        assert!(p.full);
        assert_eq!(p.to_send(), ["a.txt"]);
    }

    #[test]
    fn the_archive_holds_the_changed_files_and_the_manifest_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "a.txt", "alpha");
        write(root, "deep/er/b.txt", "beta");
        #[cfg(unix)]
        std::os::unix::fs::symlink("a.txt", root.join("link")).expect("symlink");
        let p = plan(root, &[], None).expect("plan");
        let out = tempfile::tempdir().expect("tempdir");
        let archive = out.path().join("x.tar");
        write_archive(&p, &archive).expect("archive");
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
        let mut names = Vec::new();
        for entry in tar.entries().expect("entries") {
            let entry = entry.expect("entry");
            assert_eq!(entry.header().uid().expect("uid"), 0);
            names.push(entry.path().expect("path").to_string_lossy().into_owned());
        }
        let mut expected = vec!["a.txt", "deep/er/b.txt"];
        #[cfg(unix)]
        expected.push("link");
        expected.push(MANIFEST_NAME);
        assert_eq!(names, expected);
    }
}
