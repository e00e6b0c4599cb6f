//! Ingest throughput, and its ratio to a bare Parquet read+write of the same documents
//! measured in the same run.
//!
//!     cargo bench -p rlpt-pipeline --bench ingest
//!
//! The corpus is the fetched Wikipedia extracts (`python3 data-samples/fetch.py wiki`),
//! repeated to at least 64 MB with distinct ids; without the cache, the embedded sample
//! is repeated instead (and the output says so). Each measurement is the best of
//! three runs into a fresh directory. Set RLPT_BENCH_MB to change the corpus size.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rlpt_pipeline::executor::{Sharding, StageRun};
use rlpt_pipeline::ingest_job::IngestJob;
use rlpt_pipeline::layout::Layout;
use rlpt_pipeline::progress::ProgressMode;
use rlpt_pipeline::shard_reader::{ParquetBatches, READ_BATCH_ROWS, table_files};
use rlpt_pipeline::shard_writer::{ShardLimits, ShardWriter};
use rlpt_schemas::{FileMetadata, documents};

const RUNS: usize = 3;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target_mb: u64 = std::env::var("RLPT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("corpus");
    let (corpus_name, lines) = corpus_lines(&root);
    let (input_bytes, docs) = write_corpus(&input, &lines, target_mb << 20);

    let ingest_time = best_of(|run| {
        let output = work.path().join(format!("ingest-{run}"));
        let stage_run = StageRun {
            output: output.clone(),
            layout: Layout::default(),
            sharding: Sharding::SINGLE,
            force: false,
            strict: false,
            progress: ProgressMode::Off,
        };
        let job = IngestJob {
            stage: rlpt_stages::ingest::IngestConfig {
                source: Some("wikipedia".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let started = Instant::now();
        let summary = job.run(input.to_str().unwrap(), &stage_run).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(summary.rows_out as usize, docs);
        elapsed
    });
    let documents_dir = work.path().join("ingest-0");
    let shards = table_files(documents_dir.to_str().unwrap()).unwrap();
    let copy_time = best_of(|run| {
        let started = Instant::now();
        bare_copy(&shards, &work.path().join(format!("copy-{run}")));
        started.elapsed()
    });

    let mb = input_bytes as f64 / 1e6;
    let ingest_s = ingest_time.as_secs_f64();
    let copy_s = copy_time.as_secs_f64();
    println!("corpus: {corpus_name}, {docs} documents, {mb:.1} MB of JSONL");
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "ingest:           {ingest_s:.3} s  {:.1} MB/s  {:.0} docs/s",
        mb / ingest_s,
        docs as f64 / ingest_s
    );
    println!(
        "bare read+write:  {copy_s:.3} s  {:.1} MB/s  {:.0} docs/s",
        mb / copy_s,
        docs as f64 / copy_s
    );
    println!(
        "ratio ingest / bare Parquet read+write: {:.2}",
        copy_s / ingest_s
    );
    println!("peak RSS: {:.0} MB", peak_rss_mb());
    println!(
        "| ingest | {:.1} MB/s | {:.0} docs/s | {:.2}× bare read+write | {:.0} MB |",
        mb / ingest_s,
        docs as f64 / ingest_s,
        copy_s / ingest_s,
        peak_rss_mb()
    );
}

/// JSONL lines of the corpus: the fetched Wikipedia extracts, else the embedded sample.
fn corpus_lines(root: &Path) -> (String, Vec<String>) {
    let cache = std::env::var_os("RLPT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data-samples/cache"));
    let fetched: Vec<PathBuf> = ["en", "fr", "es"]
        .iter()
        .map(|lang| cache.join(format!("wiki/wiki-{lang}.jsonl")))
        .filter(|p| p.exists())
        .collect();
    let (name, files) = if fetched.len() == 3 {
        (
            "fetched Wikipedia extracts (en, fr, es)".to_string(),
            fetched,
        )
    } else {
        let sample = root.join("data-samples/wiki-stem");
        let files = ["en", "fr", "es"]
            .iter()
            .map(|lang| sample.join(format!("stem-{lang}.jsonl")))
            .collect();
        (
            "embedded sample (run data-samples/fetch.py wiki for the real corpus)".to_string(),
            files,
        )
    };
    let lines = files
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    (name, lines)
}

/// Writes copies of `lines` (ids made distinct per copy) as 16 MB files until the
/// corpus reaches `target` bytes; returns (bytes, documents).
fn write_corpus(dir: &Path, lines: &[String], target: u64) -> (u64, usize) {
    fs::create_dir_all(dir).unwrap();
    let (mut bytes, mut docs, mut file_index) = (0u64, 0usize, 0usize);
    let mut current = String::new();
    let mut copy = 0;
    while bytes < target {
        for line in lines {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["id"] = format!("{}#{copy}", record["id"].as_str().unwrap()).into();
            current.push_str(&record.to_string());
            current.push('\n');
            docs += 1;
            if current.len() >= 16 << 20 {
                bytes += flush(dir, &mut file_index, &mut current);
            }
        }
        copy += 1;
        bytes += flush(dir, &mut file_index, &mut current);
    }
    (bytes, docs)
}

fn flush(dir: &Path, index: &mut usize, text: &mut String) -> u64 {
    if text.is_empty() {
        return 0;
    }
    fs::write(
        dir.join(format!("part-{:04}.jsonl", *index)),
        text.as_bytes(),
    )
    .unwrap();
    *index += 1;
    let written = text.len() as u64;
    text.clear();
    written
}

/// Reads every shard and writes it again with the same writer settings.
fn bare_copy(shards: &[PathBuf], output: &Path) {
    fs::create_dir_all(output).unwrap();
    let metadata = FileMetadata::new(documents::spec(), "copy", "0", "bench");
    let limits = ShardLimits {
        max_rows: Layout::default().max_shard_rows,
        max_bytes: Layout::default().max_shard_bytes,
    };
    let mut writer = ShardWriter::new(output, "", 0, metadata, limits);
    for shard in shards {
        for batch in ParquetBatches::open(shard, READ_BATCH_ROWS).unwrap() {
            writer.write(&batch.unwrap()).unwrap();
        }
    }
    writer.finish().unwrap();
}

fn best_of(mut measure: impl FnMut(usize) -> Duration) -> Duration {
    (0..RUNS).map(&mut measure).min().unwrap()
}

fn peak_rss_mb() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
