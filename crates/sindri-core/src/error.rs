//! The one error type every provider converts into.
//!
//! A [`Error`] carries a typed [`ErrorKind`] that says what the caller can do about it
//! (retry, try another region, fix the input), a message that says what went wrong,
//! and an optional hint that says what to do. The message and hint are shown to
//! people as they are, so they must never contain a secret: providers redact tokens
//! before building one.

use std::fmt;

use sindri_spec::ProviderKind;

use crate::capability::Operation;

/// What kind of failure an [`Error`] is, so callers can react without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The user's input (config, flags) is wrong. Exit code 2; nothing was changed.
    Invalid,
    /// The provider cannot do this operation at all; refused before any call.
    Unsupported(Operation),
    /// The thing asked about does not exist.
    NotFound,
    /// The platform has no capacity for the request; another region or offer may.
    Capacity,
    /// Credentials are missing, wrong, or not allowed to do this.
    Auth,
    /// An account limit was reached.
    Quota,
    /// A passing fault; the same call may succeed later.
    Transient,
    /// The platform could not be reached at all (daemon down, API unreachable).
    Unavailable,
    /// An object of that name exists but sindri did not create it; sindri refuses to touch it.
    Conflict,
    /// The user interrupted the operation (Ctrl-C, SIGTERM).
    Interrupted,
    /// The platform refused or failed the request for another reason.
    Platform,
    /// A local failure: file system, state database, a bug.
    Internal,
}

/// The result type of everything in sindri's provider layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure, with its kind, a message, and a hint on what to do.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    provider: Option<ProviderKind>,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            provider: None,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Invalid user input.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, message)
    }

    /// Something is missing.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// A local failure (I/O, state, a bug).
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// The platform failed the request.
    pub fn platform(provider: ProviderKind, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Platform, message).with_provider(provider)
    }

    /// The provider cannot perform `operation`; `reason` says why and what to use instead.
    pub fn unsupported(
        provider: ProviderKind,
        operation: Operation,
        reason: Option<&str>,
    ) -> Error {
        let mut e = Error::new(
            ErrorKind::Unsupported(operation),
            format!(
                "the {provider} provider does not support `{}`",
                operation.as_str()
            ),
        )
        .with_provider(provider);
        e.hint = reason.map(str::to_string);
        e
    }

    /// Attaches the provider the error came from.
    pub fn with_provider(mut self, provider: ProviderKind) -> Error {
        self.provider = Some(provider);
        self
    }

    /// Attaches a hint: what the user can do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The provider the error came from, when known.
    pub fn provider(&self) -> Option<ProviderKind> {
        self.provider
    }

    /// The message, without the provider prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the user can do about it, when sindri knows.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// True for errors worth retrying unchanged.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The process exit code for this error: 2 for bad input, 130 for an interrupt, else 1.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            // Refused before anything was sent, like bad input: the user must change
            // the command or the config, and nothing was changed anywhere.
            ErrorKind::Invalid | ErrorKind::Unsupported(_) => 2,
            ErrorKind::Interrupted => 130,
            _ => 1,
        }
    }

    /// A short stable name of the kind, for `--output json`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unsupported(_) => "unsupported",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Capacity => "capacity",
            ErrorKind::Auth => "auth",
            ErrorKind::Quota => "quota",
            ErrorKind::Transient => "transient",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Platform => "platform",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            // Unsupported already names the provider in its message.
            Some(p) if !matches!(self.kind, ErrorKind::Unsupported(_)) => {
                write!(f, "{p}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::Interrupted => ErrorKind::Interrupted,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string()).with_source(e)
    }
}
