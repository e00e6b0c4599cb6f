//! The IO side of `rlpt pii`: each unit's documents through the [`Scrubber`], written
//! back with the text replaced and a count column per kind (`pii_count`, `pii_email`,
//! …, replacing those of an earlier run); documents over `--drop-above` are left out.
//! Every other column is kept as it is.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field};
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch,
};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::shard_reader::ids_and_texts;
use rlpt_schemas::documents;
use rlpt_stages::pii::{PiiConfig, PiiCounters, PiiKind, Scrubbed, Scrubber};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jobs::document_edit::DocumentEdit;
use crate::jobs::table_stage::TableStage;

/// Prefix of the count columns.
const COUNT_PREFIX: &str = "pii_";

/// The pii stage as the executor runs it.
pub struct PiiJob {
    config: PiiConfig,
    scrubber: Scrubber,
}

impl PiiJob {
    /// A job for `config` (checked).
    pub fn new(config: &PiiConfig) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            scrubber: Scrubber::new(config).map_err(Error::Usage)?,
        })
    }
}

impl ShardJob for PiiJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "pii"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(documents::spec())]
    }

    fn config(&self) -> Value {
        serde_json::to_value(&self.config).expect("pii config serialises")
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = PiiCounters::default();
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let (_, texts) = ids_and_texts(&batch, file)?;
            let scrubbed = self.scrubber.scrub_batch(&texts);
            counters += PiiCounters::count(&scrubbed);
            let out = scrubbed_batch(&batch, &texts, &scrubbed, file)?;
            sink.write(&out)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.documents,
            counters: counter_map(&counters),
        })
    }
}

/// `batch` with the scrubbed text, fresh count columns, and the dropped rows left out.
fn scrubbed_batch(
    batch: &RecordBatch,
    texts: &[&str],
    scrubbed: &[Scrubbed],
    file: &InputFile,
) -> Result<RecordBatch> {
    let count_column = |name: String, count: &dyn Fn(&Scrubbed) -> u32| {
        let values: UInt32Array = scrubbed.iter().map(count).collect();
        (
            Field::new(name, DataType::UInt32, false),
            Arc::new(values) as ArrayRef,
        )
    };
    let mut columns = vec![count_column(format!("{COUNT_PREFIX}count"), &|d| {
        d.counts.total()
    })];
    for kind in PiiKind::ALL {
        columns.push(count_column(format!("{COUNT_PREFIX}{kind}"), &|d| {
            d.counts.get(kind)
        }));
    }
    DocumentEdit {
        text: texts
            .iter()
            .zip(scrubbed)
            .map(|(text, doc)| Some(doc.text.as_deref().unwrap_or(text)))
            .collect(),
        owns: &|name| name.starts_with(COUNT_PREFIX),
        columns,
        keep: scrubbed.iter().map(|d| Some(!d.dropped)).collect(),
    }
    .apply(batch, file)
}

impl TableStage for PiiConfig {
    type Job = PiiJob;

    fn job(&self, _base: &Path) -> Result<PiiJob> {
        PiiJob::new(self)
    }
}
