//! The `rejects` table: input a stage could not use, kept with where it came from and
//! why, so nothing vanishes silently. Columns: `file` (the input file), `line` (1-based
//! line of a text input, or row of a Parquet input), `reason` (a stable snake_case
//! code such as `malformed_json`), `detail` (a sentence for a person), `raw` (the
//! record's original bytes, when there are any).

use std::sync::{Arc, LazyLock};

use arrow_array::{ArrayRef, LargeBinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::DataType;

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

static SPEC: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "rejects",
    version: SchemaVersion { major: 1, minor: 0 },
    columns: vec![
        column("file", DataType::Utf8, false, TypeFamily::String),
        column("line", DataType::UInt64, false, TypeFamily::Integer),
        column("reason", DataType::Utf8, false, TypeFamily::String),
        column("detail", DataType::Utf8, false, TypeFamily::String),
        column("raw", DataType::LargeBinary, true, TypeFamily::Binary),
    ],
});

fn column(
    name: &'static str,
    data_type: DataType,
    nullable: bool,
    family: TypeFamily,
) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type,
        nullable,
        family,
    }
}

/// The `rejects` table spec.
pub fn spec() -> &'static TableSpec {
    &SPEC
}

/// One rejected input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The input file, as the user named it.
    pub file: String,
    /// 1-based line (text inputs) or row (Parquet inputs).
    pub line: u64,
    /// Stable reason code, e.g. `invalid_utf8`.
    pub reason: String,
    /// What was expected and what was found.
    pub detail: String,
    /// The record's original bytes.
    pub raw: Option<Vec<u8>>,
}

/// Builds a record batch of rejects.
pub fn to_batch(rejects: &[Reject]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rejects
                .iter()
                .map(|r| Some(r.file.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(rejects.iter().map(|r| r.line).collect::<UInt64Array>()),
        Arc::new(
            rejects
                .iter()
                .map(|r| Some(r.reason.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|r| Some(r.detail.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rejects
                .iter()
                .map(|r| r.raw.as_deref())
                .collect::<LargeBinaryArray>(),
        ),
    ];
    RecordBatch::try_new(spec().arrow_schema(), columns)
        .expect("columns are built to match the rejects schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_keep_their_raw_bytes() {
        let batch = to_batch(&[Reject {
            file: "a.jsonl".into(),
            line: 7,
            reason: "invalid_utf8".into(),
            detail: "invalid UTF-8 at byte 3".into(),
            raw: Some(vec![b'{', 0xff]),
        }]);
        assert_eq!(batch.num_rows(), 1);
        let raw = batch
            .column(4)
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .unwrap();
        assert_eq!(raw.value(0), &[b'{', 0xff]);
    }
}
