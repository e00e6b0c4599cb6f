//! Throughput of the sentence splitter alone — what pysbd and Punkt do — over JSONL
//! files' `text` fields, one core, texts already in memory. Prints one JSON line
//! (documents, bytes, sentences, seconds) for `bench/segment_vs_pysbd.py`, which runs
//! it beside the peers:
//!
//!     cargo bench -p rlpt-stages --bench sentences -- FILE.jsonl [FILE.jsonl …]

use std::time::Instant;

use rlpt_stages::segment::sentences::sentences;

fn main() {
    // `cargo bench` adds `--bench`; every other argument is a file.
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    assert!(!files.is_empty(), "give one or more JSONL files");
    let texts: Vec<String> = files.iter().flat_map(|file| texts(file)).collect();
    let started = Instant::now();
    let count: usize = texts.iter().map(|text| sentences(text).len()).sum();
    let seconds = started.elapsed().as_secs_f64();
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{}",
        serde_json::json!({"documents": texts.len(), "bytes": bytes, "sentences": count, "seconds": seconds})
    );
}

fn texts(file: &str) -> Vec<String> {
    let content = std::fs::read_to_string(file).unwrap_or_else(|err| panic!("{file}: {err}"));
    content
        .lines()
        .enumerate()
        .map(|(line, json)| {
            let row: serde_json::Value = serde_json::from_str(json)
                .unwrap_or_else(|err| panic!("{file}:{}: {err}", line + 1));
            row["text"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}:{}: no string `text`", line + 1))
                .to_string()
        })
        .collect()
}
