//! Batched sampling from a [`Model`]: prompts left-padded into one batch and prefilled
//! together (a prompt repeated in the batch, once), then one token per step through a
//! [`KvCache`] reserved for the whole generation and written in place; temperature,
//! top-k and top-p sampling; stop strings, an end-of-sequence token and a token limit;
//! finished sequences leave the batch in bulk (the cache is compacted when a quarter
//! of its rows are done, not once per finished sequence). Greedy decoding and
//! untruncated sampling choose tokens on the model's device (an argmax; a two-level
//! inverse-CDF walk over block sums), so a step moves a few hundred numbers per row
//! to the host, not the vocabulary's logits; top-k / top-p sample on the host.
//!
//! Each sequence draws from its own random stream, seeded from the configured seed and
//! its index among the prompts, so what a prompt generates does not depend on which
//! prompts share its batch or when they finish. The stream is SplitMix64: small, and
//! the same on every platform and in every version.

use candle_core::{D, Tensor};

pub use rlpt_rng::SplitMix64;

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
    /// Their text so far, kept up to date when stop strings are watched for.
    text: IncrementalText,
    rng: SplitMix64,
    /// Whether it has ended (its row stays in the batch until the next compaction).
    ended: bool,
}

/// The text of a growing token sequence, decoded a few tokens at a time (as text
/// generation servers do): a new token's text is the decoding of a short window
/// ending at it minus the decoding of the window without it, held back while it ends
/// in an incomplete character. A step decodes a few tokens, not the whole sequence.
#[derive(Default)]
struct IncrementalText {
    text: String,
    /// Where the window starts.
    prefix: usize,
    /// Tokens whose text is in `text`.
    read: usize,
}

impl IncrementalText {
    /// Brings the text up to `tokens` (the whole sequence so far).
    fn advance(&mut self, tokens: &[u32], detokenizer: &dyn Detokenizer) -> Result<()> {
        let before = detokenizer.decode(&tokens[self.prefix..self.read])?;
        let after = detokenizer.decode(&tokens[self.prefix..])?;
        if after.ends_with(char::REPLACEMENT_CHARACTER) || after.len() <= before.len() {
            return Ok(());
        }
        match after.strip_prefix(before.as_str()) {
            Some(added) => self.text.push_str(added),
            // A decoder that rewrote the window's start: decode everything once.
            None => self.text = detokenizer.decode(tokens)?,
        }
        self.prefix = self.read;
        self.read = tokens.len();
        Ok(())
    }
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
///
/// The cache is reserved for the longest prompt plus `max_tokens`, so each step
/// writes its keys in place. A sequence that ends keeps its row (fed padding, its
/// logits not computed) until a quarter of the rows have ended; then the batch is
/// compacted, so the cache is copied a few times per batch, not once per ending.
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
    let mut cache = KvCache::with_capacity(
        model,
        distinct.iter().map(|&row| pads[row]).collect(),
        longest + config.max_tokens,
    );
    let mut running: Vec<Running> = batch
        .iter()
        .enumerate()
        .map(|(row, &prompt)| Running {
            prompt: row,
            tokens: Vec::new(),
            text: IncrementalText::default(),
            rng: SplitMix64::new(config.seed ^ (prompt as u64).wrapping_mul(0x9E37_79B9)),
            ended: false,
        })
        .collect();
    // A prompt repeated in the batch (a GRPO group) is prefilled once; its cache rows
    // are then copied to every sequence that continues it.
    let input = tensor(ids, distinct.len(), longest, model)?;
    let every_row: Vec<usize> = (0..distinct.len()).collect();
    let mut states = last_states(model, &input, &mut cache, &every_row)?;
    if distinct.len() < prompts.len() {
        cache.retain(&source)?;
        let source: Vec<u32> = source.iter().map(|&d| d as u32).collect();
        states = Tensor::new(source, model.device())
            .and_then(|index| states.index_select(&index, 0))
            .map_err(compute)?;
    }
    loop {
        let streams = running.iter_mut().filter(|s| !s.ended).map(|s| &mut s.rng);
        let tokens = next_tokens(model, &states, config, streams.collect())?;
        for (row, token) in live_rows(&running).into_iter().zip(tokens) {
            let sequence = &mut running[row];
            if let Some(generation) = finished(sequence, token, config, detokenizer, &cache, model)?
            {
                done[sequence.prompt] = Some(generation);
                sequence.ended = true;
            }
        }
        let ended = running.iter().filter(|s| s.ended).count();
        if ended == running.len() {
            break;
        }
        if 4 * ended >= running.len() {
            cache.retain(&live_rows(&running))?;
            running.retain(|s| !s.ended);
        }
        let next: Vec<u32> = running
            .iter()
            .map(|s| {
                if s.ended {
                    pad_id
                } else {
                    *s.tokens.last().unwrap()
                }
            })
            .collect();
        let input = tensor(next, running.len(), 1, model)?;
        states = last_states(model, &input, &mut cache, &live_rows(&running))?;
    }
    Ok(done
        .into_iter()
        .map(|g| g.expect("every prompt finishes"))
        .collect())
}

/// The rows of the sequences that have not ended.
fn live_rows(running: &[Running]) -> Vec<usize> {
    (0..running.len()).filter(|&r| !running[r].ended).collect()
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
    if let Some((text, stop)) = stopped(sequence, &config.stop, detokenizer)? {
        return Ok(Some(generation(sequence, text, Finish::Stop(stop))));
    }
    let out_of_room = cache.len() + 1 >= model.config().max_positions;
    if sequence.tokens.len() >= config.max_tokens || out_of_room {
        let text = detokenizer.decode(&sequence.tokens)?;
        return Ok(Some(generation(sequence, text, Finish::Length)));
    }
    Ok(None)
}

/// The text before the first stop string and that string, once the sequence's text
/// holds one. Each token, only the text it added (and the `longest stop - 1` bytes
/// before it) is searched; a hit is confirmed on the whole sequence's decoding, which
/// also gives the cut.
fn stopped(
    sequence: &mut Running,
    stops: &[String],
    detokenizer: &dyn Detokenizer,
) -> Result<Option<(String, String)>> {
    if stops.is_empty() {
        return Ok(None);
    }
    let seen = sequence.text.text.len();
    sequence.text.advance(&sequence.tokens, detokenizer)?;
    let longest = stops.iter().map(String::len).max().unwrap_or(0);
    let text = &sequence.text.text;
    let mut from = seen.saturating_sub(longest.saturating_sub(1));
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    if !stops
        .iter()
        .any(|stop| text[from..].contains(stop.as_str()))
    {
        return Ok(None);
    }
    let text = detokenizer.decode(&sequence.tokens)?;
    Ok(stops
        .iter()
        .filter_map(|stop| text.find(stop.as_str()).map(|at| (at, stop)))
        .min()
        .map(|(at, stop)| (text[..at].to_string(), stop.clone())))
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

/// Final hidden states at the last position of each of `rows` after running `input`.
fn last_states(
    model: &Model,
    input: &Tensor,
    cache: &mut KvCache,
    rows: &[usize],
) -> Result<Tensor> {
    let hidden = model.forward(input, cache, Mode::Inference)?;
    let last = hidden
        .narrow(1, hidden.dim(1).map_err(compute)? - 1, 1)
        .and_then(|h| h.squeeze(1)?.contiguous())
        .map_err(compute)?;
    if rows.len() == cache.rows() {
        return Ok(last);
    }
    let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    Tensor::new(index, model.device())
        .and_then(|index| last.index_select(&index, 0))
        .map_err(compute)
}

/// Vocabulary entries per block of [`sample_on_device`]'s two-level draw.
const SAMPLING_BLOCK: usize = 256;

/// The next token of each row of `states` (`[rows, hidden]`), each row drawing from
/// its own stream. Greedy decoding and untruncated sampling choose on the model's
/// device, so only a few numbers per row reach the host; top-k / top-p sampling
/// reads the row's logits on the host ([`sample`]).
fn next_tokens(
    model: &Model,
    states: &Tensor,
    config: &SamplingConfig,
    mut streams: Vec<&mut SplitMix64>,
) -> Result<Vec<u32>> {
    let logits = model.logits(states)?;
    if config.temperature <= 0.0 {
        return greedy_on_device(&logits);
    }
    if config.top_k == 0 && config.top_p >= 1.0 {
        return sample_on_device(&logits, config.temperature, &mut streams);
    }
    let rows = logits.to_vec2::<f32>().map_err(compute)?;
    if rows.iter().flatten().any(|v| v.is_nan()) {
        return Err(nan_logits());
    }
    Ok(rows
        .iter()
        .zip(streams)
        .map(|(row, rng)| sample(row, config, rng))
        .collect())
}

/// A NaN means a broken model or checkpoint, not a likely token.
fn nan_logits() -> Error {
    Error::Generation("the model produced NaN logits".into())
}

/// Each row's most likely token (the lowest id among ties, as [`sample`]), chosen on
/// the device; the host reads one id and one checksum per row.
fn greedy_on_device(logits: &Tensor) -> Result<Vec<u32>> {
    // A NaN anywhere in a row makes its sum NaN.
    let sums = logits
        .sum(D::Minus1)
        .and_then(|s| s.to_vec1::<f32>())
        .map_err(compute)?;
    if sums.iter().any(|s| s.is_nan()) {
        return Err(nan_logits());
    }
    logits
        .argmax(D::Minus1)
        .and_then(|ids| ids.to_vec1::<u32>())
        .map_err(compute)
}

/// Draws each row's token from softmax(logits / temperature) in two levels: the
/// device computes the weights exp((l − max) / T) and their sums over blocks of
/// [`SAMPLING_BLOCK`] ids; the host walks the block sums with the row's uniform draw
/// to a block, then that block's weights (fetched alone) to an id. The host reads
/// `vocab / 256 + 256` numbers per row instead of `vocab`. The same walk as [`sample`]
/// over the same draw, in f32 weights instead of f64: a different id only where the
/// draw falls within rounding of a boundary between two ids.
fn sample_on_device(
    logits: &Tensor,
    temperature: f32,
    streams: &mut [&mut SplitMix64],
) -> Result<Vec<u32>> {
    let (weights, block_sums) = block_weights(logits, temperature).map_err(compute)?;
    let mut chosen = Vec::with_capacity(block_sums.len());
    for (sums, rng) in block_sums.iter().zip(streams.iter_mut()) {
        if sums.iter().any(|s| s.is_nan()) {
            return Err(nan_logits());
        }
        let total: f64 = sums.iter().map(|&s| f64::from(s)).sum();
        chosen.push(walk(sums, rng.next_f64() * total));
    }
    let blocks = block_sums.first().map_or(0, Vec::len);
    let index: Vec<u32> = chosen
        .iter()
        .enumerate()
        .map(|(row, &(block, _))| (row * blocks + block) as u32)
        .collect();
    let picked = Tensor::new(index, logits.device())
        .and_then(|index| weights.index_select(&index, 0))
        .and_then(|picked| picked.to_vec2::<f32>())
        .map_err(compute)?;
    Ok(chosen
        .iter()
        .zip(&picked)
        .map(|(&(block, left), block_weights)| {
            (block * SAMPLING_BLOCK + walk(block_weights, left).0) as u32
        })
        .collect())
}

/// exp((logits − max) / temperature) as `[rows × blocks, SAMPLING_BLOCK]` (the last
/// block padded with zeros), and each row's block sums, read to the host.
fn block_weights(
    logits: &Tensor,
    temperature: f32,
) -> candle_core::Result<(Tensor, Vec<Vec<f32>>)> {
    let (rows, vocab) = logits.dims2()?;
    let blocks = vocab.div_ceil(SAMPLING_BLOCK);
    let max = logits.max_keepdim(D::Minus1)?;
    let weights = (logits.broadcast_sub(&max)? / f64::from(temperature))?
        .exp()?
        .pad_with_zeros(D::Minus1, 0, blocks * SAMPLING_BLOCK - vocab)?
        .reshape((rows * blocks, SAMPLING_BLOCK))?;
    let sums = weights.sum(D::Minus1)?.reshape((rows, blocks))?.to_vec2()?;
    Ok((weights, sums))
}

/// The entry of `weights` where a walk of `target` ends, and what is left of it there;
/// past the end (rounding), the last entry with weight, with all of the target left
/// (so a walk inside that block also ends at its last entry with weight, as
/// [`sample`]'s does).
fn walk(weights: &[f32], mut target: f64) -> (usize, f64) {
    for (i, &w) in weights.iter().enumerate() {
        let w = f64::from(w);
        if target < w {
            return (i, target);
        }
        target -= w;
    }
    let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    (last, f64::INFINITY)
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
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (f64::from(l - max) / scale).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut target = rng.next_f64() * total;
    for (id, &w) in weights.iter().enumerate() {
        if target < w {
            return id as u32;
        }
        target -= w;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level detokenizer: ids 0..256 are bytes, 256.. are two-byte pieces of
    /// "é" and "€" split across ids, decoded lossily like byte-level BPE.
    struct Bytes;

    impl Detokenizer for Bytes {
        fn decode(&self, ids: &[u32]) -> Result<String> {
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&id| match id {
                    0..256 => vec![id as u8],
                    256 => "é".as_bytes().to_vec(),
                    _ => "€".as_bytes()[..2].to_vec(),
                })
                .collect();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }

        fn eos(&self) -> Option<u32> {
            None
        }
    }

    /// Decoded a token at a time, the text is the whole sequence's decoding wherever
    /// that ends in a whole character, and a stop string split over tokens and
    /// characters is found at the token that completes it, cut where the whole
    /// decoding cuts it.
    #[test]
    fn incremental_text_and_stop_strings_match_decoding_the_whole_sequence() {
        let euro_tail = "€".as_bytes()[2] as u32;
        let ids: Vec<u32> = [b'a' as u32, 256, 257, euro_tail, b' ' as u32, 257]
            .into_iter()
            .chain([
                euro_tail,
                b'<' as u32,
                b'/' as u32,
                b'a' as u32,
                b'>' as u32,
                b'z' as u32,
            ])
            .collect();
        let mut text = IncrementalText::default();
        for end in 1..=ids.len() {
            text.advance(&ids[..end], &Bytes).unwrap();
            let whole = Bytes.decode(&ids[..end]).unwrap();
            if !whole.ends_with(char::REPLACEMENT_CHARACTER) {
                assert_eq!(text.text, whole, "after {end} tokens");
            }
        }
        let stops = vec!["€</a".to_string(), "zz".to_string()];
        let mut sequence = Running {
            prompt: 0,
            tokens: Vec::new(),
            text: IncrementalText::default(),
            rng: SplitMix64::new(0),
            ended: false,
        };
        let mut found = None;
        for (at, &id) in ids.iter().enumerate() {
            sequence.tokens.push(id);
            if let Some(hit) = stopped(&mut sequence, &stops, &Bytes).unwrap() {
                found = Some((at, hit));
                break;
            }
        }
        let (at, (text, stop)) = found.expect("the stop string is found");
        assert_eq!(at, 9, "found at the token that completes it");
        assert_eq!((text.as_str(), stop.as_str()), ("aé€ ", "€</a"));
    }

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

    /// Random logits `[rows, vocab]` (vocab not a multiple of the sampling block).
    fn random_logits(rows: usize, vocab: usize) -> Tensor {
        let mut rng = SplitMix64::new(5);
        let values: Vec<f32> = (0..rows * vocab)
            .map(|_| (rng.next_f64() * 12.0 - 6.0) as f32)
            .collect();
        Tensor::from_vec(values, (rows, vocab), &candle_core::Device::Cpu).unwrap()
    }

    /// Sampling on the device draws what the host's walk draws from the same streams
    /// (f32 weights instead of f64 may move a draw that lands within rounding of a
    /// boundary: none in these 12,000), and greedy takes the lowest id among ties.
    #[test]
    fn device_sampling_and_greedy_choose_the_hosts_tokens() {
        let (rows, vocab) = (4, 1000);
        let logits = random_logits(rows, vocab);
        let host_rows: Vec<Vec<f32>> = logits.to_vec2().unwrap();
        let config = SamplingConfig {
            temperature: 0.7,
            ..SamplingConfig::default()
        };
        let mut host_streams: Vec<SplitMix64> = (0..rows as u64).map(SplitMix64::new).collect();
        let mut device_streams = host_streams.clone();
        let mut differing = 0;
        for _ in 0..3000 {
            let host: Vec<u32> = host_rows
                .iter()
                .zip(&mut host_streams)
                .map(|(row, rng)| sample(row, &config, rng))
                .collect();
            let mut streams: Vec<&mut SplitMix64> = device_streams.iter_mut().collect();
            let device = sample_on_device(&logits, config.temperature, &mut streams).unwrap();
            differing += host.iter().zip(&device).filter(|(a, b)| a != b).count();
        }
        assert_eq!(differing, 0);

        let tied = Tensor::new(
            &[[1.0f32, 3.0, 3.0, 0.5], [2.0, 1.0, 2.0, 2.0]],
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert_eq!(greedy_on_device(&tied).unwrap(), [1, 0]);
        let broken = Tensor::new(&[[1.0f32, f32::NAN]], &candle_core::Device::Cpu).unwrap();
        let mut rng = SplitMix64::new(1);
        for result in [
            greedy_on_device(&broken),
            sample_on_device(&broken, 1.0, &mut [&mut rng]),
        ] {
            assert!(result.unwrap_err().to_string().contains("NaN"));
        }
    }
}
