//! Dedup step 1, per input unit: each document's sketch (exact hash, LSH band hashes,
//! bottom-k sketch) into `dedup_signatures`, keyed by unit and row. No text is kept.

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use rlpt_engine::Error as EngineError;
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch, run_stage,
};
use rlpt_engine::inputs::WorkUnit;
use rlpt_engine::shard_reader::ids_and_texts;
use rlpt_engine::summary::StageSummary;
use rlpt_engine::table_units::plan_table;
use rlpt_schemas::{dedup, documents};
use rlpt_stages::dedup::{DedupConfig, Sketch, SketchCounters, Sketcher, doc_key, id_hash};
use serde_json::{Value, json};

use super::{DedupDirs, DedupRun};
use crate::error::{Error, Result};

pub(super) fn run(run: &DedupRun, input: &str, dirs: &DedupDirs) -> Result<StageSummary> {
    let job = SignaturesJob::new(&run.config)?;
    let units = plan_table(input, run.layout.unit_bytes)?;
    run_stage(&job, &units, &run.stage_run(dirs.signatures()))
}

struct SignaturesJob {
    config: DedupConfig,
    sketcher: Sketcher,
}

impl SignaturesJob {
    fn new(config: &DedupConfig) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            sketcher: Sketcher::new(config).map_err(Error::Usage)?,
        })
    }

    fn batch(
        &self,
        unit: usize,
        first_row: usize,
        ids: &StringArray,
        sources: &StringArray,
        sketches: &[Sketch],
    ) -> RecordBatch {
        let bands = self.sketcher.banding().bands;
        let keys: UInt64Array = (0..sketches.len())
            .map(|i| doc_key(unit, first_row + i))
            .collect();
        let exact: UInt64Array = sketches.iter().map(|s| s.exact).collect();
        let bottom_k: BinaryArray = sketches
            .iter()
            .map(|s| {
                Some(
                    s.sketch
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>(),
                )
            })
            .collect();
        let mut fields: Vec<Field> = dedup::signatures()
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.clone(), c.nullable))
            .collect();
        let id_hashes: UInt64Array = ids
            .iter()
            .map(|id| Some(id_hash(id.unwrap_or_default())))
            .collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(keys),
            Arc::new(ids.clone()),
            Arc::new(exact),
            Arc::new(bottom_k),
            Arc::new(id_hashes),
            Arc::new(sources.clone()),
        ];
        for band in 0..bands {
            fields.push(Field::new(dedup::band_column(band), DataType::UInt64, true));
            let hashes: UInt64Array = sketches
                .iter()
                .map(|s| s.bands.get(band).copied())
                .collect();
            columns.push(Arc::new(hashes));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .expect("columns are built to match the signatures schema")
    }
}

impl ShardJob for SignaturesJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "dedup-signatures"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(dedup::signatures())]
    }

    fn config(&self) -> Value {
        let mut config = serde_json::to_value(&self.config).expect("dedup config serialises");
        // The columns beyond the sketch, so a directory written before they existed is
        // not reused as if it had them.
        config["columns"] = json!(["id_hash", "source"]);
        config
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = SketchCounters::default();
        let mut row = 0usize;
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let (ids, texts) = ids_and_texts(&batch, file)?;
            let sources = documents::column::<StringArray>(&batch, "source").map_err(|source| {
                EngineError::Schema {
                    path: file.path.clone(),
                    source,
                }
            })?;
            let sketches = self.sketcher.sketch_batch(&texts);
            counters += SketchCounters::count(&sketches);
            sink.write(&self.batch(unit.index, row, ids, sources, &sketches))?;
            row += sketches.len();
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.documents,
            counters: counter_map(&counters),
        })
    }
}
