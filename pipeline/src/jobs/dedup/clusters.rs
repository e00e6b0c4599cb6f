//! Dedup step 3, one task: read every candidate pair, load the id, bottom-k sketch and
//! source of each document in a pair (only those), verify, cluster, and write
//! `dedup_clusters` (for people) and `dedup_removed` (the keys the filter drops).
//!
//! Memory: the distinct pairs and the members' sketches — proportional to the number
//! of duplicate candidates, not to the corpus.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{BooleanArray, Float32Array, RecordBatch, StringArray, UInt64Array};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::progress::RowsToBytes;
use rlpt_engine::shard_reader::ParquetBatches;
use rlpt_engine::summary::StageSummary;
use rlpt_engine::table_units::table_inputs;
use rlpt_schemas::dedup;
use rlpt_stages::dedup::cluster::{ClusterRow, Clustering, Member};
use serde_json::Value;

use super::{DedupDirs, DedupRun, REMOVED_DIR};
use crate::error::Result;
use rlpt_engine::executor::{
    OutputTable, ShardJob, Sharding, UnitCounts, UnitSink, counter_map, run_stage,
};

/// Rows per written batch, and per batch read.
const BATCH_ROWS: usize = 65_536;

pub(super) fn run(run: &DedupRun, dirs: &DedupDirs) -> Result<StageSummary> {
    let unit = WorkUnit {
        index: 0,
        files: table_inputs(&dirs.pairs().to_string_lossy())?,
        deps: table_inputs(&dirs.signatures().to_string_lossy())?,
    };
    let job = ClustersJob {
        config: serde_json::to_value(&run.config).expect("dedup config serialises"),
        clustering: Clustering {
            threshold: run.config.threshold,
            verify: !run.config.no_verify,
            sketch_size: run.config.sketch_size,
        },
    };
    let stage_run = rlpt_engine::executor::StageRun {
        sharding: Sharding::SINGLE,
        ..run.stage_run(dirs.clusters())
    };
    run_stage(&job, &[unit], &stage_run)
}

struct ClustersJob {
    config: Value,
    clustering: Clustering,
}

impl ShardJob for ClustersJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "dedup-clusters"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![
            OutputTable::main(dedup::clusters()),
            OutputTable {
                dir: REMOVED_DIR,
                spec: dedup::removed(),
            },
        ]
    }

    fn config(&self) -> Value {
        self.config.clone()
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let pairs = read_pairs(&unit.files, sink)?;
        let mut keys: Vec<u64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        keys.sort_unstable();
        keys.dedup();
        let members = read_members(&unit.deps, &keys, sink)?;
        let clusters = self.clustering.run(&pairs, &members);
        for rows in clusters.rows.chunks(BATCH_ROWS) {
            sink.write(&clusters_batch(rows))?;
        }
        for keys in clusters.removed.chunks(BATCH_ROWS) {
            let keys: UInt64Array = keys.iter().copied().collect();
            let batch = RecordBatch::try_new(dedup::removed().arrow_schema(), vec![Arc::new(keys)])
                .expect("columns match the removed schema");
            sink.write_table(dedup::removed().name, &batch)?;
        }
        Ok(UnitCounts {
            rows_in: pairs.len() as u64,
            counters: counter_map(&clusters.counters),
        })
    }
}

/// Every candidate pair, sorted and without repeats (a pair shares several bands).
fn read_pairs(files: &[InputFile], sink: &UnitSink<'_>) -> Result<Vec<(u64, u64)>> {
    let mut pairs = Vec::new();
    for file in files {
        let batches = ParquetBatches::open(&file.path, BATCH_ROWS)?;
        let mut progress = RowsToBytes::new(file.bytes, batches.total_rows());
        for batch in batches {
            let batch = batch?;
            let a = batch.column(0).as_primitive::<UInt64Type>();
            let b = batch.column(1).as_primitive::<UInt64Type>();
            pairs.extend(a.values().iter().copied().zip(b.values().iter().copied()));
            sink.advance(progress.rows_done(batch.num_rows() as u64), 0);
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    Ok(pairs)
}

/// The id, sketch and source of every document among `keys` (sorted).
fn read_members(
    files: &[InputFile],
    keys: &[u64],
    sink: &UnitSink<'_>,
) -> Result<HashMap<u64, Member>> {
    let mut members = HashMap::with_capacity(keys.len());
    for file in files {
        let batches = ParquetBatches::open_columns(
            &file.path,
            BATCH_ROWS,
            Some(&["key", "id", "sketch", "source"]),
        )?;
        let mut progress = RowsToBytes::new(file.bytes, batches.total_rows());
        for batch in batches {
            let batch = batch?;
            let key = batch.column(0).as_primitive::<UInt64Type>();
            let id = batch.column(1).as_string::<i32>();
            let sketch = batch.column(2).as_binary::<i32>();
            let source = batch.column(3).as_string::<i32>();
            for row in
                (0..batch.num_rows()).filter(|&row| keys.binary_search(&key.value(row)).is_ok())
            {
                let member = Member {
                    id: id.value(row).to_string(),
                    sketch: sketch
                        .value(row)
                        .chunks_exact(4)
                        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect(),
                    source: source.value(row).to_string(),
                };
                members.insert(key.value(row), member);
            }
            sink.advance(progress.rows_done(batch.num_rows() as u64), 0);
        }
    }
    Ok(members)
}

fn clusters_batch(rows: &[ClusterRow]) -> RecordBatch {
    let ids: StringArray = rows.iter().map(|r| Some(r.id.as_str())).collect();
    let cluster_ids: StringArray = rows.iter().map(|r| Some(r.cluster_id.as_str())).collect();
    let kept: BooleanArray = rows.iter().map(|r| Some(r.kept)).collect();
    let similarity: Float32Array = rows.iter().map(|r| r.similarity).collect();
    let sources: StringArray = rows.iter().map(|r| Some(r.source.as_str())).collect();
    RecordBatch::try_new(
        dedup::clusters().arrow_schema(),
        vec![
            Arc::new(ids),
            Arc::new(cluster_ids),
            Arc::new(kept),
            Arc::new(similarity),
            Arc::new(sources),
        ],
    )
    .expect("columns match the clusters schema")
}
