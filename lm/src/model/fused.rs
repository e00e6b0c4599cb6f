//! The training pass's elementwise operations as single candle ops with their own
//! backward passes, on the CPU in f32: RMS norm, rotary embedding, SwiGLU, and the
//! log-probability of each row's target token under the softmax of its logits.
//!
//! Composed from candle's differentiable ops, an RMS norm is seven recorded ops, a
//! rotary embedding ten and `silu(gate) · up` two (silu's backward alone takes five
//! passes over its input). In the backward pass every recorded op allocates its
//! gradient, and candle adds each first gradient into a freshly zeroed tensor: a
//! decoder block's elementwise work was some seventy allocations and passes over its
//! activations (and the log-softmax of the head, five ops, as many tensors the size
//! of the logits — 50 MB for 256 rows of SmolLM2). Here each operation is one op; its
//! backward pass reads its inputs and the output's gradient once and writes the
//! inputs' gradients once.
//!
//! Each backward pass is built from detached operands (as `projection.rs` explains, a
//! gradient built on a tracked input would keep that input's graph alive). Rows are
//! split across rayon's threads in fixed blocks, and the weight gradient of the norm
//! sums the blocks' partial sums in block order, so any thread count gives the same
//! bytes. Other devices and dtypes keep the composed forms (`ops.rs`), which the tests
//! hold these to.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::exp::{exp_in_place, exp_shifted_in_place};
use super::projection::contiguous;

/// Rows a rayon task takes.
const ROWS_PER_TASK: usize = 16;

/// Whether the fused ops take these tensors: f32 on the CPU.
pub(crate) fn applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// RMS norm of `x: [.., d]` over its last dimension, scaled by `weight: [d]`.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
}

/// Rotary embedding, halves convention, of `x: [batch, heads, seq, d]` with `cos`,
/// `sin: [batch, seq, d / 2]`.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
}

/// `silu(gate) · up`, elementwise.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

/// log softmax(`logits`)[target] of each row: `logits: [rows, vocab]` f32, `targets:
/// [rows]` u32; `[rows]`.
pub(crate) fn target_log_probs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, TargetLogProbs)
}

/// The gradients of [`rms_norm`]'s input and weight for the gradient `grad` of its
/// output, with no graph.
pub(crate) fn rms_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    eps: f64,
    grad: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (x, weight, grad) = (x.detach(), weight.detach(), grad.detach().contiguous()?);
    let eps = eps as f32;
    let grad_x = x.apply_op3_no_bwd(&weight, &grad, &RmsNormInputGrad { eps })?;
    let grad_weight = x.apply_op2_no_bwd(&grad, &RmsNormWeightGrad { eps })?;
    Ok((grad_x, grad_weight))
}

/// The gradient of [`rope`]'s input for the gradient `grad` of its output (the
/// rotation by the opposite angles), with no graph.
pub(crate) fn rope_backward(grad: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    grad.detach()
        .contiguous()?
        .apply_op3_no_bwd(&cos.detach(), &sin.detach().neg()?, &Rope)
}

/// The gradients of [`swiglu`]'s gate and up for the gradient `grad` of its output,
/// with no graph.
pub(crate) fn swiglu_backward(
    gate: &Tensor,
    up: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (gate, up, grad) = (gate.detach(), up.detach(), grad.detach().contiguous()?);
    // d/d up = grad · silu(gate): this op on (gate, grad).
    let grad_up = gate.apply_op2_no_bwd(&grad, &SwiGlu)?;
    let grad_gate = gate.apply_op3_no_bwd(&up, &grad, &SwiGluGateGrad)?;
    Ok((grad_gate, grad_up))
}

/// The gradient of [`target_log_probs`]'s logits for the gradient `grad` of its
/// output, with no graph.
pub(crate) fn target_log_probs_backward(
    logits: &Tensor,
    targets: &Tensor,
    grad: &Tensor,
) -> Result<Tensor> {
    logits.detach().apply_op3_no_bwd(
        &targets.contiguous()?,
        &grad.detach().contiguous()?,
        &TargetLogProbsGrad,
    )
}

/// The elements of contiguous f32 operands, in order.
fn f32_operands<'a, const N: usize>(
    op: &str,
    operands: [(&'a CpuStorage, &Layout); N],
) -> Result<[&'a [f32]; N]> {
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slice, (storage, layout)) in slices.iter_mut().zip(operands) {
        *slice = match storage {
            CpuStorage::F32(values) => contiguous(op, values, layout)?,
            _ => bail!("{op}: f32 operands"),
        };
    }
    Ok(slices)
}

/// The width of rows `[.., width]` (1 for a scalar).
fn row_width(layout: &Layout) -> usize {
    layout.dims().last().copied().unwrap_or(1)
}

/// An output of `layout`'s shape in rows of `width`, `fill(row index, out row)` on
/// rayon's threads in fixed blocks of rows.
fn filled_rows(
    layout: &Layout,
    width: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> (CpuStorage, Shape) {
    let len = layout.shape().elem_count();
    let mut out: Vec<MaybeUninit<f32>> = Vec::with_capacity(len);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { out.set_len(len) };
    // Each task zeroes its own block before filling it, on its own thread, while the
    // block is in its cache (zeroing the whole output first ran on the calling thread).
    let tasks = out.par_chunks_mut((width * ROWS_PER_TASK).max(1));
    tasks.enumerate().for_each(|(task, block)| {
        block.fill(MaybeUninit::new(0.0));
        // SAFETY: every element of `block` was just written; MaybeUninit<f32> has
        // f32's layout.
        let block = unsafe { &mut *(block as *mut [MaybeUninit<f32>] as *mut [f32]) };
        if width > 0 {
            for (i, row) in block.chunks_exact_mut(width).enumerate() {
                fill(task * ROWS_PER_TASK + i, row);
            }
        }
    });
    let mut out = std::mem::ManuallyDrop::new(out);
    // SAFETY: every element was written above; same allocation, length and capacity,
    // MaybeUninit<f32> has f32's layout.
    let out = unsafe { Vec::from_raw_parts(out.as_mut_ptr().cast::<f32>(), len, out.capacity()) };
    (CpuStorage::F32(out), layout.shape().clone())
}

/// 1 / √(mean(x²) + eps) of one row.
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, weight] = f32_operands(self.name(), [(x, x_layout), (weight, weight_layout)])?;
        let width = row_width(x_layout);
        if weight.len() != width {
            bail!(
                "rms norm: {width} features against a weight of {}",
                weight.len()
            );
        }
        Ok(filled_rows(x_layout, width, |r, out| {
            let row = &x[r * width..(r + 1) * width];
            let scale = inverse_rms(row, self.eps);
            for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
                *o = v * scale * w;
            }
        }))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _normed: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_x, grad_weight) = rms_norm_backward(x, weight, f64::from(self.eps), grad)?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// The gradient of an RMS norm's input: with `s = 1/rms(x)` and `h = grad ⊙ weight`,
/// `s·h − x·s³·(h·x)/d`.
struct RmsNormInputGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormInputGrad {
    fn name(&self) -> &'static str {
        "fused-rms-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, weight, grad] = f32_operands(
            self.name(),
            [(x, x_layout), (weight, weight_layout), (grad, grad_layout)],
        )?;
        let width = row_width(x_layout);
        Ok(filled_rows(x_layout, width, |r, out| {
            let span = r * width..(r + 1) * width;
            let (row, grad) = (&x[span.clone()], &grad[span]);
            let scale = inverse_rms(row, self.eps);
            let projection: f32 = row
                .iter()
                .zip(grad)
                .zip(weight)
                .map(|((v, g), w)| v * g * w)
                .sum();
            let correction = scale * scale * scale * projection / width as f32;
            for (((o, v), g), w) in out.iter_mut().zip(row).zip(grad).zip(weight) {
                *o = scale * g * w - v * correction;
            }
        }))
    }
}

/// The gradient of an RMS norm's weight: `Σ_rows grad ⊙ x / rms(x)`, summed over fixed
/// blocks of rows in block order.
struct RmsNormWeightGrad {
    eps: f32,
}

impl CustomOp2 for RmsNormWeightGrad {
    fn name(&self) -> &'static str {
        "fused-rms-norm-weight-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, grad] = f32_operands(self.name(), [(x, x_layout), (grad, grad_layout)])?;
        let width = row_width(x_layout);
        let mut sums = vec![0.0f32; width];
        if width > 0 {
            let partials: Vec<Vec<f32>> = x
                .par_chunks(width * ROWS_PER_TASK)
                .zip(grad.par_chunks(width * ROWS_PER_TASK))
                .map(|(rows, grads)| {
                    let mut partial = vec![0.0f32; width];
                    for (row, grad) in rows.chunks_exact(width).zip(grads.chunks_exact(width)) {
                        let scale = inverse_rms(row, self.eps);
                        for ((p, v), g) in partial.iter_mut().zip(row).zip(grad) {
                            *p += g * v * scale;
                        }
                    }
                    partial
                })
                .collect();
            for partial in partials {
                for (s, p) in sums.iter_mut().zip(partial) {
                    *s += p;
                }
            }
        }
        Ok((CpuStorage::F32(sums), Shape::from(width)))
    }
}

/// Rotary embedding; its backward pass is the rotation by the opposite angles (the
/// same op with `-sin`).
struct Rope;

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        cos: &CpuStorage,
        cos_layout: &Layout,
        sin: &CpuStorage,
        sin_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, cos, sin] = f32_operands(
            self.name(),
            [(x, x_layout), (cos, cos_layout), (sin, sin_layout)],
        )?;
        let (batch, heads, seq, width) = x_layout.shape().dims4()?;
        let half = width / 2;
        if width % 2 != 0 || cos_layout.shape().dims3()? != (batch, seq, half) {
            bail!(
                "rope: x {:?} against tables {:?}",
                x_layout.shape(),
                cos_layout.shape()
            );
        }
        if sin_layout.shape() != cos_layout.shape() {
            bail!(
                "rope: cos {:?}, sin {:?}",
                cos_layout.shape(),
                sin_layout.shape()
            );
        }
        Ok(filled_rows(x_layout, width, |r, out| {
            let (b, position) = (r / (heads * seq), r % seq);
            let table = (b * seq + position) * half..(b * seq + position + 1) * half;
            let (cos, sin) = (&cos[table.clone()], &sin[table]);
            let row = &x[r * width..(r + 1) * width];
            let (first, second) = row.split_at(half);
            let (out_first, out_second) = out.split_at_mut(half);
            for i in 0..half {
                out_first[i] = first[i] * cos[i] - second[i] * sin[i];
                out_second[i] = second[i] * cos[i] + first[i] * sin[i];
            }
        }))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _rotated: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((Some(rope_backward(grad, cos, sin)?), None, None))
    }
}

/// `silu(gate) · up`.
struct SwiGlu;

/// `out[i] = exp(−a[i])`, the term of σ(a) = 1 / (1 + exp(−a)).
fn exp_of_negated(out: &mut [f32], a: &[f32]) {
    for (o, a) in out.iter_mut().zip(a) {
        *o = -a;
    }
    exp_in_place(out);
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [gate, up] = f32_operands(self.name(), [(gate, gate_layout), (up, up_layout)])?;
        if gate_layout.shape() != up_layout.shape() {
            bail!(
                "swiglu: gate {:?}, up {:?}",
                gate_layout.shape(),
                up_layout.shape()
            );
        }
        let width = row_width(gate_layout);
        Ok(filled_rows(gate_layout, width, |r, out| {
            let span = r * width..(r + 1) * width;
            exp_of_negated(out, &gate[span.clone()]);
            for ((o, a), u) in out.iter_mut().zip(&gate[span.clone()]).zip(&up[span]) {
                // candle's silu, to the bit.
                *o = a / (1.0 + *o) * u;
            }
        }))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _product: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad_gate, grad_up) = swiglu_backward(gate, up, grad)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// d/d gate of `silu(gate) · up`: `grad · up · σ(a)·(1 + a·(1 − σ(a)))`.
struct SwiGluGateGrad;

impl CustomOp3 for SwiGluGateGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-gate-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [gate, up, grad] = f32_operands(
            self.name(),
            [(gate, gate_layout), (up, up_layout), (grad, grad_layout)],
        )?;
        let width = row_width(gate_layout);
        Ok(filled_rows(gate_layout, width, |r, out| {
            let span = r * width..(r + 1) * width;
            let inputs = gate[span.clone()].iter().zip(&up[span.clone()]);
            exp_of_negated(out, &gate[span.clone()]);
            for ((o, (a, u)), g) in out.iter_mut().zip(inputs).zip(&grad[span]) {
                let s = 1.0 / (1.0 + *o);
                *o = g * u * s * (1.0 + a * (1.0 - s));
            }
        }))
    }
}

/// The maximum of a row and log Σ exp(row − maximum).
fn max_and_log_norm(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let norm: f32 = SCRATCH.with_borrow_mut(|exps| {
        exps.clear();
        exps.extend_from_slice(row);
        exp_shifted_in_place(exps, max);
        exps.iter().sum()
    });
    (max, norm.ln())
}

thread_local! {
    /// A row's exponentials, kept for the thread's next row (a vocabulary wide).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The targets of a [`TargetLogProbs`], checked against the vocabulary.
fn target_ids<'a>(
    targets: &'a CpuStorage,
    layout: &Layout,
    rows: usize,
    vocab: usize,
) -> Result<&'a [u32]> {
    let targets = match (targets, layout.contiguous_offsets()) {
        (CpuStorage::U32(ids), Some((start, end))) => &ids[start..end],
        _ => bail!("target log-probs: contiguous u32 targets"),
    };
    if targets.len() != rows {
        bail!(
            "target log-probs: {rows} rows of logits, {} targets",
            targets.len()
        );
    }
    if let Some(&id) = targets.iter().find(|&&id| id as usize >= vocab) {
        bail!("target log-probs: target {id} outside a vocabulary of {vocab}");
    }
    Ok(targets)
}

/// log softmax(logits)[target] per row; its backward pass gives `grad · (onehot −
/// softmax)`, the only tensor the size of the logits it makes.
struct TargetLogProbs;

impl CustomOp2 for TargetLogProbs {
    fn name(&self) -> &'static str {
        "fused-target-log-probs"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets: &CpuStorage,
        targets_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [logits] = f32_operands(self.name(), [(logits, logits_layout)])?;
        let (rows, vocab) = logits_layout.shape().dims2()?;
        let targets = target_ids(targets, targets_layout, rows, vocab)?;
        let log_probs: Vec<f32> = (0..rows)
            .into_par_iter()
            .with_min_len(ROWS_PER_TASK)
            .map(|r| {
                let row = &logits[r * vocab..(r + 1) * vocab];
                let (max, log_norm) = max_and_log_norm(row);
                row[targets[r] as usize] - max - log_norm
            })
            .collect();
        Ok((CpuStorage::F32(log_probs), Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _log_probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(target_log_probs_backward(logits, targets, grad)?),
            None,
        ))
    }
}

/// d/d logits of [`TargetLogProbs`]: `grad_r · (onehot(target_r) − softmax(row r))`.
struct TargetLogProbsGrad;

impl CustomOp3 for TargetLogProbsGrad {
    fn name(&self) -> &'static str {
        "fused-target-log-probs-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets: &CpuStorage,
        targets_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [logits, grad] =
            f32_operands(self.name(), [(logits, logits_layout), (grad, grad_layout)])?;
        let (rows, vocab) = logits_layout.shape().dims2()?;
        let targets = target_ids(targets, targets_layout, rows, vocab)?;
        Ok(filled_rows(logits_layout, vocab, |r, out| {
            let row = &logits[r * vocab..(r + 1) * vocab];
            let (max, log_norm) = max_and_log_norm(row);
            let shift = max + log_norm;
            out.copy_from_slice(row);
            exp_shifted_in_place(out, shift);
            for o in out.iter_mut() {
                *o *= -grad[r];
            }
            out[targets[r] as usize] += grad[r];
        }))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::ops::{self, Mode};
    use crate::model::{max_difference, spread_values as random};

    /// Gradients of `sum(f(inputs) ⊙ probe)` with respect to each input.
    fn gradients(
        inputs: &[Tensor],
        probe: &Tensor,
        f: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) -> (Tensor, Vec<Tensor>) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors).unwrap();
        let grads = (&out * probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grads = vars
            .iter()
            .map(|v| grads.get(v).expect("a gradient").clone())
            .collect();
        (out, grads)
    }

    /// The fused and composed forms give the same outputs and input gradients.
    fn assert_same(
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Result<Tensor>,
        composed: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) {
        let probe_shape = fused(inputs).unwrap().dims().to_vec();
        let probe = random(&probe_shape, 99);
        let (fused_out, fused_grads) = gradients(inputs, &probe, fused);
        let (composed_out, composed_grads) = gradients(inputs, &probe, composed);
        assert!(max_difference(&fused_out, &composed_out) < 1e-5);
        for (f, c) in fused_grads.iter().zip(&composed_grads) {
            assert_eq!(f.dims(), c.dims());
            assert!(max_difference(f, c) < 1e-4, "{}", max_difference(f, c));
        }
    }

    #[test]
    fn the_fused_rms_norm_equals_the_composed_one_and_its_gradients() {
        // 37 rows: blocks of the weight gradient's sum and a partial last one.
        let inputs = [random(&[37, 24], 1), random(&[24], 2)];
        assert_same(
            &inputs,
            |t| rms_norm(&t[0], &t[1], 1e-5),
            |t| ops::rms_norm(&t[0], &t[1], 1e-5, Mode::Differentiable),
        );
    }

    #[test]
    fn the_fused_rope_equals_the_composed_one_and_its_gradient() {
        let inputs = [random(&[2, 3, 5, 8], 3)];
        let (cos, sin) = (random(&[2, 5, 4], 4), random(&[2, 5, 4], 5));
        assert_same(
            &inputs,
            |t| rope(&t[0], &cos, &sin),
            |t| ops::rope(&t[0], &cos, &sin, Mode::Differentiable),
        );
    }

    #[test]
    fn the_fused_swiglu_equals_silu_times_up_and_its_gradients() {
        let inputs = [random(&[19, 40], 6), random(&[19, 40], 7)];
        assert_same(&inputs, |t| swiglu(&t[0], &t[1]), |t| t[0].silu()? * &t[1]);
    }

    #[test]
    fn the_fused_target_log_probs_equal_log_softmax_and_its_gradient() {
        // 21 rows: a partial last block of rows.
        let logits = [random(&[21, 50], 10)];
        let ids: Vec<u32> = (0..21).map(|r| (r * 7 % 50) as u32).collect();
        let targets = Tensor::new(ids, &Device::Cpu).unwrap();
        assert_same(
            &logits,
            |t| target_log_probs(&t[0], &targets),
            |t| {
                candle_nn::ops::log_softmax(&t[0], 1)?
                    .gather(&targets.unsqueeze(1)?, 1)?
                    .squeeze(1)
            },
        );
        let outside = Tensor::new(vec![50u32; 21], &Device::Cpu).unwrap();
        let error = target_log_probs(&logits[0], &outside).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("target 50 outside a vocabulary of 50")
        );
    }

    #[test]
    fn the_gradients_hold_no_graph() {
        let x = Var::from_tensor(&random(&[4, 8], 8)).unwrap();
        let w = Var::from_tensor(&random(&[8], 9)).unwrap();
        let normed = rms_norm(&x, &w, 1e-5).unwrap();
        let grads = swiglu(&normed, &normed)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&x, &w] {
            assert!(!grads.get(var).unwrap().track_op());
        }
    }
}
