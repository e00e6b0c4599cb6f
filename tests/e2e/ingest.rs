//! `rlpt ingest` on every input format, and its rejects.

use std::fs;
use std::io::Write;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use parquet::arrow::ArrowWriter;

use crate::harness::*;

fn ingest(
    input: &std::path::Path,
    output: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    rlpt_ok(&ingest_args(input, output, extra))
}

#[test]
fn the_jsonl_sample_becomes_documents_with_source_ids_and_meta() {
    let out = tempfile::tempdir().unwrap();
    let output = ingest(&sample_input(), out.path(), &["--source", "wikipedia"]);
    let rows = read_rows(out.path());
    assert_eq!(rows.len(), SAMPLE_DOCS);
    // Files are read in name order (stem-en, stem-es, stem-fr), lines in file order.
    let first_line = fs::read_to_string(sample_dir().join("stem-en.jsonl")).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(first_line.lines().next().unwrap()).unwrap();
    assert_eq!(get(&rows[0], "id"), first["id"].as_str().unwrap());
    assert_eq!(get(&rows[0], "text"), first["text"].as_str().unwrap());
    assert_eq!(get(&rows[0], "source"), "wikipedia");
    let meta: serde_json::Value = serde_json::from_str(get(&rows[0], "meta")).unwrap();
    assert_eq!(meta["title"], first["title"]);
    assert_eq!(meta["url"], first["url"]);
    assert!(meta.get("text").is_none() && meta.get("id").is_none());
    let spanish = fs::read_to_string(sample_dir().join("stem-es.jsonl")).unwrap();
    let spanish: serde_json::Value = serde_json::from_str(spanish.lines().next().unwrap()).unwrap();
    assert_eq!(
        get(&rows[400], "id"),
        spanish["id"].as_str().unwrap(),
        "Spanish follows English"
    );
    let summary = stdout(&output);
    assert!(
        summary.contains("ingest") && summary.contains(" 520 "),
        "{summary}"
    );
    assert!(
        !out.path().join("rejects").exists(),
        "a clean input has no rejects"
    );
}

#[test]
fn gzip_and_zstd_inputs_give_the_same_bytes_as_plain_ones() {
    let inputs = tempfile::tempdir().unwrap();
    let plain = fs::read(sample_dir().join("stem-fr.jsonl")).unwrap();
    fs::create_dir_all(inputs.path().join("plain")).unwrap();
    fs::write(inputs.path().join("plain/stem-fr.jsonl"), &plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    fs::create_dir_all(inputs.path().join("gz")).unwrap();
    fs::write(
        inputs.path().join("gz/stem-fr.jsonl.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    fs::create_dir_all(inputs.path().join("zst")).unwrap();
    fs::write(
        inputs.path().join("zst/stem-fr.jsonl.zst"),
        zstd::encode_all(&plain[..], 3).unwrap(),
    )
    .unwrap();
    let outs = tempfile::tempdir().unwrap();
    let mut tables = Vec::new();
    for kind in ["plain", "gz", "zst"] {
        let out = outs.path().join(kind);
        ingest(&inputs.path().join(kind), &out, &[]);
        assert_eq!(read_rows(&out).len(), 60);
        assert_eq!(
            get(&read_rows(&out)[0], "source"),
            "stem-fr",
            "the default source is the file stem"
        );
        tables.push(table_bytes(&out));
    }
    assert_eq!(tables[0], tables[1]);
    assert_eq!(tables[0], tables[2]);
}

#[test]
fn text_files_become_one_document_each_or_one_per_paragraph() {
    let inputs = tempfile::tempdir().unwrap();
    let docs = inputs.path().join("docs");
    fs::create_dir_all(docs.join("sub")).unwrap();
    fs::write(
        docs.join("a.txt"),
        "\u{feff}First paragraph,\r\nsecond line.\r\n\r\n  \r\nSecond paragraph.\r\n",
    )
    .unwrap();
    fs::write(docs.join("sub/b.md"), "Cafe\u{301} au lait.\n").unwrap();
    fs::write(docs.join("notes.bin"), "skipped: no known extension").unwrap();

    let per_file = tempfile::tempdir().unwrap();
    ingest(&docs, per_file.path(), &[]);
    let rows = read_rows(per_file.path());
    assert_eq!(rows.len(), 2);
    assert_eq!(
        get(&rows[0], "text"),
        "First paragraph,\r\nsecond line.\r\n\r\n  \r\nSecond paragraph.\r\n",
        "a whole file is kept as is, minus its BOM"
    );
    assert_eq!(get(&rows[0], "meta"), r#"{"path":"a.txt"}"#);
    assert_eq!(
        get(&rows[1], "text"),
        "Caf\u{e9} au lait.\n",
        "text is NFC-normalised"
    );
    assert_eq!(get(&rows[1], "meta"), r#"{"path":"sub/b.md"}"#);
    let id = get(&rows[1], "id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a content hash: {id}"
    );

    let per_paragraph = tempfile::tempdir().unwrap();
    ingest(&docs, per_paragraph.path(), &["--text-mode", "paragraph"]);
    let rows = read_rows(per_paragraph.path());
    let texts: Vec<&str> = rows.iter().map(|r| get(r, "text")).collect();
    assert_eq!(
        texts,
        [
            "First paragraph,\nsecond line.",
            "Second paragraph.",
            "Caf\u{e9} au lait."
        ]
    );
    assert_eq!(get(&rows[1], "meta"), r#"{"line":5,"path":"a.txt"}"#);
}

#[test]
fn parquet_inputs_use_the_named_columns_and_keep_the_rest_as_meta() {
    let inputs = tempfile::tempdir().unwrap();
    let path = inputs.path().join("crawl.parquet");
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "doc_id",
            Arc::new(Int64Array::from(vec![Some(7), Some(8), None, Some(10)])),
        ),
        (
            "content",
            Arc::new(StringArray::from(vec![
                Some("Alpha."),
                None,
                Some("Gamma."),
                Some("   "),
            ])),
        ),
        (
            "url",
            Arc::new(StringArray::from(vec![
                "https://a",
                "https://b",
                "https://c",
                "https://d",
            ])),
        ),
        (
            "score",
            Arc::new(Float64Array::from(vec![0.5, 0.25, 1.0, 0.0])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let out = tempfile::tempdir().unwrap();
    ingest(
        &path,
        out.path(),
        &["--text-field", "content", "--id-field", "doc_id"],
    );
    let rows = read_rows(out.path());
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (get(&rows[0], "id"), get(&rows[0], "text")),
        ("7", "Alpha.")
    );
    assert_eq!(get(&rows[0], "meta"), r#"{"url":"https://a","score":0.5}"#);
    assert_eq!(
        get(&rows[1], "id").len(),
        32,
        "a null id falls back to the content hash"
    );
    let rejects = read_rows(&out.path().join("rejects"));
    let found: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (get(r, "line"), get(r, "reason")))
        .collect();
    assert_eq!(found, [("2", "missing_text"), ("4", "empty_text")]);
}

/// Regression: a dictionary-encoded `text` column (pyarrow's `dictionary_encode`) was
/// rejected, both by ingest and by a stage reading a documents table.
#[test]
fn dictionary_encoded_text_columns_are_read_as_text() {
    let work = tempfile::tempdir().unwrap();
    let write = |path: &std::path::Path, columns: Vec<(&str, ArrayRef)>| {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut writer =
            ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    };
    let texts = [
        "Write to alice@example.com today.",
        "Repeated.",
        "Repeated.",
    ];
    let dictionary = || -> ArrayRef {
        Arc::new(
            texts
                .iter()
                .copied()
                .collect::<DictionaryArray<Int32Type>>(),
        )
    };
    let raw = work.path().join("raw.parquet");
    write(&raw, vec![("text", dictionary())]);
    let ingested = work.path().join("ingested");
    ingest(&raw, &ingested, &[]);
    let read: Vec<String> = read_rows(&ingested)
        .iter()
        .map(|r| get(r, "text").to_string())
        .collect();
    assert_eq!(read, texts);

    let documents = work.path().join("documents");
    fs::create_dir(&documents).unwrap();
    write(
        &documents.join("docs.parquet"),
        vec![
            ("id", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
            ("text", dictionary()),
            ("source", Arc::new(StringArray::from(vec!["s"; 3]))),
            ("meta", Arc::new(StringArray::from(vec![None::<&str>; 3]))),
        ],
    );
    let scrubbed = work.path().join("scrubbed");
    rlpt_ok(&[
        "pii",
        "--input",
        arg(&documents),
        "--output",
        arg(&scrubbed),
    ]);
    let rows = read_rows(&scrubbed);
    assert_eq!(get(&rows[0], "text"), "Write to <EMAIL> today.");
    assert_eq!(get(&rows[2], "text"), "Repeated.");
}

#[test]
fn a_parquet_text_column_of_bytes_must_be_utf8() {
    let inputs = tempfile::tempdir().unwrap();
    let path = inputs.path().join("bytes.parquet");
    let text: ArrayRef = Arc::new(BinaryArray::from(vec![b"ok".as_slice(), b"\xff\xfe"]));
    let batch = RecordBatch::try_from_iter([("text", text)]).unwrap();
    let mut writer =
        ArrowWriter::try_new(fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let out = tempfile::tempdir().unwrap();
    ingest(&path, out.path(), &[]);
    assert_eq!(read_rows(out.path()).len(), 1);
    let rejects = read_rows(&out.path().join("rejects"));
    assert_eq!(
        (get(&rejects[0], "line"), get(&rejects[0], "reason")),
        ("2", "invalid_utf8")
    );
}

/// A JSONL file with one bad record of each kind, at known lines.
fn messy_jsonl(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("messy.jsonl");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"{\"id\":\"a\",\"text\":\"good one\"}\n"); // 1
    bytes.extend_from_slice(b"\n"); // 2: blank, skipped
    bytes.extend_from_slice(b"{\"id\":\"b\",\"text\":\"unterminated\n"); // 3
    bytes.extend_from_slice(b"{\"id\":\"c\",\"text\":\"good two\"}\n"); // 4
    bytes.extend_from_slice(b"{\"id\":\"d\",\"text\":\"caf\xe9\"}\n"); // 5
    bytes.extend_from_slice(b"{\"id\":\"e\",\"body\":\"no text field\"}\n"); // 6
    bytes.extend_from_slice(b"{\"id\":\"f\",\"text\":\"  \"}\n"); // 7
    bytes.extend_from_slice(b"{\"id\":\"g\",\"text\":42}\n"); // 8
    bytes.extend_from_slice(b"[1,2]\n"); // 9
    bytes.extend_from_slice(b"{\"id\":\"h\",\"text\":\"good three\"}"); // 10, no final newline
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bad_records_go_to_rejects_with_file_line_and_reason() {
    let inputs = tempfile::tempdir().unwrap();
    let path = messy_jsonl(inputs.path());
    let out = tempfile::tempdir().unwrap();
    let output = ingest(&path, out.path(), &[]);
    let ids: Vec<String> = read_rows(out.path())
        .iter()
        .map(|r| get(r, "id").to_string())
        .collect();
    assert_eq!(ids, ["a", "c", "h"]);
    let rejects = read_rows(&out.path().join("rejects"));
    let found: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (get(r, "line"), get(r, "reason")))
        .collect();
    assert_eq!(
        found,
        [
            ("3", "malformed_json"),
            ("5", "invalid_utf8"),
            ("6", "missing_text"),
            ("7", "empty_text"),
            ("8", "non_string_text"),
            ("9", "not_an_object"),
        ]
    );
    assert!(rejects.iter().all(|r| get(r, "file") == arg(&path)));
    assert_eq!(
        get(&rejects[1], "raw"),
        "{\"id\":\"d\",\"text\":\"caf\u{fffd}\"}",
        "the raw bytes are kept"
    );
    assert_eq!(
        get(&rejects[4], "detail"),
        "field `text` is a number, expected a string"
    );
    let summary = stdout(&output);
    assert!(
        summary.contains("empty_text: 1") && summary.contains("malformed_json: 1"),
        "{summary}"
    );
    let unit: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("_manifest/unit-00000.json")).unwrap())
            .unwrap();
    assert_eq!(unit["rows_in"], 9);
    assert_eq!(unit["rows_out"], 3);
    assert_eq!(unit["reject_reasons"]["invalid_utf8"], 1);
    assert_eq!(unit["counters"]["blank_lines"], 1);
}

#[test]
fn strict_mode_stops_at_the_first_bad_record() {
    let inputs = tempfile::tempdir().unwrap();
    let path = messy_jsonl(inputs.path());
    let out = tempfile::tempdir().unwrap();
    let output = rlpt(&[
        "ingest",
        "--input",
        arg(&path),
        "--output",
        arg(out.path()),
        "--strict",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("messy.jsonl, line 3: malformed_json"),
        "{message}"
    );
    assert!(
        !out.path().join("_manifest/unit-00000.json").exists(),
        "the unit is not done"
    );
    // Regression: the stopped unit left its half-written part-00000-0000.parquet.tmp.
    let shards: Vec<_> = entries_under(out.path())
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(".parquet"))
        .collect();
    assert!(shards.is_empty(), "the stopped unit left {shards:?}");
}

/// Regression: `.rst` files were not recognised by `--format auto`, and a table stage
/// given JSONL said "Corrupt footer".
#[test]
fn rst_is_text_and_a_raw_file_given_to_a_table_stage_is_named_as_such() {
    let inputs = tempfile::tempdir().unwrap();
    fs::write(
        inputs.path().join("guide.rst"),
        "Title\n=====\n\nSome reST text.\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    ingest(inputs.path(), out.path(), &[]);
    assert_eq!(
        read_rows(out.path()).len(),
        1,
        "the .rst file is a document"
    );

    let raw = inputs.path().join("docs.parquet");
    fs::copy(sample_dir().join("stem-en.jsonl"), &raw).unwrap();
    let scrubbed = tempfile::tempdir().unwrap();
    let output = rlpt(&[
        "pii",
        "--input",
        arg(&raw),
        "--output",
        arg(scrubbed.path()),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("not a Parquet file (it looks like JSONL)")
            && message.contains("rlpt ingest"),
        "{message}"
    );
}

#[test]
fn a_truncated_gzip_keeps_what_was_readable_and_rejects_the_rest() {
    let inputs = tempfile::tempdir().unwrap();
    let plain = fs::read(sample_dir().join("stem-en.jsonl")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let compressed = gz.finish().unwrap();
    let path = inputs.path().join("cut.jsonl.gz");
    fs::write(&path, &compressed[..compressed.len() / 2]).unwrap();
    let out = tempfile::tempdir().unwrap();
    ingest(&path, out.path(), &[]);
    let kept = read_rows(out.path()).len();
    assert!(kept > 50 && kept < 400, "kept {kept} of 400");
    let rejects = read_rows(&out.path().join("rejects"));
    let last = rejects.last().unwrap();
    assert_eq!(get(last, "reason"), "unreadable");
    assert!(
        get(last, "detail").starts_with("reading stopped here"),
        "{last:?}"
    );
}

#[test]
fn documents_of_tens_of_megabytes_are_ingested_whole() {
    let inputs = tempfile::tempdir().unwrap();
    let paragraph = "Les équations différentielles décrivent l'évolution. ";
    let huge = paragraph.repeat(30 * 1024 * 1024 / paragraph.len());
    let record = serde_json::json!({ "id": "huge", "text": huge }).to_string();
    fs::write(
        inputs.path().join("huge.jsonl"),
        format!("{{\"text\":\"small\"}}\n{record}\n"),
    )
    .unwrap();
    fs::write(inputs.path().join("huge.txt"), &huge).unwrap();
    let out = tempfile::tempdir().unwrap();
    ingest(inputs.path(), out.path(), &[]);
    let rows = read_rows(out.path());
    let lengths: Vec<usize> = rows.iter().map(|r| get(r, "text").len()).collect();
    assert_eq!(lengths, [5, huge.len(), huge.len()]);
    assert_eq!(get(&rows[1], "id"), "huge");
}

#[test]
fn an_input_that_matches_nothing_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let output = rlpt(&[
        "ingest",
        "--input",
        "data-samples/nothing-*.jsonl",
        "--output",
        arg(out.path()),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--input data-samples/nothing-*.jsonl: matched no input files")
    );
}

/// Regression: a FIFO in an input directory hung ingest (the read never returned); a
/// file that is not a regular one is skipped with a warning naming it, and one given
/// as `--input` is refused.
#[test]
fn a_fifo_among_the_inputs_is_skipped_with_a_warning() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("a.jsonl"), "{\"text\": \"kept\"}\n").unwrap();
    let fifo = input.join("pipe.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = work.path().join("out");
    let mut child = rlpt_in(&repo_root())
        .args(ingest_args(&input, &out, &[]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("ingest hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("pipe.jsonl: not a regular file"),
        "{}",
        stderr(&output)
    );
    let texts: Vec<String> = read_rows(&out)
        .iter()
        .map(|r| get(r, "text").to_string())
        .collect();
    assert_eq!(texts, ["kept"]);

    let direct = rlpt(&ingest_args(&fifo, &work.path().join("direct"), &[]));
    assert_eq!(direct.status.code(), Some(1));
    assert!(
        stderr(&direct).contains("not a regular file"),
        "{}",
        stderr(&direct)
    );
}

/// Regression: a `.jsonl.gz` holding one huge line was read whole (1 GB of RSS for a
/// 1 GB line); a record over `--max-record-bytes` is a `too_long` reject, skipped as it
/// streams by, and the lines around it are kept.
#[test]
fn a_record_over_max_record_bytes_is_rejected_too_long() {
    let inputs = tempfile::tempdir().unwrap();
    let huge = format!("{{\"text\": \"{}\"}}", "a".repeat(20 << 20));
    let plain = format!("{{\"text\": \"before\"}}\n{huge}\n{{\"text\": \"after\"}}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(plain.as_bytes()).unwrap();
    let path = inputs.path().join("huge.jsonl.gz");
    fs::write(&path, gz.finish().unwrap()).unwrap();
    let text_dir = inputs.path().join("text");
    fs::create_dir(&text_dir).unwrap();
    fs::write(text_dir.join("big.txt"), "b".repeat(3 << 20)).unwrap();
    fs::write(text_dir.join("small.txt"), "A small text file.").unwrap();
    for (input, kept) in [
        (&path, ["before", "after"]),
        (&text_dir, ["A small text file.", ""]),
    ] {
        let out = tempfile::tempdir().unwrap();
        ingest(input, out.path(), &["--max-record-bytes", "1MiB"]);
        let texts: Vec<String> = read_rows(out.path())
            .iter()
            .map(|row| get(row, "text").to_string())
            .collect();
        let expected: Vec<&str> = kept.iter().copied().filter(|t| !t.is_empty()).collect();
        assert_eq!(texts, expected);
        let rejects = read_rows(&out.path().join("rejects"));
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(get(&rejects[0], "reason"), "too_long");
        let line = if input == &path { "2" } else { "1" };
        assert_eq!(get(&rejects[0], "line"), line);
        assert!(get(&rejects[0], "detail").contains("--max-record-bytes 1048576"));
    }
}

#[test]
fn input_repeats_to_read_several_in_the_order_given() {
    let work = tempfile::tempdir().unwrap();
    let fr = sample_dir().join("stem-fr.jsonl");
    let en = sample_dir().join("stem-en.jsonl");
    let out = work.path().join("out");
    rlpt_ok(&[
        "ingest",
        "--input",
        arg(&fr),
        "--input",
        arg(&en),
        "--output",
        arg(&out),
    ]);
    let ids: Vec<String> = read_rows(&out)
        .iter()
        .map(|r| get(r, "id").to_string())
        .collect();
    let ids_of = |path: &std::path::Path| -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        ids,
        [ids_of(&fr), ids_of(&en)].concat(),
        "French first, as given"
    );

    let twice = rlpt(&[
        "ingest",
        "--input",
        arg(&sample_dir().join("stem-*.jsonl")),
        "--input",
        arg(&en),
        "--output",
        arg(&work.path().join("twice")),
    ]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        stderr(&twice).contains("stem-en.jsonl is also named by --input"),
        "{}",
        stderr(&twice)
    );

    // A link inside one input is read as the file it names, as before (a directory of
    // licences links GFDL to GFDL-1.3).
    let linked = work.path().join("linked");
    fs::create_dir_all(&linked).unwrap();
    fs::copy(&en, linked.join("a.jsonl")).unwrap();
    std::os::unix::fs::symlink(linked.join("a.jsonl"), linked.join("b.jsonl")).unwrap();
    let out = work.path().join("linked-out");
    rlpt_ok(&ingest_args(&linked, &out, &[]));
    assert_eq!(read_rows(&out).len(), 2 * ids_of(&en).len());
}
