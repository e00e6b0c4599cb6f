//! Batched sampling from a [`Model`]: prompts left-padded into one batch and prefilled
//! together, then one token per step through the [`KvCache`]; temperature, top-k and
//! top-p sampling; stop strings, an end-of-sequence token and a token limit; a finished
//! sequence leaves the batch (its cache rows are dropped).
//!
//! Each sequence draws from its own random stream, seeded from the configured seed and
//! its index among the prompts, so what a prompt generates does not depend on which
//! prompts share its batch or when they finish. The stream is SplitMix64: small, and
//! the same on every platform and in every version.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::{KvCache, Mode, Model};

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the most likely tokens whose probabilities first reach `top_p` (1: all).
    pub top_p: f32,
    /// Tokens to generate at most per sequence.
    pub max_tokens: usize,
    /// Text that ends a sequence (excluded from its output).
    pub stop: Vec<String>,
    /// Seed of the sequences' random streams.
    pub seed: u64,
    /// Memory a batch of sequences may take (attention scores of its prefill, its KV
    /// cache, its last logits, as estimated by [`batch_bytes`]): prompts are run in as
    /// many batches as that needs, shortest first; one prompt always runs.
    pub max_batch_bytes: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_tokens: 256,
            stop: Vec::new(),
            seed: 0,
            max_batch_bytes: 1 << 30,
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// It produced the end-of-sequence token (not included in its tokens).
    Eos,
    /// Its text reached this stop string (cut from its text).
    Stop(String),
    /// It reached `max_tokens`, or the model's last position.
    Length,
}

/// One prompt's generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated token ids (through the stop string's token, without eos).
    pub tokens: Vec<u32>,
    /// Their text, cut before the stop string.
    pub text: String,
    /// Why it ended.
    pub finish: Finish,
}

/// What generation needs from a tokenizer: ids → text, and the end-of-sequence id.
pub trait Detokenizer {
    /// The text of `ids`.
    fn decode(&self, ids: &[u32]) -> Result<String>;
    /// The end-of-sequence token, if any.
    fn eos(&self) -> Option<u32>;
}

impl Detokenizer for crate::Tokenizer {
    fn decode(&self, ids: &[u32]) -> Result<String> {
        crate::Tokenizer::decode(self, ids)
    }

    fn eos(&self) -> Option<u32> {
        crate::Tokenizer::eos(self)
    }
}

/// A sequence being generated.
struct Running {
    prompt: usize,
    tokens: Vec<u32>,
    rng: SplitMix64,
}

/// Generates a continuation of every prompt (token ids, each non-empty), in batches
/// of prompts of similar length within `config.max_batch_bytes`. A sequence's output
/// does not depend on its batch.
pub fn generate(
    model: &Model,
    detokenizer: &dyn Detokenizer,
    prompts: &[Vec<u32>],
    config: &SamplingConfig,
    pad_id: u32,
) -> Result<Vec<Generation>> {
    if let Some(empty) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::Generation(format!("prompt {empty} has no tokens")));
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].len());
    let mut done: Vec<Option<Generation>> = vec![None; prompts.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && batch_bytes(
                model,
                end + 1 - start,
                prompts[order[end]].len(),
                config.max_tokens,
            ) <= config.max_batch_bytes
        {
            end += 1;
        }
        let batch = &order[start..end];
        let generations = generate_batch(model, detokenizer, prompts, batch, config, pad_id)?;
        for (&prompt, generation) in batch.iter().zip(generations) {
            done[prompt] = Some(generation);
        }
        start = end;
    }
    Ok(done
        .into_iter()
        .map(|g| g.expect("every prompt is in a batch"))
        .collect())
}

/// Bytes a batch of `rows` prompts of up to `longest` tokens needs to generate
/// `max_tokens` more: the f32 attention scores of one layer's prefill (three live at
/// once: scores, masked, softmax), the whole KV cache, and the last logits.
pub fn batch_bytes(model: &Model, rows: usize, longest: usize, max_tokens: usize) -> usize {
    let config = model.config();
    let scores = 3 * config.num_heads * longest * longest;
    let cache =
        2 * config.num_layers * config.num_kv_heads * config.head_dim * (longest + max_tokens);
    rows.saturating_mul(scores + cache + config.vocab_size)
        .saturating_mul(4)
}

/// Generates continuations of the prompts at `batch` (indices into `prompts`) in one
/// batch; each sequence's random stream is seeded by its index among all `prompts`.
fn generate_batch(
    model: &Model,
    detokenizer: &dyn Detokenizer,
    all: &[Vec<u32>],
    batch: &[usize],
    config: &SamplingConfig,
    pad_id: u32,
) -> Result<Vec<Generation>> {
    let prompts: Vec<&[u32]> = batch.iter().map(|&i| all[i].as_slice()).collect();
    let mut done: Vec<Option<Generation>> = vec![None; prompts.len()];
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let (distinct, source) = distinct_rows(&prompts);
    let ids: Vec<u32> = distinct
        .iter()
        .flat_map(|&row| std::iter::repeat_n(pad_id, pads[row]).chain(prompts[row].iter().copied()))
        .collect();
    let mut cache = KvCache::new(model, distinct.iter().map(|&row| pads[row]).collect());
    let mut running: Vec<Running> = batch
        .iter()
        .enumerate()
        .map(|(row, &prompt)| Running {
            prompt: row,
            tokens: Vec::new(),
            rng: SplitMix64::new(config.seed ^ (prompt as u64).wrapping_mul(0x9E37_79B9)),
        })
        .collect();
    // A prompt repeated in the batch (a GRPO group) is prefilled once; its cache rows
    // are then copied to every sequence that continues it.
    let input = tensor(ids, distinct.len(), longest, model)?;
    let prefilled = last_logits(model, &input, &mut cache)?;
    if distinct.len() < prompts.len() {
        cache.retain(&source)?;
    }
    let mut logits: Vec<Vec<f32>> = source.iter().map(|&d| prefilled[d].clone()).collect();
    loop {
        let mut keep = Vec::with_capacity(running.len());
        for (row, sequence) in running.iter_mut().enumerate() {
            let token = sample(&logits[row], config, &mut sequence.rng);
            if let Some(generation) = finished(sequence, token, config, detokenizer, &cache, model)?
            {
                done[sequence.prompt] = Some(generation);
            } else {
                keep.push(row);
            }
        }
        if keep.len() < running.len() {
            cache.retain(&keep)?;
            let mut row = 0;
            running.retain(|_| {
                let kept = keep.binary_search(&row).is_ok();
                row += 1;
                kept
            });
        }
        if running.is_empty() {
            break;
        }
        let next: Vec<u32> = running.iter().map(|s| *s.tokens.last().unwrap()).collect();
        let input = tensor(next, running.len(), 1, model)?;
        logits = last_logits(model, &input, &mut cache)?;
    }
    Ok(done
        .into_iter()
        .map(|g| g.expect("every prompt finishes"))
        .collect())
}

/// Records `token` for `sequence`; its generation if that ends it.
fn finished(
    sequence: &mut Running,
    token: u32,
    config: &SamplingConfig,
    detokenizer: &dyn Detokenizer,
    cache: &KvCache,
    model: &Model,
) -> Result<Option<Generation>> {
    if Some(token) == detokenizer.eos() {
        let text = detokenizer.decode(&sequence.tokens)?;
        return Ok(Some(generation(sequence, text, Finish::Eos)));
    }
    sequence.tokens.push(token);
    let text = detokenizer.decode(&sequence.tokens)?;
    let stop = config
        .stop
        .iter()
        .filter_map(|stop| text.find(stop.as_str()).map(|at| (at, stop)))
        .min();
    if let Some((at, stop)) = stop {
        return Ok(Some(generation(
            sequence,
            text[..at].to_string(),
            Finish::Stop(stop.clone()),
        )));
    }
    let out_of_room = cache.len() + 1 >= model.config().max_positions;
    if sequence.tokens.len() >= config.max_tokens || out_of_room {
        return Ok(Some(generation(sequence, text, Finish::Length)));
    }
    Ok(None)
}

fn generation(sequence: &mut Running, text: String, finish: Finish) -> Generation {
    Generation {
        tokens: std::mem::take(&mut sequence.tokens),
        text,
        finish,
    }
}

/// The first row of each distinct prompt (in order), and for every row the index of
/// its prompt among those: rows that repeat a prompt (a GRPO group) share one.
pub fn distinct_rows(prompts: &[&[u32]]) -> (Vec<usize>, Vec<usize>) {
    let mut first_rows: Vec<usize> = Vec::new();
    let mut seen: std::collections::HashMap<&[u32], usize> = std::collections::HashMap::new();
    let source = prompts
        .iter()
        .enumerate()
        .map(|(row, &prompt)| {
            *seen.entry(prompt).or_insert_with(|| {
                first_rows.push(row);
                first_rows.len() - 1
            })
        })
        .collect();
    (first_rows, source)
}

fn tensor(ids: Vec<u32>, rows: usize, len: usize, model: &Model) -> Result<Tensor> {
    Tensor::from_vec(ids, (rows, len), model.device()).map_err(|source| Error::Compute {
        context: "generation input".into(),
        source,
    })
}

/// Logits (f32) at the last position of each row after running `input`.
fn last_logits(model: &Model, input: &Tensor, cache: &mut KvCache) -> Result<Vec<Vec<f32>>> {
    let hidden = model.forward(input, cache, Mode::Inference)?;
    let last = hidden
        .narrow(1, hidden.dim(1).map_err(compute)? - 1, 1)
        .and_then(|h| h.squeeze(1))
        .map_err(compute)?;
    let rows = model.logits(&last)?.to_vec2::<f32>().map_err(compute)?;
    // A NaN means a broken model or checkpoint, not a likely token.
    if rows.iter().flatten().any(|v| v.is_nan()) {
        return Err(Error::Generation("the model produced NaN logits".into()));
    }
    Ok(rows)
}

fn compute(source: candle_core::Error) -> Error {
    Error::Compute {
        context: "generation".into(),
        source,
    }
}

/// A token drawn from `logits` under `config`.
pub fn sample(logits: &[f32], config: &SamplingConfig, rng: &mut SplitMix64) -> u32 {
    let argmax = |values: &[f32]| {
        (0..values.len())
            .max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
            .unwrap_or(0) as u32
    };
    if config.temperature <= 0.0 {
        return argmax(logits);
    }
    if config.top_k == 0 && config.top_p >= 1.0 {
        return sample_all(logits, config.temperature, rng);
    }
    let mut candidates: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(id, &l)| (id as u32, f64::from(l / config.temperature)))
        .collect();
    // Most likely first, ties by id, so the order never depends on the sort.
    let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if config.top_k > 0 && config.top_k < candidates.len() {
        candidates.select_nth_unstable_by(config.top_k - 1, order);
        candidates.truncate(config.top_k);
    }
    candidates.sort_by(order);
    let max = candidates[0].1;
    let mut total = 0.0;
    for candidate in &mut candidates {
        candidate.1 = (candidate.1 - max).exp();
        total += candidate.1;
    }
    let mut kept = 0;
    let mut mass = 0.0;
    for candidate in &candidates {
        mass += candidate.1 / total;
        kept += 1;
        if mass >= f64::from(config.top_p) {
            break;
        }
    }
    candidates.truncate(kept);
    let total: f64 = candidates.iter().map(|c| c.1).sum();
    let mut target = rng.next_f64() * total;
    for &(id, weight) in &candidates {
        if target < weight {
            return id;
        }
        target -= weight;
    }
    candidates.last().map_or(0, |c| c.0)
}

/// A token drawn from the whole softmax of `logits / temperature`, walking ids in
/// order (no sort needed when nothing is truncated).
fn sample_all(logits: &[f32], temperature: f32, rng: &mut SplitMix64) -> u32 {
    let scale = f64::from(temperature);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weight = |l: f32| (f64::from(l - max) / scale).exp();
    let total: f64 = logits.iter().map(|&l| weight(l)).sum();
    let mut target = rng.next_f64() * total;
    for (id, &l) in logits.iter().enumerate() {
        let w = weight(l);
        if target < w {
            return id as u32;
        }
        target -= w;
    }
    (0..logits.len())
        .rev()
        .find(|&id| weight(logits[id]) > 0.0)
        .unwrap_or(0) as u32
}

/// SplitMix64: a 64-bit generator whose stream depends only on its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The state, from which [`SplitMix64::new`] continues the same stream.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequency_of_one(config: &SamplingConfig) -> f64 {
        // p(1) = 3/4 at temperature 1: softmax of [0, ln 3].
        let logits = [0.0f32, 3f32.ln(), f32::NEG_INFINITY];
        let mut rng = SplitMix64::new(11);
        let draws = 20_000;
        let ones = (0..draws)
            .filter(|_| sample(&logits, config, &mut rng) == 1)
            .count();
        ones as f64 / draws as f64
    }

    #[test]
    fn untruncated_and_truncated_sampling_follow_the_softmax() {
        let full = SamplingConfig::default();
        let within = |f: f64| (0.73..0.77).contains(&f);
        assert!(
            within(frequency_of_one(&full)),
            "{}",
            frequency_of_one(&full)
        );
        let top_2 = SamplingConfig {
            top_k: 2,
            ..full.clone()
        };
        assert!(
            within(frequency_of_one(&top_2)),
            "{}",
            frequency_of_one(&top_2)
        );
        let top_1 = SamplingConfig {
            top_k: 1,
            ..full.clone()
        };
        assert_eq!(frequency_of_one(&top_1), 1.0);
        let nucleus = SamplingConfig { top_p: 0.7, ..full };
        assert_eq!(
            frequency_of_one(&nucleus),
            1.0,
            "0.75 of the mass is the top token"
        );
    }
}
