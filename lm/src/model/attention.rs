//! Causal attention with grouped key/value heads: the mask (built on the device), the
//! whole-matrix form a differentiable pass records, the query-chunked form inference
//! runs, and [`ChunkedAttention`], the exact attention an activation-checkpointed
//! backward pass uses: forward and backward in query chunks, so one chunk's scores
//! (not `[batch, heads, L, L]`) are alive at once, whatever the sequence length.

use candle_core::{D, DType, Device, Tensor};

use super::fused_attention::{self, Operands};
use super::ops::{self, Mode};

/// Bytes of f32 attention scores an inference pass computes at once: queries run in
/// chunks whose scores fit, so long sequences neither hold `[batch, heads, L, L]` nor
/// map and fault in fresh pages for it in every layer (tagging 2,048-token contexts
/// spent 42% of its CPU time in the kernel doing that).
pub(crate) const SCORE_CHUNK_BYTES: usize = 8 << 20;

/// Bytes of f32 scores a chunk of [`ChunkedAttention`] computes at once; its backward
/// pass holds about four such tensors (scores, probabilities and their gradients).
pub(crate) const TRAINING_SCORE_CHUNK_BYTES: usize = 32 << 20;

/// Queries per chunk for `planes` (batch × heads) score planes of `keys` keys within
/// `budget` bytes of f32 scores.
pub(crate) fn query_chunk_rows(budget: usize, planes: usize, keys: usize) -> usize {
    (budget / (4 * planes * keys).max(1)).max(1)
}

/// Additive mask `[batch, 1, seq, past + seq]`: 0 where a new token may attend (not
/// padding, not the future), -1e9 elsewhere. Built on `device` from the padding and two
/// position ranges; only `batch` numbers cross from the host.
pub(crate) fn causal_mask(
    left_pad: &[usize],
    past: usize,
    seq: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let (batch, total) = (left_pad.len(), past + seq);
    let pads: Vec<u32> = left_pad.iter().map(|&pad| pad as u32).collect();
    let pads = Tensor::from_vec(pads, (batch, 1, 1, 1), device)?;
    let keys = Tensor::arange(0u32, total as u32, device)?.reshape((1, 1, 1, total))?;
    let queries = Tensor::arange(past as u32, total as u32, device)?.reshape((1, 1, seq, 1))?;
    let not_padding = keys.broadcast_ge(&pads)?;
    let not_future = keys.broadcast_le(&queries)?;
    let allowed = not_padding
        .broadcast_mul(&not_future)?
        .to_dtype(DType::F32)?;
    // 1 → 0, 0 → -1e9, exactly.
    allowed.affine(1e9, -1e9)
}

/// [`grouped_attention`] (inference) over `rows` queries at a time.
pub(crate) fn chunked_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    rows: usize,
) -> candle_core::Result<Tensor> {
    let seq = q.dim(2)?;
    if rows >= seq {
        return grouped_attention(q, k, v, mask, Mode::Inference);
    }
    let chunks = (0..seq)
        .step_by(rows.max(1))
        .map(|start| {
            let len = rows.min(seq - start);
            grouped_attention(
                &q.narrow(2, start, len)?,
                k,
                v,
                &mask.narrow(2, start, len)?,
                Mode::Inference,
            )
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&chunks, 2)
}

/// softmax(q kᵀ / √d + mask) v for `q: [batch, heads, n, d]`, `k`, `v: [batch,
/// kv_heads, keys, d]` (each key/value head serving `heads / kv_heads` consecutive
/// query heads), `mask: [batch, 1, n, keys]`. The query heads of one key/value head
/// are stacked into one matrix, so keys and values are never repeated per query head
/// and `k`, `v` may be views (a cache's filled part).
pub(crate) fn grouped_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    mode: Mode,
) -> candle_core::Result<Tensor> {
    let (batch, heads, seq, dim) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let stacked = stack_heads(q, kv_heads)?;
    let scores = (stacked.matmul(&k.t()?)? * scale(dim))?;
    let scores = unstack(&scores, heads / kv_heads, seq)?
        .broadcast_add(&mask.to_dtype(q.dtype())?.unsqueeze(2)?)?;
    let probs = ops::softmax(&scores, mode)?;
    probs
        .reshape((batch, kv_heads, heads / kv_heads * seq, k.dim(2)?))?
        .matmul(v)?
        .reshape((batch, heads, seq, dim))
}

/// 1 / √d.
fn scale(dim: usize) -> f64 {
    1.0 / (dim as f64).sqrt()
}

/// `[batch, heads, n, x]` → `[batch, kv_heads, heads / kv_heads · n, x]`: the query
/// heads of each key/value head as one matrix.
fn stack_heads(x: &Tensor, kv_heads: usize) -> candle_core::Result<Tensor> {
    let (batch, heads, n, width) = x.dims4()?;
    x.contiguous()?
        .reshape((batch, kv_heads, heads / kv_heads * n, width))
}

/// `[batch, kv_heads, group · n, x]` → `[batch, kv_heads, group, n, x]`.
fn unstack(x: &Tensor, group: usize, n: usize) -> candle_core::Result<Tensor> {
    let (batch, kv_heads, _, width) = x.dims4()?;
    x.reshape((batch, kv_heads, group, n, width))
}

/// Exact causal attention of queries `q: [batch, heads, n, d]` at positions `past ..
/// past + n` over keys and values `k`, `v: [batch, kv_heads, past + n, d]` of
/// sequences with `left_pad` padding, all f32, computed `rows` queries at a time. A
/// chunk sees only the keys up to its last query (the rest are the future), its
/// mask is built for it, and its softmax is whole (every key of a query is in the
/// chunk's scores), so chunking changes nothing but what is alive at once.
/// [`ChunkedAttention::backward`] recomputes each chunk's probabilities from the
/// log-sum-exp the forward pass kept, as FlashAttention does.
pub(crate) struct ChunkedAttention<'a> {
    pub(crate) operands: Operands<'a>,
    pub(crate) rows: usize,
}

/// One query chunk's stacked queries, its keys and values, and its masked scores.
struct Chunk {
    len: usize,
    /// `[batch, kv_heads, group · len, d]`.
    queries: Tensor,
    /// `[batch, kv_heads, keys, d]`: keys up to the chunk's last query.
    keys: Tensor,
    values: Tensor,
    /// `[batch, kv_heads, group, len, keys]`, scaled and masked.
    scores: Tensor,
}

/// What [`ChunkedAttention::forward`] returns.
pub(crate) struct Attended {
    /// `[batch, heads, n, d]` f32.
    pub(crate) out: Tensor,
    log_sum_exp: LogSumExp,
}

/// Each query's log-sum-exp of its scores, as the form that computed them keeps it.
enum LogSumExp {
    /// Composed of candle ops: each chunk's, `[batch, kv_heads, group, len, 1]`.
    Chunks(Vec<Tensor>),
    /// [`fused_attention`]'s: `[batch, heads, n]`.
    Fused(Tensor),
}

impl ChunkedAttention<'_> {
    fn group(&self) -> candle_core::Result<usize> {
        Ok(self.operands.q.dim(1)? / self.operands.k.dim(1)?)
    }

    fn chunk(&self, start: usize) -> candle_core::Result<Chunk> {
        let n = self.operands.q.dim(2)?;
        let len = self.rows.max(1).min(n - start);
        let (kv_heads, dim) = (self.operands.k.dim(1)?, self.operands.q.dim(3)?);
        let seen = self.operands.past + start + len;
        let queries = stack_heads(&self.operands.q.narrow(2, start, len)?, kv_heads)?;
        let keys = self.operands.k.narrow(2, 0, seen)?;
        let values = self.operands.v.narrow(2, 0, seen)?;
        let mask = causal_mask(
            self.operands.left_pad,
            self.operands.past + start,
            len,
            self.operands.q.device(),
        )?;
        let scores = (queries.matmul(&keys.t()?)? * scale(dim))?;
        let scores = unstack(&scores, self.group()?, len)?.broadcast_add(&mask.unsqueeze(2)?)?;
        Ok(Chunk {
            len,
            queries,
            keys,
            values,
            scores,
        })
    }

    fn starts(&self) -> candle_core::Result<impl Iterator<Item = usize>> {
        Ok((0..self.operands.q.dim(2)?).step_by(self.rows.max(1)))
    }

    /// The attention output and what the backward pass needs of it: on the CPU,
    /// [`fused_attention`]'s (it needs no chunks: its scratch is bounded), elsewhere
    /// candle's ops chunk by chunk.
    pub(crate) fn forward(&self) -> candle_core::Result<Attended> {
        if fused_attention::applies(&[self.operands.q, self.operands.k, self.operands.v]) {
            let (out, lse) = fused_attention::forward(self.operands)?;
            return Ok(Attended {
                out,
                log_sum_exp: LogSumExp::Fused(lse),
            });
        }
        self.composed_forward()
    }

    /// [`ChunkedAttention::forward`] composed of candle's ops, chunk by chunk.
    fn composed_forward(&self) -> candle_core::Result<Attended> {
        let (batch, heads, _, dim) = self.operands.q.dims4()?;
        let mut outs = Vec::new();
        let mut log_sum_exp = Vec::new();
        for start in self.starts()? {
            let chunk = self.chunk(start)?;
            let max = chunk.scores.max_keepdim(D::Minus1)?;
            let weights = chunk.scores.broadcast_sub(&max)?.exp()?;
            let total = weights.sum_keepdim(D::Minus1)?;
            let (kv_heads, group) = (self.operands.k.dim(1)?, self.group()?);
            let keys = chunk.keys.dim(2)?;
            let out = weights
                .reshape((batch, kv_heads, group * chunk.len, keys))?
                .matmul(&chunk.values)?;
            let out = unstack(&out, group, chunk.len)?.broadcast_div(&total)?;
            outs.push(out.reshape((batch, heads, chunk.len, dim))?);
            log_sum_exp.push((max + total.log()?)?);
        }
        Ok(Attended {
            out: Tensor::cat(&outs, 2)?,
            log_sum_exp: LogSumExp::Chunks(log_sum_exp),
        })
    }

    /// Gradients of `q`, `k` and `v` given the gradient `grad` of the output
    /// `attended.out` (both `[batch, heads, n, d]`).
    pub(crate) fn backward(
        &self,
        attended: &Attended,
        grad: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let chunks = match &attended.log_sum_exp {
            LogSumExp::Fused(lse) => {
                return fused_attention::backward(self.operands, &attended.out, lse, grad);
            }
            LogSumExp::Chunks(chunks) => chunks,
        };
        let (batch, heads, _, dim) = self.operands.q.dims4()?;
        let (kv_heads, group) = (self.operands.k.dim(1)?, self.group()?);
        let grad_k = self.operands.k.zeros_like()?;
        let grad_v = self.operands.v.zeros_like()?;
        let mut grad_q = Vec::new();
        for (start, log_sum_exp) in self.starts()?.zip(chunks) {
            let Chunk {
                len,
                queries,
                keys,
                values,
                scores,
            } = self.chunk(start)?;
            let seen = keys.dim(2)?;
            let probs = scores.broadcast_sub(log_sum_exp)?.exp()?;
            let grad_out = stack_heads(&grad.narrow(2, start, len)?, kv_heads)?;
            let out = stack_heads(&attended.out.narrow(2, start, len)?, kv_heads)?;
            // dS = P ∘ (dO Vᵀ − rowsum(dO ∘ O)), the softmax's vector-Jacobian product.
            let grad_probs = unstack(&grad_out.matmul(&values.t()?)?, group, len)?;
            let row_dot = unstack(&(&grad_out * &out)?.sum_keepdim(D::Minus1)?, group, len)?;
            let grad_scores = (probs.clone() * grad_probs.broadcast_sub(&row_dot)?)?.reshape((
                batch,
                kv_heads,
                group * len,
                seen,
            ))? * scale(dim);
            let grad_scores = grad_scores?;
            let probs = probs.reshape((batch, kv_heads, group * len, seen))?;
            grad_q.push(
                grad_scores
                    .matmul(&keys)?
                    .reshape((batch, heads, len, dim))?,
            );
            accumulate(&grad_k, &grad_scores.t()?.matmul(&queries)?)?;
            accumulate(&grad_v, &probs.t()?.matmul(&grad_out)?)?;
        }
        Ok((Tensor::cat(&grad_q, 2)?, grad_k, grad_v))
    }
}

/// Adds `part` (`[.., keys, d]`) into the first `keys` positions of `sum` in place.
fn accumulate(sum: &Tensor, part: &Tensor) -> candle_core::Result<()> {
    let keys = part.dim(2)?;
    let added = (sum.narrow(2, 0, keys)? + part)?;
    sum.slice_set(&added, 2, 0)
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::model::{max_difference, spread_values};

    #[test]
    fn attention_in_query_chunks_equals_attention_at_once() {
        let device = Device::Cpu;
        let (batch, heads, seq, dim) = (2, 3, 11, 8);
        let q = Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap();
        let mask = causal_mask(&[0, 0], 0, seq, &device).unwrap();
        let whole = grouped_attention(&q, &k, &v, &mask, Mode::Inference).unwrap();
        for rows in [1, 3, 4, 11, 64] {
            let chunked = chunked_attention(&q, &k, &v, &mask, rows).unwrap();
            let difference = max_difference(&chunked, &whole);
            assert!(difference < 1e-6, "{rows} rows: {difference}");
        }
        assert_eq!(query_chunk_rows(SCORE_CHUNK_BYTES, 2 * 9, 2048), 56);
        assert_eq!(query_chunk_rows(SCORE_CHUNK_BYTES, 1, usize::MAX / 8), 1);
    }

    /// Query heads that share a key/value head, stacked, attend as if the keys and
    /// values were repeated for each of them (how Hugging Face computes GQA).
    #[test]
    fn grouped_query_attention_equals_attention_over_repeated_heads() {
        let device = Device::Cpu;
        let (batch, heads, kv_heads, seq, dim) = (2, 6, 2, 5, 4);
        let q = Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (batch, kv_heads, seq, dim), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (batch, kv_heads, seq, dim), &device).unwrap();
        let mask = Tensor::zeros((batch, 1, seq, seq), DType::F32, &device).unwrap();
        let repeat = |x: &Tensor| {
            x.unsqueeze(2)
                .unwrap()
                .expand((batch, kv_heads, heads / kv_heads, seq, dim))
                .unwrap()
                .reshape((batch, heads, seq, dim))
                .unwrap()
        };
        let expected = grouped_attention(&q, &repeat(&k), &repeat(&v), &mask, Mode::Inference);
        for mode in [Mode::Inference, Mode::Differentiable] {
            let grouped = grouped_attention(&q, &k, &v, &mask, mode).unwrap();
            let difference = max_difference(&grouped, expected.as_ref().unwrap());
            assert!(difference < 1e-6, "{mode:?}: {difference}");
        }
    }

    /// The chunked attention of `[q, k, v]`, `rows` queries a chunk.
    fn chunked<'a>(
        [q, k, v]: [&'a Tensor; 3],
        left_pad: &'a [usize],
        past: usize,
        rows: usize,
    ) -> ChunkedAttention<'a> {
        let operands = Operands {
            q,
            k,
            v,
            left_pad,
            past,
        };
        ChunkedAttention { operands, rows }
    }

    /// Attention over the whole score matrix through autograd, and the gradients of
    /// `q`, `k`, `v` for the output's gradient `grad_out`.
    fn whole_matrix(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        left_pad: &[usize],
        past: usize,
        grad_out: &Tensor,
    ) -> (Tensor, [Tensor; 3]) {
        let vars = [q, k, v].map(|t| Var::from_tensor(t).unwrap());
        let mask = causal_mask(left_pad, past, q.dim(2).unwrap(), q.device()).unwrap();
        let whole =
            grouped_attention(&vars[0], &vars[1], &vars[2], &mask, Mode::Differentiable).unwrap();
        let store = (&whole * grad_out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grads = vars.each_ref().map(|var| store.get(var).unwrap().clone());
        (whole, grads)
    }

    /// Asserts that `attention`'s backward pass from `attended` gives `expected` (the
    /// gradients of q, k and v) to 1e-5.
    fn assert_gradients(
        attention: &ChunkedAttention<'_>,
        attended: &Attended,
        grad_out: &Tensor,
        expected: &[Tensor; 3],
        case: &str,
    ) {
        let (gq, gk, gv) = attention.backward(attended, grad_out).unwrap();
        for (name, found, expected) in [
            ("q", gq, &expected[0]),
            ("k", gk, &expected[1]),
            ("v", gv, &expected[2]),
        ] {
            let difference = max_difference(&found, expected);
            assert!(difference < 1e-5, "{case}: d{name} {difference}");
        }
    }

    /// The chunked training attention gives the whole-matrix attention's output and,
    /// through its own backward pass, autograd's gradients of it — for queries after
    /// earlier keys (a continuation after its prompt), padded rows, grouped heads, and
    /// every chunk size down to one query; in both its forms, fused and composed.
    #[test]
    fn chunked_attention_and_its_backward_pass_equal_autograd_over_the_whole_matrix() {
        let device = Device::Cpu;
        let (batch, heads, kv_heads, past, n, dim) = (2, 6, 2, 4, 7, 8);
        let left_pad = [0, 3];
        let randn = |heads: usize, seq: usize| {
            Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap()
        };
        let (q, k, v) = (
            randn(heads, n),
            randn(kv_heads, past + n),
            randn(kv_heads, past + n),
        );
        let grad_out = randn(heads, n);
        let (whole, expected) = whole_matrix(&q, &k, &v, &left_pad, past, &grad_out);
        for rows in [1, 2, 3, 7, 100] {
            let attention = chunked([&q, &k, &v], &left_pad, past, rows);
            let forms = [
                ("fused", attention.forward().unwrap()),
                ("composed", attention.composed_forward().unwrap()),
            ];
            assert!(matches!(forms[0].1.log_sum_exp, LogSumExp::Fused(_)));
            for (form, attended) in forms {
                let out_difference = max_difference(&attended.out, &whole);
                assert!(
                    out_difference < 1e-5,
                    "{form}, {rows} rows: output {out_difference}"
                );
                let case = format!("{form}, {rows} rows");
                assert_gradients(&attention, &attended, &grad_out, &expected, &case);
            }
        }
    }

    /// A query inside its sequence's padding sees no key: the fused form gives it a
    /// zero output and passes none of its gradient on; every other query gets what
    /// the whole matrix gives.
    #[test]
    fn the_fused_form_gives_a_query_inside_the_padding_nothing() {
        let device = Device::Cpu;
        let (batch, heads, kv_heads, n, dim) = (2, 4, 2, 6, 8);
        let left_pad = [0, 3];
        let values = |heads: usize, seed: u64| spread_values(&[batch, heads, n, dim], seed);
        let (q, k, v) = (values(heads, 1), values(kv_heads, 2), values(kv_heads, 3));
        // The padding queries' rows of the output gradient are zero.
        let keep = Tensor::from_vec(
            (0..batch * n)
                .map(|i| f32::from(i % n >= left_pad[i / n]))
                .collect::<Vec<f32>>(),
            (batch, 1, n, 1),
            &device,
        )
        .unwrap();
        let grad_out = values(heads, 4).broadcast_mul(&keep).unwrap();
        let (whole, expected) = whole_matrix(&q, &k, &v, &left_pad, 0, &grad_out);
        let attention = chunked([&q, &k, &v], &left_pad, 0, n);
        let attended = attention.forward().unwrap();
        let kept_whole = whole.broadcast_mul(&keep).unwrap();
        assert!(max_difference(&attended.out, &kept_whole) < 1e-5);
        let padding_rows = attended.out.get(1).unwrap().narrow(1, 0, 3).unwrap();
        assert_eq!(
            max_difference(&padding_rows, &padding_rows.zeros_like().unwrap()),
            0.0
        );
        assert_gradients(&attention, &attended, &grad_out, &expected, "padding");
    }

    /// The device-built mask is the one a host loop writes: 0 where a token may attend
    /// (past its padding, not after itself), -1e9 elsewhere.
    #[test]
    fn the_mask_lets_tokens_see_past_their_padding_and_not_the_future() {
        for (left_pad, past, seq) in [
            (vec![0], 0, 1),
            (vec![0, 2, 5], 0, 6),
            (vec![3, 0], 4, 1),
            (vec![1, 4], 6, 3),
        ] {
            let total = past + seq;
            let expected: Vec<f32> = left_pad
                .iter()
                .flat_map(|&pad| {
                    (0..seq).flat_map(move |i| {
                        (0..total).map(move |key| {
                            if key >= pad && key <= past + i {
                                0.0
                            } else {
                                -1e9
                            }
                        })
                    })
                })
                .collect();
            let mask = causal_mask(&left_pad, past, seq, &Device::Cpu).unwrap();
            assert_eq!(mask.dims(), [left_pad.len(), 1, seq, total]);
            let found: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(found, expected, "{left_pad:?} past {past} seq {seq}");
        }
    }

    /// Long enough that the fused form runs its queries in several blocks (each
    /// block's keys end at its last query), it gives the composed form's output and
    /// gradients.
    #[test]
    fn the_fused_form_over_several_query_blocks_equals_the_composed_one() {
        let (past, n, dim) = (40, 600, 8);
        let values = |heads: usize, seq: usize, seed: u64| {
            (spread_values(&[1, heads, seq, dim], seed) * 0.3).unwrap()
        };
        let (q, k, v) = (
            values(4, n, 1),
            values(2, past + n, 2),
            values(2, past + n, 3),
        );
        let grad_out = values(4, n, 4);
        let attention = chunked([&q, &k, &v], &[7], past, 64);
        let fused = attention.forward().unwrap();
        let composed = attention.composed_forward().unwrap();
        assert!(max_difference(&fused.out, &composed.out) < 1e-5);
        let (gq, gk, gv) = attention.backward(&composed, &grad_out).unwrap();
        assert_gradients(&attention, &fused, &grad_out, &[gq, gk, gv], "blocks");
    }
}
