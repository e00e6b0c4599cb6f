//! How a stage's work is cut up: input files grouped into work units (the unit of
//! sharding, resume and output naming) and output rotated into shards of bounded size.
//! These settings shape the output bytes, so they are part of every stage's config hash.

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

/// Parses a byte size: `4096`, `64K`, `64KiB`, `1.5MiB`, `2G` (binary multiples).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size (examples: 4096, 64KiB, 256MiB, 2G)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 4096, 64KiB, 256MiB, 2G)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

/// Deserialises a byte size given as a number or as text such as `"64MiB"`.
pub fn deserialize_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Number(0) => Err(serde::de::Error::custom("a size must be at least 1 byte")),
        Size::Number(n) => Ok(n),
        Size::Text(text) => parse_bytes(&text).map_err(serde::de::Error::custom),
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
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("1.5M"), Ok(3 << 19));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert!(
            parse_bytes("12 parsecs")
                .unwrap_err()
                .contains("not a size")
        );
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn config_sizes_accept_numbers_and_text() {
        let layout: Layout = toml::from_str("unit_bytes = \"1KiB\"\nmax_shard_bytes = 77").unwrap();
        assert_eq!((layout.unit_bytes, layout.max_shard_bytes), (1024, 77));
        assert_eq!(layout.max_shard_rows, DEFAULT_MAX_SHARD_ROWS);
        let zero = toml::from_str::<Layout>("max_shard_rows = 0").unwrap_err();
        assert!(zero.to_string().contains("at least 1"), "{zero}");
    }
}
