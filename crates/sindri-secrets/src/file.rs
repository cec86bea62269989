//! The `file` secret source.

use std::io;
use std::path::{Path, PathBuf};

use sindri_core::{ErrorKind, SecretValue};

use crate::env::Env;
use crate::failure::Failure;

/// Where a `file` secret's `path` points: `~/` is the home directory, an absolute
/// path is used as is, anything else is relative to the config file's directory.
pub(crate) fn locate(env: &Env, base_dir: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = env.home()
    {
        return home.join(rest);
    }
    base_dir.join(path)
}

/// `source: file`: the file's contents as stored, less one trailing line ending.
pub(crate) async fn read(env: &Env, base_dir: &Path, path: &str) -> Result<SecretValue, Failure> {
    let full = locate(env, base_dir, path);
    let shown = full.display();
    let bytes = tokio::fs::read(&full).await.map_err(|e| {
        let (kind, what) = match e.kind() {
            io::ErrorKind::NotFound => (ErrorKind::NotFound, "does not exist".to_string()),
            io::ErrorKind::PermissionDenied => (
                ErrorKind::Invalid,
                "cannot be read: permission denied".to_string(),
            ),
            io::ErrorKind::IsADirectory => (ErrorKind::Invalid, "is a directory".to_string()),
            _ => (ErrorKind::Internal, format!("cannot be read: {e}")),
        };
        let f = Failure::new(kind, format!("file `{shown}` {what}"));
        if kind == ErrorKind::NotFound && !Path::new(path).is_absolute() {
            f.hint(format!(
                "relative secret paths are read from the config file's directory ({})",
                base_dir.display()
            ))
        } else {
            f
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::new(
            ErrorKind::Invalid,
            format!("file `{shown}` is not UTF-8 text"),
        )
        .hint("sindri passes secrets as text; base64-encode binary values")
    })?;
    Ok(SecretValue::new(strip_one_line_ending(text)))
}

/// Removes ONE trailing line ending (`\n` or `\r\n`) and nothing else.
///
/// Editors and `echo token > file` end the last line with a newline the author never
/// meant as part of the value, and a token that keeps it breaks the HTTP header it is
/// sent in (`Authorization: Bearer abc\n` is rejected or, worse, splits the header).
/// Only one is removed, and no other whitespace, so a value that really ends in a
/// blank line or spaces (a PEM bundle, a password) survives when stored with its own
/// final newline.
pub(crate) fn strip_one_line_ending(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::strip_one_line_ending as strip;

    #[test]
    fn removes_exactly_one_line_ending() {
        assert_eq!(strip("tok\n".into()), "tok");
        assert_eq!(strip("tok\r\n".into()), "tok");
        assert_eq!(strip("tok\n\n".into()), "tok\n");
        assert_eq!(strip("tok \t".into()), "tok \t");
        assert_eq!(strip("tok".into()), "tok");
        assert_eq!(strip("\n".into()), "");
        assert_eq!(strip("a\nb\n".into()), "a\nb");
    }
}
