//! `rlpt train`, `rlpt sft` and `rlpt eval`: the trainer config with the command
//! line's overrides applied, `--input` expanded like every stage's, a progress bar of
//! steps (reward or loss, tokens/s, ETA), and the run's summary on stdout; and the
//! `train` and `eval` stages of `rlpt run`, which reuse finished work.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::DType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rlpt_engine::IoContext;
use rlpt_engine::progress::ProgressMode;
use rlpt_engine::summary::StageSummary;
use rlpt_trainer::export::{DatasetExport, Engine, HfExport};
use rlpt_trainer::tasks::TaskKind;
use rlpt_trainer::{EvalOptions, Split, TrainConfig, checkpoint};
use serde_json::Value;

use crate::cli::{EvalCommand, ExportDatasetCommand, ExportHfCommand, TrainCommand};
use crate::config::{EvalEntry, TrainEntry};
use crate::error::Result;

/// Which loop a [`TrainCommand`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// GRPO (`rlpt train`).
    Grpo,
    /// Next-token training (`rlpt sft`).
    Sft,
}

/// Runs `rlpt train` or `rlpt sft`; returns the summary text.
pub fn train(command: &TrainCommand, which: Loop, progress: ProgressMode) -> Result<String> {
    let mut config = TrainConfig::from_file(&command.config)?;
    if which == Loop::Sft && command.output.is_none() {
        config.output = sft_output(&config.output);
    }
    if let Some(input) = &command.input {
        config.input = PathBuf::from(input);
    }
    apply(&mut config.output, &command.output);
    apply(&mut config.steps, &command.steps);
    apply(&mut config.model, &command.model);
    apply(&mut config.device, &command.device);
    apply(&mut config.seed, &command.seed);
    let resume = command
        .resume
        .as_ref()
        .map(|path| path.clone().unwrap_or_else(|| config.output.clone()));
    let output = config.output.clone();
    let _lock = lock_run(&output)?;
    let summary = run_loop(config, which, resume.as_deref(), progress)?;
    let resumed = summary
        .resumed_from
        .map_or("no (fresh start)".into(), |p| p.display().to_string());
    Ok(format!(
        "steps      {}\nresumed    {resumed}\noutput     {}\nlast step  {}\n",
        summary.steps,
        output.display(),
        summary.last
    ))
}

/// Takes the training run's lock in `output`: one trainer per directory.
fn lock_run(output: &Path) -> Result<rlpt_engine::lock::Held> {
    Ok(rlpt_engine::lock::exclusive(
        &output.join(rlpt_trainer::run::LOCK),
        "is training into it",
    )?)
}

/// Runs a training loop with a progress bar.
fn run_loop(
    config: TrainConfig,
    which: Loop,
    resume: Option<&Path>,
    progress: ProgressMode,
) -> Result<rlpt_trainer::Summary> {
    let files = triples_files(&config.input)?;
    crate::allocator::keep_freed_memory();
    let bar = StepBar::new(progress, config.steps, which);
    let mut on_step = |step: u64, metrics: &Value| bar.step(step, metrics);
    let summary = match which {
        Loop::Grpo => rlpt_trainer::train(config, files, resume, &mut on_step)?,
        Loop::Sft => rlpt_trainer::sft(config, files, resume, &mut on_step)?,
    };
    bar.finish();
    Ok(summary)
}

/// The `train` stage of `rlpt run`: GRPO on `input` into `output` — reused when its
/// latest checkpoint already has the steps under the same config and input, resumed
/// when it has fewer, started again (its checkpoints deleted) when the input changed
/// or under `--force`, started otherwise.
pub fn train_stage(
    entry: &TrainEntry,
    base: &Path,
    input: &str,
    output: &Path,
    force: bool,
    progress: ProgressMode,
) -> Result<StageSummary> {
    let started = Instant::now();
    let mut config = TrainConfig::from_file(&base.join(&entry.config))?;
    config.input = PathBuf::from(input);
    config.output = output.to_path_buf();
    apply(&mut config.steps, &entry.steps);
    let _lock = lock_run(output)?;
    let fingerprint = rlpt_engine::table_units::table_fingerprint(input)?;
    let stamp = output.join(rlpt_trainer::run::INPUT_STAMP);
    let trained_on = std::fs::read_to_string(&stamp).ok();
    let input_changed = trained_on.as_deref().is_some_and(|f| f != fingerprint);
    if (force || input_changed) && checkpoint::resolve(output).is_ok() {
        tracing::warn!(
            "train: {} {}; starting it again",
            output.display(),
            if force {
                "is recomputed (--force)"
            } else {
                "was trained on other triples"
            }
        );
        clear_run(output)?;
    }
    rlpt_engine::atomic::write_file(&stamp, fingerprint.as_bytes())?;
    let existing = match checkpoint::resolve(output) {
        Ok(dir) => Some(checkpoint::open(&dir)?),
        Err(_) => None,
    };
    let finished = existing
        .as_ref()
        .is_some_and(|s| s.step >= config.steps && s.config_hash == config.hash());
    let steps = if finished {
        existing.map_or(0, |s| s.step)
    } else {
        let resume = existing.is_some().then_some(output);
        run_loop(config, Loop::Grpo, resume, progress)?.steps
    };
    Ok(StageSummary {
        stage: "train".into(),
        output: output.to_path_buf(),
        units_total: 1,
        units_done: usize::from(!finished),
        units_reused: usize::from(finished),
        rows_in: triples_drawn(output)?,
        rows_out: steps,
        counters: [("steps".to_string(), steps)].into(),
        seconds: started.elapsed().as_secs_f64(),
        ..StageSummary::default()
    })
}

/// Deletes what a training run wrote in `output`: checkpoints (finished or half
/// written), `latest`, the metrics, the input stamp and the cold start.
fn clear_run(output: &Path) -> Result<()> {
    for entry in std::fs::read_dir(output).at(output)? {
        let path = entry.at(output)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = name.starts_with("step-")
            || name.starts_with(".step-")
            || name.starts_with(checkpoint::LATEST)
            || name == rlpt_trainer::run::METRICS
            || name == rlpt_trainer::run::INPUT_STAMP
            || name == rlpt_trainer::run::COLD_START;
        if !ours {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).at(&path)?;
        } else {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// The triples a GRPO run in `output` drew as prompts: the sum of its steps'
/// `groups_sampled` in the metrics file (which holds exactly the checkpointed steps).
fn triples_drawn(output: &Path) -> Result<u64> {
    let path = output.join(rlpt_trainer::run::METRICS);
    let text = std::fs::read_to_string(&path).at(&path)?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|metrics| metrics["groups_sampled"].as_u64())
        .sum())
}

/// The `eval` stage of `rlpt run`: the latest checkpoint in `checkpoints` scored on
/// `input` (its `split`), the report written to `report`; reused when the report is of
/// the same checkpoint (its weights' checksums), input (its content) and settings,
/// recomputed otherwise or under `--force`.
pub fn eval_stage(
    entry: &EvalEntry,
    base: &Path,
    (input, split): (&str, Split),
    checkpoints: &Path,
    report: &Path,
    force: bool,
) -> Result<StageSummary> {
    let started = Instant::now();
    let config = TrainConfig::from_file(&base.join(&entry.config))?;
    let checkpoint = checkpoint::resolve(checkpoints)?;
    let request = serde_json::json!({
        "checkpoint": checkpoint,
        "checkpoint_checksums": checkpoint_weights_checksums(&checkpoint)?,
        "input": input,
        "input_fingerprint": rlpt_engine::table_units::table_fingerprint(input)?,
        "split": format!("{split:?}").to_lowercase(),
        "tasks": entry.tasks,
        "limit": entry.limit,
    });
    let previous: Option<Value> = std::fs::read_to_string(report)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let reused = !force
        && previous
            .as_ref()
            .is_some_and(|p| p.get("request") == Some(&request));
    let written = match previous {
        Some(previous) if reused => previous,
        _ => {
            let options = EvalOptions {
                limit: entry.limit,
                tasks: parse_tasks(&entry.tasks)?,
                batch: EVAL_BATCH,
                split,
                keep_answers: false,
            };
            let scores = rlpt_trainer::evaluate(
                &config,
                &checkpoint,
                triples_files(Path::new(input))?,
                &options,
            )?;
            let mut result = serde_json::to_value(scores).expect("a report serialises");
            result["request"] = request;
            let text = serde_json::to_string_pretty(&result).expect("a report serialises");
            rlpt_engine::atomic::write_file(report, text.as_bytes())?;
            result
        }
    };
    Ok(StageSummary {
        stage: "eval".into(),
        output: report.to_path_buf(),
        units_total: 1,
        units_done: usize::from(!reused),
        units_reused: usize::from(reused),
        rows_in: written["triples"].as_u64().unwrap_or(0),
        rows_out: 1,
        seconds: started.elapsed().as_secs_f64(),
        ..StageSummary::default()
    })
}

/// The checksums a checkpoint recorded of its files, but its trainer state (which
/// holds wall-clock timings): what identifies the weights it holds.
fn checkpoint_weights_checksums(checkpoint: &Path) -> Result<Value> {
    let path = checkpoint.join("checksums.json");
    let text = std::fs::read_to_string(&path).at(&path)?;
    let mut sums: serde_json::Map<String, Value> =
        serde_json::from_str(&text).map_err(|source| rlpt_engine::Error::Json { path, source })?;
    sums.remove("trainer_state.json");
    Ok(Value::Object(sums))
}

/// Prompts `rlpt eval` generates together.
const EVAL_BATCH: usize = 64;

fn parse_tasks(names: &[String]) -> Result<Vec<TaskKind>> {
    Ok(names
        .iter()
        .map(|t| TaskKind::parse(t))
        .collect::<rlpt_trainer::Result<Vec<_>>>()?)
}

/// `rlpt-out/train` → `rlpt-out/sft`: SFT's default output beside GRPO's.
fn sft_output(grpo_output: &Path) -> PathBuf {
    grpo_output.with_file_name("sft")
}

fn apply<T: Clone>(field: &mut T, flag: &Option<T>) {
    if let Some(value) = flag {
        *field = value.clone();
    }
}

/// The triples shards `input` names (a file, a directory or a glob), sorted.
fn triples_files(input: &Path) -> Result<Vec<PathBuf>> {
    let files = rlpt_engine::table_units::table_inputs(&input.to_string_lossy())?;
    Ok(files.into_iter().map(|f| f.path).collect())
}

/// The triples shards of `--input` when given, else of the config's `input`.
fn given_or_configured_triples(input: Option<&str>, config: &TrainConfig) -> Result<Vec<PathBuf>> {
    match input {
        Some(input) => triples_files(Path::new(input)),
        None => triples_files(&config.input),
    }
}

/// Runs `rlpt eval`; returns the report as pretty JSON.
pub fn eval(command: &EvalCommand) -> Result<String> {
    let mut config = TrainConfig::from_file(&command.config)?;
    apply(&mut config.device, &command.device);
    let model = match (&command.checkpoint, &command.model) {
        (Some(checkpoint), _) => rlpt_trainer::checkpoint::resolve(checkpoint)?,
        (None, Some(model)) => model.clone(),
        (None, None) => config.model.clone(),
    };
    let options = EvalOptions {
        limit: command.limit,
        tasks: parse_tasks(&command.tasks)?,
        batch: EVAL_BATCH,
        split: if command.split == "heldout" {
            Split::Heldout
        } else {
            Split::All
        },
        keep_answers: command.answers,
    };
    let files = given_or_configured_triples(command.input.as_deref(), &config)?;
    let report = rlpt_trainer::evaluate(&config, &model, files, &options)?;
    let text = serde_json::to_string_pretty(&report).expect("a report serialises") + "\n";
    if let Some(path) = &command.output {
        rlpt_engine::atomic::write_file(path, text.as_bytes())?;
    }
    Ok(text)
}

/// `rlpt export hf`: the directory written.
pub fn export_hf(command: &ExportHfCommand) -> Result<PathBuf> {
    let source = command
        .checkpoint
        .clone()
        .or_else(|| command.model.clone())
        .expect("clap requires --checkpoint or --model");
    let export = HfExport {
        source,
        output: command.output.clone(),
        dtype: if command.dtype == "bf16" {
            DType::BF16
        } else {
            DType::F32
        },
        force: command.force,
    };
    Ok(rlpt_trainer::export::hf::write(&export)?)
}

/// `rlpt export verl|trl`: the directory written and its rows per split, as JSON.
pub fn export_dataset(command: &ExportDatasetCommand, engine: Engine) -> Result<String> {
    let config = TrainConfig::from_file(&command.config)?;
    let export = DatasetExport {
        input: given_or_configured_triples(command.input.as_deref(), &config)?,
        config,
        output: command.output.clone(),
        engine,
        force: command.force,
    };
    let rows = rlpt_trainer::export::rl::write(&export)?;
    let report =
        serde_json::json!({"output": command.output, "train": rows.train, "test": rows.test});
    Ok(serde_json::to_string_pretty(&report).expect("a report serialises") + "\n")
}

/// A bar of optimizer steps with the last reward (or loss) and rollout speed.
struct StepBar {
    bar: Option<ProgressBar>,
    json: bool,
    which: Loop,
}

impl StepBar {
    fn new(mode: ProgressMode, steps: u64, which: Loop) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} step {pos}/{len} {msg} ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(match which {
                Loop::Grpo => "train",
                Loop::Sft => "sft",
            });
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Self {
            bar,
            json: mode == ProgressMode::Json,
            which,
        }
    }

    fn step(&self, step: u64, metrics: &Value) {
        let number = |key: &str| metrics[key].as_f64().unwrap_or(f64::NAN);
        let timing = |key: &str| metrics["timing"][key].as_f64().unwrap_or(f64::NAN);
        let message = match self.which {
            Loop::Grpo => format!(
                "reward {:.3} kept {}/{} {:.0} tok/s",
                number("reward_mean"),
                metrics["groups_kept"],
                metrics["groups_sampled"],
                timing("rollout_tokens_per_s")
            ),
            Loop::Sft => format!(
                "loss {:.3} {:.0} tok/s",
                number("loss"),
                timing("tokens_per_s")
            ),
        };
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(message);
        } else if self.json {
            tracing::info!(step, metrics = %metrics, "train step");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes `text` to stdout unless quiet.
pub fn print(quiet: bool, text: &str) -> Result<()> {
    if quiet {
        return Ok(());
    }
    crate::stdout::write(text)
}
