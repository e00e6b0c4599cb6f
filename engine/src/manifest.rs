//! The per-output-directory manifest, in `DIR/_manifest/`:
//!
//! - `stage.json` ([`StageRecord`]): which stage writes the directory, its config and
//!   config hash, and how many work units the output has.
//! - `unit-UUUUU.json` ([`UnitRecord`]): one per finished unit — its input fingerprint,
//!   config hash, output and reject shards, rows in/out, counters and reject counts.
//!
//! A unit is done exactly when its record exists with the directory's config hash;
//! records are written atomically after the unit's shards, so a crash at any moment
//! leaves either a done unit or one a rerun redoes. Every rank writes only its own
//! units' records, so ranks never contend for a file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{Error, IoContext, Result};
use crate::shard_writer::ShardRecord;

/// The manifest's directory inside an output directory.
pub const MANIFEST_DIR: &str = "_manifest";
/// The rejects table's directory inside an output directory.
pub const REJECTS_DIR: &str = "rejects";

/// What writes a directory, with which config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage, e.g. `ingest`.
    pub stage: String,
    /// The output table, e.g. `documents`.
    pub table: String,
    /// Hash of `config`.
    pub config_hash: String,
    /// Everything that shapes the output bytes.
    pub config: serde_json::Value,
    /// Number of work units of the output.
    pub units: usize,
    /// rlpt version that started the directory.
    pub rlpt_version: String,
}

/// One finished work unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// Unit index.
    pub unit: usize,
    /// Config hash it was computed with.
    pub config_hash: String,
    /// Fingerprint of its inputs (names, sizes, modification times).
    pub input_fingerprint: String,
    /// Its input files, relative to the input root.
    pub inputs: Vec<String>,
    /// Input bytes.
    pub input_bytes: u64,
    /// Shards of every table the unit wrote (rejects included), in order.
    pub outputs: Vec<ShardRecord>,
    /// Records read.
    pub rows_in: u64,
    /// Rows written to the output table.
    pub rows_out: u64,
    /// Records rejected, by reason code.
    pub reject_reasons: BTreeMap<String, u64>,
    /// The stage's own counters.
    pub counters: BTreeMap<String, u64>,
    /// Wall time spent on the unit.
    pub seconds: f64,
}

impl UnitRecord {
    /// Records rejected, all reasons.
    pub fn rejected(&self) -> u64 {
        self.reject_reasons.values().sum()
    }

    /// The unit's shards of `table`, in order.
    pub fn shards_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a ShardRecord> {
        self.outputs
            .iter()
            .filter(move |shard| shard.table == table)
    }
}

/// How far the stage writing a directory has got.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The stage record.
    pub stage: StageRecord,
    /// Records of the units finished under the stage's config, in unit order.
    pub done: Vec<UnitRecord>,
    /// Units not finished.
    pub missing: Vec<usize>,
}

/// The manifest of one output directory.
#[derive(Debug, Clone)]
pub struct Manifest {
    dir: PathBuf,
}

impl Manifest {
    /// The manifest of output directory `output`.
    pub fn of(output: &Path) -> Self {
        Self {
            dir: output.join(MANIFEST_DIR),
        }
    }

    /// The `_manifest/` directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stage_path(&self) -> PathBuf {
        self.dir.join("stage.json")
    }

    fn unit_path(&self, unit: usize) -> PathBuf {
        self.dir.join(format!("unit-{unit:05}.json"))
    }

    /// The stage record, if the directory has one.
    pub fn read_stage(&self) -> Result<Option<StageRecord>> {
        read_json(&self.stage_path())
    }

    /// Writes the stage record atomically (every rank may write it at once).
    pub fn write_stage(&self, record: &StageRecord) -> Result<()> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        Ok(atomic::write_shared_file(
            &self.stage_path(),
            &to_json(record),
        )?)
    }

    /// A unit's record, if it exists.
    pub fn read_unit(&self, unit: usize) -> Result<Option<UnitRecord>> {
        read_json(&self.unit_path(unit))
    }

    /// Writes a unit's record atomically: from then on the unit is done. Only the
    /// unit's rank writes it.
    pub fn write_unit(&self, record: &UnitRecord) -> Result<()> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        Ok(atomic::write_file(
            &self.unit_path(record.unit),
            &to_json(record),
        )?)
    }

    /// Forgets a unit (before recomputing it), with any half-written record.
    pub fn remove_unit(&self, unit: usize) -> Result<()> {
        let path = self.unit_path(unit);
        atomic::remove_if_exists(&path)?;
        Ok(atomic::remove_if_exists(&atomic::tmp_path(&path))?)
    }

    /// Units with a record file, sorted (whatever their config hash).
    pub fn recorded_units(&self) -> Result<Vec<usize>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).at(&self.dir),
        };
        let mut units = Vec::new();
        for entry in entries {
            let name = entry.at(&self.dir)?.file_name();
            let name = name.to_string_lossy();
            if let Some(unit) = name
                .strip_prefix("unit-")
                .and_then(|rest| rest.strip_suffix(".json"))
                .and_then(|digits| digits.parse().ok())
            {
                units.push(unit);
            }
        }
        units.sort_unstable();
        Ok(units)
    }

    /// The stage record with the records of the units finished under its config, and
    /// the units not finished; `None` when the directory has no manifest.
    pub fn read_progress(&self) -> Result<Option<Progress>> {
        let Some(stage) = self.read_stage()? else {
            return Ok(None);
        };
        let mut done = Vec::with_capacity(stage.units);
        let mut missing = Vec::new();
        for unit in 0..stage.units {
            match self.read_unit(unit)? {
                Some(record) if record.config_hash == stage.config_hash => done.push(record),
                _ => missing.push(unit),
            }
        }
        Ok(Some(Progress {
            stage,
            done,
            missing,
        }))
    }

    /// The stage record and every unit's record, refusing a directory whose stage has
    /// not finished every unit with its current config.
    pub fn read_complete(&self, output: &Path) -> Result<Option<(StageRecord, Vec<UnitRecord>)>> {
        let Some(progress) = self.read_progress()? else {
            return Ok(None);
        };
        if !progress.missing.is_empty() {
            return Err(Error::IncompleteInput {
                dir: output.to_path_buf(),
                problem: format!(
                    "{} of {} work units are not done (units {}): the `{}` stage that writes \
                     this directory was interrupted or is still running; rerun it to finish",
                    progress.missing.len(),
                    progress.stage.units,
                    abbreviate(&progress.missing),
                    progress.stage.stage
                ),
            });
        }
        Ok(Some((progress.stage, progress.done)))
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("manifest records serialise");
    bytes.push(b'\n');
    bytes
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).at(path),
    }
}

/// `0, 1, 2, …` with at most ten numbers shown.
fn abbreviate(units: &[usize]) -> String {
    let shown: Vec<String> = units.iter().take(10).map(usize::to_string).collect();
    let more = units.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(unit: usize, config_hash: &str) -> UnitRecord {
        UnitRecord {
            unit,
            config_hash: config_hash.into(),
            input_fingerprint: "f".into(),
            inputs: vec!["a.jsonl".into()],
            input_bytes: 10,
            outputs: vec![],
            rows_in: 3,
            rows_out: 2,
            reject_reasons: BTreeMap::from([("malformed_json".into(), 1)]),
            counters: BTreeMap::new(),
            seconds: 0.5,
        }
    }

    fn stage(units: usize) -> StageRecord {
        StageRecord {
            stage: "ingest".into(),
            table: "documents".into(),
            config_hash: "h1".into(),
            config: serde_json::json!({"text_field": "text"}),
            units,
            rlpt_version: "0.1.0".into(),
        }
    }

    #[test]
    fn records_round_trip_and_completeness_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::of(dir.path());
        assert_eq!(manifest.read_complete(dir.path()).unwrap(), None);
        manifest.write_stage(&stage(3)).unwrap();
        manifest.write_unit(&unit(0, "h1")).unwrap();
        manifest.write_unit(&unit(2, "old-config")).unwrap();
        assert_eq!(manifest.recorded_units().unwrap(), [0, 2]);
        assert_eq!(manifest.read_unit(0).unwrap().unwrap().rejected(), 1);
        let err = manifest.read_complete(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("2 of 3 work units are not done (units 1, 2)"),
            "{err}"
        );
        assert!(err.contains("`ingest` stage"), "{err}");
        manifest.write_unit(&unit(1, "h1")).unwrap();
        manifest.write_unit(&unit(2, "h1")).unwrap();
        let (read_stage, units) = manifest.read_complete(dir.path()).unwrap().unwrap();
        assert_eq!((read_stage, units.len()), (stage(3), 3));
        manifest.remove_unit(1).unwrap();
        assert_eq!(manifest.recorded_units().unwrap(), [0, 2]);
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::of(dir.path());
        manifest.write_stage(&stage(1)).unwrap();
        fs::write(dir.path().join("_manifest/unit-00000.json"), "{").unwrap();
        let err = manifest.read_unit(0).unwrap_err().to_string();
        assert!(err.contains("unit-00000.json"), "{err}");
    }

    #[test]
    fn long_unit_lists_are_abbreviated() {
        let units: Vec<usize> = (0..13).collect();
        assert_eq!(
            abbreviate(&units),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 3 more"
        );
    }
}
