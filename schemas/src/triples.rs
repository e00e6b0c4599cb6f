//! The `triples` table: one row per segment with enough context — the training unit of
//! next-segment reasoning. Columns: `id` (`doc_id#seg_index`), `doc_id`, `source`,
//! `seg_index`, `context` (the document from a segment boundary up to the segment,
//! whitespace kept), `segment`, `next_segment` (null for a document's last segment),
//! `context_segments`, and token counts `context_tokens`, `segment_tokens` under the
//! tokenizer named in the file metadata (`rlpt.tokenizer`, `rlpt.tokenizer_fingerprint`).
//! `context + segment` is always an exact slice of the source document.
//!
//! The entropy stage adds `seg_entropy_mean`, `seg_entropy_first` (f32),
//! `token_entropy` (list<f32>), `token_offsets` (list<u32>) and `difficulty` (utf8),
//! and the model in the metadata (`rlpt.model`, `rlpt.model_checksum`).

use std::sync::LazyLock;

use arrow_schema::DataType;

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

/// Column (after entropy, f32): the mean proxy entropy of the segment's tokens.
pub const SEG_ENTROPY_MEAN: &str = "seg_entropy_mean";
/// Column (after entropy, f32): the proxy entropy of the segment's first token.
pub const SEG_ENTROPY_FIRST: &str = "seg_entropy_first";
/// Column (after entropy, list<f32>): each segment token's proxy entropy, in nats.
pub const TOKEN_ENTROPY: &str = "token_entropy";
/// Column (after entropy, list<u32>): each segment token's byte offset in the segment.
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
