//! The tables of near-duplicate removal.
//!
//! - `dedup_signatures` (internal, one row per input document, no text): `key` (u64,
//!   `unit << 32 | row`), `id`, `exact` (u64 hash of the normalised text, null when it
//!   is empty), `sketch` (binary: the bottom-k sketch, sorted u32 little-endian),
//!   `id_hash` (u64 hash of the id, so documents sharing an id meet in a bucket),
//!   `source` (the document's), and
//!   one nullable u64 column per LSH band, `band_00`, `band_01`, … —
//!   so a band is read alone, without the others (the table is partitioned by band
//!   column by column).
//! - `dedup_pairs` (internal): candidate pairs `a < b` of keys sharing a band hash.
//! - `dedup_clusters` (for people): every member of every duplicate cluster — `id`,
//!   `cluster_id` (the id of the copy kept), `kept`, `similarity` (Jaccard similarity
//!   to the kept copy: exact for documents of at most `sketch_size` distinct shingles,
//!   estimated beyond), `source` (where the document came from) — sorted by cluster,
//!   then id. A document sharing its id with another is in the other's cluster
//!   whatever its similarity.
//! - `dedup_removed` (internal): keys of the removed documents, sorted, so each unit's
//!   filter reads only the row groups that hold its keys.

use std::sync::LazyLock;

use arrow_schema::DataType;

use crate::table::{ColumnSpec, SchemaVersion, TableSpec, TypeFamily};

const V1: SchemaVersion = SchemaVersion { major: 1, minor: 0 };
/// 1.1: signatures gained `id_hash` and `source`, clusters `source`.
const V1_1: SchemaVersion = SchemaVersion { major: 1, minor: 1 };

fn exact(name: &'static str, data_type: DataType, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type,
        nullable,
        family: TypeFamily::Exact,
    }
}

fn string(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        data_type: DataType::Utf8,
        nullable: false,
        family: TypeFamily::String,
    }
}

static SIGNATURES: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "dedup_signatures",
    version: V1_1,
    columns: vec![
        exact("key", DataType::UInt64, false),
        string("id"),
        exact("exact", DataType::UInt64, true),
        ColumnSpec {
            name: "sketch",
            data_type: DataType::Binary,
            nullable: false,
            family: TypeFamily::Binary,
        },
        exact("id_hash", DataType::UInt64, false),
        string("source"),
    ],
});

static PAIRS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "dedup_pairs",
    version: V1,
    columns: vec![
        exact("a", DataType::UInt64, false),
        exact("b", DataType::UInt64, false),
    ],
});

static CLUSTERS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "dedup_clusters",
    version: V1_1,
    columns: vec![
        string("id"),
        string("cluster_id"),
        exact("kept", DataType::Boolean, false),
        exact("similarity", DataType::Float32, false),
        string("source"),
    ],
});

static REMOVED: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "dedup_removed",
    version: V1,
    columns: vec![exact("key", DataType::UInt64, false)],
});

/// The `dedup_signatures` table.
pub fn signatures() -> &'static TableSpec {
    &SIGNATURES
}

/// The `dedup_pairs` table.
pub fn pairs() -> &'static TableSpec {
    &PAIRS
}

/// The `dedup_clusters` table.
pub fn clusters() -> &'static TableSpec {
    &CLUSTERS
}

/// The `dedup_removed` table.
pub fn removed() -> &'static TableSpec {
    &REMOVED
}

/// The column of LSH band `band` in `dedup_signatures`.
pub fn band_column(band: usize) -> String {
    format!("band_{band:02}")
}
