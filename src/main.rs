//! Command line: parse flags, load the config, run, and turn any error into one line
//! on stderr and a non-zero exit.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use target_s3::config::Config;
use target_s3::error::Result;
use target_s3::target;

/// Lands a Singer tap's streams in Amazon S3 or an S3-compatible store as CSV or
/// Parquet objects; writes STATE to stdout only once the records it covers are stored.
#[derive(Parser, Debug)]
#[command(name = "target-s3", version)]
struct Cli {
    /// JSON config file; repeat to merge several (later keys win).
    #[arg(long = "config", value_name = "FILE", required = true)]
    config: Vec<PathBuf>,

    /// Read Singer messages from FILE instead of stdin.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = error.to_string().replace('\n', " ");
            eprintln!("target-s3: error: {message}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let (config, warnings) = Config::load(&cli.config)?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let stdout = io::stdout().lock();
    match &cli.input {
        Some(path) => {
            let file = File::open(path).map_err(|e| {
                target_s3::error::Error::Config(format!(
                    "cannot open input file {}: {e}",
                    path.display()
                ))
            })?;
            target::run(&config, file, stdout)?;
        }
        None => {
            target::run(&config, io::stdin(), stdout)?;
        }
    }
    Ok(())
}
