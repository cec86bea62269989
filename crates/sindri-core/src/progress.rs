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
    /// The phase failed after `took`; the error itself reaches the caller. Kept apart
    /// from [`Progress::phase_finished`] so a failed step is never shown as done.
    fn phase_failed(&self, phase: &str, took: Duration) {
        let _ = (phase, took);
    }
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

/// What a phase returns: it tells whether the phase failed.
pub trait PhaseOutcome {
    /// Whether the phase failed.
    fn failed(&self) -> bool;
}

impl<T, E> PhaseOutcome for std::result::Result<T, E> {
    fn failed(&self) -> bool {
        self.is_err()
    }
}

/// Runs `f` as a named phase, reporting its start and its end: finished with its
/// duration, or failed.
pub async fn phase<T, F>(progress: &dyn Progress, name: &str, f: F) -> T
where
    T: PhaseOutcome,
    F: std::future::Future<Output = T>,
{
    progress.phase_started(name);
    let start = std::time::Instant::now();
    let out = f.await;
    if out.failed() {
        progress.phase_failed(name, start.elapsed());
    } else {
        progress.phase_finished(name, start.elapsed());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn phase_started(&self, p: &str) {
            self.0.lock().unwrap().push(format!("start {p}"));
        }
        fn phase_finished(&self, p: &str, _: Duration) {
            self.0.lock().unwrap().push(format!("done {p}"));
        }
        fn phase_failed(&self, p: &str, _: Duration) {
            self.0.lock().unwrap().push(format!("failed {p}"));
        }
        fn message(&self, _: &str) {}
    }

    #[tokio::test]
    async fn a_failed_phase_is_reported_as_failed_not_done() {
        let log = Log::default();
        let ok: Result<u8, &str> = phase(&log, "a", async { Ok(1) }).await;
        let err: Result<u8, &str> = phase(&log, "b", async { Err("no") }).await;
        assert_eq!((ok, err), (Ok(1), Err("no")));
        assert_eq!(
            *log.0.lock().unwrap(),
            ["start a", "done a", "start b", "failed b"]
        );
    }
}
