//! What the model benchmarks share: the fetched SmolLM2 GGUF and prompts cut from the
//! embedded sample's English leads.

use std::path::{Path, PathBuf};

use rlpt_lm::Tokenizer;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The fetched SmolLM2-135M-Instruct GGUF; exits with how to fetch it when missing.
pub fn smollm2() -> PathBuf {
    let path = root().join("data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        eprintln!(
            "{} is missing: python3 data-samples/fetch.py models",
            path.display()
        );
        std::process::exit(1);
    }
    path
}

/// The token ids of the sample's English leads of at least `min_tokens` tokens.
pub fn leads(tokenizer: &Tokenizer, min_tokens: usize) -> impl Iterator<Item = Vec<u32>> + '_ {
    let sample =
        std::fs::read_to_string(root().join("data-samples/wiki-stem/stem-en.jsonl")).unwrap();
    let texts: Vec<String> = sample
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|doc| doc["text"].as_str().map(str::to_owned))
        .collect();
    texts
        .into_iter()
        .map(|text| tokenizer.encode(&text).unwrap())
        .filter(move |ids| ids.len() >= min_tokens)
}

/// `count` prompts of 90-110 tokens: the sample's first English leads, cut.
pub fn prompts(tokenizer: &Tokenizer, count: usize) -> Vec<Vec<u32>> {
    leads(tokenizer, 110)
        .enumerate()
        .map(|(i, ids)| ids[..90 + (i * 7) % 21].to_vec())
        .take(count)
        .collect()
}
