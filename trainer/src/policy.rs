//! The model being trained with its tokenizer, trainable parameters and prompt
//! format: loading (a base model or a checkpoint), encoding prompts within a token
//! budget, sampling, and the per-token log-probabilities of completions that the
//! GRPO and SFT losses are built from.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use rlpt_lm::generate::Detokenizer;
use rlpt_lm::{Generation, KvCache, Mode, Model, SamplingConfig, Tokenizer, WeightFormat};

use crate::error::{Error, Result, compute};
use crate::tasks::{self, ChatTemplate, Instance, TaskKind};

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

impl Policy {
    /// Loads `model` (f32, trainable) with `tokenizer` on `device`.
    pub fn load(model: &Path, tokenizer: Tokenizer, device: &Device, chat: &str) -> Result<Self> {
        let model = Model::load(model, WeightFormat::F32, device)?;
        Self::new(model, tokenizer, chat)
    }

    /// A policy of an f32 `model`.
    pub fn new(mut model: Model, tokenizer: Tokenizer, chat: &str) -> Result<Self> {
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

    /// Writes the weights and tokenizer into `dir` (a loadable model directory).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(&self.params, dir)?;
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, self.tokenizer.to_json()?).map_err(crate::error::io(&path))
    }

    /// The prompt ids of `instance` under `template`, its text before the gap cut from
    /// the left (whole tokens) when the prompt would exceed `max_tokens`.
    pub fn prompt_ids(
        &self,
        kind: TaskKind,
        template: &str,
        instance: &Instance,
        max_tokens: usize,
    ) -> Result<Vec<u32>> {
        let encode = |instance: &Instance| {
            self.tokenizer
                .encode(&self.chat.wrap(&tasks::fill(template, kind, instance)))
        };
        let ids = encode(instance)?;
        if ids.len() <= max_tokens {
            return Ok(ids);
        }
        let before = self.tokenizer.encode(&instance.before)?;
        let excess = ids.len() - max_tokens;
        if excess >= before.len() {
            return Err(Error::Config(format!(
                "a {} prompt needs {} tokens without its text: raise max_prompt_tokens ({max_tokens})",
                kind.name(),
                ids.len() - before.len()
            )));
        }
        let cut = Instance {
            before: self.tokenizer.decode(&before[excess..])?,
            ..instance.clone()
        };
        let ids = encode(&cut)?;
        // Re-encoding at the cut may merge differently; never exceed the budget.
        Ok(ids[ids.len().saturating_sub(max_tokens)..].to_vec())
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

/// log p of each completion token under `model`, `[rows, C]` with C the longest
/// completion, each row's completion right-aligned, and the mask (1 on completion
/// tokens) of the same shape. Sequences are left-padded with `pad` into one batch.
pub fn completion_log_probs(
    model: &Model,
    sequences: &[Sequence<'_>],
    pad: u32,
    mode: Mode,
) -> Result<(Tensor, Tensor)> {
    let lengths: Vec<usize> = sequences
        .iter()
        .map(|s| s.prompt.len() + s.completion.len())
        .collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let widest = sequences
        .iter()
        .map(|s| s.completion.len())
        .max()
        .unwrap_or(0);
    if sequences
        .iter()
        .any(|s| s.prompt.is_empty() || s.completion.is_empty())
    {
        return Err(Error::Config(
            "a sequence with an empty prompt or completion".into(),
        ));
    }
    let mut ids = Vec::with_capacity(sequences.len() * longest);
    let mut mask = Vec::with_capacity(sequences.len() * widest);
    for (sequence, length) in sequences.iter().zip(&lengths) {
        ids.extend(std::iter::repeat_n(pad, longest - length));
        ids.extend_from_slice(sequence.prompt);
        ids.extend_from_slice(sequence.completion);
        let blank = widest - sequence.completion.len();
        mask.extend((0..widest).map(|j| if j < blank { 0.0f32 } else { 1.0 }));
    }
    let pads: Vec<usize> = lengths.iter().map(|l| longest - l).collect();
    let device = model.device();
    let run = || -> candle_core::Result<(Tensor, Tensor)> {
        let ids = Tensor::from_vec(ids, (sequences.len(), longest), device)?;
        let mask = Tensor::from_vec(mask, (sequences.len(), widest), device)?;
        Ok((ids, mask))
    };
    let (ids, mask) = run().map_err(compute("batching sequences"))?;
    let mut cache = KvCache::new(model, pads);
    let hidden = model.forward(&ids, &mut cache, mode)?;
    let (hidden, targets) = (|| {
        Ok::<_, candle_core::Error>((
            hidden.narrow(1, longest - 1 - widest, widest)?,
            ids.narrow(1, longest - widest, widest)?,
        ))
    })()
    .map_err(compute("selecting completion positions"))?;
    let log_probs = model.target_log_probs(&hidden, &targets)?;
    Ok((log_probs, mask))
}

/// The weights file of a checkpoint directory.
pub fn checkpoint_weights(dir: &Path) -> PathBuf {
    dir.join("model.safetensors")
}
