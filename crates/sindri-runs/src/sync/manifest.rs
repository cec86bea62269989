//! The sync manifest: which files earlier syncs put in the environment's workdir.
//!
//! It is an append-only journal of JSON lines, so a re-run sends only what changed and
//! the environment merges it with `cat`, with no JSON tool there:
//!
//! ```text
//! {"sindri_sync":2}
//! ["train.py",1234,1700000000123456789,"f","<hex sha-256>",420]
//! ["old.py"]
//! ```
//!
//! The first line names the format; each later line records a file (path, size,
//! modification time in nanoseconds, `f` or `l`, SHA-256, permission bits) or, with the
//! path alone, its removal. Reading replays the lines in order. When the journal has grown to more than
//! twice the lines it needs, the next sync writes it whole again.
//!
//! A copy of the journal is kept on this machine ([`load_cache`], [`store_cache`]). The
//! environment is asked only for the SHA-256 of its journal; when that matches the copy,
//! the journal is not downloaded. Any difference (another machine synced, the
//! environment was recreated, the copy was lost) means downloading it and comparing in
//! full.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sindri_core::Deployment;

/// The journal's first line, naming its format.
const HEADER: &[u8] = b"{\"sindri_sync\":2}\n";

/// Lines a journal may carry beyond twice its live entries before it is rewritten.
const SLACK_LINES: usize = 1_000;

/// One file as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Size in bytes (of the link target's text for a link).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i64,
    /// `f` for a regular file, `l` for a symbolic link.
    pub kind: char,
    /// Hex SHA-256 of the content (of the target's text for a link).
    pub hash: String,
    /// Permission bits as sent; 0 when unknown (a manifest of an earlier version).
    pub mode: u32,
}

/// A manifest read from its bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal {
    /// The bytes as stored in the environment.
    pub text: Vec<u8>,
    /// The files, after replaying every line.
    pub files: BTreeMap<String, Entry>,
    /// Lines after the header.
    pub lines: usize,
    /// False for a manifest that cannot take appended lines (the JSON document
    /// written by earlier versions): the next sync rewrites it whole.
    pub appendable: bool,
}

/// One journal line.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Put(String, u64, i64, char, String, u32),
    Remove((String,)),
}

/// The single JSON document earlier versions wrote.
#[derive(Deserialize)]
struct Version1 {
    version: u32,
    files: BTreeMap<String, Version1Entry>,
}

#[derive(Deserialize)]
struct Version1Entry {
    size: u64,
    mtime: i64,
    kind: char,
    hash: String,
}

impl Journal {
    /// Reads a manifest; `None` when it is in no format this build knows, or damaged
    /// (then the sync compares against nothing and sends everything).
    pub fn parse(text: Vec<u8>) -> Option<Journal> {
        if let Some(body) = text.strip_prefix(HEADER) {
            if !body.is_empty() && !body.ends_with(b"\n") {
                return None;
            }
            let mut files = BTreeMap::new();
            let mut lines = 0;
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines += 1;
                match serde_json::from_slice::<Line>(line).ok()? {
                    Line::Put(path, size, mtime, kind, hash, mode) => {
                        if !matches!(kind, 'f' | 'l') || hash.len() != 64 || !inside(&path) {
                            return None;
                        }
                        files.insert(
                            path,
                            Entry {
                                size,
                                mtime,
                                kind,
                                hash,
                                mode,
                            },
                        );
                    }
                    Line::Remove((path,)) => {
                        if !inside(&path) {
                            return None;
                        }
                        files.remove(&path);
                    }
                }
            }
            return Some(Journal {
                text,
                files,
                lines,
                appendable: true,
            });
        }
        let v1: Version1 = serde_json::from_slice(&text).ok()?;
        if v1.version != 1 || !v1.files.keys().all(|p| inside(p)) {
            return None;
        }
        Some(Journal {
            files: v1
                .files
                .into_iter()
                .map(|(path, e)| {
                    (
                        path,
                        Entry {
                            size: e.size,
                            mtime: e.mtime,
                            kind: e.kind,
                            hash: e.hash,
                            mode: 0,
                        },
                    )
                })
                .collect(),
            text,
            lines: 0,
            appendable: false,
        })
    }

    /// Whether `extra` more lines can be appended, or the journal should be rewritten
    /// whole (it is not a journal, or would carry far more lines than entries).
    pub fn takes(&self, extra: usize, entries: usize) -> bool {
        self.appendable && self.lines + extra <= 2 * entries + SLACK_LINES
    }
}

/// True for a relative path that stays inside the workdir. Removals are taken from
/// the manifest, so one naming `../x` or `/x` is damage, never an instruction.
fn inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The whole journal for `files`.
pub(crate) fn render_full(files: &BTreeMap<String, Entry>) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    for (path, e) in files {
        put_line(&mut out, path, e);
    }
    out
}

/// The lines recording `removed` paths, then `put` entries.
pub(crate) fn render_delta<'a>(
    removed: &[String],
    put: impl IntoIterator<Item = (&'a String, &'a Entry)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for path in removed {
        serde_json::to_writer(&mut out, &(path,)).expect("a JSON array of a string is encodable");
        out.push(b'\n');
    }
    for (path, e) in put {
        put_line(&mut out, path, e);
    }
    out
}

fn put_line(out: &mut Vec<u8>, path: &str, e: &Entry) {
    serde_json::to_writer(&mut *out, &(path, e.size, e.mtime, e.kind, &e.hash, e.mode))
        .expect("a JSON array of strings and numbers is encodable");
    out.push(b'\n');
}

/// Hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where this machine keeps its copy of the manifest of `remote_workdir` in `d`:
/// `<state dir>/sync/<hash of provider, project, environment and workdir>.manifest`.
pub fn cache_file(state_dir: &Path, d: &Deployment, remote_workdir: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [
        d.provider.to_string().as_str(),
        d.project.as_str(),
        d.name.as_str(),
        remote_workdir,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    state_dir
        .join("sync")
        .join(format!("{}.manifest", hex(&h.finalize()[..16])))
}

/// The cached copy, when there is a readable one.
pub(crate) fn load_cache(path: &Path) -> Option<Journal> {
    let text = std::fs::read(path).ok()?;
    Journal::parse(text).filter(|j| j.appendable)
}

/// Replaces the cached copy with `text` (through a rename, so a reader never sees half
/// of it). A failure only costs the next sync a download, so it is logged, not raised.
pub(crate) fn store_cache(path: &Path, text: &[u8]) {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(text)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the sync manifest on this machine");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u64, c: char) -> Entry {
        Entry {
            size,
            mtime: 1_700_000_000_000_000_000,
            kind: 'f',
            hash: c.to_string().repeat(64),
            mode: 0o644,
        }
    }

    #[test]
    fn a_journal_replays_puts_and_removals_in_order() {
        let mut files = BTreeMap::new();
        files.insert("a.py".to_string(), entry(1, 'a'));
        files.insert("dir/b \"quoted\"\nname".to_string(), entry(2, 'b'));
        let mut text = render_full(&files);
        let j = Journal::parse(text.clone()).expect("parses");
        assert_eq!(j.files, files);
        assert_eq!(j.lines, 2);

        let changed = BTreeMap::from([("a.py".to_string(), entry(3, 'c'))]);
        text.extend(render_delta(
            &["dir/b \"quoted\"\nname".to_string()],
            &changed,
        ));
        let j = Journal::parse(text).expect("parses");
        assert_eq!(j.files, changed);
        assert_eq!(j.lines, 4);
        assert!(j.appendable);
    }

    #[test]
    fn damage_is_never_read_as_a_smaller_manifest() {
        let files = BTreeMap::from([("a".to_string(), entry(1, 'a'))]);
        let good = render_full(&files);
        let torn = &good[..good.len() - 5];
        assert!(Journal::parse(torn.to_vec()).is_none(), "a torn last line");
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"not json\n");
        assert!(Journal::parse(garbage).is_none());
        let mut bad_hash = HEADER.to_vec();
        bad_hash.extend_from_slice(b"[\"a\",1,2,\"f\",\"short\",420]\n");
        assert!(Journal::parse(bad_hash).is_none());
        assert!(Journal::parse(b"{}".to_vec()).is_none());
        for outside in ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", ""] {
            let mut text = good.clone();
            text.extend(render_delta(&[outside.to_string()], &BTreeMap::new()));
            assert!(
                Journal::parse(text).is_none(),
                "a removal of {outside:?} is damage"
            );
        }
    }

    #[test]
    fn the_earlier_json_manifest_is_read_but_rewritten() {
        let v1 = format!(
            r#"{{"version":1,"files":{{"a.txt":{{"size":3,"mtime":7,"kind":"f","hash":"{}"}}}}}}"#,
            "e".repeat(64)
        );
        let j = Journal::parse(v1.into_bytes()).expect("version 1 is read");
        assert_eq!(j.files["a.txt"].size, 3);
        assert!(!j.takes(1, 1), "it cannot take appended lines");
    }

    #[test]
    fn a_long_journal_is_rewritten() {
        let j = Journal {
            lines: 10,
            appendable: true,
            ..Journal::default()
        };
        assert!(j.takes(5, 5));
        assert!(!j.takes(2 * 5 + SLACK_LINES, 5));
    }

    #[test]
    fn the_digest_is_what_sha256sum_prints() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
