//! `rlpt entropy` with the real SmolLM2 GGUF on triples of a few sample documents:
//! every segment token gets an entropy and an offset, the summaries and labels follow
//! from them, `--min-entropy` filters, the model is in the metadata, and output bytes
//! do not depend on the thread count.

use std::path::{Path, PathBuf};

use crate::harness::*;

const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Triples of the first `docs` sample documents.
fn triples(dir: &Path, docs: usize) -> PathBuf {
    let sample = std::fs::read_to_string(sample_dir().join("stem-en.jsonl")).unwrap();
    let input = dir.join("docs.jsonl");
    let lines: Vec<&str> = sample.lines().take(docs).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&input, &documents, &[]));
    let triples = dir.join("triples");
    let tokenizer = repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz");
    rlpt_ok(&[
        "segment",
        "--input",
        arg(&documents),
        "--output",
        arg(&triples),
        "--tokenizer",
        arg(&tokenizer),
    ]);
    triples
}

fn entropy(model: &Path, input: &Path, output: &Path, extra: &[&str]) {
    let mut args = vec![
        "entropy",
        "--input",
        arg(input),
        "--output",
        arg(output),
        "--model",
        arg(model),
    ];
    args.extend_from_slice(extra);
    rlpt_ok(&args);
}

fn floats(cell: &str) -> Vec<f32> {
    cell.trim_matches(['[', ']'])
        .split(", ")
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn segment_tokens_get_entropies_offsets_summaries_and_labels() {
    let Some(model) = fetched(MODEL) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let triples = triples(work.path(), 8);
    let tagged = work.path().join("tagged");
    entropy(&model, &triples, &tagged, &["--batch-tokens", "700"]);
    let before = read_rows(&triples);
    let rows = read_rows(&tagged);
    assert_eq!(rows.len(), before.len());
    let mut labels = std::collections::BTreeSet::new();
    for (row, original) in rows.iter().zip(&before) {
        assert_eq!(get(row, "id"), get(original, "id"));
        let entropies = floats(get(row, "token_entropy"));
        let offsets = floats(get(row, "token_offsets"));
        assert_eq!(entropies.len(), offsets.len());
        // SmolLM2's tokens are never longer than 4 bytes per token on average here.
        let segment = get(row, "segment");
        assert!(entropies.len() * 8 >= segment.len(), "{row:?}");
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(offsets.iter().all(|&o| (o as usize) < segment.len()));
        assert!(
            entropies
                .iter()
                .all(|&e| (0.0..=16f32.ln() + 1e-4).contains(&e))
        );
        let mean: f32 = entropies.iter().sum::<f32>() / entropies.len() as f32;
        let stored: f32 = get(row, "seg_entropy_mean").parse().unwrap();
        assert!((mean - stored).abs() < 1e-4);
        let first: f32 = get(row, "seg_entropy_first").parse().unwrap();
        assert_eq!(first, entropies[0]);
        let label = get(row, "difficulty");
        let expected = match stored {
            m if m >= 1.5 => "hard",
            m if m >= 1.0 => "medium",
            m if m >= 0.5 => "easy",
            _ => "trivial",
        };
        assert_eq!(label, expected);
        labels.insert(label.to_string());
    }
    assert!(
        labels.len() >= 2,
        "a real model finds segments of several difficulties"
    );
    assert_matches_llamacpp(&rows);
    let metadata = file_metadata(&shards(&tagged)[0]);
    assert_eq!(metadata["rlpt.stage"], "entropy");
    assert_eq!(metadata["rlpt.model"], "Smollm2 135M 8k Lc100K Mix1 Ep2");
    assert_eq!(metadata["rlpt.model_checksum"].len(), 16);
}

/// The entropies of segments within the first tokens of a document agree with
/// llama.cpp's top-16 entropies at the same positions (lm's fixture, written by
/// lm/scripts/llamacpp_logits.py from the same sample documents).
fn assert_matches_llamacpp(rows: &[Row]) {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("lm/tests/fixtures/smollm2-llamacpp-logits.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let tokenizer = rlpt_lm::Tokenizer::from_file(
        &repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz"),
    )
    .unwrap();
    let (mut compared, mut total, mut worst) = (0, 0.0f32, 0.0f32);
    for row in rows {
        let text = format!("{}{}", get(row, "context"), get(row, "segment"));
        let Some(case) = fixture["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["text"].as_str().unwrap().starts_with(&text))
        else {
            continue;
        };
        let positions = case["positions"].as_array().unwrap();
        let end = tokenizer.encode(&text).unwrap().len();
        let entropies = floats(get(row, "token_entropy"));
        if end > positions.len() {
            continue;
        }
        for (j, ours) in entropies.iter().enumerate() {
            let predicted_at = end - entropies.len() + j - 1;
            let theirs = positions[predicted_at]["entropy16"].as_f64().unwrap() as f32;
            total += (ours - theirs).abs();
            worst = worst.max((ours - theirs).abs());
            compared += 1;
        }
    }
    assert!(compared > 50, "{compared} tokens compared");
    assert!(
        total / (compared as f32) < 0.05,
        "mean |Δ| {}",
        total / compared as f32
    );
    assert!(worst < 0.3, "max |Δ| {worst}");
}

fn file_metadata(path: &Path) -> std::collections::BTreeMap<String, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let pairs = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    pairs
        .unwrap_or_default()
        .into_iter()
        .map(|kv| (kv.key, kv.value.unwrap_or_default()))
        .collect()
}

#[test]
fn entropies_do_not_depend_on_batching_or_threads_and_min_entropy_filters() {
    let Some(model) = fetched(MODEL) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let triples = triples(work.path(), 4);
    let one = work.path().join("one");
    let two = work.path().join("two");
    let small = work.path().join("small");
    rlpt_ok(&[
        "--threads",
        "1",
        "entropy",
        "--input",
        arg(&triples),
        "--output",
        arg(&one),
        "--model",
        arg(&model),
    ]);
    rlpt_ok(&[
        "--threads",
        "2",
        "entropy",
        "--input",
        arg(&triples),
        "--output",
        arg(&two),
        "--model",
        arg(&model),
    ]);
    assert_eq!(table_bytes(&one), table_bytes(&two));
    // One sequence per pass: no shared prefixes, no padding; the same numbers.
    entropy(&model, &triples, &small, &["--batch-tokens", "1"]);
    for (a, b) in read_rows(&one).iter().zip(read_rows(&small)) {
        let (a, b) = (
            floats(get(a, "token_entropy")),
            floats(get(&b, "token_entropy")),
        );
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 2e-3),
            "{a:?} {b:?}"
        );
    }
    // Units of ~200 model tokens: several units, each a row range of the shard; the
    // same triples in the same order, with the same numbers.
    let units = work.path().join("units");
    entropy(&model, &triples, &units, &["--unit-tokens", "200"]);
    let stage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(units.join("_manifest/stage.json")).unwrap())
            .unwrap();
    assert!(stage["units"].as_u64().unwrap() >= 3, "{stage}");
    let (whole, split) = (read_rows(&one), read_rows(&units));
    assert_eq!(whole.len(), split.len());
    for (a, b) in whole.iter().zip(&split) {
        assert_eq!(get(a, "id"), get(b, "id"));
        let (a, b) = (
            floats(get(a, "token_entropy")),
            floats(get(b, "token_entropy")),
        );
        assert!(
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 2e-3),
            "{a:?} {b:?}"
        );
    }
    let filtered = work.path().join("filtered");
    entropy(&model, &triples, &filtered, &["--min-entropy", "1.2"]);
    let all = read_rows(&one);
    let kept = read_rows(&filtered);
    let expected = all
        .iter()
        .filter(|r| get(r, "seg_entropy_mean").parse::<f32>().unwrap() >= 1.2)
        .count();
    assert_eq!(kept.len(), expected);
    assert!(0 < expected && expected < all.len());
}

#[test]
fn the_committed_tiny_model_is_rebuilt_byte_for_byte_and_serves_as_fallback() {
    let work = tempfile::tempdir().unwrap();
    let tiny = repo_root().join("data-samples/tiny");
    let rebuilt = work.path().join("tiny");
    std::fs::create_dir_all(&rebuilt).unwrap();
    let mut train = vec!["tokenizer".to_string(), "train".into()];
    for lang in ["en", "fr", "es"] {
        train.push("--input".into());
        train.push(format!("{}/stem-{lang}.jsonl", sample_dir().display()));
    }
    let tokenizer = rebuilt.join("tokenizer.json");
    train.extend(["--vocab-size".into(), "2048".into(), "--output".into()]);
    train.push(tokenizer.display().to_string());
    rlpt_ok(&train);
    let config = tiny.join("config.json");
    rlpt_ok(&[
        "model",
        "init",
        "--config",
        arg(&config),
        "--seed",
        "0",
        "--output",
        arg(&rebuilt),
    ]);
    for file in ["tokenizer.json", "config.json", "model.safetensors"] {
        let committed = std::fs::read(tiny.join(file)).unwrap();
        assert!(
            committed == std::fs::read(rebuilt.join(file)).unwrap(),
            "{file} differs"
        );
    }

    // A missing model is an error naming it; with a fallback, the fallback runs.
    let triples = triples(work.path(), 2);
    let missing = work.path().join("no-such-model.gguf");
    let output = work.path().join("tagged");
    let error = rlpt(&[
        "entropy",
        "--input",
        arg(&triples),
        "--output",
        arg(&output),
        "--model",
        arg(&missing),
    ]);
    assert!(!error.status.success());
    assert!(
        stderr(&error).contains("no-such-model.gguf"),
        "{}",
        stderr(&error)
    );
    entropy(
        &missing,
        &triples,
        &output,
        &["--fallback-model", arg(&rebuilt)],
    );
    let metadata = file_metadata(&shards(&output)[0]);
    assert_eq!(metadata["rlpt.model"], "tiny");
    assert_eq!(read_rows(&output).len(), read_rows(&triples).len());
}
