//! Carrying out a parsed command line: runs stages, prints summaries (a table, or JSON
//! lines under `--log-format json`) on stdout unless `-q`.

use std::path::{Path, PathBuf};

use crate::cli::{
    Cli, Command, DedupCommand, DedupSettings, DedupStep, IngestCommand, ModelCommand, RunCommand,
    TableCommand, TokenizerCommand,
};
use crate::config::{PipelineConfig, StageEntry, TableEntry};
use crate::decontam_job::DecontamJob;
use crate::dedup::{DedupDirs, DedupRun};
use crate::entropy_job::EntropyJob;
use crate::error::IoContext;
use crate::error::{Error, Result};
use crate::executor::{Sharding, StageRun};
use crate::ingest_job::IngestJob;
use crate::inspect::inspect;
use crate::logging::LogFormat;
use crate::pii_job::PiiJob;
use crate::progress::ProgressMode;
use crate::segment_job::SegmentJob;
use crate::summary::{StageSummary, render_table};
use crate::train_command::{self, Loop};
use rlpt_lm::Tokenizer;
use rlpt_stages::decontam::BenchmarkSpec;
use rlpt_trainer::Split;

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
        Command::Pii(command) => {
            let summary = PiiJob::new(&command.config)?
                .run(&command.io.input, &table_run(command, progress)?)?;
            print_summaries(cli, &[summary]);
        }
        Command::Decontam(command) => {
            let job = DecontamJob::new(&command.config)?;
            let summary = job.run(&command.io.input, &table_run(command, progress)?)?;
            print_summaries(cli, &[summary]);
        }
        Command::Segment(command) => {
            let job = SegmentJob::new(&command.config)?;
            let summary = job.run(&command.io.input, &table_run(command, progress)?)?;
            print_summaries(cli, &[summary]);
        }
        Command::Entropy(command) => {
            let job = EntropyJob::new(&command.config)?;
            let summary = job.run(&command.io.input, &table_run(command, progress)?)?;
            print_summaries(cli, &[summary]);
        }
        Command::Dedup(command) => {
            let summaries = dedup(command, progress)?;
            print_summaries(cli, &summaries);
        }
        Command::Tokenizer(command) => tokenizer(command)?,
        Command::Model(ModelCommand::Init {
            config,
            seed,
            output,
        }) => rlpt_lm::init_checkpoint(config, output, *seed)?,
        Command::Inspect(command) => {
            print!("{}", inspect(&command.dir, command.head)?);
        }
        Command::Run(command) => {
            let summaries = run_pipeline(command, progress)?;
            print_summaries(cli, &summaries);
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
                println!(
                    "{}",
                    serde_json::to_string(&tokenizer.encode(text)?).expect("ids serialise")
                );
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
            let json = Tokenizer::train_byte_level_bpe(&texts, *vocab_size, &special)?;
            crate::atomic::write_file(output, json.as_bytes())?;
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
            crate::atomic::write_file(output, &bytes)?;
        }
    }
    Ok(())
}

/// The string `field` of every line of a JSONL file.
fn jsonl_field(path: &Path, field: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).at(path)?;
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let record: serde_json::Value =
                serde_json::from_str(line).map_err(|source| Error::Json {
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

fn table_run<C: clap::Args>(command: &TableCommand<C>, progress: ProgressMode) -> Result<StageRun> {
    Ok(StageRun {
        output: command.io.output.clone(),
        layout: command.layout,
        sharding: command.io.share.sharding()?,
        force: command.io.share.force,
        strict: false,
        progress,
    })
}

fn ingest(command: &IngestCommand, progress: ProgressMode) -> Result<StageSummary> {
    let job = IngestJob {
        format: command.format,
        stage: command.config.clone(),
    };
    let run = StageRun {
        output: command.io.output.clone(),
        layout: command.layout,
        sharding: command.io.share.sharding()?,
        force: command.io.share.force,
        strict: command.strict,
        progress,
    };
    job.run(&command.io.input, &run)
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
    let mut previous_output: Option<PathBuf> = None;
    // The last train stage's input and checkpoints, for an eval stage after it.
    let mut trained: Option<(String, PathBuf)> = None;
    let place = RunIn {
        out_dir: &out_dir,
        force: command.force,
        progress,
    };
    for (index, stage) in config.stages.iter().enumerate() {
        let input = |given: Option<&String>| -> Result<String> {
            match (given, &previous_output) {
                (Some(input), _) => Ok(base.join(input).to_string_lossy().into_owned()),
                (None, Some(previous)) => Ok(previous.to_string_lossy().into_owned()),
                (None, None) => Err(Error::Config {
                    path: command.config.clone(),
                    problem: format!(
                        "stage {} ({}) has no `input` and no stage before it",
                        index + 1,
                        stage.name()
                    ),
                }),
            }
        };
        let (stage_summaries, output) = match stage {
            StageEntry::Ingest(entry) => {
                let output = out_dir.join(&entry.output);
                let run = StageRun {
                    output: output.clone(),
                    layout: entry.layout,
                    sharding: Sharding::SINGLE,
                    force: command.force,
                    strict: entry.strict,
                    progress,
                };
                (
                    vec![entry.job().run(&input(Some(&entry.input))?, &run)?],
                    output,
                )
            }
            StageEntry::Pii(entry) => {
                let job = PiiJob::new(&entry.config)?;
                table_stage(entry, &input, &place, |i, r| job.run(i, r))?
            }
            StageEntry::Decontam(entry) => {
                let mut config = entry.config.clone();
                config.benchmarks = relative_benchmarks(&config.benchmarks, base)?;
                let job = DecontamJob::new(&config)?;
                table_stage(entry, &input, &place, |i, r| job.run(i, r))?
            }
            StageEntry::Segment(entry) => {
                let mut config = entry.config.clone();
                config.tokenizer = base.join(&config.tokenizer);
                let job = SegmentJob::new(&config)?;
                table_stage(entry, &input, &place, |i, r| job.run(i, r))?
            }
            StageEntry::Entropy(entry) => {
                let mut config = entry.config.clone();
                config.model = base.join(&config.model);
                config.fallback_model = config.fallback_model.map(|m| base.join(m));
                let job = EntropyJob::new(&config)?;
                table_stage(entry, &input, &place, |i, r| job.run(i, r))?
            }
            StageEntry::Train(entry) => {
                let output = out_dir.join(&entry.output);
                let triples = input(entry.input.as_ref())?;
                let summary = train_command::train_stage(entry, base, &triples, &output, progress)?;
                trained = Some((triples, output.clone()));
                (vec![summary], output)
            }
            StageEntry::Eval(entry) => {
                let Some((train_input, checkpoints)) = &trained else {
                    return Err(Error::Config {
                        path: command.config.clone(),
                        problem: format!("stage {} (eval) has no train stage before it", index + 1),
                    });
                };
                let source = match &entry.input {
                    Some(given) => (base.join(given).to_string_lossy().into_owned(), Split::All),
                    None => (train_input.clone(), Split::Heldout),
                };
                let report = out_dir.join(&entry.output);
                let summary = train_command::eval_stage(
                    entry,
                    base,
                    (&source.0, source.1),
                    checkpoints,
                    &report,
                )?;
                (vec![summary], checkpoints.clone())
            }
            StageEntry::Dedup(entry) => {
                let output = out_dir.join(&entry.output);
                let run = DedupRun {
                    config: entry.config.clone(),
                    layout: entry.layout,
                    sort_memory: entry.sort_memory,
                    sharding: Sharding::SINGLE,
                    force: command.force,
                    progress,
                };
                (
                    run.all(&input(entry.input.as_ref())?, &DedupDirs::new(&output))?,
                    output,
                )
            }
        };
        for summary in &stage_summaries {
            tracing::info!(
                stage = %summary.stage,
                rows_out = summary.rows_out,
                reused = summary.units_reused,
                "stage done"
            );
        }
        summaries.extend(stage_summaries);
        previous_output = Some(output);
    }
    Ok(summaries)
}

/// How a config stage runs: into `out_dir/output`, one process.
/// Where and how a `run` stage writes: `out_dir`, `--force`, progress.
struct RunIn<'a> {
    out_dir: &'a Path,
    force: bool,
    progress: ProgressMode,
}

/// Runs a stage that reads one table and writes another, from its `[[stage]]` entry.
fn table_stage<C>(
    entry: &TableEntry<C>,
    input: &dyn Fn(Option<&String>) -> Result<String>,
    place: &RunIn<'_>,
    job: impl Fn(&str, &StageRun) -> Result<StageSummary>,
) -> Result<(Vec<StageSummary>, PathBuf)> {
    let run = StageRun {
        output: place.out_dir.join(&entry.output),
        layout: entry.layout,
        sharding: Sharding::SINGLE,
        force: place.force,
        strict: false,
        progress: place.progress,
    };
    let summary = job(&input(entry.input.as_ref())?, &run)?;
    Ok((vec![summary], run.output))
}

/// Benchmark specs with their paths made relative to the config file's directory.
fn relative_benchmarks(specs: &[String], base: &Path) -> Result<Vec<String>> {
    specs
        .iter()
        .map(|text| {
            let spec = BenchmarkSpec::parse(text).map_err(Error::Usage)?;
            let path = base.join(&spec.path);
            let fields = if spec.fields.is_empty() {
                String::new()
            } else {
                format!(":{}", spec.fields.join(","))
            };
            Ok(format!("{}={}{fields}", spec.name, path.display()))
        })
        .collect()
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
