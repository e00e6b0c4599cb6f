//! `rlpt segment` on the sample with SmolLM2's tokenizer: triples are exact slices of
//! their documents, token counts exact, contexts within budget and cut at segment
//! boundaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rlpt_lm::Tokenizer;
use rlpt_stages::segment::{SegmentConfig, Segmenter};

use crate::harness::*;

fn tokenizer_path() -> PathBuf {
    repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz")
}

fn segment(documents: &Path, output: &Path, extra: &[&str]) {
    let mut args = vec![
        "segment",
        "--input",
        arg(documents),
        "--output",
        arg(output),
    ];
    let tokenizer = tokenizer_path();
    args.extend(["--tokenizer", arg(&tokenizer)]);
    args.extend_from_slice(extra);
    rlpt_ok(&args);
}

fn documents(dir: &Path) -> PathBuf {
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&sample_input(), &documents, &[]));
    documents
}

fn texts(documents: &Path) -> BTreeMap<String, String> {
    read_rows(documents)
        .into_iter()
        .map(|r| (get(&r, "id").to_string(), get(&r, "text").to_string()))
        .collect()
}

#[test]
fn triples_are_exact_slices_with_exact_token_counts() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let output = work.path().join("triples");
    segment(&documents, &output, &[]);
    let texts = texts(&documents);
    let tokenizer = Tokenizer::from_file(&tokenizer_path()).unwrap();
    let rows = read_rows(&output);
    assert!(rows.len() > 1000, "{} triples", rows.len());
    for row in &rows {
        let (doc, index) = (get(row, "doc_id"), get(row, "seg_index"));
        assert_eq!(get(row, "id"), format!("{doc}#{index}"));
        let (context, segment) = (get(row, "context"), get(row, "segment"));
        let slice = format!("{context}{segment}");
        let text = &texts[doc];
        let at = text
            .find(&slice)
            .unwrap_or_else(|| panic!("{doc}#{index}: not a slice of the document"));
        assert!(text[..at].trim().is_empty() || !context.is_empty());
        assert_eq!(
            get(row, "context_tokens").parse::<usize>().unwrap(),
            tokenizer.count(context).unwrap()
        );
        assert_eq!(
            get(row, "segment_tokens").parse::<usize>().unwrap(),
            tokenizer.count(segment).unwrap()
        );
        assert_eq!(
            segment,
            segment.trim(),
            "segments carry no surrounding whitespace"
        );
    }
    let first = &rows[0];
    let second = rows
        .iter()
        .find(|r| get(r, "doc_id") == get(first, "doc_id") && get(r, "seg_index") == "2")
        .unwrap();
    assert_eq!(get(first, "next_segment"), get(second, "segment"));
    let shard = shards(&output).remove(0);
    let metadata = parquet::file::reader::FileReader::metadata(
        &parquet::file::reader::SerializedFileReader::new(std::fs::File::open(shard).unwrap())
            .unwrap(),
    )
    .file_metadata()
    .key_value_metadata()
    .unwrap()
    .clone();
    let tokenizer_key = metadata
        .iter()
        .find(|kv| kv.key == "rlpt.tokenizer")
        .unwrap();
    assert_eq!(tokenizer_key.value.as_deref(), Some("smollm2-135m.json.gz"));
}

#[test]
fn contexts_are_cut_at_segment_boundaries_within_the_budget() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let output = work.path().join("triples");
    segment(
        &documents,
        &output,
        &["--max-context-tokens", "40", "--min-segment-chars", "0"],
    );
    let rows = read_rows(&output);
    let texts = texts(&documents);
    let tokenizer = Tokenizer::from_file(&tokenizer_path()).unwrap();
    let count = |text: &str| tokenizer.count(text).map_err(|e| e.to_string());
    let config = SegmentConfig {
        tokenizer: tokenizer_path(),
        max_context_tokens: 40,
        min_segment_chars: 0,
        ..SegmentConfig::default()
    };
    let segmenter = Segmenter::new(&config, &count);
    let mut truncated = 0;
    for row in &rows {
        let tokens: usize = get(row, "context_tokens").parse().unwrap();
        assert!(tokens <= 40, "{row:?}");
        let index: usize = get(row, "seg_index").parse().unwrap();
        let first = index - get(row, "context_segments").parse::<usize>().unwrap();
        truncated += usize::from(first > 0);
        let text = &texts[get(row, "doc_id")];
        let starts: Vec<usize> = segmenter
            .segments(text)
            .unwrap()
            .0
            .iter()
            .map(|s| s.start)
            .collect();
        let slice = format!("{}{}", get(row, "context"), get(row, "segment"));
        let at = text.find(&slice).unwrap();
        assert_eq!(
            at, starts[first],
            "the context starts at segment {first}: {row:?}"
        );
        if first > 0 {
            let longer = &text[starts[first - 1]..starts[index]];
            assert!(
                tokenizer.count(longer).unwrap() > 40,
                "the context is the longest within the budget: {row:?}"
            );
        }
    }
    assert!(truncated > 100, "the budget truncated {truncated} contexts");
}

#[test]
fn a_missing_tokenizer_is_named() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let output = rlpt(&[
        "segment",
        "--input",
        arg(&documents),
        "--output",
        arg(&work.path().join("t")),
        "--tokenizer",
        "nowhere.json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nowhere.json"),
        "{}",
        stderr(&output)
    );
}

/// Regression: `--min-context-segments 0` panicked (index out of bounds) on the first
/// segment of every document.
#[test]
fn zero_min_context_segments_gives_every_segment_a_triple() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let with_context = work.path().join("with-context");
    segment(&documents, &with_context, &[]);
    let every = work.path().join("every");
    segment(&documents, &every, &["--min-context-segments", "0"]);
    let rows = read_rows(&every);
    let firsts: Vec<_> = rows.iter().filter(|r| get(r, "seg_index") == "0").collect();
    assert_eq!(
        firsts.len(),
        texts(&documents).len(),
        "each document's first segment is a triple"
    );
    for first in &firsts {
        assert_eq!(get(first, "context"), "");
        assert_eq!(get(first, "context_segments"), "0");
        assert_eq!(get(first, "context_tokens"), "0");
    }
    assert_eq!(
        rows.len(),
        read_rows(&with_context).len() + firsts.len(),
        "the other triples are those of the default"
    );
}
