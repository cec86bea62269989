//! `.dockerignore`, with the docker CLI's semantics.
//!
//! Patterns are Go `filepath.Match` globs extended with `**` (any number of path
//! segments), matched against paths relative to the build context, `/`-separated. A
//! leading `/` is dropped, a line starting with `!` re-includes, the last matching
//! pattern wins, and a pattern that matches a parent directory excludes everything under
//! it. The Dockerfile and `.dockerignore` are always sent (the daemon needs them).

use regex::Regex;
use sindri_core::{Error, Result};

/// A compiled `.dockerignore`.
#[derive(Debug, Default)]
pub(crate) struct Ignore {
    patterns: Vec<Pattern>,
    /// Paths always sent, and their parent directories.
    keep: Vec<String>,
}

#[derive(Debug)]
struct Pattern {
    exclusion: bool,
    regex: Regex,
}

impl Ignore {
    /// Parses the text of a `.dockerignore`; `always_keep` are paths never excluded.
    pub fn parse(text: &str, always_keep: &[&str]) -> Result<Ignore> {
        let mut patterns = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            let regex = compile(&cleaned).map_err(|e| {
                Error::invalid(format!(
                    ".dockerignore line {}: `{line}` is not a valid pattern: {e}",
                    n + 1
                ))
            })?;
            patterns.push(Pattern { exclusion, regex });
        }
        let mut keep = Vec::new();
        for k in always_keep {
            let k = clean(k);
            let mut prefix = String::new();
            for seg in k.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(seg);
                keep.push(prefix.clone());
            }
        }
        Ok(Ignore { patterns, keep })
    }

    /// Whether an excluded directory must still be walked: a `!` pattern or an
    /// always-sent file may re-include something below it.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
            || self.keep.iter().any(|k| k.starts_with(&format!("{dir}/")))
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        if self.keep.iter().any(|k| k == path) {
            return false;
        }
        let parents: Vec<&str> = path
            .char_indices()
            .filter(|(_, c)| *c == '/')
            .map(|(i, _)| &path[..i])
            .collect();
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion can only change an unmatched path, an exclusion a matched one.
            if p.exclusion != matched {
                continue;
            }
            let hit = p.regex.is_match(path) || parents.iter().any(|d| p.regex.is_match(d));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// Go's `filepath.Clean` for the cases that occur in patterns, then the leading `/`
/// dropped as the CLI does.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// Translates a pattern into an anchored regex, as moby's patternmatcher does.
fn compile(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                // `**/` is `**`.
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    re.push_str(&regex::escape(&next.to_string()));
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' => {
                // A character class: copied, with Go's `^` negation spelled for regex.
                re.push('[');
                if matches!(chars.get(i + 1), Some('^') | Some('!')) {
                    re.push('^');
                    i += 1;
                }
            }
            ']' => re.push(']'),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text, &["Dockerfile", ".dockerignore"]).unwrap()
    }

    #[test]
    fn plain_names_and_globs() {
        let i = ig("# comment\n\nnode_modules\n*.log\n/build\n");
        assert!(i.excludes("node_modules"));
        assert!(
            i.excludes("node_modules/a/b.js"),
            "a matched parent excludes its children"
        );
        assert!(i.excludes("x.log"));
        assert!(!i.excludes("src/x.log"), "`*` does not cross `/`");
        assert!(i.excludes("build/out"));
        assert!(!i.excludes("src/main.rs"));
    }

    #[test]
    fn double_star_crosses_directories() {
        let i = ig("**/*.tmp\ndocs/**\n");
        assert!(i.excludes("a.tmp"));
        assert!(i.excludes("a/b/c.tmp"));
        assert!(i.excludes("docs/x/y.md"));
        assert!(!i.excludes("docsx"));
    }

    #[test]
    fn exceptions_reinclude_and_last_match_wins() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));
        let j = ig("!keep\n*\n");
        assert!(j.excludes("keep"), "a later pattern wins");
    }

    #[test]
    fn dockerfile_and_dockerignore_are_always_sent() {
        let i = ig("*\n");
        assert!(i.excludes("src"));
        assert!(!i.excludes("Dockerfile"));
        assert!(!i.excludes(".dockerignore"));
        assert!(
            !i.may_reinclude_under("src"),
            "nothing below src can come back"
        );
        let nested = Ignore::parse("docker\n", &["docker/Dockerfile"]).unwrap();
        assert!(nested.excludes("docker/other"));
        assert!(!nested.excludes("docker/Dockerfile"));
        assert!(nested.may_reinclude_under("docker"));
        assert!(ig("x\n!x/y\n").may_reinclude_under("x"));
    }

    #[test]
    fn question_mark_classes_and_cleaning() {
        let i = ig("file?.txt\n[ab].c\n./out/../tmp\n");
        assert!(i.excludes("file1.txt"));
        assert!(!i.excludes("file10.txt"));
        assert!(i.excludes("a.c") && !i.excludes("c.c"));
        assert!(i.excludes("tmp/x"));
    }
}
