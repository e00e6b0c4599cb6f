//! The CPU against another device (a GPU) on SmolLM2-135M-Instruct, f32 weights: the
//! top-16 proxy entropy `rlpt entropy` tags, at every position of the sample's first
//! 24 English leads (up to 512 tokens each), and greedy generations of 32 tokens from
//! 8 prompts. Prints the largest entropy difference and how many generations are
//! identical, with each device's forward tokens/s; exits 1 when an entropy differs by
//! 0.01 nats or more or a generation differs. `bench/gpu.sh` runs it.
//!
//!     python3 data-samples/fetch.py models
//!     cargo bench -p rlpt-lm --features cuda --bench devices -- cuda:0
//!     cargo bench -p rlpt-lm --bench devices -- cpu     # the CPU against itself

mod common;

use std::time::Instant;

use candle_core::{Device, Tensor};
use rlpt_lm::{KvCache, Mode, Model, SamplingConfig, Tokenizer, WeightFormat, generate};

/// Entropies further apart than this fail the check.
const TOLERANCE_NATS: f32 = 0.01;

fn main() {
    let name = std::env::args()
        .skip(1)
        .rfind(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "cuda:0".into());
    let path = common::smollm2();
    let tokenizer = Tokenizer::from_file(&path).unwrap();
    let documents: Vec<Vec<u32>> = common::leads(&tokenizer, 32)
        .take(24)
        .map(|ids| ids[..ids.len().min(512)].to_vec())
        .collect();
    let prompts = common::prompts(&tokenizer, 8);
    let sampling = SamplingConfig {
        temperature: 0.0,
        max_tokens: 32,
        ..SamplingConfig::default()
    };
    let pad = tokenizer.eos().unwrap_or(0);
    let mut results = Vec::new();
    for device in [Device::Cpu, rlpt_lm::device(&name).unwrap()] {
        let model = Model::load(&path, WeightFormat::F32, &device).unwrap();
        entropies(&model, &documents[..1]); // warm-up: kernels, allocations
        let started = Instant::now();
        let tagged = entropies(&model, &documents);
        let seconds = started.elapsed().as_secs_f64();
        let tokens: usize = documents.iter().map(Vec::len).sum();
        println!(
            "{device:?}: {tokens} tokens tagged in {seconds:.2} s ({:.0} tokens/s)",
            tokens as f64 / seconds
        );
        let generated: Vec<Vec<u32>> =
            generate::generate(&model, &tokenizer, &prompts, &sampling, pad)
                .unwrap()
                .into_iter()
                .map(|g| g.tokens)
                .collect();
        results.push((tagged, generated));
    }
    let (cpu, other) = (&results[0], &results[1]);
    let largest = cpu
        .0
        .iter()
        .flatten()
        .zip(other.0.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let same = cpu.1.iter().zip(&other.1).filter(|(a, b)| a == b).count();
    println!(
        "cpu vs {name}: largest entropy difference {largest:.5} nats over {} positions; \
         greedy generations identical: {same}/{}",
        cpu.0.iter().map(Vec::len).sum::<usize>(),
        prompts.len()
    );
    if largest >= TOLERANCE_NATS || same != prompts.len() {
        std::process::exit(1);
    }
}

/// The top-16 entropy of every position of each document, one forward pass each.
fn entropies(model: &Model, documents: &[Vec<u32>]) -> Vec<Vec<f32>> {
    documents
        .iter()
        .map(|ids| {
            let input = Tensor::new(ids.as_slice(), model.device())
                .and_then(|t| t.unsqueeze(0))
                .unwrap();
            let mut cache = KvCache::new(model, vec![0]);
            let hidden = model.forward(&input, &mut cache, Mode::Inference).unwrap();
            model
                .top_k_entropy(&hidden.squeeze(0).unwrap(), 16)
                .unwrap()
        })
        .collect()
}
