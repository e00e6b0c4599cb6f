//! Carrying out a parsed command line: runs stages, prints summaries (a table, or JSON
//! lines under `--log-format json`) on stdout unless `-q`.

use std::path::Path;

use crate::cli::{Cli, Command, IngestCommand, RunCommand};
use crate::config::{PipelineConfig, StageEntry};
use crate::error::{Error, Result};
use crate::executor::{Sharding, StageRun};
use crate::ingest_job::IngestJob;
use crate::inspect::inspect;
use crate::logging::LogFormat;
use crate::progress::ProgressMode;
use crate::summary::{StageSummary, render_table};

/// Runs `cli`'s command.
pub fn execute(cli: &Cli) -> Result<()> {
    let progress = match (cli.quiet, cli.log_format) {
        (true, _) => ProgressMode::Off,
        (false, LogFormat::Json) => ProgressMode::Json,
        (false, LogFormat::Text) => ProgressMode::Bar,
    };
    match &cli.command {
        Command::Ingest(command) => {
            let summary = ingest(command, progress)?;
            print_summaries(cli, &[summary]);
        }
        Command::Inspect(command) => {
            print!("{}", inspect(&command.dir, command.head)?);
        }
        Command::Run(command) => {
            let summaries = run_pipeline(command, progress)?;
            print_summaries(cli, &summaries);
        }
    }
    Ok(())
}

fn ingest(command: &IngestCommand, progress: ProgressMode) -> Result<StageSummary> {
    let job = IngestJob {
        format: command.format,
        stage: command.config.clone(),
    };
    let run = StageRun {
        output: command.io.output.clone(),
        layout: command.layout,
        sharding: command.io.sharding()?,
        force: command.io.force,
        strict: command.io.strict,
        progress,
    };
    job.run(&command.io.input, &run)
}

/// Runs every stage of the config in order.
pub fn run_pipeline(command: &RunCommand, progress: ProgressMode) -> Result<Vec<StageSummary>> {
    if !command.config.exists() && command.config == Path::new(crate::cli::DEFAULT_CONFIG) {
        return Err(Error::Usage(format!(
            "no config given and {} is not here: run from the rlpt repository root or name a config",
            crate::cli::DEFAULT_CONFIG
        )));
    }
    let config = PipelineConfig::load(&command.config)?;
    let base = command.config.parent().unwrap_or(Path::new("."));
    let out_dir = command.out_dir.clone().unwrap_or(config.out_dir);
    let mut summaries = Vec::new();
    for stage in &config.stages {
        let summary = match stage {
            StageEntry::Ingest(entry) => {
                let run = StageRun {
                    output: out_dir.join(&entry.output),
                    layout: entry.layout,
                    sharding: Sharding::SINGLE,
                    force: command.force,
                    strict: entry.strict,
                    progress,
                };
                let input = base.join(&entry.input);
                entry.job().run(&input.to_string_lossy(), &run)?
            }
        };
        tracing::info!(
            stage = %summary.stage,
            rows_out = summary.rows_out,
            reused = summary.units_reused,
            "stage done"
        );
        summaries.push(summary);
    }
    Ok(summaries)
}

fn print_summaries(cli: &Cli, summaries: &[StageSummary]) {
    if cli.quiet {
        return;
    }
    match cli.log_format {
        LogFormat::Text => print!("{}", render_table(summaries)),
        LogFormat::Json => {
            for summary in summaries {
                let mut value = serde_json::to_value(summary).expect("summary serialises");
                value["event"] = "summary".into();
                println!("{value}");
            }
        }
    }
}
