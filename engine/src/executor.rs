//! The one face every per-shard stage runs through. A stage implements [`ShardJob`]
//! (what to do with one work unit); [`run_stage`] does the rest, the same for all:
//! takes this rank's units (`index % world_size == rank`), checks the output directory
//! (refusing other content or another config unless `--force`), skips units already
//! done with the same config and inputs, cleans and recomputes the others, writes
//! shards and rejects through a [`UnitSink`], records each unit in the manifest, shows
//! progress and returns a summary.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use rlpt_schemas::{FileMetadata, Reject, TableSpec, rejects};
use serde::Serialize;
use serde_json::{Value, json};
use xxhash_rust::xxh3::xxh3_64;

use crate::atomic;
use crate::checksum;
use crate::error::{Error, IoContext, Result};
use crate::inputs::{InputFile, WorkUnit};
use crate::layout::Layout;
use crate::lock::{self, DirLock};
use crate::manifest::{MANIFEST_DIR, Manifest, REJECTS_DIR, StageRecord, UnitRecord};
use crate::progress::{Progress, ProgressMode, RowsToBytes};
use crate::shard_reader::TableReader;
use crate::shard_writer::{ShardLimits, ShardRecord, ShardWriter, unit_of};
use crate::summary::StageSummary;

/// The rlpt version written into manifests and file metadata.
pub const RLPT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Rejects are buffered and written in batches of this many.
const REJECT_BATCH: usize = 1024;

/// A table a stage writes: the main one in the output directory itself, others in a
/// subdirectory of it.
#[derive(Debug, Clone, Copy)]
pub struct OutputTable {
    /// Subdirectory of the output directory (`""` for the main table).
    pub dir: &'static str,
    /// The table.
    pub spec: &'static TableSpec,
}

impl OutputTable {
    /// The main table of a stage, in the output directory itself.
    pub fn main(spec: &'static TableSpec) -> Self {
        Self { dir: "", spec }
    }

    /// Whether this is a report beside the main table (decontam's `contamination/`):
    /// its schema is the spec's exactly, and each unit writes a shard of it even with
    /// no rows, so the directory always reads as a table.
    fn is_report(&self) -> bool {
        !self.dir.is_empty() && self.dir != REJECTS_DIR
    }
}

/// What a stage does with one work unit. Implementations read the unit's inputs, run
/// the pure stage transform and write through the sink; everything else is the
/// executor's.
pub trait ShardJob: Sync {
    /// The job's error: the engine's, or one that can carry it (a stage that runs a
    /// model fails in ways the engine does not know).
    type Error: From<Error>;
    /// The stage's name, as in manifests and file metadata.
    fn stage(&self) -> &'static str;
    /// The tables the stage writes, the main one first (rejects come on their own).
    fn output_tables(&self) -> Vec<OutputTable>;
    /// Every setting that shapes the output bytes (hashed into the config hash).
    fn config(&self) -> Value;
    /// Extra `rlpt.*` key-value metadata for every file the stage writes.
    fn file_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// Processes one unit.
    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>)
    -> Result<UnitCounts, Self::Error>;

    /// The work units of `input`: its files and table rows in units of about the
    /// layout's `unit_bytes` (a job whose cost is not bytes plans its own).
    fn plan_units(&self, input: &str, run: &StageRun) -> Result<Vec<WorkUnit>, Self::Error> {
        Ok(crate::table_units::plan_table(
            input,
            run.layout.unit_bytes,
        )?)
    }

    /// Plans `input` and runs this process's share of its units.
    fn run(&self, input: &str, run: &StageRun) -> Result<StageSummary, Self::Error>
    where
        Self: Sized,
    {
        run_stage(self, &self.plan_units(input, run)?, run)
    }
}

/// What a job reports for a unit besides what it wrote.
#[derive(Debug, Clone, Default)]
pub struct UnitCounts {
    /// Records read.
    pub rows_in: u64,
    /// The stage's own counters.
    pub counters: BTreeMap<String, u64>,
}

/// A stage's typed counters as the manifest's name → count map.
pub fn counter_map<T: Serialize>(counters: &T) -> BTreeMap<String, u64> {
    match serde_json::to_value(counters) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_u64()?)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Which share of the units this process handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharding {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes sharing the work.
    pub world_size: usize,
}

impl Sharding {
    /// The whole work in one process.
    pub const SINGLE: Sharding = Sharding {
        rank: 0,
        world_size: 1,
    };

    /// Checks `rank < world_size`.
    pub fn new(rank: usize, world_size: usize) -> Result<Self> {
        if world_size == 0 || rank >= world_size {
            return Err(Error::Sharding { rank, world_size });
        }
        Ok(Self { rank, world_size })
    }

    /// Whether this process handles `unit`.
    pub fn owns(&self, unit: usize) -> bool {
        unit % self.world_size == self.rank
    }
}

/// How to run a stage: where to, cut how, this process's share, and policies.
#[derive(Debug, Clone)]
pub struct StageRun {
    /// Output directory.
    pub output: PathBuf,
    /// Unit and shard sizes.
    pub layout: Layout,
    /// This process's share.
    pub sharding: Sharding,
    /// Recompute even units already done; replace another config's output.
    pub force: bool,
    /// Make any rejected record an error.
    pub strict: bool,
    /// How to show progress.
    pub progress: ProgressMode,
}

/// Where a job writes a unit's rows and rejects.
pub struct UnitSink<'a> {
    /// One writer per output table, the main table first and rejects last.
    writers: Vec<(&'static str, ShardWriter)>,
    pending_rejects: Vec<Reject>,
    reject_reasons: BTreeMap<String, u64>,
    rows_out: u64,
    strict: bool,
    progress: &'a Progress,
    /// Input bytes the batch being processed stands for, and how many of them its
    /// partial progress reported.
    batch_bytes: (u64, u64),
}

impl UnitSink<'_> {
    /// Appends rows to the main output table; an empty batch writes nothing (no
    /// shard is opened for it).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows_out += batch.num_rows() as u64;
        self.writers[0].1.write(batch)
    }

    /// Appends rows to another of the stage's output tables, by table name.
    ///
    /// # Panics
    /// If the stage did not declare the table: a bug in the stage, not bad data.
    pub fn write_table(&mut self, table: &str, batch: &RecordBatch) -> Result<()> {
        let (_, writer) = self
            .writers
            .iter_mut()
            .find(|(name, _)| *name == table)
            .unwrap_or_else(|| panic!("the stage writes no `{table}` table"));
        writer.write(batch)
    }

    /// Records a rejected input record (an error under `--strict`).
    pub fn reject(&mut self, reject: Reject) -> Result<()> {
        if self.strict {
            return Err(Error::StrictReject {
                file: reject.file,
                line: reject.line,
                reason: reject.reason,
                detail: reject.detail,
            });
        }
        *self
            .reject_reasons
            .entry(reject.reason.clone())
            .or_default() += 1;
        self.pending_rejects.push(reject);
        if self.pending_rejects.len() >= REJECT_BATCH {
            self.flush_rejects()?;
        }
        Ok(())
    }

    /// Reports input consumed.
    pub fn advance(&self, bytes: u64, rows: u64) {
        self.progress.advance(bytes, rows);
    }

    /// Starts a batch that stands for `bytes` of input (see [`Self::batch_progress`]).
    pub fn begin_batch(&mut self, bytes: u64) {
        self.batch_bytes = (bytes, 0);
    }

    /// Reports `done` of `total` work of the current batch finished, with `tokens`
    /// more run through a model: the share of its bytes moves the progress now.
    pub fn batch_progress(&mut self, done: u64, total: u64, tokens: u64) {
        let (bytes, reported) = self.batch_bytes;
        let due = bytes * done.min(total) / total.max(1);
        let delta = due.saturating_sub(reported);
        self.batch_bytes.1 += delta;
        self.progress.advance_tokens(delta, tokens);
    }

    /// Finishes the current batch of `rows` records: its bytes not yet reported.
    pub fn end_batch(&mut self, rows: u64) {
        let (bytes, reported) = std::mem::take(&mut self.batch_bytes);
        self.progress.advance(bytes - reported, rows);
    }

    fn flush_rejects(&mut self) -> Result<()> {
        if !self.pending_rejects.is_empty() {
            let batch = rejects::to_batch(&self.pending_rejects);
            self.pending_rejects.clear();
            self.write_table(rejects::spec().name, &batch)?;
        }
        Ok(())
    }
}

/// Streams every batch of a unit's files of `table` (each checked against the spec)
/// into `visit`, reporting the input consumed to the sink's progress.
pub fn for_each_batch<E: From<Error>>(
    unit: &WorkUnit,
    table: &'static TableSpec,
    sink: &mut UnitSink<'_>,
    mut visit: impl FnMut(&mut UnitSink<'_>, &InputFile, RecordBatch) -> Result<(), E>,
) -> Result<(), E> {
    for file in &unit.files {
        let reader = TableReader::open_input(file, table)?;
        let mut progress = RowsToBytes::new(file.bytes, reader.total_rows());
        for batch in reader {
            let batch = batch?;
            let rows = batch.num_rows() as u64;
            sink.begin_batch(progress.rows_done(rows));
            visit(sink, file, batch)?;
            sink.end_batch(rows);
        }
    }
    Ok(())
}

/// The hash identifying a stage's config: xxh3-64 of the stage name and the config's
/// JSON, in hex.
pub fn config_hash(stage: &str, config: &Value) -> String {
    let text = format!("{stage}\n{config}");
    format!("{:016x}", xxh3_64(text.as_bytes()))
}

/// The stage directory's lock, in `_manifest/` ([`lock::stage_dir`]).
const LOCK_FILE: &str = "lock";
/// The directory of the units' locks, `_manifest/locks/unit-N`, each held while its
/// unit is computed (apart from the `unit-N.json` records, which name finished units).
const UNIT_LOCKS: &str = "locks";

/// Runs `job` over this rank's share of `units`, with resume.
pub fn run_stage<E: From<Error>>(
    job: &dyn ShardJob<Error = E>,
    units: &[WorkUnit],
    run: &StageRun,
) -> Result<StageSummary, E> {
    let started = Instant::now();
    let config = json!({ "stage": job.config(), "layout": run.layout });
    let tables = all_tables(job);
    let record = StageRecord {
        stage: job.stage().to_string(),
        table: tables[0].spec.name.to_string(),
        config_hash: config_hash(job.stage(), &config),
        config,
        units: units.len(),
        rlpt_version: RLPT_VERSION.to_string(),
    };
    fs::create_dir_all(&run.output).at(&run.output)?;
    let manifest = Manifest::of(&run.output);
    let records_ours = || {
        Ok(manifest
            .read_stage()?
            .is_some_and(|p| p.config_hash == record.config_hash && p.units == record.units))
    };
    let lock_path = manifest.dir().join(LOCK_FILE);
    let mut existing = existing_shards(&run.output, &tables)?;
    let _lock = match lock::stage_dir(&lock_path, records_ours)? {
        DirLock::Shared(held) => held,
        DirLock::Exclusive(held) => {
            prepare_output(&manifest, run, &record, &mut existing)?;
            held.share(records_ours)?
        }
    };

    let mut summary = StageSummary {
        stage: record.stage.clone(),
        output: run.output.clone(),
        units_total: units.len(),
        ..StageSummary::default()
    };
    let mut todo = Vec::new();
    for unit in units.iter().filter(|u| run.sharding.owns(u.index)) {
        match reusable(&manifest, unit, &record.config_hash, run)? {
            Some(done) => summary.add(&done, true),
            None => todo.push(unit),
        }
    }
    let progress = Progress::new(
        run.progress,
        job.stage(),
        todo.iter().map(|u| u.bytes()).sum(),
    );
    for unit in todo {
        // Another process of this config may be on the unit: wait, then reuse its work.
        let unit_lock = manifest
            .dir()
            .join(UNIT_LOCKS)
            .join(format!("unit-{:05}", unit.index));
        let _unit_lock = lock::wait_exclusive(&unit_lock)?;
        if let Some(done) = reusable(&manifest, unit, &record.config_hash, run)? {
            summary.add(&done, true);
            continue;
        }
        manifest.remove_unit(unit.index)?;
        remove_files(existing.remove(&unit.index).unwrap_or_default())?;
        let done = run_unit(job, &tables, unit, run, &record.config_hash, &progress)?;
        manifest.write_unit(&done)?;
        summary.add(&done, false);
    }
    progress.finish();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The job's tables and, last, the rejects table.
fn all_tables<E: From<Error>>(job: &dyn ShardJob<Error = E>) -> Vec<OutputTable> {
    let mut tables = job.output_tables();
    tables.push(OutputTable {
        dir: REJECTS_DIR,
        spec: rejects::spec(),
    });
    tables
}

fn run_unit<E: From<Error>>(
    job: &dyn ShardJob<Error = E>,
    tables: &[OutputTable],
    unit: &WorkUnit,
    run: &StageRun,
    config_hash: &str,
    progress: &Progress,
) -> Result<UnitRecord, E> {
    let started = Instant::now();
    let limits = ShardLimits {
        max_rows: run.layout.max_shard_rows,
        max_bytes: run.layout.max_shard_bytes,
    };
    let writers = tables
        .iter()
        .map(|table| {
            let mut metadata =
                FileMetadata::new(table.spec, job.stage(), config_hash, RLPT_VERSION);
            metadata.extra = job.file_metadata();
            let writer = ShardWriter::new(&run.output, table.dir, unit.index, metadata, limits);
            (table.spec.name, writer)
        })
        .collect();
    let mut sink = UnitSink {
        writers,
        pending_rejects: Vec::new(),
        reject_reasons: BTreeMap::new(),
        rows_out: 0,
        strict: run.strict,
        progress,
        batch_bytes: (0, 0),
    };
    let counts = job.run_unit(unit, &mut sink)?;
    sink.flush_rejects()?;
    let mut outputs = Vec::new();
    for ((_, mut writer), table) in sink.writers.into_iter().zip(tables) {
        if table.is_report() {
            writer.ensure_shard(table.spec.arrow_schema())?;
        }
        outputs.extend(writer.finish()?);
    }
    Ok(UnitRecord {
        unit: unit.index,
        config_hash: config_hash.to_string(),
        input_fingerprint: unit.fingerprint(),
        inputs: unit.files.iter().map(|f| f.rel.clone()).collect(),
        input_bytes: unit.bytes(),
        outputs,
        rows_in: counts.rows_in,
        rows_out: sink.rows_out,
        reject_reasons: sink.reject_reasons,
        counters: counts.counters,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The finished record of `unit`, if it can be reused: same config, same inputs, and
/// its files still there with their recorded sizes and checksums.
fn reusable(
    manifest: &Manifest,
    unit: &WorkUnit,
    config_hash: &str,
    run: &StageRun,
) -> Result<Option<UnitRecord>> {
    if run.force {
        return Ok(None);
    }
    let Some(record) = manifest.read_unit(unit.index)? else {
        return Ok(None);
    };
    let same = record.config_hash == config_hash && record.input_fingerprint == unit.fingerprint();
    if !same {
        return Ok(None);
    }
    match record
        .outputs
        .iter()
        .find_map(|shard| shard_damage(&run.output, shard))
    {
        None => Ok(Some(record)),
        Some(damage) => {
            tracing::warn!(unit = unit.index, "{damage}; recomputing the unit");
            Ok(None)
        }
    }
}

/// What is wrong with a finished shard on disk, if anything: gone, another size, other
/// bytes than were written (bit rot, an edit), or no recorded checksum to trust.
fn shard_damage(output: &Path, shard: &ShardRecord) -> Option<String> {
    let path = output.join(&shard.file);
    let Some(recorded) = &shard.xxh3 else {
        return Some(format!("{} has no recorded checksum", path.display()));
    };
    match fs::metadata(&path) {
        Err(err) => return Some(format!("{}: {err}", path.display())),
        Ok(meta) if meta.len() != shard.bytes => {
            return Some(format!(
                "{} has {} bytes, {} were written",
                path.display(),
                meta.len(),
                shard.bytes
            ));
        }
        Ok(_) => {}
    }
    match checksum::file_checksum(&path) {
        Ok(actual) if &actual == recorded => None,
        Ok(actual) => Some(format!(
            "{} changed on disk (xxh3 {actual}, {recorded} when written)",
            path.display()
        )),
        Err(err) => Some(err.to_string()),
    }
}

/// Makes sure `run.output` may receive this stage's output, and records the stage.
fn prepare_output(
    manifest: &Manifest,
    run: &StageRun,
    record: &StageRecord,
    existing: &mut BTreeMap<usize, Vec<PathBuf>>,
) -> Result<()> {
    let refuse = |problem: String| Error::OutputDir {
        dir: run.output.clone(),
        problem,
    };
    let previous = match manifest.read_stage()? {
        Some(previous) => previous,
        None => {
            let foreign = foreign_entries(&run.output)?;
            // Another rank may have started the directory since we looked.
            match manifest.read_stage()? {
                Some(previous) => previous,
                None if foreign.is_empty() => return manifest.write_stage(record),
                None => {
                    return Err(refuse(format!(
                        "the directory is not empty (it has {}) and was not written by rlpt; \
                         choose an empty or new --output",
                        foreign.join(", ")
                    )));
                }
            }
        }
    };
    if previous.stage != record.stage {
        return Err(refuse(format!(
            "it holds the output of the `{}` stage; choose another --output for `{}`",
            previous.stage, record.stage
        )));
    }
    if previous.config_hash == record.config_hash && previous.units == record.units {
        return Ok(());
    }
    if !run.force {
        return Err(refuse(format!(
            "it was written with a different configuration: {}. Rerun with --force to \
             recompute it with the new configuration, or choose another --output",
            describe_change(&previous, record).join("; ")
        )));
    }
    manifest.write_stage(record)?;
    // Units beyond the new plan belong to no rank: any rank may remove them.
    for unit in manifest
        .recorded_units()?
        .into_iter()
        .filter(|&u| u >= record.units)
    {
        manifest.remove_unit(unit)?;
    }
    let stale: Vec<usize> = existing.range(record.units..).map(|(&u, _)| u).collect();
    for unit in stale {
        remove_files(existing.remove(&unit).unwrap_or_default())?;
    }
    Ok(())
}

/// Entries of `dir` that rlpt would not have written: anything but `_`-prefixed
/// entries (rlpt's manifest and work files) and directories with a manifest of their
/// own (the output of another step, such as `dedup_clusters/` beside deduplicated
/// documents).
fn foreign_entries(dir: &Path) -> Result<Vec<String>> {
    let mut foreign = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let nested_output = path.join(MANIFEST_DIR).is_dir();
        if !name.starts_with('_') && !nested_output {
            foreign.push(name);
        }
    }
    foreign.sort();
    Ok(foreign)
}

/// What differs between the recorded config and this run's, key by key.
fn describe_change(previous: &StageRecord, current: &StageRecord) -> Vec<String> {
    let mut changes = Vec::new();
    if previous.units != current.units {
        changes.push(format!(
            "the input is now {} work units, it was {}",
            current.units, previous.units
        ));
    }
    let (old, new) = (flatten(&previous.config), flatten(&current.config));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (before, after) = (old.get(key), new.get(key));
        if before != after {
            let show = |v: Option<&Value>| v.map_or("(unset)".to_string(), Value::to_string);
            changes.push(format!(
                "{key} was {}, is now {}",
                show(before),
                show(after)
            ));
        }
    }
    if changes.is_empty() {
        changes.push(format!(
            "config hash {} was {}",
            current.config_hash, previous.config_hash
        ));
    }
    changes
}

fn flatten(value: &Value) -> HashMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut HashMap<String, Value>) {
        match value {
            Value::Object(fields) => {
                for (key, inner) in fields {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, inner, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = HashMap::new();
    walk("", value, &mut out);
    out
}

/// Shard files (finished or `.tmp`) in the directories of the stage's tables, by unit.
fn existing_shards(output: &Path, tables: &[OutputTable]) -> Result<BTreeMap<usize, Vec<PathBuf>>> {
    let mut by_unit: BTreeMap<usize, Vec<PathBuf>> = BTreeMap::new();
    for dir in tables.iter().map(|table| output.join(table.dir)) {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).at(&dir),
        };
        for entry in entries {
            let path = entry.at(&dir)?.path();
            let unit = path.file_name().and_then(|n| unit_of(&n.to_string_lossy()));
            if let Some(unit) = unit {
                by_unit.entry(unit).or_default().push(path);
            }
        }
    }
    Ok(by_unit)
}

fn remove_files(paths: Vec<PathBuf>) -> Result<()> {
    paths
        .iter()
        .try_for_each(|path| Ok(atomic::remove_if_exists(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_moves_the_progress_with_each_forward_pass() {
        let progress = Progress::new(ProgressMode::Off, "entropy", 1000);
        let mut sink = UnitSink {
            writers: Vec::new(),
            pending_rejects: Vec::new(),
            reject_reasons: BTreeMap::new(),
            rows_out: 0,
            strict: false,
            progress: &progress,
            batch_bytes: (0, 0),
        };
        sink.begin_batch(600);
        sink.batch_progress(100, 400, 100);
        assert_eq!(
            progress.totals(),
            (150, 0, 100),
            "a quarter of the batch's bytes"
        );
        sink.batch_progress(400, 400, 300);
        assert_eq!(progress.totals(), (600, 0, 400));
        sink.end_batch(7);
        assert_eq!(
            progress.totals(),
            (600, 7, 400),
            "rows count when the batch is done"
        );
        sink.begin_batch(400);
        sink.end_batch(3);
        assert_eq!(progress.totals(), (1000, 10, 400), "a batch without passes");
    }

    #[test]
    fn ranks_split_units_round_robin() {
        let sharding = Sharding::new(1, 3).unwrap();
        let owned: Vec<usize> = (0..8).filter(|&u| sharding.owns(u)).collect();
        assert_eq!(owned, [1, 4, 7]);
        assert!(
            Sharding::new(3, 3)
                .unwrap_err()
                .to_string()
                .contains("0..world-size")
        );
        assert!(Sharding::new(0, 0).is_err());
    }

    #[test]
    fn config_hashes_depend_on_stage_and_config() {
        let a = config_hash("ingest", &json!({"text_field": "text"}));
        assert_eq!(a, config_hash("ingest", &json!({"text_field": "text"})));
        assert_ne!(a, config_hash("ingest", &json!({"text_field": "body"})));
        assert_ne!(a, config_hash("pii", &json!({"text_field": "text"})));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_config_change_is_described_key_by_key() {
        let record = |config: Value, units| StageRecord {
            stage: "ingest".into(),
            table: "documents".into(),
            config_hash: config.to_string(),
            config,
            units,
            rlpt_version: RLPT_VERSION.into(),
        };
        let old = record(json!({"stage": {"text_field": "text", "source": null}}), 2);
        let new = record(json!({"stage": {"text_field": "body", "source": null}}), 3);
        assert_eq!(
            describe_change(&old, &new),
            [
                "the input is now 3 work units, it was 2",
                "stage.text_field was \"text\", is now \"body\""
            ]
        );
    }

    #[test]
    fn rlpt_internals_and_nested_outputs_are_not_foreign() {
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "_manifest",
            "_dedup/signatures",
            "dedup_clusters/_manifest",
            "notes",
        ] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("draft.txt"), "mine").unwrap();
        assert_eq!(foreign_entries(dir.path()).unwrap(), ["draft.txt", "notes"]);
    }

    #[test]
    fn typed_counters_become_a_map() {
        #[derive(Serialize)]
        struct Counters {
            records: u64,
            documents: u64,
        }
        let map = counter_map(&Counters {
            records: 3,
            documents: 2,
        });
        assert_eq!(
            map,
            BTreeMap::from([("documents".into(), 2), ("records".into(), 3)])
        );
    }
}
