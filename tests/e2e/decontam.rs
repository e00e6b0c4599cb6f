//! `rlpt decontam` with the real benchmarks (HumanEval, CHAMP) planted in real text.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::harness::*;

/// `rlpt decontam` of `documents` into `output` against HumanEval and CHAMP.
fn decontam(documents: &Path, output: &Path, extra: &[&str]) {
    let mut args: Vec<String> = [
        "decontam",
        "--input",
        arg(documents),
        "--output",
        arg(output),
    ]
    .map(String::from)
    .into();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(benchmark_args());
    rlpt_ok(&args);
}

fn benchmark_args() -> Vec<String> {
    let dir = repo_root().join("data-samples/benchmarks");
    vec![
        "--benchmark".into(),
        format!(
            "humaneval={}:prompt,canonical_solution",
            dir.join("HumanEval.jsonl.gz").display()
        ),
        "--benchmark".into(),
        format!(
            "champ={}:problem,solution",
            dir.join("champ.jsonl").display()
        ),
    ]
}

fn humaneval_prompt() -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        fs::File::open(repo_root().join("data-samples/benchmarks/HumanEval.jsonl.gz")).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["prompt"].as_str().unwrap().to_string()
}

fn champ_item(id: &str) -> (String, String) {
    let text = fs::read_to_string(repo_root().join("data-samples/benchmarks/champ.jsonl")).unwrap();
    let item = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .unwrap();
    (
        item["problem"].as_str().unwrap().to_string(),
        item["solution"].as_str().unwrap().to_string(),
    )
}

/// Real Wikipedia paragraphs, long enough to keep pieces on both sides of a cut.
fn wiki_paragraphs() -> Vec<String> {
    fs::read_to_string(sample_dir().join("stem-en.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|t| t.len() > 600)
        .collect()
}

fn documents(dir: &Path, planted: &[(String, String)]) -> PathBuf {
    let raw = dir.join("raw");
    fs::create_dir_all(&raw).unwrap();
    fs::copy(
        sample_dir().join("stem-es.jsonl"),
        raw.join("a-clean.jsonl"),
    )
    .unwrap();
    let lines: String = planted
        .iter()
        .map(|(id, text)| serde_json::json!({ "id": id, "text": text }).to_string() + "\n")
        .collect();
    fs::write(raw.join("b-planted.jsonl"), lines).unwrap();
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&raw, &documents, &[]));
    documents
}

#[test]
fn planted_items_are_cut_out_however_formatted_and_clean_documents_are_byte_identical() {
    let wiki = wiki_paragraphs();
    let (problem, solution) = champ_item("P_Combinatorics_1");
    let prompt = humaneval_prompt();
    let mangled = problem
        .to_uppercase()
        .replace(", ", " ,  ")
        .replace('?', " ?!");
    let (first_half, second_half) = solution.split_at(solution.len() / 2);
    let split_solution = format!("{first_half}\n\n{second_half}");
    let planted = vec![
        (
            "verbatim".to_string(),
            format!("{}\n\n{prompt}\n\n{}", wiki[0], wiki[1]),
        ),
        (
            "mangled".to_string(),
            format!("{} {mangled} {}", wiki[2], wiki[3]),
        ),
        (
            "split".to_string(),
            format!("{}\n{split_solution}\n{}", wiki[4], wiki[5]),
        ),
        ("short".to_string(), format!("As asked: {problem}")),
    ];
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path(), &planted);
    let output = work.path().join("clean");
    decontam(&documents, &output, &[]);

    let before = by_id(&documents);
    let after = by_id(&output);
    let verbatim = get(&after["verbatim"], "text");
    assert!(
        !verbatim.contains("has_close_elements") && !verbatim.contains("closer to each other"),
        "{verbatim}"
    );
    assert!(
        verbatim.starts_with(&wiki[0][..100])
            && verbatim.ends_with(&wiki[1][wiki[1].len() - 100..])
    );
    let mangled_out = get(&after["mangled"], "text");
    assert!(!mangled_out.contains("ADJACENT DIGIT"), "{mangled_out}");
    let split_out = get(&after["split"], "text");
    assert!(
        !split_out.contains("x_6+y_6+z_6") && !split_out.contains("end with digit"),
        "{split_out}"
    );
    assert!(
        !after.contains_key("short"),
        "nothing long enough is left: dropped"
    );
    for (id, row) in &before {
        if !planted.iter().any(|(planted, _)| planted == id) {
            assert_eq!(&after[id], row, "{id} is clean: every column unchanged");
        }
    }

    let report = read_rows(&output.join("contamination"));
    let hits: Vec<[String; 4]> = report
        .iter()
        .map(|r| ["doc_id", "benchmark", "item_id", "action"].map(|c| get(r, c).to_string()))
        .collect();
    for hit in [
        ["verbatim", "humaneval", "HumanEval/0", "removed"],
        ["mangled", "champ", "P_Combinatorics_1", "removed"],
        ["split", "champ", "P_Combinatorics_1", "removed"],
        ["short", "champ", "P_Combinatorics_1", "dropped"],
    ] {
        let hit = hit.map(String::from);
        assert!(hits.contains(&hit), "{hit:?} not in {hits:?}");
    }
    let verbatim_hit = report
        .iter()
        .find(|r| get(r, "doc_id") == "verbatim")
        .unwrap();
    let words = get(verbatim_hit, "ngram")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count();
    assert_eq!(words, 13, "the first matching 13-gram: {verbatim_hit:?}");
    assert_eq!(get(verbatim_hit, "matches"), "50");
}

#[test]
fn drop_mode_drops_every_contaminated_document() {
    let wiki = wiki_paragraphs();
    let (problem, _) = champ_item("P_Number-Theory_1");
    let planted = vec![(
        "long".to_string(),
        format!("{} {problem} {} {}", wiki[0], wiki[1], wiki[2]),
    )];
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path(), &planted);
    let output = work.path().join("clean");
    decontam(&documents, &output, &["--mode", "drop"]);
    assert!(!by_id(&output).contains_key("long"));
    assert_eq!(by_id(&output).len(), 60, "the 60 clean documents stay");
    assert_eq!(
        get(&read_rows(&output.join("contamination"))[0], "action"),
        "dropped"
    );
}

#[test]
fn a_missing_benchmark_field_is_a_config_error_naming_file_and_line() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path(), &[]);
    let bench = repo_root().join("data-samples/benchmarks/champ.jsonl");
    let output = rlpt(&[
        "decontam",
        "--input",
        arg(&documents),
        "--output",
        arg(&work.path().join("o")),
        "--benchmark",
        &format!("champ={}:question", bench.display()),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("champ.jsonl") && message.contains("line 1: no field `question`"),
        "{message}"
    );
}

/// Regression: with no hits there was no `contamination/` table at all, so
/// `pl.scan_parquet("out/clean/contamination/*.parquet")` failed; and a table with no
/// rows could not be read by the next stage ("the table has no shards").
#[test]
fn no_hits_still_write_an_empty_report_and_an_empty_table_reads_downstream() {
    let work = tempfile::tempdir().unwrap();
    let documents = work.path().join("documents");
    rlpt_ok(&ingest_args(
        &sample_dir().join("stem-fr.jsonl"),
        &documents,
        &[],
    ));
    let clean = work.path().join("clean");
    decontam(&documents, &clean, &[]);
    let report = shards(&clean.join("contamination"));
    assert!(!report.is_empty(), "the report has a shard");
    let rows: usize = report
        .iter()
        .flat_map(|shard| read_parquet(shard))
        .map(|batch| batch.num_rows())
        .sum();
    assert_eq!(rows, 0);

    let empty_input = work.path().join("empty.jsonl");
    std::fs::write(&empty_input, "{\"text\": \"\"}\n{\"text\": \"   \"}\n").unwrap();
    let empty = work.path().join("empty");
    rlpt_ok(&ingest_args(&empty_input, &empty, &[]));
    assert!(read_rows(&empty).is_empty());
    let scrubbed = work.path().join("scrubbed");
    rlpt_ok(&["pii", "--input", arg(&empty), "--output", arg(&scrubbed)]);
    let tokenizer = repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz");
    let triples = work.path().join("triples");
    rlpt_ok(&[
        "segment",
        "--input",
        arg(&scrubbed),
        "--output",
        arg(&triples),
        "--tokenizer",
        arg(&tokenizer),
    ]);
    assert!(read_rows(&triples).is_empty());
}
