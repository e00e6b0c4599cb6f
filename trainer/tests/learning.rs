//! GRPO learns: a tiny Llama built here (random weights, the sample's 2,048-token BPE)
//! is rewarded for continuing a prompt with word-initial tokens (tokens whose text
//! starts with a space); from a fixed seed, its mean reward must rise clearly within a
//! bounded number of steps. Uses the trainer's own update (advantages, clipped
//! surrogate, micro-batches, AdamW, clipping), not a copy of it.

use std::path::{Path, PathBuf};

use rlpt_lm::SamplingConfig;
use rlpt_trainer::config::{GrpoConfig, OptimConfig, TrainConfig};
use rlpt_trainer::run::Run;
use rlpt_trainer::{Group, update};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh tiny model (the committed tiny shape, 1 layer) in `dir`.
fn tiny_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let config = std::fs::read_to_string(repo().join("data-samples/tiny/config.json")).unwrap();
    let config = config.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    std::fs::write(dir.join("config.json"), config).unwrap();
    rlpt_lm::init_checkpoint(&dir.join("config.json"), &model, 7).unwrap();
    std::fs::copy(
        repo().join("data-samples/tiny/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    model
}

#[test]
fn grpo_raises_the_reward_of_a_toy_continuation_task() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        model: tiny_model(dir.path()),
        output: dir.path().join("out"),
        steps: 40,
        grpo: GrpoConfig {
            group_size: 8,
            prompts_per_step: 2,
            micro_batch: 8,
            ..GrpoConfig::default()
        },
        optim: OptimConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            ..OptimConfig::default()
        },
        ..TrainConfig::default()
    };
    let files = vec![repo().join("data-samples/triples/train.parquet")];
    let optim = config.optim.clone();
    let mut run = Run::start(config, "grpo", optim, files, None, None).unwrap();
    let prompts = ["Algebra is", "The theorem"]
        .map(|p| run.policy.tokenizer.encode(p).unwrap())
        .to_vec();
    let mut means = Vec::new();
    for step in 0..40u64 {
        let sampling = SamplingConfig {
            max_tokens: 6,
            seed: step,
            ..SamplingConfig::default()
        };
        let repeated: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), 8))
            .collect();
        let generations = run.policy.sample(&repeated, &sampling).unwrap();
        let mut groups = Vec::new();
        for (prompt, gens) in prompts.iter().zip(generations.chunks(8)) {
            let completions: Vec<Vec<u32>> = gens
                .iter()
                .map(|g| run.policy.completion_tokens(g))
                .collect();
            let rewards = completions
                .iter()
                .map(|tokens| {
                    let words = tokens
                        .iter()
                        .filter(|&&t| run.policy.tokenizer.token_bytes(t).first() == Some(&b' '))
                        .count();
                    words as f32 / tokens.len() as f32
                })
                .collect();
            groups.push(Group {
                prompt: prompt.clone(),
                completions,
                rewards,
            });
        }
        let mean = groups.iter().flat_map(|g| &g.rewards).sum::<f32>() / 16.0;
        means.push(mean);
        let result = update(&mut run, &groups, None, 1e-2).unwrap();
        assert!(result.grad_norm.is_finite() && result.loss.is_finite());
    }
    let first = means[..5].iter().sum::<f32>() / 5.0;
    let last = means[means.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(
        last > first + 0.3 && last > 0.9,
        "mean reward {first:.3} → {last:.3}: {means:?}"
    );
}
