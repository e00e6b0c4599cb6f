//! Logs on stderr through `tracing`: human text by default, one JSON object per line
//! under `--log-format json` (progress events included), errors only under `-q`.

use std::io::IsTerminal;

use tracing::Level;

/// Format of logs and progress on stderr (and of summaries on stdout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, a progress bar on a terminal, summary tables.
    #[default]
    Text,
    /// JSON lines: logs and progress events on stderr, summaries on stdout.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::INFO,
        (false, 1) => Level::DEBUG,
        (false, _) => Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
