//! A decoder's tensors, loaded from GGUF (kept quantized, or dequantized to f32/bf16)
//! or from Hugging Face safetensors, under one naming and one RoPE convention.
//!
//! llama.cpp's converter permutes the rows of a Llama model's Q and K projections so
//! that RoPE rotates adjacent pairs (interleaved, GPT-J style). Hugging Face
//! checkpoints rotate the two halves of each head instead. GGUF Q/K rows are put back in
//! Hugging Face order when loaded — on the raw quantized blocks, since quantization
//! runs along rows — so one RoPE (halves) serves both formats. Qwen GGUF files are not
//! permuted by the converter and are loaded as they are.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Module, Tensor};

use super::config::{Architecture, ModelConfig};
use super::ops::Mode;
use super::projection;
use crate::error::{Error, Result};

/// How a model's matrices are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// GGUF matrices stay in their quantized blocks (fast inference, no gradients);
    /// activations are f32.
    Quantized,
    /// Every weight dequantized or converted to f32.
    F32,
    /// Every weight converted to bf16 (norms compute in f32).
    Bf16,
}

impl WeightFormat {
    /// The dtype activations and dense weights use.
    pub fn dtype(self) -> DType {
        match self {
            Self::Quantized | Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }
}

/// A projection `x → x·Wᵀ`: quantized blocks or a dense `[out, in]` matrix.
pub(crate) enum Linear {
    Quantized(QMatMul),
    Dense(Tensor),
}

impl Linear {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Quantized(matmul) => matmul.forward(x),
            Self::Dense(weight) => dense_forward(x, weight),
        }
    }
}

/// Each of `linears` applied to the same `x`. In inference, where all are dense and
/// take the thin product (a decoding step), their products run as one set of tasks
/// ([`projection::thin_products`], the same bits); otherwise one by one.
pub(crate) fn forward_each<const N: usize>(
    linears: [&Linear; N],
    x: &Tensor,
    mode: Mode,
) -> candle_core::Result<[Tensor; N]> {
    let dense: Option<Vec<&Tensor>> = linears
        .iter()
        .map(|linear| match linear {
            Linear::Dense(weight) => Some(weight),
            Linear::Quantized(_) => None,
        })
        .collect();
    if let (Mode::Inference, Some(weights)) = (mode, dense)
        && let Some(products) = projection::thin_products(x, &weights)?
        && let Ok(products) = <[Tensor; N]>::try_from(products)
    {
        return Ok(products);
    }
    let products = linears
        .iter()
        .map(|linear| linear.forward(x))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(<[Tensor; N]>::try_from(products).expect("one product per projection"))
}

/// `x·Wᵀ` as one matrix product over every leading position: a batch of short
/// sequences is one `[batch × len, in]` product, not `batch` thin ones. On the CPU
/// it is [`projection`]'s op (the thin product for a decoding step's few rows, a weight
/// gradient already in the weight's layout); elsewhere candle's matmul.
fn dense_forward(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    if projection::applies(x, weight) {
        return projection::forward(x, weight);
    }
    let (rows, inner, out_dims) = projection::product_dims(x.dims(), weight.dim(0)?)?;
    x.reshape((rows, inner))?
        .matmul(&weight.t()?)?
        .reshape(out_dims)
}

/// The token embedding: quantized rows looked up by id, or a dense matrix.
pub(crate) enum Embedding {
    Quantized(Arc<QTensor>),
    Dense(Tensor),
}

impl Embedding {
    pub(crate) fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Quantized(table) => table.embedding(ids),
            Self::Dense(table) => {
                let flat = ids.flatten_all()?;
                let rows = table.index_select(&flat, 0)?;
                let mut dims = ids.dims().to_vec();
                dims.push(table.dim(1)?);
                rows.reshape(dims)
            }
        }
    }
}

/// One decoder block's weights.
pub(crate) struct LayerWeights {
    pub(crate) attn_norm: Tensor,
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    /// Q, K, V biases (Qwen2).
    pub(crate) qkv_bias: Option<[Tensor; 3]>,
    /// Per-head RMS norm weights of Q and K (Qwen3).
    pub(crate) qk_norm: Option<[Tensor; 2]>,
    pub(crate) ffn_norm: Tensor,
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// All of a decoder's weights.
pub(crate) struct Weights {
    pub(crate) embedding: Embedding,
    pub(crate) layers: Vec<LayerWeights>,
    pub(crate) norm: Tensor,
    pub(crate) output: Linear,
}

impl Weights {
    /// Every dense tensor under its Hugging Face name (a tied output projection is the
    /// embedding, not listed twice); an error naming the first quantized one.
    pub(crate) fn dense_mut(&mut self, tied: bool) -> Result<Vec<(String, &mut Tensor)>, String> {
        let Weights {
            embedding,
            layers,
            norm,
            output,
        } = self;
        let mut named = Vec::new();
        match embedding {
            Embedding::Dense(table) => named.push((Part::Embedding.hf_name(0), table)),
            Embedding::Quantized(_) => return Err(Part::Embedding.hf_name(0)),
        }
        named.push((Part::Norm.hf_name(0), norm));
        if !tied {
            named.push((Part::Output.hf_name(0), dense(output, Part::Output, 0)?));
        }
        for (index, layer) in layers.iter_mut().enumerate() {
            let LayerWeights {
                attn_norm,
                q,
                k,
                v,
                o,
                qkv_bias,
                qk_norm,
                ffn_norm,
                gate,
                up,
                down,
            } = layer;
            named.push((Part::AttnNorm.hf_name(index), attn_norm));
            for (part, linear) in [(Part::Q, q), (Part::K, k), (Part::V, v), (Part::O, o)] {
                named.push((part.hf_name(index), dense(linear, part, index)?));
            }
            if let Some(biases) = qkv_bias {
                let parts = [Part::QBias, Part::KBias, Part::VBias];
                named.extend(
                    parts
                        .iter()
                        .map(|p| p.hf_name(index))
                        .zip(biases.iter_mut()),
                );
            }
            if let Some(norms) = qk_norm {
                let parts = [Part::QNorm, Part::KNorm];
                named.extend(parts.iter().map(|p| p.hf_name(index)).zip(norms.iter_mut()));
            }
            named.push((Part::FfnNorm.hf_name(index), ffn_norm));
            for (part, linear) in [(Part::Gate, gate), (Part::Up, up), (Part::Down, down)] {
                named.push((part.hf_name(index), dense(linear, part, index)?));
            }
        }
        Ok(named)
    }

    /// Points a tied output projection at the embedding table again (after the table
    /// was replaced).
    pub(crate) fn retie(&mut self) {
        if let Embedding::Dense(table) = &self.embedding {
            self.output = Linear::Dense(table.clone());
        }
    }
}

fn dense(linear: &mut Linear, part: Part, layer: usize) -> Result<&mut Tensor, String> {
    match linear {
        Linear::Dense(matrix) => Ok(matrix),
        Linear::Quantized(_) => Err(part.hf_name(layer)),
    }
}

/// A tensor's role, named differently by each format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Embedding,
    Norm,
    Output,
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    QNorm,
    KNorm,
    FfnNorm,
    Gate,
    Up,
    Down,
}

impl Part {
    fn gguf_name(self, layer: usize) -> String {
        let block = |name: &str| format!("blk.{layer}.{name}");
        match self {
            Self::Embedding => "token_embd.weight".into(),
            Self::Norm => "output_norm.weight".into(),
            Self::Output => "output.weight".into(),
            Self::AttnNorm => block("attn_norm.weight"),
            Self::Q => block("attn_q.weight"),
            Self::K => block("attn_k.weight"),
            Self::V => block("attn_v.weight"),
            Self::O => block("attn_output.weight"),
            Self::QBias => block("attn_q.bias"),
            Self::KBias => block("attn_k.bias"),
            Self::VBias => block("attn_v.bias"),
            Self::QNorm => block("attn_q_norm.weight"),
            Self::KNorm => block("attn_k_norm.weight"),
            Self::FfnNorm => block("ffn_norm.weight"),
            Self::Gate => block("ffn_gate.weight"),
            Self::Up => block("ffn_up.weight"),
            Self::Down => block("ffn_down.weight"),
        }
    }

    fn hf_name(self, layer: usize) -> String {
        let block = |name: &str| format!("model.layers.{layer}.{name}");
        match self {
            Self::Embedding => "model.embed_tokens.weight".into(),
            Self::Norm => "model.norm.weight".into(),
            Self::Output => "lm_head.weight".into(),
            Self::AttnNorm => block("input_layernorm.weight"),
            Self::Q => block("self_attn.q_proj.weight"),
            Self::K => block("self_attn.k_proj.weight"),
            Self::V => block("self_attn.v_proj.weight"),
            Self::O => block("self_attn.o_proj.weight"),
            Self::QBias => block("self_attn.q_proj.bias"),
            Self::KBias => block("self_attn.k_proj.bias"),
            Self::VBias => block("self_attn.v_proj.bias"),
            Self::QNorm => block("self_attn.q_norm.weight"),
            Self::KNorm => block("self_attn.k_norm.weight"),
            Self::FfnNorm => block("post_attention_layernorm.weight"),
            Self::Gate => block("mlp.gate_proj.weight"),
            Self::Up => block("mlp.up_proj.weight"),
            Self::Down => block("mlp.down_proj.weight"),
        }
    }

    /// Whether the part is a matrix multiplied by activations (quantizable).
    fn is_matrix(self) -> bool {
        matches!(
            self,
            Self::Embedding
                | Self::Output
                | Self::Q
                | Self::K
                | Self::V
                | Self::O
                | Self::Gate
                | Self::Up
                | Self::Down
        )
    }
}

/// Every tensor of a Hugging Face checkpoint of `config`: name, shape, and whether it
/// is a norm weight (initialised to ones).
pub(crate) fn hf_tensors(config: &ModelConfig) -> Vec<(String, Vec<usize>, bool)> {
    let arch = config.architecture;
    let (hidden, ffn, head) = (
        config.hidden_size,
        config.intermediate_size,
        config.head_dim,
    );
    let (q_rows, kv_rows) = (config.num_heads * head, config.num_kv_heads * head);
    let mut parts = vec![
        (Part::AttnNorm, vec![hidden]),
        (Part::Q, vec![q_rows, hidden]),
        (Part::K, vec![kv_rows, hidden]),
        (Part::V, vec![kv_rows, hidden]),
        (Part::O, vec![hidden, q_rows]),
        (Part::FfnNorm, vec![hidden]),
        (Part::Gate, vec![ffn, hidden]),
        (Part::Up, vec![ffn, hidden]),
        (Part::Down, vec![hidden, ffn]),
    ];
    if arch.qkv_bias() {
        parts.extend([
            (Part::QBias, vec![q_rows]),
            (Part::KBias, vec![kv_rows]),
            (Part::VBias, vec![kv_rows]),
        ]);
    }
    if arch.qk_norm() {
        parts.extend([(Part::QNorm, vec![head]), (Part::KNorm, vec![head])]);
    }
    let norm = |part: Part| {
        matches!(
            part,
            Part::AttnNorm | Part::FfnNorm | Part::QNorm | Part::KNorm | Part::Norm
        )
    };
    let mut tensors = vec![
        (
            Part::Embedding.hf_name(0),
            vec![config.vocab_size, hidden],
            false,
        ),
        (Part::Norm.hf_name(0), vec![hidden], true),
    ];
    if !config.tie_embeddings {
        tensors.push((
            Part::Output.hf_name(0),
            vec![config.vocab_size, hidden],
            false,
        ));
    }
    for layer in 0..config.num_layers {
        for (part, shape) in &parts {
            tensors.push((part.hf_name(layer), shape.clone(), norm(*part)));
        }
    }
    tensors
}

/// Where tensors come from.
pub(crate) enum Source {
    Gguf {
        path: PathBuf,
        content: Content,
        file: File,
    },
    Safetensors {
        path: PathBuf,
        tensors: MmapedSafetensors,
    },
}

/// A loaded tensor: quantized blocks, or dense.
enum Loaded {
    Quantized(QTensor),
    Dense(Tensor),
}

/// Loads every weight of `config` from `source`.
pub(crate) struct Loader<'a> {
    pub(crate) source: Source,
    pub(crate) config: &'a ModelConfig,
    pub(crate) format: WeightFormat,
    pub(crate) device: &'a Device,
}

impl Loader<'_> {
    pub(crate) fn load(mut self) -> Result<Weights> {
        let layers = (0..self.config.num_layers)
            .map(|layer| self.layer(layer))
            .collect::<Result<Vec<_>>>()?;
        let embedding = match self.tensor(Part::Embedding, 0)? {
            Loaded::Quantized(table) => Embedding::Quantized(Arc::new(table)),
            Loaded::Dense(table) => Embedding::Dense(table),
        };
        let output = if self.config.tie_embeddings {
            match &embedding {
                Embedding::Quantized(table) => {
                    Linear::Quantized(QMatMul::from_arc(table.clone()).map_err(|e| self.err(e))?)
                }
                Embedding::Dense(table) => Linear::Dense(table.clone()),
            }
        } else {
            self.linear(Part::Output, 0)?
        };
        Ok(Weights {
            embedding,
            layers,
            norm: self.vector(Part::Norm, 0)?,
            output,
        })
    }

    fn layer(&mut self, layer: usize) -> Result<LayerWeights> {
        let arch = self.config.architecture;
        let qkv_bias = if arch.qkv_bias() {
            Some([
                self.vector(Part::QBias, layer)?,
                self.vector(Part::KBias, layer)?,
                self.vector(Part::VBias, layer)?,
            ])
        } else {
            None
        };
        let qk_norm = if arch.qk_norm() {
            Some([
                self.vector(Part::QNorm, layer)?,
                self.vector(Part::KNorm, layer)?,
            ])
        } else {
            None
        };
        Ok(LayerWeights {
            attn_norm: self.vector(Part::AttnNorm, layer)?,
            q: self.linear(Part::Q, layer)?,
            k: self.linear(Part::K, layer)?,
            v: self.linear(Part::V, layer)?,
            o: self.linear(Part::O, layer)?,
            qkv_bias,
            qk_norm,
            ffn_norm: self.vector(Part::FfnNorm, layer)?,
            gate: self.linear(Part::Gate, layer)?,
            up: self.linear(Part::Up, layer)?,
            down: self.linear(Part::Down, layer)?,
        })
    }

    fn linear(&mut self, part: Part, layer: usize) -> Result<Linear> {
        match self.tensor(part, layer)? {
            Loaded::Quantized(matrix) => Ok(Linear::Quantized(
                QMatMul::from_qtensor(matrix).map_err(|e| self.err(e))?,
            )),
            Loaded::Dense(matrix) => Ok(Linear::Dense(matrix)),
        }
    }

    /// A norm weight or bias, in the activations' dtype.
    fn vector(&mut self, part: Part, layer: usize) -> Result<Tensor> {
        match self.tensor(part, layer)? {
            Loaded::Dense(vector) => Ok(vector),
            Loaded::Quantized(vector) => vector
                .dequantize(self.device)
                .and_then(|t| t.to_dtype(self.format.dtype()))
                .map_err(|e| self.err(e)),
        }
    }

    fn tensor(&mut self, part: Part, layer: usize) -> Result<Loaded> {
        let heads = match part {
            Part::Q if self.permuted() => Some(self.config.num_heads),
            Part::K if self.permuted() => Some(self.config.num_kv_heads),
            _ => None,
        };
        let head_dim = self.config.head_dim;
        let device = self.device;
        let dtype = self.format.dtype();
        let keep_quantized = self.format == WeightFormat::Quantized && part.is_matrix();
        match &mut self.source {
            Source::Gguf {
                path,
                content,
                file,
            } => {
                let name = part.gguf_name(layer);
                let compute = |e| compute_error(path, &name, e);
                let tensor = content.tensor(file, &name, device).map_err(|e| {
                    if content.tensor_infos.contains_key(&name) {
                        compute(e)
                    } else {
                        missing(path, &name)
                    }
                })?;
                let tensor = match heads {
                    Some(heads) => unpermute_quantized(tensor, heads, head_dim).map_err(compute)?,
                    None => tensor,
                };
                let quantized = !matches!(tensor.dtype(), GgmlDType::F32 | GgmlDType::F16);
                if keep_quantized && quantized {
                    return Ok(Loaded::Quantized(tensor));
                }
                let dense = tensor
                    .dequantize(device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(compute)?;
                Ok(Loaded::Dense(dense))
            }
            Source::Safetensors { path, tensors } => {
                let name = part.hf_name(layer);
                if tensors.get(&name).is_err() {
                    return Err(missing(path, &name));
                }
                let dense = tensors
                    .load(&name, device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(|e| compute_error(path, &name, e))?;
                Ok(Loaded::Dense(dense))
            }
        }
    }

    /// Whether Q/K rows are in llama.cpp's interleaved order.
    fn permuted(&self) -> bool {
        matches!(self.source, Source::Gguf { .. })
            && self.config.architecture == Architecture::Llama
    }

    fn err(&self, source: candle_core::Error) -> Error {
        let path = match &self.source {
            Source::Gguf { path, .. } | Source::Safetensors { path, .. } => path,
        };
        compute_error(path, "weights", source)
    }
}

fn missing(path: &Path, name: &str) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        problem: format!("has no tensor `{name}`"),
    }
}

fn compute_error(path: &Path, name: &str, source: candle_core::Error) -> Error {
    Error::Compute {
        context: format!("{}: tensor `{name}`", path.display()),
        source,
    }
}

/// For each Hugging Face row of a `[heads · head_dim, …]` projection, the GGUF row it
/// is stored at: within a head, HF row `s · head_dim/2 + j` is GGUF row `2j + s`.
pub(crate) fn gguf_row_of_hf_row(heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    (0..heads)
        .flat_map(|head| {
            (0..2).flat_map(move |s| (0..half).map(move |j| head * head_dim + 2 * j + s))
        })
        .collect()
}

/// `tensor` with its rows in Hugging Face order, moving whole rows of quantized
/// blocks (or of plain floats).
fn unpermute_quantized(
    tensor: QTensor,
    heads: usize,
    head_dim: usize,
) -> candle_core::Result<QTensor> {
    let shape = tensor.shape().clone();
    let (rows, columns) = shape.dims2()?;
    if rows != heads * head_dim {
        candle_core::bail!("{rows} rows, expected {heads} heads × {head_dim}");
    }
    let dtype = tensor.dtype();
    let row_bytes = columns / dtype.block_size() * dtype.type_size();
    let data = tensor.data()?;
    let mut reordered = Vec::with_capacity(data.len());
    for row in gguf_row_of_hf_row(heads, head_dim) {
        reordered.extend_from_slice(&data[row * row_bytes..(row + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(Cow::Owned(reordered), &tensor.device(), dtype)?;
    QTensor::new(storage, shape)
}
