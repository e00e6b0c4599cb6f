//! # rlpt-stages
//!
//! The stages' transforms, pure: each takes rows and its config and returns rows and
//! counters. No stage opens a file; `rlpt-pipeline` owns every byte of IO, so resume,
//! sharding, atomic writes and progress live in one place and every stage gets them.
//!
//! - [`dedup`]: exact and MinHash-LSH near-duplicate detection — normalisation,
//!   shingles, signatures, candidate pairs, verified clusters keeping the smallest id.
//! - [`filter`]: language identification and quality rules (Gopher, C4, FineWeb,
//!   a URL block list): keep, or drop with the rule that failed.
//! - [`pii`]: personal information and secrets replaced by typed placeholders, with
//!   counts per kind.
//! - [`decontam`]: benchmark text removed from documents by word 13-gram matching
//!   (the GPT-3 recipe), with every hit reported.
//! - [`segment`]: sentences (UAX #29 corrected by rules), segments, and (context,
//!   segment, next segment) triples with exact token budgets.
//! - [`entropy`]: the model-free part of proxy-entropy tagging — settings, which
//!   tokens are the segment's, per-segment summary and difficulty label.
//! - [`ingest`]: raw records (JSONL lines, text files or paragraphs, columnar rows) →
//!   `documents` rows with stable ids and NFC text, or rejects with a reason
//!   ([`ingest::ingest_batch`]).
//!
//! A stage's config struct derives both `clap::Args` and serde, so the same settings
//! are flags on the command line and keys in `pipeline.toml`. Batch functions keep the
//! input order whatever the thread count, so output bytes never depend on it.

#![deny(missing_docs)]

pub mod decontam;
pub mod dedup;
pub mod entropy;
pub mod filter;
pub mod hashing;
pub mod ingest;
pub mod pii;
pub mod segment;
