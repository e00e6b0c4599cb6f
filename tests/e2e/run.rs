//! `rlpt run`: the default config on the embedded sample, as the README says.

use crate::harness::*;

#[test]
fn the_default_config_ingests_the_sample_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let first = rlpt_ok(&["run", "--out-dir", arg(out.path())]);
    let table = stdout(&first);
    assert!(
        table.lines().nth(1).unwrap().starts_with("ingest"),
        "{table}"
    );
    let documents = out.path().join("documents");
    let rows = read_rows(&documents);
    assert_eq!(rows.len(), SAMPLE_DOCS);
    assert!(rows.iter().all(|r| get(r, "source") == "wikipedia"));
    let stages: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        stages,
        [
            "ingest",
            "dedup-signatures",
            "dedup-buckets",
            "dedup-clusters",
            "dedup-filter",
            "pii",
            "decontam",
            "segment",
            "entropy"
        ]
    );
    let triples = read_rows(&out.path().join("triples"));
    assert!(triples.len() > 1000, "{} triples", triples.len());
    let tagged = read_rows(&out.path().join("tagged"));
    assert_eq!(
        tagged.len(),
        triples.len(),
        "the pipeline ends with tagged triples"
    );
    assert!(tagged.iter().all(|r| !get(r, "token_entropy").is_empty()));

    let second = rlpt_ok(&["--log-format", "json", "run", "--out-dir", arg(out.path())]);
    let summary: serde_json::Value =
        serde_json::from_str(stdout(&second).lines().next().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["stage"], "ingest");
    assert_eq!(summary["units_reused"], 1);
    assert_eq!(summary["rows_out"], SAMPLE_DOCS);
    for line in stderr(&second).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
}

#[test]
fn a_missing_or_invalid_config_is_a_usage_error() {
    let output = rlpt(&["run", "no-such.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no-such.toml"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[stage]]\nstage = \"ingest\"\ninput = \"x\"\noutput = \"y\"\ntext_feild = \"t\"\n",
    )
    .unwrap();
    let output = rlpt(&["run", arg(&config)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown key `text_feild`"),
        "{}",
        stderr(&output)
    );
}
