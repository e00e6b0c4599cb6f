//! Proxy-entropy tagging, the model-free part: settings, which tokens of a
//! `context + segment` text are the segment's, the per-segment summary (mean, first
//! token) of their entropies, and the difficulty label (RPT's thresholds 0.5 / 1.0 /
//! 1.5 nats: easy / medium / hard; below the first, trivial). The pipeline runs the
//! model and fills in the entropies.
//!
//! A token belongs to the segment when it ends after the context does — so a token
//! that straddles the cut (the space ending the context glued to the segment's first
//! word) is the segment's, with byte offset 0.

use std::ops::{AddAssign, Range};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How model weights are held during tagging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Weights {
    /// Dequantized to f32: exact weights, fastest on CPU (matrix-matrix products).
    #[default]
    F32,
    /// Converted to bf16: half the memory, for GPUs.
    Bf16,
    /// GGUF blocks kept quantized: least memory.
    Quantized,
}

/// The entropy stage's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct EntropyConfig {
    /// The proxy model: a .gguf file, or a safetensors checkpoint (file or directory)
    /// with config.json and tokenizer.json beside it.
    #[arg(long, value_name = "PATH", required = true)]
    pub model: PathBuf,
    /// A model to use instead when `--model` does not exist (e.g. before the real
    /// model is fetched).
    #[arg(long, value_name = "PATH")]
    pub fallback_model: Option<PathBuf>,
    /// How to hold the weights.
    #[arg(long, value_enum, default_value_t = Weights::F32)]
    pub weights: Weights,
    /// Entropy over this many most likely next tokens, renormalised (RPT: 16).
    #[arg(long, default_value_t = 16)]
    pub top_k: usize,
    /// Lower bounds (nats) of easy, medium and hard, for a segment's mean entropy.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 1.0, 1.5])]
    pub thresholds: Vec<f32>,
    /// Drop triples whose segment's mean entropy is below this (nats).
    #[arg(long)]
    pub min_entropy: Option<f32>,
    /// Tokens (padding included) per forward pass; bounds memory.
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
    /// Where the model runs: `cpu`, or `cuda:N` in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Model tokens per work unit, estimated from the triples' token counts (a
    /// document's triples share a pass while their contexts grow): what ranks split and
    /// an interruption loses. This stage plans units by it instead of `--unit-bytes`.
    #[arg(long, default_value_t = DEFAULT_UNIT_TOKENS)]
    pub unit_tokens: u64,
}

/// Estimates, triple by triple, the model tokens tagging costs, from the triples'
/// token counts: a triple whose context grew from the previous triple of its document
/// rides that triple's forward pass and costs its segment; any other starts a pass over
/// its context and segment. Feed triples in table order.
#[derive(Debug, Default)]
pub struct PassCost {
    previous: Option<(String, u32)>,
}

impl PassCost {
    /// The estimated cost of the next triple.
    pub fn cost(&mut self, doc_id: &str, context_tokens: u32, segment_tokens: u32) -> u64 {
        let extends = matches!(&self.previous,
            Some((doc, context)) if doc == doc_id && context_tokens > *context);
        self.previous = Some((doc_id.to_string(), context_tokens));
        u64::from(segment_tokens)
            + if extends {
                0
            } else {
                u64::from(context_tokens)
            }
    }
}

/// Default of [`EntropyConfig::unit_tokens`]: about 8 minutes of SmolLM2-135M on two
/// CPU cores.
pub const DEFAULT_UNIT_TOKENS: u64 = 100_000;

impl Default for EntropyConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::new(),
            fallback_model: None,
            weights: Weights::F32,
            top_k: 16,
            thresholds: vec![0.5, 1.0, 1.5],
            min_entropy: None,
            batch_tokens: 4096,
            device: "cpu".into(),
            unit_tokens: DEFAULT_UNIT_TOKENS,
        }
    }
}

impl EntropyConfig {
    /// A message naming the setting that makes no sense, if one does not.
    pub fn problem(&self) -> Option<String> {
        let ascending = self.thresholds.windows(2).all(|w| w[0] <= w[1]);
        if self.thresholds.len() != 3 || !ascending {
            return Some(format!(
                "--thresholds needs three ascending numbers (easy,medium,hard), got {:?}",
                self.thresholds
            ));
        }
        if self.top_k == 0 {
            return Some("--top-k must be at least 1".into());
        }
        if self.batch_tokens == 0 {
            return Some("--batch-tokens must be at least 1".into());
        }
        if self.unit_tokens == 0 {
            return Some("--unit-tokens must be at least 1".into());
        }
        None
    }

    /// The label of a segment with mean entropy `mean`.
    pub fn difficulty(&self, mean: f32) -> &'static str {
        match self.thresholds.iter().filter(|&&t| mean >= t).count() {
            0 => "trivial",
            1 => "easy",
            2 => "medium",
            _ => "hard",
        }
    }
}

/// The segment's tokens among a text's: the index range of tokens ending after
/// `context_len` bytes, and each one's byte offset in the segment (0 for a token
/// starting inside the context). `offsets` are the tokens' byte ranges in the text.
pub fn segment_tokens(offsets: &[(usize, usize)], context_len: usize) -> (Range<usize>, Vec<u32>) {
    let first = offsets.partition_point(|&(_, end)| end <= context_len);
    let starts = offsets[first..]
        .iter()
        .map(|&(start, _)| start.saturating_sub(context_len) as u32)
        .collect();
    (first..offsets.len(), starts)
}

/// A tagged segment: its tokens' entropies and offsets, their summary and label.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    /// Entropy (nats) of the prediction of each segment token.
    pub token_entropy: Vec<f32>,
    /// Byte offset of each segment token in the segment.
    pub token_offsets: Vec<u32>,
    /// Mean of `token_entropy` (0 for no tokens).
    pub mean: f32,
    /// Entropy of the first token (0 for no tokens).
    pub first: f32,
    /// easy / medium / hard / trivial, from `mean`.
    pub difficulty: &'static str,
}

impl Tagged {
    /// Summarises a segment's token entropies under `config`.
    pub fn new(config: &EntropyConfig, token_entropy: Vec<f32>, token_offsets: Vec<u32>) -> Self {
        let mean = if token_entropy.is_empty() {
            0.0
        } else {
            let total: f64 = token_entropy.iter().map(|&e| f64::from(e)).sum();
            (total / token_entropy.len() as f64) as f32
        };
        Self {
            first: token_entropy.first().copied().unwrap_or(0.0),
            difficulty: config.difficulty(mean),
            mean,
            token_entropy,
            token_offsets,
        }
    }

    /// Whether `config.min_entropy` keeps it.
    pub fn kept(&self, config: &EntropyConfig) -> bool {
        config.min_entropy.is_none_or(|min| self.mean >= min)
    }
}

/// What tagging counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EntropyCounters {
    /// Triples read.
    pub triples: u64,
    /// Triples dropped by `--min-entropy`.
    pub dropped: u64,
    /// Segment tokens tagged.
    pub segment_tokens: u64,
    /// Tokens run through the model (shared prefixes run once).
    pub forward_tokens: u64,
    /// Tagged triples by label.
    pub trivial: u64,
    /// …
    pub easy: u64,
    /// …
    pub medium: u64,
    /// …
    pub hard: u64,
}

impl EntropyCounters {
    /// Counts one tagged triple.
    pub fn count(&mut self, tagged: &Tagged, kept: bool) {
        self.triples += 1;
        self.dropped += u64::from(!kept);
        self.segment_tokens += tagged.token_entropy.len() as u64;
        match tagged.difficulty {
            "trivial" => self.trivial += 1,
            "easy" => self.easy += 1,
            "medium" => self.medium += 1,
            _ => self.hard += 1,
        }
    }
}

impl AddAssign for EntropyCounters {
    fn add_assign(&mut self, other: Self) {
        self.triples += other.triples;
        self.dropped += other.dropped;
        self.segment_tokens += other.segment_tokens;
        self.forward_tokens += other.forward_tokens;
        self.trivial += other.trivial;
        self.easy += other.easy;
        self.medium += other.medium;
        self.hard += other.hard;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_thresholds() {
        let config = EntropyConfig::default();
        let labels: Vec<_> = [0.0, 0.49, 0.5, 0.99, 1.0, 1.49, 1.5, 4.0]
            .iter()
            .map(|&m| config.difficulty(m))
            .collect();
        assert_eq!(
            labels,
            [
                "trivial", "trivial", "easy", "easy", "medium", "medium", "hard", "hard"
            ]
        );
    }

    #[test]
    fn a_token_straddling_the_cut_is_the_segments_at_offset_zero() {
        // "It is. " + "So it" tokenised as "It", " is", ".", " So", " it".
        let offsets = [(0, 2), (2, 5), (5, 6), (6, 9), (9, 12)];
        let (range, starts) = segment_tokens(&offsets, 7);
        assert_eq!(range, 3..5);
        assert_eq!(starts, [0, 2]);
        let (range, starts) = segment_tokens(&offsets, 6);
        assert_eq!((range, starts), (3..5, vec![0, 3]));
    }

    #[test]
    fn summary_min_entropy_and_bad_settings() {
        let config = EntropyConfig {
            min_entropy: Some(1.0),
            ..EntropyConfig::default()
        };
        let tagged = Tagged::new(&config, vec![2.0, 0.5, 0.2], vec![0, 3, 5]);
        assert_eq!((tagged.first, tagged.difficulty), (2.0, "easy"));
        assert!((tagged.mean - 0.9).abs() < 1e-6);
        assert!(!tagged.kept(&config));
        let bad = EntropyConfig {
            thresholds: vec![1.0, 0.5, 1.5],
            ..EntropyConfig::default()
        };
        assert!(bad.problem().unwrap().contains("ascending"));
        assert!(EntropyConfig::default().problem().is_none());
    }

    #[test]
    fn a_growing_context_rides_the_previous_pass() {
        let mut cost = PassCost::default();
        assert_eq!(cost.cost("a", 0, 10), 10);
        assert_eq!(cost.cost("a", 10, 7), 7, "context grew: same pass");
        assert_eq!(cost.cost("a", 17, 5), 5);
        assert_eq!(cost.cost("a", 17, 6), 23, "the window slid: a new pass");
        assert_eq!(cost.cost("b", 30, 4), 34, "another document");
    }
}
