//! A table's shards as work: [`plan_table`] cuts the shards of a table another stage
//! wrote into work units of about a size (a shard larger than that as row ranges),
//! [`plan_table_by_cost`] by a cost per row (tokens), and [`table_fingerprint`]
//! identifies a table's content for a step that reads it whole. Units depend only on
//! the data, never on rank or world size.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::inputs::{
    InputFile, RowRange, WorkUnit, fingerprint, glob_root, plan_units, stat_paths,
};
use crate::manifest::Manifest;
use crate::shard_reader::{ParquetBatches, table_files};

/// The shards of the table `input` names (see [`table_files`]) as input files, in
/// the table's order.
pub fn table_inputs(input: &str) -> Result<Vec<InputFile>> {
    let root = if Path::new(input).is_dir() {
        PathBuf::from(input)
    } else {
        glob_root(input)
    };
    stat_paths(&table_files(input)?, &root)
}

/// Identifies the content of the table `input` names, for a step that reads it whole
/// (train, eval) to notice a change: the producing stage's config hash and every
/// finished shard (name, rows, bytes, checksum) for a directory rlpt wrote — the same for the
/// same output wherever and whenever it was computed — else the files' names, sizes
/// and modification times.
pub fn table_fingerprint(input: &str) -> Result<String> {
    let dir = Path::new(input);
    if dir.is_dir()
        && let Some((stage, units)) = Manifest::of(dir).read_complete(dir)?
    {
        let mut hasher = Xxh3::new();
        hasher.update(stage.config_hash.as_bytes());
        for unit in &units {
            for shard in &unit.outputs {
                let checksum = shard.xxh3.as_deref().unwrap_or_default();
                hasher.update(
                    format!(
                        "\0{}\0{}\0{}\0{checksum}",
                        shard.file, shard.rows, shard.bytes
                    )
                    .as_bytes(),
                );
            }
        }
        return Ok(format!("{:016x}", hasher.digest()));
    }
    Ok(fingerprint(table_inputs(input)?.iter()))
}

/// The shards of the table `input` names; none only for a finished stage that wrote
/// no rows (an empty table, not a missing one).
fn table_shards(input: &str) -> Result<Vec<InputFile>> {
    let files = table_inputs(input)?;
    let dir = Path::new(input);
    let empty_table = dir.is_dir() && Manifest::of(dir).read_complete(dir)?.is_some();
    if files.is_empty() && !empty_table {
        return Err(Error::Input {
            spec: input.to_string(),
            problem: "the table has no shards".into(),
        });
    }
    Ok(files)
}

/// Work units over the shards of the table `input` names, each of about `budget` by
/// the cost `row_costs` gives each row of a shard (in order): a unit closes once its
/// rows reach the budget, so it may hold a range of one shard, or the end of one and
/// the start of the next. Depends only on the data.
pub fn plan_table_by_cost<E: From<Error>>(
    input: &str,
    budget: u64,
    mut row_costs: impl FnMut(&InputFile) -> Result<Vec<u64>, E>,
) -> Result<Vec<WorkUnit>, E> {
    let mut units: Vec<Vec<InputFile>> = Vec::new();
    let mut current: Vec<InputFile> = Vec::new();
    let mut spent = 0u64;
    for file in table_shards(input)? {
        let costs = row_costs(&file)?;
        let rows = costs.len() as u64;
        let mut start = 0u64;
        for (row, cost) in (1..).zip(&costs) {
            spent += cost;
            if spent >= budget.max(1) {
                current.push(row_part(&file, start, row, rows));
                units.push(std::mem::take(&mut current));
                (spent, start) = (0, row);
            }
        }
        if start < rows || rows == 0 {
            current.push(row_part(&file, start, rows, rows));
        }
    }
    if !current.is_empty() {
        units.push(current);
    }
    Ok(units
        .into_iter()
        .enumerate()
        .map(|(index, files)| WorkUnit {
            index,
            files,
            deps: Vec::new(),
        })
        .collect())
}

/// Rows `start..end` of `file` (of `rows`), the whole file when that is all of it.
fn row_part(file: &InputFile, start: u64, end: u64, rows: u64) -> InputFile {
    if start == 0 && end == rows {
        return file.clone();
    }
    InputFile {
        rel: format!("{}#rows={start}..{end}", file.rel),
        bytes: file.bytes * (end - start) / rows.max(1),
        rows: Some(RowRange { start, end }),
        ..file.clone()
    }
}

/// Work units over the shards of the table `input` names.
pub fn plan_table(input: &str, unit_bytes: u64) -> Result<Vec<WorkUnit>> {
    let files = table_shards(input)?;
    let mut parts = Vec::with_capacity(files.len());
    for file in files {
        parts.extend(split_rows(file, unit_bytes)?);
    }
    Ok(plan_units(parts, unit_bytes))
}

/// A shard larger than `unit_bytes` as row ranges of about `unit_bytes` each (by its
/// bytes per row), so a unit — what a rank takes and an interruption loses — stays
/// near `unit_bytes` however large the shards another stage wrote. Depends only on the
/// file's size and row count.
fn split_rows(file: InputFile, unit_bytes: u64) -> Result<Vec<InputFile>> {
    if file.bytes <= unit_bytes.max(1) {
        return Ok(vec![file]);
    }
    let rows = ParquetBatches::open(&file.path, 1)?.total_rows();
    let parts = file.bytes.div_ceil(unit_bytes.max(1)).min(rows).max(1);
    if parts == 1 {
        return Ok(vec![file]);
    }
    Ok((0..parts)
        .map(|part| row_part(&file, rows * part / parts, rows * (part + 1) / parts, rows))
        .collect())
}
