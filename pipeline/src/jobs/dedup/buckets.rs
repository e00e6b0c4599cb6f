//! Dedup step 2, per band: read one band column (and the keys) of every signature
//! shard, sort the `(band hash, key)` entries within a memory budget (spilling sorted
//! runs to disk), and write each bucket's candidate pairs. Units are the bands, plus
//! one for the exact hash and one for the id hash, so ranks split the bands.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, UInt64Array};
use rlpt_engine::executor::{OutputTable, ShardJob, UnitCounts, UnitSink, run_stage};
use rlpt_engine::external_sort::ExternalSorter;
use rlpt_engine::inputs::WorkUnit;
use rlpt_engine::progress::RowsToBytes;
use rlpt_engine::shard_reader::ParquetBatches;
use rlpt_engine::summary::StageSummary;
use rlpt_engine::table_units::table_inputs;
use rlpt_schemas::dedup;
use rlpt_stages::dedup::cluster::BucketPairs;
use serde_json::{Value, json};

use super::{DedupDirs, DedupRun};
use crate::error::Result;

/// Pairs are written in batches of this many.
const PAIR_BATCH: usize = 65_536;
/// Rows per batch when reading a band column.
const READ_ROWS: usize = 65_536;

pub(super) fn run(run: &DedupRun, dirs: &DedupDirs) -> Result<StageSummary> {
    let banding = run.banding()?;
    let signatures = table_inputs(&dirs.signatures().to_string_lossy())?;
    let units: Vec<WorkUnit> = (0..banding.bands + 2)
        .map(|index| WorkUnit {
            index,
            files: signatures.clone(),
            deps: Vec::new(),
        })
        .collect();
    let job = BucketsJob {
        config: serde_json::to_value(&run.config).expect("dedup config serialises"),
        bands: banding.bands,
        sort_memory: run.sort_memory,
        scratch: dirs.pairs().join("_sort"),
    };
    run_stage(&job, &units, &run.stage_run(dirs.pairs()))
}

struct BucketsJob {
    config: Value,
    bands: usize,
    sort_memory: u64,
    scratch: std::path::PathBuf,
}

impl BucketsJob {
    /// The signature column a unit groups by: a band, the exact hash or the id hash.
    fn column(&self, unit: usize) -> String {
        match unit.checked_sub(self.bands) {
            None => dedup::band_column(unit),
            Some(0) => "exact".to_string(),
            Some(_) => "id_hash".to_string(),
        }
    }
}

impl ShardJob for BucketsJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "dedup-buckets"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(dedup::pairs())]
    }

    fn config(&self) -> Value {
        json!({ "dedup": self.config, "bands": self.bands })
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let column = self.column(unit.index);
        let mut sorter = ExternalSorter::new(&self.scratch.join(&column), self.sort_memory)?;
        let mut entries = 0u64;
        for file in &unit.files {
            let batches =
                ParquetBatches::open_columns(&file.path, READ_ROWS, Some(&["key", &column]))?;
            let mut progress = RowsToBytes::new(file.bytes, batches.total_rows());
            for batch in batches {
                let batch = batch?;
                let keys = batch.column(0).as_primitive::<UInt64Type>();
                let hashes = batch.column(1).as_primitive::<UInt64Type>();
                for (key, hash) in keys.iter().zip(hashes.iter()) {
                    if let (Some(key), Some(hash)) = (key, hash) {
                        sorter.push((hash, key))?;
                        entries += 1;
                    }
                }
                sink.advance(
                    progress.rows_done(batch.num_rows() as u64),
                    batch.num_rows() as u64,
                );
            }
        }
        let spilled_runs = sorter.runs() as u64;
        let mut buckets = BucketPairs::default();
        let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(PAIR_BATCH);
        let mut written = 0u64;
        sorter.finish(|entry| {
            if let Some(pair) = buckets.push(entry) {
                pairs.push(pair);
                if pairs.len() == PAIR_BATCH {
                    written += write_pairs(sink, &mut pairs)?;
                }
            }
            Ok::<_, crate::Error>(())
        })?;
        written += write_pairs(sink, &mut pairs)?;
        let counters = [
            ("entries", entries),
            ("pairs", written),
            ("spilled_runs", spilled_runs),
        ];
        Ok(UnitCounts {
            rows_in: entries,
            counters: counters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
    }
}

/// Writes and clears the buffered pairs; returns how many.
fn write_pairs(sink: &mut UnitSink<'_>, pairs: &mut Vec<(u64, u64)>) -> Result<u64> {
    let count = pairs.len() as u64;
    if count == 0 {
        return Ok(0);
    }
    let a: UInt64Array = pairs.iter().map(|p| p.0).collect();
    let b: UInt64Array = pairs.iter().map(|p| p.1).collect();
    pairs.clear();
    let batch = RecordBatch::try_new(
        dedup::pairs().arrow_schema(),
        vec![Arc::new(a), Arc::new(b)],
    )
    .expect("columns match the pairs schema");
    sink.write(&batch)?;
    Ok(count)
}
