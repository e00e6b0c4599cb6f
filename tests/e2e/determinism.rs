//! Same input and config ⇒ same output bytes, whatever the thread count and however
//! the work is split across ranks.

use std::path::Path;
use std::process::Child;

use crate::harness::*;

/// A corpus of 8 sample copies (4,160 documents) in 9 files, planned as several units.
fn corpus(dir: &Path) -> usize {
    replicate_sample(dir, 8, 500)
}

const UNIT_BYTES: &str = "300KiB";

/// `rlpt ingest` planned as several work units.
fn unit_args(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    ingest_args(
        input,
        output,
        &[&["--unit-bytes", UNIT_BYTES], extra].concat(),
    )
}

#[test]
fn one_or_two_threads_write_the_same_bytes() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    let docs = corpus(&input);
    let mut tables = Vec::new();
    for threads in ["1", "2"] {
        let out = work.path().join(format!("out-{threads}"));
        let args = [
            vec!["--threads".to_string(), threads.to_string()],
            unit_args(&input, &out, &[]),
        ];
        rlpt_ok(&args.concat());
        assert_eq!(read_rows(&out).len(), docs);
        tables.push(table_bytes(&out));
    }
    assert!(
        tables[0].len() > 3,
        "several shards: {:?}",
        tables[0].keys()
    );
    assert_eq!(tables[0], tables[1]);
}

#[test]
fn world_size_three_writes_the_same_bytes_as_one_process() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    corpus(&input);
    let single = work.path().join("single");
    rlpt_ok(&unit_args(&input, &single, &[]));

    // Three ranks at once into one directory, as a Slurm array runs them; rank 2 learns
    // its rank from Slurm's variables.
    let split = work.path().join("split");
    let spawn = |rank: usize| -> Child {
        let mut command = rlpt_in(&repo_root());
        command.args(unit_args(&input, &split, &[]));
        if rank == 2 {
            command
                .env("SLURM_ARRAY_TASK_ID", "2")
                .env("SLURM_ARRAY_TASK_COUNT", "3");
        } else {
            command.args(["--rank", &rank.to_string(), "--world-size", "3"]);
        }
        command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ranks: Vec<Child> = (0..3).map(spawn).collect();
    let mut ranks_with_rows = 0;
    for child in ranks {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let summary = stdout(&output);
        let row = summary.lines().nth(1).unwrap().to_string();
        let rows_in: usize = row.split_whitespace().nth(3).unwrap().parse().unwrap();
        ranks_with_rows += usize::from(rows_in > 0);
    }
    assert_eq!(ranks_with_rows, 3, "every rank had work");
    assert_eq!(table_bytes(&single), table_bytes(&split));
    assert!(table_bytes(&single).len() >= 3);
}

#[test]
fn a_bad_rank_is_a_usage_error() {
    let out = tempfile::tempdir().unwrap();
    let sample = sample_input();
    let output = rlpt(&unit_args(
        &sample,
        out.path(),
        &["--rank", "3", "--world-size", "3"],
    ));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("the rank must be in 0..world-size"));
}

#[test]
fn a_shard_larger_than_a_unit_is_read_by_several_units_as_row_ranges() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    let docs = corpus(&input);
    // One unit, so one big documents shard.
    let documents = work.path().join("documents");
    rlpt_ok(&ingest_args(&input, &documents, &["--unit-bytes", "1GiB"]));
    assert_eq!(shards(&documents).len(), 1);

    let whole = work.path().join("whole");
    let split = work.path().join("split");
    rlpt_ok(&["pii", "--input", arg(&documents), "--output", arg(&whole)]);
    rlpt_ok(&[
        "pii",
        "--input",
        arg(&documents),
        "--output",
        arg(&split),
        "--unit-bytes",
        "64KiB",
    ]);
    let units = |dir: &Path| {
        let stage: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("_manifest/stage.json")).unwrap())
                .unwrap();
        stage["units"].as_u64().unwrap()
    };
    assert_eq!(units(&whole), 1);
    assert!(units(&split) >= 4, "{} units", units(&split));
    let unit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(split.join("_manifest/unit-00001.json")).unwrap())
            .unwrap();
    assert!(
        unit["inputs"][0].as_str().unwrap().contains("#rows="),
        "{unit}"
    );
    let (rows_whole, rows_split) = (read_rows(&whole), read_rows(&split));
    assert_eq!(rows_whole.len(), docs);
    assert_eq!(rows_whole, rows_split, "the same rows in the same order");
}
