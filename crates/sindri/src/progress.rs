//! Progress for people: a spinner per phase on a terminal, plain lines otherwise,
//! nothing with `--quiet` or `--output json`. Phase timings are kept for the report.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sindri_core::Progress;

use crate::output::{Output, human_duration};

/// A finished phase and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    /// Phase name.
    pub phase: String,
    /// Milliseconds.
    pub millis: u128,
}

/// The CLI's [`Progress`].
pub struct CliProgress {
    visible: bool,
    spinner: bool,
    current: Mutex<Option<ProgressBar>>,
    phases: Mutex<Vec<PhaseTiming>>,
}

impl CliProgress {
    /// Progress shaped by the output settings.
    pub fn new(out: &Output) -> CliProgress {
        let visible = !out.quiet && !out.json();
        CliProgress {
            visible,
            spinner: visible && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
            phases: Mutex::new(Vec::new()),
        }
    }

    /// The phases finished so far, in order.
    pub fn phases(&self) -> Vec<PhaseTiming> {
        self.phases.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Clears any spinner (before printing a result or error).
    pub fn finish(&self) {
        if let Ok(mut cur) = self.current.lock()
            && let Some(pb) = cur.take()
        {
            pb.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn phase_started(&self, phase: &str) {
        if !self.visible {
            return;
        }
        if self.spinner {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_message(phase.to_string());
            pb.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut cur) = self.current.lock()
                && let Some(old) = cur.replace(pb)
            {
                old.finish_and_clear();
            }
        } else {
            eprintln!("… {phase}");
        }
    }

    fn phase_finished(&self, phase: &str, took: Duration) {
        if let Ok(mut p) = self.phases.lock() {
            p.push(PhaseTiming {
                phase: phase.to_string(),
                millis: took.as_millis(),
            });
        }
        if !self.visible {
            return;
        }
        let line = format!("✓ {phase} ({})", human_duration(took));
        if self.spinner
            && let Ok(mut cur) = self.current.lock()
            && let Some(pb) = cur.take()
        {
            pb.finish_and_clear();
        }
        eprintln!("{line}");
    }

    fn phase_failed(&self, phase: &str, took: Duration) {
        if !self.visible {
            return;
        }
        if self.spinner
            && let Ok(mut cur) = self.current.lock()
            && let Some(pb) = cur.take()
        {
            pb.finish_and_clear();
        }
        eprintln!("✗ {phase} (failed after {})", human_duration(took));
    }

    fn message(&self, text: &str) {
        if !self.visible {
            return;
        }
        match self.current.lock().ok().and_then(|c| c.clone()) {
            Some(pb) => pb.println(format!("  {text}")),
            None => eprintln!("  {text}"),
        }
    }

    fn warn(&self, text: &str) {
        // Warnings show even in JSON mode (on stderr), never in quiet mode.
        match self.current.lock().ok().and_then(|c| c.clone()) {
            Some(pb) => pb.println(format!("warning: {text}")),
            None => eprintln!("warning: {text}"),
        }
    }
}
