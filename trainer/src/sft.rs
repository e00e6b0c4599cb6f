//! `rlpt sft`: next-token (cross-entropy) training on the triples' text — context and
//! segment, an exact slice of a document — with the trainer's optimizer, data stream,
//! metrics and checkpoints. It warms a model up before GRPO (RLPT's cold start), or
//! adapts a base model to the corpus.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rlpt_lm::Mode;
use serde_json::{Value, json};

use crate::config::TrainConfig;
use crate::error::{Result, compute};
use crate::policy::{Sequence, completion_log_probs};
use crate::run::{Gradients, Run, Summary};

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
    Run::start(config, "sft", optim, files, resume)?.drive(sft_step, on_step)
}

/// One step over the next `batch_size` texts; none when the data has run out.
fn sft_step(run: &mut Run) -> Result<Option<Value>> {
    let started = Instant::now();
    let mut texts = Vec::new();
    while texts.len() < run.config.sft.batch_size {
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
            texts.push(ids);
        }
    }
    if texts.is_empty() {
        return Ok(None);
    }
    let tokens: usize = texts.iter().map(|t| t.len() - 1).sum();
    let lr = run.learning_rate();
    let mut grads = Gradients::new(&run.policy);
    let mut loss_sum = 0.0;
    for batch in texts.chunks(run.config.grpo.micro_batch) {
        let sequences: Vec<Sequence<'_>> = batch
            .iter()
            .map(|ids| Sequence {
                prompt: &ids[..1],
                completion: &ids[1..],
            })
            .collect();
        let (log_probs, mask) = completion_log_probs(
            &run.policy.model,
            &sequences,
            run.policy.pad(),
            Mode::Differentiable,
        )?;
        let loss = (|| (log_probs * mask)?.sum_all()?.neg()? / tokens as f64)()
            .map_err(compute("SFT loss"))?;
        let store = loss.backward().map_err(compute("backward pass"))?;
        grads.add(&run.policy, &store)?;
        loss_sum += f64::from(loss.to_scalar::<f32>().map_err(compute("loss"))?);
    }
    let grad_norm = run.apply(grads, lr)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Some(json!({
        "step": run.step + 1,
        "lr": lr,
        "loss": loss_sum,
        "texts": texts.len(),
        "tokens": tokens,
        "grad_norm": grad_norm,
        "timing": {"step_s": seconds, "tokens_per_s": tokens as f64 / seconds.max(1e-9)},
    })))
}
