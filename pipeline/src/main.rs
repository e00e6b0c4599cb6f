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
    let threads = set_threads(cli.threads);
    logging::init(cli.log_format, cli.quiet, cli.verbose);
    let result = threads.and_then(|()| commands::execute(&cli));
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

/// Sizes rayon's pool (`--threads`, else rayon's default) and tells candle its matrix
/// products' thread count through `RAYON_NUM_THREADS`, read once here: without that
/// variable candle counts physical cores from `/proc/cpuinfo` on every matrix product
/// (thousands a GRPO step; the kernel formatting that file showed in its profile).
/// Without `--threads` each keeps its own default: rayon the logical CPUs, candle the
/// physical cores. Child processes inherit the variable; the Slurm job scripts pass
/// `--threads` themselves.
///
/// Candle's element-wise ops run on the calling thread (`CANDLE_NUM_THREADS=1`, unless
/// the user set it): given threads of their own, candle's pool spins after every op
/// while rayon's threads run the next product on the same cores (SmolLM2's GRPO update
/// at the TRL bench's settings, 2 cores: 3.75–3.82 s a step with the pool, 3.27–3.28
/// s without; entropy tagging and the rollout unchanged).
///
/// This thread is one of the pool's (`use_current_thread`): a parallel product called
/// from it starts here and the other threads join it. From outside the pool, each of
/// the thousands of products a GRPO step makes queued its work, woke a sleeping
/// worker and slept until the result came back (a million context switches in 6 steps
/// of the TRL bench's settings, 26,000 with this thread in the pool; the step 5.47 →
/// 4.73 s, training's bytes unchanged). Nothing in rlpt blocks this thread on work it
/// gave the pool, so `--threads 1` (this thread alone) cannot wait on itself.
fn set_threads(threads: Option<usize>) -> Result<(), Error> {
    if threads == Some(0) {
        return Err(Error::Usage("--threads must be at least 1".into()));
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before any thread exists that could
        // read the environment.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    let pool = match threads {
        Some(threads) => Some(threads),
        // Rayon sizes its pool from the variable itself.
        None if std::env::var_os("RAYON_NUM_THREADS").is_some() => None,
        None => Some(std::thread::available_parallelism().map_or(1, usize::from)),
    };
    let mut builder = rayon::ThreadPoolBuilder::new().use_current_thread();
    if let Some(pool) = pool {
        let products = threads.unwrap_or_else(candle_core::utils::get_num_threads);
        // SAFETY: called first thing in `main`, before any thread exists that could
        // read the environment.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", products.to_string()) };
        builder = builder.num_threads(pool);
    }
    builder
        .build_global()
        .map_err(|err| Error::Usage(format!("rayon's thread pool: {err}")))
}
