//! # rlpt-engine
//!
//! The machinery every stage gets for free, and the file IO that the stages, the
//! trainer's checkpoints and exports, and the model's writers share, so each kind of
//! read and write is done one way.
//!
//! - [`atomic`]: atomic replacement of files and directories — a reader or a rerun
//!   after a crash sees the old file or the whole new one, fsynced, never part of one.
//! - [`checksum`]: files' xxh3 checksums (shards, checkpoint files, a model's identity).
//! - [`inputs`]: `--input` (file, directory, glob) → sorted files → [`inputs::WorkUnit`]s.
//! - [`shard_writer`] / [`shard_reader`]: zstd Parquet shards written atomically and
//!   rotated by size ([`layout`]); streaming, schema-checked reads of a table.
//! - [`table_units`]: a table's shards as work units (by size, or by a cost per row),
//!   and its fingerprint.
//! - [`manifest`]: `DIR/_manifest/` — which stage and config wrote a directory, and a
//!   record per finished unit (the resume state).
//! - [`executor`]: the one face of a per-shard stage ([`executor::ShardJob`]) and
//!   [`executor::run_stage`], which takes this rank's work units, resumes, writes
//!   through a [`executor::UnitSink`] and records each unit in the manifest, under a
//!   [`lock`] on the output directory, with [`progress`] and a [`summary`].
//! - [`external_sort`]: sorting more (u64, u64) pairs than fit in memory.
//!
//! Modules depend one way: `inputs` ← `shard_reader` ← `table_units` ← `executor`;
//! `shard_writer` ← `manifest` ← `shard_reader`.
//!
//! Errors name the file ([`Error`]; [`FileError`] for the plain file operations of
//! [`atomic`] and [`checksum`], which the model crate uses too).

#![deny(missing_docs)]

pub mod atomic;
pub mod checksum;
mod error;
pub mod executor;
pub mod external_sort;
pub mod inputs;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod progress;
pub mod shard_reader;
pub mod shard_writer;
pub mod summary;
pub mod table_units;

use std::io;
use std::path::PathBuf;

pub use error::{Error, IoContext, Result};

/// A file operation that failed, with the file or directory it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

/// Result with a [`FileError`].
pub type FileResult<T> = std::result::Result<T, FileError>;

/// Attaches a path to IO results as a [`FileError`].
pub(crate) trait At<T> {
    fn at_file(self, path: impl Into<PathBuf>) -> FileResult<T>;
}

impl<T> At<T> for io::Result<T> {
    fn at_file(self, path: impl Into<PathBuf>) -> FileResult<T> {
        self.map_err(|source| FileError {
            path: path.into(),
            source,
        })
    }
}
