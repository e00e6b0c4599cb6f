//! The `contamination` report: one row per benchmark item found in a document — the
//! document's id, the benchmark and item, the first matching n-gram as it appears in
//! the document, how many of the document's n-grams matched the item, and the action
//! taken (`removed`: the spans were cut out; `dropped`: the document was dropped).

use std::sync::LazyLock;

use arrow_schema::DataType;

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

fn column(name: &'static str, data_type: DataType, family: TypeFamily) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type,
        nullable: false,
        family,
    }
}

static SPEC: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "contamination",
    version: SchemaVersion { major: 1, minor: 0 },
    columns: vec![
        column("doc_id", DataType::Utf8, TypeFamily::String),
        column("benchmark", DataType::Utf8, TypeFamily::String),
        column("item_id", DataType::Utf8, TypeFamily::String),
        column("ngram", DataType::Utf8, TypeFamily::String),
        column("matches", DataType::UInt32, TypeFamily::Integer),
        column("action", DataType::Utf8, TypeFamily::String),
    ],
});

/// The `contamination` table spec.
pub fn spec() -> &'static TableSpec {
    &SPEC
}
