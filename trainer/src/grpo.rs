//! GRPO's arithmetic: group-normalised advantages, the clipped token-level surrogate
//! (clip-higher: separate ε_low and ε_high), the k3 estimate of KL to a reference, and
//! DAPO's soft over-length penalty. The loss of a micro-batch is its tokens' sum
//! divided by the completion tokens of the whole batch, so micro-batches' gradients add
//! up to the token mean over the batch.

use candle_core::{D, Tensor};
use serde::{Deserialize, Serialize};

/// Advantages of one group's rewards: (r − mean) / (std + ε), std the sample standard
/// deviation (n − 1), as TRL computes it. A group whose rewards are all equal gets
/// zeros.
pub fn advantages(rewards: &[f32], std_epsilon: f32) -> Vec<f32> {
    let n = rewards.len();
    if n < 2 {
        return vec![0.0; n];
    }
    let mean = rewards.iter().sum::<f32>() / n as f32;
    let variance = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / (n - 1) as f32;
    let std = variance.sqrt();
    rewards
        .iter()
        .map(|r| (r - mean) / (std + std_epsilon))
        .collect()
}

/// Whether every reward of a group is the same (no learning signal).
pub fn zero_variance(rewards: &[f32]) -> bool {
    rewards.windows(2).all(|w| w[0] == w[1])
}

/// DAPO's soft over-length penalty of a completion of `length` tokens when at most
/// `max_tokens` are allowed: 0 up to `max_tokens − buffer`, then falling linearly to −1
/// at `max_tokens`.
pub fn overlong_penalty(length: usize, max_tokens: usize, buffer: usize) -> f32 {
    if buffer == 0 {
        return 0.0;
    }
    let free = max_tokens.saturating_sub(buffer);
    if length <= free {
        0.0
    } else if length >= max_tokens {
        -1.0
    } else {
        (free as f32 - length as f32) / buffer as f32
    }
}

/// The objective's settings.
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    /// Lower clip: ratios under 1 − ε_low stop pushing down.
    pub epsilon_low: f32,
    /// Upper clip: ratios over 1 + ε_high stop pushing up.
    pub epsilon_high: f32,
    /// Weight of the k3 KL term.
    pub kl_beta: f32,
}

/// A micro-batch's loss and what it saw.
pub struct MicroLoss {
    /// Sum over its tokens of the per-token loss, divided by the batch's tokens.
    pub loss: Tensor,
    /// Tokens whose ratio was clipped.
    pub clipped: f32,
    /// Sum over tokens of the k3 KL estimate (0 without a reference).
    pub kl_sum: f32,
}

impl Objective {
    /// The loss of completions whose log-probs are `log_probs` (`[rows, len]`,
    /// differentiable), under the sampling policy `old_log_probs` and the reference
    /// `ref_log_probs`, with per-row `advantages` (`[rows]`), over the tokens where
    /// `mask` (`[rows, len]`, 1/0) is 1, divided by `batch_tokens`.
    pub fn micro_loss(
        &self,
        log_probs: &Tensor,
        old_log_probs: &Tensor,
        ref_log_probs: Option<&Tensor>,
        advantages: &Tensor,
        mask: &Tensor,
        batch_tokens: f32,
    ) -> candle_core::Result<MicroLoss> {
        let ratio = (log_probs - old_log_probs)?.exp()?;
        let advantages = advantages.unsqueeze(D::Minus1)?;
        let unclipped = ratio.broadcast_mul(&advantages)?;
        let clamped = ratio.clamp(1.0 - self.epsilon_low, 1.0 + self.epsilon_high)?;
        let clipped = clamped.broadcast_mul(&advantages)?;
        let mut per_token = unclipped.minimum(&clipped)?.neg()?;
        // A token is clipped where the clamped term is the smaller (and differs).
        let clip_active = unclipped.gt(&clipped)?.to_dtype(mask.dtype())?;
        let clipped_tokens = (clip_active * mask)?.sum_all()?.to_scalar::<f32>()?;
        let mut kl_sum = 0.0;
        if let Some(reference) = ref_log_probs {
            let kl = k3(log_probs, reference)?;
            kl_sum = (kl.detach() * mask)?.sum_all()?.to_scalar::<f32>()?;
            per_token = (per_token + (kl * f64::from(self.kl_beta))?)?;
        }
        let loss = ((per_token * mask)?.sum_all()? / f64::from(batch_tokens))?;
        Ok(MicroLoss {
            loss,
            clipped: clipped_tokens,
            kl_sum,
        })
    }
}

/// The k3 estimate of KL(π‖π_ref) per token: exp(r − l) − (r − l) − 1 with l, r the
/// policy's and the reference's log-probs.
pub fn k3(log_probs: &Tensor, ref_log_probs: &Tensor) -> candle_core::Result<Tensor> {
    let diff = (ref_log_probs - log_probs)?;
    (diff.exp()? - diff)? - 1.0
}

/// The GRPO objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Completions sampled per prompt (G).
    pub group_size: usize,
    /// Groups per optimizer step.
    pub prompts_per_step: usize,
    /// Lower clip of the ratio: 1 − ε_low.
    pub epsilon_low: f32,
    /// Upper clip of the ratio: 1 + ε_high (clip-higher when above ε_low).
    pub epsilon_high: f32,
    /// Weight of the k3 KL estimate to the initial model (0: off, as both papers).
    pub kl_beta: f32,
    /// Added to the group's std when normalising advantages.
    pub std_epsilon: f32,
    /// Drop groups whose rewards are all equal, and draw new prompts in their place.
    pub dynamic_sampling: bool,
    /// The first step (as metrics number them, from 1) that dynamic sampling applies
    /// to; earlier steps keep every group (RPT starts it at step 500). 0 and 1: all.
    #[serde(skip_serializing_if = "from_the_first_step")]
    pub dynamic_sampling_from_step: u64,
    /// Extra rollout rounds dynamic sampling may run per step.
    pub max_refill_rounds: usize,
    /// Soft over-length penalty: completions longer than `max_tokens − overlong_buffer`
    /// lose up to 1 reward linearly (0: off).
    pub overlong_buffer: usize,
    /// Sequences per forward/backward pass (gradient accumulation across them).
    pub micro_batch: usize,
    /// Optimizer updates per rollout batch (>1 makes the clip matter).
    pub updates_per_batch: usize,
    /// Keep only each decoder block's input in the forward pass and recompute the
    /// block in the backward pass (activation checkpointing; GRPO and SFT): the
    /// activations of one block are alive at once instead of all, for one more
    /// forward pass of compute. Off, each distinct prompt of a micro-batch runs once
    /// for all the completions that continue it (a group's prompt once instead of
    /// `group_size` times) and no block is recomputed: several times faster updates
    /// for long prompts and short completions, for the memory of every block's
    /// activations.
    #[serde(skip_serializing_if = "is_true")]
    pub activation_checkpointing: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

fn from_the_first_step(step: &u64) -> bool {
    *step <= 1
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            group_size: 4,
            prompts_per_step: 4,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            kl_beta: 0.0,
            std_epsilon: 1e-4,
            dynamic_sampling: true,
            dynamic_sampling_from_step: 1,
            max_refill_rounds: 2,
            overlong_buffer: 0,
            micro_batch: 8,
            updates_per_batch: 1,
            activation_checkpointing: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn advantages_are_normalised_by_the_sample_std() {
        // mean 0.5, sample std sqrt(1/3) = 0.57735.
        let a = advantages(&[1.0, 0.0, 1.0, 0.0], 0.0);
        assert!(close(a[0], 0.866_025) && close(a[1], -0.866_025), "{a:?}");
        let b = advantages(&[2.0, 0.0, 0.0], 1e-4);
        // mean 2/3, std sqrt(((4/3)^2 + 2 (2/3)^2) / 2) = 1.154700.
        assert!(close(b[0], (4.0 / 3.0) / (1.154_700_5 + 1e-4)), "{b:?}");
        assert_eq!(advantages(&[0.5, 0.5, 0.5], 1e-4), vec![0.0; 3]);
        assert!(zero_variance(&[1.0, 1.0]) && !zero_variance(&[1.0, 0.0]));
    }

    #[test]
    fn overlong_penalty_ramps_over_the_buffer() {
        assert_eq!(overlong_penalty(10, 20, 5), 0.0);
        assert_eq!(overlong_penalty(15, 20, 5), 0.0);
        assert!(close(overlong_penalty(17, 20, 5), -0.4));
        assert_eq!(overlong_penalty(20, 20, 5), -1.0);
        assert_eq!(overlong_penalty(25, 20, 0), 0.0);
    }

    fn tensor(values: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_surrogate_clips_each_side_and_averages_over_batch_tokens() {
        let objective = Objective {
            epsilon_low: 0.2,
            epsilon_high: 0.3,
            kl_beta: 0.0,
        };
        // Ratios e^{ln r}: row 0 (A = +1): 1.5 (clipped at 1.3), 1.1; row 1 (A = −2):
        // 0.5 (clipped at 0.8), 1.2 (not clipped: −2·1.2 < −2·… is the min), and a
        // masked token that must not count.
        let ratios = [1.5f32, 1.1, 0.5, 1.2];
        let log_probs: Vec<f32> = ratios.iter().map(|r| r.ln()).collect();
        let log_probs = Var::from_tensor(&tensor(&log_probs, (2, 2))).unwrap();
        let old = tensor(&[0.0; 4], (2, 2));
        let advantages = Tensor::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mask = tensor(&[1.0, 1.0, 1.0, 0.0], (2, 2));
        let out = objective
            .micro_loss(&log_probs, &old, None, &advantages, &mask, 4.0)
            .unwrap();
        // Per token: −min(1.5, 1.3) = −1.3; −min(1.1, 1.1) = −1.1;
        // −min(−1.0, −1.6) = 1.6; masked. Sum 0.8 − 1.3 … = −1.3 − 1.1 + 1.6 = −0.8; / 4.
        assert!(close(out.loss.to_scalar::<f32>().unwrap(), -0.2));
        assert_eq!(out.clipped, 2.0);
        let grads = out.loss.backward().unwrap();
        let grad = grads.get(&log_probs).unwrap().to_vec2::<f32>().unwrap();
        // Clipped tokens have no gradient; token (0,1): −A·r/4 = −1.1/4; masked: 0.
        assert!(close(grad[0][0], 0.0) && close(grad[1][0], 0.0), "{grad:?}");
        assert!(
            close(grad[0][1], -1.1 / 4.0) && close(grad[1][1], 0.0),
            "{grad:?}"
        );
        assert!(grad.iter().flatten().all(|g| g.is_finite()));
    }

    #[test]
    fn the_kl_term_is_k3_weighted_by_beta() {
        let objective = Objective {
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            kl_beta: 0.5,
        };
        let log_probs = tensor(&[-1.0, -2.0], (1, 2));
        let reference = tensor(&[-1.5, -2.0], (1, 2));
        let advantages = Tensor::from_slice(&[0.0f32], 1, &Device::Cpu).unwrap();
        let mask = tensor(&[1.0, 1.0], (1, 2));
        let out = objective
            .micro_loss(
                &log_probs,
                &log_probs,
                Some(&reference),
                &advantages,
                &mask,
                2.0,
            )
            .unwrap();
        // k3 of d = −0.5: e^{−0.5} + 0.5 − 1 = 0.106531; second token 0.
        let k3 = (-0.5f32).exp() + 0.5 - 1.0;
        assert!(close(out.kl_sum, k3));
        assert!(close(out.loss.to_scalar::<f32>().unwrap(), 0.5 * k3 / 2.0));
    }
}
