//! Dedup step 4, per input unit: the unit's documents without those the clusters step
//! removed. The removed keys are sorted, so a unit reads only the row groups whose
//! key statistics overlap its own key range. Every column of the input is kept.
//!
//! Keys name (unit, row), so this step must cut the input into the same units as the
//! signatures step: it checks that against the signatures manifest before starting.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::BooleanArray;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;
use rlpt_engine::Error as EngineError;
use rlpt_engine::IoContext;
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch, run_stage,
};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::manifest::Manifest;
use rlpt_engine::shard_reader::filter_rows;
use rlpt_engine::summary::StageSummary;
use rlpt_engine::table_units::plan_table;
use rlpt_schemas::{dedup, documents};
use rlpt_stages::dedup::{doc_key, unit_and_row};
use serde::Serialize;
use serde_json::Value;

use super::{DedupDirs, DedupRun};
use crate::error::{Error, Result};

pub(super) fn run(run: &DedupRun, input: &str, dirs: &DedupDirs) -> Result<StageSummary> {
    let removed = removed_shards(&dirs.clusters())?;
    let mut units = plan_table(input, run.layout.unit_bytes)?;
    check_same_units(input, &units, &dirs.signatures())?;
    for unit in &mut units {
        unit.deps = removed.clone();
    }
    let job = FilterJob {
        config: serde_json::to_value(&run.config).expect("dedup config serialises"),
    };
    run_stage(&job, &units, &run.stage_run(dirs.documents()))
}

/// The removed-key shards the finished clusters step wrote.
fn removed_shards(clusters: &Path) -> Result<Vec<InputFile>> {
    let Some((_, units)) = Manifest::of(clusters).read_complete(clusters)? else {
        return Err(EngineError::IncompleteInput {
            dir: clusters.to_path_buf(),
            problem: "no clusters yet: run `rlpt dedup clusters` first".into(),
        }
        .into());
    };
    let paths: Vec<PathBuf> = units
        .iter()
        .flat_map(|unit| unit.shards_of(dedup::removed().name))
        .map(|shard| clusters.join(&shard.file))
        .collect();
    Ok(rlpt_engine::inputs::stat_paths(&paths, clusters)?)
}

/// Refuses to filter when the input is not cut into the units the signatures step
/// keyed documents by.
fn check_same_units(input: &str, units: &[WorkUnit], signatures: &Path) -> Result<()> {
    let Some((_, records)) = Manifest::of(signatures).read_complete(signatures)? else {
        return Err(EngineError::IncompleteInput {
            dir: signatures.to_path_buf(),
            problem: "no signatures yet: run `rlpt dedup signatures` first".into(),
        }
        .into());
    };
    let differs = records.len() != units.len()
        || records
            .iter()
            .zip(units)
            .any(|(record, unit)| record.input_fingerprint != unit.files_fingerprint());
    if differs {
        return Err(EngineError::Input {
            spec: input.to_string(),
            problem: "the input (or --unit-bytes) changed since `rlpt dedup signatures` ran; \
                      rerun every dedup step on this input"
                .into(),
        }
        .into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct FilterCounters {
    documents: u64,
    removed: u64,
    kept: u64,
}

struct FilterJob {
    config: Value,
}

impl ShardJob for FilterJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "dedup-filter"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(documents::spec())]
    }

    fn config(&self) -> Value {
        self.config.clone()
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let removed = removed_rows(&unit.deps, unit.index)?;
        let mut counters = FilterCounters::default();
        let mut row = 0usize;
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let rows = batch.num_rows();
            let keep: BooleanArray = (row..row + rows)
                .map(|r| Some(!removed.contains(&r)))
                .collect();
            row += rows;
            let kept = filter_rows(&batch, &keep, file)?;
            counters.documents += rows as u64;
            counters.kept += kept.num_rows() as u64;
            counters.removed += (rows - kept.num_rows()) as u64;
            sink.write(&kept)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.documents,
            counters: counter_map(&counters),
        })
    }
}

/// Rows of `unit` among the removed keys, reading only row groups whose key range
/// overlaps the unit's.
fn removed_rows(files: &[InputFile], unit: usize) -> Result<HashSet<usize>> {
    let (first, last) = (doc_key(unit, 0), doc_key(unit, u32::MAX as usize));
    let mut rows = HashSet::new();
    for file in files {
        let parquet_error = |source| EngineError::Parquet {
            path: file.path.clone(),
            source,
        };
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&file.path).at(&file.path)?)
                .map_err(parquet_error)?;
        let groups: Vec<usize> = builder
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, group)| match group.column(0).statistics() {
                Some(Statistics::Int64(stats)) => match (stats.min_opt(), stats.max_opt()) {
                    (Some(&min), Some(&max)) => (min as u64) <= last && (max as u64) >= first,
                    _ => true,
                },
                _ => true,
            })
            .map(|(index, _)| index)
            .collect();
        for batch in builder
            .with_row_groups(groups)
            .build()
            .map_err(parquet_error)?
        {
            let batch = batch.map_err(|source| EngineError::Arrow {
                path: file.path.clone(),
                source,
            })?;
            let keys = batch.column(0).as_primitive::<UInt64Type>();
            rows.extend(
                keys.values()
                    .iter()
                    .filter(|&&key| key >= first && key <= last)
                    .map(|&key| unit_and_row(key).1),
            );
        }
    }
    Ok(rows)
}
