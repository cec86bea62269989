//! Ctrl-C and SIGTERM: an operation in flight is abandoned cleanly, never half-recorded.
//!
//! Dropping a provider future stops it at its next await point; the deployment record
//! written before it started stays in `creating`, so the next command finds and
//! finishes or cleans what was begun.

use std::future::Future;

use sindri_core::{Error, ErrorKind};

/// Resolves when the user interrupts (SIGINT) or the process is asked to stop (SIGTERM).
pub async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "interrupted (Ctrl-C)",
                _ = term.recv() => "terminated (SIGTERM)",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted (Ctrl-C)"
    }
}

/// Runs `fut`, abandoning it with an `Interrupted` error on Ctrl-C or SIGTERM.
pub async fn interruptible<T, F>(fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    tokio::select! {
        r = fut => r,
        why = interrupted() => Err(Error::new(ErrorKind::Interrupted, why)),
    }
}
