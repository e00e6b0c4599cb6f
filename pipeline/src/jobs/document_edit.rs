//! The one shape of a stage that edits `documents` rows in place (pii, filter,
//! decontam): the text column replaced, the stage's own columns from an earlier run
//! dropped and written fresh at the end, and the rows the stage drops left out. Every
//! other column passes through as it is.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, LargeStringArray, RecordBatch};
use arrow_schema::{Field, Schema};
use rlpt_engine::Error as EngineError;
use rlpt_engine::inputs::InputFile;
use rlpt_engine::shard_reader::filter_rows;

use crate::error::Result;

/// An edit of one `documents` batch.
pub struct DocumentEdit<'a> {
    /// The new text of every row (dropped rows included).
    pub text: LargeStringArray,
    /// Whether a column is the stage's own (replaced by `columns`).
    pub owns: &'a dyn Fn(&str) -> bool,
    /// The stage's columns, one value per row, appended in this order.
    pub columns: Vec<(Field, ArrayRef)>,
    /// Which rows stay.
    pub keep: BooleanArray,
}

impl DocumentEdit<'_> {
    /// `batch` (read from `file`) with this edit applied.
    pub fn apply(self, batch: &RecordBatch, file: &InputFile) -> Result<RecordBatch> {
        let text: ArrayRef = Arc::new(self.text);
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if (self.owns)(field.name()) {
                continue;
            }
            fields.push(field.as_ref().clone());
            columns.push(if field.name() == "text" {
                Arc::clone(&text)
            } else {
                Arc::clone(column)
            });
        }
        for (field, column) in self.columns {
            fields.push(field);
            columns.push(column);
        }
        let out =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|source| {
                EngineError::Arrow {
                    path: file.path.clone(),
                    source,
                }
            })?;
        Ok(filter_rows(&out, &self.keep, file)?)
    }
}
