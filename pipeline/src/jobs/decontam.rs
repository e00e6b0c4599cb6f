//! The IO side of `rlpt decontam`: loading the benchmark files (JSONL, optionally
//! gzipped) into items, and running each unit's documents through the
//! [`Decontaminator`]. Clean documents are written unchanged (byte for byte); every hit
//! goes to the `contamination` table beside the output. The benchmarks' checksums are
//! part of the config, so a changed benchmark file is a changed config.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use rlpt_engine::IoContext;
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch,
};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::shard_reader::ids_and_texts;
use rlpt_schemas::{contamination, documents};
use rlpt_stages::decontam::{
    BenchmarkItem, BenchmarkSpec, ContaminationIndex, DecontamConfig, DecontamCounters,
    Decontaminated, Decontaminator,
};
use serde_json::{Value, json};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::jobs::document_edit::DocumentEdit;
use crate::jobs::table_stage::TableStage;

/// The subdirectory of the contamination report.
pub const REPORT_DIR: &str = "contamination";

/// Keys that name an item, in the order they are tried.
const ID_KEYS: [&str; 6] = [
    "id",
    "task_id",
    "identifier",
    "problem_id",
    "question_id",
    "name",
];

/// A benchmark file, loaded.
struct Benchmark {
    spec: BenchmarkSpec,
    checksum: String,
    items: Vec<BenchmarkItem>,
}

/// The decontam stage as the executor runs it.
pub struct DecontamJob {
    config: DecontamConfig,
    benchmarks: Vec<Benchmark>,
    decontaminator: Decontaminator,
}

impl DecontamJob {
    /// Loads the benchmarks of `config` and indexes them.
    pub fn new(config: &DecontamConfig) -> Result<Self> {
        if config.benchmarks.is_empty() {
            return Err(Error::Usage(
                "decontam needs at least one --benchmark NAME=PATH[:FIELDS]".into(),
            ));
        }
        let benchmarks = config
            .benchmarks
            .iter()
            .map(|text| load(&BenchmarkSpec::parse(text).map_err(Error::Usage)?))
            .collect::<Result<Vec<_>>>()?;
        let items: Vec<BenchmarkItem> = benchmarks.iter().flat_map(|b| b.items.clone()).collect();
        let index = ContaminationIndex::new(&items, config.ngram);
        tracing::info!(
            items = items.len(),
            ngrams = index.len(),
            "benchmarks indexed"
        );
        Ok(Self {
            config: config.clone(),
            decontaminator: Decontaminator::new(config, index).map_err(Error::Usage)?,
            benchmarks,
        })
    }

    fn report(&self, ids: &StringArray, docs: &[Decontaminated]) -> RecordBatch {
        let mut columns: [Vec<String>; 5] = Default::default();
        let mut matches = Vec::new();
        for (row, doc) in docs.iter().enumerate() {
            let action = if doc.dropped { "dropped" } else { "removed" };
            for hit in &doc.hits {
                let (benchmark, item) = self.decontaminator.index().item(hit.item);
                for (column, value) in
                    columns
                        .iter_mut()
                        .zip([ids.value(row), benchmark, item, &hit.ngram, action])
                {
                    column.push(value.to_string());
                }
                matches.push(hit.matches);
            }
        }
        let [doc_ids, benchmarks, items, ngrams, actions] =
            columns.map(|c| Arc::new(StringArray::from(c)) as ArrayRef);
        RecordBatch::try_new(
            contamination::spec().arrow_schema(),
            vec![
                doc_ids,
                benchmarks,
                items,
                ngrams,
                Arc::new(UInt32Array::from(matches)),
                actions,
            ],
        )
        .expect("columns match the contamination schema")
    }
}

impl ShardJob for DecontamJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "decontam"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![
            OutputTable::main(documents::spec()),
            OutputTable {
                dir: REPORT_DIR,
                spec: contamination::spec(),
            },
        ]
    }

    fn config(&self) -> Value {
        let benchmarks: Vec<Value> = self
            .benchmarks
            .iter()
            .map(|b| json!({ "name": b.spec.name, "fields": b.spec.fields, "xxh3": b.checksum, "items": b.items.len() }))
            .collect();
        json!({
            "benchmarks": benchmarks,
            "ngram": self.config.ngram,
            "window": self.config.window,
            "max_splits": self.config.max_splits,
            "min_chars": self.config.min_chars,
            "mode": self.config.mode,
        })
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = DecontamCounters::default();
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let (ids, texts) = ids_and_texts(&batch, file)?;
            let docs = self.decontaminator.run_batch(&texts);
            counters += DecontamCounters::count(&docs);
            if docs.iter().any(|d| !d.hits.is_empty()) {
                sink.write_table(contamination::spec().name, &self.report(ids, &docs))?;
            }
            let out = cleaned_batch(&batch, &texts, &docs, file)?;
            sink.write(&out)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.documents,
            counters: counter_map(&counters),
        })
    }
}

/// `batch` with contaminated texts cut and dropped documents left out.
fn cleaned_batch(
    batch: &RecordBatch,
    texts: &[&str],
    docs: &[Decontaminated],
    file: &InputFile,
) -> Result<RecordBatch> {
    if docs.iter().all(|d| d.hits.is_empty()) {
        return Ok(batch.clone());
    }
    DocumentEdit {
        text: texts
            .iter()
            .zip(docs)
            .map(|(text, doc)| Some(doc.text.as_deref().unwrap_or(text)))
            .collect(),
        owns: &|_| false,
        columns: Vec::new(),
        keep: docs.iter().map(|d| Some(!d.dropped)).collect(),
    }
    .apply(batch, file)
}

/// Reads a benchmark file into items.
fn load(spec: &BenchmarkSpec) -> Result<Benchmark> {
    let path = Path::new(&spec.path);
    let raw = std::fs::read(path).at(path)?;
    let checksum = format!("{:016x}", xxh3_64(&raw));
    let text = if spec.path.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .at(path)?;
        text
    } else {
        String::from_utf8(raw).map_err(|err| problem(spec, format!("not UTF-8: {err}")))?
    };
    let mut items = Vec::new();
    for (line_index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_number = line_index + 1;
        let record: serde_json::Map<String, Value> = serde_json::from_str(line)
            .map_err(|err| problem(spec, format!("line {line_number}: {err}")))?;
        let item_id = ID_KEYS
            .iter()
            .find_map(|key| {
                record
                    .get(*key)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            })
            .unwrap_or_else(|| format!("line {line_number}"));
        let text = item_text(spec, &record, line_number)?;
        items.push(BenchmarkItem {
            benchmark: spec.name.clone(),
            item_id,
            text,
        });
    }
    tracing::debug!(benchmark = %spec.name, items = items.len(), "benchmark loaded");
    Ok(Benchmark {
        spec: spec.clone(),
        checksum,
        items,
    })
}

/// The chosen fields of an item (every string field but the id when none are named).
fn item_text(
    spec: &BenchmarkSpec,
    record: &serde_json::Map<String, Value>,
    line: usize,
) -> Result<String> {
    if spec.fields.is_empty() {
        let parts: Vec<&str> = record
            .iter()
            .filter(|(key, _)| !ID_KEYS.contains(&key.as_str()))
            .filter_map(|(_, value)| value.as_str())
            .collect();
        return Ok(parts.join("\n"));
    }
    let parts = spec
        .fields
        .iter()
        .map(|field| match record.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(Value::Null) | None => {
                Err(problem(spec, format!("line {line}: no field `{field}`")))
            }
            Some(other) => Ok(other.to_string()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.join("\n"))
}

fn problem(spec: &BenchmarkSpec, problem: String) -> Error {
    Error::Config {
        path: spec.path.clone().into(),
        problem: format!("benchmark `{}`: {problem}", spec.name),
    }
}

impl TableStage for DecontamConfig {
    type Job = DecontamJob;

    fn job(&self, base: &Path) -> Result<DecontamJob> {
        let mut config = self.clone();
        config.benchmarks = relative_benchmarks(&config.benchmarks, base)?;
        DecontamJob::new(&config)
    }
}

/// Benchmark specs (`NAME=PATH[:FIELDS]`) with their paths taken from `base`.
fn relative_benchmarks(specs: &[String], base: &Path) -> Result<Vec<String>> {
    specs
        .iter()
        .map(|text| {
            let spec = BenchmarkSpec::parse(text).map_err(Error::Usage)?;
            let path = base.join(&spec.path);
            let fields = if spec.fields.is_empty() {
                String::new()
            } else {
                format!(":{}", spec.fields.join(","))
            };
            Ok(format!("{}={}{fields}", spec.name, path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the command line (base: the current directory) a spec is unchanged, so
    /// its config hash is what it was; under `rlpt run` its path moves to the
    /// config's directory and its fields stay.
    #[test]
    fn benchmark_paths_resolve_against_the_base() {
        let specs = vec![
            "champ=data/champ.jsonl:problem,solution".to_string(),
            "gsm=/abs/gsm8k.jsonl".to_string(),
            "local=bench.v1.jsonl".to_string(),
        ];
        assert_eq!(relative_benchmarks(&specs, Path::new("")).unwrap(), specs);
        assert_eq!(
            relative_benchmarks(&specs, Path::new("configs")).unwrap(),
            [
                "champ=configs/data/champ.jsonl:problem,solution",
                "gsm=/abs/gsm8k.jsonl",
                "local=configs/bench.v1.jsonl",
            ]
        );
        assert!(relative_benchmarks(&["no-name".to_string()], Path::new("")).is_err());
    }
}
