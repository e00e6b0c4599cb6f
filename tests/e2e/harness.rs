//! The test harness: finds the `rlpt` binary cargo built, runs it like a user would
//! (in a chosen directory, with arguments), and reads what it wrote.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The embedded sample corpus.
pub fn sample_dir() -> PathBuf {
    repo_root().join("data-samples/wiki-stem")
}

/// The sample's JSONL files as an `--input` glob (the directory also holds its
/// ATTRIBUTION.md, which a directory input would ingest as a text document).
pub fn sample_input() -> PathBuf {
    sample_dir().join("*.jsonl")
}

/// Documents in the embedded sample.
pub const SAMPLE_DOCS: usize = 520;

/// The `rlpt` binary of this build (`cargo test --workspace` builds it).
pub fn rlpt_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join(format!("rlpt{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        bin.display()
    );
    bin
}

/// A command running `rlpt` in `cwd`.
pub fn rlpt_in(cwd: &Path) -> Command {
    let mut command = Command::new(rlpt_bin());
    command.current_dir(cwd);
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `rlpt ARGS` in the repository root.
pub fn rlpt<S: AsRef<OsStr>>(args: &[S]) -> Output {
    rlpt_in(&repo_root()).args(args).output().unwrap()
}

/// The rows of the summary table a stage command or `rlpt run` printed, split into
/// cells: the lines after its header, up to the blank line before the notes.
pub fn summary_rows(output: &Output) -> Vec<Vec<String>> {
    stdout(output)
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().map(String::from).collect())
        .collect()
}

/// Runs `rlpt ARGS` and insists it succeeds.
pub fn rlpt_ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let output = rlpt(args);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        output.status.success(),
        "rlpt {shown:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The arguments of `rlpt ingest --input INPUT --output OUTPUT EXTRA…`.
pub fn ingest_args(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["ingest", "--input", arg(input), "--output", arg(output)]
        .map(String::from)
        .into();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Text of a process's stdout and stderr.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Text of a process's stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A path as an argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every record batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Shard files of a table directory (top-level `*.parquet`), sorted.
pub fn shards(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
    files.sort();
    files
}

/// A row of a table, column name → value rendered as text (`None` for null).
pub type Row = BTreeMap<String, Option<String>>;

/// Every row of every shard of a table directory, in shard order.
pub fn read_rows(dir: &Path) -> Vec<Row> {
    shards(dir)
        .iter()
        .flat_map(|shard| file_rows(shard))
        .collect()
}

/// Every row of one Parquet file.
pub fn file_rows(path: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in read_parquet(path) {
        for row in 0..batch.num_rows() {
            let mut values = Row::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                values.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            rows.push(values);
        }
    }
    rows
}

/// A cell as text: strings as they are, binaries as UTF-8 (lossy), anything else as
/// Arrow displays it.
fn cell(column: &dyn Array, row: usize) -> Option<String> {
    if column.is_null(row) {
        None
    } else if let Some(strings) = column.as_string_opt::<i32>() {
        Some(strings.value(row).to_string())
    } else if let Some(strings) = column.as_string_opt::<i64>() {
        Some(strings.value(row).to_string())
    } else if let Some(bytes) = column.as_binary_opt::<i64>() {
        Some(String::from_utf8_lossy(bytes.value(row)).into_owned())
    } else if let Some(bytes) = column.as_binary_opt::<i32>() {
        Some(format!("{} bytes", bytes.value(row).len()))
    } else {
        let formatter = ArrayFormatter::try_new(column, &FormatOptions::default()).unwrap();
        Some(formatter.value(row).to_string())
    }
}

/// Every row of a table directory by its `id`.
pub fn by_id(dir: &Path) -> BTreeMap<String, Row> {
    read_rows(dir)
        .into_iter()
        .map(|row| (get(&row, "id").to_string(), row))
        .collect()
}

/// The value of `column` in `row`.
pub fn get<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .as_deref()
        .unwrap_or_else(|| panic!("{column} is null in {row:?}"))
}

/// The bytes of every table file under `dir` (shards and rejects, not the manifest),
/// by relative path: what "same output bytes" compares.
pub fn table_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["", "rejects"] {
        for shard in shards(&dir.join(sub)) {
            let rel = shard
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(rel, fs::read(&shard).unwrap());
        }
    }
    files
}

/// Writes `copies` copies of the sample (ids made unique per copy) as JSONL files of
/// about `docs_per_file` documents each: a corpus big enough to have many work units.
pub fn replicate_sample(dir: &Path, copies: usize, docs_per_file: usize) -> usize {
    let lines: Vec<String> = fs::read_dir(sample_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    fs::create_dir_all(dir).unwrap();
    let mut docs = Vec::with_capacity(lines.len() * copies);
    for copy in 0..copies {
        for line in &lines {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = format!("{}#{copy}", record["id"].as_str().unwrap());
            record["id"] = id.into();
            docs.push(record.to_string());
        }
    }
    for (index, chunk) in docs.chunks(docs_per_file).enumerate() {
        fs::write(
            dir.join(format!("part-{index:04}.jsonl")),
            chunk.join("\n") + "\n",
        )
        .unwrap();
    }
    docs.len()
}

/// The fetched-asset helper the lm tests use (a test needing a fetched asset fails
/// without it, unless RLPT_SKIP_MISSING_ASSETS=1 skips it).
#[path = "../../lm/tests/common/mod.rs"]
mod lm_common;
pub use lm_common::asset as fetched;

/// Every file and directory below `dir`, recursively (none when `dir` is missing).
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

/// The temporaries (`*.tmp` files and directories) anywhere below `dir`, by path
/// relative to it: what a finished run must not leave.
pub fn tmp_entries(dir: &Path) -> Vec<String> {
    entries_under(dir)
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".tmp"))
        .map(|path| path.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Every file a pipeline run wrote under `dir`, by relative path, for comparing two
/// runs: manifests (`_manifest/`, which hold timings) and `rlpt slurm`'s scripts and
/// logs (`_slurm/`) left out, and the wall-clock `timing` of the trainer's metrics
/// (metrics.jsonl lines, the last ones in trainer_state.json, whose checksum
/// checksums.json holds) dropped.
pub fn run_output_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    assert!(dir.is_dir(), "no run output at {}", dir.display());
    let mut files = BTreeMap::new();
    for path in entries_under(dir) {
        let rel = path.strip_prefix(dir).unwrap();
        let bookkeeping = rel
            .components()
            .any(|c| c.as_os_str() == "_manifest" || c.as_os_str() == "_slurm");
        if bookkeeping || path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(&path).unwrap();
        let bytes = match name.as_str() {
            "metrics.jsonl" => String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| without(serde_json::from_str(line).unwrap(), "timing") + "\n")
                .collect::<String>()
                .into_bytes(),
            "trainer_state.json" => {
                without(serde_json::from_slice(&bytes).unwrap(), "timing").into_bytes()
            }
            "checksums.json" => without(
                serde_json::from_slice(&bytes).unwrap(),
                "trainer_state.json",
            )
            .into_bytes(),
            _ => bytes,
        };
        files.insert(rel.to_string_lossy().into_owned(), bytes);
    }
    files
}

/// A JSON value as text, without `key` in any object at any depth.
fn without(mut value: serde_json::Value, key: &str) -> String {
    fn strip(value: &mut serde_json::Value, key: &str) {
        match value {
            serde_json::Value::Object(fields) => {
                fields.remove(key);
                fields.values_mut().for_each(|v| strip(v, key));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, key)),
            _ => {}
        }
    }
    strip(&mut value, key);
    value.to_string()
}

/// Asserts that two runs wrote the same files with the same bytes, naming the first
/// files that differ.
pub fn assert_same_run_output(expected: &Path, actual: &Path) {
    let (expected, actual) = (run_output_files(expected), run_output_files(actual));
    let names = |files: &BTreeMap<String, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&expected), names(&actual), "the same files");
    let differing: Vec<&String> = expected
        .iter()
        .filter(|(name, bytes)| actual[*name] != **bytes)
        .map(|(name, _)| name)
        .collect();
    assert!(
        differing.is_empty(),
        "files with other bytes: {differing:?}"
    );
}

/// The default train config (`data-samples/train.toml`) written to `dir/train.toml`
/// with the tiny model's absolute path and a cold start of `cold_start_steps` instead
/// of the default's; returns its path.
pub fn train_config_with_cold_start(dir: &Path, cold_start_steps: u64) -> PathBuf {
    let samples = repo_root().join("data-samples");
    let default_steps = "[cold_start]\nsteps = 60\n";
    let text = std::fs::read_to_string(samples.join("train.toml")).unwrap();
    assert!(
        text.contains(default_steps),
        "train.toml's cold start moved"
    );
    let text = text
        .replace(
            "model = \"tiny\"",
            &format!("model = \"{}\"", samples.join("tiny").display()),
        )
        .replace(
            default_steps,
            &format!("[cold_start]\nsteps = {cold_start_steps}\n"),
        );
    let path = dir.join("train.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Python with torch and transformers: `RLPT_HF_PYTHON`, else tests/hf/.venv's
/// (tests/hf/setup.sh), else `python3`; without one the test fails, unless
/// RLPT_SKIP_MISSING_ASSETS=1 skips it.
pub fn hf_python() -> Option<String> {
    let venv = repo_root().join("tests/hf/.venv/bin/python");
    let python = std::env::var("RLPT_HF_PYTHON").unwrap_or_else(|_| {
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let found = Command::new(&python)
        .args(["-c", "import torch, transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(python);
    }
    let message = format!(
        "{python} lacks torch or transformers: run tests/hf/setup.sh (or set \
         RLPT_SKIP_MISSING_ASSETS=1 to skip the tests that need it)"
    );
    assert!(
        std::env::var("RLPT_SKIP_MISSING_ASSETS").as_deref() == Ok("1"),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}

/// Runs `tests/hf/SCRIPT` with `python` and `args` (and `env`); fails the test with its
/// output unless it succeeds, and returns the JSON object of its last line.
pub fn python_report(python: &str, script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = Command::new(python)
        .arg(repo_root().join("tests/hf").join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tests/hf/{script} {args:?} failed:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let report: Value = serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    eprintln!("tests/hf/{script}: {report}");
    report
}

/// The lines of a training run's `metrics.jsonl`.
pub fn metrics_lines(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
