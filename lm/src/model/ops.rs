//! The decoder's normalisation, softmax and rotary-embedding operations in two forms:
//! candle's fused kernels (fast, no backward pass) for inference, and, for training,
//! `fused.rs`'s ops with their own backward passes (CPU, f32) or compositions of
//! differentiable tensor ops (elsewhere). Tests check they give the same numbers.

use candle_core::{D, DType, Result, Tensor};

use super::fused;

/// Which form of the operations a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fused kernels; no gradients flow through them.
    Inference,
    /// Differentiable compositions, for a pass whose loss is backpropagated.
    Differentiable,
}

/// RMS norm over the last dimension, computed in f32, scaled by `weight`.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let weight32 = weight.to_dtype(DType::F32)?;
    let normed = match mode {
        Mode::Inference => candle_nn::ops::rms_norm(&x32.contiguous()?, &weight32, eps as f32)?,
        Mode::Differentiable if fused::applies(&[&x32, &weight32]) => {
            fused::rms_norm(&x32, &weight32, eps)?
        }
        Mode::Differentiable => {
            let mean_square = x32.sqr()?.mean_keepdim(D::Minus1)?;
            x32.broadcast_div(&(mean_square + eps)?.sqrt()?)?
                .broadcast_mul(&weight32)?
        }
    };
    normed.to_dtype(dtype)
}

/// Softmax over the last dimension, computed in f32.
pub(crate) fn softmax(x: &Tensor, mode: Mode) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let probabilities = match mode {
        Mode::Inference => candle_nn::ops::softmax_last_dim(&x32.contiguous()?)?,
        Mode::Differentiable => {
            let shifted = x32.broadcast_sub(&x32.max_keepdim(D::Minus1)?.detach())?;
            let exp = shifted.exp()?;
            exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?
        }
    };
    probabilities.to_dtype(dtype)
}

/// `silu(gate) · up`, one fused op on the CPU in f32 (the same numbers as candle's
/// `silu` then a product), candle's two ops otherwise.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fused::applies(&[gate, up]) {
        fused::swiglu(gate, up)
    } else {
        gate.silu()? * up
    }
}

/// log softmax(`logits`)[target] of each row (`logits: [rows, vocab]` f32, `targets:
/// [rows]` u32), `[rows]`: one fused op on the CPU, a differentiable composition
/// elsewhere.
pub(crate) fn target_log_probs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if fused::applies(&[logits]) {
        return fused::target_log_probs(logits, targets);
    }
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_norm = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let chosen = shifted.gather(&targets.unsqueeze(1)?, 1)?;
    (chosen - log_norm)?.squeeze(1)
}

/// Rotary embedding, halves convention (Hugging Face's `rotate_half`), of
/// `x: [batch, heads, seq, head_dim]` with `cos`, `sin: [batch, seq, head_dim / 2]`.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> Result<Tensor> {
    let cos = cos.to_dtype(x.dtype())?;
    let sin = sin.to_dtype(x.dtype())?;
    match mode {
        Mode::Inference => candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin),
        Mode::Differentiable if fused::applies(&[x, &cos, &sin]) => fused::rope(x, &cos, &sin),
        Mode::Differentiable => {
            let half = x.dim(D::Minus1)? / 2;
            let first = x.narrow(D::Minus1, 0, half)?;
            let second = x.narrow(D::Minus1, half, half)?;
            // [batch, seq, half] → [batch, 1, seq, half], broadcast over heads.
            let cos = cos.unsqueeze(1)?;
            let sin = sin.unsqueeze(1)?;
            let rotated_first = (first.broadcast_mul(&cos)? - second.broadcast_mul(&sin)?)?;
            let rotated_second = (second.broadcast_mul(&cos)? + first.broadcast_mul(&sin)?)?;
            Tensor::cat(&[rotated_first, rotated_second], D::Minus1)
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;
    use crate::model::{max_difference, spread_values as random};

    #[test]
    fn fused_and_differentiable_forms_agree() {
        let x = random(&[2, 3, 5, 8], 1);
        let weight = random(&[8], 2);
        let cos = random(&[2, 5, 4], 3);
        let sin = random(&[2, 5, 4], 4);
        let pairs = [
            (
                rms_norm(&x, &weight, 1e-5, Mode::Inference).unwrap(),
                rms_norm(&x, &weight, 1e-5, Mode::Differentiable).unwrap(),
            ),
            (
                softmax(&x, Mode::Inference).unwrap(),
                softmax(&x, Mode::Differentiable).unwrap(),
            ),
            (
                rope(&x, &cos, &sin, Mode::Inference).unwrap(),
                rope(&x, &cos, &sin, Mode::Differentiable).unwrap(),
            ),
        ];
        for (fused, composed) in pairs {
            assert!(max_difference(&fused, &composed) < 1e-5);
        }
    }

    #[test]
    fn differentiable_forms_have_gradients() {
        let x = Var::from_tensor(&random(&[1, 2, 3, 8], 5)).unwrap();
        let weight = Var::from_tensor(&random(&[8], 6)).unwrap();
        let cos = random(&[1, 3, 4], 7);
        let sin = random(&[1, 3, 4], 8);
        let normed = rms_norm(&x, &weight, 1e-5, Mode::Differentiable).unwrap();
        let rotated = rope(&normed, &cos, &sin, Mode::Differentiable).unwrap();
        let loss = softmax(&rotated, Mode::Differentiable)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for var in [&x, &weight] {
            let grad = grads.get(var).expect("a gradient");
            let norm = grad
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0 && norm.is_finite());
        }
    }
}
