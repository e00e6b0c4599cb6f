//! `rlpt sft`: supervised (cross-entropy) training with the trainer's optimizer, data
//! stream, metrics and checkpoints, on one of two targets:
//!
//! - `text`: the triples' text — context and segment, an exact slice of a document —
//!   every token; it adapts a base model to the corpus;
//! - `answers`: the tasks' prompts (drawn as GRPO draws them) each followed by its
//!   reference answer in the task's format — `\boxed{word}` for next-token, the
//!   segment's start between the prediction tags for asr/msr, cut to fit
//!   `sampling.max_tokens` — and the end of the turn, the loss on the answer only:
//!   RLPT's cold start, which teaches a model the format GRPO rewards.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use rlpt_rng::SplitMix64;
use serde_json::Value;

use crate::config::TrainConfig;
use crate::error::{Error, Result, compute};
use crate::grpo_run::{TaskSpec, draw, mix};
use crate::policy::{Policy, Sequence, completion_backward};
use crate::run::{Gradients, MAX_UNUSABLE, Run, Summary};
use crate::tasks::{Instance, PREDICTION_END, PREDICTION_START, TaskConfig, TaskKind};
use serde::{Deserialize, Serialize};

/// Runs SFT to `config.steps`, from `resume` when given; `on_step` sees each step's
/// metrics.
pub fn sft(
    config: TrainConfig,
    files: Vec<PathBuf>,
    resume: Option<&Path>,
    on_step: &mut dyn FnMut(u64, &Value),
) -> Result<Summary> {
    let mut optim = config.optim.clone();
    optim.lr = config.sft.lr;
    let run = Run::start(config, "sft", optim, files, resume, None)?;
    match run.config.sft.target {
        SftTarget::Text => run.drive(|run| sft_step(run, text_examples), on_step),
        SftTarget::Answers => {
            let tasks = TaskSpec::all(&run.config)?;
            run.drive(
                |run| sft_step(run, |run| answer_examples(run, &tasks)),
                on_step,
            )
        }
    }
}

/// A supervised example: the loss is on `completion`'s tokens, after `prompt`.
struct Example {
    prompt: Vec<u32>,
    completion: Vec<u32>,
}

/// One SFT step's line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftStepMetrics {
    /// The step, from 1.
    pub step: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Mean negative log-likelihood per trained token.
    pub loss: f64,
    /// Examples in the step.
    pub texts: usize,
    /// Tokens trained on.
    pub tokens: usize,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Where the time went.
    pub timing: SftTiming,
}

/// Seconds of an SFT step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftTiming {
    /// The whole step.
    pub step_s: f64,
    /// Trained tokens per second.
    pub tokens_per_s: f64,
}

/// One step over the next `batch_size` examples; none when the data has run out.
fn sft_step(
    run: &mut Run,
    examples: impl FnOnce(&mut Run) -> Result<Vec<Example>>,
) -> Result<Option<Value>> {
    let started = Instant::now();
    let examples = examples(run)?;
    if examples.is_empty() {
        return Ok(None);
    }
    let tokens: usize = examples.iter().map(|e| e.completion.len()).sum();
    let lr = run.learning_rate();
    let mut grads = Gradients::new(&run.policy);
    let mut loss_sum = 0.0;
    for batch in examples.chunks(run.config.grpo.micro_batch) {
        let sequences: Vec<Sequence<'_>> = batch
            .iter()
            .map(|e| Sequence {
                prompt: &e.prompt,
                completion: &e.completion,
            })
            .collect();
        let mut batch_loss = None;
        let sft_loss = |log_probs: &Tensor, mask: &Tensor| -> Result<Tensor> {
            let loss = (|| (log_probs * mask)?.sum_all()?.neg()? / tokens as f64)()
                .map_err(compute("SFT loss"))?;
            batch_loss = Some(loss.clone());
            Ok(loss)
        };
        completion_backward(
            &run.policy.model,
            &sequences,
            run.policy.pad(),
            1.0,
            run.config.grpo.activation_checkpointing,
            sft_loss,
            |store| grads.add(&run.policy, store),
        )?;
        let loss = batch_loss.expect("the loss was computed");
        loss_sum += f64::from(loss.to_scalar::<f32>().map_err(compute("loss"))?);
    }
    let grad_norm = run.apply(grads, lr)?;
    let seconds = started.elapsed().as_secs_f64();
    let metrics = SftStepMetrics {
        step: run.step + 1,
        lr,
        loss: loss_sum,
        texts: examples.len(),
        tokens,
        grad_norm,
        timing: SftTiming {
            step_s: seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
        },
    };
    // Numbers always serialise.
    Ok(Some(
        serde_json::to_value(metrics).expect("step metrics serialise"),
    ))
}

/// The next `batch_size` triples' texts (the last `sft.max_tokens` tokens of each, and
/// the end of sequence), every token but the first trained on.
fn text_examples(run: &mut Run) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    let mut unusable = 0;
    while examples.len() < run.config.sft.batch_size {
        let Some(triple) = run.stream.next_triple()? else {
            break;
        };
        let mut ids = run
            .policy
            .tokenizer
            .encode(&format!("{}{}", triple.context, triple.segment))?;
        ids.extend(run.policy.eos);
        let keep = run.config.sft.max_tokens.max(2);
        if ids.len() > keep {
            ids.drain(..ids.len() - keep);
        }
        if ids.len() >= 2 {
            let completion = ids.split_off(1);
            examples.push(Example {
                prompt: ids,
                completion,
            });
            unusable = 0;
        } else {
            unusable += 1;
            if unusable >= MAX_UNUSABLE {
                return Err(Error::Config(format!(
                    "{MAX_UNUSABLE} triples in a row have no text to train on (empty context \
                     and segment)"
                )));
            }
        }
    }
    Ok(examples)
}

/// `batch_size` task prompts drawn as GRPO draws them, each with its reference answer.
fn answer_examples(run: &mut Run, tasks: &[TaskSpec]) -> Result<Vec<Example>> {
    let mut choose = SplitMix64::new(mix(run.config.seed, run.step, 0, 3));
    let drawn = draw(run, tasks, run.config.sft.batch_size, &mut choose)?;
    let budget = run.config.sampling.max_tokens;
    drawn
        .into_iter()
        .map(|d| {
            let text = formatted_answer(&run.policy, tasks[d.task].kind, &d.instance, budget)?;
            let mut completion = run.policy.tokenizer.encode(&text)?;
            completion.extend(run.policy.end_of_turn()?);
            Ok(Example {
                prompt: d.prompt,
                completion,
            })
        })
        .collect()
}

/// The reference answer of `instance` in `kind`'s format: the next word in `\boxed{}`,
/// or the longest start of the reference that ends at a word and keeps the tagged
/// answer within `budget` tokens.
fn formatted_answer(
    policy: &Policy,
    kind: TaskKind,
    instance: &Instance,
    budget: usize,
) -> Result<String> {
    let reference = instance.reference.trim_start();
    if kind == TaskKind::NextToken {
        return Ok(format!("\\boxed{{{}}}", first_word(reference)));
    }
    let tags = policy
        .tokenizer
        .encode(&format!("{PREDICTION_START}{PREDICTION_END}"))?
        .len()
        + 1;
    let (ids, offsets) = policy.tokenizer.encode_with_offsets(reference)?;
    let room = budget.saturating_sub(tags).max(1);
    let prefix = if ids.len() <= room {
        reference
    } else {
        let cut = offsets[room].0;
        let at_word = reference[..cut].rfind(char::is_whitespace).unwrap_or(cut);
        reference[..at_word].trim_end()
    };
    Ok(format!("{PREDICTION_START}{prefix}{PREDICTION_END}"))
}

/// The first word of `text`: its leading run of letters and digits, or its first
/// character when it starts with another one.
fn first_word(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|&(_, c)| !c.is_alphanumeric())
        .map_or(text.len(), |(i, _)| i);
    match end {
        0 => text.chars().next().map_or("", |c| &text[..c.len_utf8()]),
        end => &text[..end],
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
    /// The tasks whose answer formats it teaches, as `[[cold_start.task]]` entries
    /// (none: GRPO's `[[task]]` list). A model evaluated on tasks GRPO does not train
    /// must still have learned their formats.
    #[serde(rename = "task", skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskConfig>,
    /// Tokens an answer may take, tags included (none: `sampling.max_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        Self {
            steps: 0,
            lr: 1e-5,
            tasks: Vec::new(),
            max_tokens: None,
        }
    }
}

impl ColdStartConfig {
    pub(crate) fn is_off(&self) -> bool {
        self.steps == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_token_answer_is_the_first_word() {
        assert_eq!(first_word("équations. More"), "équations");
        assert_eq!(first_word("(see below)"), "(");
        assert_eq!(first_word("42 is"), "42");
        assert_eq!(first_word(""), "");
    }
}
