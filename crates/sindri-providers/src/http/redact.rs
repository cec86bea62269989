//! Keeps tokens and secret values out of every message the HTTP client produces.

use std::fmt;

/// The text every error and log line of a client is scrubbed of: its tokens, and any
/// secret value a provider registers because it travels in a request body.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

impl Redactor {
    /// A redactor that knows no secrets yet.
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Adds a value to scrub. Empty values are ignored (they would match everywhere).
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() || self.secrets.iter().any(|s| s == secret) {
            return;
        }
        self.secrets.push(secret.to_string());
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds every value another redactor knows.
    pub fn extend(&mut self, other: &Redactor) {
        for s in &other.secrets {
            self.add(s);
        }
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let mut r = Redactor::new();
        r.add("abc");
        r.add("abcdef");
        r.add("");
        assert_eq!(
            r.redact("x abcdef y abc z abcdefabc"),
            "x *** y *** z ******"
        );
        assert_eq!(
            format!("{r:?}"),
            "Redactor(2 secrets)",
            "Debug never shows a secret"
        );
    }
}
