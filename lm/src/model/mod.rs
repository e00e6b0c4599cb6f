//! The decoder: Llama-family blocks (SmolLM2, Llama, Qwen2, Qwen3; one block switched
//! by the config) loaded from GGUF or safetensors, on CPU or CUDA.
//!
//! A forward pass takes a left-padded batch of token ids and a [`KvCache`] (which also
//! records each sequence's left padding, so positions and the attention mask are per
//! sequence), and returns the final hidden states. Logits come from
//! [`Model::logits`]; per-target log-probabilities from [`Model::target_log_probs`],
//! computed in row chunks so `[rows, vocab]` is never held whole.

mod attention;
mod checkpointed;
mod config;
mod exp;
mod fused;
mod fused_attention;
mod ops;
mod projection;
mod saving;
mod split_gemm;
mod weights;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, IndexOp, Tensor, Var};

pub use checkpointed::PromptedBatch;
pub use config::{Architecture, ModelConfig, RopeScaling, SpecialTokenIds};
pub use ops::Mode;
pub use saving::save_safetensors;
pub use weights::WeightFormat;
use weights::{LayerWeights, Loader, Source, Weights};

use attention::{
    SCORE_CHUNK_BYTES, causal_mask, chunked_attention, grouped_attention, query_chunk_rows,
};

use crate::error::{Error, Result};
use crate::gguf::Metadata;
use crate::tokenizer::Tokenizer;

/// Rows of logits computed at once by the chunked heads.
pub const LOGIT_CHUNK_ROWS: usize = 256;

/// A loaded decoder.
pub struct Model {
    config: ModelConfig,
    weights: Weights,
    format: WeightFormat,
    device: Device,
    /// RoPE cos/sin for every position, `[max_positions, head_dim / 2]`, f32.
    cos: Tensor,
    sin: Tensor,
    name: String,
    checksum: String,
}

/// Per-token RoPE tables and the attention mask of one forward pass.
struct Frame {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    /// Positions already in the cache.
    past: usize,
    /// Positions a fresh inference cache buffer is allocated with.
    reserve: usize,
}

/// Attention keys and values of the tokens seen so far, per layer, for a batch.
///
/// An inference pass writes its keys and values in place into buffers of the
/// cache's capacity (reserved up front with [`KvCache::with_capacity`], else grown by
/// doubling), so a token's step copies only its own keys, not the whole cache; a
/// differentiable pass keeps them as part of its graph.
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// Leading padding tokens of each sequence.
    left_pad: Vec<usize>,
    /// Tokens (padding included) each sequence holds.
    len: usize,
    /// Positions an inference buffer is first allocated with.
    reserve: usize,
}

/// One layer's keys and values, each `[batch, kv_heads, positions, head_dim]`.
#[derive(Clone)]
enum LayerCache {
    /// Inference: buffers whose first `KvCache::len` positions are filled.
    Buffer { k: Tensor, v: Tensor },
    /// Differentiable: exactly the positions seen, in the graph.
    Graph { k: Tensor, v: Tensor },
}

impl LayerCache {
    fn tensors(&self) -> (&Tensor, &Tensor) {
        match self {
            Self::Buffer { k, v } | Self::Graph { k, v } => (k, v),
        }
    }

    fn tensors_mut(&mut self) -> (&mut Tensor, &mut Tensor) {
        match self {
            Self::Buffer { k, v } | Self::Graph { k, v } => (k, v),
        }
    }
}

impl KvCache {
    /// An empty cache for a batch whose sequences start with `left_pad` padding tokens.
    pub fn new(model: &Model, left_pad: Vec<usize>) -> Self {
        Self::with_capacity(model, left_pad, 0)
    }

    /// An empty cache whose inference buffers hold `positions` tokens (padding
    /// included) before they must grow.
    pub fn with_capacity(model: &Model, left_pad: Vec<usize>, positions: usize) -> Self {
        Self {
            layers: vec![None; model.config.num_layers],
            left_pad,
            len: 0,
            reserve: positions.min(model.config.max_positions),
        }
    }

    /// Tokens held per sequence, padding included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been run yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sequences in the batch.
    pub fn rows(&self) -> usize {
        self.left_pad.len()
    }

    /// Keeps only the sequences at `rows` (in that order), e.g. when others finish.
    pub fn retain(&mut self, rows: &[usize]) -> Result<()> {
        let device = self
            .layers
            .iter()
            .flatten()
            .next()
            .map(|layer| layer.tensors().0.device().clone());
        if let Some(device) = device {
            let index = Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &device)
                .map_err(|e| compute("selecting cached sequences", e))?;
            for layer in self.layers.iter_mut().flatten() {
                let (k, v) = layer.tensors_mut();
                *k = k
                    .index_select(&index, 0)
                    .map_err(|e| compute("selecting cached sequences", e))?;
                *v = v
                    .index_select(&index, 0)
                    .map_err(|e| compute("selecting cached sequences", e))?;
            }
        }
        self.left_pad = rows.iter().map(|&r| self.left_pad[r]).collect();
        Ok(())
    }
}

/// Appends `k`, `v` (`[batch, kv_heads, seq, head_dim]`, after `past` positions) to a
/// layer's cache and returns all its keys and values so far. Inference writes into
/// the layer's buffers (allocating `reserve` positions, or doubling, when they are
/// too small); a differentiable pass concatenates, keeping the graph.
fn append_to_layer(
    slot: &mut Option<LayerCache>,
    k: Tensor,
    v: Tensor,
    past: usize,
    reserve: usize,
    mode: Mode,
) -> candle_core::Result<(Tensor, Tensor)> {
    let total = past + k.dim(2)?;
    if mode == Mode::Differentiable {
        let (k, v) = match slot.take() {
            Some(LayerCache::Graph { k: pk, v: pv } | LayerCache::Buffer { k: pk, v: pv }) => (
                Tensor::cat(&[&pk.narrow(2, 0, past)?, &k], 2)?,
                Tensor::cat(&[&pv.narrow(2, 0, past)?, &v], 2)?,
            ),
            None => (k, v),
        };
        *slot = Some(LayerCache::Graph {
            k: k.clone(),
            v: v.clone(),
        });
        return Ok((k, v));
    }
    let fits = matches!(slot, Some(LayerCache::Buffer { k, .. }) if k.dim(2)? >= total);
    if !fits {
        let (batch, heads, _, dim) = k.dims4()?;
        let capacity = total.max(reserve).max(2 * past);
        let grown_k = Tensor::zeros((batch, heads, capacity, dim), k.dtype(), k.device())?;
        let grown_v = grown_k.zeros_like()?;
        if let Some(old) = slot.as_mut() {
            let (old_k, old_v) = old.tensors_mut();
            grown_k.slice_set(&old_k.narrow(2, 0, past)?.detach().contiguous()?, 2, 0)?;
            grown_v.slice_set(&old_v.narrow(2, 0, past)?.detach().contiguous()?, 2, 0)?;
        }
        *slot = Some(LayerCache::Buffer {
            k: grown_k,
            v: grown_v,
        });
    }
    let Some(LayerCache::Buffer {
        k: buffer_k,
        v: buffer_v,
    }) = slot
    else {
        candle_core::bail!("an inference cache slot without buffers");
    };
    buffer_k.slice_set(&k.detach().contiguous()?, 2, past)?;
    buffer_v.slice_set(&v.detach().contiguous()?, 2, past)?;
    Ok((buffer_k.narrow(2, 0, total)?, buffer_v.narrow(2, 0, total)?))
}

impl Model {
    /// Loads a model: a `.gguf` file, or a safetensors checkpoint (a `.safetensors`
    /// file or a directory of them) with its `config.json` beside it.
    pub fn load(path: &Path, format: WeightFormat, device: &Device) -> Result<Self> {
        let is_gguf = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            Self::from_gguf(path, format, device)
        } else {
            Self::from_safetensors(path, format, device)
        }
    }

    fn from_gguf(path: &Path, format: WeightFormat, device: &Device) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        // Buffered: the header is read a field at a time (SmolLM2's vocabulary alone took
        // ~250k read calls unbuffered). The tensors are read later from `file` by offset.
        let content = Content::read(&mut std::io::BufReader::new(&mut file)).map_err(|source| {
            Error::Gguf {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let meta = Metadata {
            path,
            content: &content,
        };
        let tied = !content.tensor_infos.contains_key("output.weight");
        let config = ModelConfig::from_gguf(&meta, tied)?;
        let name = meta
            .string("general.name")
            .unwrap_or_else(|_| file_name(path));
        let source = Source::Gguf {
            path: path.to_path_buf(),
            content,
            file,
        };
        Self::build(config, source, format, device, name, checksum(&[path])?)
    }

    fn from_safetensors(path: &Path, format: WeightFormat, device: &Device) -> Result<Self> {
        if format == WeightFormat::Quantized {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "keeping safetensors weights quantized".into(),
                hint: "; load them as f32 or bf16, or give a GGUF file".into(),
            });
        }
        let (dir, files) = safetensors_files(path)?;
        let config = ModelConfig::from_config_json(&dir.join("config.json"))?;
        // SAFETY: the files are mapped read-only for the model's lifetime; rlpt never
        // writes them, and a checkpoint is not expected to change under a reader.
        let tensors =
            unsafe { MmapedSafetensors::multi(&files) }.map_err(|source| Error::Compute {
                context: format!("{}: reading safetensors", path.display()),
                source,
            })?;
        let source = Source::Safetensors {
            path: path.to_path_buf(),
            tensors,
        };
        let name = file_name(&dir);
        let mut checked = files.clone();
        checked.push(dir.join("config.json"));
        Self::build(config, source, format, device, name, checksum(&checked)?)
    }

    fn build(
        config: ModelConfig,
        source: Source,
        format: WeightFormat,
        device: &Device,
        name: String,
        checksum: String,
    ) -> Result<Self> {
        let weights = Loader {
            source,
            config: &config,
            format,
            device,
        }
        .load()?;
        let (cos, sin) = rope_tables(&config, device).map_err(|e| compute("RoPE tables", e))?;
        Ok(Self {
            config,
            weights,
            format,
            device: device.clone(),
            cos,
            sin,
            name,
            checksum,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How its weights are held.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Its name (GGUF `general.name`, else the file or directory name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// xxh3-64 of its files, in hex.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// Turns every weight into a trainable [`Var`] (gradients flow to it; updating it
    /// updates the model) and returns them under their Hugging Face names, the order
    /// a checkpoint stores them in. Needs dense (f32 or bf16) weights; each Var keeps
    /// its weight's dtype.
    pub fn trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let not_trainable = |what: String| Error::Unsupported {
            path: PathBuf::from(&self.name),
            what,
            hint: "; load the model with f32 or bf16 weights to train it".into(),
        };
        if self.format == WeightFormat::Quantized {
            return Err(not_trainable(format!("training {:?} weights", self.format)));
        }
        let tied = self.config.tie_embeddings;
        let slots = self
            .weights
            .dense_mut(tied)
            .map_err(|name| not_trainable(format!("training the quantized tensor `{name}`")))?;
        let mut vars = Vec::with_capacity(slots.len());
        for (name, slot) in slots {
            let var = Var::from_tensor(slot).map_err(|e| compute("making weights trainable", e))?;
            *slot = var.as_tensor().clone();
            vars.push((name, var));
        }
        if tied {
            self.weights.retie();
        }
        Ok(vars)
    }

    /// Writes a Hugging Face model directory into `dir`, one [`Model::load`] and
    /// transformers' `from_pretrained` read back: `model.safetensors` (the given
    /// tensors, e.g. from [`Self::trainable`], in `dtype`), `config.json` and
    /// `generation_config.json` (naming `special`), and `tokenizer`'s `tokenizer.json`
    /// and `tokenizer_config.json` (its chat template, else `chat_template`).
    pub fn save(
        &self,
        tensors: &[(String, Var)],
        tokenizer: &Tokenizer,
        special: &SpecialTokenIds,
        chat_template: Option<&str>,
        dtype: DType,
        dir: &Path,
    ) -> Result<()> {
        let dtype_name = match dtype {
            DType::F32 => "float32",
            DType::BF16 => "bfloat16",
            DType::F16 => "float16",
            other => {
                return Err(Error::Unsupported {
                    path: dir.to_path_buf(),
                    what: format!("saving weights as {other:?}"),
                    hint: "; f32, bf16 and f16 are".into(),
                });
            }
        };
        let generation = serde_json::json!({
            "bos_token_id": special.bos,
            "eos_token_id": special.eos,
            "pad_token_id": special.pad,
        });
        let texts = [
            (
                "config.json",
                self.config.to_config_json(special, dtype_name),
            ),
            (
                "generation_config.json",
                serde_json::to_string_pretty(&generation).expect("a JSON value serialises"),
            ),
            ("tokenizer.json", tokenizer.to_json()?),
            (
                "tokenizer_config.json",
                tokenizer.hf_tokenizer_config(special, chat_template),
            ),
        ];
        for (name, text) in texts {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| Error::Io { path, source })?;
        }
        let weights = dir.join("model.safetensors");
        let named = tensors
            .iter()
            .map(|(name, var)| Ok((name.as_str(), var.as_tensor().to_dtype(dtype)?)))
            .collect::<candle_core::Result<std::collections::HashMap<_, _>>>()
            .map_err(|e| compute("converting weights", e))?;
        save_safetensors(&named, &weights)
            .map_err(|e| compute(&format!("writing {}", weights.display()), e))
    }

    /// Runs `ids: [batch, seq]` (u32) after what `cache` holds and returns the final
    /// hidden states `[batch, seq, hidden]`, appending the new keys and values.
    pub fn forward(&self, ids: &Tensor, cache: &mut KvCache, mode: Mode) -> Result<Tensor> {
        self.forward_inner(ids, cache, mode)
            .map_err(|e| compute("forward pass", e))
    }

    fn forward_inner(
        &self,
        ids: &Tensor,
        cache: &mut KvCache,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        if batch != cache.left_pad.len() {
            candle_core::bail!(
                "a batch of {batch} sequences against a cache of {}",
                cache.left_pad.len()
            );
        }
        let past = cache.len;
        if past + seq > self.config.max_positions {
            candle_core::bail!(
                "{} tokens exceed the model's {} positions",
                past + seq,
                self.config.max_positions
            );
        }
        let frame = self.frame(&cache.left_pad, past, seq, cache.reserve)?;
        let mut x = self.embed(ids)?;
        for (layer, slot) in self.weights.layers.iter().zip(cache.layers.iter_mut()) {
            x = self.block(layer, &x, &frame, slot, mode)?;
            if mode == Mode::Inference {
                // Trainable weights make candle record every op; an inference pass
                // must not keep a block's activations (nor, through the cache, every
                // earlier step's) alive for a backward pass that never comes.
                x = x.detach();
            }
        }
        cache.len += seq;
        let hidden = ops::rms_norm(&x, &self.weights.norm, self.config.rms_norm_eps, mode)?;
        Ok(match mode {
            Mode::Inference => hidden.detach(),
            Mode::Differentiable => hidden,
        })
    }

    /// The token embeddings of `ids`, in the weights' dtype.
    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.weights
            .embedding
            .forward(ids)?
            .to_dtype(self.format.dtype())
    }

    /// RoPE tables and the mask for `seq` new tokens after `past` of sequences with
    /// `left_pad` padding.
    fn frame(
        &self,
        left_pad: &[usize],
        past: usize,
        seq: usize,
        reserve: usize,
    ) -> candle_core::Result<Frame> {
        let (cos, sin) = self.rotations(left_pad, past, seq)?;
        Ok(Frame {
            cos,
            sin,
            mask: causal_mask(left_pad, past, seq, &self.device)?,
            past,
            reserve,
        })
    }

    /// RoPE cos and sin, `[batch, seq, head_dim / 2]`, of `seq` new tokens after `past`
    /// of sequences with `left_pad` padding.
    fn rotations(
        &self,
        left_pad: &[usize],
        past: usize,
        seq: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let shape = (left_pad.len(), seq, self.config.head_dim / 2);
        let positions = self.positions(left_pad, past, seq)?;
        Ok((
            self.cos.index_select(&positions, 0)?.reshape(shape)?,
            self.sin.index_select(&positions, 0)?.reshape(shape)?,
        ))
    }

    /// One decoder block: attention and MLP, each with its residual.
    fn block(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        frame: &Frame,
        slot: &mut Option<LayerCache>,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let attended = self.attention(layer, x, frame, slot, mode)?;
        self.after_attention(layer, x, &attended, mode)
    }

    /// Position of each new token (row by row, flat): tokens before it that are not
    /// padding.
    fn positions(
        &self,
        left_pad: &[usize],
        past: usize,
        seq: usize,
    ) -> candle_core::Result<Tensor> {
        let values: Vec<u32> = left_pad
            .iter()
            .flat_map(|&pad| (past..past + seq).map(move |at| at.saturating_sub(pad) as u32))
            .collect();
        Tensor::from_vec(values, left_pad.len() * seq, &self.device)
    }

    /// The attention of one block over what `slot` caches and `x`, before the output
    /// projection: `[batch, heads, seq, head_dim]`.
    fn attention(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        frame: &Frame,
        slot: &mut Option<LayerCache>,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (q, k, v) = self.queries_keys_values(layer, x, &frame.cos, &frame.sin, mode)?;
        let (k, v) = append_to_layer(slot, k, v, frame.past, frame.reserve, mode)?;
        match mode {
            Mode::Inference => {
                let planes = x.dim(0)? * self.config.num_heads;
                let rows = query_chunk_rows(SCORE_CHUNK_BYTES, planes, k.dim(2)?);
                chunked_attention(&q, &k, &v, &frame.mask, rows)
            }
            Mode::Differentiable => grouped_attention(&q, &k, &v, &frame.mask, mode),
        }
    }

    /// A block's queries `[batch, heads, seq, head_dim]` and keys and values
    /// `[batch, kv_heads, seq, head_dim]` of hidden states `x`, rotated by `cos`, `sin`.
    fn queries_keys_values(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (batch, seq, _) = x.dims3()?;
        let projected = self.projected_queries_keys_values(layer, x, mode)?;
        self.rotated_heads(layer, projected, (batch, seq), cos, sin, mode)
    }

    /// A block's queries, keys and values of hidden states `x: [.., hidden]`, before
    /// they are split into heads: `[.., heads · head_dim]`, `[.., kv_heads · head_dim]`
    /// twice. Every position is one row of each product.
    fn projected_queries_keys_values(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<[Tensor; 3]> {
        let h = ops::rms_norm(x, &layer.attn_norm, self.config.rms_norm_eps, mode)?;
        let [q, k, v] = weights::forward_each([&layer.q, &layer.k, &layer.v], &h, mode)?;
        Ok(match &layer.qkv_bias {
            Some([qb, kb, vb]) => [
                q.broadcast_add(qb)?,
                k.broadcast_add(kb)?,
                v.broadcast_add(vb)?,
            ],
            None => [q, k, v],
        })
    }

    /// Projected queries, keys and values of `batch × seq` positions (any leading
    /// shape of that many rows) split into heads, `[batch, heads, seq, head_dim]`,
    /// normalised where the model does and rotated by `cos`, `sin`.
    fn rotated_heads(
        &self,
        layer: &LayerWeights,
        [q, k, v]: [Tensor; 3],
        (batch, seq): (usize, usize),
        cos: &Tensor,
        sin: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let config = &self.config;
        let mut q = self.split_heads(&q, (batch, seq), config.num_heads)?;
        let mut k = self.split_heads(&k, (batch, seq), config.num_kv_heads)?;
        let v = self.split_heads(&v, (batch, seq), config.num_kv_heads)?;
        if let Some([qn, kn]) = &layer.qk_norm {
            q = ops::rms_norm(&q, qn, config.rms_norm_eps, mode)?;
            k = ops::rms_norm(&k, kn, config.rms_norm_eps, mode)?;
        }
        Ok((
            ops::rope(&q, cos, sin, mode)?,
            ops::rope(&k, cos, sin, mode)?,
            v,
        ))
    }

    /// `n` heads of `batch × seq` positions' rows `t` (any leading shape of that many
    /// rows, `n · head_dim` wide) as `[batch, n, seq, head_dim]`, contiguous.
    fn split_heads(
        &self,
        t: &Tensor,
        (batch, seq): (usize, usize),
        n: usize,
    ) -> candle_core::Result<Tensor> {
        t.reshape((batch, seq, n, self.config.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// The rest of a block after its attention: the output projection of `attended`
    /// (`[batch, heads, seq, head_dim]`) and the MLP, each with its residual over `x`.
    fn after_attention(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        attended: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        self.after_merged_attention(layer, x, &merged_heads(attended)?, mode)
    }

    /// [`Model::after_attention`] with the attention's heads already merged:
    /// `x: [.., hidden]` and `merged: [.., heads · head_dim]` of the same positions.
    fn after_merged_attention(
        &self,
        layer: &LayerWeights,
        x: &Tensor,
        merged: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let x = (x + layer.o.forward(merged)?)?;
        let h = ops::rms_norm(&x, &layer.ffn_norm, self.config.rms_norm_eps, mode)?;
        let [gate, up] = weights::forward_each([&layer.gate, &layer.up], &h, mode)?;
        let mlp = layer.down.forward(&ops::swiglu(&gate, &up)?)?;
        x + mlp
    }

    /// Logits `[.., vocab]` (f32) of hidden states `[.., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.weights
            .output
            .forward(hidden)
            .and_then(|l| l.to_dtype(DType::F32))
            .map_err(|e| compute("logits", e))
    }

    /// log p(target) of each position, `[batch, seq]` f32, from hidden states
    /// `[batch, seq, hidden]` and `targets: [batch, seq]` (u32), in chunks of
    /// [`LOGIT_CHUNK_ROWS`] rows. `p` is the distribution sampled at `temperature`,
    /// softmax(logits / T), as TRL and verl score completions (0 means greedy and
    /// scores at 1). Differentiable when the hidden states are.
    pub fn target_log_probs(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        temperature: f32,
    ) -> Result<Tensor> {
        self.target_log_probs_inner(hidden, targets, temperature)
            .map_err(|e| compute("target log-probabilities", e))
    }

    fn target_log_probs_inner(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        temperature: f32,
    ) -> candle_core::Result<Tensor> {
        let scale = logit_scale(temperature);
        let (batch, seq, width) = hidden.dims3()?;
        let rows = hidden.reshape((batch * seq, width))?;
        let targets = targets.reshape(batch * seq)?;
        let mut chunks = Vec::new();
        for start in (0..batch * seq).step_by(LOGIT_CHUNK_ROWS) {
            let len = LOGIT_CHUNK_ROWS.min(batch * seq - start);
            let logits = self
                .weights
                .output
                .forward(&rows.narrow(0, start, len)?)?
                .to_dtype(DType::F32)?;
            let logits = if scale == 1.0 {
                logits
            } else {
                (logits * scale)?
            };
            let targets = targets.narrow(0, start, len)?;
            chunks.push(ops::target_log_probs(&logits, &targets)?);
        }
        Tensor::cat(&chunks, 0)?.reshape((batch, seq))
    }

    /// For each row of hidden states `[rows, hidden]`, the entropy (nats) of the
    /// next-token distribution restricted to its `k` most likely tokens and
    /// renormalised — RPT's proxy entropy. Computed in chunks of rows.
    pub fn top_k_entropy(&self, hidden: &Tensor, k: usize) -> Result<Vec<f32>> {
        let rows = hidden.dim(0).map_err(|e| compute("entropy", e))?;
        let mut entropies = Vec::with_capacity(rows);
        for start in (0..rows).step_by(LOGIT_CHUNK_ROWS) {
            let len = LOGIT_CHUNK_ROWS.min(rows - start);
            let chunk = hidden
                .i(start..start + len)
                .map_err(|e| compute("entropy", e))?;
            let logits = self
                .logits(&chunk)?
                .to_vec2::<f32>()
                .map_err(|e| compute("entropy", e))?;
            entropies.extend(logits.iter().map(|row| top_k_entropy(row, k)));
        }
        Ok(entropies)
    }
}

/// What logits are multiplied by to give the distribution sampled at `temperature`
/// (0, greedy, scores at 1).
fn logit_scale(temperature: f32) -> f64 {
    if temperature > 0.0 {
        1.0 / f64::from(temperature)
    } else {
        1.0
    }
}

/// Attention output `[batch, heads, seq, head_dim]` with its heads side by side,
/// `[batch, seq, heads · head_dim]`.
fn merged_heads(attended: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, heads, seq, head_dim) = attended.dims4()?;
    attended
        .transpose(1, 2)?
        .reshape((batch, seq, heads * head_dim))
}

/// Entropy (nats) of the softmax of `logits` restricted to its `k` largest.
pub fn top_k_entropy(logits: &[f32], k: usize) -> f32 {
    let k = k.clamp(1, logits.len().max(1));
    let mut top = logits.to_vec();
    if top.is_empty() {
        return 0.0;
    }
    top.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    top.truncate(k);
    let max = top.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = top.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let entropy: f64 = weights
        .iter()
        .map(|&w| w / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy as f32
}

/// cos and sin of every position × frequency, halves convention.
fn rope_tables(config: &ModelConfig, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let base: Vec<f64> = (0..half)
        .map(|i| {
            let wavelength = config
                .rope_theta
                .powf(2.0 * i as f64 / config.head_dim as f64);
            f64::from(1.0 / wavelength as f32)
        })
        .collect();
    let inverse: Vec<f32> = config
        .rope_scaling
        .apply(&base)
        .into_iter()
        .map(|f| f as f32)
        .collect();
    let inverse = Tensor::from_vec(inverse, (1, half), device)?;
    let positions = Tensor::arange(0u32, config.max_positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((config.max_positions, 1))?;
    let angles = positions.broadcast_mul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
}

fn safetensors_files(path: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(io)?;
        files.retain(|f| f.extension().is_some_and(|ext| ext == "safetensors"));
        files.sort();
        if files.is_empty() {
            return Err(Error::Model {
                path: path.to_path_buf(),
                problem: "holds no .safetensors file".into(),
            });
        }
        return Ok((path.to_path_buf(), files));
    }
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !path.exists() {
        return Err(io(std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    Ok((dir, vec![path.to_path_buf()]))
}

/// xxh3-64 of the files' bytes, one after the other, in hex (a model's identity, a
/// checkpoint file's checksum).
pub fn checksum(files: &[impl AsRef<Path>]) -> Result<String> {
    Ok(rlpt_engine::checksum::files_checksum(files)?)
}

/// Writes a freshly initialised checkpoint of the model `config_json` describes into
/// `output` (`config.json` and `model.safetensors`): weights drawn from N(0, 0.02²)
/// by a stream seeded with `seed` (the same bytes for the same seed), norms at 1,
/// biases at 0.
pub fn init_checkpoint(config_json: &Path, output: &Path, seed: u64) -> Result<()> {
    let config = ModelConfig::from_config_json(config_json)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(output).map_err(io(output))?;
    let mut rng = rlpt_rng::SplitMix64::new(seed);
    let mut tensors = std::collections::HashMap::new();
    for (name, shape, is_norm) in weights::hf_tensors(&config) {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = if is_norm {
            vec![1.0; count]
        } else if name.ends_with(".bias") {
            vec![0.0; count]
        } else {
            (0..count)
                .map(|_| 0.02 * standard_normal(&mut rng))
                .collect()
        };
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu)
            .map_err(|e| compute("initialising weights", e))?;
        tensors.insert(name, tensor);
    }
    // Written beside, then renamed: a half-written checkpoint is never visible.
    let weights = output.join("model.safetensors");
    let partial = rlpt_engine::atomic::tmp_path(&weights);
    save_safetensors(&tensors, &partial)
        .map_err(|e| compute(&format!("writing {}", partial.display()), e))?;
    rlpt_engine::atomic::commit_written(&partial, &weights)?;
    let config_out = output.join("config.json");
    if config_json != config_out {
        std::fs::copy(config_json, &config_out).map_err(io(&config_out))?;
    }
    Ok(())
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut rlpt_rng::SplitMix64) -> f32 {
    let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
    let u2 = rng.next_f64();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The device named `spec`: `cpu`, or `cuda:N` (`cuda` alone is `cuda:0`) in a build
/// with the `cuda` feature.
pub fn device(spec: &str) -> Result<Device> {
    let unsupported = |hint: &str| Error::Device {
        spec: spec.to_string(),
        hint: hint.to_string(),
    };
    match spec.split_once(':').unwrap_or((spec, "0")) {
        ("cpu", _) => Ok(Device::Cpu),
        ("cuda", ordinal) => {
            let ordinal: usize = ordinal
                .parse()
                .map_err(|_| unsupported("give cuda:N with N a GPU index"))?;
            if !candle_core::utils::cuda_is_available() {
                return Err(unsupported(
                    "this rlpt was built without the `cuda` feature (cargo build --features cuda)",
                ));
            }
            Device::new_cuda(ordinal).map_err(|e| compute(&format!("opening {spec}"), e))
        }
        _ => Err(unsupported("use cpu or cuda:N")),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn compute(context: &str, source: candle_core::Error) -> Error {
    Error::Compute {
        context: context.to_string(),
        source,
    }
}

/// The largest absolute difference between two tensors of one shape, compared in f32
/// (the model's tests' measure of "the same numbers").
#[cfg(test)]
pub(crate) fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
    let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    (f32(a) - f32(b))
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Values spread over [-2, 2] without a pattern the ops could hide, `shape` f32 on the
/// CPU (the model's tests' inputs).
#[cfg(test)]
pub(crate) fn spread_values(shape: &[usize], seed: u64) -> Tensor {
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|i| 2.0 * ((i as f32 + 1.0) * (seed as f32 * 0.618 + 1.37)).sin())
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// The committed tiny model's shape with fresh weights, made trainable.
#[cfg(test)]
pub(crate) fn trainable_tiny_model(dir: &Path) -> Model {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples/tiny/config.json");
    init_checkpoint(&config, dir, 3).unwrap();
    let mut model = Model::load(dir, WeightFormat::F32, &Device::Cpu).unwrap();
    model.trainable().unwrap();
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt of no positions leaves its rows nothing to predict from: an error, not
    /// a panic.
    #[test]
    fn the_checkpointed_backward_pass_refuses_empty_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let model = trainable_tiny_model(dir.path());
        let prompts = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[5u32]], &Device::Cpu).unwrap();
        let batch = PromptedBatch {
            prompts: &prompts,
            left_pad: &[0],
            source: &[0],
            continuations: None,
        };
        let result = model.backward_checkpointed::<Error>(
            &batch,
            &targets,
            1.0,
            |log_probs| log_probs.sum_all().map_err(|e| compute("loss", e)),
            |_| Ok(()),
        );
        let message = result.unwrap_err().to_string();
        assert!(message.contains("1 prompts of 0 tokens"), "{message}");
    }

    #[test]
    fn an_inference_pass_over_trainable_weights_keeps_no_graph() {
        let dir = tempfile::tempdir().unwrap();
        let model = trainable_tiny_model(dir.path());
        let ids = Tensor::new(&[[5u32, 6, 7], [8, 9, 10]], &Device::Cpu).unwrap();
        let mut cache = KvCache::new(&model, vec![0, 1]);
        for step in 0..3 {
            let input = if step == 0 {
                ids.clone()
            } else {
                ids.narrow(1, 0, 1).unwrap()
            };
            let hidden = model.forward(&input, &mut cache, Mode::Inference).unwrap();
            // A graph here would hold every block's activations, and a cached key
            // holding one would chain every earlier step's cache (generation's memory
            // grew without bound: 24 GB within a minute on SmolLM2).
            assert!(
                !hidden.track_op(),
                "step {step}: the hidden states keep a graph"
            );
            for layer in cache.layers.iter().flatten() {
                let (k, v) = layer.tensors();
                assert!(
                    !k.track_op() && !v.track_op(),
                    "step {step}: the cache keeps a graph"
                );
            }
        }
        let mut fresh = KvCache::new(&model, vec![0, 1]);
        let hidden = model
            .forward(&ids, &mut fresh, Mode::Differentiable)
            .unwrap();
        assert!(hidden.track_op(), "a differentiable pass keeps its graph");
    }
}
