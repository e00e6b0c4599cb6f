//! The stages' jobs: each is the IO side of one stage, an
//! [`rlpt_engine::executor::ShardJob`] that reads a work unit's input, calls the pure
//! transform in `rlpt-stages` (or the model in `rlpt-lm`) and writes through the
//! engine's sink; resume, sharding, locks, shards and manifests are the engine's.
//!
//! - [`ingest`]: `rlpt ingest` (JSONL, text, Parquet; .gz/.zst).
//! - [`filter`], [`pii`], [`decontam`], [`segment`]: `rlpt filter`, `rlpt pii`,
//!   `rlpt decontam` and `rlpt segment` ([`document_edit`]: the in-place edit of
//!   `documents` rows filter, pii and decontam share).
//! - [`entropy`]: `rlpt entropy`, running rlpt-lm's decoder over triples.
//! - [`dedup`]: `rlpt dedup`'s four steps (signatures, buckets, clusters, filter).
//! - [`table_stage`]: a table stage's settings → its job, one way for the command line
//!   and for `rlpt run`.

pub mod decontam;
pub mod dedup;
pub mod document_edit;
pub mod entropy;
pub mod filter;
pub mod ingest;
pub mod pii;
pub mod segment;
pub mod table_stage;
