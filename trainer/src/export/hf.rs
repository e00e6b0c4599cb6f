//! `rlpt export hf`: a training checkpoint, or any model rlpt loads (GGUF, safetensors),
//! written as a Hugging Face model directory that transformers' `from_pretrained`, vLLM
//! and lm-eval-harness read: `model.safetensors` in the chosen dtype, `config.json`,
//! `generation_config.json`, `tokenizer.json` and `tokenizer_config.json` with the chat
//! template.

use std::path::PathBuf;

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::policy::{Policy, Precision, open_model};
use crate::tasks::ChatTemplateSetting;

/// What to export and how.
#[derive(Debug, Clone)]
pub struct HfExport {
    /// A checkpoint (`step-N/`, or a training output directory: its latest) or a model.
    pub source: PathBuf,
    /// The directory to write.
    pub output: PathBuf,
    /// The weights' dtype: f32 (as trained) or bf16.
    pub dtype: DType,
    /// Replace `output` when it exists.
    pub force: bool,
}

/// Writes `export.source` into `export.output`; returns the directory written.
pub fn write(export: &HfExport) -> Result<PathBuf> {
    if !matches!(export.dtype, DType::F32 | DType::BF16) {
        return Err(Error::Config(format!(
            "cannot export {:?} weights: f32 or bf16",
            export.dtype
        )));
    }
    let staging = super::staging_dir(&export.output, export.force)?;
    let (weights, tokenizer) = open_model(&export.source, None)?;
    let policy = Policy::load(
        &weights,
        tokenizer,
        &Device::Cpu,
        ChatTemplateSetting::Auto,
        Precision::F32,
    )?;
    policy.save(&staging, export.dtype)?;
    rlpt_engine::atomic::publish_dir(&staging, &export.output)?;
    Ok(export.output.clone())
}
