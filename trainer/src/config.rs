//! The trainer's configuration: one TOML file (`data-samples/train.toml` is the
//! default) read into [`TrainConfig`], with paths resolved against the file's
//! directory. Every field has a default, so a file holds only what it changes; unknown
//! keys are refused with their name. The config's hash (without the fields that may
//! change between a run and its resumption: steps, output, device) is recorded in
//! every checkpoint, and a resume under another config is refused.
//!
//! Each section's struct lives beside the code that reads it (`[data]` in `data.rs`,
//! `[[task]]` in `tasks.rs`, `[grpo]` in `grpo.rs`, `[optim]` in `optim.rs`, `[judge]`
//! in `judge.rs`, `[sft]` and `[cold_start]` in `sft.rs`, `[checkpoint]` in
//! `checkpoint.rs`) and is re-exported here. Names with a fixed set of values (task
//! and reward kinds, schedules, chat templates) are enums, so a misspelling is refused
//! while the file is read, naming the choices.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub use crate::checkpoint::CheckpointConfig;
pub use crate::data::DataConfig;
use crate::error::{Error, Result};
pub use crate::grpo::GrpoConfig;
pub use crate::judge::{DEFAULT_REFERENCE_SEGMENTS, JudgeConfig};
pub use crate::optim::OptimConfig;
pub use crate::policy::Precision;
pub use crate::sft::{ColdStartConfig, SftConfig, SftTarget};
use crate::tasks::ChatTemplateSetting;
pub use crate::tasks::TaskConfig;

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
    pub chat_template: ChatTemplateSetting,
    /// Prompts longer than this (in tokens) keep their last tokens' worth of context.
    pub max_prompt_tokens: usize,
    /// `f32` or `bf16`: the policy's (and the KL reference's) weights and activations.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub dtype: Precision,
    /// GRPO steps in a row that may train on nothing (every group dropped: no answer in
    /// the format, or equal rewards) before the run stops with an error; 0: never stop.
    /// Each such step is warned about. Not part of the config hash.
    #[serde(skip_serializing_if = "is_default_max_idle_steps")]
    pub max_idle_steps: u64,
    /// Also write each step's metrics as TensorBoard scalars into `OUTPUT/tensorboard/`.
    /// Not part of the config hash.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tensorboard: bool,
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
            chat_template: ChatTemplateSetting::Auto,
            max_prompt_tokens: 512,
            dtype: Precision::F32,
            max_idle_steps: DEFAULT_MAX_IDLE_STEPS,
            tensorboard: false,
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

    /// Checks what types cannot: sizes, ranges, the judge's endpoint.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        if self.tasks.is_empty() {
            return bad("no [[task]]: give at least one (next-token, asr or msr)".into());
        }
        for task in self.tasks.iter().chain(&self.cold_start.tasks) {
            if !(task.weight > 0.0 && task.weight.is_finite()) {
                return bad(format!("task {}: weight must be > 0", task.kind.name()));
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
        if let Some(endpoint) = &self.judge.endpoint
            && let Some(problem) = crate::judge::endpoint_credentials(endpoint)
        {
            return bad(format!(
                "judge.endpoint {}: {problem}",
                crate::judge::redact_url(endpoint)
            ));
        }
        Ok(())
    }

    /// xxh3-64 of the config without `steps`, `output`, `device`, `max_idle_steps`,
    /// `tensorboard` and `judge.concurrency` (which a resumed run may change), in hex.
    pub fn hash(&self) -> String {
        let mut stable = self.clone();
        stable.steps = 0;
        stable.output = PathBuf::new();
        stable.device = String::new();
        stable.max_idle_steps = DEFAULT_MAX_IDLE_STEPS;
        stable.tensorboard = false;
        stable.judge.concurrency = crate::judge::DEFAULT_CONCURRENCY;
        let json = serde_json::to_string(&stable).expect("a config serialises");
        format!("{:016x}", xxh3_64(json.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Schedule;
    use crate::rewards::RewardKind;
    use crate::tasks::TaskKind;

    fn parse(text: &str) -> std::result::Result<TrainConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn kinds_schedules_and_templates_are_typed_and_misspellings_name_the_choices() {
        let config = parse(
            "chat_template = \"chatml\"\n[optim]\nschedule = \"cosine\"\n\
             [[task]]\nkind = \"msr\"\nreward = \"strict\"\n",
        )
        .unwrap();
        assert_eq!(config.chat_template, ChatTemplateSetting::Chatml);
        assert_eq!(config.optim.schedule, Schedule::Cosine);
        assert_eq!(config.tasks[0].kind, TaskKind::Msr);
        assert_eq!(config.tasks[0].reward, Some(RewardKind::Strict));
        for (text, choices) in [
            (
                "[[task]]\nkind = \"next_token\"",
                "`next-token`, `asr`, `msr`",
            ),
            (
                "[[task]]\nreward = \"exact\"",
                "`prefix-token`, `prefix-semantic`, `strict`",
            ),
            ("[optim]\nschedule = \"linear\"", "`constant` or `cosine`"),
            ("chat_template = \"llama\"", "`auto`, `chatml`, `none`"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(choices), "{text}: {error}");
        }
    }

    #[test]
    fn the_hash_reads_kinds_as_the_names_configs_use() {
        // Checkpoints of earlier versions recorded hashes of these names as strings.
        let json = serde_json::to_string(&TrainConfig::default()).unwrap();
        assert!(json.contains(r#""kind":"next-token""#), "{json}");
        assert!(json.contains(r#""schedule":"constant""#), "{json}");
        assert!(json.contains(r#""chat_template":"auto""#), "{json}");
    }

    /// `[[cold_start.task]]` and `cold_start.max_tokens` are read, checked like
    /// `[[task]]`, and absent from the hash when unset (so a checkpoint of a config
    /// without them still resumes).
    #[test]
    fn the_cold_start_may_teach_its_own_tasks_within_its_own_budget() {
        let base = "[[task]]\nkind = \"next-token\"\n\n[cold_start]\nsteps = 4\n";
        let plain = parse(base).unwrap();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("max_tokens\":null"), "{json}");
        assert!(!json.contains("\"task\":[]"), "{json}");
        let text = format!(
            "{base}max_tokens = 24\n\n[[cold_start.task]]\nkind = \"asr\"\n\n\
             [[cold_start.task]]\nkind = \"msr\"\nweight = 0.5\n"
        );
        let own = parse(&text).unwrap();
        assert_eq!(own.cold_start.max_tokens, Some(24));
        let kinds: Vec<TaskKind> = own.cold_start.tasks.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [TaskKind::Asr, TaskKind::Msr]);
        assert_ne!(own.hash(), plain.hash());
        let zero = parse(&text.replace("weight = 0.5", "weight = 0")).unwrap();
        let error = zero.validate().unwrap_err().to_string();
        assert!(error.contains("msr: weight must be > 0"), "{error}");
    }
}
