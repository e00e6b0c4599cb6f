//! The IO and model side of `rlpt entropy`: each unit's triples through the proxy
//! model, adding `seg_entropy_mean`, `seg_entropy_first` (f32), `token_entropy`
//! (`list<f32>`), `token_offsets` (`list<u32>`) and `difficulty` (replacing those of an
//! earlier run), and dropping triples under `--min-entropy`.
//!
//! Each triple's text is `context + segment`, tokenized by the model's tokenizer; the
//! entropy of a segment token is that of the distribution predicting it (top-k,
//! renormalised, nats). A document's triples usually extend one another (the context
//! of one is the prefix of the next), so consecutive triples whose token ids are
//! prefixes of the next one's share a single forward pass over the longest — exact,
//! since the model is causal. Passes are packed shortest first into batches of at most
//! `--batch-tokens` tokens (padding included), which bounds memory. A text longer than
//! the model's positions keeps its last tokens. The model's name and checksum are in
//! the config hash and in every file's metadata.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, LargeStringArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use candle_core::Tensor;
use rlpt_engine::Error as EngineError;
use rlpt_engine::executor::{
    OutputTable, ShardJob, StageRun, UnitCounts, UnitSink, counter_map, for_each_batch,
};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::layout::Layout;
use rlpt_engine::manifest::Manifest;
use rlpt_engine::shard_reader::{ParquetBatches, filter_rows};
use rlpt_engine::table_units::plan_table_by_cost;
use rlpt_lm::{KvCache, Mode, Model, Tokenizer, WeightFormat};
use rlpt_schemas::triples::{self, ENTROPY_COLUMNS};
use rlpt_stages::entropy::{
    EntropyConfig, EntropyCounters, PassCost, Tagged, Weights, segment_tokens,
};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::jobs::table_stage::TableStage;

/// The entropy stage as the executor runs it.
pub struct EntropyJob {
    config: EntropyConfig,
    model: Model,
    tokenizer: Tokenizer,
}

/// One triple's tokens: the ids of its text and the segment's token positions.
struct TripleTokens {
    ids: Vec<u32>,
    /// Positions (in `ids`) of the segment tokens that have a prediction.
    segment: Range<usize>,
    offsets: Vec<u32>,
}

/// Triples sharing one forward pass: `members` index the batch's rows; the pass runs
/// the ids of the last (longest) member.
struct Chain {
    members: Vec<usize>,
}

impl EntropyJob {
    /// Loads the model (and its tokenizer) named by `config` onto `config.device`.
    pub fn new(config: &EntropyConfig) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(Error::Usage(problem));
        }
        let device = rlpt_lm::device(&config.device)?;
        let format = match config.weights {
            Weights::F32 => WeightFormat::F32,
            Weights::Bf16 => WeightFormat::Bf16,
            Weights::Quantized => WeightFormat::Quantized,
        };
        let path = match &config.fallback_model {
            Some(fallback) if !config.model.exists() => {
                tracing::info!(
                    missing = %config.model.display(),
                    using = %fallback.display(),
                    "proxy model not found; using the fallback model"
                );
                fallback
            }
            _ => &config.model,
        };
        let model = Model::load(path, format, &device)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path(path))?;
        Ok(Self {
            config: config.clone(),
            model,
            tokenizer,
        })
    }

    /// The name of the model this job tags with.
    pub fn model_name(&self) -> &str {
        self.model.name()
    }

    /// The model `output` was tagged with, when it differs from this job's and nothing
    /// else of the config does — the fetched model replacing the fallback, or a new
    /// model file at the configured path. `rlpt run` then recomputes the step (its
    /// pipeline config did not change) instead of refusing the directory.
    pub fn replaced_model(&self, output: &Path, layout: &Layout) -> Result<Option<String>> {
        let Some(previous) = Manifest::of(output).read_stage()? else {
            return Ok(None);
        };
        let mut before = previous.config.clone();
        let mut now = json!({ "stage": self.config(), "layout": layout });
        let old_model = before["stage"]["model"].take();
        let new_model = now["stage"]["model"].take();
        Ok(
            (previous.stage == self.stage() && before == now && old_model != new_model).then(
                || {
                    old_model["name"]
                        .as_str()
                        .unwrap_or("another model")
                        .to_string()
                },
            ),
        )
    }

    /// Tags every triple of a batch.
    fn tag(
        &self,
        contexts: &LargeStringArray,
        segments: &StringArray,
        counters: &mut EntropyCounters,
        sink: &mut UnitSink<'_>,
    ) -> Result<Vec<Tagged>> {
        let max_positions = self.model.config().max_positions;
        let triples = (0..contexts.len())
            .map(|row| {
                let (context, segment) = (contexts.value(row), segments.value(row));
                let text = format!("{context}{segment}");
                let (mut ids, offsets) = self.tokenizer.encode_with_offsets(&text)?;
                let (range, mut starts) = segment_tokens(&offsets, context.len());
                // Keep the last tokens the model has positions for; a token needs one
                // before it to be predicted.
                let dropped = ids.len().saturating_sub(max_positions);
                ids.drain(..dropped);
                let first = range.start.max(dropped + 1).min(range.end);
                starts.drain(..first - range.start);
                Ok(TripleTokens {
                    ids,
                    segment: first - dropped..range.end - dropped,
                    offsets: starts,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let chains = chains(&triples);
        let mut entropies: Vec<Vec<f32>> = vec![Vec::new(); triples.len()];
        let passes = self.passes(&chains, &triples);
        let pass_tokens = |pass: &[usize]| -> u64 {
            pass.iter()
                .map(|c| triples[*chains[*c].members.last().unwrap()].ids.len() as u64)
                .sum()
        };
        let total: u64 = passes.iter().map(|pass| pass_tokens(pass)).sum();
        let mut done = 0;
        for pass in passes {
            let tokens = pass_tokens(&pass);
            self.run_pass(&pass, &chains, &triples, &mut entropies)?;
            done += tokens;
            counters.forward_tokens += tokens;
            sink.batch_progress(done, total, tokens);
        }
        Ok(triples
            .into_iter()
            .zip(entropies)
            .map(|(triple, entropy)| Tagged::new(&self.config, entropy, triple.offsets))
            .collect())
    }

    /// Chains packed into forward passes, shortest first, each within `batch_tokens`.
    fn passes(&self, chains: &[Chain], triples: &[TripleTokens]) -> Vec<Vec<usize>> {
        let len = |c: usize| triples[*chains[c].members.last().unwrap()].ids.len();
        let mut order: Vec<usize> = (0..chains.len()).collect();
        order.sort_by_key(|&c| (len(c), c));
        let mut passes: Vec<Vec<usize>> = Vec::new();
        for chain in order {
            match passes.last_mut() {
                Some(pass) if (pass.len() + 1) * len(chain) <= self.config.batch_tokens => {
                    pass.push(chain)
                }
                _ => passes.push(vec![chain]),
            }
        }
        passes
    }

    /// One left-padded forward pass over `pass`'s chains, filling each member's
    /// segment-token entropies.
    fn run_pass(
        &self,
        pass: &[usize],
        chains: &[Chain],
        triples: &[TripleTokens],
        entropies: &mut [Vec<f32>],
    ) -> Result<()> {
        let sequences: Vec<&[u32]> = pass
            .iter()
            .map(|&c| triples[*chains[c].members.last().unwrap()].ids.as_slice())
            .collect();
        let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        if longest == 0 {
            return Ok(());
        }
        let pad_id = self.tokenizer.eos().unwrap_or(0);
        let pads: Vec<usize> = sequences.iter().map(|s| longest - s.len()).collect();
        let ids: Vec<u32> = sequences
            .iter()
            .flat_map(|s| std::iter::repeat_n(pad_id, longest - s.len()).chain(s.iter().copied()))
            .collect();
        let compute = |source| {
            Error::Lm(rlpt_lm::Error::Compute {
                context: "entropy pass".into(),
                source,
            })
        };
        let device = self.model.device();
        let ids = Tensor::from_vec(ids, (sequences.len(), longest), device).map_err(compute)?;
        let mut cache = KvCache::new(&self.model, pads.clone());
        let hidden = self.model.forward(&ids, &mut cache, Mode::Inference)?;
        // The hidden state at position p predicts token p + 1.
        let mut rows: Vec<u32> = Vec::new();
        for (slot, &chain) in pass.iter().enumerate() {
            for &member in &chains[chain].members {
                let base = slot * longest + pads[slot];
                let segment = &triples[member].segment;
                rows.extend((segment.start..segment.end).map(|p| (base + p - 1) as u32));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let width = self.model.config().hidden_size;
        let flat = hidden
            .reshape((sequences.len() * longest, width))
            .map_err(compute)?;
        let count = rows.len();
        let index = Tensor::from_vec(rows, count, device).map_err(compute)?;
        let selected = flat.index_select(&index, 0).map_err(compute)?;
        let mut values = self
            .model
            .top_k_entropy(&selected, self.config.top_k)?
            .into_iter();
        for &chain in pass {
            for &member in &chains[chain].members {
                let count = triples[member].segment.len();
                entropies[member] = values.by_ref().take(count).collect();
            }
        }
        Ok(())
    }
}

/// The estimated model tokens of each triple of a shard ([`PassCost`]), from its
/// `doc_id`, `context_tokens` and `segment_tokens` columns.
fn pass_costs(file: &InputFile) -> Result<Vec<u64>> {
    let columns = ["doc_id", "context_tokens", "segment_tokens"];
    let batches = ParquetBatches::open_columns(&file.path, 65_536, Some(&columns))?;
    let mut costs = Vec::with_capacity(batches.total_rows() as usize);
    let mut pass = PassCost::default();
    for batch in batches {
        let batch = batch?;
        // Cast as the table reader does, so files other tools wrote (large or view
        // strings, other integer widths) plan like rlpt's own.
        let column = |index: usize, data_type: &DataType| {
            arrow_cast::cast(batch.column(index), data_type).map_err(|_| EngineError::Input {
                spec: file.display(),
                problem: format!(
                    "column {} is not of the triples table's type",
                    columns[index]
                ),
            })
        };
        let (docs, contexts, segments) = (
            column(0, &DataType::Utf8)?,
            column(1, &DataType::UInt32)?,
            column(2, &DataType::UInt32)?,
        );
        let (docs, contexts, segments) = (
            docs.as_string::<i32>(),
            contexts.as_primitive::<UInt32Type>(),
            segments.as_primitive::<UInt32Type>(),
        );
        for row in 0..batch.num_rows() {
            costs.push(pass.cost(docs.value(row), contexts.value(row), segments.value(row)));
        }
    }
    Ok(costs)
}

/// Consecutive triples whose ids each extend the previous one's.
fn chains(triples: &[TripleTokens]) -> Vec<Chain> {
    let mut chains: Vec<Chain> = Vec::new();
    for (row, triple) in triples.iter().enumerate() {
        match chains.last_mut() {
            Some(chain)
                if triple
                    .ids
                    .starts_with(&triples[*chain.members.last().unwrap()].ids) =>
            {
                chain.members.push(row)
            }
            _ => chains.push(Chain { members: vec![row] }),
        }
    }
    chains
}

/// A GGUF file holds its tokenizer; a safetensors checkpoint has `tokenizer.json`
/// beside it (or in it, for a directory).
fn tokenizer_path(model: &Path) -> PathBuf {
    if model
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gguf"))
    {
        return model.to_path_buf();
    }
    let dir = if model.is_dir() {
        model
    } else {
        model.parent().unwrap_or(Path::new("."))
    };
    dir.join("tokenizer.json")
}

impl ShardJob for EntropyJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "entropy"
    }

    /// Units of about `unit_tokens` estimated model tokens, not bytes: a unit's cost is
    /// its forward passes.
    fn plan_units(&self, input: &str, _run: &StageRun) -> Result<Vec<WorkUnit>> {
        plan_table_by_cost(input, self.config.unit_tokens, pass_costs)
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(triples::spec())]
    }

    fn config(&self) -> Value {
        let mut config = serde_json::to_value(&self.config).expect("entropy config serialises");
        config["model"] = json!({ "name": self.model.name(), "checksum": self.model.checksum() });
        config
    }

    fn file_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                triples::KEY_MODEL.to_string(),
                self.model.name().to_string(),
            ),
            (
                triples::KEY_MODEL_CHECKSUM.to_string(),
                self.model.checksum().to_string(),
            ),
        ])
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = EntropyCounters::default();
        for_each_batch::<Error>(unit, triples::spec(), sink, |sink, file, batch| {
            let schema_error = |source| EngineError::Schema {
                path: file.path.clone(),
                source,
            };
            let spec = triples::spec();
            let contexts = spec
                .column::<LargeStringArray>(&batch, "context")
                .map_err(schema_error)?;
            let segments = spec
                .column::<StringArray>(&batch, "segment")
                .map_err(schema_error)?;
            let tagged = self.tag(contexts, segments, &mut counters, sink)?;
            let kept: Vec<bool> = tagged.iter().map(|t| t.kept(&self.config)).collect();
            for (one, &kept) in tagged.iter().zip(&kept) {
                counters.count(one, kept);
            }
            let out = tagged_batch(&batch, &tagged, &kept, file)?;
            sink.write(&out)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.triples,
            counters: counter_map(&counters),
        })
    }
}

/// `batch` with fresh entropy columns, the triples under `--min-entropy` left out.
fn tagged_batch(
    batch: &RecordBatch,
    tagged: &[Tagged],
    kept: &[bool],
    file: &InputFile,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !ENTROPY_COLUMNS.contains(&field.name().as_str()) {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    let mut entropy = ListBuilder::new(Float32Builder::new());
    let mut offsets = ListBuilder::new(UInt32Builder::new());
    for one in tagged {
        entropy.append_value(one.token_entropy.iter().map(|&e| Some(e)));
        offsets.append_value(one.token_offsets.iter().map(|&o| Some(o)));
    }
    let entropy = entropy.finish();
    let offsets = offsets.finish();
    let new: [(DataType, ArrayRef); 5] = [
        (
            DataType::Float32,
            Arc::new(tagged.iter().map(|t| t.mean).collect::<Float32Array>()),
        ),
        (
            DataType::Float32,
            Arc::new(tagged.iter().map(|t| t.first).collect::<Float32Array>()),
        ),
        (entropy.data_type().clone(), Arc::new(entropy)),
        (offsets.data_type().clone(), Arc::new(offsets)),
        (
            DataType::Utf8,
            Arc::new(
                tagged
                    .iter()
                    .map(|t| Some(t.difficulty))
                    .collect::<StringArray>(),
            ),
        ),
    ];
    for (name, (data_type, column)) in ENTROPY_COLUMNS.iter().zip(new) {
        fields.push(Field::new(*name, data_type, false));
        columns.push(column);
    }
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|source| {
        EngineError::Arrow {
            path: file.path.clone(),
            source,
        }
    })?;
    let keep: BooleanArray = kept.iter().map(|&k| Some(k)).collect();
    Ok(filter_rows(&out, &keep, file)?)
}

impl TableStage for EntropyConfig {
    type Job = EntropyJob;

    fn job(&self, base: &Path) -> Result<EntropyJob> {
        let mut config = self.clone();
        config.model = base.join(&config.model);
        config.fallback_model = config.fallback_model.map(|m| base.join(m));
        EntropyJob::new(&config)
    }

    /// A directory another model tagged is recomputed (and the steps after it), with a
    /// warning: a pipeline that changed its proxy model means it.
    fn recompute_under_run(job: &EntropyJob, output: &Path, layout: &Layout) -> Result<bool> {
        let Some(previous) = job.replaced_model(output, layout)? else {
            return Ok(false);
        };
        tracing::warn!(
            "entropy: {} was tagged with {previous}; recomputing it with {} (and the steps \
             after it)",
            output.display(),
            job.model_name()
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(ids: &[u32]) -> TripleTokens {
        TripleTokens {
            ids: ids.to_vec(),
            segment: 1..ids.len(),
            offsets: Vec::new(),
        }
    }

    #[test]
    fn triples_extending_the_previous_one_share_a_chain() {
        let triples = [
            triple(&[1, 2, 3]),
            triple(&[1, 2, 3, 4, 5]),
            triple(&[1, 2, 3, 4, 5, 6]),
            triple(&[2, 3]),
            triple(&[1, 2]),
        ];
        let members: Vec<Vec<usize>> = chains(&triples).into_iter().map(|c| c.members).collect();
        assert_eq!(members, [vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn a_device_that_is_not_there_is_named() {
        let error = rlpt_lm::device("tpu:0").unwrap_err().to_string();
        assert!(error.contains("tpu:0"), "{error}");
        assert!(matches!(
            rlpt_lm::device("cpu"),
            Ok(candle_core::Device::Cpu)
        ));
    }
}
