//! rlpt's engine: the file IO that the pipeline's stages, the trainer's checkpoints
//! and exports, and the model's writers share, so each kind of write is done one way.
//! It owns atomic replacement of files and directories ([`atomic`]): a reader or a
//! rerun after a crash sees the old file or the whole new one, fsynced, never part of
//! one; and files' checksums ([`checksum`]: shards, checkpoint files, a model's
//! identity). Errors name the file ([`FileError`]).

pub mod atomic;
pub mod checksum;

use std::io;
use std::path::PathBuf;

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
pub type Result<T> = std::result::Result<T, FileError>;

/// Attaches a path to IO results: `fs::read(p).at(p)?`.
pub(crate) trait At<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| FileError {
            path: path.into(),
            source,
        })
    }
}
