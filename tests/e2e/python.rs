//! The tables are plain Parquet: Python polars reads them as users would.

use std::process::Command;

use crate::harness::*;

#[test]
fn python_polars_reads_the_documents_table() {
    let out = tempfile::tempdir().unwrap();
    rlpt_ok(&ingest_args(
        &sample_input(),
        out.path(),
        &["--unit-bytes", "40KiB"],
    ));
    let script = r#"
import sys, polars as pl
frame = pl.scan_parquet(sys.argv[1] + "/*.parquet")
stats = frame.select(pl.len(), pl.col("id").n_unique(), pl.col("text").str.len_chars().min()).collect()
print(*stats.row(0))
print(frame.filter(pl.col("id") == "wikipedia/fr/Addition").select("text").collect().item())
"#;
    let output = Command::new("python3")
        .args(["-c", script, arg(out.path())])
        .output()
        .expect("python3 runs (.ci/run installs it with polars)");
    assert!(
        output.status.success(),
        "Python polars could not read the table (pip install polars; .ci/run does):\n{}",
        stderr(&output)
    );
    let printed = stdout(&output);
    let mut lines = printed.lines();
    let stats: Vec<usize> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(stats[..2], [SAMPLE_DOCS, SAMPLE_DOCS]);
    assert!(stats[2] > 0);
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("L'addition est l'une des quatre opérations")
    );
    assert!(shards(out.path()).len() >= 3, "polars read several shards");
}
