//! Near-duplicate detection: exact duplicates (same normalised text) and near
//! duplicates (MinHash LSH over shingles), decided by stable ids.
//!
//! The pure parts of the four dedup steps:
//! - [`Sketcher`]: a document's text → [`Sketch`] (exact hash, LSH band hashes from a
//!   MinHash signature, bottom-k sketch for verification) — the `signatures` step;
//! - [`cluster::BucketPairs`]: a band's sorted (band hash, key) stream → candidate
//!   pairs — the `buckets` step;
//! - [`cluster::Clustering`]: verified pairs → clusters, keeping the smallest id of
//!   each — the `clusters` step.
//!
//! Documents are named by a `key`, `unit << 32 | row`, while the steps run; decisions
//! (which copy is kept) depend only on ids and similarities, never on keys.

pub mod bottom_k;
pub mod cluster;
pub mod lsh;
pub mod minhash;
pub mod normalize;
pub mod shingles;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use lsh::{
    Banding, UNVERIFIED_FALSE_NEGATIVE_WEIGHT, VERIFIED_FALSE_NEGATIVE_WEIGHT, optimal_banding,
};
use minhash::MinHasher;
use normalize::{Normalized, normalize_into};
use shingles::{ShingleKind, shingle_hashes};

/// Dedup's settings (algorithm only; the pipeline owns where data lives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct DedupConfig {
    /// Jaccard similarity of shingle sets at or above which documents are duplicates.
    #[arg(long, default_value_t = 0.8)]
    pub threshold: f64,
    /// Words per shingle.
    #[arg(long, default_value_t = 5)]
    pub ngram: usize,
    /// Characters per shingle, for text mostly in a script written without spaces.
    #[arg(long, default_value_t = 5)]
    pub char_ngram: usize,
    /// MinHash permutations (signature length).
    #[arg(long, default_value_t = 112)]
    pub num_perm: usize,
    /// LSH bands [default: chosen from the threshold, 14 at 0.8].
    #[arg(long)]
    pub bands: Option<usize>,
    /// Registers per band [default: chosen from the threshold, 8 at 0.8].
    #[arg(long)]
    pub rows: Option<usize>,
    /// Shingle hashes kept per document to verify candidates: the exact Jaccard
    /// similarity for documents with at most this many distinct shingles, a bottom-k
    /// estimate beyond.
    #[arg(long, default_value_t = 256)]
    pub sketch_size: usize,
    /// Keep every LSH candidate pair instead of checking its similarity against the
    /// threshold.
    #[arg(long)]
    pub no_verify: bool,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            threshold: 0.8,
            ngram: 5,
            char_ngram: 5,
            num_perm: 112,
            bands: None,
            rows: None,
            sketch_size: 256,
            no_verify: false,
        }
    }
}

impl DedupConfig {
    /// Checks the settings and resolves the banding.
    pub fn banding(&self) -> Result<Banding, String> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(format!("--threshold {} must be in (0, 1]", self.threshold));
        }
        if self.ngram == 0 || self.char_ngram == 0 {
            return Err("--ngram and --char-ngram must be at least 1".into());
        }
        if self.num_perm == 0 || self.num_perm > 4096 {
            return Err(format!("--num-perm {} must be in 1..=4096", self.num_perm));
        }
        if self.sketch_size == 0 {
            return Err("--sketch-size must be at least 1".into());
        }
        let weight = if self.no_verify {
            UNVERIFIED_FALSE_NEGATIVE_WEIGHT
        } else {
            VERIFIED_FALSE_NEGATIVE_WEIGHT
        };
        let banding = match (self.bands, self.rows) {
            (Some(bands), Some(rows)) => Banding { bands, rows },
            (Some(bands), None) => Banding {
                bands,
                rows: self.num_perm / bands.max(1),
            },
            (None, Some(rows)) => Banding {
                bands: self.num_perm / rows.max(1),
                rows,
            },
            (None, None) => optimal_banding(self.threshold, self.num_perm, weight),
        };
        if banding.bands == 0 || banding.rows == 0 || banding.bands * banding.rows > self.num_perm {
            return Err(format!(
                "{} bands × {} rows needs {} registers, but --num-perm is {}",
                banding.bands,
                banding.rows,
                banding.bands * banding.rows,
                self.num_perm
            ));
        }
        Ok(banding)
    }
}

/// What the later steps need to know of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    /// Hash of the normalised text; `None` when it is empty (never a duplicate).
    pub exact: Option<u64>,
    /// One hash per LSH band; empty when the document has no shingles.
    pub bands: Vec<u64>,
    /// The bottom-k sketch used to verify candidates.
    pub sketch: Vec<u32>,
    /// How the document was shingled.
    pub kind: ShingleKind,
}

const EXACT_SEED: u64 = 0x726c_7074_6578_6163; // "rlptexac"

/// Computes sketches with one config.
#[derive(Debug, Clone)]
pub struct Sketcher {
    config: DedupConfig,
    banding: Banding,
    hasher: MinHasher,
}

impl Sketcher {
    /// A sketcher for `config` (checked).
    pub fn new(config: &DedupConfig) -> Result<Self, String> {
        Ok(Self {
            banding: config.banding()?,
            hasher: MinHasher::new(config.num_perm),
            config: config.clone(),
        })
    }

    /// The banding in use.
    pub fn banding(&self) -> Banding {
        self.banding
    }

    /// The sketch of one document.
    pub fn sketch(&self, text: &str) -> Sketch {
        let mut normalized = Normalized::default();
        normalize_into(text, &mut normalized);
        let mut shingles = Vec::new();
        let kind = shingle_hashes(
            &normalized,
            self.config.ngram,
            self.config.char_ngram,
            &mut shingles,
        );
        let mut signature = vec![0; self.hasher.len()];
        self.hasher.signature_into(&shingles, &mut signature);
        let bands = if shingles.is_empty() {
            Vec::new()
        } else {
            (0..self.banding.bands)
                .map(|band| minhash::band_hash(&signature, band, self.banding.rows))
                .collect()
        };
        Sketch {
            exact: (!normalized.text.is_empty())
                .then(|| xxh3_64_with_seed(normalized.text.as_bytes(), EXACT_SEED)),
            bands,
            sketch: bottom_k::bottom_k(&shingles, self.config.sketch_size),
            kind,
        }
    }

    /// Sketches of many documents, in parallel, in input order.
    pub fn sketch_batch(&self, texts: &[&str]) -> Vec<Sketch> {
        texts.par_iter().map(|text| self.sketch(text)).collect()
    }
}

/// What the signatures step counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SketchCounters {
    /// Documents sketched.
    pub documents: u64,
    /// Of those, shingled by characters.
    pub char_shingled: u64,
    /// Of those, empty after normalisation (never duplicates).
    pub empty_after_normalization: u64,
}

impl SketchCounters {
    /// Counts a batch of sketches.
    pub fn count(sketches: &[Sketch]) -> Self {
        Self {
            documents: sketches.len() as u64,
            char_shingled: sketches
                .iter()
                .filter(|s| s.kind == ShingleKind::Chars)
                .count() as u64,
            empty_after_normalization: sketches.iter().filter(|s| s.exact.is_none()).count() as u64,
        }
    }
}

impl std::ops::AddAssign for SketchCounters {
    fn add_assign(&mut self, other: Self) {
        self.documents += other.documents;
        self.char_shingled += other.char_shingled;
        self.empty_after_normalization += other.empty_after_normalization;
    }
}

/// Seed of [`id_hash`].
const ID_SEED: u64 = 0x726c_7074_6964_6964; // "rlptidid"

/// The hash documents sharing an id meet on in a bucket (ids are meant to be unique;
/// two documents with one id are clustered, and the first in input order is kept).
pub fn id_hash(id: &str) -> u64 {
    xxh3_64_with_seed(id.as_bytes(), ID_SEED)
}

/// A document's key while dedup runs: its work unit and row.
pub fn doc_key(unit: usize, row: usize) -> u64 {
    ((unit as u64) << 32) | row as u64
}

/// The unit and row of a key.
pub fn unit_and_row(key: u64) -> (usize, usize) {
    ((key >> 32) as usize, (key & 0xFFFF_FFFF) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banding_comes_from_flags_or_the_threshold() {
        let config = DedupConfig::default();
        assert_eq!(config.banding().unwrap(), Banding { bands: 14, rows: 8 });
        let fixed = DedupConfig {
            bands: Some(20),
            rows: Some(5),
            num_perm: 100,
            ..config.clone()
        };
        assert_eq!(fixed.banding().unwrap(), Banding { bands: 20, rows: 5 });
        let half = DedupConfig {
            bands: Some(7),
            ..config.clone()
        };
        assert_eq!(half.banding().unwrap(), Banding { bands: 7, rows: 16 });
        let too_many = DedupConfig {
            bands: Some(20),
            rows: Some(8),
            ..config.clone()
        };
        assert!(
            too_many
                .banding()
                .unwrap_err()
                .contains("needs 160 registers")
        );
        let bad = DedupConfig {
            threshold: 1.5,
            ..config
        };
        assert!(bad.banding().is_err());
    }

    #[test]
    fn exact_duplicates_after_normalisation_share_every_hash() {
        let sketcher = Sketcher::new(&DedupConfig::default()).unwrap();
        let a = sketcher.sketch("The quick brown fox jumps over the lazy dog, in 1999.");
        let b = sketcher.sketch("the QUICK brown fox — jumps over the lazy dog in 2024");
        assert_eq!(a, b);
        assert_eq!(a.bands.len(), 14);
        let empty = sketcher.sketch("?!…");
        assert_eq!((empty.exact, empty.bands.len()), (None, 0));
    }

    #[test]
    fn keys_pack_unit_and_row() {
        assert_eq!(unit_and_row(doc_key(7, 123_456)), (7, 123_456));
        assert!(doc_key(1, 0) > doc_key(0, u32::MAX as usize));
    }
}
