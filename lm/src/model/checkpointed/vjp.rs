//! One decoder block's vector-Jacobian product on the CPU in f32 without candle's
//! autograd: the block is recomputed from its input with no graph, keeping what each
//! op's backward pass reads, then the ops' own backward passes run in reverse order,
//! each gradient handed straight to the op before it.
//!
//! candle's backward pass gives every recorded tensor (each projection's weight too) a
//! zeroed gradient and adds the first contribution into it, allocating the sum afresh;
//! in SmolLM2's update at the TRL bench's settings those zeroings and additions were
//! about a seventh of the time, on one thread while the other waited. Here a gradient
//! with one contribution is that contribution, and a sum is made only where a tensor
//! feeds several ops: the normed input of the three projections (and of gate and up),
//! each residual, a prompt's keys and values that its continuations read. Other
//! devices and dtypes keep the autograd form ([`Model::block_backward`]), which the
//! tests hold this one to.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, bail};

use super::{Layout, Part, PartAttention, add_rows, attention, merged_outputs};
use crate::model::split_gemm::{self, Matrix, with_f32};
use crate::model::weights::{Embedding, LayerWeights, Linear};
use crate::model::{Model, fused, logit_scale, merged_heads, projection};

/// A projection's dense f32 weight on the CPU (`None` for quantized or other weights).
fn dense(linear: &Linear) -> Option<&Tensor> {
    match linear {
        Linear::Dense(weight) if fused::applies(&[weight]) => Some(weight),
        _ => None,
    }
}

/// The seven projections of a block, in the order [`Projections`] holds them.
fn projections(layer: &LayerWeights) -> [&Linear; 7] {
    [
        &layer.q,
        &layer.k,
        &layer.v,
        &layer.o,
        &layer.gate,
        &layer.up,
        &layer.down,
    ]
}

/// Whether [`Model::head_vjp`] takes the head over `states`: f32 on the CPU, the head
/// dense.
pub(super) fn head_applies(model: &Model, states: &Tensor) -> bool {
    dense(&model.weights.output).is_some() && fused::applies(&[states, &model.weights.norm])
}

/// Whether this form takes `layer` over states `x`: every tensor f32 on the CPU, every
/// projection dense.
pub(super) fn applies(layer: &LayerWeights, x: &Tensor) -> bool {
    let mut tensors = vec![x, &layer.attn_norm, &layer.ffn_norm];
    tensors.extend(layer.qkv_bias.iter().flatten());
    tensors.extend(layer.qk_norm.iter().flatten());
    projections(layer).iter().all(|p| dense(p).is_some()) && fused::applies(&tensors)
}

/// A block's projection weights, each the variable its gradient is keyed by and a
/// detached copy the recompute reads (so it records no graph).
struct Projections<'a> {
    vars: [&'a Tensor; 7],
    values: [Tensor; 7],
}

impl<'a> Projections<'a> {
    fn of(layer: &'a LayerWeights) -> candle_core::Result<Self> {
        let mut vars = Vec::with_capacity(7);
        for linear in projections(layer) {
            match dense(linear) {
                Some(weight) => vars.push(weight),
                None => bail!("the block's projections are not dense f32 weights"),
            }
        }
        let vars: [&Tensor; 7] = vars.try_into().expect("seven projections");
        Ok(Self {
            values: vars.map(Tensor::detach),
            vars,
        })
    }
}

/// Where each projection sits in [`Projections`].
const Q: usize = 0;
const K: usize = 1;
const V: usize = 2;
const O: usize = 3;
const GATE: usize = 4;
const UP: usize = 5;
const DOWN: usize = 6;

/// Weight gradients keyed by their variables, summed where a weight gets several.
#[derive(Default)]
struct Collected(GradStore);

impl Collected {
    fn add(&mut self, var: &Tensor, grad: Tensor) -> candle_core::Result<()> {
        if !var.is_variable() {
            return Ok(());
        }
        let sum = match self.0.remove(var) {
            Some(earlier) => (earlier + grad)?,
            None => grad,
        };
        self.0.insert(var, sum);
        Ok(())
    }
}

/// The head's gradients summed over the chunks of rows it runs in: its weight's in
/// one `[vocab, hidden]` buffer that each chunk's product adds into (not a buffer
/// per chunk, summed afterwards: at SmolLM2's 113 MB, three of them lived at once),
/// which with tied embeddings also takes the embedding's rows; the final norm's, summed
/// like any weight's.
#[derive(Default)]
pub(super) struct HeadSum {
    weight: Option<Vec<f32>>,
    norm: Collected,
}

impl HeadSum {
    /// Adds each row of `grad` (`[ids, hidden]` f32) to the weight's row its id names:
    /// the gradient of an embedding lookup of `ids` tied to this head.
    pub(super) fn add_embedding_rows(
        &mut self,
        ids: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<()> {
        let Some(weight) = &mut self.weight else {
            bail!("the head's gradient is not summed yet");
        };
        let (ids, width) = (ids.to_vec1::<u32>()?, grad.dim(1)?);
        with_f32([grad], |[grad]| add_rows(weight, width, &ids, grad))
    }

    /// The summed gradients, keyed by the head's weight and the final norm's.
    pub(super) fn into_store(self, model: &Model) -> candle_core::Result<GradStore> {
        let mut grads = self.norm;
        if let (Some(weight), Some(output)) = (self.weight, dense(&model.weights.output)) {
            let shape = output.shape().clone();
            grads.add(output, Tensor::from_vec(weight, shape, output.device())?)?;
        }
        Ok(grads.0)
    }
}

/// One part's queries, keys and values split into heads: before the per-head norm
/// (Qwen3; what its backward pass reads) and rotated.
struct PartHeads {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rotated_q: Tensor,
    rotated_k: Tensor,
}

impl Model {
    /// The vector-Jacobian product of one block at its input `x` (`[tokens, hidden]`)
    /// for the gradient `grad` of its output: the weight gradients and the gradient
    /// of `x`. Only for what [`applies`] takes.
    pub(super) fn block_vjp(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(GradStore, Tensor)> {
        let eps = self.config.rms_norm_eps;
        let weights = Projections::of(layer)?;
        let w = &weights.values;
        let mut grads = Collected::default();

        // The block again, keeping what the backward passes read.
        let attn_norm = layer.attn_norm.detach();
        let normed = fused::rms_norm(x, &attn_norm, eps)?;
        let project = |i: usize| {
            let product = projection::forward(&normed, &w[i])?;
            match &layer.qkv_bias {
                Some(biases) => product.broadcast_add(&biases[i].detach()),
                None => Ok(product),
            }
        };
        let projected = [project(Q)?, project(K)?, project(V)?];
        let qk_norm = layer
            .qk_norm
            .as_ref()
            .map(|norms| norms.each_ref().map(Tensor::detach));
        let prompt = self.part_heads(&projected, &layout.prompts, qk_norm.as_ref())?;
        let prompts_attention = PartAttention::new(
            prompt.rotated_q.clone(),
            prompt.rotated_k.clone(),
            prompt.v.clone(),
            &layout.prompts,
        )?;
        let continued = match &layout.continuations {
            Some(part) => {
                let own = self.part_heads(&projected, part, qk_norm.as_ref())?;
                let after = |prompt: &Tensor, own: &Tensor| {
                    Tensor::cat(&[&prompt.index_select(&layout.source, 0)?, own], 2)
                };
                let attention = PartAttention::new(
                    own.rotated_q.clone(),
                    after(&prompt.rotated_k, &own.rotated_k)?,
                    after(&prompt.v, &own.v)?,
                    part,
                )?;
                Some((part, own, attention))
            }
            None => None,
        };
        let attended = merged_outputs(
            &prompts_attention,
            continued.as_ref().map(|(_, _, a)| a),
            DType::F32,
        )?;
        let mid = (x + projection::forward(&attended, &w[O])?)?;
        let ffn_norm = layer.ffn_norm.detach();
        let normed_mid = fused::rms_norm(&mid, &ffn_norm, eps)?;
        let gate = projection::forward(&normed_mid, &w[GATE])?;
        let up = projection::forward(&normed_mid, &w[UP])?;
        let product = fused::swiglu(&gate, &up)?;

        // The MLP and the attention's output projection, from the output back.
        let (grad_product, grad_down) = projection::backward(&product, &w[DOWN], grad)?;
        grads.add(weights.vars[DOWN], grad_down)?;
        drop(product);
        let (grad_gate, grad_up) = fused::swiglu_backward(&gate, &up, &grad_product)?;
        drop((gate, up, grad_product));
        let (from_gate, grad_gate_weight) =
            projection::backward(&normed_mid, &w[GATE], &grad_gate)?;
        grads.add(weights.vars[GATE], grad_gate_weight)?;
        let (from_up, grad_up_weight) = projection::backward(&normed_mid, &w[UP], &grad_up)?;
        grads.add(weights.vars[UP], grad_up_weight)?;
        let (through_norm, grad_ffn_norm) =
            fused::rms_norm_backward(&mid, &ffn_norm, eps, &(from_gate + from_up)?)?;
        grads.add(&layer.ffn_norm, grad_ffn_norm)?;
        let grad_mid = (grad + through_norm)?;
        let (grad_attended, grad_o) = projection::backward(&attended, &w[O], &grad_mid)?;
        grads.add(weights.vars[O], grad_o)?;

        // The attention of each part; a prompt's keys and values also get the gradients
        // of the copies its continuations read.
        let (grad_q, mut grad_k, mut grad_v) =
            attention(&prompts_attention.exact, &layout.prompts)?.backward(
                &prompts_attention.attended,
                &self.part_output_grad(&grad_attended, &layout.prompts)?,
            )?;
        let mut rows = Vec::new();
        if let Some((part, own, attention_of)) = &continued {
            let (q_c, k_c, v_c) = attention(&attention_of.exact, part)?.backward(
                &attention_of.attended,
                &self.part_output_grad(&grad_attended, part)?,
            )?;
            let seen = layout.prompts.seq;
            let to_prompts = |sum: &Tensor, g: &Tensor| {
                sum.index_add(&layout.source, &g.narrow(2, 0, seen)?.contiguous()?, 0)
            };
            grad_k = to_prompts(&grad_k, &k_c)?;
            grad_v = to_prompts(&grad_v, &v_c)?;
            let own_grads = [
                q_c,
                k_c.narrow(2, seen, part.seq)?,
                v_c.narrow(2, seen, part.seq)?,
            ];
            rows.push(self.heads_grad_rows(
                own,
                part,
                own_grads,
                qk_norm.as_ref(),
                layer,
                &mut grads,
            )?);
        }
        rows.insert(
            0,
            self.heads_grad_rows(
                &prompt,
                &layout.prompts,
                [grad_q, grad_k, grad_v],
                qk_norm.as_ref(),
                layer,
                &mut grads,
            )?,
        );

        // The projections of the normed input, and the norm.
        let mut grad_normed: Option<Tensor> = None;
        for (index, i) in [Q, K, V].into_iter().enumerate() {
            let parts: Vec<&Tensor> = rows.iter().map(|r| &r[index]).collect();
            let grad_projected = Tensor::cat(&parts, 0)?;
            if let Some(biases) = &layer.qkv_bias {
                grads.add(&biases[index], grad_projected.sum(0)?)?;
            }
            let (from, grad_weight) = projection::backward(&normed, &w[i], &grad_projected)?;
            grads.add(weights.vars[i], grad_weight)?;
            grad_normed = Some(match grad_normed {
                Some(sum) => (sum + from)?,
                None => from,
            });
        }
        let grad_normed = grad_normed.expect("three projections");
        let (through_norm, grad_attn_norm) =
            fused::rms_norm_backward(x, &attn_norm, eps, &grad_normed)?;
        grads.add(&layer.attn_norm, grad_attn_norm)?;
        Ok((grads.0, (grad_mid + through_norm)?))
    }

    /// The head's product for a chunk of `[n, hidden]` states given the gradient
    /// `grad` (`[n]`) of the log-probabilities of `targets` at `temperature`: the
    /// weight gradients go into `sum`, the states' gradient is returned. Only for
    /// what [`head_applies`] takes.
    pub(super) fn head_vjp(
        &self,
        states: &Tensor,
        targets: &Tensor,
        grad: &Tensor,
        temperature: f32,
        sum: &mut HeadSum,
    ) -> candle_core::Result<Tensor> {
        let Some(output) = dense(&self.weights.output) else {
            bail!("the head is not a dense f32 weight");
        };
        let eps = self.config.rms_norm_eps;
        let (norm, weight) = (self.weights.norm.detach(), output.detach());
        let normed = fused::rms_norm(states, &norm, eps)?;
        let logits = projection::forward(&normed, &weight)?;
        let scale = logit_scale(temperature);
        // As autograd differentiates `logits · scale`: the scaled logits' gradient,
        // scaled.
        let grad_logits = if scale == 1.0 {
            fused::target_log_probs_backward(&logits, targets, grad)?
        } else {
            fused::target_log_probs_backward(&(logits * scale)?, targets, grad)?
                .affine(scale, 0.0)?
        };
        let (rows, width) = normed.dims2()?;
        let vocab = weight.dim(0)?;
        let grad_normed = with_f32([&grad_logits, &normed, &weight], |[g, x, w]| {
            let g = Matrix::row_major(g, rows, vocab)?;
            let x = Matrix::row_major(x, rows, width)?;
            match &mut sum.weight {
                Some(total) => split_gemm::product_added(g.t(), x, total)?,
                None => sum.weight = Some(split_gemm::product(g.t(), x)?),
            }
            split_gemm::product(g, Matrix::row_major(w, vocab, width)?)
        })?;
        drop(grad_logits);
        let grad_normed = Tensor::from_vec(grad_normed, (rows, width), states.device())?;
        let (grad_states, grad_norm) = fused::rms_norm_backward(states, &norm, eps, &grad_normed)?;
        sum.norm.add(&self.weights.norm, grad_norm)?;
        Ok(grad_states)
    }

    /// Whether the embedding table is the head's weight (tied), a dense f32 table.
    pub(super) fn tied_dense_head(&self) -> bool {
        match (&self.weights.embedding, dense(&self.weights.output)) {
            (Embedding::Dense(table), Some(output)) => table.id() == output.id(),
            _ => false,
        }
    }

    /// One part's queries, keys and values (rows of `projected`) split into heads,
    /// normed per head where the model does and rotated.
    fn part_heads(
        &self,
        projected: &[Tensor; 3],
        part: &Part,
        qk_norm: Option<&[Tensor; 2]>,
    ) -> candle_core::Result<PartHeads> {
        let config = &self.config;
        let heads =
            |t: &Tensor, n: usize| self.split_heads(&part.rows(t)?, (part.batch(), part.seq), n);
        let q = heads(&projected[0], config.num_heads)?;
        let k = heads(&projected[1], config.num_kv_heads)?;
        let v = heads(&projected[2], config.num_kv_heads)?;
        let (normed_q, normed_k) = match qk_norm {
            Some([q_norm, k_norm]) => (
                fused::rms_norm(&q, q_norm, config.rms_norm_eps)?,
                fused::rms_norm(&k, k_norm, config.rms_norm_eps)?,
            ),
            None => (q.clone(), k.clone()),
        };
        Ok(PartHeads {
            rotated_q: fused::rope(&normed_q, &part.cos, &part.sin)?,
            rotated_k: fused::rope(&normed_k, &part.cos, &part.sin)?,
            q,
            k,
            v,
        })
    }

    /// The gradients of a part's projected queries, keys and values as rows
    /// (`[part tokens, width]`) from those of its rotated heads: rotated back, through
    /// the per-head norm (its weights' gradients into `grads`), heads merged.
    fn heads_grad_rows(
        &self,
        heads: &PartHeads,
        part: &Part,
        [grad_q, grad_k, grad_v]: [Tensor; 3],
        qk_norm: Option<&[Tensor; 2]>,
        layer: &LayerWeights,
        grads: &mut Collected,
    ) -> candle_core::Result<[Tensor; 3]> {
        let mut grad_q = fused::rope_backward(&grad_q, &part.cos, &part.sin)?;
        let mut grad_k = fused::rope_backward(&grad_k, &part.cos, &part.sin)?;
        if let (Some([q_norm, k_norm]), Some([q_var, k_var])) = (qk_norm, &layer.qk_norm) {
            let eps = self.config.rms_norm_eps;
            let (through_q, q_weight) = fused::rms_norm_backward(&heads.q, q_norm, eps, &grad_q)?;
            let (through_k, k_weight) = fused::rms_norm_backward(&heads.k, k_norm, eps, &grad_k)?;
            grads.add(q_var, q_weight)?;
            grads.add(k_var, k_weight)?;
            (grad_q, grad_k) = (through_q, through_k);
        }
        let rows = |t: &Tensor| {
            let merged = merged_heads(t)?;
            let width = merged.dim(2)?;
            merged.reshape(((), width))
        };
        Ok([rows(&grad_q)?, rows(&grad_k)?, rows(&grad_v)?])
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::checkpointed::PromptedBatch;
    use crate::model::{max_difference, spread_values, trainable_tiny_model};

    /// A trainable tensor of `shape` with spread values.
    fn variable(shape: &[usize], seed: u64) -> Tensor {
        Var::from_tensor(&(spread_values(shape, seed) * 0.5).unwrap())
            .unwrap()
            .as_tensor()
            .clone()
    }

    /// The tiny model with Qwen2's Q/K/V biases and Qwen3's per-head norms, as asked.
    fn tiny_model(dir: &std::path::Path, bias: bool, qk_norm: bool) -> Model {
        let mut model = trainable_tiny_model(dir);
        let config = model.config.clone();
        let widths = [
            config.num_heads * config.head_dim,
            config.num_kv_heads * config.head_dim,
            config.num_kv_heads * config.head_dim,
        ];
        for (seed, layer) in model.weights.layers.iter_mut().enumerate() {
            let seed = 10 * seed as u64;
            if bias {
                layer.qkv_bias = Some([0, 1, 2].map(|i| variable(&[widths[i]], seed + i as u64)));
            }
            if qk_norm {
                layer.qk_norm = Some([3, 4].map(|i| variable(&[config.head_dim], seed + i)));
            }
        }
        model
    }

    /// The summed gradient of `var` over `stores` (`None` when none has one).
    fn summed(stores: &[GradStore], var: &Tensor) -> Option<Tensor> {
        stores
            .iter()
            .filter_map(|s| s.get(var).cloned())
            .reduce(|a, b| (a + b).unwrap())
    }

    /// Every tensor of a layer that gets a gradient.
    fn layer_tensors(layer: &LayerWeights) -> Vec<&Tensor> {
        let mut tensors: Vec<&Tensor> = projections(layer).into_iter().filter_map(dense).collect();
        tensors.extend([&layer.attn_norm, &layer.ffn_norm]);
        tensors.extend(layer.qkv_bias.iter().flatten());
        tensors.extend(layer.qk_norm.iter().flatten());
        tensors
    }

    fn assert_close(name: &str, a: &Tensor, b: &Tensor) {
        let scale = a
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let difference = max_difference(a, b);
        assert!(scale > 0.0, "{name}: no gradient");
        assert!(
            difference <= 1e-5 * scale,
            "{name}: {difference} against {scale}"
        );
    }

    /// Over prompts (one left-padded) shared by several continuing rows, each layer's
    /// product gives autograd's gradients, for Llama's, Qwen2's and Qwen3's blocks.
    #[test]
    fn the_blocks_product_equals_autograds() {
        for (bias, qk_norm) in [(false, false), (true, false), (false, true)] {
            let dir = tempfile::tempdir().unwrap();
            let model = tiny_model(dir.path(), bias, qk_norm);
            let device = Device::Cpu;
            let prompts = Tensor::new(&[[0u32, 0, 7, 8, 9], [3, 4, 5, 6, 11]], &device).unwrap();
            let continuations = Tensor::new(&[[20u32, 21], [22, 23], [24, 25]], &device).unwrap();
            let batch = PromptedBatch {
                prompts: &prompts,
                left_pad: &[2, 0],
                source: &[0, 1, 0],
                continuations: Some(&continuations),
            };
            let layout = model.layout(&batch).unwrap();
            let shape = [2 * 5 + 3 * 2, model.config.hidden_size];
            let x = spread_values(&shape, 1);
            let grad = spread_values(&shape, 2);
            for (index, layer) in model.weights.layers.iter().enumerate() {
                assert!(applies(layer, &x));
                let (store, grad_x) = model.block_vjp(layer, &layout, &x, &grad).unwrap();
                let (stores, expected_x) = model
                    .block_backward_autograd(layer, &layout, &x, &grad)
                    .unwrap();
                let case = format!("layer {index}, bias {bias}, qk norm {qk_norm}");
                assert_close(&format!("{case}: x"), &expected_x, &grad_x);
                for (i, tensor) in layer_tensors(layer).into_iter().enumerate() {
                    let expected = summed(&stores, tensor).expect("autograd's gradient");
                    let got = store.get(tensor).expect("the product's gradient");
                    assert_close(&format!("{case}: tensor {i}"), &expected, got);
                }
            }
        }
    }

    /// The head's product gives autograd's gradients, at temperature 1 and below it.
    #[test]
    fn the_heads_product_equals_autograds() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_model(dir.path(), false, false);
        let states = spread_values(&[6, model.config.hidden_size], 3);
        let targets = Tensor::new(&[1u32, 40, 7, 2047, 0, 99], &Device::Cpu).unwrap();
        let grad = spread_values(&[6], 4);
        assert!(head_applies(&model, &states));
        let output = dense(&model.weights.output).unwrap();
        for temperature in [1.0, 0.7] {
            // Two chunks summed in one buffer give one pass's gradients.
            let mut sum = HeadSum::default();
            let halves = |t: &Tensor, i: usize| t.narrow(0, 3 * i, 3).unwrap();
            let mut grad_states = Vec::new();
            for i in 0..2 {
                let (s, t, g) = (halves(&states, i), halves(&targets, i), halves(&grad, i));
                grad_states.push(model.head_vjp(&s, &t, &g, temperature, &mut sum).unwrap());
            }
            let grad_states = Tensor::cat(&grad_states, 0).unwrap();
            let store = sum.into_store(&model).unwrap();
            let (expected, expected_states) = model
                .head_backward(&states, &targets, &grad, temperature)
                .unwrap();
            let case = format!("temperature {temperature}");
            assert_close(&format!("{case}: states"), &expected_states, &grad_states);
            for (name, tensor) in [("head", output), ("norm", &model.weights.norm)] {
                let got = store.get(tensor).expect("the product's gradient");
                let want = expected.get(tensor).expect("autograd's gradient");
                assert_close(&format!("{case}: {name}"), want, got);
            }
        }
    }
}
