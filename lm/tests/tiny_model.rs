//! A tiny decoder with fixed pseudo-random weights, written here as safetensors +
//! config.json and as GGUF (with llama.cpp's Q/K row permutation), so loading, the
//! RoPE convention, padding and the KV cache are checked without any download.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rlpt_lm::generate::Detokenizer;
use rlpt_lm::{Finish, KvCache, Mode, Model, SamplingConfig, WeightFormat, generate};

const VOCAB: usize = 61;
const HIDDEN: usize = 32;
const FFN: usize = 48;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 8;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let count: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Hugging Face names and weights of the tiny model (`bias`: Qwen2's Q/K/V biases,
/// `qk_norm`: Qwen3's per-head norms).
fn hf_weights(bias: bool, qk_norm: bool) -> HashMap<String, Tensor> {
    let mut weights = HashMap::new();
    let mut seed = 0;
    let mut add = |name: String, shape: &[usize]| {
        seed += 1;
        let mut tensor = random(shape, seed);
        if name.ends_with("norm.weight") {
            tensor = (tensor + 1.0).unwrap();
        }
        weights.insert(name, tensor);
    };
    add("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN]);
    add("model.norm.weight".into(), &[HIDDEN]);
    for layer in 0..LAYERS {
        let name = |part: &str| format!("model.layers.{layer}.{part}");
        add(name("input_layernorm.weight"), &[HIDDEN]);
        add(name("post_attention_layernorm.weight"), &[HIDDEN]);
        add(name("self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN]);
        add(
            name("self_attn.k_proj.weight"),
            &[KV_HEADS * HEAD_DIM, HIDDEN],
        );
        add(
            name("self_attn.v_proj.weight"),
            &[KV_HEADS * HEAD_DIM, HIDDEN],
        );
        add(name("self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM]);
        add(name("mlp.gate_proj.weight"), &[FFN, HIDDEN]);
        add(name("mlp.up_proj.weight"), &[FFN, HIDDEN]);
        add(name("mlp.down_proj.weight"), &[HIDDEN, FFN]);
        if bias {
            add(name("self_attn.q_proj.bias"), &[HEADS * HEAD_DIM]);
            add(name("self_attn.k_proj.bias"), &[KV_HEADS * HEAD_DIM]);
            add(name("self_attn.v_proj.bias"), &[KV_HEADS * HEAD_DIM]);
        }
        if qk_norm {
            add(name("self_attn.q_norm.weight"), &[HEAD_DIM]);
            add(name("self_attn.k_norm.weight"), &[HEAD_DIM]);
        }
    }
    weights
}

fn write_safetensors(dir: &Path, architecture: &str, bias: bool, qk_norm: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "architectures": [architecture],
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": true,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    candle_core::safetensors::save(&hf_weights(bias, qk_norm), dir.join("model.safetensors"))
        .unwrap();
}

/// llama.cpp's converter's permutation of Q/K rows (its `permute`):
/// `w.reshape(heads, 2, head_dim / 2, in).swapaxes(1, 2)`.
fn llamacpp_permute(weight: &Tensor, heads: usize) -> Tensor {
    weight
        .reshape((heads, 2, HEAD_DIM / 2, HIDDEN))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((heads * HEAD_DIM, HIDDEN))
        .unwrap()
}

fn write_gguf(path: &Path) {
    let hf = hf_weights(false, false);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut put = |name: String, tensor: &Tensor| {
        tensors.push((name, QTensor::quantize(tensor, GgmlDType::F32).unwrap()));
    };
    put("token_embd.weight".into(), &hf["model.embed_tokens.weight"]);
    put("output_norm.weight".into(), &hf["model.norm.weight"]);
    for layer in 0..LAYERS {
        let get = |part: &str| &hf[&format!("model.layers.{layer}.{part}")];
        let name = |part: &str| format!("blk.{layer}.{part}");
        put(name("attn_norm.weight"), get("input_layernorm.weight"));
        put(
            name("ffn_norm.weight"),
            get("post_attention_layernorm.weight"),
        );
        put(
            name("attn_q.weight"),
            &llamacpp_permute(get("self_attn.q_proj.weight"), HEADS),
        );
        put(
            name("attn_k.weight"),
            &llamacpp_permute(get("self_attn.k_proj.weight"), KV_HEADS),
        );
        put(name("attn_v.weight"), get("self_attn.v_proj.weight"));
        put(name("attn_output.weight"), get("self_attn.o_proj.weight"));
        put(name("ffn_gate.weight"), get("mlp.gate_proj.weight"));
        put(name("ffn_up.weight"), get("mlp.up_proj.weight"));
        put(name("ffn_down.weight"), get("mlp.down_proj.weight"));
    }
    let u32_value = |v: usize| Value::U32(v as u32);
    let metadata = [
        ("general.architecture", Value::String("llama".into())),
        ("llama.vocab_size", u32_value(VOCAB)),
        ("llama.embedding_length", u32_value(HIDDEN)),
        ("llama.feed_forward_length", u32_value(FFN)),
        ("llama.block_count", u32_value(LAYERS)),
        ("llama.attention.head_count", u32_value(HEADS)),
        ("llama.attention.head_count_kv", u32_value(KV_HEADS)),
        ("llama.context_length", u32_value(64)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &metadata, &tensors).unwrap();
}

/// Logits `[batch, seq, vocab]` of a left-padded batch in one pass.
fn full_logits(model: &Model, sequences: &[Vec<u32>], mode: Mode) -> Vec<Vec<Vec<f32>>> {
    let longest = sequences.iter().map(Vec::len).max().unwrap();
    let pads: Vec<usize> = sequences.iter().map(|s| longest - s.len()).collect();
    let ids: Vec<u32> = sequences
        .iter()
        .flat_map(|s| std::iter::repeat_n(0, longest - s.len()).chain(s.iter().copied()))
        .collect();
    let ids = Tensor::from_vec(ids, (sequences.len(), longest), &Device::Cpu).unwrap();
    let mut cache = KvCache::new(model, pads);
    let hidden = model.forward(&ids, &mut cache, mode).unwrap();
    model.logits(&hidden).unwrap().to_vec3().unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 3, 42, 8, 9, 60, 1, 33],
        vec![7, 7, 19, 2],
        vec![11, 23, 31, 47, 53, 59],
    ]
}

#[test]
fn gguf_with_permuted_qk_rows_gives_the_safetensors_logits() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(&dir.path().join("hf"), "LlamaForCausalLM", false, false);
    write_gguf(&dir.path().join("tiny.gguf"));
    let hf = Model::load(&dir.path().join("hf"), WeightFormat::F32, &Device::Cpu).unwrap();
    let gguf = Model::load(
        &dir.path().join("tiny.gguf"),
        WeightFormat::F32,
        &Device::Cpu,
    )
    .unwrap();
    let hf_logits = full_logits(&hf, &sequences(), Mode::Inference);
    let gguf_logits = full_logits(&gguf, &sequences(), Mode::Inference);
    for (a, b) in hf_logits.iter().flatten().zip(gguf_logits.iter().flatten()) {
        assert!(max_difference(a, b) < 1e-4);
    }
}

#[test]
fn padding_does_not_change_a_sequences_logits() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(dir.path(), "LlamaForCausalLM", false, false);
    let model = Model::load(dir.path(), WeightFormat::F32, &Device::Cpu).unwrap();
    let batch = full_logits(&model, &sequences(), Mode::Inference);
    let longest = 9;
    for (row, sequence) in sequences().iter().enumerate() {
        let alone = full_logits(&model, std::slice::from_ref(sequence), Mode::Inference);
        let pad = longest - sequence.len();
        for (a, b) in alone[0].iter().zip(&batch[row][pad..]) {
            assert!(max_difference(a, b) < 1e-4);
        }
    }
}

#[test]
fn decoding_with_the_cache_gives_the_full_pass_logits_and_rows_can_leave() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(dir.path(), "LlamaForCausalLM", false, false);
    let model = Model::load(dir.path(), WeightFormat::F32, &Device::Cpu).unwrap();
    let full = full_logits(&model, &sequences(), Mode::Inference);
    // Prefill the first 6 tokens of each (left-padded to 9), then one token at a time;
    // after two steps, the middle sequence leaves the batch. The cache either grows
    // (its buffers first hold the 6 prefilled positions) or was reserved for all 9.
    let sequences = sequences();
    let pads: Vec<usize> = sequences.iter().map(|s| 9 - s.len()).collect();
    let padded: Vec<Vec<u32>> = sequences
        .iter()
        .map(|s| {
            std::iter::repeat_n(0, 9 - s.len())
                .chain(s.iter().copied())
                .collect()
        })
        .collect();
    for reserve in [0, 9] {
        let mut cache = KvCache::with_capacity(&model, pads.clone(), reserve);
        let mut rows: Vec<usize> = vec![0, 1, 2];
        let prefix: Vec<u32> = padded.iter().flat_map(|s| s[..6].to_vec()).collect();
        let ids = Tensor::from_vec(prefix, (3, 6), &Device::Cpu).unwrap();
        model.forward(&ids, &mut cache, Mode::Inference).unwrap();
        for step in 6..9 {
            if step == 8 {
                cache.retain(&[0, 2]).unwrap();
                rows = vec![0, 2];
            }
            let next: Vec<u32> = rows.iter().map(|&r| padded[r][step]).collect();
            let ids = Tensor::from_vec(next, (rows.len(), 1), &Device::Cpu).unwrap();
            let hidden = model.forward(&ids, &mut cache, Mode::Inference).unwrap();
            let logits: Vec<Vec<Vec<f32>>> = model.logits(&hidden).unwrap().to_vec3().unwrap();
            for (i, &row) in rows.iter().enumerate() {
                let difference = max_difference(&logits[i][0], &full[row][step]);
                assert!(
                    difference < 1e-4,
                    "reserve {reserve}, step {step}: {difference}"
                );
            }
        }
        assert_eq!(cache.len(), 9);
    }
}

#[test]
fn qwen2_and_qwen3_blocks_load_and_both_op_forms_agree() {
    for (architecture, bias, qk_norm) in [
        ("Qwen2ForCausalLM", true, false),
        ("Qwen3ForCausalLM", false, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_safetensors(dir.path(), architecture, bias, qk_norm);
        let model = Model::load(dir.path(), WeightFormat::F32, &Device::Cpu).unwrap();
        let fused = full_logits(&model, &sequences(), Mode::Inference);
        let composed = full_logits(&model, &sequences(), Mode::Differentiable);
        for (a, b) in fused.iter().flatten().zip(composed.iter().flatten()) {
            assert!(max_difference(a, b) < 1e-4, "{architecture}");
        }
        // Without its biases or norms the checkpoint is refused by name.
        let other = if bias {
            "Qwen3ForCausalLM"
        } else {
            "Qwen2ForCausalLM"
        };
        let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            config.replace(architecture, other),
        )
        .unwrap();
        let error = Model::load(dir.path(), WeightFormat::F32, &Device::Cpu)
            .err()
            .expect("missing tensors are an error")
            .to_string();
        assert!(
            error.contains("has no tensor `model.layers.0.self_attn."),
            "{error}"
        );
    }
}

#[test]
fn keeping_safetensors_quantized_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(dir.path(), "LlamaForCausalLM", false, false);
    let error = Model::load(dir.path(), WeightFormat::Quantized, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("give a GGUF file"), "{error}");
}

/// Ids as letters, so stop strings can be tested; an optional end-of-sequence id.
struct Letters {
    eos: Option<u32>,
}

impl Detokenizer for Letters {
    fn decode(&self, ids: &[u32]) -> rlpt_lm::Result<String> {
        Ok(ids.iter().map(|&id| letter(id)).collect())
    }

    fn eos(&self) -> Option<u32> {
        self.eos
    }
}

fn letter(id: u32) -> char {
    char::from_u32(0x3B1 + id).unwrap()
}

fn tiny_model(dir: &Path) -> Model {
    write_safetensors(dir, "LlamaForCausalLM", false, false);
    Model::load(dir, WeightFormat::F32, &Device::Cpu).unwrap()
}

fn greedy(max_tokens: usize) -> SamplingConfig {
    SamplingConfig {
        temperature: 0.0,
        max_tokens,
        ..SamplingConfig::default()
    }
}

#[test]
fn greedy_generation_with_the_cache_follows_the_full_pass_argmax() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let prompts = sequences();
    let generated = generate(&model, &Letters { eos: None }, &prompts, &greedy(6), 0).unwrap();
    for (prompt, generation) in prompts.iter().zip(&generated) {
        assert_eq!(generation.finish, Finish::Length);
        let mut sequence = prompt.clone();
        for &token in &generation.tokens {
            let logits = full_logits(&model, std::slice::from_ref(&sequence), Mode::Inference);
            let last = logits[0].last().unwrap();
            let argmax = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]))
                .unwrap();
            assert_eq!(token, argmax as u32);
            sequence.push(token);
        }
        assert_eq!(generation.tokens.len(), 6);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_does_not_depend_on_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let config = SamplingConfig {
        temperature: 1.5,
        top_k: 20,
        top_p: 0.95,
        max_tokens: 12,
        seed: 7,
        ..SamplingConfig::default()
    };
    let letters = Letters { eos: None };
    let prompts = sequences();
    let first = generate(&model, &letters, &prompts, &config, 0).unwrap();
    let again = generate(&model, &letters, &prompts, &config, 0).unwrap();
    assert_eq!(first, again);
    let other_seed = SamplingConfig {
        seed: 8,
        ..config.clone()
    };
    assert_ne!(
        first,
        generate(&model, &letters, &prompts, &other_seed, 0).unwrap()
    );
    // The first prompt alone (no padding, no neighbours) draws the same tokens.
    let alone = generate(&model, &letters, &prompts[..1], &config, 0).unwrap();
    assert_eq!(alone[0], first[0]);
    // So does every prompt when a memory bound runs each in a batch of its own.
    let one_by_one = SamplingConfig {
        max_batch_bytes: 0,
        ..config.clone()
    };
    assert_eq!(
        generate(&model, &letters, &prompts, &one_by_one, 0).unwrap(),
        first
    );
    // Sampling is not greedy at this temperature.
    let greedy = generate(&model, &letters, &prompts, &greedy(12), 0).unwrap();
    assert_ne!(first, greedy);
}

#[test]
fn a_repeated_prompt_is_sampled_as_if_each_copy_ran_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let config = SamplingConfig {
        temperature: 1.5,
        max_tokens: 10,
        seed: 3,
        ..SamplingConfig::default()
    };
    let letters = Letters { eos: None };
    // Two GRPO-like groups: each prompt four times, interleaved with a third prompt.
    let prompts = sequences();
    let groups: Vec<Vec<u32>> = [0, 0, 2, 1, 0, 1, 1, 0, 1]
        .iter()
        .map(|&i| prompts[i].clone())
        .collect();
    let together = generate(&model, &letters, &groups, &config, 0).unwrap();
    let one_by_one = SamplingConfig {
        max_batch_bytes: 0,
        ..config.clone()
    };
    assert_eq!(
        together,
        generate(&model, &letters, &groups, &one_by_one, 0).unwrap()
    );
    // The copies draw from their own streams.
    assert_ne!(together[0], together[1]);
}

#[test]
fn stop_strings_and_eos_end_a_sequence_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let prompts = sequences();
    let free = generate(&model, &Letters { eos: None }, &prompts, &greedy(8), 0).unwrap();
    // Stop the first at its third token's letter; end the third at its first token.
    let stop: String = letter(free[0].tokens[2]).to_string();
    let eos = free[2].tokens[0];
    let config = SamplingConfig {
        stop: vec![stop.clone()],
        ..greedy(8)
    };
    let ended = generate(&model, &Letters { eos: Some(eos) }, &prompts, &config, 0).unwrap();
    let first_stop = free[0].text.find(&stop).unwrap();
    assert_eq!(ended[0].finish, Finish::Stop(stop));
    assert_eq!(ended[0].text, free[0].text[..first_stop]);
    assert_eq!(ended[2].finish, Finish::Eos);
    assert!(ended[2].tokens.is_empty());
    // The second meets neither (with these weights): it runs to its limit unchanged.
    assert!(!free[1].text.contains(letter(free[0].tokens[2])));
    assert!(!free[1].tokens.contains(&eos));
    assert_eq!(ended[1], free[1]);
}
