//! Rollout throughput: SmolLM2-135M-Instruct (f32 weights, as the trainer holds them)
//! samples a GRPO step's completions — 8 prompts of ~100 tokens from the embedded
//! sample, each 8 times, 32 tokens at temperature 1 — and prints generated tokens per
//! second, with the weights in f32 and in bf16, and a digest of the generated ids (two
//! versions of the rollout that sample the same tokens print the same digest).
//!
//!     python3 data-samples/fetch.py models
//!     cargo bench -p rlpt-lm --bench generate
//!
//! `RLPT_BENCH_TOKENS` (default 32) and `RLPT_BENCH_PROMPTS` (default 8) change the shape.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use rlpt_lm::{Model, SamplingConfig, Tokenizer, WeightFormat, generate};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let model_path = root.join("data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model_path.exists() {
        eprintln!(
            "{} is missing: python3 data-samples/fetch.py models",
            model_path.display()
        );
        std::process::exit(1);
    }
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let max_tokens = setting("RLPT_BENCH_TOKENS", 32);
    let prompt_count = setting("RLPT_BENCH_PROMPTS", 8);
    let tokenizer = Tokenizer::from_file(&model_path).unwrap();
    let prompts = prompts(root, &tokenizer, prompt_count);
    let group: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), 8))
        .collect();
    let config = SamplingConfig {
        temperature: 1.0,
        max_tokens,
        seed: 7,
        ..SamplingConfig::default()
    };
    let pad = tokenizer.eos().unwrap_or(0);
    for format in [WeightFormat::F32, WeightFormat::Bf16] {
        let model = Model::load(&model_path, format, &Device::Cpu).unwrap();
        // One short warm-up call so page faults of the first batch are not timed.
        generate::generate(&model, &tokenizer, &group[..1], &config, pad).unwrap();
        let started = Instant::now();
        let generations = generate::generate(&model, &tokenizer, &group, &config, pad).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let tokens: usize = generations.iter().map(|g| g.tokens.len()).sum();
        // A digest of every generated id, to compare two versions' outputs.
        let ids: Vec<u8> = generations
            .iter()
            .flat_map(|g| g.tokens.iter().flat_map(|t| t.to_le_bytes()))
            .collect();
        println!(
            "{format:?}: {} sequences ({} prompts of {}-{} tokens), {tokens} tokens in {seconds:.2} s: {:.1} tokens/s, ids xxh3 {:016x}",
            group.len(),
            prompts.len(),
            prompts.iter().map(Vec::len).min().unwrap(),
            prompts.iter().map(Vec::len).max().unwrap(),
            tokens as f64 / seconds,
            xxhash_rust::xxh3::xxh3_64(&ids)
        );
    }
}

/// `count` prompts of 90-110 tokens: the sample's first English leads, cut.
fn prompts(root: &Path, tokenizer: &Tokenizer, count: usize) -> Vec<Vec<u32>> {
    let sample =
        std::fs::read_to_string(root.join("data-samples/wiki-stem/stem-en.jsonl")).unwrap();
    sample
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|doc| doc["text"].as_str().map(|t| tokenizer.encode(t).unwrap()))
        .filter(|ids| ids.len() >= 110)
        .enumerate()
        .map(|(i, ids)| ids[..90 + (i * 7) % 21].to_vec())
        .take(count)
        .collect()
}
