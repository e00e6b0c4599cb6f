//! # rlpt-lm
//!
//! The one language model rlpt uses, for tagging (entropy) and training.
//!
//! - [`Tokenizer`]: loads a Hugging Face `tokenizer.json` (optionally gzipped) or builds
//!   a byte-level BPE tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, with
//!   llama.cpp's pre-tokenizer for the vocabulary's `tokenizer.ggml.pre`. Byte-level
//!   BPE behind GPT-2's pre-tokenizer (SmolLM2's) encodes through a fast exact
//!   encoder with a per-thread pre-token cache; other tokenizers through `tokenizers`.
//!
//! ```no_run
//! use rlpt_lm::Tokenizer;
//!
//! let tokenizer = Tokenizer::from_file("data-samples/tokenizers/smollm2-135m.json.gz".as_ref())?;
//! let ids = tokenizer.encode("Algebra is a branch of mathematics.")?;
//! assert_eq!(tokenizer.decode(&ids)?, "Algebra is a branch of mathematics.");
//! # Ok::<(), rlpt_lm::Error>(())
//! ```

#![deny(missing_docs)]

mod byte_level_bpe;
mod error;
pub mod tokenizer;

pub use error::{Error, Result};
pub use tokenizer::Tokenizer;
