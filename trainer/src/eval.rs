//! `rlpt eval`: how well a model (a base model or any checkpoint) does on held-out
//! triples — next-token accuracy in RPT's Table 1 buckets, which nest: all positions,
//! easy (the predicted token's proxy entropy above 0.5), medium (above 1.0), hard
//! (above 1.5) — and the reward rate of asr/msr answers, all with greedy decoding.
//! Next-token positions are also scored without reasoning, RPT's "standard next-token
//! prediction": the model's greedy next token after the raw text, under the same
//! prefix-token reward.
//!
//! Triples are read in file order; the next-token position of a triple is drawn
//! uniformly among its tokens after the first, from a generator seeded by the triple's
//! id, so two models are scored on the same positions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rlpt_lm::SamplingConfig;
use rlpt_rng::SplitMix64;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{DataConfig, TaskConfig, TrainConfig};
use crate::data::{Split, Triple, TripleStream};
use crate::error::Result;
use crate::grpo_run::{Completions, Score, Scorer};
use crate::policy::{Policy, open_model};
use crate::rewards;
use crate::tasks::{self, Instance, TaskKind};

/// RPT's nested buckets: a position belongs to each whose entropy bound its
/// predicted token's proxy entropy exceeds.
pub const BUCKETS: [(&str, f32); 4] = [
    ("all", f32::NEG_INFINITY),
    ("easy", 0.5),
    ("medium", 1.0),
    ("hard", 1.5),
];

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
    /// Whether the report keeps each answer's text.
    pub keep_answers: bool,
}

/// Bootstrap resamples behind each 95% interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Outcomes of one bucket or task.
#[derive(Default, Clone)]
struct Tally {
    /// Whether each answer was rewarded, in order.
    correct: Vec<bool>,
    format_failures: usize,
    judge_failures: usize,
}

impl Tally {
    fn count(&mut self, correct: bool, format_failure: bool) {
        self.correct.push(correct);
        self.format_failures += usize::from(format_failure);
    }

    fn count_score(&mut self, score: &Score) {
        self.count(score.reward > 0.0, score.format_failure);
        self.judge_failures += usize::from(score.judge_failure);
    }

    fn accuracy(&self) -> Accuracy {
        let n = self.correct.len();
        let correct = self.correct.iter().filter(|&&c| c).count();
        Accuracy {
            n,
            correct,
            accuracy: correct as f64 / n.max(1) as f64,
            ci95: bootstrap_ci95(&self.correct),
            format_failures: self.format_failures,
            judge_failures: self.judge_failures,
        }
    }
}

/// What `rlpt eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model's name.
    pub model: String,
    /// Its weights' checksum.
    pub model_checksum: String,
    /// Triples read.
    pub triples: usize,
    /// `all` or `heldout`.
    pub split: String,
    /// Each task's scores, by task name.
    #[serde(flatten)]
    pub tasks: BTreeMap<String, TaskReport>,
}

/// A task's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Over every instance.
    #[serde(flatten)]
    pub overall: Accuracy,
    /// Next-token: by RPT's nested entropy buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<BTreeMap<String, Accuracy>>,
    /// Next-token: the same positions as plain greedy next-token prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<StandardReport>,
    /// Each instance's outcome in the order read, `1` rewarded and `0` not: two models
    /// evaluated on the same triples, split and limit can be compared pair by pair.
    pub outcomes: String,
    /// Each instance's greedy answer (the generated text), in the same order, when
    /// asked for (`rlpt eval --answers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<String>,
}

/// RPT's "standard next-token prediction" row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardReport {
    /// By RPT's nested entropy buckets.
    pub buckets: BTreeMap<String, Accuracy>,
}

/// How often answers were rewarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Answers scored.
    pub n: usize,
    /// Answers rewarded.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Its percentile-bootstrap 95% interval.
    pub ci95: [f64; 2],
    /// Answers not in the task's format.
    pub format_failures: usize,
    /// Answers the judge gave no readable verdict on (scored as not rewarded).
    #[serde(default)]
    pub judge_failures: usize,
}

/// The percentile bootstrap 95% interval of the accuracy of `outcomes`: the 2.5th and
/// 97.5th percentiles of the accuracy over resamples of the same size, drawn with
/// replacement from a fixed seed (so a report is reproducible).
fn bootstrap_ci95(outcomes: &[bool]) -> [f64; 2] {
    let n = outcomes.len();
    if n == 0 {
        return [0.0, 0.0];
    }
    let mut rng = SplitMix64::new(0x5EED_B007);
    let mut accuracies: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let hits = (0..n)
                .filter(|_| outcomes[(rng.next_u64() % n as u64) as usize])
                .count();
            hits as f64 / n as f64
        })
        .collect();
    accuracies.sort_by(f64::total_cmp);
    let at = |q: f64| accuracies[((BOOTSTRAP_RESAMPLES - 1) as f64 * q).round() as usize];
    [at(0.025), at(0.975)]
}

/// Evaluates `model` (a model file or directory, or a checkpoint directory) on
/// `files` under `config` (its templates, rewards, judge, sampling length).
pub fn evaluate(
    config: &TrainConfig,
    model: &Path,
    files: Vec<PathBuf>,
    options: &EvalOptions,
) -> Result<EvalReport> {
    let (weights, tokenizer) = open_model(model, config.tokenizer.as_deref())?;
    let device = rlpt_lm::device(&config.device)?;
    let policy = Policy::load_for(&weights, tokenizer, &device, config)?;
    let mut eval_config = config.clone();
    eval_config.tasks = options
        .tasks
        .iter()
        .map(|kind| {
            let configured = config.tasks.iter().find(|t| t.kind == *kind);
            TaskConfig {
                kind: *kind,
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
    let mut report = EvalReport {
        model: policy.model.name().to_string(),
        model_checksum: policy.model.checksum().to_string(),
        triples: triples.len(),
        split: format!("{:?}", options.split).to_lowercase(),
        tasks: BTreeMap::new(),
    };
    for (task, spec) in scorer.tasks().iter().enumerate() {
        let instances: Vec<(Instance, Option<f32>)> = triples
            .iter()
            .filter_map(|triple| eval_instance(spec.kind, triple))
            .collect();
        let mut buckets: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut standard: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut overall = Tally::default();
        let mut answers = Vec::new();
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
            // The batch's answers go to the judge (if the reward asks one) together.
            let groups: Vec<Completions> = chunk
                .iter()
                .zip(&generations)
                .map(|((instance, _), generation)| Completions {
                    task,
                    instance,
                    texts: vec![generation.text.as_str()],
                })
                .collect();
            let scores = scorer.score_groups(&policy, &groups)?;
            for ((_, entropy), mut score) in chunk.iter().zip(scores) {
                let score = score.remove(0);
                overall.count_score(&score);
                for bucket in entropy.iter().flat_map(|&e| buckets_of(e)) {
                    buckets.entry(bucket).or_default().count_score(&score);
                }
            }
            if options.keep_answers {
                answers.extend(generations.iter().map(|g| g.text.clone()));
            }
            if spec.kind == TaskKind::NextToken {
                let plain = plain_next_tokens(&policy, chunk, config.max_prompt_tokens)?;
                for ((instance, entropy), token) in chunk.iter().zip(plain) {
                    let correct =
                        rewards::prefix_token(&token, &policy.reference_tokens(instance)?);
                    for bucket in entropy.iter().flat_map(|&e| buckets_of(e)) {
                        standard.entry(bucket).or_default().count(correct, false);
                    }
                }
            }
        }
        let next_token = spec.kind == TaskKind::NextToken;
        let entry = TaskReport {
            overall: overall.accuracy(),
            outcomes: overall
                .correct
                .iter()
                .map(|&c| if c { '1' } else { '0' })
                .collect(),
            buckets: next_token.then(|| by_bucket(&buckets)),
            standard: next_token.then(|| StandardReport {
                buckets: by_bucket(&standard),
            }),
            answers,
        };
        report.tasks.insert(spec.kind.name().into(), entry);
    }
    Ok(report)
}

/// The buckets a position whose predicted token has proxy entropy `entropy` is in.
fn buckets_of(entropy: f32) -> impl Iterator<Item = &'static str> {
    BUCKETS
        .iter()
        .filter(move |(_, bound)| entropy > *bound)
        .map(|(name, _)| *name)
}

/// Every bucket's accuracy, as the report shows them.
fn by_bucket(tallies: &BTreeMap<&str, Tally>) -> BTreeMap<String, Accuracy> {
    BUCKETS
        .iter()
        .map(|(name, _)| {
            let tally = tallies.get(name).cloned().unwrap_or_default();
            (name.to_string(), tally.accuracy())
        })
        .collect()
}

/// The text of the model's greedy next token after each instance's raw text (no
/// prompt, no reasoning), its last `max_tokens` tokens.
fn plain_next_tokens(
    policy: &Policy,
    instances: &[(Instance, Option<f32>)],
    max_tokens: usize,
) -> Result<Vec<String>> {
    let prompts = instances
        .iter()
        .map(|(instance, _)| {
            let ids = policy.tokenizer.encode(&instance.before)?;
            Ok(ids[ids.len().saturating_sub(max_tokens.max(1))..].to_vec())
        })
        .collect::<Result<Vec<_>>>()?;
    let greedy = SamplingConfig {
        temperature: 0.0,
        max_tokens: 1,
        ..SamplingConfig::default()
    };
    Ok(policy
        .sample(&prompts, &greedy)?
        .into_iter()
        .map(|generation| generation.text)
        .collect())
}

/// The instance a triple gives `kind` in evaluation, with the proxy entropy of the
/// token to predict (next-token).
fn eval_instance(kind: TaskKind, triple: &Triple) -> Option<(Instance, Option<f32>)> {
    if kind != TaskKind::NextToken {
        // asr and msr draw nothing.
        let mut unused = SplitMix64::new(0);
        return tasks::instance(kind, triple, 0.0, &mut unused).map(|i| (i, None));
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
    Some((instance, Some(entropy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_nest_as_rpt_table_one() {
        let of = |entropy: f32| buckets_of(entropy).collect::<Vec<_>>();
        assert_eq!(of(0.2), ["all"]);
        assert_eq!(of(0.5), ["all"], "bounds are exclusive");
        assert_eq!(of(1.2), ["all", "easy", "medium"]);
        assert_eq!(of(3.0), ["all", "easy", "medium", "hard"]);
    }

    #[test]
    fn the_bootstrap_interval_holds_the_accuracy_and_narrows_with_more_answers() {
        let outcomes = |n: usize| (0..n).map(|i| i % 4 == 0).collect::<Vec<_>>();
        let [low, high] = bootstrap_ci95(&outcomes(40));
        assert!(low < 0.25 && 0.25 < high, "{low} {high}");
        // A binomial's 95% interval at p = 0.25, n = 40 is about ±0.13.
        assert!((0.08..0.18).contains(&((high - low) / 2.0)), "{low} {high}");
        let [low_more, high_more] = bootstrap_ci95(&outcomes(400));
        assert!(high_more - low_more < (high - low) / 2.0);
        assert_eq!(bootstrap_ci95(&[true; 5]), [1.0, 1.0]);
        assert_eq!(bootstrap_ci95(&[]), [0.0, 0.0]);
    }
}
