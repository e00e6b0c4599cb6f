//! The IO side of `rlpt filter`: the URL block list read (its checksum part of the
//! config), each unit's documents run through the [`QualityFilter`] (URLs from the
//! `meta` JSON's `url`), kept documents written with C4's edited text and `lang` +
//! `lang_score` columns (replacing those of an earlier run), dropped ones to the
//! `dropped/` table with the rule and the measure that failed.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field};
use rlpt_engine::IoContext;
use rlpt_engine::executor::{
    OutputTable, ShardJob, UnitCounts, UnitSink, counter_map, for_each_batch,
};
use rlpt_engine::inputs::{InputFile, WorkUnit};
use rlpt_engine::shard_reader::ids_and_texts;
use rlpt_schemas::{documents, dropped};
use rlpt_stages::filter::{
    Document, FilterConfig, FilterCounters, FilterRule, Filtered, QualityFilter, UrlBlocklist,
};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::jobs::document_edit::DocumentEdit;
use crate::jobs::table_stage::TableStage;

/// The subdirectory of the dropped documents.
pub const DROPPED_DIR: &str = "dropped";

/// The filter stage as the executor runs it.
pub struct FilterJob {
    config: FilterConfig,
    blocklist_checksum: Option<String>,
    reads_urls: bool,
    filter: QualityFilter,
}

impl FilterJob {
    /// A job for `config`, its block list read.
    pub fn new(config: &FilterConfig) -> Result<Self> {
        let (blocklist, blocklist_checksum) = match &config.url_blocklist {
            Some(path) => {
                let bytes = std::fs::read(path).at(path)?;
                let text = String::from_utf8_lossy(&bytes);
                let list = UrlBlocklist::parse(&text);
                let (domains, urls) = list.counts();
                tracing::info!(domains, urls, list = %path.display(), "URL block list read");
                (list, Some(format!("{:016x}", xxh3_64(&bytes))))
            }
            None => (UrlBlocklist::default(), None),
        };
        let reads_urls = !blocklist.is_empty() && !config.skip.contains(&FilterRule::Url);
        Ok(Self {
            filter: QualityFilter::new(config, blocklist).map_err(Error::Usage)?,
            config: config.clone(),
            blocklist_checksum,
            reads_urls,
        })
    }

    /// Each row's `url` from its `meta` JSON, when the block list needs them.
    fn urls<'a>(&self, batch: &'a RecordBatch) -> Vec<Option<Cow<'a, str>>> {
        let meta = batch
            .column_by_name("meta")
            .and_then(|column| column.as_any().downcast_ref::<StringArray>());
        (0..batch.num_rows())
            .map(|row| {
                let meta = meta.filter(|m| self.reads_urls && m.is_valid(row))?;
                serde_json::from_str::<UrlField<'a>>(meta.value(row))
                    .ok()?
                    .url
            })
            .collect()
    }
}

/// The one field of `meta` the filter reads.
#[derive(serde::Deserialize)]
struct UrlField<'a> {
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

impl ShardJob for FilterJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "filter"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![
            OutputTable::main(documents::spec()),
            OutputTable {
                dir: DROPPED_DIR,
                spec: dropped::spec(),
            },
        ]
    }

    /// The settings, the block list by its checksum (not its path, so a moved checkout
    /// keeps its hash).
    fn config(&self) -> Value {
        let mut config = serde_json::to_value(&self.config).expect("filter config serialises");
        config["url_blocklist"] = Value::Null;
        config["url_blocklist_xxh3"] = Value::from(self.blocklist_checksum.clone());
        config
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut counters = FilterCounters::default();
        for_each_batch::<Error>(unit, documents::spec(), sink, |sink, file, batch| {
            let (ids, texts) = ids_and_texts(&batch, file)?;
            let urls = self.urls(&batch);
            let documents: Vec<Document<'_>> = texts
                .iter()
                .zip(&urls)
                .map(|(text, url)| Document {
                    text,
                    url: url.as_deref(),
                })
                .collect();
            let results = self.filter.filter_batch(&documents);
            counters += FilterCounters::count(&results);
            sink.write_table(dropped::spec().name, &dropped_batch(ids, &texts, &results))?;
            sink.write(&kept_batch(&batch, &texts, &results, file)?)?;
            Ok(())
        })?;
        Ok(UnitCounts {
            rows_in: counters.documents,
            counters: counter_map(&counters),
        })
    }
}

/// `batch`'s kept rows with C4's text and fresh `lang` / `lang_score` columns.
fn kept_batch(
    batch: &RecordBatch,
    texts: &[&str],
    results: &[Filtered],
    file: &InputFile,
) -> Result<RecordBatch> {
    let lang: StringArray = results.iter().map(|r| r.lang).collect();
    let score: Float32Array = results.iter().map(|r| Some(r.lang_score)).collect();
    DocumentEdit {
        text: texts
            .iter()
            .zip(results)
            .map(|(text, r)| Some(r.text.as_deref().unwrap_or(text)))
            .collect(),
        owns: &|name| name == "lang" || name == "lang_score",
        columns: vec![
            (
                Field::new("lang", DataType::Utf8, true),
                Arc::new(lang) as ArrayRef,
            ),
            (
                Field::new("lang_score", DataType::Float32, false),
                Arc::new(score),
            ),
        ],
        keep: results.iter().map(|r| Some(r.dropped.is_none())).collect(),
    }
    .apply(batch, file)
}

/// The `dropped` rows of `batch`'s dropped documents.
fn dropped_batch(ids: &StringArray, texts: &[&str], results: &[Filtered]) -> RecordBatch {
    let mut columns: [Vec<&str>; 5] = Default::default();
    for (row, result) in results.iter().enumerate() {
        let Some(drop) = &result.dropped else {
            continue;
        };
        let values = [
            ids.value(row),
            drop.rule.name(),
            &drop.reason,
            &drop.detail,
            texts[row],
        ];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
    }
    let [doc_ids, rules, reasons, details, dropped_texts] = columns;
    RecordBatch::try_new(
        dropped::spec().arrow_schema(),
        vec![
            Arc::new(StringArray::from(doc_ids)),
            Arc::new(StringArray::from(rules)),
            Arc::new(StringArray::from(reasons)),
            Arc::new(StringArray::from(details)),
            Arc::new(arrow_array::LargeStringArray::from(dropped_texts)),
        ],
    )
    .expect("columns match the dropped schema")
}

impl TableStage for FilterConfig {
    type Job = FilterJob;

    fn job(&self, base: &Path) -> Result<FilterJob> {
        let mut config = self.clone();
        config.url_blocklist = config.url_blocklist.map(|list| base.join(list));
        FilterJob::new(&config)
    }
}
