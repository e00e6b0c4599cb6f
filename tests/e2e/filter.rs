//! `rlpt filter` on the embedded sample plus planted pages: language keep-list, URL
//! block list, quality rules with the reason of each drop, determinism, resume, and
//! agreement with datatrove's filters on the same documents.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// The sample's English and French leads, pages of English leads one per line, and
/// planted pages: (id, text, url).
fn documents(dir: &Path) -> PathBuf {
    let raw = dir.join("raw");
    fs::create_dir_all(&raw).unwrap();
    for file in ["stem-en.jsonl", "stem-fr.jsonl"] {
        fs::copy(sample_dir().join(file), raw.join(file)).unwrap();
    }
    let english: Vec<String> = fs::read_to_string(sample_dir().join("stem-en.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut planted: Vec<(String, String, &str)> = english
        .chunks(6)
        .enumerate()
        .map(|(i, leads)| {
            (
                format!("page/{i}"),
                leads.join("\n"),
                "https://en.wikipedia.org/wiki/Page",
            )
        })
        .collect();
    let page = english[..6].join("\n");
    planted.extend([
        (
            "spam".to_string(),
            page.clone(),
            "https://www.spam.example/offers",
        ),
        (
            "lorem".to_string(),
            format!("{page}\nLorem ipsum dolor sit amet, consectetur adipiscing elit."),
            "https://lorem.test/",
        ),
        (
            "menu".to_string(),
            "Home\nAbout\nContact\nShop\nLogin\nCart".to_string(),
            "https://shop.test/",
        ),
    ]);
    let lines: String = planted
        .iter()
        .map(|(id, text, url)| {
            serde_json::json!({"id": id, "text": text, "url": url}).to_string() + "\n"
        })
        .collect();
    fs::write(raw.join("z-pages.jsonl"), lines).unwrap();
    let documents = dir.join("documents");
    rlpt_ok(&ingest_args(&raw, &documents, &[]));
    documents
}

fn filter_args<'a>(input: &'a Path, output: &'a Path, blocklist: &'a Path) -> Vec<&'a str> {
    vec![
        "filter",
        "--input",
        arg(input),
        "--output",
        arg(output),
        "--url-blocklist",
        arg(blocklist),
    ]
}

#[test]
fn filter_keeps_english_prose_and_drops_the_rest_with_the_rule_that_failed() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let blocklist = work.path().join("blocklist.txt");
    fs::write(&blocklist, "# test list\nspam.example\n").unwrap();
    let out = work.path().join("filtered");
    let run = rlpt_ok(&filter_args(&documents, &out, &blocklist));
    assert!(stdout(&run).contains("filter kept "), "{}", stdout(&run));

    let input = by_id(&documents);
    let kept = by_id(&out);
    let dropped: Vec<Row> = read_rows(&out.join("dropped"));
    assert_eq!(kept.len() + dropped.len(), input.len());
    let reason_of = |id: &str| {
        dropped
            .iter()
            .find(|row| get(row, "doc_id") == id)
            .map(|row| (get(row, "rule").to_string(), get(row, "reason").to_string()))
    };
    assert_eq!(
        reason_of("spam"),
        Some(("url".into(), "url_domain_blocked".into()))
    );
    assert_eq!(
        reason_of("lorem"),
        Some(("c4".into(), "c4_lorem_ipsum".into()))
    );
    assert!(reason_of("menu").is_some(), "a menu is not prose");
    let french: Vec<&String> = input
        .keys()
        .filter(|id| id.starts_with("wikipedia/fr/"))
        .collect();
    assert_eq!(french.len(), 60, "the sample's French leads");
    for id in french {
        assert_eq!(reason_of(id).unwrap().1, "lang_not_kept", "{id}");
    }
    // Single leads are short of Gopher's 50 words or C4's 5 sentences; pages of six are not.
    let kept_pages = kept.keys().filter(|id| id.starts_with("page/")).count();
    assert!(kept_pages > 10, "{kept_pages} pages kept");
    for row in kept.values() {
        assert_eq!(get(row, "lang"), "eng");
        assert!(get(row, "lang_score").parse::<f64>().unwrap() > 0.0);
    }
    for row in &dropped {
        assert_eq!(
            get(row, "text"),
            get(&input[get(row, "doc_id")], "text"),
            "nothing is lost"
        );
        assert!(!get(row, "detail").is_empty());
    }

    // Same bytes with one thread; a rerun reuses; a changed block list is a changed config.
    let one = work.path().join("one-thread");
    rlpt_ok(
        &[
            &["--threads", "1"][..],
            &filter_args(&documents, &one, &blocklist),
        ]
        .concat(),
    );
    assert_eq!(table_bytes(&one), table_bytes(&out));
    let again = rlpt_ok(
        &[
            &["--log-format", "json"][..],
            &filter_args(&documents, &out, &blocklist),
        ]
        .concat(),
    );
    assert!(
        stdout(&again).contains("\"units_reused\":1"),
        "{}",
        stdout(&again)
    );
    fs::write(&blocklist, "spam.example\nshop.test\n").unwrap();
    let refused = rlpt(&filter_args(&documents, &out, &blocklist));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("url_blocklist_xxh3"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_bad_filter_setting_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let documents = documents(work.path());
    let out = work.path().join("out");
    for (flag, value, message) in [
        ("--languages", "en", "639-3"),
        ("--top-ngrams", "2", "N:RATIO"),
        (
            "--min-alpha-word-ratio",
            "1.5",
            "min_alpha_word_ratio = 1.5e0 is outside [0, 1]",
        ),
        ("--url-blocklist", "/no/such/list.txt", "/no/such/list.txt"),
    ] {
        let output = rlpt(&[
            "filter",
            "--input",
            arg(&documents),
            "--output",
            arg(&out),
            flag,
            value,
        ]);
        assert!(!output.status.success(), "{flag} {value}");
        assert!(
            stderr(&output).contains(message),
            "{flag} {value}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
}

/// The peer check the README's filter row comes from, small: datatrove's Gopher, C4 and
/// FineWeb filters and `rlpt filter` decide the same for >= 98% of the sample's leads,
/// pages of them and damaged pages.
#[test]
fn filter_agrees_with_datatrove_on_the_sample() {
    let Some(python) = hf_python() else {
        return;
    };
    let found = Command::new(&python)
        .args(["-c", "import datatrove, spacy, polars"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{python} lacks datatrove or spacy: run tests/hf/setup.sh"
    );
    let mut command = Command::new(&python);
    command.arg(repo_root().join("bench/filter_vs_datatrove.py"));
    for file in ["stem-en.jsonl", "stem-fr.jsonl", "stem-es.jsonl"] {
        command.arg("--input").arg(sample_dir().join(file));
    }
    let output = command
        .args(["--pages", "200", "--rlpt", arg(&rlpt_bin())])
        .output()
        .unwrap();
    eprintln!("{}", stdout(&output));
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let bench: serde_json::Value = serde_json::from_str(
        stdout(&output)
            .lines()
            .find_map(|line| line.strip_prefix("BENCH "))
            .unwrap(),
    )
    .unwrap();
    assert!(
        bench["note"].as_str().unwrap().contains("agreement 0.9"),
        "{bench}"
    );
}
