//! # rlpt-trainer
//!
//! Reinforcement learning on pre-training text, as in RPT (next-token reasoning) and
//! RLPT (next-segment reasoning): `triples` shards streamed into GRPO.
//!
//! - [`config`]: the TOML config ([`TrainConfig`]) and its hash.
//! - [`data`]: seeded, bounded-memory streaming of triples with a resumable [`Cursor`].
//! - [`tasks`]: next-token, asr and msr prompts; the chat template.
//! - [`rewards`]: answer extraction and the prefix-token / strict rewards;
//!   [`judge`]: the prefix-semantic judge (local model or OpenAI-compatible endpoint).
//! - [`grpo`]: advantages, the clipped surrogate, k3 KL, over-length penalty;
//!   [`optim`]: AdamW with savable state, clipping, the lr schedule.
//! - [`policy`]: the model being trained; [`run`]: what GRPO and SFT runs share;
//!   [`checkpoint`]: atomic, verified checkpoints.
//! - [`train`] (GRPO), [`sft()`] (next-token cold start), [`evaluate`];
//!   [`export`]: checkpoints as Hugging Face model directories, tasks as verl / TRL
//!   datasets; [`tensorboard`]: metrics as TensorBoard event files.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod export;
pub mod grpo;
mod grpo_run;
pub mod judge;
pub mod optim;
pub mod policy;
pub mod rewards;
pub mod run;
mod sft;
pub mod tasks;
pub mod tensorboard;

pub use config::TrainConfig;
pub use data::{Cursor, Split, Triple, TripleStream};
pub use error::{Error, Result};
pub use eval::{EvalOptions, EvalReport, evaluate};
pub use grpo_run::{Group, Scorer, StepMetrics, TaskSpec, Update, train, update};
pub use run::Summary;
pub use sft::sft;
