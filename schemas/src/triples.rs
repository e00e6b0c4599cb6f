//! The `triples` table: one row per segment with enough context — the training unit of
//! next-segment reasoning. Columns: `id` (`doc_id#seg_index`), `doc_id`, `source`,
//! `seg_index`, `context` (the document from a segment boundary up to the segment,
//! whitespace kept), `segment`, `next_segment` (null for a document's last segment),
//! `context_segments`, and token counts `context_tokens`, `segment_tokens` under the
//! tokenizer named in the file metadata (`rlpt.tokenizer`, `rlpt.tokenizer_fingerprint`).
//! `context + segment` is always an exact slice of the source document.
//!
//! The entropy stage adds `seg_entropy_mean`, `seg_entropy_first` (f32),
//! `token_entropy` (`list<f32>`), `token_offsets` (`list<u32>`) and `difficulty` (utf8),
//! and the model in the metadata (`rlpt.model`, `rlpt.model_checksum`).

use std::sync::LazyLock;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

/// Column (after entropy, f32): the mean proxy entropy of the segment's tokens.
pub const SEG_ENTROPY_MEAN: &str = "seg_entropy_mean";
/// Column (after entropy, f32): the proxy entropy of the segment's first token.
pub const SEG_ENTROPY_FIRST: &str = "seg_entropy_first";
/// Column (after entropy, `list<f32>`): each segment token's proxy entropy, in nats.
pub const TOKEN_ENTROPY: &str = "token_entropy";
/// Column (after entropy, `list<u32>`): each segment token's byte offset in the segment.
pub const TOKEN_OFFSETS: &str = "token_offsets";
/// Column (after entropy, utf8): `trivial`, `easy`, `medium` or `hard`.
pub const DIFFICULTY: &str = "difficulty";
/// The columns the entropy stage adds, in the order it writes them.
pub const ENTROPY_COLUMNS: [&str; 5] = [
    SEG_ENTROPY_MEAN,
    SEG_ENTROPY_FIRST,
    TOKEN_ENTROPY,
    TOKEN_OFFSETS,
    DIFFICULTY,
];

/// File-metadata key: the tokenizer the token counts are under.
pub const KEY_TOKENIZER: &str = "rlpt.tokenizer";
/// File-metadata key: the tokenizer file's xxh3-64.
pub const KEY_TOKENIZER_FINGERPRINT: &str = "rlpt.tokenizer_fingerprint";
/// File-metadata key (after entropy): the proxy model's name.
pub const KEY_MODEL: &str = "rlpt.model";
/// File-metadata key (after entropy): xxh3-64 of the proxy model's files.
pub const KEY_MODEL_CHECKSUM: &str = "rlpt.model_checksum";

/// One row of `triples`, with the entropy columns when the shard has them: what the
/// trainer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triple {
    /// `doc_id#seg_index`.
    pub id: String,
    /// The document it comes from.
    pub doc_id: String,
    /// The text before the segment.
    pub context: String,
    /// The segment.
    pub segment: String,
    /// The segment after it, if any.
    pub next_segment: Option<String>,
    /// `difficulty` label, if tagged.
    pub difficulty: Option<String>,
    /// Mean entropy of the segment's tokens, if tagged.
    pub seg_entropy_mean: Option<f32>,
    /// Entropy of each segment token (empty if untagged).
    pub token_entropy: Vec<f32>,
    /// Byte offset of each segment token in the segment (empty if untagged).
    pub token_offsets: Vec<u32>,
}

impl Triple {
    /// Row `row` of a triples batch (the entropy columns read when present); the
    /// problem, as text, when a column is missing or of another type.
    pub fn from_row(batch: &RecordBatch, row: usize) -> Result<Self, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column `{name}`"))?;
            if column.is_null(row) {
                return Ok(None);
            }
            let value = match (column.as_string_opt::<i32>(), column.as_string_opt::<i64>()) {
                (Some(strings), _) => strings.value(row),
                (_, Some(strings)) => strings.value(row),
                _ => return Err(format!("`{name}` is {}, not text", column.data_type())),
            };
            Ok(Some(value.to_string()))
        };
        let required = |name: &str| text(name)?.ok_or_else(|| format!("`{name}` is null"));
        let token_offsets = list_values::<UInt32Type>(batch, TOKEN_OFFSETS, row);
        let token_entropy = list_values::<Float32Type>(batch, TOKEN_ENTROPY, row);
        if token_entropy.len() != token_offsets.len() {
            return Err(format!(
                "{} token entropies but {} token offsets",
                token_entropy.len(),
                token_offsets.len()
            ));
        }
        let seg_entropy_mean = batch
            .column_by_name(SEG_ENTROPY_MEAN)
            .and_then(|c| c.as_primitive_opt::<Float32Type>())
            .filter(|c| !c.is_null(row))
            .map(|c| c.value(row));
        Ok(Self {
            id: required("id")?,
            doc_id: required("doc_id")?,
            context: required("context")?,
            segment: required("segment")?,
            next_segment: text("next_segment")?,
            difficulty: if batch.column_by_name(DIFFICULTY).is_some() {
                text(DIFFICULTY)?
            } else {
                None
            },
            seg_entropy_mean,
            token_entropy,
            token_offsets,
        })
    }
}

/// The values of a list column at `row` (empty when the column is absent or null).
fn list_values<T: ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
    row: usize,
) -> Vec<T::Native> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_list_opt::<i32>())
        .filter(|list| !list.is_null(row))
        .map(|list| list.value(row).as_primitive::<T>().values().to_vec())
        .unwrap_or_default()
}

fn column(name: &'static str, data_type: DataType, nullable: bool) -> ColumnSpec {
    let family = match data_type {
        DataType::UInt32 => TypeFamily::Integer,
        _ => TypeFamily::String,
    };
    ColumnSpec {
        name,
        data_type,
        nullable,
        family,
    }
}

static SPEC: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "triples",
    version: SchemaVersion { major: 1, minor: 0 },
    columns: vec![
        column("id", DataType::Utf8, false),
        column("doc_id", DataType::Utf8, false),
        column("source", DataType::Utf8, false),
        column("seg_index", DataType::UInt32, false),
        column("context", DataType::LargeUtf8, false),
        column("segment", DataType::Utf8, false),
        column("next_segment", DataType::Utf8, true),
        column("context_segments", DataType::UInt32, false),
        column("context_tokens", DataType::UInt32, false),
        column("segment_tokens", DataType::UInt32, false),
    ],
});

/// The `triples` table spec.
pub fn spec() -> &'static TableSpec {
    &SPEC
}
