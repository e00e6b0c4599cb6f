//! The model being trained with its tokenizer, trainable parameters and prompt
//! format: loading (a base model or a checkpoint), encoding prompts within a token
//! budget, sampling, and the per-token log-probabilities of completions that the
//! GRPO and SFT losses are built from.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rlpt_lm::generate::{Detokenizer, distinct_rows};
use rlpt_lm::{
    Generation, KvCache, Mode, Model, PromptedBatch, SamplingConfig, SpecialTokenIds, Tokenizer,
    WeightFormat,
};

use crate::config::TrainConfig;
use crate::error::{Error, Result, compute};
use crate::tasks::{ChatTemplate, ChatTemplateSetting, Instance, Prompter, TaskKind};
use serde::{Deserialize, Serialize};

/// A model being trained.
pub struct Policy {
    /// The decoder (its weights are `params`).
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its weights as trainable variables, by Hugging Face name.
    pub params: Vec<(String, Var)>,
    /// How prompts are wrapped.
    pub chat: ChatTemplate,
    /// End of sequence: the tokenizer's, else `<|endoftext|>`.
    pub eos: Option<u32>,
}

/// The tokenizer of the model at `model`: `explicit` if given, else the GGUF's own, or
/// `tokenizer.json` (or `.json.gz`) beside safetensors weights.
pub fn tokenizer_for(model: &Path, explicit: Option<&Path>) -> Result<Tokenizer> {
    if let Some(path) = explicit {
        return Ok(Tokenizer::from_file(path)?);
    }
    if model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return Ok(Tokenizer::from_file(model)?);
    }
    let dir = if model.is_dir() {
        model.to_path_buf()
    } else {
        model.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let candidates = [dir.join("tokenizer.json"), dir.join("tokenizer.json.gz")];
    match candidates.iter().find(|c| c.exists()) {
        Some(found) => Ok(Tokenizer::from_file(found)?),
        None => Err(Error::Config(format!(
            "{}: no tokenizer.json beside the weights; set `tokenizer` in the config",
            dir.display()
        ))),
    }
}

/// The dtype the policy trains in (`dtype` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Weights, activations and gradients in f32.
    #[default]
    F32,
    /// Weights and activations in bf16 (half the memory of weights and activations);
    /// the optimizer keeps f32 master weights and moments, gradients are summed in
    /// f32, and norms, softmax, losses and log-softmax compute in f32.
    Bf16,
}

impl Precision {
    /// The weight format a model of this precision loads in.
    pub fn weight_format(self) -> WeightFormat {
        match self {
            Self::F32 => WeightFormat::F32,
            Self::Bf16 => WeightFormat::Bf16,
        }
    }

    pub(crate) fn is_f32(&self) -> bool {
        *self == Self::F32
    }
}

impl Policy {
    /// Loads `model` (trainable, in `precision`) with `tokenizer` on `device`.
    pub fn load(
        model: &Path,
        tokenizer: Tokenizer,
        device: &Device,
        chat: ChatTemplateSetting,
        precision: Precision,
    ) -> Result<Self> {
        let model = Model::load(model, precision.weight_format(), device)?;
        Self::new(model, tokenizer, chat)
    }

    /// Loads `model` as `config` says: its chat template, in its precision.
    pub fn load_for(
        model: &Path,
        tokenizer: Tokenizer,
        device: &Device,
        config: &TrainConfig,
    ) -> Result<Self> {
        Self::load(model, tokenizer, device, config.chat_template, config.dtype)
    }

    /// A policy of a dense (f32 or bf16) `model`.
    pub fn new(mut model: Model, tokenizer: Tokenizer, chat: ChatTemplateSetting) -> Result<Self> {
        let params = model.trainable()?;
        let chat = ChatTemplate::choose(chat, &tokenizer);
        let eos = tokenizer
            .eos()
            .or_else(|| tokenizer.token_id("<|endoftext|>"));
        Ok(Self {
            model,
            tokenizer,
            params,
            chat,
            eos,
        })
    }

    /// Padding id for batches (never attended to).
    pub fn pad(&self) -> u32 {
        self.eos.unwrap_or(0)
    }

    /// The tokens that end an answer: the chat template's end of turn, else the end of
    /// sequence.
    pub fn end_of_turn(&self) -> Result<Vec<u32>> {
        match self.chat.end_of_turn() {
            Some(text) => Ok(self.tokenizer.encode(text)?),
            None => Ok(self.eos.into_iter().collect()),
        }
    }

    /// Writes the weights (in `dtype`) and tokenizer into `dir`: a Hugging Face model
    /// directory, which rlpt and transformers load.
    pub fn save(&self, dir: &Path, dtype: DType) -> Result<()> {
        let named = self.tokenizer.special_ids();
        // What generation stops at and pads with here: tools reading the directory
        // need them named even when the tokenizer's source did not.
        let special = SpecialTokenIds {
            bos: named.bos,
            eos: self.eos,
            pad: named.pad.or(self.eos),
        };
        Ok(self.model.save(
            &self.params,
            &self.tokenizer,
            &special,
            self.chat.jinja(),
            dtype,
            dir,
        )?)
    }

    /// How this policy's prompts are made: its tokenizer and chat template.
    pub fn prompter(&self) -> Prompter<'_> {
        Prompter {
            tokenizer: &self.tokenizer,
            chat: self.chat,
        }
    }

    /// The prompt ids of `instance` under `template`, fitted to `max_tokens`
    /// ([`Prompter::fitted`]).
    pub fn prompt_ids(
        &self,
        kind: TaskKind,
        template: &str,
        instance: &Instance,
        max_tokens: usize,
    ) -> Result<Vec<u32>> {
        Ok(self
            .prompter()
            .fitted(kind, template, instance, max_tokens)?
            .1)
    }

    /// The bytes of each token of `instance`'s reference ([`Prompter::reference_tokens`]).
    pub fn reference_tokens(&self, instance: &Instance) -> Result<Vec<Vec<u8>>> {
        self.prompter().reference_tokens(instance)
    }

    /// Samples a completion of each prompt.
    pub fn sample(&self, prompts: &[Vec<u32>], config: &SamplingConfig) -> Result<Vec<Generation>> {
        let decoder = Decoder {
            tokenizer: &self.tokenizer,
            eos: self.eos,
        };
        Ok(rlpt_lm::generate(
            &self.model,
            &decoder,
            prompts,
            config,
            self.pad(),
        )?)
    }

    /// The tokens a generation is trained on: its tokens, and eos when it ended there.
    pub fn completion_tokens(&self, generation: &Generation) -> Vec<u32> {
        let mut tokens = generation.tokens.clone();
        if generation.finish == rlpt_lm::Finish::Eos {
            tokens.extend(self.eos);
        }
        tokens
    }
}

/// The tokenizer with the policy's end-of-sequence id.
struct Decoder<'a> {
    tokenizer: &'a Tokenizer,
    eos: Option<u32>,
}

impl Detokenizer for Decoder<'_> {
    fn decode(&self, ids: &[u32]) -> rlpt_lm::Result<String> {
        self.tokenizer.decode(ids)
    }

    fn eos(&self) -> Option<u32> {
        self.eos
    }
}

/// A prompt and a completion of it.
pub struct Sequence<'a> {
    /// The prompt's ids (at least one).
    pub prompt: &'a [u32],
    /// The completion's ids (at least one).
    pub completion: &'a [u32],
}

/// Sequences laid out for scoring: the distinct prompts left-padded to end at one
/// column, and each row's completion right-padded to the longest, so completion token
/// `j` of every row is at column `j` of the log-probs and the mask.
struct Batch {
    /// `[distinct prompts, prompt_width]` token ids.
    prompts: Tensor,
    /// Left padding of each distinct prompt.
    pads: Vec<usize>,
    /// For each row, the index of its prompt among the distinct ones.
    source: Vec<usize>,
    /// `[rows, widest]` completion ids, right-padded.
    completions: Tensor,
    /// `[rows, widest]`: 1 on completion tokens.
    mask: Tensor,
    /// The longest prompt.
    prompt_width: usize,
    /// The longest completion.
    widest: usize,
}

impl Batch {
    fn of(sequences: &[Sequence<'_>], pad: u32, device: &Device) -> Result<Self> {
        if sequences
            .iter()
            .any(|s| s.prompt.is_empty() || s.completion.is_empty())
        {
            return Err(Error::Config(
                "a sequence with an empty prompt or completion".into(),
            ));
        }
        let all: Vec<&[u32]> = sequences.iter().map(|s| s.prompt).collect();
        let (first_rows, source) = distinct_rows(&all);
        let distinct: Vec<&[u32]> = first_rows.iter().map(|&row| all[row]).collect();
        let prompt_width = distinct.iter().map(|p| p.len()).max().unwrap_or(0);
        let widest = sequences
            .iter()
            .map(|s| s.completion.len())
            .max()
            .unwrap_or(0);
        let pads: Vec<usize> = distinct.iter().map(|p| prompt_width - p.len()).collect();
        let prompts: Vec<u32> = distinct
            .iter()
            .flat_map(|p| std::iter::repeat_n(pad, prompt_width - p.len()).chain(p.iter().copied()))
            .collect();
        let completions: Vec<u32> = sequences
            .iter()
            .flat_map(|s| {
                let blank = widest - s.completion.len();
                s.completion
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, blank))
            })
            .collect();
        let mask: Vec<f32> = sequences
            .iter()
            .flat_map(|s| (0..widest).map(|j| f32::from(u8::from(j < s.completion.len()))))
            .collect();
        let rows = sequences.len();
        let run = || -> candle_core::Result<(Tensor, Tensor, Tensor)> {
            Ok((
                Tensor::from_vec(prompts, (distinct.len(), prompt_width), device)?,
                Tensor::from_vec(completions, (rows, widest), device)?,
                Tensor::from_vec(mask, (rows, widest), device)?,
            ))
        };
        let (prompts, completions, mask) = run().map_err(compute("batching sequences"))?;
        Ok(Self {
            prompts,
            pads,
            source,
            completions,
            mask,
            prompt_width,
            widest,
        })
    }

    /// Whether some rows share a prompt.
    fn shares_prompts(&self) -> bool {
        self.pads.len() < self.source.len()
    }

    /// `self.source` as an index tensor.
    fn source_index(&self, device: &Device) -> candle_core::Result<Tensor> {
        let source: Vec<u32> = self.source.iter().map(|&d| d as u32).collect();
        Tensor::new(source, device)
    }

    /// The final hidden states that predict each completion token, `[rows, widest,
    /// hidden]`: each distinct prompt runs once, its cache rows are copied to the rows
    /// that continue it, then the completions run after them. Exact: a shared prompt's
    /// gradient is the sum of its rows'.
    fn hidden(&self, model: &Model, mode: Mode) -> Result<Tensor> {
        let mut cache = KvCache::new(model, self.pads.clone());
        let prompted = model.forward(&self.prompts, &mut cache, mode)?;
        let mut last = prompted
            .narrow(1, self.prompt_width - 1, 1)
            .and_then(|last| last.contiguous())
            .map_err(compute("the prompts' last states"))?;
        if self.shares_prompts() {
            last = self
                .source_index(model.device())
                .and_then(|index| last.index_select(&index, 0))
                .map_err(compute("copying shared prompts"))?;
            cache.retain(&self.source)?;
        }
        let Some(inputs) = self.continuations()? else {
            return Ok(last);
        };
        let continued = model.forward(&inputs, &mut cache, mode)?;
        Tensor::cat(&[&last, &continued], 1).map_err(compute("completion states"))
    }

    /// What each row feeds after its prompt, `[rows, widest - 1]`: its completion but
    /// the last token (none when every completion is one token).
    fn continuations(&self) -> Result<Option<Tensor>> {
        if self.widest == 1 {
            return Ok(None);
        }
        self.completions
            .narrow(1, 0, self.widest - 1)
            .and_then(|inputs| inputs.contiguous())
            .map(Some)
            .map_err(compute("completion inputs"))
    }

    /// log p of each completion token, `[rows, widest]`, from the hidden states that
    /// predict them, under the distribution sampled at `temperature`.
    fn log_probs(&self, model: &Model, hidden: &Tensor, temperature: f32) -> Result<Tensor> {
        Ok(model.target_log_probs(hidden, &self.completions, temperature)?)
    }
}

/// log p of each completion token under `model` sampling at `temperature`
/// (softmax(logits / T)), `[rows, C]` with C the longest completion, each row's
/// completion from column 0, and the mask (1 on completion tokens) of the same shape.
/// A prompt shared by several rows (a GRPO group) runs once.
pub fn completion_log_probs(
    model: &Model,
    sequences: &[Sequence<'_>],
    pad: u32,
    temperature: f32,
    mode: Mode,
) -> Result<(Tensor, Tensor)> {
    let batch = Batch::of(sequences, pad, model.device())?;
    let hidden = batch.hidden(model, mode)?;
    Ok((batch.log_probs(model, &hidden, temperature)?, batch.mask))
}

/// Backpropagates `loss(log_probs, mask)` — a scalar built from
/// [`completion_log_probs`]' two tensors at `temperature` — handing each backward
/// pass's gradients to `on_grads`. Either way each shared prompt runs once. Without
/// `checkpointed`: one pass over the whole graph. With it: one pass per decoder block
/// ([`Model::backward_checkpointed`]), which keeps the activations of one block (and
/// one chunk of its attention scores) alive instead of all; the summed gradients are
/// the same.
pub fn completion_backward(
    model: &Model,
    sequences: &[Sequence<'_>],
    pad: u32,
    temperature: f32,
    checkpointed: bool,
    loss: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
    mut on_grads: impl FnMut(&candle_core::backprop::GradStore) -> Result<()>,
) -> Result<()> {
    let batch = Batch::of(sequences, pad, model.device())?;
    if checkpointed {
        let continuations = batch.continuations()?;
        let prompted = PromptedBatch {
            prompts: &batch.prompts,
            left_pad: &batch.pads,
            source: &batch.source,
            continuations: continuations.as_ref(),
        };
        let loss_of = |log_probs: &Tensor| loss(log_probs, &batch.mask);
        return model.backward_checkpointed(
            &prompted,
            &batch.completions,
            temperature,
            loss_of,
            on_grads,
        );
    }
    let hidden = batch.hidden(model, Mode::Differentiable)?;
    let store = loss(&batch.log_probs(model, &hidden, temperature)?, &batch.mask)?
        .backward()
        .map_err(compute("backward pass"))?;
    on_grads(&store)
}

/// The weights file and tokenizer of `source`: a checkpoint's (`step-N/`, or a training
/// output directory's latest; its checksums verified first), or a model's (`tokenizer`
/// when given).
pub fn open_model(source: &Path, tokenizer: Option<&Path>) -> Result<(PathBuf, Tokenizer)> {
    let training_output = source.is_dir() && !source.join("config.json").exists();
    if training_output || source.join("checksums.json").is_file() {
        let dir = crate::checkpoint::resolve(source)?;
        crate::checkpoint::open(&dir)?;
        let weights = checkpoint_weights(&dir);
        let tokenizer = tokenizer_for(&weights, None)?;
        return Ok((weights, tokenizer));
    }
    Ok((source.to_path_buf(), tokenizer_for(source, tokenizer)?))
}

/// The weights file of a checkpoint directory.
pub fn checkpoint_weights(dir: &Path) -> PathBuf {
    dir.join("model.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed tiny model as a policy in `precision`, without a chat template.
    fn tiny_policy(precision: Precision) -> Policy {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples/tiny");
        let tokenizer = tokenizer_for(&root, None).unwrap();
        Policy::load(
            &root,
            tokenizer,
            &Device::Cpu,
            ChatTemplateSetting::None,
            precision,
        )
        .unwrap()
    }

    /// Each parameter's gradient of a weighted sum of completion log-probs.
    fn gradients(policy: &Policy, sequences: &[Sequence<'_>], checkpointed: bool) -> Vec<Vec<f32>> {
        let mut sums: Vec<Option<Tensor>> = vec![None; policy.params.len()];
        let loss = |log_probs: &Tensor, mask: &Tensor| -> candle_core::Result<Tensor> {
            let weights = Tensor::arange(1f32, 1.0 + mask.dim(1)? as f32, log_probs.device())?
                .broadcast_as(mask.shape())?;
            (log_probs * mask)?.mul(&weights)?.sum_all()
        };
        completion_backward(
            &policy.model,
            sequences,
            policy.pad(),
            1.0,
            checkpointed,
            |lp, mask| loss(lp, mask).map_err(|e| Error::Config(e.to_string())),
            |store| {
                for ((_, var), sum) in policy.params.iter().zip(&mut sums) {
                    if let Some(grad) = store.get(var.as_tensor()) {
                        *sum = Some(match sum.take() {
                            Some(s) => (s + grad).map_err(compute("summing"))?,
                            None => grad.clone(),
                        });
                    }
                }
                Ok(())
            },
        )
        .unwrap();
        sums.into_iter()
            .map(|g| {
                let g = g.unwrap().to_dtype(DType::F32).unwrap();
                g.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            })
            .collect()
    }

    /// The L2 norm of `a` and its L2 distance to `b`.
    fn norm_and_distance(a: &[f32], b: &[f32]) -> (f32, f32) {
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let distance = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt();
        (norm, distance)
    }

    #[test]
    fn shared_prompts_and_activation_checkpointing_give_the_gradients_of_whole_sequences() {
        let policy = tiny_policy(Precision::F32);
        let (a, b) = (
            policy
                .tokenizer
                .encode("The theorem of Pythagoras")
                .unwrap(),
            policy.tokenizer.encode("Water").unwrap(),
        );
        let (ca, cb) = (
            policy.tokenizer.encode(" relates the sides").unwrap(),
            policy
                .tokenizer
                .encode(" boils at a hundred degrees")
                .unwrap(),
        );
        // The first and third rows share a prompt: without checkpointing it runs once.
        let sequences = [
            Sequence {
                prompt: &a,
                completion: &ca,
            },
            Sequence {
                prompt: &b,
                completion: &cb,
            },
            Sequence {
                prompt: &a,
                completion: &cb,
            },
        ];
        let shared = completion_log_probs(&policy.model, &sequences, 0, 1.0, Mode::Inference)
            .unwrap()
            .0
            .to_vec2::<f32>()
            .unwrap();
        for (row, sequence) in sequences.iter().enumerate() {
            let alone = completion_log_probs(
                &policy.model,
                std::slice::from_ref(sequence),
                0,
                1.0,
                Mode::Inference,
            )
            .unwrap()
            .0
            .to_vec2::<f32>()
            .unwrap();
            for (j, value) in alone[0].iter().enumerate() {
                assert!((value - shared[row][j]).abs() < 1e-4, "row {row} token {j}");
            }
        }
        let whole = gradients(&policy, &sequences, false);
        let checkpointed = gradients(&policy, &sequences, true);
        assert_eq!(whole.len(), policy.params.len());
        for (((name, _), w), c) in policy.params.iter().zip(&whole).zip(&checkpointed) {
            let (norm, diff) = norm_and_distance(w, c);
            assert!(norm > 0.0, "{name} got no gradient");
            assert!(diff <= 1e-5 * norm, "{name}: |Δ| {diff} against |g| {norm}");
        }
    }

    /// A bf16 policy computes what the f32 one does, to bf16's precision: the same
    /// completion log-probs within 0.05 nats and gradients within 5% (relative L2) of
    /// each parameter's; its weights and gradients stay bf16.
    #[test]
    fn a_bf16_policy_gives_the_f32_log_probs_and_gradients_to_its_precision() {
        let (full, half) = (tiny_policy(Precision::F32), tiny_policy(Precision::Bf16));
        assert!(
            half.params
                .iter()
                .all(|(_, var)| var.dtype() == DType::BF16)
        );
        let prompt = full.tokenizer.encode("The theorem of Pythagoras").unwrap();
        let completion = full.tokenizer.encode(" relates the sides").unwrap();
        let sequences = [Sequence {
            prompt: &prompt,
            completion: &completion,
        }];
        let log_probs = |policy: &Policy| {
            completion_log_probs(&policy.model, &sequences, 0, 1.0, Mode::Inference)
                .unwrap()
                .0
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        for (a, b) in log_probs(&full)[0].iter().zip(&log_probs(&half)[0]) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
        let (exact, rounded) = (
            gradients(&full, &sequences, false),
            gradients(&half, &sequences, false),
        );
        for (((name, _), e), r) in full.params.iter().zip(&exact).zip(&rounded) {
            let (norm, diff) = norm_and_distance(e, r);
            assert!(diff <= 0.05 * norm, "{name}: |Δ| {diff} against |g| {norm}");
        }
    }

    /// RPT item 5: the loss scores a completion under softmax(logits / T), the
    /// distribution it was sampled from, not the model's T = 1 one.
    #[test]
    fn completion_log_probs_are_of_the_sampling_temperature() {
        let policy = tiny_policy(Precision::F32);
        let prompt = policy
            .tokenizer
            .encode("The boiling point of water")
            .unwrap();
        let completion = policy.tokenizer.encode(" is a hundred").unwrap();
        let sequence = [Sequence {
            prompt: &prompt,
            completion: &completion,
        }];
        // By hand: the logits before each completion token, scaled, log-softmaxed.
        let ids: Vec<u32> = prompt.iter().chain(&completion).copied().collect();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mut cache = KvCache::new(&policy.model, vec![0]);
        let hidden = policy
            .model
            .forward(&input, &mut cache, Mode::Inference)
            .unwrap();
        let logits = policy.model.logits(&hidden).unwrap().squeeze(0).unwrap();
        let logits: Vec<Vec<f32>> = logits.to_vec2().unwrap();
        let by_hand = |temperature: f32| -> Vec<f32> {
            (0..completion.len())
                .map(|j| {
                    let row = &logits[prompt.len() - 1 + j];
                    let scaled: Vec<f64> =
                        row.iter().map(|&l| f64::from(l / temperature)).collect();
                    let max = scaled.iter().cloned().fold(f64::MIN, f64::max);
                    let norm = scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
                    (scaled[completion[j] as usize] - norm) as f32
                })
                .collect()
        };
        for temperature in [1.0f32, 0.7, 1.3] {
            let (log_probs, _) = completion_log_probs(
                &policy.model,
                &sequence,
                policy.pad(),
                temperature,
                Mode::Inference,
            )
            .unwrap();
            let got: Vec<f32> = log_probs.squeeze(0).unwrap().to_vec1().unwrap();
            for (g, want) in got.iter().zip(by_hand(temperature)) {
                assert!((g - want).abs() < 1e-4, "T {temperature}: {g} vs {want}");
            }
        }
        assert!(
            (by_hand(0.7)[0] - by_hand(1.0)[0]).abs() > 1e-3,
            "the temperatures must give different log-probs for the test to mean anything"
        );
    }
}
