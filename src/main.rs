//! Thin entry point: parse arguments, set up logging, run the command, map to an exit status.
//!
//! Messages go through `fleetauth::cli::out`, like every command's output: a closed stdout or
//! stderr (`fleetauth … | head -1`) ends the run quietly instead of panicking (why SIGPIPE
//! stays ignored is explained there).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;

use clap::Parser;
use fleetauth::cli::out;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = fleetauth::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Escape codes only for a terminal that takes them: not in a file or a CI log.
        .with_ansi(std::io::stderr().is_terminal() && fleetauth::cli::colour_allowed())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out::stderr(format_args!("error: cannot start the async runtime: {e}\n"));
            return std::process::ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(fleetauth::cli::run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            out::stderr(format_args!("{}\n", failure.message));
            failure.code
        }
    };
    std::process::ExitCode::from(out::exit_status(code) as u8)
}
