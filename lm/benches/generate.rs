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

mod common;

use std::time::Instant;

use candle_core::Device;
use rlpt_lm::{Model, SamplingConfig, Tokenizer, WeightFormat, generate};

fn main() {
    // As the `rlpt` binary: this thread is one of rayon's, so each matrix product starts
    // on it instead of waking a sleeping worker and waiting for the result.
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .unwrap();
    let model_path = common::smollm2();
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let max_tokens = setting("RLPT_BENCH_TOKENS", 32);
    let prompt_count = setting("RLPT_BENCH_PROMPTS", 8);
    let tokenizer = Tokenizer::from_file(&model_path).unwrap();
    let prompts = common::prompts(&tokenizer, prompt_count);
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
