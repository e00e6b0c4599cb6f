//! Errors of the trainer; each names the file (and row, or key) it concerns.

use std::path::PathBuf;

/// Result with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Training, evaluation or checkpointing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model or tokenizer failed.
    #[error(transparent)]
    Lm(Box<rlpt_lm::Error>),
    /// A tensor computation failed.
    #[error("{context}: {source}")]
    Compute {
        /// What was being computed.
        context: String,
        /// What candle said.
        source: candle_core::Error,
    },
    /// A triples shard cannot be read (the engine's reader names the file, and the row
    /// and column where one is at fault).
    #[error(transparent)]
    Table(#[from] rlpt_engine::Error),
    /// A triples shard cannot be used.
    #[error("{}{}: {problem}", path.display(), row.map(|r| format!(", row {r}")).unwrap_or_default())]
    Data {
        /// The shard.
        path: PathBuf,
        /// The row within it, when one row is at fault.
        row: Option<u64>,
        /// What is wrong.
        problem: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// A checkpoint is corrupt or does not match this run.
    #[error("{}: {problem}", path.display())]
    Checkpoint {
        /// The checkpoint file or directory at fault.
        path: PathBuf,
        /// Why it is refused, and what to do.
        problem: String,
    },
    /// The judge of `prefix-semantic` rewards cannot be used.
    #[error("judge {endpoint}: {problem}")]
    Judge {
        /// The endpoint or model.
        endpoint: String,
        /// What went wrong.
        problem: String,
    },
}

impl From<rlpt_engine::FileError> for Error {
    fn from(error: rlpt_engine::FileError) -> Self {
        Self::Io {
            path: error.path,
            source: error.source,
        }
    }
}

impl From<rlpt_lm::Error> for Error {
    fn from(error: rlpt_lm::Error) -> Self {
        Self::Lm(Box::new(error))
    }
}

/// A [`Error::Compute`] for `context`.
pub(crate) fn compute(context: &str) -> impl FnOnce(candle_core::Error) -> Error + '_ {
    move |source| Error::Compute {
        context: context.to_string(),
        source,
    }
}

/// A [`Error::Io`] for `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
