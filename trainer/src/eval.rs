//! `rlpt eval`: how well a model (a base model or any checkpoint) does on held-out
//! triples — next-token accuracy by difficulty bucket (RPT's Table 1: the predicted
//! token's proxy entropy below 0.5 trivial, 1.0 easy, 1.5 medium, else hard) and the
//! reward rate of asr/msr answers, all with greedy decoding.
//!
//! Triples are read in file order; the next-token position of a triple is drawn
//! uniformly among its tokens after the first, from a generator seeded by the triple's
//! id, so two models are scored on the same positions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rlpt_lm::SamplingConfig;
use rlpt_lm::generate::SplitMix64;
use serde_json::{Value, json};
use xxhash_rust::xxh3::xxh3_64;

use crate::checkpoint;
use crate::config::{DataConfig, TaskConfig, TrainConfig};
use crate::data::{Split, Triple, TripleStream};
use crate::error::Result;
use crate::grpo_run::Scorer;
use crate::policy::{Policy, checkpoint_weights, tokenizer_for};
use crate::tasks::{self, Instance, TaskKind};

/// Entropy bounds of the buckets trivial, easy, medium (hard above the last).
pub const BUCKET_BOUNDS: [f32; 3] = [0.5, 1.0, 1.5];
const BUCKETS: [&str; 4] = ["trivial", "easy", "medium", "hard"];

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Triples read at most.
    pub limit: usize,
    /// The tasks scored.
    pub tasks: Vec<TaskKind>,
    /// Prompts generated together.
    pub batch: usize,
    /// Which documents: all, or those `data.holdout` keeps out of training.
    pub split: Split,
}

/// Counts of one bucket or task.
#[derive(Default, Clone, Copy)]
struct Tally {
    total: usize,
    correct: usize,
    format_failures: usize,
}

impl Tally {
    fn json(self) -> Value {
        json!({
            "n": self.total,
            "correct": self.correct,
            "accuracy": self.correct as f64 / self.total.max(1) as f64,
            "format_failures": self.format_failures,
        })
    }
}

/// Evaluates `model` (a model file or directory, or a checkpoint directory) on
/// `files` under `config` (its templates, rewards, judge, sampling length).
pub fn evaluate(
    config: &TrainConfig,
    model: &Path,
    files: Vec<PathBuf>,
    options: &EvalOptions,
) -> Result<Value> {
    let (weights, tokenizer) = if model.is_dir() && model.join("checksums.json").exists() {
        checkpoint::open(model)?;
        let weights = checkpoint_weights(model);
        let tokenizer = tokenizer_for(&weights, None)?;
        (weights, tokenizer)
    } else {
        (
            model.to_path_buf(),
            tokenizer_for(model, config.tokenizer.as_deref())?,
        )
    };
    let device = rlpt_lm::device(&config.device)?;
    let policy = Policy::load(&weights, tokenizer, &device, &config.chat_template)?;
    let mut eval_config = config.clone();
    eval_config.tasks = options
        .tasks
        .iter()
        .map(|kind| {
            let configured = config.tasks.iter().find(|t| t.kind == kind.name());
            TaskConfig {
                kind: kind.name().into(),
                weight: 1.0,
                ..configured.cloned().unwrap_or_default()
            }
        })
        .collect();
    let scorer = Scorer::new(&eval_config)?;
    let data = DataConfig {
        shuffle_buffer: 1,
        epochs: Some(1),
        holdout: config.data.holdout,
        ..DataConfig::default()
    };
    let mut stream = TripleStream::new(files, data, options.split, 0, None)?;
    let mut triples = Vec::new();
    while triples.len() < options.limit {
        match stream.next_triple()? {
            Some(triple) => triples.push(triple),
            None => break,
        }
    }
    let mut report = serde_json::Map::new();
    report.insert("model".into(), json!(policy.model.name()));
    report.insert("model_checksum".into(), json!(policy.model.checksum()));
    report.insert("triples".into(), json!(triples.len()));
    report.insert(
        "split".into(),
        json!(format!("{:?}", options.split).to_lowercase()),
    );
    for (task, spec) in scorer.tasks().iter().enumerate() {
        let instances: Vec<(Instance, Option<&'static str>)> = triples
            .iter()
            .filter_map(|triple| eval_instance(spec.kind, triple))
            .collect();
        let mut buckets: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut overall = Tally::default();
        for chunk in instances.chunks(options.batch.max(1)) {
            let prompts = chunk
                .iter()
                .map(|(instance, _)| {
                    policy.prompt_ids(
                        spec.kind,
                        &spec.template,
                        instance,
                        config.max_prompt_tokens,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let sampling = SamplingConfig {
                temperature: 0.0,
                max_tokens: config.sampling.max_tokens,
                stop: policy
                    .chat
                    .end_of_turn()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                ..SamplingConfig::default()
            };
            let generations = policy.sample(&prompts, &sampling)?;
            for ((instance, bucket), generation) in chunk.iter().zip(&generations) {
                let score = scorer
                    .score(&policy, task, instance, &[generation.text.as_str()])?
                    .remove(0);
                for tally in std::iter::once(&mut overall)
                    .chain(bucket.map(|b| buckets.entry(b).or_default()))
                {
                    tally.total += 1;
                    tally.correct += usize::from(score.reward > 0.0);
                    tally.format_failures += usize::from(score.format_failure);
                }
            }
        }
        let mut entry = overall.json();
        if spec.kind == TaskKind::NextToken {
            let by_bucket: serde_json::Map<String, Value> = BUCKETS
                .iter()
                .map(|b| {
                    (
                        b.to_string(),
                        buckets.get(b).copied().unwrap_or_default().json(),
                    )
                })
                .collect();
            entry["buckets"] = Value::Object(by_bucket);
        }
        report.insert(spec.kind.name().into(), entry);
    }
    Ok(Value::Object(report))
}

/// The instance a triple gives `kind` in evaluation, with its bucket (next-token).
fn eval_instance(kind: TaskKind, triple: &Triple) -> Option<(Instance, Option<&'static str>)> {
    if kind != TaskKind::NextToken {
        return tasks::instance(kind, triple, 0.0).map(|i| (i, None));
    }
    let candidates: Vec<usize> = (0..triple.token_offsets.len())
        .filter(|&i| triple.token_offsets[i] > 0)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(xxh3_64(triple.id.as_bytes()));
    let position = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
    let instance = tasks::next_token_at(triple, position)?;
    let entropy = instance.token_entropy.unwrap_or(0.0);
    let bucket = BUCKETS[BUCKET_BOUNDS.iter().filter(|&&b| entropy >= b).count()];
    Some((instance, Some(bucket)))
}
