//! Resume: a killed run finishes with the same bytes as an uninterrupted one; done
//! units are reused, changed ones redone; another config is refused unless --force.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

/// `rlpt ingest` planned as several work units.
fn unit_args(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    ingest_args(
        input,
        output,
        &[&["--unit-bytes", "300KiB"], extra].concat(),
    )
}

fn units_done(output: &Path) -> usize {
    fs::read_dir(output.join("_manifest"))
        .map(|entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("unit-")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Two sample files in `work/in`, one unit each.
fn two_unit_input(work: &Path) -> std::path::PathBuf {
    let input = work.join("in");
    fs::create_dir_all(&input).unwrap();
    for name in ["stem-en.jsonl", "stem-fr.jsonl"] {
        fs::copy(sample_dir().join(name), input.join(name)).unwrap();
    }
    input
}

fn summary_row(output: &std::process::Output) -> Vec<String> {
    summary_rows(output).remove(0)
}

#[test]
fn a_run_killed_mid_way_resumes_to_the_same_bytes() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    replicate_sample(&input, 60, 500);
    let reference = work.path().join("reference");
    rlpt_ok(&unit_args(&input, &reference, &[]));
    let total_units = units_done(&reference);
    assert!(total_units > 40, "{total_units} units");

    let output = work.path().join("killed");
    let mut child = rlpt_in(&repo_root())
        .args(["--threads", "1"])
        .args(unit_args(&input, &output, &[]))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while units_done(&output) < 2 {
        assert!(
            Instant::now() < deadline,
            "no unit finished within a minute"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_when_killed = units_done(&output);
    assert!(
        done_when_killed < total_units,
        "the run was killed before it finished ({done_when_killed} of {total_units} units)"
    );

    let rerun = rlpt_ok(&unit_args(&input, &output, &[]));
    let row = summary_row(&rerun);
    let reused: usize = row[2].parse().unwrap();
    assert!(
        reused >= done_when_killed.saturating_sub(1) && reused > 0,
        "{row:?}"
    );
    assert_eq!(table_bytes(&output), table_bytes(&reference));
    assert_eq!(tmp_entries(&output), Vec::<String>::new());
}

#[test]
fn a_rerun_reuses_done_units_and_redoes_changed_inputs() {
    let work = tempfile::tempdir().unwrap();
    let input = two_unit_input(work.path());
    let output = work.path().join("out");
    let first = rlpt_ok(&unit_args(&input, &output, &[]));
    assert_eq!(summary_row(&first)[1..3], ["2", "0"]);
    let bytes = table_bytes(&output);

    let again = rlpt_ok(&unit_args(&input, &output, &[]));
    assert_eq!(
        summary_row(&again)[1..4],
        ["2", "2", "460"],
        "both units reused"
    );
    assert_eq!(table_bytes(&output), bytes);

    let mut fr = fs::read_to_string(input.join("stem-fr.jsonl")).unwrap();
    fr.push_str("{\"id\":\"new\",\"text\":\"Une nouvelle ligne.\"}\n");
    fs::write(input.join("stem-fr.jsonl"), fr).unwrap();
    let changed = rlpt_ok(&unit_args(&input, &output, &[]));
    assert_eq!(
        summary_row(&changed)[1..4],
        ["2", "1", "461"],
        "only the edited unit is redone"
    );
    assert_eq!(
        read_rows(&output).last().map(|r| get(r, "id").to_string()),
        Some("new".into())
    );

    let forced = rlpt_ok(&unit_args(&input, &output, &["--force"]));
    assert_eq!(
        summary_row(&forced)[2],
        "0",
        "--force recomputes everything"
    );
}

#[test]
fn a_shard_that_rotted_on_disk_is_recomputed_not_reused() {
    let work = tempfile::tempdir().unwrap();
    let input = two_unit_input(work.path());
    let output = work.path().join("out");
    rlpt_ok(&unit_args(&input, &output, &[]));
    let bytes = table_bytes(&output);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(output.join("_manifest/unit-00001.json")).unwrap())
            .unwrap();
    let shard = &record["outputs"][0];
    assert_eq!(shard["xxh3"].as_str().map(str::len), Some(16), "{shard}");

    // One flipped bit in the middle of unit 1's shard: same size, same name.
    let path = output.join(shard["file"].as_str().unwrap());
    let mut rotten = fs::read(&path).unwrap();
    let middle = rotten.len() / 2;
    rotten[middle] ^= 0x10;
    fs::write(&path, rotten).unwrap();

    let rerun = rlpt_ok(&unit_args(&input, &output, &[]));
    assert_eq!(
        summary_row(&rerun)[1..3],
        ["2", "1"],
        "only the damaged unit is redone"
    );
    assert!(
        stderr(&rerun).contains("changed on disk"),
        "{}",
        stderr(&rerun)
    );
    assert_eq!(table_bytes(&output), bytes);
}

#[test]
fn another_config_on_the_same_output_is_refused_unless_forced() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("out");
    let sample = sample_input();
    rlpt_ok(&unit_args(&sample, &output, &[]));
    let before = table_bytes(&output);

    let changed = unit_args(&sample, &output, &["--source", "wiki"]);
    let refused = rlpt(&changed);
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(
        message.contains("written with a different configuration"),
        "{message}"
    );
    assert!(
        message.contains("stage.source was null, is now \"wiki\""),
        "{message}"
    );
    assert!(message.contains("--force"), "{message}");
    assert_eq!(table_bytes(&output), before, "nothing was touched");

    rlpt_ok(&[changed.clone(), vec!["--force".to_string()]].concat());
    assert!(
        read_rows(&output)
            .iter()
            .all(|r| get(r, "source") == "wiki")
    );
}

#[test]
fn a_directory_rlpt_did_not_write_is_refused() {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("thesis.tex"), "precious").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let output = rlpt(&unit_args(&sample_input(), work.path(), extra));
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("not empty (it has thesis.tex) and was not written by rlpt")
        );
    }
    assert_eq!(
        fs::read_to_string(work.path().join("thesis.tex")).unwrap(),
        "precious"
    );
}
