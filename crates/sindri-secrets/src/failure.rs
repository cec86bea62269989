//! One secret's failure, before the failures of all secrets are folded into one
//! [`sindri_core::Error`].

use sindri_core::ErrorKind;

/// Why one secret could not be read. Cloneable (unlike [`sindri_core::Error`]) so a
/// Vault failure can be shared by every secret read from the same path or server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}
