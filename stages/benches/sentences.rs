//! The sentence splitter alone — what pysbd and Punkt do — for
//! `bench/segment_vs_pysbd.py`, which runs it beside the peers. Two modes, each printing
//! one JSON line:
//!
//!     cargo bench -p rlpt-stages --bench sentences -- FILE.jsonl [FILE.jsonl …]
//!         throughput over the files' `text` fields, one core, texts in memory:
//!         {"documents", "bytes", "sentences", "seconds"}
//!     cargo bench -p rlpt-stages --bench sentences -- --cases CASES.jsonl
//!         the sentences of each case's `text`, trimmed: {"sentences": [[…], …]}

use std::time::Instant;

use rlpt_stages::segment::sentences::sentences;

fn main() {
    // `cargo bench` adds `--bench`; every other argument is a file or `--cases FILE`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    if let [flag, cases] = args.as_slice()
        && flag == "--cases"
    {
        split_cases(cases);
        return;
    }
    assert!(!args.is_empty(), "give one or more JSONL files");
    let texts: Vec<String> = args.iter().flat_map(|file| texts(file)).collect();
    let started = Instant::now();
    let count: usize = texts.iter().map(|text| sentences(text).len()).sum();
    let seconds = started.elapsed().as_secs_f64();
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{}",
        serde_json::json!({"documents": texts.len(), "bytes": bytes, "sentences": count, "seconds": seconds})
    );
}

fn split_cases(file: &str) {
    let texts = texts(file);
    let split: Vec<Vec<&str>> = texts
        .iter()
        .map(|text| {
            sentences(text)
                .into_iter()
                .map(|range| text[range].trim())
                .filter(|sentence| !sentence.is_empty())
                .collect()
        })
        .collect();
    println!("{}", serde_json::json!({ "sentences": split }));
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
