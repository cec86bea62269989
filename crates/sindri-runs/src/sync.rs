//! Syncing the local workdir into the environment, sending only what changed.
//!
//! The environment keeps a manifest of what earlier syncs sent, at
//! `<remote workdir>/.sindri-sync-manifest` ([`manifest`]: every file's path, size,
//! modification time and SHA-256, as an append-only journal), and this machine keeps a
//! copy of it in the state directory. A sync takes three calls:
//!
//! 1. one short `exec` creates the workdir and compares the SHA-256 of the
//!    environment's manifest with the local copy's; only when they differ (or there is
//!    no local copy) does the manifest come back, so a lost or stale copy, another
//!    machine's sync or a recreated environment all lead to a full comparison, never to
//!    trusting a manifest the environment does not hold;
//! 2. `copy_in` sends one tar with the new and changed files and the manifest lines
//!    that changed (the whole manifest when there was none, or its journal has grown
//!    long);
//! 3. one `exec` removes the files the manifest lists that are gone locally (and
//!    directories left empty by that), unpacks the tar and appends the lines to the
//!    manifest.
//!
//! A re-run with one changed file thus moves a few kilobytes whatever the size of the
//! tree. A file whose size and modification time match the manifest is taken as
//! unchanged without being read; one whose metadata changed is hashed, and sent only
//! if its content changed. Which files are considered is [`scan`]'s business.
//!
//! What the manifest records is what sindri sent: a file the job itself changes in the
//! environment is not noticed (and not overwritten) until it changes locally.

mod manifest;
mod scan;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sindri_core::{Deployment, Error, ExecCommand, Provider, Result, TransferStats, dispatch};

use crate::shell::{Captured, capture};
pub use manifest::cache_file;
use manifest::{Entry, Journal};
pub use scan::scan;
use scan::{LocalFile, Workdir, hash_files};

/// The manifest's file name, in the remote workdir.
pub const MANIFEST_NAME: &str = ".sindri-sync-manifest";

/// Suffixes of the files a sync stages next to the manifest: a whole new manifest, the
/// lines to append, and the merge's temporary file.
const STAGED_SUFFIXES: [&str; 3] = [".new", ".delta", ".tmp"];

/// How many paths one removal `exec` takes, well below any `ARG_MAX`.
const DELETE_BATCH: usize = 500;

/// How many changed or deleted paths a [`SyncReport`] lists by name.
pub const LISTED_PATHS: usize = 200;

/// True for the manifest and the files staged next to it, which are never synced.
pub(crate) fn is_own_file(rel: &str) -> bool {
    rel.strip_prefix(MANIFEST_NAME)
        .is_some_and(|rest| rest.is_empty() || STAGED_SUFFIXES.contains(&rest))
}

/// Where the sync's comparison started from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestSource {
    /// The environment had no usable manifest: everything was sent.
    #[default]
    None,
    /// The environment's manifest matched the copy kept on this machine, so it was not
    /// downloaded.
    Cache,
    /// The environment's manifest was downloaded (this machine had no copy, or an
    /// outdated one).
    Environment,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Files in the local workdir after `.gitignore` and `run.exclude`.
    pub files: u64,
    /// Files sent because they are new or their content changed.
    pub files_sent: u64,
    /// Content bytes of the files sent (what changed, not what crossed the wire: see
    /// [`SyncReport::wire_sent`]).
    pub bytes_sent: u64,
    /// Files removed from the environment because they are gone locally.
    pub files_deleted: u64,
    /// True when the environment had no usable manifest, so everything was sent.
    pub full: bool,
    /// Where the comparison started from.
    pub manifest: ManifestSource,
    /// Every byte the sync's calls carried to the environment: command lines and
    /// their arguments, the archive (files, tar headers, manifest lines). The
    /// transport's own framing (SSH packets, HTTP headers) comes on top.
    pub wire_sent: u64,
    /// Every byte the sync's calls brought back: command output, including a
    /// downloaded manifest.
    pub wire_received: u64,
    /// Calls to the provider (`exec` and `copy_in`).
    pub calls: u32,
    /// What `copy_in` reported for the one archive, when anything was sent.
    pub transfer: TransferStats,
    /// Paths sent, at most [`LISTED_PATHS`] of them.
    pub sent: Vec<String>,
    /// Paths removed, at most [`LISTED_PATHS`] of them.
    pub deleted: Vec<String>,
}

impl SyncReport {
    /// One line for people: what changed and what it cost.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} of {} file(s) new or changed ({}), {} removed; {} sent, {} received in {} call(s)",
            self.files_sent,
            self.files,
            human_bytes(self.bytes_sent),
            self.files_deleted,
            human_bytes(self.wire_sent),
            human_bytes(self.wire_received),
            self.calls
        );
        match self.manifest {
            ManifestSource::None => s.push_str(" (first sync)"),
            ManifestSource::Environment => {
                s.push_str(" (read the environment's manifest: this machine had no current copy)")
            }
            ManifestSource::Cache => {}
        }
        s
    }
}

/// Bytes in decimal units, as people read transfer sizes.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The local side of a sync: which files, decided before anything is sent.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The manifest after this sync.
    entries: BTreeMap<String, Entry>,
    /// Entries new or different from the previous manifest (sent files, and files
    /// whose metadata changed while their content did not).
    changed: BTreeMap<String, Entry>,
    send: Vec<String>,
    delete: Vec<String>,
    files: BTreeMap<String, LocalFile>,
    full: bool,
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

    /// True when the environment needs nothing: no file to send or remove, and a
    /// manifest that already says so.
    fn is_noop(&self, base: Option<&Journal>) -> bool {
        base.is_some_and(|b| b.appendable) && self.changed.is_empty() && self.delete.is_empty()
    }
}

/// Compares the local workdir with the environment's manifest text (`None`: no
/// manifest). Reads only files whose size or modification time differ from it.
pub fn plan(root: &Path, excludes: &[String], remote_manifest: Option<&[u8]>) -> Result<SyncPlan> {
    let base = remote_manifest.and_then(|t| Journal::parse(t.to_vec()));
    let files = Workdir::new(root, excludes)?.files()?;
    plan_against(files, base.as_ref())
}

fn plan_against(files: BTreeMap<String, LocalFile>, base: Option<&Journal>) -> Result<SyncPlan> {
    let empty = BTreeMap::new();
    let previous = base.map_or(&empty, |b| &b.files);
    // Mode 0: recorded by an earlier version, which did not keep it.
    let same_mode = |e: &Entry, file: &LocalFile| e.mode == 0 || e.mode == file.mode;
    let unchanged = |path: &String, file: &LocalFile| {
        previous.get(path).is_some_and(|e| {
            e.size == file.size
                && e.mtime == file.mtime
                && e.kind == file.kind
                && same_mode(e, file)
        })
    };

    let to_hash: Vec<(&String, &LocalFile)> =
        files.iter().filter(|(p, f)| !unchanged(p, f)).collect();
    let hashes = hash_files(&to_hash.iter().map(|(_, f)| *f).collect::<Vec<_>>())?;
    let mut send = Vec::new();
    let mut changed = BTreeMap::new();
    for ((path, file), hash) in to_hash.into_iter().zip(hashes) {
        if previous
            .get(path)
            .is_none_or(|e| e.hash != hash || e.kind != file.kind || !same_mode(e, file))
        {
            send.push(path.clone());
        }
        changed.insert(
            path.clone(),
            Entry {
                size: file.size,
                mtime: file.mtime,
                kind: file.kind,
                hash,
                mode: file.mode,
            },
        );
    }
    let entries: BTreeMap<String, Entry> = files
        .keys()
        .map(|path| {
            let e = changed
                .get(path)
                .or_else(|| previous.get(path))
                .expect("every file is either unchanged or hashed");
            (path.clone(), e.clone())
        })
        .collect();
    let delete: Vec<String> = previous
        .keys()
        .filter(|p| !files.contains_key(*p))
        .cloned()
        .collect();
    Ok(SyncPlan {
        entries,
        changed,
        send,
        delete,
        files,
        full: base.is_none(),
    })
}

/// How the environment's manifest is brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ManifestUpdate {
    /// These lines are appended to it.
    Append(Vec<u8>),
    /// It is replaced by this text.
    Replace(Vec<u8>),
}

impl ManifestUpdate {
    /// Chooses between appending and rewriting, and returns the manifest text the
    /// environment will hold afterwards.
    fn choose(plan: &SyncPlan, base: Option<&Journal>) -> (ManifestUpdate, Vec<u8>) {
        let delta_lines = plan.changed.len() + plan.delete.len();
        match base {
            Some(b) if b.takes(delta_lines, plan.entries.len()) => {
                let delta = manifest::render_delta(&plan.delete, &plan.changed);
                let mut text = b.text.clone();
                text.extend_from_slice(&delta);
                (ManifestUpdate::Append(delta), text)
            }
            _ => {
                let full = manifest::render_full(&plan.entries);
                (ManifestUpdate::Replace(full.clone()), full)
            }
        }
    }

    /// The archive member carrying it, and the mode `APPLY` takes.
    fn member(&self) -> (String, &[u8], &'static str) {
        match self {
            ManifestUpdate::Append(d) => (format!("{MANIFEST_NAME}.delta"), d, "append"),
            ManifestUpdate::Replace(t) => (format!("{MANIFEST_NAME}.new"), t, "replace"),
        }
    }
}

/// Writes the files to send, then the manifest update, as a tar at `dest`; returns
/// its size. Owners are recorded as root (0:0) so unpacking never assigns this
/// machine's user ids.
fn write_archive(
    files: &[(String, LocalFile)],
    update: &ManifestUpdate,
    dest: &Path,
) -> Result<u64> {
    let file = std::fs::File::create(dest)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, file));
    for (path, local) in files {
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
    let (name, bytes, _) = update.member();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(sindri_core::unix_now().max(0) as u64);
    header.set_size(bytes.len() as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)?;
    let mut out = tar.into_inner()?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok(file.metadata()?.len())
}

/// Creates workdir `$1` and staging directory `$3`. Prints `none` when there is no
/// manifest `$1/$2`, `same` when its SHA-256 is `$4`, else `manifest` and the manifest.
const PROBE: &str = r#"
mkdir -p "$1" "$3" || exit 1
m="$1/$2"
if [ ! -f "$m" ]; then echo none; exit 0; fi
if [ -n "$4" ]; then
  if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < "$m")
  elif command -v shasum >/dev/null 2>&1; then h=$(shasum -a 256 < "$m")
  else h=; fi
  if [ "${h%% *}" = "$4" ]; then echo same; exit 0; fi
fi
echo manifest
exec cat -- "$m"
"#;

/// In workdir `$1`: removes `$5...` (and directories left empty), then, when archive
/// `$2` is given, unpacks and removes it and updates manifest `$4` as `$3` says:
/// `replace` with `$4.new`, or `append` `$4.delta` (through a rename, so the manifest
/// is never half written).
const APPLY: &str = r#"
wd=$1; archive=$2; mode=$3; m=$4; shift 4
cd "$wd" || exit 1
for f in "$@"; do
  rm -f -- "$f" || exit 1
  d=$(dirname -- "$f")
  while [ "$d" != . ] && [ "$d" != / ] && rmdir -- "$d" 2>/dev/null; do d=$(dirname -- "$d"); done
done
[ -n "$archive" ] || exit 0
tar -xf "$archive" || exit 1
rm -f -- "$archive"
case "$mode" in
  replace) mv -f -- "$m.new" "$m" || exit 1 ;;
  append)
    [ -f "$m" ] || { echo "the sync manifest $wd/$m disappeared during the sync" >&2; exit 1; }
    cat -- "$m" "$m.delta" > "$m.tmp" && mv -f -- "$m.tmp" "$m" && rm -f -- "$m.delta" || exit 1 ;;
esac
"#;

/// Counts what a sync's calls carry.
#[derive(Debug, Default)]
struct Wire {
    sent: u64,
    received: u64,
    calls: u32,
}

impl Wire {
    /// Runs `script` with `args` as `$1...` through `exec`, counting the command line
    /// and the output.
    async fn script<I, S>(
        &mut self,
        p: &dyn Provider,
        d: &Deployment,
        script: &str,
        args: I,
    ) -> Result<Captured>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            script.to_string(),
            "sindri".to_string(),
        ];
        argv.extend(args.into_iter().map(Into::into));
        let words: u64 = argv.iter().map(|a| a.len() as u64 + 1).sum();
        self.sent += words;
        self.calls += 1;
        let out = capture(p, d, &ExecCommand::new(argv)).await?;
        self.received += (out.stdout.len() + out.stderr.len()) as u64;
        Ok(out)
    }

    /// Like [`Wire::script`], failing with `doing` and the script's stderr unless it
    /// exits 0.
    async fn script_ok<I, S>(
        &mut self,
        p: &dyn Provider,
        d: &Deployment,
        doing: &str,
        script: &str,
        args: I,
    ) -> Result<Captured>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.script(p, d, script, args).await?.success(p, d, doing)
    }
}

/// What the probe found in the environment.
fn read_probe(out: &Captured, cached: Option<Journal>) -> (Option<Journal>, ManifestSource) {
    let text = out.stdout.as_slice();
    if text == b"same\n"
        && let Some(c) = cached
    {
        return (Some(c), ManifestSource::Cache);
    }
    if let Some(body) = text.strip_prefix(b"manifest\n")
        && let Some(j) = Journal::parse(body.to_vec())
    {
        return (Some(j), ManifestSource::Environment);
    }
    (None, ManifestSource::None)
}

/// Where a sync goes and what it keeps.
#[derive(Debug, Clone)]
pub struct SyncTarget<'a> {
    /// The workdir in the environment (absolute).
    pub workdir: &'a str,
    /// Where the archive is staged in the environment: a path that does not exist
    /// yet, outside the workdir.
    pub archive: &'a str,
    /// The local copy of the environment's manifest ([`cache_file`]); `None` keeps
    /// none, and every sync reads the environment's manifest.
    pub cache: Option<PathBuf>,
}

/// Syncs `local_dir` (with `excludes`, gitignore syntax) into `target.workdir`.
pub async fn sync_workdir(
    p: &dyn Provider,
    d: &Deployment,
    local_dir: &Path,
    excludes: &[String],
    target: &SyncTarget<'_>,
) -> Result<SyncReport> {
    // Bad input is refused here, before anything reaches the environment; the walk
    // itself runs while the environment answers the probe.
    let workdir = Workdir::new(local_dir, excludes)?;
    let scan = tokio::task::spawn_blocking(move || workdir.files());
    let mut wire = Wire::default();
    let cache_path = target.cache.clone();
    let cached = match cache_path.clone() {
        Some(path) => tokio::task::spawn_blocking(move || manifest::load_cache(&path))
            .await
            .map_err(|e| Error::internal(format!("reading the cached manifest stopped: {e}")))?,
        None => None,
    };
    let expected = cached
        .as_ref()
        .map(|c| manifest::digest(&c.text))
        .unwrap_or_default();
    let probe = wire
        .script(
            p,
            d,
            PROBE,
            [
                target.workdir,
                MANIFEST_NAME,
                parent_dir(target.archive),
                expected.as_str(),
            ],
        )
        .await?;
    if probe.code != 0 {
        return Err(Error::platform(
            p.kind(),
            format!(
                "cannot create the workdir {} in environment `{}`: {}",
                target.workdir,
                d.name,
                probe.stderr_text()
            ),
        ));
    }
    let (base, source) = read_probe(&probe, cached);
    drop(probe);

    let files = scan
        .await
        .map_err(|e| Error::internal(format!("the workdir scan stopped: {e}")))??;
    let (plan, base) = tokio::task::spawn_blocking(move || {
        plan_against(files, base.as_ref()).map(|plan| (plan, base))
    })
    .await
    .map_err(|e| Error::internal(format!("comparing the workdir stopped: {e}")))??;

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
        manifest: source,
        sent: plan.send.iter().take(LISTED_PATHS).cloned().collect(),
        deleted: plan.delete.iter().take(LISTED_PATHS).cloned().collect(),
        ..SyncReport::default()
    };
    if plan.is_noop(base.as_ref()) {
        // A downloaded manifest is what the environment holds: keep it, so the next
        // sync need not download it again.
        if let (Some(path), Some(b), ManifestSource::Environment) = (&cache_path, &base, source) {
            manifest::store_cache(path, &b.text);
        }
        report.wire_sent = wire.sent;
        report.wire_received = wire.received;
        report.calls = wire.calls;
        return Ok(report);
    }

    // The local copy is replaced only once the environment took the update. Should
    // the sync stop half way, the next probe finds the digests differ (or still equal,
    // when nothing was applied) and acts on that.
    let (update, new_text) = ManifestUpdate::choose(&plan, base.as_ref());

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
    let to_send: Vec<(String, LocalFile)> = plan
        .send
        .iter()
        .filter_map(|p| plan.files.get(p).map(|f| (p.clone(), f.clone())))
        .collect();
    let update_for_archive = update.clone();
    let archive_len = tokio::task::spawn_blocking(move || {
        write_archive(&to_send, &update_for_archive, &archive_path)
    })
    .await
    .map_err(|e| Error::internal(format!("building the sync archive stopped: {e}")))??;

    // Removals come before unpacking (a file may become a directory of the same name)
    // and the manifest is updated last: an interrupted sync leaves the old manifest,
    // and the next sync redoes the work.
    let mut chunks: Vec<&[String]> = plan.delete.chunks(DELETE_BATCH).collect();
    let last = chunks.pop().unwrap_or(&[]);
    for chunk in chunks {
        let mut args = vec![
            target.workdir.to_string(),
            String::new(),
            String::new(),
            MANIFEST_NAME.to_string(),
        ];
        args.extend(chunk.iter().cloned());
        wire.script_ok(p, d, "removing deleted files from the workdir", APPLY, args)
            .await?;
    }

    report.transfer = dispatch::copy_in(p, d, staging.path(), target.archive).await?;
    wire.sent += archive_len;
    wire.calls += 1;

    let (_, _, mode) = update.member();
    let mut args = vec![
        target.workdir.to_string(),
        target.archive.to_string(),
        mode.to_string(),
        MANIFEST_NAME.to_string(),
    ];
    args.extend(last.iter().cloned());
    wire.script_ok(p, d, "unpacking the workdir archive", APPLY, args)
        .await?;
    if let Some(path) = cache_path {
        tokio::task::spawn_blocking(move || manifest::store_cache(&path, &new_text))
            .await
            .map_err(|e| Error::internal(format!("keeping the sync manifest stopped: {e}")))?;
    }
    report.wire_sent = wire.sent;
    report.wire_received = wire.received;
    report.calls = wire.calls;
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
        manifest::render_full(&plan.entries)
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
        write(root, &format!("{MANIFEST_NAME}.delta"), "x");
        write(root, &format!("{MANIFEST_NAME}-notes.md"), "a user's file");
        write(root, ".env.example", "x");
        let files = scan(root, &["secret/".to_string()]).expect("scan");
        assert_eq!(
            files,
            vec![
                ".env.example",
                ".gitignore",
                ".sindri-sync-manifest-notes.md",
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

        // Unchanged: nothing to send, nothing to delete, nothing for the manifest.
        let base = manifest_bytes(&first);
        let same = plan(root, &[], Some(&base)).expect("plan");
        assert!(same.to_send().is_empty() && same.to_delete().is_empty());
        assert!(same.is_noop(Journal::parse(base.clone()).as_ref()));

        write(root, "a.txt", "one, edited");
        std::fs::remove_file(root.join("sub/c.txt")).expect("rm");
        let next = plan(root, &[], Some(&base)).expect("plan");
        assert!(!next.full);
        assert_eq!(next.to_send(), ["a.txt"]);
        assert_eq!(next.to_delete(), ["sub/c.txt"]);
    }

    #[test]
    fn a_change_appends_only_its_lines_and_the_result_reads_back_as_the_new_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for i in 0..50 {
            write(root, &format!("f{i}.txt"), &format!("file {i}"));
        }
        let first = plan(root, &[], None).expect("plan");
        let base = Journal::parse(manifest_bytes(&first)).expect("journal");
        write(root, "f7.txt", "edited");
        std::fs::remove_file(root.join("f9.txt")).expect("rm");
        let files = Workdir::new(root, &[])
            .and_then(|w| w.files())
            .expect("scan");
        let next = plan_against(files, Some(&base)).expect("plan");
        let (update, text) = ManifestUpdate::choose(&next, Some(&base));
        let ManifestUpdate::Append(delta) = update else {
            panic!("a small change is appended: {update:?}");
        };
        assert_eq!(
            delta
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
            2
        );
        assert!(delta.len() < 300, "{} bytes for two lines", delta.len());
        let merged = Journal::parse(text).expect("the merged journal reads back");
        assert_eq!(merged.files, next.entries);
    }

    #[test]
    fn without_a_journal_to_append_to_the_manifest_is_written_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.txt", "x");
        let p = plan(dir.path(), &[], None).expect("plan");
        let (update, text) = ManifestUpdate::choose(&p, None);
        assert_eq!(update, ManifestUpdate::Replace(text.clone()));
        assert_eq!(Journal::parse(text).expect("reads").files, p.entries);
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
        let base = manifest_bytes(&first);
        let next = plan(root, &[], Some(&base)).expect("plan");
        assert!(next.to_send().is_empty());
        // The manifest learns the new time, so the next sync need not hash it again.
        assert!(!next.is_noop(Journal::parse(base).as_ref()));
        assert_eq!(next.changed.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_made_executable_is_sent_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "run.sh", "echo hi");
        let first = plan(root, &[], None).expect("plan");
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let next = plan(root, &[], Some(&manifest_bytes(&first))).expect("plan");
        assert_eq!(next.to_send(), ["run.sh"], "only its mode changed");
        assert_eq!(next.entries["run.sh"].mode, 0o755);
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
    fn the_probe_answer_is_trusted_only_with_a_copy_to_match() {
        let text = manifest::render_full(&BTreeMap::new());
        let cached = || Journal::parse(text.clone());
        let out = |s: &[u8]| Captured {
            code: 0,
            stdout: s.to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(
            read_probe(&out(b"same\n"), cached()).1,
            ManifestSource::Cache
        );
        assert_eq!(read_probe(&out(b"same\n"), None).1, ManifestSource::None);
        assert_eq!(
            read_probe(&out(b"none\n"), cached()).1,
            ManifestSource::None
        );
        let mut downloaded = b"manifest\n".to_vec();
        downloaded.extend_from_slice(&text);
        assert_eq!(
            read_probe(&out(&downloaded), None).1,
            ManifestSource::Environment
        );
        assert_eq!(
            read_probe(&out(b"manifest\ngarbage"), cached()).1,
            ManifestSource::None
        );
    }

    #[test]
    fn the_archive_holds_the_changed_files_and_the_manifest_update_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "a.txt", "alpha");
        write(root, "deep/er/b.txt", "beta");
        #[cfg(unix)]
        std::os::unix::fs::symlink("a.txt", root.join("link")).expect("symlink");
        let p = plan(root, &[], None).expect("plan");
        let out = tempfile::tempdir().expect("tempdir");
        let archive = out.path().join("x.tar");
        let files: Vec<(String, LocalFile)> = p
            .send
            .iter()
            .map(|s| (s.clone(), p.files[s].clone()))
            .collect();
        let (update, _) = ManifestUpdate::choose(&p, None);
        let len = write_archive(&files, &update, &archive).expect("archive");
        assert_eq!(len, std::fs::metadata(&archive).expect("stat").len());
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
        let mut names = Vec::new();
        for entry in tar.entries().expect("entries") {
            let entry = entry.expect("entry");
            assert_eq!(entry.header().uid().expect("uid"), 0);
            names.push(entry.path().expect("path").to_string_lossy().into_owned());
        }
        let mut expected = vec!["a.txt".to_string(), "deep/er/b.txt".to_string()];
        #[cfg(unix)]
        expected.push("link".into());
        expected.push(format!("{MANIFEST_NAME}.new"));
        assert_eq!(names, expected);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_560_000), "1.6 MB");
        assert_eq!(human_bytes(51_800_000), "51.8 MB");
    }
}
