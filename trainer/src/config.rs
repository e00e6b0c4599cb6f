//! The trainer's configuration: one TOML file (`data-samples/train.toml` is the
//! default) read into [`TrainConfig`], with paths resolved against the file's
//! directory. Every field has a default, so a file holds only what it changes; unknown
//! keys are refused with their name. The config's hash (without the fields that may
//! change between a run and its resumption: steps, output, device) is recorded in
//! every checkpoint, and a resume under another config is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// Everything `rlpt train`, `rlpt sft` and `rlpt eval` read from a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The policy: a GGUF file, a safetensors file or a directory with config.json.
    pub model: PathBuf,
    /// Its tokenizer; default: the GGUF's own, or tokenizer.json beside the weights.
    pub tokenizer: Option<PathBuf>,
    /// Triples shards: a file, a directory or a glob.
    pub input: PathBuf,
    /// Checkpoints and metrics go here.
    pub output: PathBuf,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Seeds the data order, task choice and sampling.
    pub seed: u64,
    /// Optimizer steps to reach.
    pub steps: u64,
    /// Wrap prompts in a chat template: `auto` (ChatML when the vocabulary has
    /// `<|im_start|>`), `chatml`, or `none`.
    pub chat_template: String,
    /// Prompts longer than this (in tokens) keep their last tokens' worth of context.
    pub max_prompt_tokens: usize,
    /// GRPO steps in a row that may train on nothing (every group dropped: no answer in
    /// the format, or equal rewards) before the run stops with an error; 0: never stop.
    /// Each such step is warned about. Not part of the config hash.
    #[serde(skip_serializing_if = "is_default_max_idle_steps")]
    pub max_idle_steps: u64,
    /// Which triples to read and in what order.
    pub data: DataConfig,
    /// The tasks, mixed by weight.
    #[serde(rename = "task")]
    pub tasks: Vec<TaskConfig>,
    /// How completions are sampled during rollouts.
    pub sampling: SamplingSettings,
    /// The GRPO objective.
    pub grpo: GrpoConfig,
    /// AdamW, clipping and the learning-rate schedule.
    pub optim: OptimConfig,
    /// When checkpoints are written and how many are kept.
    pub checkpoint: CheckpointConfig,
    /// The judge of `prefix-semantic` rewards.
    pub judge: JudgeConfig,
    /// `rlpt sft`: supervised training on the triples.
    pub sft: SftConfig,
    /// `rlpt train`: supervised steps on answers before GRPO.
    #[serde(skip_serializing_if = "ColdStartConfig::is_off")]
    pub cold_start: ColdStartConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("tiny"),
            tokenizer: None,
            input: PathBuf::from("triples"),
            output: PathBuf::from("rlpt-out/train"),
            device: "cpu".into(),
            seed: 0,
            steps: 10,
            chat_template: "auto".into(),
            max_prompt_tokens: 512,
            max_idle_steps: DEFAULT_MAX_IDLE_STEPS,
            data: DataConfig::default(),
            tasks: vec![TaskConfig::default()],
            sampling: SamplingSettings::default(),
            grpo: GrpoConfig::default(),
            optim: OptimConfig::default(),
            checkpoint: CheckpointConfig::default(),
            judge: JudgeConfig::default(),
            sft: SftConfig::default(),
            cold_start: ColdStartConfig::default(),
        }
    }
}

/// Default of [`TrainConfig::max_idle_steps`].
const DEFAULT_MAX_IDLE_STEPS: u64 = 10;

fn is_default_max_idle_steps(steps: &u64) -> bool {
    *steps == DEFAULT_MAX_IDLE_STEPS
}

/// Which triples are read, and in what order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Rows held back and drawn from at random (1: shard order as written).
    pub shuffle_buffer: usize,
    /// Keep only triples with one of these `difficulty` labels (empty: all).
    pub difficulties: Vec<String>,
    /// Keep only triples whose `seg_entropy_mean` is at least this.
    pub min_entropy: Option<f32>,
    /// Passes over the data; none: as many as the steps need.
    pub epochs: Option<u64>,
    /// A token whose entropy reaches this is "hard": where `next-token` prompts stop.
    pub hard_token_entropy: f32,
    /// Share of documents held out of training (chosen by a hash of their id) for
    /// `rlpt eval --split heldout`.
    pub holdout: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            shuffle_buffer: 256,
            difficulties: Vec::new(),
            min_entropy: None,
            epochs: None,
            hard_token_entropy: 1.5,
            holdout: 0.0,
        }
    }
}

/// One task of the mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// `next-token`, `asr` or `msr`.
    pub kind: String,
    /// Share of prompts drawn for this task (relative to the others).
    pub weight: f64,
    /// `prefix-token`, `prefix-semantic` or `strict`; default per kind.
    pub reward: Option<String>,
    /// The prompt, with `{text}` (next-token), `{context}`, `{next_segment}`; default:
    /// the paper's.
    pub template: Option<String>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: "next-token".into(),
            weight: 1.0,
            reward: None,
            template: None,
        }
    }
}

/// Sampling during rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingSettings {
    /// Softmax temperature.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Nucleus mass (1: all).
    pub top_p: f32,
    /// Tokens per completion at most.
    pub max_tokens: usize,
    /// Text that ends a completion, besides the chat template's end of turn.
    pub stop: Vec<String>,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_tokens: 64,
            stop: Vec::new(),
        }
    }
}

/// The GRPO objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Completions sampled per prompt (G).
    pub group_size: usize,
    /// Groups per optimizer step.
    pub prompts_per_step: usize,
    /// Lower clip of the ratio: 1 − ε_low.
    pub epsilon_low: f32,
    /// Upper clip of the ratio: 1 + ε_high (clip-higher when above ε_low).
    pub epsilon_high: f32,
    /// Weight of the k3 KL estimate to the initial model (0: off, as both papers).
    pub kl_beta: f32,
    /// Added to the group's std when normalising advantages.
    pub std_epsilon: f32,
    /// Drop groups whose rewards are all equal, and draw new prompts in their place.
    pub dynamic_sampling: bool,
    /// The first step (as metrics number them, from 1) that dynamic sampling applies
    /// to; earlier steps keep every group (RPT starts it at step 500). 0 and 1: all.
    #[serde(skip_serializing_if = "from_the_first_step")]
    pub dynamic_sampling_from_step: u64,
    /// Extra rollout rounds dynamic sampling may run per step.
    pub max_refill_rounds: usize,
    /// Soft over-length penalty: completions longer than `max_tokens − overlong_buffer`
    /// lose up to 1 reward linearly (0: off).
    pub overlong_buffer: usize,
    /// Sequences per forward/backward pass (gradient accumulation across them).
    pub micro_batch: usize,
    /// Optimizer updates per rollout batch (>1 makes the clip matter).
    pub updates_per_batch: usize,
    /// Keep only each decoder block's input in the forward pass and recompute the
    /// block in the backward pass (activation checkpointing; GRPO and SFT): the
    /// activations of one block are alive at once instead of all, for one more
    /// forward pass of compute. Off only to trade memory for ~25% of update time.
    #[serde(skip_serializing_if = "is_true")]
    pub activation_checkpointing: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

fn from_the_first_step(step: &u64) -> bool {
    *step <= 1
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            group_size: 4,
            prompts_per_step: 4,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            kl_beta: 0.0,
            std_epsilon: 1e-4,
            dynamic_sampling: true,
            dynamic_sampling_from_step: 1,
            max_refill_rounds: 2,
            overlong_buffer: 0,
            micro_batch: 8,
            updates_per_batch: 1,
            activation_checkpointing: true,
        }
    }
}

/// AdamW, clipping and the learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Adam's ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: off).
    pub max_grad_norm: f64,
    /// Steps of linear warmup from 0.
    pub warmup_steps: u64,
    /// `constant` or `cosine` after warmup.
    pub schedule: String,
    /// Where cosine ends, as a fraction of `lr`.
    pub min_lr_ratio: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            warmup_steps: 0,
            schedule: "constant".into(),
            min_lr_ratio: 0.1,
        }
    }
}

/// Checkpoint cadence and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write `step-N/` every this many steps (and at the last step).
    pub every: u64,
    /// Keep this many newest checkpoints (0: all).
    pub keep_last: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 10,
            keep_last: 3,
        }
    }
}

/// The judge of `prefix-semantic` rewards: a local model or an OpenAI-compatible
/// endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// A local judge model (GGUF or safetensors); default: the policy's initial weights.
    pub model: Option<PathBuf>,
    /// An OpenAI-compatible base URL (e.g. `http://localhost:8000/v1`); wins over `model`.
    pub endpoint: Option<String>,
    /// The model name sent to the endpoint.
    pub endpoint_model: String,
    /// Environment variable holding the endpoint's API key, if it needs one.
    pub api_key_env: Option<String>,
    /// Seconds before a request is abandoned.
    pub timeout_s: u64,
    /// Retries of a failed request.
    pub retries: u32,
    /// The judge's prompt, with `{context}`, `{reference}` and `{prediction}`.
    pub template: Option<String>,
    /// Segments the prefix judge reads as `{reference}`: the target segment, then the
    /// ones after it in the document (RLPT's prefix reward). Triples hold the next
    /// segment, so 1 (the target alone) or 2.
    #[serde(skip_serializing_if = "is_default_reference_segments")]
    pub reference_segments: usize,
}

/// Default of [`JudgeConfig::reference_segments`]: the segment and the next.
pub const DEFAULT_REFERENCE_SEGMENTS: usize = 2;

fn is_default_reference_segments(segments: &usize) -> bool {
    *segments == DEFAULT_REFERENCE_SEGMENTS
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            model: None,
            endpoint: None,
            endpoint_model: "judge".into(),
            api_key_env: None,
            timeout_s: 60,
            retries: 2,
            template: None,
            reference_segments: DEFAULT_REFERENCE_SEGMENTS,
        }
    }
}

/// What supervised steps train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SftTarget {
    /// The triples' text (context + segment), every token: adapting a model to the
    /// corpus.
    #[default]
    Text,
    /// The tasks' prompts, each followed by its reference answer in the task's answer
    /// format, the loss on the answer only: a cold start that teaches the format.
    Answers,
}

impl SftTarget {
    fn is_text(&self) -> bool {
        *self == Self::Text
    }
}

/// `rlpt sft`: supervised training on the triples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// What it trains on: `text` or `answers`.
    #[serde(skip_serializing_if = "SftTarget::is_text")]
    pub target: SftTarget,
    /// Texts per optimizer step.
    pub batch_size: usize,
    /// Tokens per text at most (the last ones kept).
    pub max_tokens: usize,
    /// Peak learning rate (the optimizer section's other settings apply).
    pub lr: f64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            target: SftTarget::Text,
            batch_size: 8,
            max_tokens: 256,
            lr: 1e-3,
        }
    }
}

/// RLPT's cold start: before its first GRPO step, `rlpt train` runs `steps` supervised
/// steps on the tasks' answers (`sft.target = "answers"`, with `[sft]`'s batch size)
/// into `OUTPUT/cold-start/`, and GRPO starts from that model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdStartConfig {
    /// Supervised steps (0: none; GRPO starts from `model`).
    pub steps: u64,
    /// Their peak learning rate (the optimizer section's other settings apply).
    pub lr: f64,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        Self { steps: 0, lr: 1e-5 }
    }
}

impl ColdStartConfig {
    fn is_off(&self) -> bool {
        self.steps == 0
    }
}

impl TrainConfig {
    /// Reads `path`, resolving relative paths in it against the file's directory.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        let mut config: Self =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.model);
        resolve(&mut config.input);
        config.tokenizer.as_mut().map(resolve);
        config.judge.model.as_mut().map(resolve);
        Ok(config)
    }

    /// Checks what TOML types cannot: names of kinds and schedules, sizes.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if self.tasks.is_empty() {
            return bad("no [[task]]: give at least one (next-token, asr or msr)".into());
        }
        for task in &self.tasks {
            crate::tasks::TaskKind::parse(&task.kind)?;
            if let Some(reward) = &task.reward {
                crate::rewards::RewardKind::parse(reward)?;
            }
            if !(task.weight > 0.0 && task.weight.is_finite()) {
                return bad(format!("task {}: weight must be > 0", task.kind));
            }
        }
        if self.grpo.group_size < 2 {
            return bad("grpo.group_size must be at least 2 (advantages compare a group)".into());
        }
        if self.grpo.prompts_per_step == 0 || self.grpo.micro_batch == 0 {
            return bad("grpo.prompts_per_step and grpo.micro_batch must be at least 1".into());
        }
        if !(1..=2).contains(&self.judge.reference_segments) {
            return bad(format!(
                "judge.reference_segments {}: 1 (the target segment) or 2 (it and the next; \
                 a triple holds no more)",
                self.judge.reference_segments
            ));
        }
        if !(0.0..1.0).contains(&self.data.holdout) {
            return bad(format!(
                "data.holdout {} must be in [0, 1)",
                self.data.holdout
            ));
        }
        if !matches!(self.optim.schedule.as_str(), "constant" | "cosine") {
            return bad(format!(
                "optim.schedule `{}`: use constant or cosine",
                self.optim.schedule
            ));
        }
        if let Some(endpoint) = &self.judge.endpoint
            && let Some(problem) = crate::judge::endpoint_credentials(endpoint)
        {
            return bad(format!(
                "judge.endpoint {}: {problem}",
                crate::judge::redact_url(endpoint)
            ));
        }
        if !matches!(self.chat_template.as_str(), "auto" | "chatml" | "none") {
            return bad(format!(
                "chat_template `{}`: use auto, chatml or none",
                self.chat_template
            ));
        }
        Ok(())
    }

    /// xxh3-64 of the config without `steps`, `output`, `device` and `max_idle_steps` (which a resumed
    /// run may change), in hex.
    pub fn hash(&self) -> String {
        let mut stable = self.clone();
        stable.steps = 0;
        stable.output = PathBuf::new();
        stable.device = String::new();
        stable.max_idle_steps = DEFAULT_MAX_IDLE_STEPS;
        let json = serde_json::to_string(&stable).expect("a config serialises");
        format!("{:016x}", xxh3_64(json.as_bytes()))
    }
}
