//! # rlpt-pipeline
//!
//! Everything around the stages: the `rlpt` command line, all file IO, and the
//! machinery every stage gets for free.
//!
//! - [`executor`]: the one face of a per-shard stage ([`executor::ShardJob`]) and
//!   [`executor::run_stage`], which takes this rank's work units, resumes, writes
//!   through a [`executor::UnitSink`] and records each unit in the [`manifest`].
//! - [`inputs`]: `--input` (file, directory, glob) → sorted files → [`inputs::WorkUnit`]s.
//! - [`shard_writer`] / [`shard_reader`]: zstd Parquet shards written atomically
//!   (`.tmp`, fsync, rename) and rotated by size; streaming, schema-checked reads.
//! - [`manifest`]: `DIR/_manifest/` — which stage and config wrote a directory, and a
//!   record per finished unit (the resume state).
//! - [`ingest_job`]: the IO side of `rlpt ingest` (JSONL, text, Parquet; .gz/.zst).
//! - [`filter_job`], [`pii_job`], [`decontam_job`], [`segment_job`]: the IO sides of
//!   `rlpt filter`, `rlpt pii`, `rlpt decontam` and `rlpt segment` ([`document_edit`]:
//!   the in-place edit of `documents` rows filter and pii share); [`entropy_job`]: `rlpt entropy`, running
//!   rlpt-lm's decoder over triples.
//! - [`dedup`]: `rlpt dedup`'s four steps (signatures, buckets, clusters, filter),
//!   with [`external_sort`] for bands larger than memory.
//! - [`inspect`]: `rlpt inspect`, with polars.
//! - [`slurm`]: `rlpt slurm submit|status|cancel`, a config as chained sbatch arrays.
//! - [`train_command`]: `rlpt train`, `rlpt sft` and `rlpt eval` over rlpt-trainer.
//! - [`cli`], [`config`], [`plan`], [`commands`]: flags, `pipeline.toml`, its stages as
//!   steps with resolved inputs and outputs, and running them.
//!
//! A new stage is a pure transform in `rlpt-stages`, a `ShardJob` here that reads its
//! input and calls it, a [`cli::Command`] arm and a [`config::StageEntry`] arm.

#![deny(missing_docs)]

pub use rlpt_engine::{atomic, checksum};
pub mod cli;
pub mod commands;
pub mod config;
pub mod decontam_job;
pub mod dedup;
pub mod document_edit;
pub mod entropy_job;
mod error;
pub mod executor;
pub mod external_sort;
pub mod filter_job;
pub mod ingest_job;
pub mod inputs;
pub mod inspect;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod pii_job;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod segment_job;
pub mod shard_reader;
pub mod shard_writer;
pub mod slurm;
pub mod stage_job;
pub mod stdout;
pub mod summary;
pub mod train_command;

pub use error::{Error, IoContext, Result};
