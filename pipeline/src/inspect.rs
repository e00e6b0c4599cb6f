//! `rlpt inspect DIR`: what a table directory holds, computed with polars — table and
//! producer (from the file metadata), units done, shards and rows, each column's type
//! and null count, length quantiles of string columns, value counts of low-cardinality
//! short string columns, the manifest's counters and rejects, and `--head N` sample
//! rows, every value cut to a line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rlpt_engine::Error as EngineError;
use rlpt_engine::manifest::{Manifest, Progress, REJECTS_DIR};
use rlpt_engine::shard_reader::{ParquetBatches, READ_BATCH_ROWS};
use rlpt_engine::summary::add_counts;

use crate::error::{Error, Result};

/// String columns with at most this many distinct values, none longer than
/// [`SHORT_VALUE_CHARS`], get value counts (a few long texts are no categories).
const LOW_CARDINALITY: u32 = 20;
/// The longest value of a column that gets value counts, in characters; values shown
/// there are cut to it.
const SHORT_VALUE_CHARS: usize = 40;
/// Value counts show at most this many values.
const TOP_VALUES: usize = 10;
/// Sample rows show at most this many characters of a value.
const HEAD_CHARS: usize = 100;
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

/// Describes the table in `dir`, showing `head` sample rows.
pub fn inspect(dir: &Path, head: usize) -> Result<String> {
    let manifest = Manifest::of(dir).read_progress()?;
    let files = table_paths(dir, manifest.as_ref())?;
    let mut out = String::new();
    match (&manifest, files.is_empty()) {
        (None, true) => {
            return Err(EngineError::Input {
                spec: dir.display().to_string(),
                problem: "holds no Parquet shards and no rlpt manifest".into(),
            }
            .into());
        }
        (Some(progress), true) => {
            line(
                &mut out,
                "table",
                format!(
                    "{}, written by `{}`: empty (0 rows)",
                    progress.stage.table, progress.stage.stage
                ),
            );
            describe_units(&mut out, progress);
            return Ok(out);
        }
        _ => describe_files(&mut out, dir, &files, manifest.as_ref())?,
    }
    let polars_error = |source| Error::Polars {
        path: dir.to_path_buf(),
        source,
    };
    let frame = scan(&files).map_err(polars_error)?;
    describe_columns(&mut out, &frame).map_err(polars_error)?;
    if let Some(progress) = &manifest {
        describe_manifest(&mut out, dir, progress);
    }
    if head > 0 {
        describe_head(&mut out, &frame, head).map_err(polars_error)?;
    }
    Ok(out)
}

/// The shards of finished units (all `*.parquet` files without a manifest).
fn table_paths(dir: &Path, manifest: Option<&Progress>) -> Result<Vec<PathBuf>> {
    match manifest {
        Some(view) => Ok(view
            .done
            .iter()
            .flat_map(|unit| {
                unit.shards_of(&view.stage.table)
                    .map(|shard| dir.join(&shard.file))
            })
            .collect()),
        None => Ok(rlpt_engine::shard_reader::table_files(
            &dir.display().to_string(),
        )?),
    }
}

fn describe_files(
    out: &mut String,
    dir: &Path,
    files: &[PathBuf],
    manifest: Option<&Progress>,
) -> Result<()> {
    let first = ParquetBatches::open(&files[0], READ_BATCH_ROWS)?;
    match first.rlpt_metadata()? {
        Some(meta) => line(
            out,
            "table",
            format!(
                "{} (schema {}), written by `{}` with config {} (rlpt {})",
                meta.schema, meta.schema_version, meta.stage, meta.config_hash, meta.rlpt_version
            ),
        ),
        None => line(
            out,
            "table",
            "no rlpt metadata (written by another tool)".to_string(),
        ),
    }
    line(out, "directory", dir.display().to_string());
    if let Some(progress) = manifest {
        describe_units(out, progress);
    }
    let mut rows = 0u64;
    let mut bytes = 0u64;
    for file in files {
        let shard = ParquetBatches::open(file, READ_BATCH_ROWS)?;
        check_known_table(file, &shard)?;
        rows += shard.total_rows();
        bytes += std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    }
    line(
        out,
        "shards",
        format!(
            "{} files, {rows} rows, {:.2} MB on disk",
            files.len(),
            bytes as f64 / 1e6
        ),
    );
    Ok(())
}

fn describe_units(out: &mut String, progress: &Progress) {
    let state = if progress.missing.is_empty() {
        "complete"
    } else {
        "INCOMPLETE: rerun the stage to finish"
    };
    let done = progress.done.len();
    line(
        out,
        "units",
        format!("{done} of {} done ({state})", progress.stage.units),
    );
}

/// Refuses a file that claims to be an rlpt table but does not fit its spec (an
/// unknown major version, a missing column).
fn check_known_table(path: &Path, shard: &ParquetBatches) -> Result<()> {
    let Some(meta) = shard.rlpt_metadata()? else {
        return Ok(());
    };
    match rlpt_schemas::table_spec(&meta.schema) {
        Some(spec) => spec.check(shard.schema(), Some(&meta)).map_err(|source| {
            EngineError::Schema {
                path: path.to_path_buf(),
                source,
            }
            .into()
        }),
        None => Ok(()),
    }
}

fn line(out: &mut String, label: &str, value: String) {
    writeln!(out, "{label:<10} {value}").expect("write to string");
}

fn scan(files: &[PathBuf]) -> PolarsResult<LazyFrame> {
    let paths = files
        .iter()
        .map(|path| PlRefPath::try_from_path(path))
        .collect::<PolarsResult<Vec<_>>>()?;
    LazyFrame::scan_parquet_files(paths.into(), ScanArgsParquet::default())
}

fn describe_columns(out: &mut String, frame: &LazyFrame) -> PolarsResult<()> {
    let schema = frame.clone().collect_schema()?;
    let names_where = |keep: fn(&DataType) -> bool| -> Vec<String> {
        schema
            .iter()
            .filter(|(_, dtype)| keep(dtype))
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let strings = names_where(DataType::is_string);
    let numbers = names_where(DataType::is_primitive_numeric);
    let mut exprs: Vec<Expr> = schema
        .iter_names()
        .map(|name| {
            col(name.clone())
                .null_count()
                .alias(format!("nulls:{name}"))
        })
        .collect();
    for name in &strings {
        exprs.push(
            col(name.as_str())
                .n_unique()
                .alias(format!("unique:{name}")),
        );
        exprs.extend(distribution(col(name.as_str()).str().len_chars(), name));
    }
    for name in &numbers {
        exprs.extend(distribution(
            col(name.as_str()).cast(DataType::Float64),
            name,
        ));
    }
    let stats = frame.clone().select(exprs).collect()?;
    let value = |key: String| -> PolarsResult<f64> {
        Ok(stats
            .column(&key)?
            .get(0)?
            .extract::<f64>()
            .unwrap_or(f64::NAN))
    };

    writeln!(out, "\n{:<16} {:<12} {:>8}", "column", "type", "nulls").expect("write");
    for (name, dtype) in schema.iter() {
        let nulls = value(format!("nulls:{name}"))?;
        writeln!(
            out,
            "{:<16} {:<12} {:>8}",
            name.as_str(),
            dtype.to_string(),
            nulls as u64
        )
        .expect("write");
    }
    let (low, high): (Vec<&String>, Vec<&String>) = strings.iter().partition(|name| {
        value(format!("unique:{name}")).is_ok_and(|u| u <= f64::from(LOW_CARDINALITY))
            && value(format!("max:{name}")).is_ok_and(|n| n <= SHORT_VALUE_CHARS as f64)
    });
    distribution_table(out, "length (chars)", &high, &value)?;
    distribution_table(out, "numbers", &numbers.iter().collect::<Vec<_>>(), &value)?;
    for name in low {
        describe_values(out, frame, name)?;
    }
    Ok(())
}

/// Labels of the distribution statistics, in table order.
const STATS: [&str; 6] = ["min", "p50", "p90", "p99", "max", "mean"];

/// min, quantiles, max and mean of `values`, aliased `STAT:name`.
fn distribution(values: Expr, name: &str) -> Vec<Expr> {
    let mut exprs = vec![values.clone().min().alias(format!("min:{name}"))];
    for (label, q) in QUANTILES {
        exprs.push(
            values
                .clone()
                .quantile(lit(q), QuantileMethod::Nearest)
                .alias(format!("{label}:{name}")),
        );
    }
    exprs.push(values.clone().max().alias(format!("max:{name}")));
    exprs.push(values.mean().alias(format!("mean:{name}")));
    exprs
}

fn distribution_table(
    out: &mut String,
    title: &str,
    names: &[&String],
    value: &dyn Fn(String) -> PolarsResult<f64>,
) -> PolarsResult<()> {
    if names.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{title:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        STATS[0], STATS[1], STATS[2], STATS[3], STATS[4], STATS[5]
    )
    .expect("write");
    for name in names {
        let cells: Vec<f64> = STATS
            .iter()
            .map(|stat| value(format!("{stat}:{name}")))
            .collect::<PolarsResult<_>>()?;
        writeln!(
            out,
            "{name:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10.1}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )
        .expect("write");
    }
    Ok(())
}

fn describe_values(out: &mut String, frame: &LazyFrame, name: &str) -> PolarsResult<()> {
    let counts = frame
        .clone()
        .group_by([col(name)])
        .agg([len().alias("count")])
        .sort_by_exprs(
            [col("count"), col(name)],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(TOP_VALUES as IdxSize)
        .collect()?;
    writeln!(out, "\n{name:<24} {:>10}", "count").expect("write");
    let values = counts.column(name)?;
    let tallies = counts.column("count")?;
    for row in 0..counts.height() {
        let value = match values.get(row)? {
            AnyValue::Null => "(null)".to_string(),
            other => truncate(&other.str_value(), SHORT_VALUE_CHARS),
        };
        writeln!(out, "{value:<24} {:>10}", tallies.get(row)?.str_value()).expect("write");
    }
    Ok(())
}

fn describe_manifest(out: &mut String, dir: &Path, view: &Progress) {
    let mut counters = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let (mut rows_in, mut rows_out) = (0u64, 0u64);
    for unit in &view.done {
        add_counts(&mut counters, &unit.counters);
        add_counts(&mut reasons, &unit.reject_reasons);
        rows_in += unit.rows_in;
        rows_out += unit.rows_out;
    }
    writeln!(
        out,
        "\nmanifest of `{}`: {rows_in} rows in, {rows_out} rows out",
        view.stage.stage
    )
    .expect("write");
    for (name, count) in &counters {
        writeln!(out, "  {name:<22} {count:>10}").expect("write");
    }
    let rejected: u64 = reasons.values().sum();
    if rejected == 0 {
        writeln!(out, "rejects    none").expect("write");
    } else {
        writeln!(
            out,
            "rejects    {rejected} in {}",
            dir.join(REJECTS_DIR).display()
        )
        .expect("write");
        for (reason, count) in &reasons {
            writeln!(out, "  {reason:<22} {count:>10}").expect("write");
        }
    }
}

fn describe_head(out: &mut String, frame: &LazyFrame, head: usize) -> PolarsResult<()> {
    let rows = frame.clone().limit(head as IdxSize).collect()?;
    writeln!(out, "\nfirst {} rows", rows.height()).expect("write");
    for row in 0..rows.height() {
        writeln!(out, "--- row {row}").expect("write");
        for column in rows.columns() {
            let value = match column.get(row)? {
                AnyValue::Null => "(null)".to_string(),
                other => truncate(&other.str_value(), HEAD_CHARS),
            };
            writeln!(out, "  {:<12} {value}", column.name().as_str()).expect("write");
        }
    }
    Ok(())
}

/// At most `max` characters of `text`, on one line, `…` marking a cut.
fn truncate(text: &str, max: usize) -> String {
    let flat = text.replace('\n', "⏎");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_characters_and_flattens_lines() {
        assert_eq!(truncate("héllo\nworld", 7), "héllo⏎w…");
        assert_eq!(truncate("short", 10), "short");
    }
}
