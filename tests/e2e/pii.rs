//! `rlpt pii` on real documents with planted personal information.

use std::fs;
use std::path::Path;

use crate::harness::*;

/// (id, text with PII, expected text after scrubbing).
const PLANTED: [(&str, &str, &str); 4] = [
    (
        "contact",
        "For corrections write to jane.doe@example.org or call +44 20 7946 0958; the mirror at 81.2.69.142 is public.",
        "For corrections write to <EMAIL> or call <PHONE>; the mirror at <IP> is public.",
    ),
    (
        "billing",
        "Card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00 were used; SSN 536-22-1943 on file.",
        "Card <CREDIT_CARD> and IBAN <IBAN> were used; SSN <US_SSN> on file.",
    ),
    (
        "leak",
        "config: api_key = \"q8F2vL9xR3tZ7mK1\" and AKIAIOSFODNN7EXAMPLE, router 192.168.0.1.",
        "config: api_key = \"<SECRET>\" and <SECRET>, router 192.168.0.1.",
    ),
    (
        "lookalikes",
        "Version 1.2.3.4 shipped 2024-01-15 (ISBN 978-3-16-148410-0) for $1,234.56, commit 3f786850e387550fdab836ed7e6dc881de23001b.",
        "Version 1.2.3.4 shipped 2024-01-15 (ISBN 978-3-16-148410-0) for $1,234.56, commit 3f786850e387550fdab836ed7e6dc881de23001b.",
    ),
];

/// The sample plus the planted documents, ingested.
fn documents(dir: &Path) -> std::path::PathBuf {
    let raw = dir.join("raw");
    fs::create_dir_all(&raw).unwrap();
    fs::copy(
        sample_dir().join("stem-fr.jsonl"),
        raw.join("a-sample.jsonl"),
    )
    .unwrap();
    let planted: String = PLANTED
        .iter()
        .map(|(id, text, _)| {
            serde_json::json!({ "id": id, "text": text, "topic": "test" }).to_string() + "\n"
        })
        .collect();
    fs::write(raw.join("b-planted.jsonl"), planted).unwrap();
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&raw, &documents, &[]));
    documents
}

#[test]
fn pii_is_replaced_exactly_and_clean_documents_are_untouched() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let scrubbed = work.path().join("scrubbed");
    let output = rlpt_ok(&[
        "pii",
        "--input",
        arg(&documents),
        "--output",
        arg(&scrubbed),
    ]);
    assert!(stdout(&output).lines().nth(1).unwrap().starts_with("pii"));
    let before = by_id(&documents);
    let after = by_id(&scrubbed);
    assert_eq!(after.len(), before.len());
    for (id, _, expected) in PLANTED {
        assert_eq!(get(&after[id], "text"), expected, "{id}");
        assert_eq!(
            get(&after[id], "meta"),
            r#"{"topic":"test"}"#,
            "other columns are kept"
        );
    }
    assert_eq!(get(&after["contact"], "pii_count"), "3");
    assert_eq!(
        ["pii_email", "pii_phone", "pii_ip"].map(|c| get(&after["contact"], c).to_string()),
        ["1", "1", "1"]
    );
    assert_eq!(get(&after["billing"], "pii_credit_card"), "1");
    assert_eq!(get(&after["leak"], "pii_secret"), "2");
    assert_eq!(get(&after["lookalikes"], "pii_count"), "0");
    for (id, row) in &before {
        if !PLANTED.iter().any(|(planted, _, _)| planted == id) {
            assert_eq!(
                get(&after[id], "text"),
                get(row, "text"),
                "{id} is clean and unchanged"
            );
        }
    }
    let unit: serde_json::Value =
        serde_json::from_slice(&fs::read(scrubbed.join("_manifest/unit-00000.json")).unwrap())
            .unwrap();
    assert_eq!(unit["counters"]["documents_with_pii"], 3);
    assert_eq!(unit["counters"]["hits_email"], 1);
}

#[test]
fn kinds_can_be_skipped_documents_dropped_and_runs_chained() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let partial = work.path().join("partial");
    rlpt_ok(&[
        "pii",
        "--input",
        arg(&documents),
        "--output",
        arg(&partial),
        "--skip",
        "phone,ip",
        "--placeholder",
        "email=[email]",
        "--drop-above",
        "2",
    ]);
    let rows = by_id(&partial);
    assert!(!rows.contains_key("billing"), "3 hits > 2: dropped");
    assert_eq!(
        get(&rows["contact"], "text"),
        "For corrections write to [email] or call +44 20 7946 0958; the mirror at 81.2.69.142 is public."
    );
    let again = work.path().join("again");
    rlpt_ok(&["pii", "--input", arg(&partial), "--output", arg(&again)]);
    let rows = read_rows(&again);
    let columns: Vec<&String> = rows[0].keys().filter(|k| k.starts_with("pii_")).collect();
    assert_eq!(
        columns.len(),
        8,
        "count columns are replaced, not repeated: {columns:?}"
    );
    let contact = rows.iter().find(|r| get(r, "id") == "contact").unwrap();
    assert_eq!(
        get(contact, "text"),
        "For corrections write to [email] or call <PHONE>; the mirror at <IP> is public."
    );
}
