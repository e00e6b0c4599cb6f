//! Gradients with activation checkpointing over rows that continue prompts, a prompt
//! shared by several rows (a GRPO group) running once.
//!
//! The forward pass keeps only each decoder block's input; the backward pass
//! recomputes one block at a time and takes its vector-Jacobian product as the
//! gradient of `sum(block(x) · grad_out)` with `x` a leaf. Within a block, attention is
//! [`ChunkedAttention`] with its own backward pass, so the live attention state is one
//! query chunk's scores; the rest of the block (projections, MLP) goes through
//! candle's autograd. The head (final norm, logits, log-probabilities of the targets)
//! runs in row chunks the same way, so `[tokens, vocab]` never lives whole. A shared
//! prompt's keys and values are copied to the rows that continue it inside the
//! graph, so its gradient is the sum of theirs: exact, like one pass over the whole
//! sequences.
//!
//! Every position of the batch, prompts' and continuations' alike, is one row of the
//! hidden states, so each weight takes one product over all of them; only attention
//! splits them into their parts. (Two products per weight, the prompts' and the
//! continuations', cost SmolLM2's update at the TRL bench's settings 3.8–3.9 s a step
//! against 3.0–3.4 s for one.)

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::attention::{Attended, ChunkedAttention, TRAINING_SCORE_CHUNK_BYTES, query_chunk_rows};
use super::fused_attention::Operands;
use super::ops::{self, Mode};
use super::weights::Embedding;
use super::{LOGIT_CHUNK_ROWS, LayerWeights, Model, compute};
use crate::error::Error;

mod vjp;

/// Rows that continue prompts, some prompts shared by several rows.
pub struct PromptedBatch<'a> {
    /// `[prompts, prompt_len]` ids (u32), each prompt left-padded to end at the last
    /// column.
    pub prompts: &'a Tensor,
    /// Left padding of each prompt.
    pub left_pad: &'a [usize],
    /// For each row, the index of the prompt it continues.
    pub source: &'a [usize],
    /// `[rows, len]` ids (u32) each row feeds after its prompt; `None` when the rows
    /// predict only the token after their prompt.
    pub continuations: Option<&'a Tensor>,
}

/// Where one part of the batch (the prompts, or the continuations) sits.
struct Part {
    left_pad: Vec<usize>,
    /// Positions before the part's first token.
    past: usize,
    /// Positions of each of its sequences.
    seq: usize,
    /// Its first row in the batch's `[tokens, hidden]` states.
    first: usize,
    cos: Tensor,
    sin: Tensor,
}

impl Part {
    /// Its sequences.
    fn batch(&self) -> usize {
        self.left_pad.len()
    }

    /// Its rows of the batch's `[tokens, hidden]` states: `[batch · seq, ..]`.
    fn rows(&self, states: &Tensor) -> candle_core::Result<Tensor> {
        states.narrow(0, self.first, self.batch() * self.seq)
    }
}

/// The batch's two parts and which prompt each row continues. Hidden states (and
/// their gradients) hold every position of the batch as one row of `[tokens,
/// hidden]`: the prompts' positions, prompt after prompt, then the continuations',
/// so each weight multiplies all of them in one product.
struct Layout {
    prompts: Part,
    continuations: Option<Part>,
    /// `[rows]` u32.
    source: Tensor,
    /// `[rows]` u32: the row of the states holding each row's prompt's last position.
    prompt_ends: Tensor,
}

/// `sum(x · g)` as an f32 scalar, `g` taken in `x`'s dtype: backpropagated, `x`'s
/// gradient is `g`.
fn product_sum(x: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    (x * g.to_dtype(x.dtype())?)?
        .sum_all()?
        .to_dtype(DType::F32)
}

/// The ids of the batch's positions, `[tokens]` u32 (see [`Layout`]).
fn batch_ids(batch: &PromptedBatch<'_>) -> candle_core::Result<Tensor> {
    match batch.continuations {
        Some(c) => Tensor::cat(&[batch.prompts.flatten_all()?, c.flatten_all()?], 0),
        None => batch.prompts.flatten_all(),
    }
}

/// A table shaped like `table` (`[rows, width]` f32) holding zeros but at the rows
/// `ids` name, where the rows of `grad` (`[ids, width]` f32) are added in order.
fn rows_added(table: &Tensor, ids: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    let (rows, width) = table.dims2()?;
    let mut sums = vec![0.0f32; rows * width];
    let grad = grad.flatten_all()?.to_vec1::<f32>()?;
    add_rows(&mut sums, width, &ids.to_vec1::<u32>()?, &grad)?;
    Tensor::from_vec(sums, (rows, width), table.device())
}

/// Adds each row of `grad` (row-major, `width` wide) into the row of `table` (the
/// same width) that its id in `ids` names, in order: an embedding lookup's gradient.
fn add_rows(table: &mut [f32], width: usize, ids: &[u32], grad: &[f32]) -> candle_core::Result<()> {
    if grad.len() != ids.len() * width {
        candle_core::bail!(
            "{} ids for {} gradient values of width {width}",
            ids.len(),
            grad.len()
        );
    }
    if width == 0 {
        return Ok(());
    }
    let rows = table.len() / width;
    for (&id, row) in ids.iter().zip(grad.chunks_exact(width)) {
        let id = id as usize;
        if id >= rows {
            candle_core::bail!("token id {id} outside the table's {rows} rows");
        }
        for (sum, &value) in table[id * width..(id + 1) * width].iter_mut().zip(row) {
            *sum += value;
        }
    }
    Ok(())
}

/// The gradient reaching the leaf `x` (zeros when nothing depends on it).
fn leaf_grad(store: &GradStore, x: &Var) -> candle_core::Result<Tensor> {
    match store.get(x.as_tensor()) {
        Some(grad) => Ok(grad.detach()),
        None => x.zeros_like(),
    }
}

/// One part's queries, keys and values in the block's graph, the f32 copies the
/// attention runs on, and the attention's output.
struct PartAttention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// `q`, `k`, `v` detached, f32, contiguous.
    exact: [Tensor; 3],
    attended: Attended,
}

impl PartAttention {
    fn new(q: Tensor, k: Tensor, v: Tensor, part: &Part) -> candle_core::Result<Self> {
        let exact = [&q, &k, &v].map(|t| t.detach().to_dtype(DType::F32)?.contiguous());
        let [q32, k32, v32] = exact;
        let exact = [q32?, k32?, v32?];
        let attended = attention(&exact, part)?.forward()?;
        Ok(Self {
            q,
            k,
            v,
            exact,
            attended,
        })
    }

    /// The attention output in `dtype`.
    fn output(&self, dtype: DType) -> candle_core::Result<Tensor> {
        self.attended.out.to_dtype(dtype)
    }

    /// `sum(q · dq) + sum(k · dk) + sum(v · dv)` for the gradient `grad` of the
    /// attention output: backpropagated, it carries that gradient on through the
    /// projections.
    fn surrogate(&self, part: &Part, grad: &Tensor) -> candle_core::Result<Tensor> {
        let (dq, dk, dv) =
            attention(&self.exact, part)?.backward(&self.attended, &grad.to_dtype(DType::F32)?)?;
        product_sum(&self.q, &dq)? + product_sum(&self.k, &dk)? + product_sum(&self.v, &dv)?
    }
}

/// Both parts' attention outputs in `dtype` with their heads merged, as the rows of
/// the batch's states: `[tokens, heads · head_dim]`.
fn merged_outputs(
    prompts: &PartAttention,
    continued: Option<&PartAttention>,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    let rows = |part: &PartAttention| {
        let merged = super::merged_heads(&part.output(dtype)?)?;
        let width = merged.dim(2)?;
        merged.reshape(((), width))
    };
    match continued {
        Some(continued) => Tensor::cat(&[rows(prompts)?, rows(continued)?], 0),
        None => rows(prompts),
    }
}

/// The chunked attention of `part` over `[q, k, v]`.
fn attention<'a>(
    exact: &'a [Tensor; 3],
    part: &'a Part,
) -> candle_core::Result<ChunkedAttention<'a>> {
    let [q, k, v] = exact;
    let planes = q.dim(0)? * q.dim(1)?;
    Ok(ChunkedAttention {
        operands: Operands {
            q,
            k,
            v,
            left_pad: &part.left_pad,
            past: part.past,
        },
        rows: query_chunk_rows(TRAINING_SCORE_CHUNK_BYTES, planes, k.dim(2)?),
    })
}

impl Model {
    /// Gradients of `loss_of(log_probs)` with activation checkpointing, where
    /// `log_probs: [rows, 1 + len]` (f32) are log p(`targets`) under the distribution
    /// sampled at `temperature` (0: at 1) of the states that predict them: each row's
    /// prompt's last state, then its continuation's. `on_grads` receives each partial
    /// [`GradStore`] (the head's chunks, each block's from the last, the embedding's),
    /// whose weight gradients sum to those of one backward pass over the whole graph.
    /// Memory: each block's input, and one block's activations with one chunk of
    /// attention scores, at a time.
    pub fn backward_checkpointed<E: From<Error>>(
        &self,
        batch: &PromptedBatch<'_>,
        targets: &Tensor,
        temperature: f32,
        loss_of: impl FnOnce(&Tensor) -> std::result::Result<Tensor, E>,
        mut on_grads: impl FnMut(&GradStore) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let fail = |e| E::from(compute("checkpointed backward pass", e));
        let layout = self.layout(batch).map_err(fail)?;
        let embedded = self.embed_batch(batch).map_err(fail)?;
        let mut inputs = vec![embedded.detach()];
        for layer in &self.weights.layers {
            let x = inputs.last().expect("the embeddings come first");
            let out = self.block_forward(layer, &layout, x).map_err(fail)?;
            inputs.push(out);
        }
        let last = inputs.pop().expect("one input per block and the output");
        let predicting = self.predicting(&last, &layout).map_err(fail)?;
        let log_probs = self
            .head_log_probs(&predicting, targets, temperature)
            .map_err(fail)?;
        let log_probs = Var::from_tensor(&log_probs).map_err(fail)?;
        let store = loss_of(log_probs.as_tensor())?.backward().map_err(fail)?;
        let grad_log_probs = leaf_grad(&store, &log_probs).map_err(fail)?;
        drop(store);
        let mut grad_predicting = Vec::new();
        let flat = predicting.flatten_to(1).map_err(fail)?;
        let (rows, width) = flat.dims2().map_err(fail)?;
        let (flat_targets, flat_grads) = (
            targets.flatten_all().map_err(fail)?,
            grad_log_probs.flatten_all().map_err(fail)?,
        );
        // On the CPU in f32, the head's chunks sum their gradients in one buffer
        // ([`vjp::HeadSum`]); elsewhere each chunk's go out as they come.
        let mut head_sum = vjp::head_applies(self, &flat).then(vjp::HeadSum::default);
        for start in (0..rows).step_by(LOGIT_CHUNK_ROWS) {
            let len = LOGIT_CHUNK_ROWS.min(rows - start);
            let chunk = |t: &Tensor| t.narrow(0, start, len);
            let (states, chunk_targets, chunk_grads) = (
                chunk(&flat).map_err(fail)?,
                chunk(&flat_targets).map_err(fail)?,
                chunk(&flat_grads).map_err(fail)?,
            );
            let grad = match &mut head_sum {
                Some(sum) => self
                    .head_vjp(&states, &chunk_targets, &chunk_grads, temperature, sum)
                    .map_err(fail)?,
                None => {
                    let (store, grad) = self
                        .head_backward(&states, &chunk_targets, &chunk_grads, temperature)
                        .map_err(fail)?;
                    on_grads(&store)?;
                    grad
                }
            };
            grad_predicting.push(grad);
        }
        let grad_predicting = Tensor::cat(&grad_predicting, 0)
            .and_then(|g| g.reshape((predicting.dim(0)?, predicting.dim(1)?, width)))
            .map_err(fail)?;
        let mut grad = self
            .scatter_predicting(&grad_predicting, &last, &layout)
            .map_err(fail)?;
        for (layer, input) in self.weights.layers.iter().zip(inputs).rev() {
            let (stores, grad_input) = self
                .block_backward(layer, &layout, &input, &grad)
                .map_err(fail)?;
            for store in &stores {
                on_grads(store)?;
            }
            grad = grad_input;
        }
        match head_sum {
            // A tied table's gradient is the head's plus the rows the batch looked up.
            Some(mut sum) if self.tied_dense_head() => {
                sum.add_embedding_rows(&batch_ids(batch).map_err(fail)?, &grad)
                    .map_err(fail)?;
                on_grads(&sum.into_store(self).map_err(fail)?)
            }
            head_sum => {
                if let Some(sum) = head_sum {
                    on_grads(&sum.into_store(self).map_err(fail)?)?;
                }
                let store = self.embedding_gradient(batch, &grad).map_err(fail)?;
                on_grads(&store)
            }
        }
    }

    /// The gradient of a part's attention output `[batch, heads, seq, head_dim]` from
    /// that of the merged rows `[tokens, heads · head_dim]` of the whole batch.
    fn part_output_grad(&self, grad: &Tensor, part: &Part) -> candle_core::Result<Tensor> {
        let positions = (part.batch(), part.seq);
        self.split_heads(&part.rows(grad)?, positions, self.config.num_heads)
    }

    /// The batch's parts, checked against each other and the model.
    fn layout(&self, batch: &PromptedBatch<'_>) -> candle_core::Result<Layout> {
        let (prompts, prompt_len) = batch.prompts.dims2()?;
        let rows = batch.source.len();
        let len = match batch.continuations {
            Some(c) => {
                let (continued, len) = c.dims2()?;
                if continued != rows {
                    candle_core::bail!("{continued} continuations for {rows} rows");
                }
                len
            }
            None => 0,
        };
        // Each row's first prediction is from its prompt's last position, so a prompt
        // of no positions has none to give.
        if batch.left_pad.len() != prompts
            || batch.source.iter().any(|&s| s >= prompts)
            || prompt_len == 0
            || prompt_len + len > self.config.max_positions
        {
            candle_core::bail!(
                "{prompts} prompts of {prompt_len} tokens ({} paddings) continued by {rows} \
                 rows of {len} tokens, against the model's {} positions",
                batch.left_pad.len(),
                self.config.max_positions
            );
        }
        let part = |left_pad: Vec<usize>, past: usize, seq: usize, first: usize| {
            let (cos, sin) = self.rotations(&left_pad, past, seq)?;
            candle_core::Result::Ok(Part {
                left_pad,
                past,
                seq,
                first,
                cos,
                sin,
            })
        };
        let row_pads: Vec<usize> = batch.source.iter().map(|&s| batch.left_pad[s]).collect();
        let source: Vec<u32> = batch.source.iter().map(|&s| s as u32).collect();
        let prompt_ends: Vec<u32> = batch
            .source
            .iter()
            .map(|&s| ((s + 1) * prompt_len - 1) as u32)
            .collect();
        Ok(Layout {
            prompts: part(batch.left_pad.to_vec(), 0, prompt_len, 0)?,
            continuations: batch
                .continuations
                .map(|_| part(row_pads, prompt_len, len, prompts * prompt_len))
                .transpose()?,
            source: Tensor::new(source, &self.device)?,
            prompt_ends: Tensor::new(prompt_ends, &self.device)?,
        })
    }

    /// The embeddings of the batch's positions, `[tokens, hidden]` (see [`Layout`]).
    fn embed_batch(&self, batch: &PromptedBatch<'_>) -> candle_core::Result<Tensor> {
        self.embed(&batch_ids(batch)?)
    }

    /// The gradients reaching the embedding table from the gradient `grad` (`[tokens,
    /// hidden]`) of the batch's embeddings. A dense f32 table that is a variable, on
    /// the CPU, gets each position's gradient added to the row it looked up, in
    /// position order, in one zeroed table: what candle's backward of the lookup
    /// gives, to the bit, without its three copies of the whole table (a zeroed one,
    /// the rows added into a copy of it, and that added to another zeroed one;
    /// SmolLM2's table is 113 MB). Other tables take candle's backward.
    fn embedding_gradient(
        &self,
        batch: &PromptedBatch<'_>,
        grad: &Tensor,
    ) -> candle_core::Result<GradStore> {
        let ids = batch_ids(batch)?;
        match &self.weights.embedding {
            Embedding::Dense(table)
                if table.is_variable()
                    && table.device().is_cpu()
                    && table.dtype() == DType::F32
                    && grad.dtype() == DType::F32 =>
            {
                let mut store = GradStore::default();
                store.insert(table, rows_added(table, &ids, grad)?);
                Ok(store)
            }
            _ => self
                .embed(&ids)
                .and_then(|embedded| product_sum(&embedded, grad))
                .and_then(|s| s.backward()),
        }
    }

    /// Each part's attention in one block over hidden states `x` (`[tokens, hidden]`):
    /// the prompts over themselves, each continuation over its prompt's keys and
    /// values and its own.
    fn attend_parts(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &Tensor,
    ) -> candle_core::Result<(PartAttention, Option<PartAttention>)> {
        let mode = Mode::Differentiable;
        let projected = self.projected_queries_keys_values(layer, x, mode)?;
        let heads = |part: &Part| {
            let [q, k, v] = &projected;
            let rows = [part.rows(q)?, part.rows(k)?, part.rows(v)?];
            self.rotated_heads(
                layer,
                rows,
                (part.batch(), part.seq),
                &part.cos,
                &part.sin,
                mode,
            )
        };
        let (q, k, v) = heads(&layout.prompts)?;
        let continued = match &layout.continuations {
            Some(part) => {
                let (qc, kc, vc) = heads(part)?;
                let after = |prompt: &Tensor, own: Tensor| {
                    Tensor::cat(&[&prompt.index_select(&layout.source, 0)?, &own], 2)
                };
                Some(PartAttention::new(
                    qc,
                    after(&k, kc)?,
                    after(&v, vc)?,
                    part,
                )?)
            }
            None => None,
        };
        Ok((PartAttention::new(q, k, v, &layout.prompts)?, continued))
    }

    /// One block over the batch's states, its output detached (the forward pass keeps
    /// only block inputs).
    fn block_forward(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (prompts, continued) = self.attend_parts(layer, layout, x)?;
        let attended = merged_outputs(&prompts, continued.as_ref(), x.dtype())?;
        Ok(self
            .after_merged_attention(layer, x, &attended, Mode::Differentiable)?
            .detach())
    }

    /// The vector-Jacobian product of one block at its input `x` for the gradient
    /// `grad` of its output: the weight gradients and the gradient of `x`. On the CPU
    /// in f32, [`Model::block_vjp`]; elsewhere [`Model::block_backward_autograd`].
    fn block_backward(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Vec<GradStore>, Tensor)> {
        if vjp::applies(layer, x) {
            let (store, grad_x) = self.block_vjp(layer, layout, x, grad)?;
            return Ok((vec![store], grad_x));
        }
        let (stores, grad_x) = self.block_backward_autograd(layer, layout, x, grad)?;
        Ok((stores.into(), grad_x))
    }

    /// [`Model::block_backward`] through candle's autograd: the weight gradients (two
    /// stores: from the attention output on, then through the attention to the
    /// projections) and the gradient of `x`.
    fn block_backward_autograd(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<([GradStore; 2], Tensor)> {
        let input = Var::from_tensor(x)?;
        let x = input.as_tensor();
        let (prompts, continued) = self.attend_parts(layer, layout, x)?;
        let attended = Var::from_tensor(&merged_outputs(&prompts, continued.as_ref(), x.dtype())?)?;
        let output =
            self.after_merged_attention(layer, x, attended.as_tensor(), Mode::Differentiable)?;
        let after = product_sum(&output, grad)?.backward()?;
        let grad_attended = leaf_grad(&after, &attended)?;
        let residual = leaf_grad(&after, &input)?;
        let part_grad = |part: &Part| self.part_output_grad(&grad_attended, part);
        let mut surrogate = prompts.surrogate(&layout.prompts, &part_grad(&layout.prompts)?)?;
        if let (Some(attention), Some(part)) = (&continued, &layout.continuations) {
            surrogate = (surrogate + attention.surrogate(part, &part_grad(part)?)?)?;
        }
        let through = surrogate.backward()?;
        let grad_x = (residual + leaf_grad(&through, &input)?)?;
        Ok(([after, through], grad_x))
    }

    /// The final block's states that predict each target, `[rows, 1 + len, hidden]`:
    /// each row's prompt's last state, then its continuation's states.
    fn predicting(&self, last: &Tensor, layout: &Layout) -> candle_core::Result<Tensor> {
        let ends = last.index_select(&layout.prompt_ends, 0)?.unsqueeze(1)?;
        match &layout.continuations {
            Some(part) => {
                let states = part
                    .rows(last)?
                    .reshape((part.batch(), part.seq, last.dim(1)?))?;
                Tensor::cat(&[&ends, &states], 1)
            }
            None => Ok(ends),
        }
    }

    /// The inverse of [`Model::predicting`] for gradients: a prompt's last position
    /// gets the sum of its rows' first gradients, the positions before it none.
    fn scatter_predicting(
        &self,
        grad: &Tensor,
        last: &Tensor,
        layout: &Layout,
    ) -> candle_core::Result<Tensor> {
        let (rows, positions, width) = grad.dims3()?;
        let prompts = &layout.prompts;
        let ends = Tensor::zeros(
            (prompts.batch() * prompts.seq, width),
            grad.dtype(),
            grad.device(),
        )?
        .index_add(
            &layout.prompt_ends,
            &grad.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?,
            0,
        )?;
        let flat = match &layout.continuations {
            Some(_) => {
                let continued = grad
                    .narrow(1, 1, positions - 1)?
                    .reshape((rows * (positions - 1), width))?;
                Tensor::cat(&[&ends, &continued], 0)?
            }
            None => ends,
        };
        flat.to_dtype(last.dtype())
    }

    /// log p(target) of the states `[rows, positions, hidden]` through the final norm
    /// and the head, `[rows, positions]` f32, with no graph kept.
    fn head_log_probs(
        &self,
        predicting: &Tensor,
        targets: &Tensor,
        temperature: f32,
    ) -> candle_core::Result<Tensor> {
        let (rows, positions, width) = predicting.dims3()?;
        let flat = predicting.reshape((rows * positions, width))?;
        let flat_targets = targets.flatten_all()?;
        let mut chunks = Vec::new();
        for start in (0..rows * positions).step_by(LOGIT_CHUNK_ROWS) {
            let len = LOGIT_CHUNK_ROWS.min(rows * positions - start);
            let log_probs = self.head_chunk(
                &flat.narrow(0, start, len)?,
                &flat_targets.narrow(0, start, len)?,
                temperature,
            )?;
            chunks.push(log_probs.detach());
        }
        Tensor::cat(&chunks, 0)?.reshape((rows, positions))
    }

    /// log p(target) of `[n, hidden]` states through the final norm and the head, `[n]`.
    fn head_chunk(
        &self,
        states: &Tensor,
        targets: &Tensor,
        temperature: f32,
    ) -> candle_core::Result<Tensor> {
        let normed = ops::rms_norm(
            states,
            &self.weights.norm,
            self.config.rms_norm_eps,
            Mode::Differentiable,
        )?;
        self.target_log_probs_inner(&normed.unsqueeze(0)?, &targets.unsqueeze(0)?, temperature)?
            .squeeze(0)
    }

    /// The head's gradients for a chunk of `[n, hidden]` states given the gradient
    /// `grad` (`[n]`) of their log-probabilities, through candle's autograd: the store
    /// and the states' gradient. (On the CPU in f32, [`Model::head_vjp`] instead.)
    fn head_backward(
        &self,
        states: &Tensor,
        targets: &Tensor,
        grad: &Tensor,
        temperature: f32,
    ) -> candle_core::Result<(GradStore, Tensor)> {
        let leaf = Var::from_tensor(states)?;
        let log_probs = self.head_chunk(leaf.as_tensor(), targets, temperature)?;
        let store = (log_probs * grad)?.sum_all()?.backward()?;
        let grad_states = leaf_grad(&store, &leaf)?;
        Ok((store, grad_states))
    }
}
