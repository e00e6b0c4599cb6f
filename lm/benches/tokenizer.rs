//! Token counting throughput of SmolLM2's tokenizer: rlpt's byte-level BPE encoder
//! against the `tokenizers` crate (the same tokenizer.json, the same texts, the same
//! run, one thread), each from a freshly loaded tokenizer so no cache is warm. Asserts
//! both give the same ids.
//!
//!     cargo bench -p rlpt-lm --bench tokenizer
//!
//! The texts are the fetched Wikipedia extracts (`python3 data-samples/fetch.py wiki`),
//! else the embedded sample (the output says which).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use rlpt_lm::Tokenizer;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path = root.join("data-samples/tokenizers/smollm2-135m.json.gz");
    let (corpus, texts) = texts(root);
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "corpus: {corpus}, {} documents, {:.1} MB",
        texts.len(),
        bytes as f64 / 1e6
    );

    let started = Instant::now();
    let tokenizer = Tokenizer::from_file(&path).unwrap();
    let load = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t).unwrap()).collect();
    let ours_s = started.elapsed().as_secs_f64();

    let reference = tokenizers::Tokenizer::from_str(&tokenizer.to_json().unwrap()).unwrap();
    let started = Instant::now();
    let theirs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            reference
                .encode_fast(t.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec()
        })
        .collect();
    let theirs_s = started.elapsed().as_secs_f64();
    assert!(ours == theirs, "the encoders disagree");

    let tokens: usize = ours.iter().map(Vec::len).sum();
    println!("tokenizer load (tokenizer.json.gz, both encoders): {load:.3} s");
    for (name, seconds) in [
        ("rlpt byte-level BPE", ours_s),
        ("tokenizers crate", theirs_s),
    ] {
        println!(
            "| {name} | {:.2} M tokens/s | {:.1} MB/s |",
            tokens as f64 / seconds / 1e6,
            bytes as f64 / seconds / 1e6
        );
    }
    println!(
        "{tokens} tokens, identical ids; rlpt / tokenizers: {:.1}×",
        theirs_s / ours_s
    );
    // The line bench/suite.py reads.
    println!(
        "BENCH {}",
        serde_json::json!({
            "benchmark": "tokenizer (SmolLM2 BPE, 1 thread)",
            "throughput": tokens as f64 / ours_s / 1e6,
            "unit": "M tokens/s",
            "peer": "tokenizers crate, same tokenizer.json (ids equal)",
            "vs_peer": theirs_s / ours_s,
        })
    );
}

/// The fetched Wikipedia extracts, else the embedded sample.
fn texts(root: &Path) -> (&'static str, Vec<String>) {
    let cache = std::env::var_os("RLPT_CACHE")
        .map_or_else(|| root.join("data-samples/cache"), PathBuf::from);
    let wiki: Vec<PathBuf> = ["en", "fr", "es"]
        .iter()
        .map(|lang| cache.join(format!("wiki/wiki-{lang}.jsonl")))
        .collect();
    let (name, files) = if wiki.iter().all(|file| file.exists()) {
        ("fetched Wikipedia extracts (en, fr, es)", wiki)
    } else {
        let sample = std::fs::read_dir(root.join("data-samples/wiki-stem")).unwrap();
        let mut files: Vec<PathBuf> = sample
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        files.sort();
        ("the embedded sample", files)
    };
    let texts = files
        .iter()
        .flat_map(|file| {
            let content = std::fs::read_to_string(file).unwrap();
            content
                .lines()
                .map(|line| {
                    let row: serde_json::Value = serde_json::from_str(line).unwrap();
                    row["text"].as_str().unwrap().to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    (name, texts)
}
