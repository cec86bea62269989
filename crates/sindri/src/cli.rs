//! The command line, as clap types. Doc comments here are the `--help` text: the first
//! line is the short help, later paragraphs the long help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use sindri_spec::ProviderKind;

/// One declarative file, running compute on any provider.
///
/// sindri reads `sindri.yaml` and deploys the environment it describes to Docker,
/// Kubernetes, Fly.io, E2B, DevPod, AWS, RunPod, Lyceum or this machine, and gives the
/// same `deploy`, `connect`, `status`, `stop`, `start` and `destroy` everywhere.
///
/// Start with `sindri config init`, then `sindri plan` and `sindri deploy`.
///
/// Exit codes: 0 success; 1 failure; 2 invalid input, usage, or an operation the
/// provider cannot do (nothing was changed); 130 interrupted; `exec`, `connect` and
/// `run` exit with the remote command's own code.
#[derive(Debug, Parser)]
#[command(
    name = "sindri",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        env = "SINDRI_CONFIG",
        default_value = "sindri.yaml"
    )]
    pub config: PathBuf,

    /// Output format: `table` for people, `json` for programs (one JSON document on stdout).
    #[arg(long, global = true, env = "SINDRI_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Print only results and errors, no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More detail in logs (repeat for more); `SINDRI_LOG` takes a tracing filter too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document on stdout.
    Json,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write, check and inspect sindri.yaml.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Show what `deploy` would create or change, with the rendered files. Changes nothing.
    Plan,

    /// Create or update the environment and wait until it is ready.
    ///
    /// Deploying an unchanged spec changes nothing. Interrupting (Ctrl-C) is safe: the
    /// next `deploy` finishes what was started, `destroy` cleans it.
    Deploy(DeployArgs),

    /// Show the environment's live state, as the platform reports it.
    Status,

    /// Open an interactive shell in the environment.
    ///
    /// Exits with the shell's exit code.
    Connect,

    /// Run a command in the environment: `sindri exec -- make test`.
    ///
    /// stdout and stderr are streamed separately; exits with the command's exit code.
    Exec(ExecArgs),

    /// Show the environment's logs.
    Logs(LogsArgs),

    /// Start a stopped or suspended environment.
    Start,

    /// Stop the environment's compute; disks and volumes are kept.
    Stop,

    /// Suspend the environment (memory kept) where the provider supports it.
    Suspend,

    /// Remove the environment. The home volume is kept unless `--volumes`.
    Destroy(DestroyArgs),

    /// Copy files between this machine and the environment.
    ///
    /// Prefix the environment's side with `:`: `sindri cp ./data :/root/data` copies in,
    /// `sindri cp :/root/out ./out` copies out.
    Cp(CpArgs),

    /// Write the rendered platform files, for use without sindri.
    Export(ExportArgs),

    // No doc comments on these two: clap would let them replace the long help written
    // on the argument types themselves.
    #[allow(missing_docs)]
    Run(crate::commands::run::RunArgs),

    #[allow(missing_docs)]
    #[command(subcommand)]
    Runs(crate::commands::run::RunsCommand),

    /// Tools installed into the environment: list, info, install, remove, validate, status.
    #[command(subcommand)]
    Extension(crate::commands::extension::ExtensionCommand),

    /// Curated sets of extensions: list, show.
    #[command(subcommand)]
    Profile(crate::commands::extension::ProfileCommand),

    /// Local Kubernetes clusters with kind or k3d: create, destroy, list, load an image.
    #[cfg(feature = "kubernetes")]
    #[command(subcommand)]
    K8s(crate::commands::k8s::K8sCommand),

    /// Find (and clean up) what sindri owns on every provider, by its labels.
    #[command(subcommand)]
    Resources(crate::commands::resources::ResourcesCommand),

    /// List the providers built into sindri and what each supports.
    Providers,

    /// Check prerequisites and credentials of every provider (or one).
    Doctor(DoctorArgs),

    /// Print a shell completion script: `sindri completions bash > /etc/bash_completion.d/sindri`.
    Completions(CompletionsArgs),
}

/// `sindri config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented starter sindri.yaml (and its JSON Schema for editors).
    Init(InitArgs),
    /// Print the JSON Schema of sindri.yaml, generated from sindri's own types.
    Schema,
    /// Check sindri.yaml and report every problem with file:line:column.
    Validate,
    /// Print the config as sindri reads it, defaults filled in (no secret values).
    Show,
}

/// `sindri config init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The provider the starter is written for.
    #[arg(short, long, default_value = "docker", value_parser = parse_provider)]
    pub provider: ProviderKind,
    /// The environment's name; default: the directory's name, made a DNS label.
    #[arg(short, long)]
    pub name: Option<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse()
}

/// `sindri deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Return once the environment exists, without waiting until it is ready (extensions
    /// are then not installed).
    #[arg(long)]
    pub no_wait: bool,
    /// Do not install the configured extensions.
    #[arg(long)]
    pub no_extensions: bool,
}

/// `sindri exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Working directory inside the environment.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Extra environment variables, `KEY=VALUE`.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Allocate a TTY (default: when stdin and stdout are terminals).
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `sindri logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep streaming new lines until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
}

/// `sindri destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Also remove the home volume, other volumes and the network: data is lost.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask for confirmation (required with `--volumes` when not on a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

/// `sindri cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: a local path, or `:PATH` inside the environment.
    pub from: String,
    /// Destination: a local path, or `:PATH` inside the environment.
    pub to: String,
}

/// `sindri export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write: compose, kubernetes, fly, e2b or devcontainer.
    pub format: String,
    /// Directory to write into (created if missing).
    #[arg(short = 'o', long = "out", value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `sindri doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only this provider.
    #[arg(short, long, value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
}

/// `sindri completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its own invariants (unique short flags, valid defaults) here, so a
    /// clash is a failing test instead of a panic in a user's shell.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
