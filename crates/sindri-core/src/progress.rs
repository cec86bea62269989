//! How long-running provider operations report progress.
//!
//! Providers say which phase they are in and how long it took; the CLI turns that into
//! spinners for people and into a `phases` list for `--output json`.

use std::time::Duration;

/// Receives progress from a provider operation.
pub trait Progress: Send + Sync {
    /// A phase began, e.g. `build image`, `create container`, `wait for ready`.
    fn phase_started(&self, phase: &str);
    /// The phase ended after `took`.
    fn phase_finished(&self, phase: &str, took: Duration);
    /// A line of detail within the current phase (a build step, a retry).
    fn message(&self, text: &str);
    /// A warning the user should see even when output is quiet.
    fn warn(&self, text: &str) {
        self.message(text);
    }
}

/// Discards all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase_started(&self, _: &str) {}
    fn phase_finished(&self, _: &str, _: Duration) {}
    fn message(&self, _: &str) {}
}

/// Runs `f` as a named phase, reporting its start and duration.
pub async fn phase<T, F>(progress: &dyn Progress, name: &str, f: F) -> T
where
    F: std::future::Future<Output = T>,
{
    progress.phase_started(name);
    let start = std::time::Instant::now();
    let out = f.await;
    progress.phase_finished(name, start.elapsed());
    out
}
