//! Reading a Parquet input: where its text, id and other columns are, and each
//! row's text cell and metadata.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use rlpt_engine::Error as EngineError;
use rlpt_stages::ingest::{IngestConfig, TextCell};

use crate::error::Result;

/// Where the text, id and other columns are in a Parquet input.
pub(super) struct ParquetColumns {
    text: usize,
    id: Option<usize>,
    others: Vec<usize>,
}

impl ParquetColumns {
    pub(super) fn locate(
        config: &IngestConfig,
        path: &Path,
        schema: &Schema,
    ) -> rlpt_engine::Result<Self> {
        let problem = |problem: String| EngineError::Input {
            spec: path.display().to_string(),
            problem,
        };
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let text = schema.index_of(&config.text_field).map_err(|_| {
            problem(format!(
                "no column `{}` (columns: {}); pass --text-field",
                config.text_field,
                names.join(", ")
            ))
        })?;
        let id = schema.index_of(&config.id_field).ok();
        if let Some(id) = id {
            let data_type = schema.field(id).data_type();
            if !(data_type.is_integer()
                || matches!(
                    data_type,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ))
            {
                return Err(problem(format!(
                    "column `{}` has type {data_type}; ids must be strings or integers (pass --id-field to use another column)",
                    config.id_field
                )));
            }
        }
        let others = (0..names.len())
            .filter(|&i| i != text && Some(i) != id)
            .collect();
        Ok(Self { text, id, others })
    }

    pub(super) fn ids(
        &self,
        batch: &RecordBatch,
        path: &Path,
    ) -> rlpt_engine::Result<Option<StringArray>> {
        let Some(id) = self.id else {
            return Ok(None);
        };
        let cast = arrow_cast::cast(batch.column(id), &DataType::Utf8).map_err(|source| {
            EngineError::Arrow {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Some(cast.as_string::<i32>().clone()))
    }

    /// The text column, a dictionary-encoded one (pyarrow's `dictionary_encode`)
    /// decoded to its values.
    pub(super) fn text(&self, batch: &RecordBatch, path: &Path) -> rlpt_engine::Result<ArrayRef> {
        let column = batch.column(self.text);
        let DataType::Dictionary(_, values) = column.data_type() else {
            return Ok(column.clone());
        };
        arrow_cast::cast(column, values).map_err(|source| EngineError::Arrow {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Each row's other columns as a JSON object (`None` when all are null).
    pub(super) fn metas(&self, batch: &RecordBatch, path: &Path) -> Result<Vec<Option<String>>> {
        if self.others.is_empty() {
            return Ok(vec![None; batch.num_rows()]);
        }
        let arrow_error = |source| EngineError::Arrow {
            path: path.to_path_buf(),
            source,
        };
        let projected = batch.project(&self.others).map_err(arrow_error)?;
        let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
        writer.write(&projected).map_err(arrow_error)?;
        writer.finish().map_err(arrow_error)?;
        let json = String::from_utf8(writer.into_inner()).expect("arrow-json writes UTF-8");
        Ok(json
            .lines()
            .map(|line| (line != "{}").then(|| line.to_string()))
            .collect())
    }
}

pub(super) fn text_cell(array: &dyn Array, row: usize) -> TextCell<'_> {
    if array.is_null(row) {
        return TextCell::Null;
    }
    if let Some(strings) = array.as_string_opt::<i32>() {
        TextCell::Str(strings.value(row))
    } else if let Some(strings) = array.as_string_opt::<i64>() {
        TextCell::Str(strings.value(row))
    } else if let Some(strings) = array.as_string_view_opt() {
        TextCell::Str(strings.value(row))
    } else if let Some(bytes) = array.as_binary_opt::<i32>() {
        TextCell::Bytes(bytes.value(row))
    } else if let Some(bytes) = array.as_binary_opt::<i64>() {
        TextCell::Bytes(bytes.value(row))
    } else if let Some(bytes) = array.as_binary_view_opt() {
        TextCell::Bytes(bytes.value(row))
    } else {
        TextCell::OtherType(type_name(array))
    }
}

pub(super) fn type_name(array: &dyn Array) -> &'static str {
    match array.data_type() {
        DataType::Boolean => "Boolean",
        DataType::List(_) | DataType::LargeList(_) => "List",
        DataType::Struct(_) => "Struct",
        data_type if data_type.is_integer() => "Integer",
        data_type if data_type.is_floating() => "Float",
        _ => "a non-string type",
    }
}
