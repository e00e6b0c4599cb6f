//! How a stage's work is cut up: input files grouped into work units (the unit of
//! sharding, resume and output naming) and output rotated into shards of bounded size.
//! These settings shape the output bytes, so they are part of every stage's config hash.

pub use rlpt_schemas::size::{deserialize_bytes, parse_bytes};
use serde::{Deserialize, Deserializer, Serialize};

/// Default size of a work unit's input.
pub const DEFAULT_UNIT_BYTES: u64 = 64 << 20;
/// Default maximum rows in one output shard.
pub const DEFAULT_MAX_SHARD_ROWS: u64 = 1_000_000;
/// Default maximum data bytes in one output shard (before compression).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 256 << 20;

/// Work-unit and shard sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct Layout {
    /// Group consecutive input files into work units of about this size (e.g. 64MiB);
    /// a larger file is a unit of its own. Units are what ranks split and resume redoes.
    #[arg(long, value_parser = parse_bytes, default_value = "64MiB")]
    #[serde(deserialize_with = "deserialize_bytes")]
    pub unit_bytes: u64,
    /// Start a new output shard after this many rows (at least 1).
    #[arg(long, default_value_t = DEFAULT_MAX_SHARD_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(deserialize_with = "deserialize_positive")]
    pub max_shard_rows: u64,
    /// Start a new output shard after this much data (uncompressed, e.g. 256MiB).
    #[arg(long, value_parser = parse_bytes, default_value = "256MiB")]
    #[serde(deserialize_with = "deserialize_bytes")]
    pub max_shard_bytes: u64,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            unit_bytes: DEFAULT_UNIT_BYTES,
            max_shard_rows: DEFAULT_MAX_SHARD_ROWS,
            max_shard_bytes: DEFAULT_MAX_SHARD_BYTES,
        }
    }
}

/// Deserialises a count that must be at least 1.
pub fn deserialize_positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match u64::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sizes_accept_numbers_and_text() {
        let layout: Layout = toml::from_str("unit_bytes = \"1KiB\"\nmax_shard_bytes = 77").unwrap();
        assert_eq!((layout.unit_bytes, layout.max_shard_bytes), (1024, 77));
        assert_eq!(layout.max_shard_rows, DEFAULT_MAX_SHARD_ROWS);
        let zero = toml::from_str::<Layout>("max_shard_rows = 0").unwrap_err();
        assert!(zero.to_string().contains("at least 1"), "{zero}");
    }
}
