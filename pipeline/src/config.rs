//! `pipeline.toml`: the stages `rlpt run` runs, in order. Each `[[stage]]` table names
//! its stage and takes the same settings as that stage's command-line flags (with `_`
//! for `-`), plus `input` (relative to the config file, or the previous stage's output
//! when omitted where a stage allows it) and `output` (relative to `out_dir`).
//!
//! ```toml
//! out_dir = "rlpt-out/sample"
//!
//! [[stage]]
//! stage = "ingest"
//! input = "wiki-stem/*.jsonl"
//! output = "documents"
//! source = "wikipedia"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rlpt_engine::IoContext;
use rlpt_engine::executor::{ShardJob, StageRun};
use rlpt_engine::layout::{Layout, deserialize_bytes};
use rlpt_engine::summary::StageSummary;
use rlpt_stages::dedup::DedupConfig;
use rlpt_stages::ingest::IngestConfig;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::jobs::dedup::DEFAULT_SORT_MEMORY;
use crate::jobs::ingest::{IngestJob, InputFormat};
use crate::jobs::table_stage::{ConfiguredTableStage, TableStage, TableStageEntry};

/// Where stage outputs go when the config does not say.
pub const DEFAULT_OUT_DIR: &str = "rlpt-out";

/// A whole pipeline config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Directory of stage outputs, relative to the current directory.
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// The stages, in order.
    #[serde(rename = "stage")]
    pub stages: Vec<StageEntry>,
}

fn default_out_dir() -> PathBuf {
    PathBuf::from(DEFAULT_OUT_DIR)
}

/// One `[[stage]]` table, told apart by its `stage` key.
#[derive(Debug)]
pub enum StageEntry {
    /// `rlpt ingest`.
    Ingest(IngestEntry),
    /// `rlpt dedup` (all four steps).
    Dedup(DedupEntry),
    /// A table stage (`rlpt filter`, `pii`, `decontam`, `segment`, `entropy`), its
    /// paths relative to the config file.
    Table(Box<TableStageEntry>),
    /// `rlpt train` (GRPO) on the previous stage's triples.
    Train(TrainEntry),
    /// `rlpt eval` of the previous `train` stage's last checkpoint.
    Eval(EvalEntry),
}

/// The stages that are not table stages, as serde reads them.
#[derive(Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
enum OtherStageEntry {
    Ingest(IngestEntry),
    Dedup(DedupEntry),
    Train(TrainEntry),
    Eval(EvalEntry),
}

/// Every stage's name: those [`OtherStageEntry`] reads around the table stages'.
static STAGE_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    [
        &["ingest", "dedup"],
        TableStageEntry::NAMES,
        &["train", "eval"],
    ]
    .concat()
});

impl<'de> Deserialize<'de> for StageEntry {
    /// Reads the table, checking its `stage` key as it passes (so an unknown stage is
    /// reported at its value), then the table as that stage's entry.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StageEntryVisitor)
    }
}

struct StageEntryVisitor;

impl<'de> serde::de::Visitor<'de> for StageEntryVisitor {
    type Value = StageEntry;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a [[stage]] table")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StageEntry, A::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::new();
        let mut stage = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "stage" {
                stage = Some(map.next_value::<StageName>()?.0);
            } else {
                table.insert(key, map.next_value()?);
            }
        }
        let stage = stage.ok_or_else(|| A::Error::missing_field("stage"))?;
        table.insert("stage".into(), stage.into());
        let value = toml::Value::Table(table);
        if TableStageEntry::NAMES.contains(&stage) {
            return value
                .try_into()
                .map(|entry| StageEntry::Table(Box::new(entry)))
                .map_err(A::Error::custom);
        }
        Ok(match value.try_into().map_err(A::Error::custom)? {
            OtherStageEntry::Ingest(entry) => StageEntry::Ingest(entry),
            OtherStageEntry::Dedup(entry) => StageEntry::Dedup(entry),
            OtherStageEntry::Train(entry) => StageEntry::Train(entry),
            OtherStageEntry::Eval(entry) => StageEntry::Eval(entry),
        })
    }
}

/// The value of a `stage` key: one of [`STAGE_NAMES`].
struct StageName(&'static str);

impl<'de> Deserialize<'de> for StageName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let name = String::deserialize(deserializer)?;
        match STAGE_NAMES.iter().find(|known| **known == name) {
            Some(known) => Ok(StageName(known)),
            None => Err(D::Error::unknown_variant(&name, &STAGE_NAMES)),
        }
    }
}

/// The settings of a `train` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainEntry {
    /// Triples, relative to the config file [default: the previous stage's output].
    pub input: Option<String>,
    /// Checkpoints and metrics, relative to `out_dir`.
    pub output: String,
    /// The trainer config, relative to the config file.
    pub config: PathBuf,
    /// Steps to reach [default: the trainer config's].
    pub steps: Option<u64>,
}

/// The settings of an `eval` stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalEntry {
    /// Triples to score, relative to the config file [default: the `train` stage's
    /// input, its held-out documents].
    pub input: Option<String>,
    /// The report (JSON), relative to `out_dir`.
    pub output: String,
    /// The trainer config (templates, rewards, holdout), relative to the config file.
    pub config: PathBuf,
    /// Tasks to score.
    #[serde(default = "default_eval_tasks")]
    pub tasks: Vec<String>,
    /// Triples read at most.
    #[serde(default = "default_eval_limit")]
    pub limit: usize,
}

fn default_eval_tasks() -> Vec<String> {
    vec!["next-token".into(), "asr".into()]
}

fn default_eval_limit() -> usize {
    200
}

/// The settings of a stage that reads a `documents` table and writes one.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de> + Default"))]
pub struct TableEntry<C> {
    /// Input documents, relative to the config file [default: the previous stage's
    /// output].
    pub input: Option<String>,
    /// Output directory, relative to `out_dir`.
    pub output: String,
    /// The stage's settings.
    #[serde(flatten)]
    pub config: C,
    /// Unit and shard sizes.
    #[serde(flatten)]
    pub layout: Layout,
    /// Keys no setting takes (reported as an error).
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl<C: serde::Serialize + Default + TableStage> ConfiguredTableStage for TableEntry<C> {
    fn input(&self) -> Option<&String> {
        self.input.as_ref()
    }

    fn output(&self) -> &str {
        &self.output
    }

    fn layout(&self) -> Layout {
        self.layout
    }

    fn unknown_keys(&self) -> (Vec<&String>, Vec<String>) {
        let mut known: Vec<String> = ["stage", "input", "output"].map(String::from).into();
        known.extend(object_keys(&C::default()));
        known.extend(object_keys(&Layout::default()));
        (self.unknown.keys().collect(), known)
    }

    fn run(&self, base: &Path, input: &str, mut run: StageRun) -> Result<StageSummary> {
        let job = self.config.job(base)?;
        if C::recompute_under_run(&job, &run.output, &self.layout)? {
            run.force = true;
        }
        job.run(input, &run)
    }
}

/// The settings of a `dedup` stage.
#[derive(Debug, Deserialize)]
pub struct DedupEntry {
    /// Input documents, relative to the config file [default: the previous stage's
    /// output].
    pub input: Option<String>,
    /// Output directory, relative to `out_dir`.
    pub output: String,
    /// Memory for one band's sort before it spills to disk.
    #[serde(
        default = "default_sort_memory",
        deserialize_with = "deserialize_bytes"
    )]
    pub sort_memory: u64,
    /// The algorithm's settings.
    #[serde(flatten)]
    pub config: DedupConfig,
    /// Unit and shard sizes.
    #[serde(flatten)]
    pub layout: Layout,
    /// Keys no setting takes (reported as an error).
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

fn default_sort_memory() -> u64 {
    DEFAULT_SORT_MEMORY
}

impl DedupEntry {
    fn known_keys() -> Vec<String> {
        let mut keys: Vec<String> = ["stage", "input", "output", "sort_memory"]
            .map(String::from)
            .into();
        keys.extend(object_keys(&DedupConfig::default()));
        keys.extend(object_keys(&Layout::default()));
        keys
    }
}

/// The settings of an `ingest` stage.
#[derive(Debug, Deserialize)]
pub struct IngestEntry {
    /// Input files: a file, directory or glob, relative to the config file.
    pub input: String,
    /// Output directory, relative to `out_dir`.
    pub output: String,
    /// Input format.
    #[serde(default)]
    pub format: InputFormat,
    /// Make any rejected record an error.
    #[serde(default)]
    pub strict: bool,
    /// The stage's settings.
    #[serde(flatten)]
    pub config: IngestConfig,
    /// Unit and shard sizes.
    #[serde(flatten)]
    pub layout: Layout,
    /// Keys no setting takes (reported as an error).
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl IngestEntry {
    /// The job this entry describes.
    pub fn job(&self) -> IngestJob {
        IngestJob {
            format: self.format,
            stage: self.config.clone(),
        }
    }

    fn known_keys() -> Vec<String> {
        let mut keys: Vec<String> = ["stage", "input", "output", "format", "strict"]
            .map(String::from)
            .into();
        keys.extend(object_keys(&IngestConfig::default()));
        keys.extend(object_keys(&Layout::default()));
        keys
    }
}

impl StageEntry {
    /// The stage's name.
    pub fn name(&self) -> &'static str {
        match self {
            StageEntry::Ingest(_) => "ingest",
            StageEntry::Dedup(_) => "dedup",
            StageEntry::Table(entry) => entry.name(),
            StageEntry::Train(_) => "train",
            StageEntry::Eval(_) => "eval",
        }
    }

    /// The `input` the entry names, if any (ingest's is required, so always `Some`).
    pub fn input(&self) -> Option<&String> {
        match self {
            StageEntry::Ingest(entry) => Some(&entry.input),
            StageEntry::Dedup(entry) => entry.input.as_ref(),
            StageEntry::Table(entry) => entry.settings().input(),
            StageEntry::Train(entry) => entry.input.as_ref(),
            StageEntry::Eval(entry) => entry.input.as_ref(),
        }
    }

    /// The `output` the entry names (relative to `out_dir`).
    pub fn output(&self) -> &str {
        match self {
            StageEntry::Ingest(entry) => &entry.output,
            StageEntry::Dedup(entry) => &entry.output,
            StageEntry::Table(entry) => entry.settings().output(),
            StageEntry::Train(entry) => &entry.output,
            StageEntry::Eval(entry) => &entry.output,
        }
    }

    fn unknown_keys(&self) -> (Vec<&String>, Vec<String>) {
        match self {
            StageEntry::Ingest(entry) => {
                (entry.unknown.keys().collect(), IngestEntry::known_keys())
            }
            StageEntry::Dedup(entry) => (entry.unknown.keys().collect(), DedupEntry::known_keys()),
            StageEntry::Table(entry) => entry.settings().unknown_keys(),
            // serde refuses their unknown keys itself (nothing is flattened).
            StageEntry::Train(_) | StageEntry::Eval(_) => (Vec::new(), Vec::new()),
        }
    }
}

fn object_keys<T: serde::Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl PipelineConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let problem = |problem: String| Error::Config {
            path: path.to_path_buf(),
            problem,
        };
        let config: PipelineConfig =
            toml::from_str(&text).map_err(|err| problem(err.to_string()))?;
        if config.stages.is_empty() {
            return Err(problem("no [[stage]] tables: nothing to run".into()));
        }
        for (index, stage) in config.stages.iter().enumerate() {
            let (unknown, known) = stage.unknown_keys();
            if !unknown.is_empty() {
                let unknown: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
                return Err(problem(format!(
                    "stage {} ({}): unknown key {}; known keys: {}",
                    index + 1,
                    stage.name(),
                    unknown.join(", "),
                    known.join(", ")
                )));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<PipelineConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.toml");
        std::fs::write(&path, text).unwrap();
        PipelineConfig::load(&path)
    }

    #[test]
    fn the_shipped_configs_load_and_their_trainer_configs_validate() {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples");
        for name in ["pipeline.toml", "pipeline-full.toml"] {
            let config = PipelineConfig::load(&samples.join(name)).unwrap();
            let names: Vec<&str> = config.stages.iter().map(StageEntry::name).collect();
            assert_eq!(names[names.len() - 2..], ["train", "eval"], "{name}");
            for stage in &config.stages {
                let trainer = match stage {
                    StageEntry::Train(entry) => &entry.config,
                    StageEntry::Eval(entry) => &entry.config,
                    _ => continue,
                };
                let trainer = rlpt_trainer::TrainConfig::from_file(&samples.join(trainer)).unwrap();
                trainer.validate().unwrap();
                assert!(trainer.data.holdout > 0.0, "eval needs held-out documents");
            }
        }
    }

    #[test]
    fn a_train_stage_refuses_unknown_keys() {
        let error =
            load("[[stage]]\nstage = \"train\"\noutput = \"t\"\nconfig = \"x.toml\"\nstep = 3\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("unknown field `step`"), "{error}");
    }

    #[test]
    fn a_stage_takes_its_flags_as_keys() {
        let config = load(
            r#"
            out_dir = "out"
            [[stage]]
            stage = "ingest"
            input = "wiki/*.jsonl"
            output = "documents"
            source = "wikipedia"
            text_mode = "paragraph"
            unit_bytes = "1MiB"
            "#,
        )
        .unwrap();
        assert_eq!(config.out_dir, PathBuf::from("out"));
        let StageEntry::Ingest(entry) = &config.stages[0] else {
            panic!("an ingest stage")
        };
        assert_eq!(entry.config.source.as_deref(), Some("wikipedia"));
        assert_eq!(entry.config.text_field, "text");
        assert_eq!(entry.layout.unit_bytes, 1 << 20);
        assert_eq!(
            entry.layout.max_shard_rows,
            Layout::default().max_shard_rows
        );
    }

    #[test]
    fn a_dedup_stage_takes_the_algorithm_settings_and_an_optional_input() {
        let config = load(
            "[[stage]]\nstage = \"dedup\"\noutput = \"d\"\nthreshold = 0.7\nbands = 20\nsort_memory = \"64MiB\"\n",
        )
        .unwrap();
        let StageEntry::Dedup(entry) = &config.stages[0] else {
            panic!("a dedup stage")
        };
        assert_eq!(entry.input, None);
        assert_eq!(
            (entry.config.threshold, entry.config.bands),
            (0.7, Some(20))
        );
        assert_eq!(entry.sort_memory, 64 << 20);
        let err = load("[[stage]]\nstage = \"dedup\"\noutput = \"d\"\nthreshhold = 0.7\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key `threshhold`") && err.contains("num_perm"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_the_known_ones() {
        let err =
            load("[[stage]]\nstage = \"ingest\"\ninput = \"a\"\noutput = \"b\"\nsorce = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("stage 1 (ingest): unknown key `sorce`"),
            "{err}"
        );
        assert!(
            err.contains("source") && err.contains("unit_bytes"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_stage_or_top_level_key_is_an_error() {
        let err = load("[[stage]]\nstage = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `nope`"), "{err}");
        assert!(
            err.contains("line 2, column 9"),
            "the error points at the name: {err}"
        );
        let err = load("[[stage]]\noutput = \"p\"\nstage = \"pii\"\nskip = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("integer `3`, expected a sequence"),
            "read as pii: {err}"
        );
        let err =
            load("outdir = \"x\"\n[[stage]]\nstage = \"ingest\"\ninput = \"a\"\noutput = \"b\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("outdir"), "{err}");
    }
}
