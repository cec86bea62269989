//! Printing results: aligned text for people, one JSON document for programs.
//!
//! Every command builds a serialisable report; [`Output::emit`] prints it as JSON or
//! through the report's own human rendering, so `--output json` exists for every
//! command by construction.

use std::io::Write;

use serde::Serialize;
use sindri_core::Error;

use crate::cli::OutputFormat;

/// A command's result: serialisable for JSON, with a rendering for people.
pub trait Report: Serialize {
    /// The text shown with `--output table`.
    fn human(&self) -> String;
}

/// Where results and errors go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The chosen format.
    pub format: OutputFormat,
    /// No progress lines.
    pub quiet: bool,
}

impl Output {
    /// True for `--output json`.
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints a report on stdout.
    pub fn emit<R: Report>(&self, report: &R) {
        let mut stdout = std::io::stdout().lock();
        let text = if self.json() {
            serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        } else {
            report.human()
        };
        if !text.is_empty() {
            let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
        }
    }

    /// Prints an error: on stderr for people, as `{"error": ...}` on stdout for programs.
    pub fn error(&self, e: &CliError) {
        if self.json() {
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
            );
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{}", e.human());
        }
    }
}

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub enum CliError {
    /// A provider, state or input error.
    Core(Error),
    /// The config file has problems; every one is listed.
    Config(sindri_spec::Diagnostics),
    /// Not an error to print: exit with this code (a remote command's own code).
    Exit(i32),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Core(e) => e.exit_code(),
            CliError::Config(_) => 2,
            CliError::Exit(code) => *code,
        }
    }

    fn human(&self) -> String {
        match self {
            CliError::Core(e) => {
                let mut s = format!("error: {e}");
                if let Some(h) = e.hint() {
                    s.push_str(&format!("\nhint: {h}"));
                }
                s
            }
            CliError::Config(d) => d.to_string(),
            CliError::Exit(_) => String::new(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            CliError::Core(e) => serde_json::json!({"error": {
                "kind": e.kind_name(),
                "provider": e.provider().map(|p| p.as_str()),
                "message": e.message(),
                "hint": e.hint(),
            }}),
            CliError::Config(d) => serde_json::json!({"error": {
                "kind": "invalid_config",
                "message": format!("{} problem(s) in the config file", d.len()),
                "diagnostics": d,
            }}),
            CliError::Exit(code) => serde_json::json!({"exit_code": code}),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        CliError::Core(e)
    }
}

impl From<sindri_spec::Diagnostics> for CliError {
    fn from(d: sindri_spec::Diagnostics) -> CliError {
        CliError::Config(d)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Core(e.into())
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Logs go to stderr, filtered by `SINDRI_LOG` or the `-v` count.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sindri=debug",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SINDRI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Formats rows as aligned columns, the header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// A duration for people: `850ms`, `2.4s`, `1m 12s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}
