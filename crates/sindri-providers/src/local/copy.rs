//! File copies with the semantics every provider's `copy_in`/`copy_out` shares (those
//! of `docker cp`): a directory's contents land in the destination (merged when it
//! exists, created when not); a file becomes the destination, or goes inside it when
//! the destination is an existing directory. Symbolic links are copied as links.

use std::path::Path;

use sindri_core::{Error, ErrorKind, Result, TransferStats};
use sindri_spec::ProviderKind;

/// Copies `from` to `to`; counts regular files and their bytes.
pub fn copy(from: &Path, to: &Path) -> Result<TransferStats> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("cannot read {}: {e}", from.display()))
            .with_provider(ProviderKind::Local)
    })?;
    let mut stats = TransferStats::default();
    if meta.is_dir() {
        if let (Ok(src), Ok(dst)) = (from.canonicalize(), canonical_or_parent(to))
            && dst.starts_with(&src)
        {
            return Err(Error::invalid(format!(
                "cannot copy the directory {} into itself ({})",
                from.display(),
                to.display()
            ))
            .with_provider(ProviderKind::Local));
        }
        match std::fs::metadata(to) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::invalid(format!(
                    "cannot copy the directory {} onto the file {}",
                    from.display(),
                    to.display()
                ))
                .with_provider(ProviderKind::Local));
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir_all(to)?,
        }
        copy_tree(from, to, &mut stats)?;
    } else {
        let dest = if to.is_dir() {
            match from.file_name() {
                Some(name) => to.join(name),
                None => to.to_path_buf(),
            }
        } else {
            to.to_path_buf()
        };
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        copy_one(from, &dest, &meta, &mut stats)?;
    }
    Ok(stats)
}

/// `p` canonicalized, or its parent's canonical path joined with its name when `p`
/// does not exist yet.
fn canonical_or_parent(p: &Path) -> std::io::Result<std::path::PathBuf> {
    match p.canonicalize() {
        Ok(c) => Ok(c),
        Err(_) => {
            let parent = p
                .parent()
                .filter(|x| !x.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = p.file_name().unwrap_or_default();
            Ok(canonical_or_parent(parent)?.join(name))
        }
    }
}

fn copy_tree(from: &Path, to: &Path, stats: &mut TransferStats) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            if !dst.is_dir() {
                std::fs::create_dir_all(&dst)?;
            }
            copy_tree(&src, &dst, stats)?;
        } else {
            copy_one(&src, &dst, &meta, stats)?;
        }
    }
    Ok(())
}

fn copy_one(
    from: &Path,
    to: &Path,
    meta: &std::fs::Metadata,
    stats: &mut TransferStats,
) -> Result<()> {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        if std::fs::symlink_metadata(to).is_ok() {
            std::fs::remove_file(to)?;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, to)?;
        #[cfg(not(unix))]
        std::fs::copy(from, to)?;
        return Ok(());
    }
    if !meta.is_file() {
        // Sockets, fifos and devices cannot be copied as files.
        return Ok(());
    }
    if std::fs::symlink_metadata(to).is_ok_and(|m| m.file_type().is_symlink()) {
        // Write a file where the link was, never through it.
        std::fs::remove_file(to)?;
    }
    let bytes = std::fs::copy(from, to)?;
    stats.files += 1;
    stats.bytes += bytes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_becomes_a_missing_destination_and_merges_into_an_existing_one() {
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("a"), b"12345").expect("write");
        std::fs::write(src.join("sub/b"), b"1").expect("write");
        let dst = t.path().join("new/dst");
        let stats = copy(&src, &dst).expect("copy");
        assert_eq!(stats, TransferStats { files: 2, bytes: 6 });
        assert_eq!(std::fs::read(dst.join("sub/b")).expect("read"), b"1");

        std::fs::write(dst.join("kept"), b"x").expect("write");
        copy(&src, &dst).expect("copy again");
        assert!(
            dst.join("kept").exists(),
            "an existing directory is merged into"
        );
    }

    #[test]
    fn a_file_becomes_the_destination_or_goes_inside_a_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("f.txt");
        std::fs::write(&f, b"abc").expect("write");
        let as_file = t.path().join("out/g.txt");
        assert_eq!(
            copy(&f, &as_file).expect("copy"),
            TransferStats { files: 1, bytes: 3 }
        );
        assert_eq!(std::fs::read(&as_file).expect("read"), b"abc");
        let dir = t.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        copy(&f, &dir).expect("copy into dir");
        assert_eq!(std::fs::read(dir.join("f.txt")).expect("read"), b"abc");
    }

    #[test]
    fn missing_sources_are_not_found_and_self_copies_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let e = copy(&t.path().join("nope"), &t.path().join("x")).expect_err("missing");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = copy(t.path(), &t.path().join("inner")).expect_err("into itself");
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}
