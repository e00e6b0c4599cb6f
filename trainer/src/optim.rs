//! AdamW whose moments can be saved and restored (candle-nn's cannot export them),
//! with f32 master weights for parameters held in a narrower dtype (bf16 training),
//! global gradient-norm clipping, and the learning-rate schedule (linear warmup, then
//! constant or cosine decay).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Result, compute};
use serde::{Deserialize, Serialize};

/// AdamW (decoupled weight decay) over named parameters.
///
/// Moments are f32 whatever the parameters' dtype. A parameter held in another dtype
/// (bf16) has an f32 master copy: the update applies to the master, and the parameter
/// becomes the master rounded, so updates smaller than the parameter's precision
/// accumulate instead of being lost.
pub struct AdamW {
    config: OptimConfig,
    /// Updates applied so far.
    step: u64,
    /// First and second moments per parameter, in the parameters' order.
    moments: Vec<(Tensor, Tensor)>,
    /// The f32 master weight of each parameter that is not f32 (none for f32 ones).
    masters: Vec<Option<Tensor>>,
}

/// An f32 copy of `var` if it is held in another dtype.
fn master_of(var: &Var) -> candle_core::Result<Option<Tensor>> {
    if var.dtype() == DType::F32 {
        return Ok(None);
    }
    var.as_tensor().detach().to_dtype(DType::F32).map(Some)
}

/// A zero f32 tensor whose host memory is written now. `Tensor::zeros` gets pages the
/// kernel has not yet given (calloc), so the first step's update, reading each moment
/// before writing it, mapped the shared zero page and then faulted again to copy it,
/// each copy flushing the other threads' TLBs: 2.6 s of SmolLM2's first step.
fn written_zeros(shape: &candle_core::Shape, device: &Device) -> candle_core::Result<Tensor> {
    if !device.is_cpu() {
        return Tensor::zeros(shape, DType::F32, device);
    }
    let mut values = Vec::with_capacity(shape.elem_count());
    // An opaque zero, so the compiler cannot turn the fill back into a calloc.
    values.resize(shape.elem_count(), std::hint::black_box(0.0f32));
    Tensor::from_vec(values, shape, device)
}

impl AdamW {
    /// Zero moments for `params`, and their master weights.
    pub fn new(config: OptimConfig, params: &[(String, Var)]) -> Result<Self> {
        let state = || -> candle_core::Result<_> {
            let mut moments = Vec::with_capacity(params.len());
            let mut masters = Vec::with_capacity(params.len());
            for (_, var) in params {
                // Two tensors, not two handles of one: the update writes them in place.
                let zeros = || written_zeros(var.shape(), var.device());
                moments.push((zeros()?, zeros()?));
                masters.push(master_of(var)?);
            }
            Ok((moments, masters))
        };
        let (moments, masters) = state().map_err(compute("optimizer state"))?;
        Ok(Self {
            config,
            step: 0,
            moments,
            masters,
        })
    }

    /// Updates applied so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One update of `params` with `grads` (same order, f32) times `grad_scale` (the
    /// clipping factor, [`clip_scale`]) at learning rate `lr`.
    pub fn update(
        &mut self,
        params: &[(String, Var)],
        grads: &[Tensor],
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        let hyper = Hyper::new(&self.config, self.step, lr, grad_scale);
        let state = self.moments.iter_mut().zip(&mut self.masters);
        for (((_, var), grad), ((m, v), master)) in params.iter().zip(grads).zip(state) {
            hyper
                .update_parameter(var, grad, m, v, master)
                .map_err(compute("AdamW update"))?;
        }
        Ok(())
    }

    /// The moments as named tensors (`exp_avg.NAME`, `exp_avg_sq.NAME`), the master
    /// weights (`master.NAME`) and the step.
    pub fn save(&self, params: &[(String, Var)], path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        let state = self.moments.iter().zip(&self.masters);
        for ((name, _), ((m, v), master)) in params.iter().zip(state) {
            tensors.insert(format!("exp_avg.{name}"), m.clone());
            tensors.insert(format!("exp_avg_sq.{name}"), v.clone());
            if let Some(master) = master {
                tensors.insert(format!("master.{name}"), master.clone());
            }
        }
        let step = Tensor::new(&[self.step as u32], &Device::Cpu).map_err(compute("step"))?;
        tensors.insert("step".into(), step);
        rlpt_lm::save_safetensors(&tensors, path)
            .map_err(compute(&format!("writing {}", path.display())))
    }

    /// Restores moments and step written by [`AdamW::save`] for the same parameters.
    pub fn load(&mut self, params: &[(String, Var)], path: &Path, device: &Device) -> Result<()> {
        let refuse = |problem: String| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        };
        let mut tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| refuse(format!("not a readable optimizer state: {e}")))?;
        let mut take = |key: String, like: &Var| {
            let tensor = tensors
                .remove(&key)
                .ok_or_else(|| refuse(format!("has no `{key}`: written for another model")))?;
            if tensor.shape() != like.shape() {
                return Err(refuse(format!(
                    "`{key}` has shape {:?}, the model's is {:?}",
                    tensor.shape(),
                    like.shape()
                )));
            }
            Ok(tensor)
        };
        let mut moments = Vec::with_capacity(params.len());
        let mut masters = Vec::with_capacity(params.len());
        for (name, var) in params {
            moments.push((
                take(format!("exp_avg.{name}"), var)?,
                take(format!("exp_avg_sq.{name}"), var)?,
            ));
            masters.push(match var.dtype() {
                DType::F32 => None,
                _ => Some(take(format!("master.{name}"), var)?),
            });
        }
        let step = tensors
            .remove("step")
            .and_then(|s| s.to_vec1::<u32>().ok())
            .and_then(|s| s.first().copied())
            .ok_or_else(|| refuse("has no `step`".into()))?;
        self.moments = moments;
        self.masters = masters;
        self.step = u64::from(step);
        Ok(())
    }
}

/// The global L2 norm of `grads` (f64 sums of squares over fixed chunks, added in
/// order: the same for any thread count).
pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
    let mut total = 0.0f64;
    for grad in grads {
        let square = if on_host_f32(grad) {
            with_host_f32(grad, |values| {
                values
                    .par_chunks(HOST_CHUNK)
                    .map(|chunk| chunk.iter().map(|&g| f64::from(g) * f64::from(g)).sum())
                    .collect::<Vec<f64>>()
                    .into_iter()
                    .sum()
            })
        } else {
            grad.sqr()
                .and_then(|s| s.sum_all())
                .and_then(|s| s.to_dtype(DType::F64))
                .and_then(|s| s.to_scalar::<f64>())
        };
        total += square.map_err(compute("gradient norm"))?;
    }
    Ok(total.sqrt())
}

/// The factor that scales gradients of global norm `norm` to at most `max_norm` (0:
/// no clipping).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// One AdamW update's numbers.
struct Hyper {
    lr: f64,
    grad_scale: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    bias1: f64,
    bias2: f64,
}

impl Hyper {
    /// Update `step` (1-based) of `config` at `lr`, gradients scaled by `grad_scale`.
    fn new(config: &OptimConfig, step: u64, lr: f64, grad_scale: f64) -> Self {
        let t = step as i32;
        Self {
            lr,
            grad_scale,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            bias1: 1.0 - config.beta1.powi(t),
            bias2: 1.0 - config.beta2.powi(t),
        }
    }

    /// Updates `var` (through its f32 `master` if it has one) and its moments: in
    /// one pass in place when everything is f32 in CPU memory, else in candle ops.
    fn update_parameter(
        &self,
        var: &Var,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        master: &mut Option<Tensor>,
    ) -> candle_core::Result<()> {
        let weight = master.as_ref().unwrap_or(var.as_tensor());
        if [weight, grad, &*m, &*v].into_iter().all(on_host_f32) {
            self.update_on_host(weight, grad, m, v)?;
        } else {
            let updated = self.update_composed(weight, grad, m, v)?;
            match master {
                Some(master) => *master = updated,
                None => var.set(&updated)?,
            }
        }
        if let Some(master) = master {
            var.set(&master.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// The update in candle ops (any device): new moments in `m`, `v`; returns the
    /// updated weight.
    fn update_composed(
        &self,
        weight: &Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
    ) -> candle_core::Result<Tensor> {
        let grad = (grad.to_dtype(DType::F32)? * self.grad_scale)?;
        *m = ((&*m * self.beta1)? + (&grad * (1.0 - self.beta1))?)?;
        *v = ((&*v * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?;
        let step = ((&*m / self.bias1)? / ((&*v / self.bias2)?.sqrt()? + self.eps)?)?;
        (weight * (1.0 - self.lr * self.weight_decay))? - (step * self.lr)?
    }

    /// The same update as one pass over the four arrays in place (f32 on the CPU):
    /// no temporaries, a fraction of the memory traffic.
    fn update_on_host(
        &self,
        weight: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<()> {
        let f = |x: f64| x as f32;
        let (scale, beta1, beta2, eps) = (
            f(self.grad_scale),
            f(self.beta1),
            f(self.beta2),
            f(self.eps),
        );
        let (one_minus1, one_minus2) = (f(1.0 - self.beta1), f(1.0 - self.beta2));
        let (unbias1, unbias2) = (f(1.0 / self.bias1), f(1.0 / self.bias2));
        let (decay, lr) = (f(1.0 - self.lr * self.weight_decay), f(self.lr));
        let each = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
            let g = g * scale;
            *m = *m * beta1 + g * one_minus1;
            *v = *v * beta2 + g * g * one_minus2;
            let step = (*m * unbias1) / ((*v * unbias2).sqrt() + eps);
            *w = *w * decay - step * lr;
        };
        with_host_f32_mut(m, |m| {
            with_host_f32_mut(v, |v| {
                with_host_f32_mut(weight, |w| {
                    with_host_f32(grad, |g| {
                        w.par_chunks_mut(HOST_CHUNK)
                            .zip(g.par_chunks(HOST_CHUNK))
                            .zip(m.par_chunks_mut(HOST_CHUNK))
                            .zip(v.par_chunks_mut(HOST_CHUNK))
                            .for_each(|(((w, g), m), v)| {
                                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                                    each(w, g, m, v);
                                }
                            })
                    })
                })
            })
        })????;
        Ok(())
    }
}

/// Elements per task of the host passes.
const HOST_CHUNK: usize = 1 << 16;

/// Adds `grad` into `sum` in place when both are contiguous f32 tensors of one shape in
/// CPU memory (element by element, the sums `sum + grad` would give); false, with
/// nothing done, otherwise. `sum`'s storage must be its own: no other tensor may
/// share it.
pub(crate) fn add_in_place(sum: &Tensor, grad: &Tensor) -> candle_core::Result<bool> {
    if !(on_host_f32(sum) && on_host_f32(grad)) || sum.shape() != grad.shape() {
        return Ok(false);
    }
    with_host_f32_mut(sum, |sum| {
        with_host_f32(grad, |grad| {
            sum.par_chunks_mut(HOST_CHUNK)
                .zip(grad.par_chunks(HOST_CHUNK))
                .for_each(|(sum, grad)| {
                    for (s, &g) in sum.iter_mut().zip(grad) {
                        *s += g;
                    }
                })
        })
    })??;
    Ok(true)
}

/// Whether `tensor` is a contiguous f32 tensor in CPU memory.
fn on_host_f32(tensor: &Tensor) -> bool {
    tensor.device().is_cpu() && tensor.dtype() == DType::F32 && tensor.is_contiguous()
}

/// Runs `f` on the elements of a contiguous f32 CPU tensor.
fn with_host_f32<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) => Ok(f(&values[start..end])),
        _ => candle_core::bail!("expected a contiguous f32 tensor on the CPU"),
    }
}

/// Runs `f` on the elements of a contiguous f32 CPU tensor, which it may change in
/// place (through candle's in-place op, which holds the storage's write lock).
fn with_host_f32_mut<R>(
    tensor: &Tensor,
    f: impl FnOnce(&mut [f32]) -> R,
) -> candle_core::Result<R> {
    struct InPlace<F, R> {
        f: RefCell<Option<F>>,
        result: RefCell<Option<R>>,
    }
    impl<F: FnOnce(&mut [f32]) -> R, R> InplaceOp1 for InPlace<F, R> {
        fn name(&self) -> &'static str {
            "host-f32-in-place"
        }

        fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
            let (CpuStorage::F32(values), Some((start, end))) =
                (storage, layout.contiguous_offsets())
            else {
                candle_core::bail!("expected a contiguous f32 tensor on the CPU");
            };
            if let Some(f) = self.f.borrow_mut().take() {
                *self.result.borrow_mut() = Some(f(&mut values[start..end]));
            }
            Ok(())
        }
    }
    let op = InPlace {
        f: RefCell::new(Some(f)),
        result: RefCell::new(None),
    };
    tensor.inplace_op1(&op)?;
    match op.result.into_inner() {
        Some(result) => Ok(result),
        None => candle_core::bail!("the in-place op did not run on the CPU"),
    }
}

/// The learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// A cosine from `lr` to `lr · min_lr_ratio` over the remaining steps.
    Cosine,
}

/// The learning rate of update `step` (0-based) of `total`: linear warmup over
/// `warmup_steps`, then `lr` (constant) or a cosine from `lr` to `lr · min_lr_ratio`.
pub fn learning_rate(config: &OptimConfig, step: u64, total: u64) -> f64 {
    if step < config.warmup_steps {
        return config.lr * (step + 1) as f64 / config.warmup_steps as f64;
    }
    if config.schedule == Schedule::Constant {
        return config.lr;
    }
    let span = total.saturating_sub(config.warmup_steps).max(1) as f64;
    let progress = ((step - config.warmup_steps) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)
}

/// AdamW, clipping and the learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Adam's ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: off).
    pub max_grad_norm: f64,
    /// Steps of linear warmup from 0.
    pub warmup_steps: u64,
    /// `constant` or `cosine` after warmup.
    pub schedule: Schedule,
    /// Where cosine ends, as a fraction of `lr`.
    pub min_lr_ratio: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `adam`'s state saved with `params` (one, named `w`), and a fresh AdamW over a
    /// copy of `var` restored from it: the copy, its params and the restored optimizer.
    fn restored_twin(
        adam: &AdamW,
        params: &[(String, Var)],
        config: OptimConfig,
        var: &Var,
    ) -> (Var, Vec<(String, Var)>, AdamW) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        adam.save(params, &path).unwrap();
        let twin = Var::from_tensor(var.as_tensor()).unwrap();
        let twin_params = vec![("w".to_string(), twin.clone())];
        let mut restored = AdamW::new(config, &twin_params).unwrap();
        restored.load(&twin_params, &path, &Device::Cpu).unwrap();
        (twin, twin_params, restored)
    }

    #[test]
    fn adamw_matches_the_update_by_hand_and_restores_exactly() {
        let config = OptimConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..OptimConfig::default()
        };
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let params = vec![("w".to_string(), var.clone())];
        let mut adam = AdamW::new(config.clone(), &params).unwrap();
        let grad = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        adam.update(&params, std::slice::from_ref(&grad), 0.1, 1.0)
            .unwrap();
        // Step 1: m̂ = g, v̂ = g², so the step is g/|g| ≈ sign(g); decay 1 − 0.05.
        let w = var.to_vec1::<f32>().unwrap();
        assert!((w[0] - (1.0 * 0.95 - 0.1)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-2.0 * 0.95 + 0.1)).abs() < 1e-6, "{w:?}");

        let (twin, twin_params, mut restored) = restored_twin(&adam, &params, config, &var);
        assert_eq!(restored.steps_taken(), 1);
        adam.update(&params, std::slice::from_ref(&grad), 0.1, 1.0)
            .unwrap();
        restored.update(&twin_params, &[grad], 0.1, 1.0).unwrap();
        assert_eq!(
            var.to_vec1::<f32>().unwrap(),
            twin.to_vec1::<f32>().unwrap()
        );
    }

    /// A bf16 parameter's updates accumulate in its f32 master: steps of 1e-3, each
    /// below bf16's resolution at 1.0, move it after a few steps, where updating
    /// the bf16 weight itself would leave it at 1.0 forever; the master is saved and
    /// restored with the moments.
    #[test]
    fn bf16_parameters_update_through_f32_master_weights() {
        let config = OptimConfig {
            weight_decay: 0.0,
            ..OptimConfig::default()
        };
        let start = Tensor::new(&[1.0f32], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let var = Var::from_tensor(&start).unwrap();
        let params = vec![("w".to_string(), var.clone())];
        let mut adam = AdamW::new(config.clone(), &params).unwrap();
        let grad = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
        let value = |var: &Var| var.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap()[0];
        adam.update(&params, std::slice::from_ref(&grad), 1e-3, 1.0)
            .unwrap();
        assert_eq!(value(&var), 1.0, "one step is below bf16's resolution");
        for _ in 0..9 {
            adam.update(&params, std::slice::from_ref(&grad), 1e-3, 1.0)
                .unwrap();
        }
        assert_eq!(var.dtype(), DType::BF16);
        // The master is at 0.990; the weight is it rounded to bf16 (spacing 2⁻⁸ below 1).
        let master = adam.masters[0].as_ref().unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((master - 0.990).abs() < 1e-5, "{master}");
        assert!(
            (value(&var) - master).abs() <= 2f32.powi(-9),
            "{}",
            value(&var)
        );

        let (twin, twin_params, mut restored) = restored_twin(&adam, &params, config, &var);
        for _ in 0..3 {
            adam.update(&params, std::slice::from_ref(&grad), 1e-3, 1.0)
                .unwrap();
            restored
                .update(&twin_params, std::slice::from_ref(&grad), 1e-3, 1.0)
                .unwrap();
        }
        assert_eq!(value(&var), value(&twin));
        assert_eq!(
            adam.masters[0].as_ref().unwrap().to_vec1::<f32>().unwrap(),
            restored.masters[0]
                .as_ref()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let grads = [
            Tensor::new(&[3.0f32], &Device::Cpu).unwrap(),
            Tensor::new(&[4.0f32], &Device::Cpu).unwrap(),
        ];
        let norm = grad_norm(&grads).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        assert!((clip_scale(norm, 1.0) * norm - 1.0).abs() < 1e-6);
        assert_eq!(clip_scale(norm, 0.0), 1.0);
        assert_eq!(clip_scale(norm, 10.0), 1.0);
        // A strided (non-contiguous) gradient takes candle's ops: the same norm.
        let matrix = Tensor::new(&[[3.0f32, 0.0], [4.0, 0.0]], &Device::Cpu).unwrap();
        let column = matrix.t().unwrap();
        assert!((grad_norm(&[column]).unwrap() - 5.0).abs() < 1e-9);
    }

    /// The one-pass update on the host and the composed candle ops give the same
    /// weights and moments over several steps, with clipping and weight decay.
    #[test]
    fn host_update_equals_the_composed_ops() {
        let config = OptimConfig {
            lr: 1e-2,
            weight_decay: 0.1,
            ..OptimConfig::default()
        };
        let count = 3 * HOST_CHUNK + 17;
        let wave = |phase: f32| -> Vec<f32> {
            (0..count)
                .map(|i| (i as f32 * 0.37 + phase).sin())
                .collect()
        };
        let tensor = |values: Vec<f32>| Tensor::from_vec(values, count, &Device::Cpu).unwrap();
        let host = [wave(0.0), vec![0.0; count], vec![0.0; count]].map(tensor);
        let (mut weight, mut m, mut v) = (
            tensor(wave(0.0)),
            tensor(vec![0.0; count]),
            tensor(vec![0.0; count]),
        );
        for step in 1..=3 {
            let grad = tensor(wave(step as f32));
            let hyper = Hyper::new(&config, step, config.lr, 0.5);
            hyper
                .update_on_host(&host[0], &grad, &host[1], &host[2])
                .unwrap();
            weight = hyper
                .update_composed(&weight, &grad, &mut m, &mut v)
                .unwrap();
        }
        for (fused, composed) in host.iter().zip([&weight, &m, &v]) {
            let difference = (fused - composed).unwrap().abs().unwrap().max(0).unwrap();
            assert!(difference.to_scalar::<f32>().unwrap() < 1e-6);
        }
    }

    #[test]
    fn warmup_then_cosine() {
        let config = OptimConfig {
            lr: 1.0,
            warmup_steps: 2,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.0,
            ..OptimConfig::default()
        };
        let lrs: Vec<f64> = (0..6).map(|s| learning_rate(&config, s, 6)).collect();
        assert_eq!(&lrs[..3], &[0.5, 1.0, 1.0]);
        assert!((lrs[4] - 0.5).abs() < 1e-12, "{lrs:?}");
        assert!(lrs[5] < lrs[4]);
        let constant = OptimConfig::default();
        assert_eq!(learning_rate(&constant, 99, 10), constant.lr);
    }
}
