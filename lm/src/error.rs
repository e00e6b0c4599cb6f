//! Errors of the language-model crate; each names the file it concerns.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Loading or using a tokenizer or model failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A GGUF file could not be parsed.
    #[error("{}: not a readable GGUF file: {source}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What candle said.
        source: candle_core::Error,
    },
    /// A GGUF metadata key is absent or has the wrong type.
    #[error("{}: GGUF metadata `{key}` {problem}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The file asks for something this build does not support.
    #[error("{}: {what} is not supported{hint}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The unsupported thing.
        what: String,
        /// What is supported instead, prefixed with "; ".
        hint: String,
    },
    /// The tokenizers crate refused a tokenizer or a text.
    #[error("{context}: {source}")]
    Tokenizer {
        /// What was being done (and to which file).
        context: String,
        /// What tokenizers said.
        source: tokenizers::Error,
    },
    /// A model file or config is inconsistent or incomplete.
    #[error("{}: {problem}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A tensor computation failed.
    #[error("{context}: {source}")]
    Compute {
        /// What was being computed.
        context: String,
        /// What candle said.
        source: candle_core::Error,
    },
    /// A device that cannot be used.
    #[error("--device {spec}: {hint}")]
    Device {
        /// What was asked for.
        spec: String,
        /// Why it cannot be used, and what can.
        hint: String,
    },
    /// Generation cannot go on.
    #[error("generation: {0}")]
    Generation(String),
}

impl From<rlpt_engine::FileError> for Error {
    fn from(error: rlpt_engine::FileError) -> Self {
        Self::Io {
            path: error.path,
            source: error.source,
        }
    }
}
