//! Carrying out a parsed command line: runs stages, prints summaries (a table, or JSON
//! lines under `--log-format json`) on stdout unless `-q`.

use std::path::Path;

use rlpt_engine::Error as EngineError;
use rlpt_engine::IoContext;
use rlpt_engine::executor::{Sharding, StageRun};
use rlpt_engine::layout::Layout;
use rlpt_engine::progress::ProgressMode;
use rlpt_engine::summary::{StageSummary, render_table};
use rlpt_trainer::export::Engine;

use crate::cli::{
    Cli, Command, DedupCommand, DedupSettings, DedupStep, ExportCommand, IngestCommand,
    ModelCommand, RunCommand, SlurmCommand, TokenizerCommand,
};
use crate::config::{PipelineConfig, StageEntry};
use crate::error::{Error, Result};
use crate::inspect::inspect;
use crate::jobs::dedup::{DedupDirs, DedupRun};
use crate::jobs::ingest::IngestJob;
use crate::logging::LogFormat;
use crate::plan::{Plan, Step, StepKind};
use crate::stdout;
use crate::train_command::{self, Loop};
use rlpt_lm::Tokenizer;

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
            print_summaries(cli, &[summary])?;
        }
        Command::Table(command) => print_summaries(cli, &[command.run(progress)?])?,
        Command::Dedup(command) => {
            let summaries = dedup(command, progress)?;
            print_summaries(cli, &summaries)?;
        }
        Command::Tokenizer(command) => tokenizer(command)?,
        Command::Model(ModelCommand::Init {
            config,
            seed,
            output,
        }) => rlpt_lm::init_checkpoint(config, output, *seed)?,
        Command::Inspect(command) => {
            stdout::write(&inspect(&command.dir, command.head)?)?;
        }
        Command::Run(command) => {
            let summaries = run_pipeline(command, progress)?;
            print_summaries(cli, &summaries)?;
        }
        Command::Train(command) => {
            let summary = train_command::train(command, Loop::Grpo, progress)?;
            train_command::print(cli.quiet, &summary)?;
        }
        Command::Sft(command) => {
            let summary = train_command::train(command, Loop::Sft, progress)?;
            train_command::print(cli.quiet, &summary)?;
        }
        Command::Eval(command) => train_command::eval(command)
            .and_then(|report| train_command::print(cli.quiet, &report))?,
        Command::Export(ExportCommand::Hf(command)) => {
            let written = train_command::export_hf(command)?;
            if !cli.quiet {
                stdout::write(&format!("exported {}\n", written.display()))?;
            }
        }
        Command::Export(ExportCommand::Verl(command)) => {
            let summary = train_command::export_dataset(command, Engine::Verl)?;
            train_command::print(cli.quiet, &summary)?;
        }
        Command::Export(ExportCommand::Trl(command)) => {
            let summary = train_command::export_dataset(command, Engine::Trl)?;
            train_command::print(cli.quiet, &summary)?;
        }
        Command::Plot(command) => {
            let written = crate::plot::plot(&command.run, command.output.as_deref())?;
            if !cli.quiet {
                stdout::write(&format!("plotted {}\n", written.display()))?;
            }
        }
        Command::Slurm(SlurmCommand::Submit(command)) => {
            stdout::write(&crate::slurm::submit(command)?)?;
        }
        Command::Slurm(SlurmCommand::Status(command)) => {
            stdout::write(&crate::slurm::status(command)?)?;
        }
        Command::Slurm(SlurmCommand::Cancel(command)) => {
            stdout::write(&crate::slurm::cancel(command)?)?;
        }
    }
    Ok(())
}

fn tokenizer(command: &TokenizerCommand) -> Result<()> {
    match command {
        TokenizerCommand::Encode {
            tokenizer,
            input,
            field,
            texts,
        } => {
            let tokenizer = Tokenizer::from_file(tokenizer)?;
            let texts = match input {
                Some(path) => jsonl_field(path, field)?,
                None => texts.clone(),
            };
            for text in &texts {
                let ids = serde_json::to_string(&tokenizer.encode(text)?).expect("ids serialise");
                stdout::write(&format!("{ids}\n"))?;
            }
        }
        TokenizerCommand::Train {
            inputs,
            field,
            vocab_size,
            special,
            output,
        } => {
            let mut texts = Vec::new();
            for input in inputs {
                texts.extend(jsonl_field(input, field)?);
            }
            let special: Vec<&str> = special.iter().map(String::as_str).collect();
            let smallest = BYTE_ALPHABET + special.len();
            if !(smallest..=MAX_VOCAB_SIZE).contains(vocab_size) {
                return Err(Error::Usage(format!(
                    "--vocab-size {vocab_size}: give {smallest} (the 256 bytes and the {} special \
                     tokens) to {MAX_VOCAB_SIZE}",
                    special.len()
                )));
            }
            let json = Tokenizer::train_byte_level_bpe(&texts, *vocab_size, &special)?;
            rlpt_engine::atomic::write_file(output, json.as_bytes())?;
        }
        TokenizerCommand::Export { tokenizer, output } => {
            let json = Tokenizer::from_file(tokenizer)?.to_json()?;
            let bytes = if output.to_string_lossy().ends_with(".gz") {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                std::io::Write::write_all(&mut encoder, json.as_bytes()).at(output)?;
                encoder.finish().at(output)?
            } else {
                json.into_bytes()
            };
            rlpt_engine::atomic::write_file(output, &bytes)?;
        }
    }
    Ok(())
}

/// Tokens of the byte alphabet every byte-level BPE vocabulary starts with.
const BYTE_ALPHABET: usize = 256;
/// The largest vocabulary `tokenizer train` builds (ids stay far within u32).
const MAX_VOCAB_SIZE: usize = 1 << 20;

/// The string `field` of every line of a JSONL file.
fn jsonl_field(path: &Path, field: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).at(path)?;
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let record: serde_json::Value =
                serde_json::from_str(line).map_err(|source| EngineError::Json {
                    path: path.to_path_buf(),
                    source,
                })?;
            record[field].as_str().map(str::to_string).ok_or_else(|| {
                Error::Usage(format!(
                    "{}, line {}: no string field `{field}`",
                    path.display(),
                    index + 1
                ))
            })
        })
        .collect()
}

fn ingest(command: &IngestCommand, progress: ProgressMode) -> Result<StageSummary> {
    let job = IngestJob {
        format: command.format,
        stage: command.config.clone(),
    };
    let run = StageRun {
        output: command.output.clone(),
        layout: command.layout,
        sharding: command.share.sharding()?,
        force: command.share.force,
        strict: command.strict,
        progress,
    };
    job.run(&command.inputs, &run)
}

fn dedup(command: &DedupCommand, progress: ProgressMode) -> Result<Vec<StageSummary>> {
    let run = |settings: &DedupSettings, sharding, force| DedupRun {
        config: settings.config.clone(),
        layout: settings.layout,
        sort_memory: settings.sort_memory,
        sharding,
        force,
        progress,
    };
    let summary = match &command.step {
        Some(DedupStep::Signatures(step)) => {
            let run = run(
                &step.settings,
                step.io.share.sharding()?,
                step.io.share.force,
            );
            run.signatures(&step.io.input, &DedupDirs::new(&step.io.output))?
        }
        Some(DedupStep::Buckets(step)) => {
            let run = run(&step.settings, step.share.sharding()?, step.share.force);
            run.buckets(&DedupDirs::new(&step.output))?
        }
        Some(DedupStep::Clusters(step)) => {
            let sharding = step.share.sharding()?;
            if sharding.rank != 0 {
                tracing::info!(
                    "the clusters step is one task; rank {} has nothing to do",
                    sharding.rank
                );
                return Ok(Vec::new());
            }
            run(&step.settings, Sharding::SINGLE, step.share.force)
                .clusters(&DedupDirs::new(&step.output))?
        }
        Some(DedupStep::Filter(step)) => {
            let run = run(
                &step.settings,
                step.io.share.sharding()?,
                step.io.share.force,
            );
            run.filter(&step.io.input, &DedupDirs::new(&step.io.output))?
        }
        None => {
            let all = &command.all;
            let (Some(input), Some(output)) = (&all.input, &all.output) else {
                unreachable!("clap requires --input and --output without a step");
            };
            let run = run(&all.settings, Sharding::SINGLE, all.force);
            return run.all(input, &DedupDirs::new(output));
        }
    };
    Ok(vec![summary])
}

/// Runs the selected steps of the config in order (all of them by default).
pub fn run_pipeline(command: &RunCommand, progress: ProgressMode) -> Result<Vec<StageSummary>> {
    if !command.config.exists() && command.config == Path::new(crate::cli::DEFAULT_CONFIG) {
        return Err(Error::Usage(format!(
            "no config given and {} is not here: run from the rlpt repository root or name a config",
            crate::cli::DEFAULT_CONFIG
        )));
    }
    let config = PipelineConfig::load(&command.config)?;
    let out_dir = command.out_dir.clone().unwrap_or(config.out_dir.clone());
    let plan = Plan::new(&config, &command.config, &out_dir)?;
    let steps = plan.select(&command.only, command.from.as_deref())?;
    let place = RunIn {
        base: command.config.parent().unwrap_or(Path::new(".")),
        sharding: command.share.sharding()?,
        force: command.share.force,
        progress,
    };
    if place.sharding.world_size > 1 && steps.len() != 1 {
        return Err(Error::Usage(format!(
            "--world-size {} runs one step (every rank of a step must finish before the next \
             step reads its output); name it with --only, or use `rlpt slurm submit`",
            place.sharding.world_size
        )));
    }
    let mut summaries = Vec::new();
    for step in steps {
        if step.single_task() && place.sharding.rank != 0 {
            tracing::info!(
                step = step.name,
                rank = place.sharding.rank,
                "a single-task step: only rank 0 runs it"
            );
            continue;
        }
        let summary = run_step(step, &place)?;
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

/// Where and how `rlpt run` runs a step: the config's directory (its relative paths),
/// this process's share, `--force`, progress.
struct RunIn<'a> {
    base: &'a Path,
    sharding: Sharding,
    force: bool,
    progress: ProgressMode,
}

impl RunIn<'_> {
    fn stage_run(&self, output: &Path, layout: Layout, strict: bool) -> StageRun {
        StageRun {
            output: output.to_path_buf(),
            layout,
            sharding: self.sharding,
            force: self.force,
            strict,
            progress: self.progress,
        }
    }
}

/// Runs one step of the plan.
fn run_step(step: &Step<'_>, place: &RunIn<'_>) -> Result<StageSummary> {
    let (input, output, base) = (step.input.as_str(), &step.output, place.base);
    match step.entry {
        StageEntry::Ingest(entry) => entry.job().run(
            &[input],
            &place.stage_run(output, entry.layout, entry.strict),
        ),
        StageEntry::Table(entry) => {
            let settings = entry.settings();
            let run = place.stage_run(output, settings.layout(), false);
            settings.run(base, input, run)
        }
        StageEntry::Dedup(entry) => {
            let run = DedupRun {
                config: entry.config.clone(),
                layout: entry.layout,
                sort_memory: entry.sort_memory,
                sharding: if step.single_task() {
                    Sharding::SINGLE
                } else {
                    place.sharding
                },
                force: place.force,
                progress: place.progress,
            };
            let dirs = DedupDirs::new(output);
            match step.kind {
                StepKind::DedupSignatures => run.signatures(input, &dirs),
                StepKind::DedupBuckets => run.buckets(&dirs),
                StepKind::DedupClusters => run.clusters(&dirs),
                StepKind::DedupFilter => run.filter(input, &dirs),
                kind => unreachable!("the plan gives a dedup stage dedup steps, not {kind:?}"),
            }
        }
        StageEntry::Train(entry) => {
            train_command::train_stage(entry, base, input, output, place.force, place.progress)
        }
        StageEntry::Eval(entry) => {
            let checkpoints = step
                .checkpoints
                .as_deref()
                .expect("the plan gives eval its train stage");
            train_command::eval_stage(
                entry,
                base,
                (input, step.split),
                checkpoints,
                output,
                place.force,
            )
        }
    }
}

fn print_summaries(cli: &Cli, summaries: &[StageSummary]) -> Result<()> {
    if cli.quiet {
        return Ok(());
    }
    match cli.log_format {
        LogFormat::Text => stdout::write(&render_table(summaries)),
        LogFormat::Json => summaries.iter().try_for_each(|summary| {
            let mut value = serde_json::to_value(summary).expect("summary serialises");
            value["event"] = "summary".into();
            stdout::write(&format!("{value}\n"))
        }),
    }
}
