//! The `documents` table: one row per document, the unit every cleaning stage reads and
//! writes. Columns: `id` (stable: the source's id or a content hash, never a position),
//! `text` (NFC-normalised), `source` (the dataset it came from), `meta` (a JSON object
//! of whatever else the source carried, or null). Stages may add columns (`pii_count`…).

use std::sync::{Arc, LazyLock};

use arrow_array::{Array, ArrayRef, LargeStringArray, RecordBatch, StringArray};
use arrow_schema::DataType;

use crate::error::SchemaError;
use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

static SPEC: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "documents",
    version: SchemaVersion { major: 1, minor: 0 },
    columns: vec![
        string_column("id", DataType::Utf8, false),
        string_column("text", DataType::LargeUtf8, false),
        string_column("source", DataType::Utf8, false),
        string_column("meta", DataType::Utf8, true),
    ],
});

fn string_column(name: &'static str, data_type: DataType, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type,
        nullable,
        family: TypeFamily::String,
    }
}

/// The `documents` table spec.
pub fn spec() -> &'static TableSpec {
    &SPEC
}

/// One row of the `documents` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Stable id: the source's id, or the content hash of `text`.
    pub id: String,
    /// NFC-normalised text.
    pub text: String,
    /// The dataset the document came from.
    pub source: String,
    /// A JSON object with the source's other fields, or `None`.
    pub meta: Option<String>,
}

/// Builds a record batch with exactly the table's required columns.
pub fn to_batch(docs: &[Document]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            docs.iter()
                .map(|d| Some(d.id.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            docs.iter()
                .map(|d| Some(d.text.as_str()))
                .collect::<LargeStringArray>(),
        ),
        Arc::new(
            docs.iter()
                .map(|d| Some(d.source.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            docs.iter()
                .map(|d| d.meta.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    RecordBatch::try_new(spec().arrow_schema(), columns)
        .expect("columns are built to match the documents schema")
}

/// Reads documents out of a batch whose required columns have the table's types
/// (readers cast to them). Validates first, so a bad row is an error naming it.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Document>, SchemaError> {
    validate(batch)?;
    let id = column::<StringArray>(batch, "id")?;
    let text = column::<LargeStringArray>(batch, "text")?;
    let source = column::<StringArray>(batch, "source")?;
    let meta = column::<StringArray>(batch, "meta")?;
    Ok((0..batch.num_rows())
        .map(|row| Document {
            id: id.value(row).to_string(),
            text: text.value(row).to_string(),
            source: source.value(row).to_string(),
            meta: meta.is_valid(row).then(|| meta.value(row).to_string()),
        })
        .collect())
}

/// Checks the row invariants: no nulls where the table forbids them, no empty id.
pub fn validate(batch: &RecordBatch) -> Result<(), SchemaError> {
    spec().check_nulls(batch)?;
    let id = column::<StringArray>(batch, "id")?;
    if let Some(row) = (0..id.len()).find(|&row| id.value(row).is_empty()) {
        return Err(SchemaError::BadRow {
            row,
            column: "id",
            problem: "empty id",
        });
    }
    Ok(())
}

/// The named column downcast to the array type of its spec.
pub fn column<'a, A: Array + 'static>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a A, SchemaError> {
    spec().column(batch, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Document> {
        vec![
            Document {
                id: "wikipedia/en/Algebra".into(),
                text: "Algebra is a branch of mathematics.".into(),
                source: "wikipedia".into(),
                meta: Some(r#"{"topic":"Mathematics"}"#.into()),
            },
            Document {
                id: "0f3a".into(),
                text: "Équation différentielle".into(),
                source: "wikipedia".into(),
                meta: None,
            },
        ]
    }

    #[test]
    fn rows_round_trip_through_a_batch() {
        let docs = sample();
        let batch = to_batch(&docs);
        assert_eq!(batch.schema(), spec().arrow_schema());
        assert_eq!(from_batch(&batch).unwrap(), docs);
    }

    #[test]
    fn an_empty_id_is_a_bad_row() {
        let mut docs = sample();
        docs[1].id.clear();
        let err = from_batch(&to_batch(&docs)).unwrap_err();
        assert_eq!(err.to_string(), "row 1, column `id`: empty id");
    }

    #[test]
    fn a_null_text_is_a_bad_row() {
        let batch = to_batch(&sample());
        let texts: LargeStringArray = vec![Some("a"), None].into_iter().collect();
        let mut columns = batch.columns().to_vec();
        columns[1] = Arc::new(texts);
        let schema = Arc::new(arrow_schema::Schema::new(
            spec()
                .columns
                .iter()
                .map(|c| arrow_schema::Field::new(c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let err = validate(&RecordBatch::try_new(schema, columns).unwrap()).unwrap_err();
        assert!(
            err.to_string().starts_with("row 1, column `text`: null"),
            "{err}"
        );
    }

    #[test]
    fn a_batch_without_a_column_names_it() {
        let batch = to_batch(&sample()).project(&[0, 1, 3]).unwrap();
        let err = from_batch(&batch).unwrap_err();
        assert!(
            err.to_string().contains("column `source` is missing"),
            "{err}"
        );
    }
}
