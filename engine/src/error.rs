//! The engine's errors: every variant that concerns a file names it, so a user can
//! find the file (and row, where there is one) from the message alone.

use std::io;
use std::path::PathBuf;

use rlpt_schemas::SchemaError;

use crate::FileError;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop reading, planning or writing a stage's tables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A Parquet file could not be read or written.
    #[error("{}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What parquet-rs said.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation on a file's data failed.
    #[error("{}: {source}", path.display())]
    Arrow {
        /// The file.
        path: PathBuf,
        /// What arrow-rs said.
        source: arrow_schema::ArrowError,
    },
    /// A file is not the table it should be, or a row breaks the table's invariants.
    #[error("{}: {source}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The schema problem (names the column, and the row where there is one).
        source: SchemaError,
    },
    /// A table stage was given a file that is not Parquet at all.
    #[error(
        "{}: not a Parquet file (it looks like {looks_like}); stages after ingest read \
         tables rlpt wrote: `rlpt ingest` turns raw files into one",
        path.display()
    )]
    NotParquet {
        /// The file.
        path: PathBuf,
        /// What it looks like.
        looks_like: &'static str,
    },
    /// A Parquet file lacks a column a step needs.
    #[error("{}: no column `{column}` (it has {})", path.display(), found.join(", "))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The columns it has.
        found: Vec<String>,
    },
    /// A JSON file rlpt wrote (manifest) or reads (config) is malformed.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// `--input` names nothing usable.
    #[error("--input {spec}: {problem}")]
    Input {
        /// The `--input` value.
        spec: String,
        /// What is wrong.
        problem: String,
    },
    /// The output directory cannot be used as asked (other content, other config,
    /// other stage); the message says what to do.
    #[error("--output {}: {problem}", dir.display())]
    OutputDir {
        /// The output directory.
        dir: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// Another process holds the lock of the directory being written.
    #[error("{}: {problem}", lock.display())]
    Busy {
        /// The lock file.
        lock: PathBuf,
        /// Who holds it and what to do.
        problem: String,
    },
    /// A stage's input directory was left incomplete by the stage that writes it.
    #[error("{}: {problem}", dir.display())]
    IncompleteInput {
        /// The input directory.
        dir: PathBuf,
        /// Which units are missing and what to do.
        problem: String,
    },
    /// `--strict` turned a rejected record into an error.
    #[error("{file}, line {line}: {reason}: {detail} (rejected under --strict)")]
    StrictReject {
        /// The input file.
        file: String,
        /// 1-based line or row.
        line: u64,
        /// Reason code.
        reason: String,
        /// What was found.
        detail: String,
    },
    /// `--rank` and `--world-size` do not name a share of the work.
    #[error("--rank {rank} --world-size {world_size}: the rank must be in 0..world-size")]
    Sharding {
        /// The rank asked for.
        rank: usize,
        /// The world size asked for.
        world_size: usize,
    },
}

impl From<FileError> for Error {
    fn from(error: FileError) -> Self {
        Self::Io {
            path: error.path,
            source: error.source,
        }
    }
}

/// Attaches a path to IO results: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    /// Wraps the error with the path it concerns.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
