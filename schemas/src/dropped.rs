//! The `dropped` table: the documents `filter` dropped, one row each — the document's
//! id, the rule group (`lang`, `url`, `gopher-repetition`, `gopher-quality`, `c4`,
//! `fine-web`), the rule (`gopher_too_few_words`…), the measure against its threshold
//! (`37 words < 50`), and the text as it was, so nothing filtered is lost.

use std::sync::LazyLock;

use arrow_schema::DataType;

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

fn string_column(name: &'static str, data_type: DataType) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type,
        nullable: false,
        family: TypeFamily::String,
    }
}

static SPEC: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "dropped",
    version: SchemaVersion { major: 1, minor: 0 },
    columns: vec![
        string_column("doc_id", DataType::Utf8),
        string_column("rule", DataType::Utf8),
        string_column("reason", DataType::Utf8),
        string_column("detail", DataType::Utf8),
        string_column("text", DataType::LargeUtf8),
    ],
});

/// The `dropped` table spec.
pub fn spec() -> &'static TableSpec {
    &SPEC
}
