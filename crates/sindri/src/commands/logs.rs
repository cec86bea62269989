//! `sindri logs [--follow] [--tail N]`.

use serde::Serialize;
use sindri_core::{ErrorKind, LogOptions, Operation, dispatch};

use crate::app::App;
use crate::cli::LogsArgs;
use crate::output::{CliResult, Report};
use crate::signals::interruptible;

#[derive(Serialize)]
struct LogsReport {
    environment: String,
    lines: Vec<String>,
}

impl Report for LogsReport {
    fn human(&self) -> String {
        self.lines.join("\n")
    }
}

/// Prints logs. With `--follow`, Ctrl-C ends the stream and exits 0: it is how
/// following is meant to end. With `--output json`, logs are collected into one
/// document (not combinable with `--follow`, which streams plain lines).
pub async fn logs(app: &App, args: LogsArgs) -> CliResult {
    let spec = app.load()?;
    let provider = app.provider(&spec)?;
    dispatch::require(&*provider, Operation::Logs)?;
    let rs = app.identify(spec);
    let state = app.state()?;
    let d = app.require_deployment(&*provider, &rs, &state).await?;
    let json = app.out.json() && !args.follow;
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail,
    };
    if json {
        let mut buf: Vec<u8> = Vec::new();
        interruptible(dispatch::logs(&*provider, &d, opts, &mut buf)).await?;
        let text = String::from_utf8_lossy(&buf);
        app.out.emit(&LogsReport {
            environment: d.name.clone(),
            lines: text.lines().map(str::to_string).collect(),
        });
        return Ok(());
    }
    let mut stdout = tokio::io::stdout();
    match interruptible(dispatch::logs(&*provider, &d, opts, &mut stdout)).await {
        Err(e) if e.kind() == ErrorKind::Interrupted && args.follow => Ok(()),
        other => Ok(other?),
    }
}
