//! The `sindri` binary: parses the command line, runs one command, exits with its code.

mod app;
mod cli;
mod commands;
mod output;
mod progress;
mod signals;
mod terminal;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    output::init_tracing(cli.global.verbose);
    // Every HTTP client in sindri uses rustls with ring (no aws-lc-rs/cmake in the
    // build); installing the provider once here means no client can start without one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    // Blocking stdin readers (exec, connect) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
