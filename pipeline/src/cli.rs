//! The command line: global flags (`--threads`, `--log-format`, `-q`, `-v`) before one
//! subcommand; every stage command reads `--input PATH` and writes `--output DIR`, and
//! takes `--rank/--world-size` (defaulting from a Slurm array's environment).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use rlpt_engine::executor::Sharding;
use rlpt_engine::layout::{Layout, parse_bytes};
use rlpt_stages::dedup::DedupConfig;
use rlpt_stages::ingest::IngestConfig;

use crate::error::{Error, Result};
use crate::jobs::ingest::InputFormat;
use crate::jobs::table_stage::TableStageCommand;
use crate::logging::LogFormat;

/// The default pipeline config of `rlpt run`.
pub const DEFAULT_CONFIG: &str = "data-samples/pipeline.toml";

/// rlpt: prepare pre-training text for reinforcement learning.
///
/// Stages read and write Parquet tables in directories; each resumes where it stopped
/// and splits its work across `--world-size` processes.
#[derive(Debug, Parser)]
#[command(name = "rlpt", version, propagate_version = true)]
pub struct Cli {
    /// Worker threads [default: every core]. Output bytes do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Format of logs and progress on stderr, and of summaries on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Print only errors: no progress, no summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print more detail (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn raw text (JSONL, plain text, Parquet; .gz/.zst) into `documents` shards.
    Ingest(IngestCommand),
    /// Remove exact and near duplicates (MinHash LSH), keeping the smallest id of each
    /// cluster; every step also runs on its own, split across ranks.
    Dedup(DedupCommand),
    /// The table stages: filter, pii, decontam, segment, entropy.
    #[command(flatten)]
    Table(TableStageCommand),
    /// Describe a table directory: schema, rows, nulls, lengths, values, counters.
    Inspect(InspectCommand),
    /// Tokenize text, or export a tokenizer (from GGUF or tokenizer.json) as tokenizer.json.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Create a model checkpoint.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Run the stages of a pipeline config in order, each resuming where it stopped.
    Run(RunCommand),
    /// Reinforcement learning on triples with GRPO (RPT next-token, RLPT asr/msr tasks),
    /// checkpointing as it goes; `--resume` continues exactly where a run stopped.
    Train(TrainCommand),
    /// Next-token training on the triples' text (cold start before GRPO), with the same
    /// config, optimizer and checkpoints as `train`.
    Sft(TrainCommand),
    /// Score a model or checkpoint on held-out triples: next-token accuracy by
    /// difficulty bucket, asr/msr reward rates.
    Eval(EvalCommand),
    /// Run a pipeline config on a Slurm cluster: one sbatch array per step, chained.
    #[command(subcommand)]
    Slurm(SlurmCommand),
    /// Write a checkpoint in another tool's format.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Draw a training run's metrics (reward per task, response length, loss, KL, clip
    /// fraction, grad norm, lr, groups kept) over steps into a PNG.
    Plot(PlotCommand),
}

/// `rlpt plot`.
#[derive(Debug, Args)]
pub struct PlotCommand {
    /// The run's output directory (holding metrics.jsonl).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The PNG to write [default: RUN/metrics.png].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `rlpt export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A checkpoint (or any model rlpt loads) as a Hugging Face model directory that
    /// transformers, vLLM and lm-eval-harness load: model.safetensors, config.json,
    /// generation_config.json, tokenizer.json, tokenizer_config.json (chat template).
    Hf(ExportHfCommand),
    /// The tasks `rlpt train` draws from a triples table as verl's RL dataset
    /// (train.parquet, test.parquet: the held-out documents) with rlpt_reward.py, verl's
    /// compute_score: same templates, split and rewards, for runs past one GPU.
    Verl(ExportDatasetCommand),
    /// The same for TRL's GRPOTrainer: a conversational dataset whose columns reach
    /// the reward function rlpt_reward.trl_reward.
    Trl(ExportDatasetCommand),
}

/// `rlpt export verl` and `rlpt export trl`.
#[derive(Debug, Args)]
pub struct ExportDatasetCommand {
    /// Trainer config: model (its tokenizer), tasks, templates, rewards, judge, seed,
    /// data filters, held-out share, max_prompt_tokens.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_TRAIN_CONFIG)]
    pub config: PathBuf,
    /// Triples: a file, a directory or a glob [default: the config's input].
    #[arg(long, value_name = "PATH")]
    pub input: Option<String>,
    /// The directory to write (written beside it, then renamed into place).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Replace the output directory when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `rlpt export hf`.
#[derive(Debug, Args)]
pub struct ExportHfCommand {
    /// A checkpoint directory (step-N/), or a training output directory (its latest).
    #[arg(long, value_name = "DIR", required_unless_present = "model")]
    pub checkpoint: Option<PathBuf>,
    /// A model instead: GGUF (dequantized), safetensors file or directory.
    #[arg(long, value_name = "PATH", conflicts_with = "checkpoint")]
    pub model: Option<PathBuf>,
    /// The directory to write (written beside it, then renamed into place).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// The weights' dtype.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    pub dtype: String,
    /// Replace the output directory when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `rlpt slurm`.
#[derive(Debug, Subcommand)]
pub enum SlurmCommand {
    /// Write one sbatch script per step into OUT/_slurm/ (an array of --array tasks for
    /// a step of work units, one job for dedup clusters, train and eval), submit them
    /// chained with --dependency=afterok, and print the job ids.
    Submit(SlurmSubmitCommand),
    /// Each step's progress (from the manifests) and its jobs' Slurm state.
    Status(SubmissionArgs),
    /// Cancel every job `submit` recorded in OUT/_slurm/jobs.json (scancel); finished
    /// units stay, and a later submit or run reuses them.
    Cancel(SubmissionArgs),
}

/// `rlpt slurm submit`.
#[derive(Debug, Args)]
pub struct SlurmSubmitCommand {
    /// Pipeline config (the jobs read it from the directory you submit from).
    #[arg(default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Array tasks of each step of work units (each task takes 1/N of the units).
    #[arg(long, value_name = "N")]
    pub array: usize,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of each job (sbatch --time).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs of each task (its rlpt --threads).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus_per_task: usize,
    /// Further sbatch options for every job, such as --sbatch-arg=--mem=8G.
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Directory of stage outputs [default: the config's `out_dir`].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The rlpt binary the jobs run [default: this one].
    #[arg(long, value_name = "PATH")]
    pub rlpt: Option<PathBuf>,
    /// Write the scripts and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
}

/// `rlpt slurm status` and `rlpt slurm cancel`: where a submission wrote.
#[derive(Debug, Args)]
pub struct SubmissionArgs {
    /// Pipeline config.
    #[arg(default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Directory of stage outputs [default: the config's `out_dir`].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The default trainer config of `rlpt train`, `sft` and `eval`.
pub const DEFAULT_TRAIN_CONFIG: &str = "data-samples/train.toml";

/// `rlpt train` and `rlpt sft`: a trainer config, and flags that override it.
#[derive(Debug, Args)]
pub struct TrainCommand {
    /// Trainer config (TOML); its relative paths are relative to the file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_TRAIN_CONFIG)]
    pub config: PathBuf,
    /// Triples to train on: a file, a directory or a glob.
    #[arg(long, value_name = "PATH")]
    pub input: Option<String>,
    /// Where checkpoints (step-N/, latest) and metrics.jsonl go.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Optimizer steps to reach.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// The model to start from: GGUF, safetensors file or directory with config.json.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// `cpu` or `cuda:N`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Seed of data order, task choice and sampling.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Continue from the latest checkpoint in --output, or from the checkpoint (or
    /// output directory) PATH.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    #[allow(clippy::option_option)]
    pub resume: Option<Option<PathBuf>>,
}

/// `rlpt eval`.
#[derive(Debug, Args)]
pub struct EvalCommand {
    /// Trainer config (templates, rewards, judge, max tokens).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_TRAIN_CONFIG)]
    pub config: PathBuf,
    /// A model: GGUF, safetensors file or directory [default: the config's].
    #[arg(long, value_name = "PATH", conflicts_with = "checkpoint")]
    pub model: Option<PathBuf>,
    /// A checkpoint directory (step-N/), or a training output directory (its latest).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Triples: a file, a directory or a glob [default: the config's input, with
    /// `--split heldout` for the documents training never saw].
    #[arg(long, value_name = "PATH")]
    pub input: Option<String>,
    /// Triples read at most.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub limit: usize,
    /// Tasks to score.
    #[arg(long, value_delimiter = ',', default_value = "next-token,asr")]
    pub tasks: Vec<String>,
    /// Which documents: `all`, or `heldout` — those the config's `data.holdout` keeps
    /// out of training.
    #[arg(long, default_value = "all", value_parser = ["all", "heldout"])]
    pub split: String,
    /// Also write the report (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep each answer's text in the report (`answers`, per task, in `outcomes`'
    /// order): what the model said, and a way to compare two devices' greedy outputs.
    #[arg(long)]
    pub answers: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

/// Input, output and sharding, common to every per-shard stage.
#[derive(Debug, Args)]
pub struct StageIo {
    /// Input: a file, a directory (read recursively) or a glob such as 'data/*.jsonl.gz'.
    #[arg(long, value_name = "PATH")]
    pub input: String,
    /// Output directory (created if needed).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// This process's share of the work.
    #[command(flatten)]
    pub share: ShareArgs,
}

/// Which share of a stage's work units this process takes, and whether to redo them.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// This process's rank [default: $SLURM_ARRAY_TASK_ID, else 0].
    #[arg(long, value_name = "R")]
    pub rank: Option<usize>,
    /// Number of processes sharing the work [default: $SLURM_ARRAY_TASK_COUNT, else 1].
    #[arg(long, value_name = "N")]
    pub world_size: Option<usize>,
    /// Recompute units already done, and replace output written with another config.
    #[arg(long)]
    pub force: bool,
}

impl ShareArgs {
    /// The rank and world size from the flags, else from Slurm's array variables.
    pub fn sharding(&self) -> Result<Sharding> {
        let world_size = match self.world_size {
            Some(n) => n,
            None => env_number("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(1),
        };
        let rank = match self.rank {
            Some(r) => r,
            None => match env_number("SLURM_ARRAY_TASK_ID")? {
                Some(id) => id
                    .checked_sub(env_number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0))
                    .ok_or_else(|| {
                        Error::Usage("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN".into())
                    })?,
                None => 0,
            },
        };
        Ok(Sharding::new(rank, world_size)?)
    }
}

fn env_number(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Usage(format!("${name} is {value:?}, expected a number"))),
        Err(_) => Ok(None),
    }
}

/// `rlpt ingest`.
#[derive(Debug, Args)]
pub struct IngestCommand {
    /// Input: a file, a directory (read recursively) or a glob such as
    /// 'data/*.jsonl.gz'; repeat it to read several, in the order given.
    #[arg(long = "input", value_name = "PATH", required = true)]
    pub inputs: Vec<String>,
    /// Output directory (created if needed).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// This process's share of the work.
    #[command(flatten)]
    pub share: ShareArgs,
    /// Stop at the first rejected record instead of writing it to `rejects/`.
    #[arg(long)]
    pub strict: bool,
    /// Input format.
    #[arg(long, value_enum, default_value_t)]
    pub format: InputFormat,
    /// The stage's settings.
    #[command(flatten)]
    pub config: IngestConfig,
    /// Unit and shard sizes.
    #[command(flatten)]
    pub layout: Layout,
}

/// A stage that reads a `documents` table and writes one: input, output, sharding,
/// the stage's settings and the layout.
#[derive(Debug, Args)]
pub struct TableCommand<C: Args> {
    /// Input, output, sharding.
    #[command(flatten)]
    pub io: StageIo,
    /// The stage's settings.
    #[command(flatten)]
    pub config: C,
    /// Unit and shard sizes.
    #[command(flatten)]
    pub layout: Layout,
}

/// `rlpt dedup`: every step in one process, or one step.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DedupCommand {
    /// Run one step only.
    #[command(subcommand)]
    pub step: Option<DedupStep>,
    /// Input documents and output directory (all steps).
    #[command(flatten)]
    pub all: DedupAll,
}

/// The dedup steps, in the order they run.
#[derive(Debug, Subcommand)]
pub enum DedupStep {
    /// 1: signatures and LSH band hashes of each input unit (per unit, any rank).
    Signatures(DedupInputStep),
    /// 2: candidate pairs of each band, sorted within --sort-memory (per band, any rank).
    Buckets(DedupOutputStep),
    /// 3: verify candidates, cluster, choose what to keep (one task).
    Clusters(DedupOutputStep),
    /// 4: drop the removed documents from each input unit (per unit, any rank).
    Filter(DedupInputStep),
}

/// `rlpt dedup --input DOCS --output DIR` (both required unless a step is named).
#[derive(Debug, Args)]
pub struct DedupAll {
    /// Input documents table (a directory rlpt wrote, or Parquet files).
    #[arg(long, value_name = "PATH", required = true)]
    pub input: Option<String>,
    /// Output directory: documents, plus dedup_clusters/ and the steps' _dedup/.
    #[arg(long, value_name = "DIR", required = true)]
    pub output: Option<PathBuf>,
    /// Recompute finished work, and replace output written with another config.
    #[arg(long)]
    pub force: bool,
    /// The dedup settings.
    #[command(flatten)]
    pub settings: DedupSettings,
}

/// A step that reads the input documents.
#[derive(Debug, Args)]
pub struct DedupInputStep {
    /// Input, output, sharding.
    #[command(flatten)]
    pub io: StageIo,
    /// The dedup settings.
    #[command(flatten)]
    pub settings: DedupSettings,
}

/// A step that reads only earlier steps' output.
#[derive(Debug, Args)]
pub struct DedupOutputStep {
    /// Output directory of the dedup (as given to the other steps).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// This process's share of the work (the clusters step is one task).
    #[command(flatten)]
    pub share: ShareArgs,
    /// The dedup settings.
    #[command(flatten)]
    pub settings: DedupSettings,
}

/// Settings every dedup step takes (give each step the same ones).
#[derive(Debug, Args)]
pub struct DedupSettings {
    /// The algorithm.
    #[command(flatten)]
    pub config: DedupConfig,
    /// Unit and shard sizes.
    #[command(flatten)]
    pub layout: Layout,
    /// Memory for sorting one band before spilling sorted runs to disk (e.g. 1GiB).
    #[arg(long, value_parser = parse_bytes, default_value = "1GiB")]
    pub sort_memory: u64,
}

/// `rlpt inspect`.
#[derive(Debug, Args)]
pub struct InspectCommand {
    /// A table directory (or a glob of Parquet files).
    pub dir: PathBuf,
    /// Also show the first N rows.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub head: usize,
}

/// `rlpt tokenizer`.
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Print the token ids of texts, one JSON array per line.
    Encode {
        /// The tokenizer: a .gguf file or a tokenizer.json (.json, .json.gz).
        #[arg(long, value_name = "PATH")]
        tokenizer: PathBuf,
        /// Read texts from this JSONL file's `--field` instead of the arguments.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The JSONL field holding the text.
        #[arg(long, default_value = "text")]
        field: String,
        /// Texts to tokenize.
        texts: Vec<String>,
    },
    /// Train a byte-level BPE tokenizer (GPT-2's pre-token pattern) on JSONL texts.
    Train {
        /// JSONL files to learn from (their `--field`).
        #[arg(long = "input", value_name = "FILE", required = true)]
        inputs: Vec<PathBuf>,
        /// The JSONL field holding the text.
        #[arg(long, default_value = "text")]
        field: String,
        /// Tokens in the vocabulary, special tokens and the 256 byte symbols included.
        #[arg(long, default_value_t = 4096)]
        vocab_size: usize,
        /// Special tokens, given ids 0, 1, … in this order.
        #[arg(long, value_delimiter = ',', default_values_t = default_special_tokens())]
        special: Vec<String>,
        /// Where to write tokenizer.json.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write the tokenizer as tokenizer.json (gzipped when the name ends in .gz).
    Export {
        /// The tokenizer: a .gguf file or a tokenizer.json (.json, .json.gz).
        #[arg(long, value_name = "PATH")]
        tokenizer: PathBuf,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
}

/// The special tokens of a trained tokenizer: end of text, ChatML, and RLPT's
/// prediction tags.
fn default_special_tokens() -> Vec<String> {
    [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|startofprediction|>",
        "<|endofprediction|>",
    ]
    .map(String::from)
    .to_vec()
}

/// `rlpt model`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Write a freshly initialised checkpoint (model.safetensors + config.json) of the
    /// model a Hugging Face config.json describes.
    Init {
        /// The model's config.json (llama, qwen2 or qwen3).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seed of the initial weights (the same seed gives the same bytes).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Directory to write into.
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
    },
}

/// `rlpt run`.
#[derive(Debug, Args)]
pub struct RunCommand {
    /// Pipeline config.
    #[arg(default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Directory of stage outputs [default: the config's `out_dir`].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Run only these steps: a step (`dedup-buckets`), a stage (`dedup`: its four
    /// steps) or a stage's output name; comma-separated or repeated.
    #[arg(
        long,
        value_name = "STEP",
        value_delimiter = ',',
        conflicts_with = "from"
    )]
    pub only: Vec<String>,
    /// Start at this step (or stage, or output name) and run every one after it.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// This process's share of the work (`--world-size` > 1 runs one step; a
    /// single-task step runs on rank 0), and `--force`.
    #[command(flatten)]
    pub share: ShareArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_come_before_the_subcommand() {
        let cli = Cli::try_parse_from([
            "rlpt",
            "--threads",
            "1",
            "--log-format",
            "json",
            "ingest",
            "--input",
            "a.jsonl",
            "--output",
            "out",
            "--text-field",
            "body",
            "--unit-bytes",
            "1KiB",
        ])
        .unwrap();
        assert_eq!((cli.threads, cli.log_format), (Some(1), LogFormat::Json));
        let Command::Ingest(ingest) = cli.command else {
            panic!("ingest")
        };
        assert_eq!(ingest.config.text_field, "body");
        assert_eq!(ingest.layout.unit_bytes, 1024);
        assert!(
            Cli::try_parse_from([
                "rlpt",
                "ingest",
                "--threads",
                "1",
                "--input",
                "a",
                "--output",
                "o"
            ])
            .is_err()
        );
    }

    #[test]
    fn cli_defaults_equal_config_defaults() {
        let cli = Cli::try_parse_from(["rlpt", "ingest", "--input", "a", "--output", "o"]).unwrap();
        let Command::Ingest(ingest) = cli.command else {
            panic!("ingest")
        };
        assert_eq!(ingest.config, IngestConfig::default());
        assert_eq!(ingest.layout, Layout::default());
    }
}
