//! `rlpt inspect` on a real table, and its refusal of files it cannot trust.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::harness::*;

#[test]
fn inspect_describes_the_sample_table() {
    let out = tempfile::tempdir().unwrap();
    rlpt_ok(&ingest_args(
        &sample_input(),
        out.path(),
        &["--source", "wikipedia"],
    ));
    let report = stdout(&rlpt_ok(&["inspect", arg(out.path()), "--head", "2"]));
    let has_line = |start: &str| report.lines().any(|l| l.starts_with(start));
    assert!(
        has_line("table      documents (schema 1.0), written by `ingest` with config "),
        "{report}"
    );
    assert!(has_line("units      1 of 1 done (complete)"), "{report}");
    assert!(has_line("shards     1 files, 520 rows,"), "{report}");
    for column in ["id", "text", "source", "meta"] {
        assert!(
            report
                .lines()
                .any(|l| l.split_whitespace().next() == Some(column)),
            "{column}: {report}"
        );
    }
    let text_lengths = report
        .lines()
        .find(|l| l.starts_with("text ") && l.split_whitespace().count() == 7);
    let cells: Vec<f64> = text_lengths
        .unwrap_or_else(|| panic!("no text length row: {report}"))
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect();
    assert!(
        cells[0] > 0.0 && cells[0] <= cells[1] && cells[1] <= cells[2] && cells[4] >= cells[3],
        "{cells:?}"
    );
    assert!(has_line("wikipedia                       520"), "{report}");
    assert!(has_line("  documents                     520"), "{report}");
    assert!(has_line("rejects    none"), "{report}");
    assert!(has_line("  id           wikipedia/en/1"), "{report}");
}

#[test]
fn inspect_counts_rejects_and_flags_an_incomplete_directory() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    fs::create_dir_all(&input).unwrap();
    fs::copy(sample_dir().join("stem-es.jsonl"), input.join("a.jsonl")).unwrap();
    fs::write(input.join("b.jsonl"), "{\"text\":\"fine\"}\nnot json\n").unwrap();
    let out = work.path().join("out");
    rlpt_ok(&[
        "ingest",
        "--input",
        arg(&input),
        "--output",
        arg(&out),
        "--unit-bytes",
        "1KiB",
    ]);
    let report = stdout(&rlpt_ok(&["inspect", arg(&out)]));
    assert!(report.contains("rejects    1 in"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("  malformed_json") && l.ends_with(" 1")),
        "{report}"
    );
    fs::remove_file(out.join("_manifest/unit-00001.json")).unwrap();
    let report = stdout(&rlpt_ok(&["inspect", arg(&out)]));
    assert!(
        report.contains("units      1 of 2 done (INCOMPLETE: rerun the stage to finish)"),
        "{report}"
    );
}

fn write_documents_file(path: &Path, version: &str, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let key_values = [
        ("rlpt.schema", "documents"),
        ("rlpt.schema_version", version),
        ("rlpt.stage", "ingest"),
        ("rlpt.config_hash", "0"),
        ("rlpt.version", "9.0.0"),
    ]
    .into_iter()
    .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
    .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(key_values))
        .build();
    let mut writer =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn strings(value: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![value]))
}

#[test]
fn a_newer_schema_version_or_a_missing_column_is_refused_naming_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let full = || {
        vec![
            ("id", strings("a")),
            ("text", strings("t")),
            ("source", strings("s")),
            ("meta", strings("{}")),
        ]
    };
    write_documents_file(&dir.path().join("part-00000-0000.parquet"), "2.0", full());
    let output = rlpt(&["inspect", arg(dir.path())]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("part-00000-0000.parquet") && message.contains("schema version 2.0"),
        "{message}"
    );

    let mut columns = full();
    columns.remove(1);
    write_documents_file(&dir.path().join("part-00000-0000.parquet"), "1.0", columns);
    let message = stderr(&rlpt(&["inspect", arg(dir.path())]));
    assert!(
        message.contains("part-00000-0000.parquet") && message.contains("column `text` is missing"),
        "{message}"
    );
}

/// Regression: on 17 long documents (licence texts), every string column had few
/// distinct values, and `inspect` printed each whole text as a "value count".
#[test]
fn inspect_of_a_few_long_documents_stays_short() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("long.jsonl");
    let paragraph =
        "Permission is hereby granted, free of charge, to any person obtaining a copy.\n";
    let lines: Vec<String> = (0..17)
        .map(|i| {
            let text = format!("Licence {i}\n{}", paragraph.repeat(40));
            format!(
                r#"{{"id": "licence-{i}", "text": {}}}"#,
                serde_json_string(&text)
            )
        })
        .collect();
    fs::write(&input, lines.join("\n")).unwrap();
    let documents = work.path().join("documents");
    rlpt_ok(&ingest_args(&input, &documents, &["--source", "debian"]));
    let report = stdout(&rlpt_ok(&["inspect", arg(&documents), "--head", "3"]));
    assert!(
        report.lines().count() < 80,
        "{} lines:\n{report}",
        report.lines().count()
    );
    assert!(
        report.lines().all(|line| line.chars().count() <= 160),
        "a line is too long:\n{report}"
    );
    assert!(
        report.lines().any(|l| l.starts_with("debian ")),
        "the short source column still gets value counts:\n{report}"
    );
}

fn serde_json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}
