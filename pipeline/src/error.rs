//! The pipeline's errors: the engine's (tables, inputs, outputs, locks; each names
//! its file) and those of the commands around it. Every variant that concerns a file
//! names it; the binary turns them into a message and an exit code in one place
//! (`main.rs`).

use std::path::PathBuf;

/// Result with the pipeline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a pipeline command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, planning or writing a stage's tables failed (names the file).
    #[error(transparent)]
    Engine(#[from] rlpt_engine::Error),
    /// A tokenizer or model could not be loaded or used.
    #[error(transparent)]
    Lm(#[from] rlpt_lm::Error),
    /// Training, evaluation or a checkpoint failed.
    #[error(transparent)]
    Trainer(Box<rlpt_trainer::Error>),
    /// A flag is invalid.
    #[error("{0}")]
    Usage(String),
    /// A Slurm command failed.
    #[error("{0}")]
    Slurm(String),
    /// A pipeline config file is invalid.
    #[error("{}: {problem}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Whoever read stdout closed it (`rlpt … | head -1`): the command stops quietly.
    #[error("stdout was closed")]
    StdoutClosed,
    /// polars failed while inspecting a table.
    #[error("{}: {source}", path.display())]
    Polars {
        /// The table directory.
        path: PathBuf,
        /// What polars said.
        source: polars::error::PolarsError,
    },
}

impl From<rlpt_engine::FileError> for Error {
    fn from(error: rlpt_engine::FileError) -> Self {
        Self::Engine(error.into())
    }
}

impl From<rlpt_trainer::Error> for Error {
    fn from(error: rlpt_trainer::Error) -> Self {
        Self::Trainer(Box::new(error))
    }
}
