//! The `rlpt` binary: parses the command line, sets up logging and threads, runs the
//! command, and turns an error into a message on stderr and an exit code (2 for a
//! usage or config error, 1 for anything else).

use std::process::ExitCode;

use clap::Parser;
use rlpt_pipeline::cli::Cli;
use rlpt_pipeline::logging::{self, LogFormat};
use rlpt_pipeline::{Error, commands};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.quiet, cli.verbose);
    let result = set_threads(cli.threads).and_then(|()| commands::execute(&cli));
    match result {
        Ok(()) | Err(Error::StdoutClosed) => ExitCode::SUCCESS,
        Err(err) => {
            match cli.log_format {
                LogFormat::Text => eprintln!("error: {err}"),
                LogFormat::Json => tracing::error!(error = %err, "rlpt failed"),
            }
            match err {
                Error::Usage(_)
                | Error::Config { .. }
                | Error::Engine(rlpt_engine::Error::Sharding { .. }) => ExitCode::from(2),
                Error::Trainer(trainer) if matches!(*trainer, rlpt_trainer::Error::Config(_)) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn set_threads(threads: Option<usize>) -> Result<(), Error> {
    let Some(threads) = threads else {
        return Ok(());
    };
    if threads == 0 {
        return Err(Error::Usage("--threads must be at least 1".into()));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|err| Error::Usage(format!("--threads {threads}: {err}")))
}
