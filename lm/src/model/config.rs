//! The shape of a decoder: read from a GGUF file's `{architecture}.*` metadata or from
//! a Hugging Face `config.json`, into one struct the model is built from.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// The decoder families rlpt runs: one block, switched by these differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama, SmolLM2, Mistral-style: no biases, no Q/K norm.
    Llama,
    /// Qwen2 / Qwen2.5: biases on the Q, K and V projections.
    Qwen2,
    /// Qwen3: RMS norm on each head of Q and K, no biases.
    Qwen3,
}

impl Architecture {
    /// Whether Q, K and V projections have biases.
    pub fn qkv_bias(self) -> bool {
        self == Self::Qwen2
    }

    /// Whether each head of Q and K is RMS-normalised before RoPE.
    pub fn qk_norm(self) -> bool {
        self == Self::Qwen3
    }
}

/// Sizes and constants of a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The family.
    pub architecture: Architecture,
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Epsilon of every RMS norm.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Longest sequence the model was trained for.
    pub max_positions: usize,
    /// Whether the output projection is the token embedding.
    pub tie_embeddings: bool,
}

impl ModelConfig {
    /// From GGUF metadata (`general.architecture` and its keys). `tied` is whether
    /// the file has no `output.weight`.
    pub(crate) fn from_gguf(meta: &Metadata<'_>, tied: bool) -> Result<Self> {
        let arch_name = meta.string("general.architecture")?;
        let architecture = architecture(meta.path, &arch_name)?;
        let key = |name: &str| format!("{arch_name}.{name}");
        let hidden_size = meta.usize(&key("embedding_length"))?;
        let num_heads = meta.usize(&key("attention.head_count"))?;
        let head_dim = match meta.usize(&key("attention.key_length")) {
            Ok(length) => length,
            Err(_) => hidden_size / num_heads.max(1),
        };
        let vocab_size = match meta.usize(&key("vocab_size")) {
            Ok(size) => size,
            Err(_) => meta.strings("tokenizer.ggml.tokens")?.len(),
        };
        let config = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: meta.usize(&key("feed_forward_length"))?,
            num_layers: meta.usize(&key("block_count"))?,
            num_heads,
            num_kv_heads: meta
                .usize(&key("attention.head_count_kv"))
                .unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: meta.f64_or(&key("attention.layer_norm_rms_epsilon"), 1e-6)?,
            rope_theta: meta.f64_or(&key("rope.freq_base"), 10_000.0)?,
            max_positions: meta.usize(&key("context_length"))?,
            tie_embeddings: tied,
        };
        config.checked(meta.path)
    }

    /// From a Hugging Face `config.json`.
    pub fn from_config_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let hf: HfConfig = serde_json::from_str(&text).map_err(|err| Error::Model {
            path: path.to_path_buf(),
            problem: format!("not a readable config.json: {err}"),
        })?;
        let name = hf.architectures.first().map_or("", String::as_str);
        let architecture = architecture(
            path,
            match name {
                "LlamaForCausalLM" | "MistralForCausalLM" => "llama",
                "Qwen2ForCausalLM" => "qwen2",
                "Qwen3ForCausalLM" => "qwen3",
                other => other,
            },
        )?;
        let config = Self {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim: hf
                .head_dim
                .unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta: hf.rope_theta,
            max_positions: hf.max_position_embeddings,
            tie_embeddings: hf.tie_word_embeddings,
        };
        config.checked(path)
    }

    /// The Hugging Face `config.json` of this shape (what [`Self::from_config_json`]
    /// reads back to an equal config).
    pub fn to_config_json(&self) -> String {
        let (architecture, model_type) = match self.architecture {
            Architecture::Llama => ("LlamaForCausalLM", "llama"),
            Architecture::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
            Architecture::Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
        };
        let json = serde_json::json!({
            "architectures": [architecture],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": self.tie_embeddings,
        });
        serde_json::to_string_pretty(&json).expect("a JSON value serialises")
    }

    /// `self`, or an error naming `path` when the sizes do not fit together.
    fn checked(self, path: &Path) -> Result<Self> {
        let problem = if self.num_heads == 0 || self.num_kv_heads == 0 {
            Some("has no attention heads".to_string())
        } else if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            Some(format!(
                "has {} query heads, not a multiple of its {} key/value heads",
                self.num_heads, self.num_kv_heads
            ))
        } else if !self.head_dim.is_multiple_of(2) {
            Some(format!("has an odd head width {}", self.head_dim))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::Model {
                path: path.to_path_buf(),
                problem,
            }),
            None => Ok(self),
        }
    }
}

fn architecture(path: &Path, name: &str) -> Result<Architecture> {
    match name {
        "llama" => Ok(Architecture::Llama),
        "qwen2" => Ok(Architecture::Qwen2),
        "qwen3" => Ok(Architecture::Qwen3),
        other => Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!("the architecture `{other}`"),
            hint: "; supported: llama (SmolLM2, Llama, Mistral), qwen2, qwen3".into(),
        }),
    }
}

/// The keys of a Hugging Face `config.json` rlpt reads.
#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_theta() -> f64 {
    10_000.0
}

fn default_positions() -> usize {
    2048
}
