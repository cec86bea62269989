//! One module per command group; [`run`] maps the parsed command line onto them.

mod config;
mod deploy;
mod exec;
mod export;
pub mod extension;
mod info;
#[cfg(feature = "kubernetes")]
pub mod k8s;
mod lifecycle;
mod logs;
pub mod resources;
pub(crate) mod run;

use clap::CommandFactory;

use crate::app::App;
use crate::cli::{Cli, Command};
use crate::output::{CliError, CliResult};

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let app = App::new(cli.global.clone());
    let result = dispatch(&app, cli.command).await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            let code = e.exit_code();
            if !matches!(e, CliError::Exit(_)) {
                app.out.error(&e);
            }
            code
        }
    }
}

async fn dispatch(app: &App, command: Command) -> CliResult {
    match command {
        Command::Config(c) => config::run(app, c).await,
        Command::Plan => deploy::plan(app).await,
        Command::Deploy(a) => deploy::deploy(app, a).await,
        Command::Status => lifecycle::status(app).await,
        Command::Start => lifecycle::start(app).await,
        Command::Stop => lifecycle::stop(app).await,
        Command::Suspend => lifecycle::suspend(app).await,
        Command::Destroy(a) => lifecycle::destroy(app, a).await,
        Command::Connect => exec::connect(app).await,
        Command::Exec(a) => exec::exec(app, a).await,
        Command::Cp(a) => exec::cp(app, a).await,
        Command::Logs(a) => logs::logs(app, a).await,
        Command::Export(a) => export::export(app, a).await,
        Command::Resources(c) => resources::run(app, c).await,
        #[cfg(feature = "kubernetes")]
        Command::K8s(c) => k8s::run(app, c).await,
        Command::Extension(c) => extension::extension(app, c).await,
        Command::Profile(c) => extension::profile(app, c).await,
        Command::Run(a) => run::run(app, a).await,
        Command::Runs(c) => run::runs(app, c).await,
        Command::Providers => info::providers(app),
        Command::Doctor(a) => info::doctor(app, a).await,
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "sindri", &mut std::io::stdout());
            Ok(())
        }
    }
}
