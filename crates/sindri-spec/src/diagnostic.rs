//! Diagnostics: what is wrong in a `sindri.yaml`, where, and what would be right.
//!
//! Each problem names the file, line and column, the key path (`secrets[1].source`),
//! what was found and what was expected, like a compiler does, so a person can fix
//! every problem of a file in one pass, and a program (`--output json`) can point an
//! editor at each one.

use std::fmt;

use serde::Serialize;

/// How many characters of a long source line a diagnostic shows.
const SNIPPET_WIDTH: usize = 100;

/// A position in the source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Mark {
    pub line: u32,
    pub col: u32,
}

/// A key path such as `deployment.resources.memory` or `secrets[1].source`, built
/// while walking the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathBuf(String);

impl PathBuf {
    /// The document's top level (rendered as the empty string).
    pub fn root() -> PathBuf {
        PathBuf(String::new())
    }

    /// Appends a mapping key; keys that are not plain identifiers are quoted.
    pub fn push_key(&mut self, key: &str) {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if plain {
            if !self.0.is_empty() {
                self.0.push('.');
            }
            self.0.push_str(key);
        } else {
            self.0.push('[');
            self.0
                .push_str(&serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}")));
            self.0.push(']');
        }
    }

    /// Appends a sequence index.
    pub fn push_index(&mut self, index: usize) {
        use std::fmt::Write;
        let _ = write!(self.0, "[{index}]");
    }

    /// A copy with `key` appended.
    pub fn with_key(&self, key: &str) -> PathBuf {
        let mut p = self.clone();
        p.push_key(key);
        p
    }

    /// A copy with `index` appended.
    pub fn with_index(&self, index: usize) -> PathBuf {
        let mut p = self.clone();
        p.push_index(index);
        p
    }

    /// The length, to restore with [`PathBuf::truncate`] after a push.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Drops what was pushed after `len`.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// The rendered path.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A problem before it is tied to a file: position, path and the message parts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub start: Mark,
    /// Where the offending text ends on the start line, when known.
    pub end: Option<Mark>,
    pub path: String,
    pub found: String,
    pub expected: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(
        start: Mark,
        path: PathBuf,
        found: impl Into<String>,
        expected: impl Into<String>,
        hint: Option<String>,
    ) -> Problem {
        Problem {
            start,
            end: None,
            path: path.0,
            found: found.into(),
            expected: expected.into(),
            hint,
        }
    }

    /// Marks where the offending text ends, for the caret underline.
    pub fn with_end(mut self, end: Mark) -> Problem {
        self.end = Some(end);
        self
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as given to the loader.
    pub file: String,
    /// 1-based line; 0 when the problem is with the file as a whole (it cannot be read).
    pub line: usize,
    /// 1-based column, in characters; 0 when `line` is 0.
    pub column: usize,
    /// 1-based column just past the offending text on `line` (at least `column + 1`),
    /// so an editor can underline it.
    pub end_column: usize,
    /// The key path of the offending value, e.g. `deployment.resources.memory` or
    /// `secrets[1].source`; empty for the document as a whole.
    pub path: String,
    /// What the file contains at that position.
    pub found: String,
    /// What would have been valid there.
    pub expected: String,
    /// A suggestion for fixing it, such as `did you mean `memory`?`.
    pub hint: Option<String>,
    /// The text of `line`, shown under the message with a caret.
    #[serde(skip)]
    pub source_line: String,
}

impl Diagnostic {
    /// A problem with the file as a whole (it is missing or unreadable).
    pub fn whole_file(
        file: &str,
        found: impl Into<String>,
        expected: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            end_column: 0,
            path: String::new(),
            found: found.into(),
            expected: expected.into(),
            hint,
            source_line: String::new(),
        }
    }

    pub(crate) fn from_problem(p: Problem, file: &str, lines: &[&str]) -> Diagnostic {
        let line = p.start.line.max(1) as usize;
        let column = p.start.col.max(1) as usize;
        let source_line = lines.get(line - 1).copied().unwrap_or("").to_string();
        let line_chars = source_line.chars().count();
        let end_column = match p.end {
            Some(end) if end.line == p.start.line && end.col as usize > column => end.col as usize,
            Some(end) if end.line > p.start.line => (line_chars + 1).max(column + 1),
            _ => column + 1,
        };
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            end_column,
            path: p.path,
            found: p.found,
            expected: p.expected,
            hint: p.hint,
            source_line,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "found {}; expected {}", self.found, self.expected)?;
        if self.line > 0 {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            let chars: Vec<char> = self.source_line.trim_end().chars().collect();
            let col = self.column - 1;
            // Show a window of a long line around the column.
            let (from, to) = if chars.len() > SNIPPET_WIDTH {
                let from = col
                    .saturating_sub(SNIPPET_WIDTH / 2)
                    .min(chars.len().saturating_sub(SNIPPET_WIDTH));
                (from, (from + SNIPPET_WIDTH).min(chars.len()))
            } else {
                (0, chars.len())
            };
            let lead = if from > 0 { "..." } else { "" };
            let tail = if to < chars.len() { "..." } else { "" };
            let text: String = chars[from..to].iter().collect();
            // Keep tabs in the padding so the caret lines up under tab-indented text.
            let pad: String = lead
                .chars()
                .map(|_| ' ')
                .chain(
                    chars
                        .iter()
                        .take(col.min(chars.len()))
                        .skip(from)
                        .map(|c| if *c == '\t' { '\t' } else { ' ' }),
                )
                .collect();
            let width = self
                .end_column
                .saturating_sub(self.column)
                .clamp(1, (to + 1).saturating_sub(col).max(1));
            write!(
                f,
                "\n {number} | {lead}{text}{tail}\n {gutter} | {pad}{}",
                "^".repeat(width)
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics {
    diagnostics: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Wraps a list of diagnostics (kept in the given order).
    pub fn new(diagnostics: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { diagnostics }
    }

    /// The diagnostics, in file order.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Iterates over the diagnostics in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.diagnostics.iter()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    /// True when there is no problem (never the case for an `Err` from the loader).
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The diagnostics, by value.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.diagnostics.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.diagnostics.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            write!(f, "{d}\n\n")?;
        }
        let n = self.diagnostics.len();
        let file = self
            .diagnostics
            .first()
            .map(|d| d.file.as_str())
            .unwrap_or("the configuration");
        write!(f, "{n} error{} in {file}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_shown_around_the_column() {
        let line = format!("a: [{}x]", "1, ".repeat(100));
        let col = line.find('x').unwrap() + 1;
        let p = Problem::new(
            Mark {
                line: 1,
                col: col as u32,
            },
            PathBuf::root(),
            "x",
            "y",
            None,
        );
        let d = Diagnostic::from_problem(p, "f", &[line.as_str()]);
        let text = d.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with(" 1 | ..."), "{text}");
        assert!(lines[1].chars().count() < 120);
        // The caret is under the `x`.
        let caret = lines[2].find('^').unwrap();
        assert_eq!(lines[1].chars().nth(caret), Some('x'), "{text}");
    }

    #[test]
    fn paths_render_like_the_keys_a_person_types() {
        let mut p = PathBuf::root();
        p.push_key("secrets");
        p.push_index(1);
        p.push_key("source");
        assert_eq!(p.as_str(), "secrets[1].source");
        let q = PathBuf::root().with_key("env").with_key("my var");
        assert_eq!(q.as_str(), "env[\"my var\"]");
    }

    #[test]
    fn display_shows_the_line_and_a_caret_under_the_value() {
        let p = Problem::new(
            Mark { line: 2, col: 11 },
            PathBuf::root().with_key("resources").with_key("memory"),
            "`2 parsecs`",
            "a size",
            Some("write `2GiB`".into()),
        )
        .with_end(Mark { line: 2, col: 20 });
        let d = Diagnostic::from_problem(p, "sindri.yaml", &["resources:", "  memory: 2 parsecs"]);
        assert_eq!(
            d.to_string(),
            "error: sindri.yaml:2:11: resources.memory: found `2 parsecs`; expected a size\n \
             2 |   memory: 2 parsecs\n   |           ^^^^^^^^^\nhint: write `2GiB`"
        );
    }
}
