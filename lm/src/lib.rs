//! # rlpt-lm
//!
//! The one language model rlpt uses, for tagging (entropy) and training.
//!
//! - [`Tokenizer`]: loads a Hugging Face `tokenizer.json` (optionally gzipped) or builds
//!   a byte-level BPE tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, with
//!   llama.cpp's pre-tokenizer for the vocabulary's `tokenizer.ggml.pre`. Byte-level
//!   BPE behind GPT-2's pre-tokenizer (SmolLM2's) encodes through a fast exact
//!   encoder with a per-thread pre-token cache; other tokenizers through `tokenizers`.
//! - [`Model`]: a Llama-family decoder (SmolLM2/Llama, Qwen2, Qwen3) from GGUF (kept
//!   quantized, or dequantized to f32/bf16) or safetensors + config.json, with a
//!   forward pass in fused-kernel ([`Mode::Inference`]) or differentiable form
//!   ([`Mode::Differentiable`]), left-padded batches, a [`KvCache`], and chunked
//!   log-probability and top-k entropy heads.
//! - [`generate()`]: batched sampling (temperature, top-k, top-p, seeded per sequence)
//!   with stop strings and token limits; finished sequences leave the batch.
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
pub mod generate;
mod gguf;
pub mod model;
pub mod tokenizer;

pub use error::{Error, Result};
pub use generate::{Finish, Generation, SamplingConfig, generate};
pub use model::{
    KvCache, Mode, Model, ModelConfig, PromptedBatch, RopeScaling, SpecialTokenIds, WeightFormat,
    checksum, device, init_checkpoint, save_safetensors,
};
pub use tokenizer::Tokenizer;
