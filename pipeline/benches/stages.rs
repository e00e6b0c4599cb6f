//! Throughput of the per-document stages — ingest, filter, pii, decontam, segment — each with its ratio
//! to a bare Parquet read+write of the same documents, measured in the same run.
//!
//!     cargo bench -p rlpt-pipeline --bench stages
//!
//! The corpus is the fetched Wikipedia extracts (`python3 data-samples/fetch.py wiki`)
//! repeated to at least 64 MB of JSONL with distinct ids (set RLPT_BENCH_MB to change
//! it); without the cache, the embedded sample is repeated instead (the output says
//! so). Every 20th document gets a sentence of PII, every 1000th a CHAMP problem, so
//! pii and decontam also take their slow paths. Each figure is the best of three runs
//! into a fresh directory. "vs bare" is the bare copy's time over the stage's: 1.0
//! would mean the stage costs nothing beyond reading and writing Parquet.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rlpt_engine::executor::{ShardJob, Sharding, StageRun};
use rlpt_engine::layout::Layout;
use rlpt_engine::progress::ProgressMode;
use rlpt_engine::shard_reader::{ParquetBatches, READ_BATCH_ROWS, table_files};
use rlpt_engine::shard_writer::{ShardLimits, ShardWriter};
use rlpt_engine::summary::StageSummary;
use rlpt_pipeline::jobs::decontam::DecontamJob;
use rlpt_pipeline::jobs::filter::FilterJob;
use rlpt_pipeline::jobs::ingest::IngestJob;
use rlpt_pipeline::jobs::pii::PiiJob;
use rlpt_pipeline::jobs::segment::SegmentJob;
use rlpt_schemas::{FileMetadata, documents};
use rlpt_stages::decontam::DecontamConfig;
use rlpt_stages::filter::FilterConfig;
use rlpt_stages::pii::PiiConfig;
use rlpt_stages::segment::SegmentConfig;

const RUNS: usize = 3;
const PII_SENTENCE: &str = " Corrections: write to editor.desk@example.org or call +44 20 7946 0958; mirror at 81.2.69.142.";

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
    let champ = champ_problem(&root);
    let (input_bytes, docs) = write_corpus(&input, &lines, &champ, target_mb << 20);
    println!(
        "corpus: {corpus_name}, {docs} documents, {:.1} MB of JSONL",
        input_bytes as f64 / 1e6
    );
    println!("threads: {}", rayon::current_num_threads());

    let documents = work.path().join("documents");
    let ingest = IngestJob::default();
    let (ingest_time, summary) = best_of(work.path(), "ingest", |out| {
        ingest.run(&[input.to_str().unwrap()], &stage_run(out))
    });
    fs::rename(work.path().join("ingest-0"), &documents).unwrap();
    assert_eq!(summary.rows_out as usize, docs);
    let text_mb = summary.counters["text_bytes"] as f64 / 1e6;
    let shards = table_files(documents.to_str().unwrap()).unwrap();
    let (copy_time, _) = best_of(work.path(), "copy", |out| {
        bare_copy(&shards, out);
        Ok(StageSummary::default())
    });

    // The published defaults, language identification (whatlang) included.
    let filter = FilterJob::new(&FilterConfig::default()).unwrap();
    let (filter_time, filter_summary) = best_of(work.path(), "filter", |out| {
        filter.run(documents.to_str().unwrap(), &stage_run(out))
    });

    let pii = PiiJob::new(&PiiConfig::default()).unwrap();
    let (pii_time, pii_summary) = best_of(work.path(), "pii", |out| {
        pii.run(documents.to_str().unwrap(), &stage_run(out))
    });
    let decontam = DecontamJob::new(&DecontamConfig {
        benchmarks: vec![
            format!(
                "humaneval={}:prompt,canonical_solution",
                root.join("data-samples/benchmarks/HumanEval.jsonl.gz")
                    .display()
            ),
            format!(
                "champ={}:problem,solution",
                root.join("data-samples/benchmarks/champ.jsonl").display()
            ),
        ],
        ..DecontamConfig::default()
    })
    .unwrap();
    let (decontam_time, decontam_summary) = best_of(work.path(), "decontam", |out| {
        decontam.run(documents.to_str().unwrap(), &stage_run(out))
    });

    let segment = SegmentJob::new(&SegmentConfig {
        tokenizer: root.join("data-samples/tokenizers/smollm2-135m.json.gz"),
        ..SegmentConfig::default()
    })
    .unwrap();
    let (segment_time, segment_summary) = best_of(work.path(), "segment", |out| {
        segment.run(documents.to_str().unwrap(), &stage_run(out))
    });

    let mb_in = input_bytes as f64 / 1e6;
    let rss = peak_rss_mb();
    let row = |stage: &str, time: Duration, mb: f64, unit: &str| {
        let seconds = time.as_secs_f64();
        let vs_bare = copy_time.as_secs_f64() / seconds;
        println!(
            "| {stage} | {:.1} MB/s of {unit} | {:.0} docs/s | {vs_bare:.2}× bare read+write |",
            mb / seconds,
            docs as f64 / seconds,
        );
        // The line bench/suite.py reads (peak RSS: the whole benchmark process).
        let line = serde_json::json!({
            "benchmark": format!("{stage} ({} threads)", rayon::current_num_threads()),
            "throughput": mb / seconds,
            "unit": format!("MB/s of {unit}"),
            "vs_bare": vs_bare,
            "rss_mb": rss.round(),
            "note": format!("{:.0} docs/s", docs as f64 / seconds),
        });
        println!("BENCH {line}");
    };
    println!(
        "bare Parquet read+write: {:.3} s, {:.1} MB/s of text",
        copy_time.as_secs_f64(),
        text_mb / copy_time.as_secs_f64()
    );
    println!(
        "filter: kept {} of {} documents",
        filter_summary.counters["kept"], filter_summary.counters["documents"]
    );
    println!(
        "pii: {} documents with PII; decontam: {} contaminated, {} dropped",
        pii_summary.counters["documents_with_pii"],
        decontam_summary.counters["contaminated"],
        decontam_summary.counters["dropped"]
    );
    println!(
        "segment: {} sentences, {} segments, {} triples",
        segment_summary.counters["sentences"],
        segment_summary.counters["segments"],
        segment_summary.rows_out
    );
    println!("peak RSS: {rss:.0} MB");
    row("ingest", ingest_time, mb_in, "JSONL");
    row("filter", filter_time, text_mb, "text");
    row("pii", pii_time, text_mb, "text");
    row("decontam", decontam_time, text_mb, "text");
    row("segment", segment_time, text_mb, "text");
}

fn stage_run(output: &Path) -> StageRun {
    StageRun {
        output: output.to_path_buf(),
        layout: Layout::default(),
        sharding: Sharding::SINGLE,
        force: false,
        strict: false,
        progress: ProgressMode::Off,
    }
}

/// The best time of [`RUNS`] runs of `stage` into fresh directories `NAME-i`, and the
/// summary of the first.
fn best_of(
    work: &Path,
    name: &str,
    mut stage: impl FnMut(&Path) -> rlpt_pipeline::Result<StageSummary>,
) -> (Duration, StageSummary) {
    let mut best = Duration::MAX;
    let mut first = None;
    for run in 0..RUNS {
        let output = work.join(format!("{name}-{run}"));
        let started = Instant::now();
        let summary = stage(&output).unwrap();
        best = best.min(started.elapsed());
        first.get_or_insert(summary);
    }
    (best, first.unwrap())
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

fn champ_problem(root: &Path) -> String {
    let text = fs::read_to_string(root.join("data-samples/benchmarks/champ.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["problem"].as_str().unwrap().to_string()
}

/// Writes copies of `lines` (ids made distinct per copy, PII and benchmark text
/// planted) as 16 MB files until the corpus reaches `target` bytes.
fn write_corpus(dir: &Path, lines: &[String], champ: &str, target: u64) -> (u64, usize) {
    fs::create_dir_all(dir).unwrap();
    let (mut bytes, mut docs, mut file_index, mut copy) = (0u64, 0usize, 0usize, 0usize);
    let mut current = String::new();
    while bytes < target {
        for line in lines {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["id"] = format!("{}#{copy}", record["id"].as_str().unwrap()).into();
            let mut text = record["text"].as_str().unwrap().to_string();
            if docs % 20 == 0 {
                text.push_str(PII_SENTENCE);
            }
            if docs % 1000 == 0 {
                text = format!("{text} {champ} {text}");
            }
            record["text"] = text.into();
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

fn peak_rss_mb() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
