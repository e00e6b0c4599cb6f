//! The IO side of `rlpt segment`: each unit's documents through the [`Segmenter`]
//! (documents in parallel, output in document order) into the `triples` table, token
//! counts under the tokenizer given with `--tokenizer` (recorded in every file's
//! metadata and, by fingerprint, in the config). A document the tokenizer fails on is
//! rejected with its row and the tokenizer's message; the run goes on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, LargeStringArray, RecordBatch, StringArray, UInt32Array};
use rayon::prelude::*;
use rlpt_engine::Error as EngineError;
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch,
};
use rlpt_engine::inputs::WorkUnit;
use rlpt_engine::shard_reader::ids_and_texts;
use rlpt_lm::Tokenizer;
use rlpt_schemas::{Reject, documents, triples};
use rlpt_stages::segment::{SegmentConfig, SegmentCounters, Segmented, Segmenter, TokenCounter};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::jobs::table_stage::TableStage;

/// The segment stage as the executor runs it.
pub struct SegmentJob {
    config: SegmentConfig,
    tokenizer: Tokenizer,
}

/// One document's triples, with its id and source.
struct DocTriples<'a> {
    id: &'a str,
    source: &'a str,
    segmented: Segmented,
}

impl SegmentJob {
    /// A job for `config`, counting tokens with the tokenizer it names.
    pub fn new(config: &SegmentConfig) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            tokenizer: Tokenizer::from_file(&config.tokenizer)?,
        })
    }
}

impl TokenCounter for SegmentJob {
    fn count(&self, text: &str) -> std::result::Result<usize, String> {
        self.tokenizer.count(text).map_err(|err| err.to_string())
    }

    fn additive_at_whitespace(&self) -> bool {
        self.tokenizer.additive_at_whitespace()
    }
}

impl ShardJob for SegmentJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "segment"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(triples::spec())]
    }

    fn config(&self) -> Value {
        let mut config = serde_json::to_value(&self.config).expect("segment config serialises");
        config["tokenizer"] =
            json!({ "name": self.tokenizer.name(), "fingerprint": self.tokenizer.fingerprint() });
        config
    }

    fn file_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                triples::KEY_TOKENIZER.to_string(),
                self.tokenizer.name().to_string(),
            ),
            (
                triples::KEY_TOKENIZER_FINGERPRINT.to_string(),
                self.tokenizer.fingerprint().to_string(),
            ),
        ])
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = SegmentCounters::default();
        let mut row = 0u64;
        let segmenter = Segmenter::new(&self.config, self);
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let (ids, texts) = ids_and_texts(&batch, file)?;
            let sources = documents::column::<StringArray>(&batch, "source").map_err(|source| {
                EngineError::Schema {
                    path: file.path.clone(),
                    source,
                }
            })?;
            let results: Vec<_> = texts.par_iter().map(|text| segmenter.run(text)).collect();
            let mut docs = Vec::with_capacity(results.len());
            for (index, result) in results.into_iter().enumerate() {
                match result {
                    Ok(segmented) => {
                        counters += segmented.counters;
                        docs.push(DocTriples {
                            id: ids.value(index),
                            source: sources.value(index),
                            segmented,
                        });
                    }
                    Err(message) => sink.reject(Reject {
                        file: file.display(),
                        line: row + index as u64 + 1,
                        reason: "tokenizer_error".into(),
                        detail: message,
                        raw: None,
                    })?,
                }
            }
            row += texts.len() as u64;
            let out = triples_batch(&docs);
            sink.write(&out)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: row,
            counters: counter_map(&counters),
        })
    }
}

fn triples_batch(docs: &[DocTriples<'_>]) -> RecordBatch {
    let rows = || {
        docs.iter()
            .flat_map(|doc| doc.segmented.segments.iter().map(move |t| (doc, t)))
    };
    let u32s = |f: &dyn Fn(&rlpt_stages::segment::Segment) -> usize| -> ArrayRef {
        Arc::new(rows().map(|(_, t)| f(t) as u32).collect::<UInt32Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rows()
                .map(|(doc, t)| Some(format!("{}#{}", doc.id, t.index)))
                .collect::<StringArray>(),
        ),
        Arc::new(rows().map(|(doc, _)| Some(doc.id)).collect::<StringArray>()),
        Arc::new(
            rows()
                .map(|(doc, _)| Some(doc.source))
                .collect::<StringArray>(),
        ),
        u32s(&|t| t.index),
        Arc::new(
            rows()
                .map(|(_, t)| Some(t.context.as_str()))
                .collect::<LargeStringArray>(),
        ),
        Arc::new(
            rows()
                .map(|(_, t)| Some(t.segment.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows()
                .map(|(_, t)| t.next_segment.as_deref())
                .collect::<StringArray>(),
        ),
        u32s(&|t| t.context_segments),
        u32s(&|t| t.context_tokens),
        u32s(&|t| t.segment_tokens),
    ];
    RecordBatch::try_new(triples::spec().arrow_schema(), columns)
        .expect("columns match the triples schema")
}

impl TableStage for SegmentConfig {
    type Job = SegmentJob;

    fn job(&self, base: &Path) -> Result<SegmentJob> {
        let mut config = self.clone();
        config.tokenizer = base.join(&config.tokenizer);
        SegmentJob::new(&config)
    }
}
