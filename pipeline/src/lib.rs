//! # rlpt-pipeline
//!
//! The `rlpt` binary: the command line, `pipeline.toml`, the stages' jobs and the
//! commands around them. The machinery every stage gets for free (inputs and work
//! units, shard reader/writer, manifests and resume, the executor, locks, progress,
//! summaries) is `rlpt-engine`'s.
//!
//! - [`jobs`]: each stage's IO side, a `ShardJob` that reads a unit and calls the pure
//!   transform in `rlpt-stages` (ingest, filter, pii, decontam, segment, entropy, the
//!   four dedup steps), and [`jobs::table_stage`], settings → job.
//! - [`inspect`]: `rlpt inspect`, with polars.
//! - [`slurm`]: `rlpt slurm submit|status|cancel`, a config as chained sbatch arrays.
//! - [`train_command`]: `rlpt train`, `rlpt sft`, `rlpt eval` and the exports over
//!   rlpt-trainer; [`plot`]: `rlpt plot` of a run's metrics.
//! - [`cli`], [`config`], [`plan`], [`commands`]: flags, `pipeline.toml`, its stages as
//!   steps with resolved inputs and outputs, and running them.
//!
//! A new table stage is a pure transform in `rlpt-stages`, a job in [`jobs`] that reads
//! its input and calls it (with its `TableStage` impl), and one line in
//! [`jobs::table_stage`]'s list, from which its subcommand and its `[[stage]]` entry
//! come.

#![deny(missing_docs)]

mod allocator;
pub mod cli;
pub mod commands;
pub mod config;
mod error;
pub mod inspect;
pub mod jobs;
pub mod logging;
pub mod plan;
pub mod plot;
pub mod slurm;
pub mod stdout;
pub mod train_command;

pub use error::{Error, Result};
