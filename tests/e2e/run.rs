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
    let rows = summary_rows(&first);
    let stages: Vec<&str> = rows.iter().map(|cells| cells[0].as_str()).collect();
    assert_eq!(
        stages,
        [
            "ingest",
            "dedup-signatures",
            "dedup-buckets",
            "dedup-clusters",
            "dedup-filter",
            "filter",
            "pii",
            "decontam",
            "segment",
            "entropy",
            "train",
            "eval"
        ]
    );
    // Quality filtering kept most of the sample's leads and says why it dropped the rest.
    let kept = read_rows(&out.path().join("filtered")).len();
    let dropped = read_rows(&out.path().join("filtered/dropped"));
    assert_eq!(
        kept + dropped.len(),
        read_rows(&out.path().join("deduped")).len()
    );
    assert!(kept > SAMPLE_DOCS * 8 / 10, "{kept} kept");
    assert!(
        dropped
            .iter()
            .all(|r| !get(r, "reason").is_empty() && !get(r, "text").is_empty())
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
    // A few GRPO steps on the tagged triples, then the last checkpoint scored on the
    // documents the trainer held out.
    let latest = std::fs::read_to_string(out.path().join("train/latest")).unwrap();
    assert_eq!(latest.trim(), "step-00000004");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("eval.json")).unwrap())
            .unwrap();
    assert_eq!(report["split"], "heldout");
    let held = report["triples"].as_u64().unwrap();
    assert!(
        held > 10 && held < tagged.len() as u64 / 4,
        "{held} held-out triples"
    );
    assert!(report["next-token"]["n"].as_u64().unwrap() > 0);

    let second = rlpt_ok(&["--log-format", "json", "run", "--out-dir", arg(out.path())]);
    let summary: serde_json::Value =
        serde_json::from_str(stdout(&second).lines().next().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["stage"], "ingest");
    assert_eq!(
        summary["units_reused"], 3,
        "the sample's three files, a unit each"
    );
    assert_eq!(summary["rows_out"], SAMPLE_DOCS);
    let summaries: Vec<serde_json::Value> = stdout(&second)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for stage in ["train", "eval"] {
        let line = summaries.iter().find(|s| s["stage"] == stage).unwrap();
        assert_eq!(line["units_reused"], 1, "{line}");
    }
    // train.toml: 2 prompts a step, more when dynamic sampling refills.
    let train = summaries.iter().find(|s| s["stage"] == "train").unwrap();
    assert_eq!(train["rows_out"], 4, "{train}");
    assert!(train["rows_in"].as_u64().unwrap() >= 4 * 2, "{train}");
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

/// Regression: after `fetch.py models` the default `rlpt run` refused the entropy
/// directory ("written with a different configuration: stage.model.checksum"), and
/// `--force` or new tags did not redo train and eval, which kept results of the old
/// tags. A pipeline whose proxy model appears after a first run with the fallback.
#[test]
fn a_fetched_model_redoes_entropy_and_what_follows_and_force_redoes_train_and_eval() {
    let work = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(sample_dir().join("stem-en.jsonl")).unwrap();
    let lines: Vec<&str> = sample.lines().take(40).collect();
    std::fs::write(work.path().join("docs.jsonl"), lines.join("\n")).unwrap();
    let samples = repo_root().join("data-samples");
    let config = work.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"out_dir = "out"
[[stage]]
stage = "ingest"
input = "docs.jsonl"
output = "documents"
[[stage]]
stage = "segment"
output = "triples"
tokenizer = "{tokenizer}"
[[stage]]
stage = "entropy"
output = "tagged"
model = "models/proxy"
fallback_model = "{tiny}"
[[stage]]
stage = "train"
output = "train"
config = "{train}"
steps = 2
[[stage]]
stage = "eval"
output = "eval.json"
config = "{train}"
tasks = ["next-token"]
limit = 20
"#,
            tokenizer = samples.join("tokenizers/smollm2-135m.json.gz").display(),
            tiny = samples.join("tiny").display(),
            train = samples.join("train.toml").display(),
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["--log-format", "json", "run", "pipeline.toml"];
        args.extend_from_slice(extra);
        let output = rlpt_in(work.path()).args(&args).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let reused: std::collections::BTreeMap<String, u64> = stdout(&output)
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().to_string(),
                    s["units_reused"].as_u64().unwrap(),
                )
            })
            .collect();
        (reused, stderr(&output))
    };
    let (first, _) = run(&[]);
    assert_eq!(first["entropy"], 0);

    // The proxy model is fetched: a different model at the configured path.
    let proxy = work.path().join("models/proxy");
    rlpt_ok(&[
        "model",
        "init",
        "--config",
        arg(&samples.join("tiny/config.json")),
        "--seed",
        "7",
        "--output",
        arg(&proxy),
    ]);
    std::fs::copy(
        samples.join("tiny/tokenizer.json"),
        proxy.join("tokenizer.json"),
    )
    .unwrap();
    let (second, log) = run(&[]);
    assert!(log.contains("recomputing"), "{log}");
    for step in ["entropy", "train", "eval"] {
        assert_eq!(second[step], 0, "{step} is redone: {second:?}");
    }
    assert_eq!(second["segment"], 1, "segment is reused");
    let (third, _) = run(&[]);
    assert!(
        third.values().all(|&reused| reused > 0),
        "a rerun reuses all: {third:?}"
    );
    let (forced, _) = run(&["--only", "train,eval", "--force"]);
    assert_eq!((forced["train"], forced["eval"]), (0, 0), "{forced:?}");
}
