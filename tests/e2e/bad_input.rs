//! Bad input: a truncated Parquet shard, a Parquet file of another schema, a directory
//! of mixed garbage, a disk that fills up. Each gives an error (or reject) naming the
//! file, and what was finished before stays intact and usable.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::harness::*;

/// Shard bytes and unit records of a table directory, by relative path.
fn finished_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = table_bytes(dir).into_iter().collect();
    for entry in fs::read_dir(dir.join("_manifest")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("unit-")
        {
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            files.push((rel, fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn a_truncated_input_shard_is_named_and_the_other_units_stay_done() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, scrubbed) = (dir.path().join("docs"), dir.path().join("scrubbed"));
    let small_units = ["--unit-bytes", "40KiB"];
    rlpt_ok(&ingest_args(&sample_input(), &docs, &small_units));
    let pii = |extra: &[&str]| {
        let mut args = vec![
            "-q",
            "pii",
            "--input",
            arg(&docs),
            "--output",
            arg(&scrubbed),
        ];
        args.extend(extra);
        rlpt(&args)
    };
    assert!(pii(&small_units).status.success());
    let before = finished_files(&scrubbed);
    let last = shards(&docs).pop().unwrap();
    let length = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(length / 2)
        .unwrap();

    let failed = pii(&small_units);
    assert_eq!(failed.status.code(), Some(1));
    let message = stderr(&failed);
    assert!(
        message.contains(&last.display().to_string()) && message.contains("Parquet"),
        "{message}"
    );
    // The unit reading the damaged shard is undone; the others keep their bytes.
    let after = finished_files(&scrubbed);
    assert!(!after.is_empty() && after.len() < before.len(), "{after:?}");
    assert!(after.iter().all(|file| before.contains(file)));
    let downstream = rlpt(&[
        "segment",
        "--input",
        arg(&scrubbed),
        "--output",
        arg(&dir.path().join("t")),
        "--tokenizer",
        arg(&repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz")),
    ]);
    assert!(
        stderr(&downstream).contains("not done"),
        "{}",
        stderr(&downstream)
    );
}

#[test]
fn a_parquet_file_of_another_schema_is_refused_by_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("title", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(fs::File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let tokenizer = repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz");
    let model = repo_root().join("data-samples/tiny");
    for (stage, setting, value) in [
        ("pii", "--skip", "iban"),
        ("segment", "--tokenizer", arg(&tokenizer)),
        ("entropy", "--model", arg(&model)),
    ] {
        let output = rlpt(&[
            stage,
            "--input",
            arg(&path),
            "--output",
            arg(&dir.path().join(stage)),
            setting,
            value,
        ]);
        assert_eq!(output.status.code(), Some(1), "{stage}");
        let message = stderr(&output);
        assert!(
            message.contains("scores.parquet") && message.contains("column"),
            "{stage}: {message}"
        );
    }
}

#[test]
fn a_directory_of_mixed_garbage_keeps_the_good_records_and_rejects_the_rest_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    let good: String = fs::read_to_string(sample_dir().join("stem-fr.jsonl"))
        .unwrap()
        .lines()
        .take(5)
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(input.join("good.jsonl"), good).unwrap();
    let noise: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(input.join("noise.jsonl"), &noise).unwrap();
    fs::write(input.join("fake.parquet"), &noise[..500]).unwrap();
    fs::write(input.join("fake.jsonl.gz"), &noise[..400]).unwrap();
    fs::write(input.join("empty.jsonl"), "").unwrap();
    fs::write(input.join("blob.bin"), &noise[..300]).unwrap();
    let docs = dir.path().join("docs");
    let output = rlpt_ok(&ingest_args(&input, &docs, &[]));
    assert!(stderr(&output).contains("blob.bin"), "{}", stderr(&output));
    assert_eq!(read_rows(&docs).len(), 5);
    let rejects = read_rows(&docs.join("rejects"));
    let by_file = |name: &str| -> Vec<&str> {
        rejects
            .iter()
            .filter(|r| get(r, "file").ends_with(name))
            .map(|r| get(r, "reason"))
            .collect()
    };
    assert_eq!(by_file("fake.parquet"), ["unreadable"]);
    assert_eq!(by_file("fake.jsonl.gz"), ["unreadable"]);
    assert!(!by_file("noise.jsonl").is_empty());
    assert!(
        by_file("noise.jsonl")
            .iter()
            .all(|r| ["invalid_utf8", "malformed_json"].contains(r))
    );
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop; `None` when this process
/// may not mount (not root), unless RLPT_REQUIRE_TMPFS=1.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                arg(dir),
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var("RLPT_REQUIRE_TMPFS").as_deref() != Ok("1"),
                "RLPT_REQUIRE_TMPFS=1 but mounting a tmpfs failed"
            );
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), arg(&self.0)])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_named_leaves_no_half_written_shard_and_the_rerun_finishes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus");
    replicate_sample(&input, 6, 130);
    let args = |output: &Path| ingest_args(&input, output, &["--unit-bytes", "256KiB"]);
    let expected = dir.path().join("expected");
    rlpt_ok(&args(&expected));
    // A disk with room for about half of the output.
    let needed: usize = table_bytes(&expected).values().map(Vec::len).sum();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), &format!("{}k", needed / 2048)) else {
        return;
    };
    let docs = disk.0.join("docs");
    let full = rlpt(&args(&docs));
    assert_eq!(full.status.code(), Some(1));
    let message = stderr(&full);
    assert!(
        message.contains("No space left on device")
            && message.contains(&docs.display().to_string()),
        "{message}"
    );
    // What is visible is finished: every shard belongs to a recorded unit and reads.
    let done = finished_files(&docs);
    let units = done
        .iter()
        .filter(|(name, _)| name.contains("unit-"))
        .count();
    assert!(
        units > 0 && units < table_bytes(&expected).len(),
        "{units} units done"
    );
    for (name, bytes) in &done {
        if name.ends_with(".parquet") {
            assert_eq!(Some(bytes), table_bytes(&expected).get(name), "{name}");
        }
    }
    disk.resize("64m");
    rlpt_ok(&args(&docs));
    assert_eq!(table_bytes(&expected), table_bytes(&docs));
}
