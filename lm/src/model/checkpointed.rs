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

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::attention::{Attended, ChunkedAttention, TRAINING_SCORE_CHUNK_BYTES, query_chunk_rows};
use super::ops::{self, Mode};
use super::{LOGIT_CHUNK_ROWS, LayerWeights, Model, compute};
use crate::error::Error;

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
    cos: Tensor,
    sin: Tensor,
}

/// The batch's two parts and which prompt each row continues.
struct Layout {
    prompts: Part,
    continuations: Option<Part>,
    /// `[rows]` u32.
    source: Tensor,
}

/// Hidden states (or their gradients) of the prompts `[prompts, prompt_len, hidden]`
/// and the continuations `[rows, len, hidden]`.
struct States {
    prompts: Tensor,
    continuations: Option<Tensor>,
}

impl States {
    fn map(
        &self,
        mut f: impl FnMut(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            prompts: f(&self.prompts)?,
            continuations: self.continuations.as_ref().map(&mut f).transpose()?,
        })
    }

    /// `sum(self · grad)` over both parts: its gradient with respect to `self` is
    /// `grad`.
    fn dot(&self, grad: &Self) -> candle_core::Result<Tensor> {
        let mut total = product_sum(&self.prompts, &grad.prompts)?;
        if let (Some(x), Some(g)) = (&self.continuations, &grad.continuations) {
            total = (total + product_sum(x, g)?)?;
        }
        Ok(total)
    }
}

/// `sum(x · g)` as an f32 scalar, `g` taken in `x`'s dtype: backpropagated, `x`'s
/// gradient is `g`.
fn product_sum(x: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    (x * g.to_dtype(x.dtype())?)?
        .sum_all()?
        .to_dtype(DType::F32)
}

/// Leaves standing for [`States`], whose gradients a backward pass collects.
struct Leaves {
    prompts: Var,
    continuations: Option<Var>,
}

impl Leaves {
    fn of(states: &States) -> candle_core::Result<Self> {
        Ok(Self {
            prompts: Var::from_tensor(&states.prompts)?,
            continuations: states
                .continuations
                .as_ref()
                .map(Var::from_tensor)
                .transpose()?,
        })
    }

    fn states(&self) -> States {
        States {
            prompts: self.prompts.as_tensor().clone(),
            continuations: self.continuations.as_ref().map(|v| v.as_tensor().clone()),
        }
    }

    /// The gradients `store` holds for the leaves (zeros where nothing reached one).
    fn grads(&self, store: &GradStore) -> candle_core::Result<States> {
        Ok(States {
            prompts: leaf_grad(store, &self.prompts)?,
            continuations: self
                .continuations
                .as_ref()
                .map(|v| leaf_grad(store, v))
                .transpose()?,
        })
    }
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

/// Both parts' attention outputs in `dtype`.
fn attended_states(
    prompts: &PartAttention,
    continued: Option<&PartAttention>,
    dtype: DType,
) -> candle_core::Result<States> {
    Ok(States {
        prompts: prompts.output(dtype)?,
        continuations: continued.map(|p| p.output(dtype)).transpose()?,
    })
}

/// The chunked attention of `part` over `[q, k, v]`.
fn attention<'a>(
    exact: &'a [Tensor; 3],
    part: &'a Part,
) -> candle_core::Result<ChunkedAttention<'a>> {
    let [q, k, v] = exact;
    let planes = q.dim(0)? * q.dim(1)?;
    Ok(ChunkedAttention {
        q,
        k,
        v,
        left_pad: &part.left_pad,
        past: part.past,
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
        let mut inputs = vec![embedded.map(|x| Ok(x.detach())).map_err(fail)?];
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
        for start in (0..rows).step_by(LOGIT_CHUNK_ROWS) {
            let len = LOGIT_CHUNK_ROWS.min(rows - start);
            let chunk = |t: &Tensor| t.narrow(0, start, len);
            let (store, grad) = self
                .head_backward(
                    &chunk(&flat).map_err(fail)?,
                    &chunk(&flat_targets).map_err(fail)?,
                    &chunk(&flat_grads).map_err(fail)?,
                    temperature,
                )
                .map_err(fail)?;
            on_grads(&store)?;
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
        let store = self
            .embed_batch(batch)
            .and_then(|embedded| embedded.dot(&grad))
            .and_then(|s| s.backward())
            .map_err(fail)?;
        on_grads(&store)
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
        if batch.left_pad.len() != prompts
            || batch.source.iter().any(|&s| s >= prompts)
            || prompt_len + len > self.config.max_positions
        {
            candle_core::bail!(
                "{prompts} prompts of {prompt_len} tokens ({} paddings) continued by {rows} \
                 rows of {len} tokens, against the model's {} positions",
                batch.left_pad.len(),
                self.config.max_positions
            );
        }
        let part = |left_pad: Vec<usize>, past: usize, seq: usize| {
            let (cos, sin) = self.rotations(&left_pad, past, seq)?;
            candle_core::Result::Ok(Part {
                left_pad,
                past,
                cos,
                sin,
            })
        };
        let row_pads: Vec<usize> = batch.source.iter().map(|&s| batch.left_pad[s]).collect();
        let source: Vec<u32> = batch.source.iter().map(|&s| s as u32).collect();
        Ok(Layout {
            prompts: part(batch.left_pad.to_vec(), 0, prompt_len)?,
            continuations: batch
                .continuations
                .map(|_| part(row_pads, prompt_len, len))
                .transpose()?,
            source: Tensor::new(source, &self.device)?,
        })
    }

    /// The embeddings of the batch's two parts.
    fn embed_batch(&self, batch: &PromptedBatch<'_>) -> candle_core::Result<States> {
        Ok(States {
            prompts: self.embed(batch.prompts)?,
            continuations: batch.continuations.map(|c| self.embed(c)).transpose()?,
        })
    }

    /// Each part's attention in one block over hidden states `x`: the prompts over
    /// themselves, each continuation over its prompt's keys and values and its own.
    fn attend_parts(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &States,
    ) -> candle_core::Result<(PartAttention, Option<PartAttention>)> {
        let mode = Mode::Differentiable;
        let part = &layout.prompts;
        let (q, k, v) = self.queries_keys_values(layer, &x.prompts, &part.cos, &part.sin, mode)?;
        let continued = match (&x.continuations, &layout.continuations) {
            (Some(xc), Some(part)) => {
                let (qc, kc, vc) =
                    self.queries_keys_values(layer, xc, &part.cos, &part.sin, mode)?;
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
            _ => None,
        };
        Ok((PartAttention::new(q, k, v, &layout.prompts)?, continued))
    }

    /// One block over both parts, its output detached (the forward pass keeps only
    /// block inputs).
    fn block_forward(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &States,
    ) -> candle_core::Result<States> {
        let (prompts, continued) = self.attend_parts(layer, layout, x)?;
        let attended = attended_states(&prompts, continued.as_ref(), x.prompts.dtype())?;
        self.after_parts(layer, x, &attended)?
            .map(|out| Ok(out.detach()))
    }

    /// The rest of one block over both parts, after their attention outputs.
    fn after_parts(
        &self,
        layer: &LayerWeights,
        x: &States,
        attended: &States,
    ) -> candle_core::Result<States> {
        let mode = Mode::Differentiable;
        Ok(States {
            prompts: self.after_attention(layer, &x.prompts, &attended.prompts, mode)?,
            continuations: match (&x.continuations, &attended.continuations) {
                (Some(xc), Some(ac)) => Some(self.after_attention(layer, xc, ac, mode)?),
                _ => None,
            },
        })
    }

    /// The vector-Jacobian product of one block at its input `x` for the gradient
    /// `grad` of its output: the weight gradients (two stores: from the attention
    /// output on, then through the attention to the projections) and the gradient of
    /// `x`.
    fn block_backward(
        &self,
        layer: &LayerWeights,
        layout: &Layout,
        x: &States,
        grad: &States,
    ) -> candle_core::Result<([GradStore; 2], States)> {
        let leaves = Leaves::of(x)?;
        let x = leaves.states();
        let (prompts, continued) = self.attend_parts(layer, layout, &x)?;
        let attended = Leaves::of(&attended_states(
            &prompts,
            continued.as_ref(),
            x.prompts.dtype(),
        )?)?;
        let outputs = self.after_parts(layer, &x, &attended.states())?;
        let after = outputs.dot(grad)?.backward()?;
        let grad_attended = attended.grads(&after)?;
        let residual = leaves.grads(&after)?;
        let mut surrogate = prompts.surrogate(&layout.prompts, &grad_attended.prompts)?;
        if let (Some(part), Some(layout_part), Some(g)) = (
            &continued,
            &layout.continuations,
            &grad_attended.continuations,
        ) {
            surrogate = (surrogate + part.surrogate(layout_part, g)?)?;
        }
        let through = surrogate.backward()?;
        let through_attention = leaves.grads(&through)?;
        let grad_x = States {
            prompts: (residual.prompts + through_attention.prompts)?,
            continuations: match (residual.continuations, through_attention.continuations) {
                (Some(a), Some(b)) => Some((a + b)?),
                _ => None,
            },
        };
        Ok(([after, through], grad_x))
    }

    /// The final block's states that predict each target, `[rows, 1 + len, hidden]`:
    /// each row's prompt's last state, then its continuation's states.
    fn predicting(&self, last: &States, layout: &Layout) -> candle_core::Result<Tensor> {
        let prompt_len = last.prompts.dim(1)?;
        let ends = last
            .prompts
            .narrow(1, prompt_len - 1, 1)?
            .contiguous()?
            .index_select(&layout.source, 0)?;
        match &last.continuations {
            Some(c) => Tensor::cat(&[&ends, c], 1),
            None => Ok(ends),
        }
    }

    /// The inverse of [`Model::predicting`] for gradients: a prompt's last position
    /// gets the sum of its rows' first gradients.
    fn scatter_predicting(
        &self,
        grad: &Tensor,
        last: &States,
        layout: &Layout,
    ) -> candle_core::Result<States> {
        let (prompts, prompt_len, width) = last.prompts.dims3()?;
        let ends = Tensor::zeros((prompts, 1, width), grad.dtype(), grad.device())?.index_add(
            &layout.source,
            &grad.narrow(1, 0, 1)?.contiguous()?,
            0,
        )?;
        let grad_prompts = if prompt_len > 1 {
            let before = Tensor::zeros(
                (prompts, prompt_len - 1, width),
                grad.dtype(),
                grad.device(),
            )?;
            Tensor::cat(&[&before, &ends], 1)?
        } else {
            ends
        };
        let len = grad.dim(1)?;
        Ok(States {
            prompts: grad_prompts.to_dtype(last.prompts.dtype())?,
            continuations: match &last.continuations {
                Some(c) => Some(grad.narrow(1, 1, len - 1)?.to_dtype(c.dtype())?),
                None => None,
            },
        })
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
    /// `grad` (`[n]`) of their log-probabilities: the store and the states' gradient.
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
