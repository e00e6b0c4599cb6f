//! SmolLM2-135M (the real Q4_1 GGUF) against llama.cpp.
//!
//! `lm/tests/fixtures/smollm2-llamacpp-logits.json` holds, for sample sentences and hard
//! cases, llama.cpp's top-1 next token, top-16 entropy and a few logits at every
//! position (PyPI llama-cpp-python 0.3.36, `logits_all=True`), written by
//! `lm/scripts/llamacpp_logits.py`. rlpt runs the same ids as one left-padded batch,
//! with weights kept quantized (fused kernels) and dequantized to f32 (differentiable
//! ops), and must agree; `--nocapture` prints the figures.

use candle_core::{Device, Tensor};
use rlpt_lm::{KvCache, Mode, Model, SamplingConfig, WeightFormat, generate, model::top_k_entropy};
use serde::Deserialize;

mod common;
use common::{asset, repo};

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    ids: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    top1: u32,
    entropy16: f32,
    tokens: Vec<u32>,
    logits: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = repo().join("lm/tests/fixtures/smollm2-llamacpp-logits.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Agreement of one run with the fixture.
#[derive(Debug, Default)]
struct Agreement {
    positions: usize,
    top1_same: usize,
    /// Positions where llama.cpp's top two logits are at least 1 apart…
    clear_positions: usize,
    /// …and where rlpt's top-1 is llama.cpp's there.
    clear_top1_same: usize,
    max_logit_difference: f32,
    mean_logit_difference: f32,
    max_entropy_difference: f32,
    mean_entropy_difference: f32,
}

/// Runs every case in one left-padded batch and compares with llama.cpp.
fn compare(model: &Model, mode: Mode, fixture: &Fixture) -> Agreement {
    let longest = fixture.cases.iter().map(|c| c.ids.len()).max().unwrap();
    let left_pad: Vec<usize> = fixture
        .cases
        .iter()
        .map(|c| longest - c.ids.len())
        .collect();
    let padded: Vec<u32> = fixture
        .cases
        .iter()
        .flat_map(|c| std::iter::repeat_n(2, longest - c.ids.len()).chain(c.ids.iter().copied()))
        .collect();
    let ids = Tensor::from_vec(padded, (fixture.cases.len(), longest), model.device()).unwrap();
    let mut cache = KvCache::new(model, left_pad.clone());
    let hidden = model.forward(&ids, &mut cache, mode).unwrap();
    let logits = model.logits(&hidden).unwrap().to_vec3::<f32>().unwrap();
    let mut agreement = Agreement::default();
    let mut entropy_total = 0.0;
    let (mut logit_total, mut logit_count) = (0.0, 0);
    for ((case, rows), pad) in fixture.cases.iter().zip(&logits).zip(&left_pad) {
        for (expected, row) in case.positions.iter().zip(&rows[*pad..]) {
            let top1 = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            agreement.positions += 1;
            let same = top1 as u32 == expected.top1;
            agreement.top1_same += usize::from(same);
            if expected.logits[0] - expected.logits[1] >= 1.0 {
                agreement.clear_positions += 1;
                agreement.clear_top1_same += usize::from(same);
            }
            for (&token, &logit) in expected.tokens.iter().zip(&expected.logits) {
                let difference = (row[token as usize] - logit).abs();
                agreement.max_logit_difference = agreement.max_logit_difference.max(difference);
                logit_total += difference;
                logit_count += 1;
            }
            let entropy = (top_k_entropy(row, 16) - expected.entropy16).abs();
            agreement.max_entropy_difference = agreement.max_entropy_difference.max(entropy);
            entropy_total += entropy;
        }
    }
    agreement.mean_entropy_difference = entropy_total / agreement.positions as f32;
    agreement.mean_logit_difference = logit_total / logit_count as f32;
    agreement
}

#[test]
fn smollm2_matches_llamacpp_dequantized_with_fused_and_differentiable_ops() {
    let Some(gguf) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let fixture = fixture();
    let model = Model::load(&gguf, WeightFormat::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config().num_layers, 30);
    let fused = compare(&model, Mode::Inference, &fixture);
    let composed = compare(&model, Mode::Differentiable, &fixture);
    println!("dequantized f32, fused kernels: {fused:?}");
    println!("dequantized f32, differentiable ops: {composed:?}");
    assert_close(&fused);
    assert_close(&composed);
    // The two forms of the same computation agree far more closely than either does
    // with llama.cpp.
    assert_eq!(fused.top1_same, composed.top1_same);
    assert!((fused.mean_logit_difference - composed.mean_logit_difference).abs() < 0.005);

    // Greedy generation over the whole batch picks llama.cpp's clear next tokens.
    let tokenizer = rlpt_lm::Tokenizer::from_file(&gguf).unwrap();
    let prompts: Vec<Vec<u32>> = fixture.cases.iter().map(|c| c.ids.clone()).collect();
    let config = SamplingConfig {
        temperature: 0.0,
        max_tokens: 1,
        ..SamplingConfig::default()
    };
    let generated = generate(&model, &tokenizer, &prompts, &config, 2).unwrap();
    for (case, generation) in fixture.cases.iter().zip(&generated) {
        let last = case.positions.last().unwrap();
        if last.logits[0] - last.logits[1] >= 1.0 {
            assert_eq!(generation.tokens, [last.top1]);
        }
    }
}

#[test]
fn smollm2_matches_llamacpp_kept_quantized() {
    let Some(gguf) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    // candle multiplies Q4_1 blocks without SIMD on CPU: three texts keep this quick.
    let mut fixture = fixture();
    fixture.cases.truncate(3);
    let model = Model::load(&gguf, WeightFormat::Quantized, &Device::Cpu).unwrap();
    let quantized = compare(&model, Mode::Inference, &fixture);
    println!("quantized Q4_1, fused kernels: {quantized:?}");
    assert_close(&quantized);
}

/// Where llama.cpp's choice is clear its top-1 is rlpt's, most top-1 agree, logits are
/// within a few tenths and entropies within a few hundredths: llama.cpp quantizes
/// activations to 8 bits inside its matrix products and keeps keys and values in f16.
fn assert_close(agreement: &Agreement) {
    assert_eq!(
        agreement.clear_top1_same, agreement.clear_positions,
        "{agreement:?}"
    );
    assert!(
        agreement.top1_same as f32 >= 0.95 * agreement.positions as f32,
        "{agreement:?}"
    );
    assert!(agreement.mean_logit_difference < 0.5, "{agreement:?}");
    assert!(agreement.max_logit_difference < 2.0, "{agreement:?}");
    assert!(agreement.mean_entropy_difference < 0.05, "{agreement:?}");
}
