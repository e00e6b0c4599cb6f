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
    /// How RoPE frequencies are stretched for contexts past the trained length.
    pub rope_scaling: RopeScaling,
}

/// RoPE frequency scaling (Hugging Face's `rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RopeScaling {
    /// The frequencies as `rope_theta` gives them.
    #[default]
    None,
    /// Positions divided by `factor` (every frequency divided by it).
    Linear {
        /// The stretch.
        factor: f64,
    },
    /// Llama 3.1's: low frequencies divided by `factor`, high ones kept, the band
    /// between blended.
    Llama3 {
        /// The stretch of the low frequencies.
        factor: f64,
        /// Wavelengths past `original_max_positions / low_freq_factor` are stretched.
        low_freq_factor: f64,
        /// Wavelengths under `original_max_positions / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_positions: usize,
    },
}

impl RopeScaling {
    /// The inverse frequencies `base` gives, scaled.
    pub fn apply(self, base: &[f64]) -> Vec<f64> {
        match self {
            Self::None => base.to_vec(),
            Self::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            Self::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => {
                let original = original_max_positions as f64;
                let low_freq_wavelength = original / low_freq_factor;
                let high_freq_wavelength = original / high_freq_factor;
                base.iter()
                    .map(|&frequency| {
                        let wavelength = 2.0 * std::f64::consts::PI / frequency;
                        if wavelength < high_freq_wavelength {
                            frequency
                        } else if wavelength > low_freq_wavelength {
                            frequency / factor
                        } else {
                            let smooth = (original / wavelength - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * frequency / factor + smooth * frequency
                        }
                    })
                    .collect()
            }
        }
    }

    /// Hugging Face's `rope_scaling` object, none when unscaled.
    fn to_json(self) -> Option<serde_json::Value> {
        match self {
            Self::None => None,
            Self::Linear { factor } => Some(serde_json::json!({
                "rope_type": "linear",
                "factor": factor,
            })),
            Self::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => Some(serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_positions,
            })),
        }
    }
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
            rope_scaling: gguf_rope_scaling(meta, &key)?,
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
            rope_theta: hf
                .rope_parameters
                .as_ref()
                .and_then(|p| p.rope_theta)
                .or(hf.rope_theta)
                .unwrap_or_else(default_theta),
            max_positions: hf.max_position_embeddings,
            tie_embeddings: hf.tie_word_embeddings,
            rope_scaling: hf_rope_scaling(path, hf.rope_parameters.or(hf.rope_scaling))?,
        };
        config.checked(path)
    }

    /// The Hugging Face `config.json` of this shape (what [`Self::from_config_json`]
    /// reads back to an equal config, and transformers loads): every field the
    /// architecture needs, the special token ids `special` names and the weights'
    /// `dtype` (`float32`, `bfloat16`).
    pub fn to_config_json(&self, special: &SpecialTokenIds, dtype: &str) -> String {
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
            "hidden_act": "silu",
            "attention_bias": self.architecture.qkv_bias(),
            "attention_dropout": 0.0,
            "mlp_bias": false,
            "use_cache": true,
            "dtype": dtype,
        });
        let serde_json::Value::Object(mut fields) = json else {
            unreachable!("json! of an object literal is an object")
        };
        if let Some(scaling) = self.rope_scaling.to_json() {
            fields.insert("rope_scaling".into(), scaling);
        }
        for (key, id) in [
            ("bos_token_id", special.bos),
            ("eos_token_id", special.eos),
            ("pad_token_id", special.pad),
        ] {
            if let Some(id) = id {
                fields.insert(key.into(), id.into());
            }
        }
        serde_json::to_string_pretty(&fields).expect("a JSON value serialises")
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
    rope_theta: Option<f64>,
    /// transformers 4's form of RoPE scaling.
    rope_scaling: Option<HfRope>,
    /// transformers 5's: `rope_theta` and the scaling in one object.
    rope_parameters: Option<HfRope>,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
}

/// A `rope_scaling` or `rope_parameters` object.
#[derive(Deserialize)]
struct HfRope {
    /// `rope_type`, or `type` in older files.
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
}

/// The special token ids a `config.json` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialTokenIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
}

fn hf_rope_scaling(path: &Path, rope: Option<HfRope>) -> Result<RopeScaling> {
    let Some(rope) = rope else {
        return Ok(RopeScaling::None);
    };
    let kind = rope.rope_type.as_deref().unwrap_or("default");
    let needed = |value: Option<f64>, key: &str| {
        value.ok_or_else(|| Error::Model {
            path: path.to_path_buf(),
            problem: format!("its `{kind}` RoPE scaling has no `{key}`"),
        })
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: needed(rope.factor, "factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: needed(rope.factor, "factor")?,
            low_freq_factor: needed(rope.low_freq_factor, "low_freq_factor")?,
            high_freq_factor: needed(rope.high_freq_factor, "high_freq_factor")?,
            original_max_positions: needed(
                rope.original_max_position_embeddings.map(|n| n as f64),
                "original_max_position_embeddings",
            )? as usize,
        }),
        other => Err(unsupported_scaling(path, other)),
    }
}

fn gguf_rope_scaling(meta: &Metadata<'_>, key: &dyn Fn(&str) -> String) -> Result<RopeScaling> {
    let kind = meta
        .string(&key("rope.scaling.type"))
        .unwrap_or_else(|_| "none".into());
    match kind.as_str() {
        "none" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: meta.f64_or(&key("rope.scaling.factor"), 1.0)?,
        }),
        other => Err(unsupported_scaling(meta.path, other)),
    }
}

fn unsupported_scaling(path: &Path, kind: &str) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        what: format!("`{kind}` RoPE scaling"),
        hint: "; supported: none, linear, llama3".into(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A Llama `config.json` with `extra` fields, read back.
    fn read(extra: &str) -> Result<ModelConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let json = format!(
            r#"{{"architectures": ["LlamaForCausalLM"], "vocab_size": 32, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": 64 {extra}}}"#
        );
        std::fs::write(&path, json).unwrap();
        ModelConfig::from_config_json(&path)
    }

    /// Regression: transformers 5 writes `rope_theta` inside `rope_parameters`; it was
    /// ignored and such a model ran with RoPE base 10,000.
    #[test]
    fn rope_theta_is_read_from_transformers_5s_rope_parameters() {
        let config =
            read(r#", "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}"#)
                .unwrap();
        assert_eq!(config.rope_theta, 100_000.0);
        assert_eq!(config.rope_scaling, RopeScaling::None);
        assert_eq!(
            read(r#", "rope_theta": 5e5"#).unwrap().rope_theta,
            500_000.0
        );
        assert_eq!(read("").unwrap().rope_theta, 10_000.0);
    }

    /// Llama 3.1's scaling, against transformers 5.23's `_compute_llama3_parameters`
    /// for Llama-3.1-8B's settings: high frequencies kept, low ones divided by the
    /// factor, the band between blended.
    #[test]
    fn llama3_rope_scaling_gives_transformers_frequencies() {
        let config = read(
            r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#,
        )
        .unwrap();
        let base: Vec<f64> = (0..64)
            .map(|i| f64::from(1.0 / 500_000f64.powf(2.0 * i as f64 / 128.0) as f32))
            .collect();
        let scaled = config.rope_scaling.apply(&base);
        let transformers = [
            (10, 0.12868738174438477),
            (30, 0.0013718936825171113),
            (32, 0.0005248460220173001),
            (34, 0.0001785077911335975),
            (50, 4.411534519022098e-06),
        ];
        for (i, expected) in transformers {
            let relative = (scaled[i] - expected).abs() / expected;
            assert!(
                relative < 1e-6,
                "frequency {i}: {} vs {expected}",
                scaled[i]
            );
        }
    }

    #[test]
    fn rope_scaling_survives_a_round_trip_and_unknown_kinds_are_refused() {
        let config = read(r#", "rope_scaling": {"type": "linear", "factor": 2.0}"#).unwrap();
        assert_eq!(config.rope_scaling, RopeScaling::Linear { factor: 2.0 });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let special = SpecialTokenIds {
            bos: Some(1),
            eos: Some(2),
            pad: None,
        };
        std::fs::write(&path, config.to_config_json(&special, "float32")).unwrap();
        assert_eq!(ModelConfig::from_config_json(&path).unwrap(), config);

        let yarn = read(r#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#);
        let message = yarn.unwrap_err().to_string();
        assert!(message.contains("`yarn` RoPE scaling"), "{message}");
        let incomplete = read(r#", "rope_scaling": {"rope_type": "linear"}"#);
        assert!(incomplete.unwrap_err().to_string().contains("no `factor`"));
    }
}
