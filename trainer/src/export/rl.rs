//! `rlpt export verl` and `rlpt export trl`: the tasks `rlpt train` would draw from a
//! triples table, as the dataset an existing RL engine trains on, for runs past one GPU.
//!
//! Each triple gives one row per configured task it can serve (next-token: a hard
//! position drawn by the config's seed; msr: when it has a next segment), with the
//! config's template, its text cut from the left to `max_prompt_tokens` as `rlpt train`
//! cuts it, and the documents `data.holdout` keeps out in `test.parquet` (the rest in
//! `train.parquet`). Task weights are not applied: the engines draw rows uniformly.
//!
//! - verl (its RL dataset layout): `data_source` (`rlpt/<task>`), `prompt` (the chat
//!   messages), `ability`, `reward_model` {`style`, `ground_truth`: the reference},
//!   `extra_info` {the reward kind, the reference's token ends, the judge's context and
//!   what follows the reference, the triple id, …}.
//! - TRL (GRPOTrainer's conversational layout): `prompt` and the same fields as flat
//!   columns, which GRPOTrainer passes to reward functions by name.
//!
//! Beside the tables: `rlpt_reward.py` (verl's `compute_score` and a TRL reward
//! function: the same answer extraction and rewards as rlpt, the prefix-semantic judge
//! over an OpenAI-compatible endpoint) and `rlpt_reward.json` (the judge's settings).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rlpt_rng::SplitMix64;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::data::{DataConfig, Split, Triple, TripleStream};
use crate::error::{Error, Result, io};
use crate::grpo_run::{TaskSpec, mix};
use crate::policy::tokenizer_for;
use crate::tasks::{self, ChatTemplate, Instance, Prompter};

/// The reward module written beside the tables.
const REWARD_MODULE: &str = include_str!("../../python/rlpt_reward.py");
/// Rows gathered before they are written as one row group.
const BATCH_ROWS: usize = 1024;

/// The engine whose dataset layout is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// verl's RL dataset.
    Verl,
    /// TRL's GRPOTrainer dataset.
    Trl,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct DatasetExport {
    /// The trainer config: model (its tokenizer), tasks, templates, rewards, judge,
    /// seed, data filters and held-out share.
    pub config: TrainConfig,
    /// The triples shards.
    pub input: Vec<PathBuf>,
    /// The directory to write.
    pub output: PathBuf,
    /// Whose layout.
    pub engine: Engine,
    /// Replace `output` when it exists.
    pub force: bool,
}

/// Rows written per split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DatasetSummary {
    /// Rows of `train.parquet`.
    pub train: usize,
    /// Rows of `test.parquet` (the held-out documents).
    pub test: usize,
}

/// One task instance, engine-neutral.
struct Row {
    index: usize,
    split: &'static str,
    task: &'static str,
    reward: &'static str,
    prompt: String,
    reference: String,
    token_ends: Vec<u64>,
    context: String,
    following: Option<String>,
    triple_id: String,
    token_entropy: Option<f32>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct VerlRow<'a> {
    data_source: String,
    prompt: [Message<'a>; 1],
    ability: &'a str,
    reward_model: RewardModel<'a>,
    extra_info: Details<'a>,
}

#[derive(Serialize)]
struct RewardModel<'a> {
    style: &'a str,
    ground_truth: &'a str,
}

/// What the reward function reads besides the reference.
#[derive(Serialize)]
struct Details<'a> {
    index: usize,
    split: &'a str,
    task: &'a str,
    reward: &'a str,
    token_ends: &'a [u64],
    context: &'a str,
    following: Option<&'a str>,
    triple_id: &'a str,
    token_entropy: Option<f32>,
}

#[derive(Serialize)]
struct TrlRow<'a> {
    prompt: [Message<'a>; 1],
    reference: &'a str,
    #[serde(flatten)]
    details: Details<'a>,
}

impl Row {
    fn details(&self) -> Details<'_> {
        Details {
            index: self.index,
            split: self.split,
            task: self.task,
            reward: self.reward,
            token_ends: &self.token_ends,
            context: &self.context,
            following: self.following.as_deref(),
            triple_id: &self.triple_id,
            token_entropy: self.token_entropy,
        }
    }

    fn messages(&self) -> [Message<'_>; 1] {
        [Message {
            role: "user",
            content: &self.prompt,
        }]
    }
}

fn details_fields() -> Fields {
    Fields::from(vec![
        Field::new("index", DataType::UInt64, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("reward", DataType::Utf8, false),
        Field::new(
            "token_ends",
            DataType::new_list(DataType::UInt64, true),
            false,
        ),
        Field::new("context", DataType::Utf8, false),
        Field::new("following", DataType::Utf8, true),
        Field::new("triple_id", DataType::Utf8, false),
        Field::new("token_entropy", DataType::Float32, true),
    ])
}

fn messages_type() -> DataType {
    DataType::new_list(
        DataType::Struct(Fields::from(vec![
            Field::new("role", DataType::Utf8, false),
            Field::new("content", DataType::Utf8, false),
        ])),
        true,
    )
}

impl Engine {
    fn schema(self) -> SchemaRef {
        let fields = match self {
            Self::Verl => vec![
                Field::new("data_source", DataType::Utf8, false),
                Field::new("prompt", messages_type(), false),
                Field::new("ability", DataType::Utf8, false),
                Field::new(
                    "reward_model",
                    DataType::Struct(Fields::from(vec![
                        Field::new("style", DataType::Utf8, false),
                        Field::new("ground_truth", DataType::Utf8, false),
                    ])),
                    false,
                ),
                Field::new("extra_info", DataType::Struct(details_fields()), false),
            ],
            Self::Trl => {
                let mut fields = vec![
                    Field::new("prompt", messages_type(), false),
                    Field::new("reference", DataType::Utf8, false),
                ];
                fields.extend(details_fields().iter().map(|f| f.as_ref().clone()));
                fields
            }
        };
        Arc::new(Schema::new(fields))
    }

    fn batch(self, rows: &[Row]) -> Result<RecordBatch> {
        let mut decoder = arrow_json::ReaderBuilder::new(self.schema())
            .build_decoder()
            .map_err(arrow_error)?;
        match self {
            Self::Verl => decoder.serialize(
                &rows
                    .iter()
                    .map(|row| VerlRow {
                        data_source: format!("rlpt/{}", row.task),
                        prompt: row.messages(),
                        ability: row.task,
                        reward_model: RewardModel {
                            style: "rule",
                            ground_truth: &row.reference,
                        },
                        extra_info: row.details(),
                    })
                    .collect::<Vec<_>>(),
            ),
            Self::Trl => decoder.serialize(
                &rows
                    .iter()
                    .map(|row| TrlRow {
                        prompt: row.messages(),
                        reference: &row.reference,
                        details: row.details(),
                    })
                    .collect::<Vec<_>>(),
            ),
        }
        .map_err(arrow_error)?;
        decoder
            .flush()
            .map_err(arrow_error)?
            .ok_or_else(|| Error::Config("no rows to write".into()))
    }
}

fn arrow_error(err: arrow_schema::ArrowError) -> Error {
    Error::Config(format!("building the export table: {err}"))
}

/// Writes the dataset of `export` and its reward module; returns the rows per split.
pub fn write(export: &DatasetExport) -> Result<DatasetSummary> {
    let config = &export.config;
    let staging = super::staging_dir(&export.output, export.force)?;
    let tokenizer = tokenizer_for(&config.model, config.tokenizer.as_deref())?;
    let prompter = Prompter {
        tokenizer: &tokenizer,
        chat: ChatTemplate::choose(config.chat_template, &tokenizer),
    };
    let tasks = TaskSpec::all(config)?;
    let mut summary = DatasetSummary::default();
    for (split, name) in [(Split::Train, "train"), (Split::Heldout, "test")] {
        let rows = write_split(export, &prompter, &tasks, split, name, &staging)?;
        match split {
            Split::Heldout => summary.test = rows,
            _ => summary.train = rows,
        }
    }
    let module = staging.join("rlpt_reward.py");
    std::fs::write(&module, REWARD_MODULE).map_err(io(&module))?;
    let settings = staging.join("rlpt_reward.json");
    std::fs::write(&settings, judge_settings(config)).map_err(io(&settings))?;
    rlpt_engine::atomic::publish_dir(&staging, &export.output)?;
    Ok(summary)
}

/// The judge's settings the reward module reads: its prompt, how many segments the
/// reference holds, and the endpoint (each overridable by environment variables).
fn judge_settings(config: &TrainConfig) -> String {
    let judge = &config.judge;
    let settings = serde_json::json!({
        "template": judge.template.clone().unwrap_or_else(|| crate::judge::default_template().into()),
        "reference_segments": judge.reference_segments,
        "endpoint": judge.endpoint,
        "endpoint_model": judge.endpoint_model,
        "api_key_env": judge.api_key_env,
        "timeout_s": judge.timeout_s,
        "retries": judge.retries,
    });
    serde_json::to_string_pretty(&settings).expect("a JSON value serialises")
}

/// Writes `name.parquet` of `split` into `dir`; returns its rows.
fn write_split(
    export: &DatasetExport,
    prompter: &Prompter<'_>,
    tasks: &[TaskSpec],
    split: Split,
    name: &'static str,
    dir: &Path,
) -> Result<usize> {
    let config = &export.config;
    let data = DataConfig {
        shuffle_buffer: 1,
        epochs: Some(1),
        ..config.data.clone()
    };
    let mut stream = TripleStream::new(export.input.clone(), data, split, config.seed, None)?;
    let path = dir.join(format!("{name}.parquet"));
    let file = File::create(&path).map_err(io(&path))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let schema = export.engine.schema();
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties))
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let mut rows = Vec::new();
    let mut written = 0;
    let mut triples = 0u64;
    while let Some(triple) = stream.next_triple()? {
        triples += 1;
        for task in tasks {
            let mut choose = SplitMix64::new(mix(config.seed, triples, 0, task.kind as u64));
            let Some(instance) = tasks::instance(
                task.kind,
                &triple,
                config.data.hard_token_entropy,
                &mut choose,
            ) else {
                continue;
            };
            rows.push(row(
                prompter,
                task,
                &triple,
                instance,
                written + rows.len(),
                name,
                config,
            )?);
        }
        if rows.len() >= BATCH_ROWS {
            written += flush(&mut writer, export.engine, &mut rows, &path)?;
        }
    }
    written += flush(&mut writer, export.engine, &mut rows, &path)?;
    writer
        .close()
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(written)
}

fn flush(
    writer: &mut ArrowWriter<File>,
    engine: Engine,
    rows: &mut Vec<Row>,
    path: &Path,
) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let batch = engine.batch(rows)?;
    writer
        .write(&batch)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let count = rows.len();
    rows.clear();
    Ok(count)
}

/// The row of `instance`: its prompt fitted as `rlpt train` fits it, and the byte ends
/// of its reference's tokens as the prefix-token reward reads them.
fn row(
    prompter: &Prompter<'_>,
    task: &TaskSpec,
    triple: &Triple,
    instance: Instance,
    index: usize,
    split: &'static str,
    config: &TrainConfig,
) -> Result<Row> {
    let (instance, _) = prompter.fitted(
        task.kind,
        &task.template,
        &instance,
        config.max_prompt_tokens,
    )?;
    let token_ends = prompter
        .reference_tokens(&instance)?
        .iter()
        .scan(0u64, |end, token| {
            *end += token.len() as u64;
            Some(*end)
        })
        .collect();
    Ok(Row {
        index,
        split,
        task: task.kind.name(),
        reward: task.reward.name(),
        prompt: tasks::fill(&task.template, task.kind, &instance),
        token_ends,
        context: instance.before,
        following: instance.following,
        reference: instance.reference,
        triple_id: triple.id.clone(),
        token_entropy: instance.token_entropy,
    })
}
