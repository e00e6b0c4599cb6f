//! Exact causal attention over grouped key/value heads on the CPU in f32, forward and
//! backward, for the activation-checkpointed pass's [`ChunkedAttention`].
//!
//! Composed of candle ops, a chunk of queries took a dozen passes over its scores
//! (the mask built and added, max, subtract, exp, sum, divide; as many again in the
//! backward pass), each on the calling thread alone, and in SmolLM2's update at the
//! TRL bench's settings attention was about a tenth of the time while the other
//! thread waited. Here each (sequence, key/value head) plane is one rayon task: for a
//! block of queries at a time, each query head's scores come from one
//! single-threaded GEMM into the task's own scratch, padding and the future are
//! skipped by index (not added as -1e9), the softmax runs in place, and a second
//! GEMM multiplies the values. Scratch is two `[block, keys]` matrices per task, so
//! memory stays bounded whatever the sequence length. The backward pass recomputes
//! the probabilities from the log-sum-exp the forward pass kept, as FlashAttention
//! does, and each task owns its plane's key and value gradients, so no two tasks
//! write one element and any thread count gives the same bytes.
//!
//! A query with no key to see (a padding position before its sequence starts)
//! attends to nothing: its output is zero and it passes no gradient on. Nothing
//! reads those positions.
//!
//! [`ChunkedAttention`]: super::attention::ChunkedAttention

use candle_core::{DType, Result, Tensor, bail};
use rayon::prelude::*;

use super::exp::exp_shifted_in_place;
use super::split_gemm::{Matrix, product_into, with_f32};

/// Bytes of one task's score scratch: a block of queries takes as many rows as fit.
const SCRATCH_BYTES: usize = 1 << 20;

/// Whether these tensors take the fused form: f32 on the CPU.
pub(crate) fn applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// The shape of one attention: `q: [batch, heads, n, d]` at positions `past ..
/// past + n`, `k`, `v: [batch, kv_heads, keys, d]`.
#[derive(Clone, Copy)]
struct Shape {
    batch: usize,
    kv_heads: usize,
    group: usize,
    n: usize,
    keys: usize,
    dim: usize,
    past: usize,
    scale: f32,
}

impl Shape {
    fn of(q: &Tensor, k: &Tensor, v: &Tensor, left_pad: &[usize], past: usize) -> Result<Self> {
        let (batch, heads, n, dim) = q.dims4()?;
        let (k_batch, kv_heads, keys, k_dim) = k.dims4()?;
        if k.dims() != v.dims()
            || k_batch != batch
            || k_dim != dim
            || kv_heads == 0
            || heads % kv_heads != 0
            || keys < past + n
            || dim == 0
            || left_pad.len() != batch
        {
            bail!(
                "attention: q {:?}, k {:?}, v {:?}, {} paddings, {past} positions before",
                q.dims(),
                k.dims(),
                v.dims(),
                left_pad.len()
            );
        }
        Ok(Self {
            batch,
            kv_heads,
            group: heads / kv_heads,
            n,
            keys,
            dim,
            past,
            scale: (1.0 / (dim as f64).sqrt()) as f32,
        })
    }

    /// Elements of one plane's queries (its group of heads), and of its keys.
    fn query_plane(&self) -> usize {
        self.group * self.n * self.dim
    }

    fn key_plane(&self) -> usize {
        self.keys * self.dim
    }

    /// Plane `plane` (sequence `plane / kv_heads`) of the operands.
    fn plane<'a>(
        &self,
        plane: usize,
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        left_pad: &[usize],
    ) -> Plane<'a> {
        Plane {
            q: plane_of(q, plane, self.query_plane()),
            k: plane_of(k, plane, self.key_plane()),
            v: plane_of(v, plane, self.key_plane()),
            pad: left_pad[plane / self.kv_heads],
        }
    }

    /// Queries per block: as many as fit the scratch, at least one.
    fn block(&self) -> usize {
        (SCRATCH_BYTES / (4 * self.keys.max(1))).clamp(1, self.n.max(1))
    }
}

/// Plane `plane` of `values`, planes of `size` elements.
fn plane_of(values: &[f32], plane: usize, size: usize) -> &[f32] {
    &values[plane * size..(plane + 1) * size]
}

/// One block of queries of one head within a plane: its rows `first..first + len`,
/// the keys they may see, `seen_from..seen_to`, and where each row's own keys end.
#[derive(Clone, Copy)]
struct Block {
    first: usize,
    len: usize,
    seen_from: usize,
    seen_to: usize,
}

impl Block {
    fn new(shape: &Shape, pad: usize, first: usize, len: usize) -> Self {
        let seen_to = (shape.past + first + len).min(shape.keys);
        Self {
            first,
            len,
            seen_from: pad.min(seen_to),
            seen_to,
        }
    }

    fn width(&self) -> usize {
        self.seen_to - self.seen_from
    }

    /// The keys row `r` of the block sees, counted from `seen_from` (none for a query
    /// inside its sequence's padding).
    fn row_width(&self, shape: &Shape, r: usize) -> usize {
        (shape.past + self.first + r + 1)
            .saturating_sub(self.seen_from)
            .min(self.width())
    }
}

/// The blocks of queries of a plane whose sequence has `pad` positions of padding.
fn blocks(shape: &Shape, pad: usize) -> impl Iterator<Item = Block> + '_ {
    let size = shape.block();
    (0..shape.n)
        .step_by(size)
        .map(move |first| Block::new(shape, pad, first, size.min(shape.n - first)))
}

/// Rows `first..first + len` of a row-major matrix of `width` columns.
fn rows(values: &[f32], first: usize, len: usize, width: usize) -> Result<Matrix<'_>> {
    Matrix::row_major(&values[first * width..(first + len) * width], len, width)
}

/// One attention's operands: queries `q: [batch, heads, n, d]` at positions `past ..
/// past + n` over keys and values `k`, `v: [batch, kv_heads, keys, d]` of sequences
/// with `left_pad` padding.
#[derive(Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub(crate) q: &'a Tensor,
    pub(crate) k: &'a Tensor,
    pub(crate) v: &'a Tensor,
    pub(crate) left_pad: &'a [usize],
    pub(crate) past: usize,
}

/// The attention output (`[batch, heads, n, d]`) and each query's log-sum-exp of
/// its scores (`[batch, heads, n]`).
pub(crate) fn forward(operands: Operands<'_>) -> Result<(Tensor, Tensor)> {
    let Operands {
        q,
        k,
        v,
        left_pad,
        past,
    } = operands;
    let shape = Shape::of(q, k, v, left_pad, past)?;
    let mut out = vec![0.0f32; shape.batch * shape.kv_heads * shape.query_plane()];
    let mut lse = vec![0.0f32; shape.batch * shape.kv_heads * shape.group * shape.n];
    with_f32([q, k, v], |[q, k, v]| {
        out.par_chunks_mut(shape.query_plane().max(1))
            .zip(lse.par_chunks_mut((shape.group * shape.n).max(1)))
            .enumerate()
            .try_for_each(|(plane, (out, lse))| {
                shape
                    .plane(plane, q, k, v, left_pad)
                    .forward(&shape, out, lse)
            })
    })?;
    let device = q.device();
    Ok((
        Tensor::from_vec(out, q.shape(), device)?,
        Tensor::from_vec(
            lse,
            (shape.batch, shape.kv_heads * shape.group, shape.n),
            device,
        )?,
    ))
}

/// The gradients of `q`, `k` and `v` given the gradient `grad` of the output `out`
/// that [`forward`] gave with `lse`.
pub(crate) fn backward(
    operands: Operands<'_>,
    out: &Tensor,
    lse: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let Operands {
        q,
        k,
        v,
        left_pad,
        past,
    } = operands;
    let shape = Shape::of(q, k, v, left_pad, past)?;
    if out.dims() != q.dims() || grad.dims() != q.dims() {
        bail!(
            "attention backward: q {:?}, output {:?}, gradient {:?}",
            q.dims(),
            out.dims(),
            grad.dims()
        );
    }
    let mut grad_q = vec![0.0f32; shape.batch * shape.kv_heads * shape.query_plane()];
    let mut grad_k = vec![0.0f32; shape.batch * shape.kv_heads * shape.key_plane()];
    let mut grad_v = vec![0.0f32; grad_k.len()];
    let (query_plane, key_plane) = (shape.query_plane().max(1), shape.key_plane().max(1));
    with_f32([q, k, v, out, lse, grad], |[q, k, v, out, lse, grad]| {
        grad_q
            .par_chunks_mut(query_plane)
            .zip(grad_k.par_chunks_mut(key_plane))
            .zip(grad_v.par_chunks_mut(key_plane))
            .enumerate()
            .try_for_each(|(plane, ((grad_q, grad_k), grad_v))| {
                let kept = Kept {
                    out: plane_of(out, plane, shape.query_plane()),
                    lse: plane_of(lse, plane, shape.group * shape.n),
                    grad: plane_of(grad, plane, shape.query_plane()),
                };
                shape.plane(plane, q, k, v, left_pad).backward(
                    &shape,
                    &kept,
                    [grad_q, grad_k, grad_v],
                )
            })
    })?;
    let device = q.device();
    Ok((
        Tensor::from_vec(grad_q, q.shape(), device)?,
        Tensor::from_vec(grad_k, k.shape(), device)?,
        Tensor::from_vec(grad_v, v.shape(), device)?,
    ))
}

/// One (sequence, key/value head) plane: its group of query heads `[group · n, d]`,
/// keys and values `[keys, d]`, and its sequence's padding.
struct Plane<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    pad: usize,
}

/// What the backward pass reads of a plane besides its operands: the forward pass's
/// output and log-sum-exp, and the output's gradient.
struct Kept<'a> {
    out: &'a [f32],
    lse: &'a [f32],
    grad: &'a [f32],
}

impl Plane<'_> {
    /// The scores of `head`'s queries in `block` against the keys they may see,
    /// scaled, into `scores` (`[len, width]`).
    fn scores(&self, shape: &Shape, head: usize, block: Block, scores: &mut [f32]) -> Result<()> {
        let queries = rows(self.q, head * shape.n + block.first, block.len, shape.dim)?;
        let keys = rows(self.k, block.seen_from, block.width(), shape.dim)?;
        product_into(queries, keys.t(), scores, shape.scale, false)
    }

    fn forward(&self, shape: &Shape, out: &mut [f32], lse: &mut [f32]) -> Result<()> {
        let dim = shape.dim;
        let (mut scores, mut totals) = (Vec::new(), Vec::new());
        for head in 0..shape.group {
            for block in blocks(shape, self.pad) {
                let (width, first) = (block.width(), head * shape.n + block.first);
                // Rows that see no key keep the zeros they start with.
                if width == 0 {
                    continue;
                }
                scores.resize(block.len * width, 0.0);
                self.scores(shape, head, block, &mut scores)?;
                totals.clear();
                for (r, row) in scores.chunks_exact_mut(width).enumerate() {
                    totals.push(softmax_weights(row, block.row_width(shape, r)));
                }
                let weights = Matrix::row_major(&scores, block.len, width)?;
                let values = rows(self.v, block.seen_from, width, dim)?;
                let out = &mut out[first * dim..(first + block.len) * dim];
                product_into(weights, values, out, 1.0, false)?;
                let lse = &mut lse[first..first + block.len];
                for ((row, lse), &(max, sum)) in out.chunks_exact_mut(dim).zip(lse).zip(&totals) {
                    if sum == 0.0 {
                        row.fill(0.0);
                        continue;
                    }
                    *lse = max + sum.ln();
                    for value in row.iter_mut() {
                        *value /= sum;
                    }
                }
            }
        }
        Ok(())
    }

    fn backward(&self, shape: &Shape, kept: &Kept<'_>, grads: [&mut [f32]; 3]) -> Result<()> {
        let [grad_q, grad_k, grad_v] = grads;
        let dim = shape.dim;
        let (mut probs, mut grad_scores) = (Vec::new(), Vec::new());
        for head in 0..shape.group {
            for block in blocks(shape, self.pad) {
                let width = block.width();
                if width == 0 {
                    continue;
                }
                let first = head * shape.n + block.first;
                probs.resize(block.len * width, 0.0);
                grad_scores.resize(block.len * width, 0.0);
                self.scores(shape, head, block, &mut probs)?;
                let grad_out = rows(kept.grad, first, block.len, dim)?;
                let values = rows(self.v, block.seen_from, width, dim)?;
                // dP = dO·Vᵀ, then dS = P ∘ (dP − rowsum(dO ∘ O)) · scale.
                product_into(grad_out, values.t(), &mut grad_scores, 1.0, false)?;
                for (r, (p, g)) in probs
                    .chunks_exact_mut(width)
                    .zip(grad_scores.chunks_exact_mut(width))
                    .enumerate()
                {
                    let seen = block.row_width(shape, r);
                    let row = (first + r) * dim..(first + r + 1) * dim;
                    let row_dot: f32 = kept.grad[row.clone()]
                        .iter()
                        .zip(&kept.out[row])
                        .map(|(a, b)| a * b)
                        .sum();
                    let lse = kept.lse[first + r];
                    exp_shifted_in_place(&mut p[..seen], lse);
                    for (p, g) in p[..seen].iter().zip(&mut g[..seen]) {
                        *g = p * (*g - row_dot) * shape.scale;
                    }
                    p[seen..].fill(0.0);
                    g[seen..].fill(0.0);
                }
                let keys = rows(self.k, block.seen_from, width, dim)?;
                let grad_scores_m = Matrix::row_major(&grad_scores, block.len, width)?;
                let probs_m = Matrix::row_major(&probs, block.len, width)?;
                let queries = rows(self.q, first, block.len, dim)?;
                let seen = block.seen_from * dim..block.seen_to * dim;
                product_into(
                    grad_scores_m,
                    keys,
                    &mut grad_q[first * dim..(first + block.len) * dim],
                    1.0,
                    false,
                )?;
                product_into(
                    grad_scores_m.t(),
                    queries,
                    &mut grad_k[seen.clone()],
                    1.0,
                    true,
                )?;
                product_into(probs_m.t(), grad_out, &mut grad_v[seen], 1.0, true)?;
            }
        }
        Ok(())
    }
}

/// Turns a row of scores into its softmax weights before normalisation over its first
/// `seen` entries, `exp(s − max)`, zero past them; returns the max and the weights'
/// sum (zero when the row sees nothing).
fn softmax_weights(row: &mut [f32], seen: usize) -> (f32, f32) {
    let (visible, hidden) = row.split_at_mut(seen.min(row.len()));
    hidden.fill(0.0);
    if visible.is_empty() {
        return (0.0, 0.0);
    }
    let max = visible.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    exp_shifted_in_place(visible, max);
    let mut sum = 0.0f32;
    for value in visible.iter() {
        sum += *value;
    }
    (max, sum)
}
