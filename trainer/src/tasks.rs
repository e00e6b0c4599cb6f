//! The three tasks a triple becomes a prompt for, and their default templates:
//!
//! - `next-token` (RPT): the text up to a hard token (entropy at least
//!   `data.hard_token_entropy`), drawn among every hard token of the segment; the model
//!   reasons, then answers in `\boxed{}`; the reference is the rest of the segment from
//!   that token and the next segment, its tokens as the text was tokenized in context.
//! - `asr` (RLPT, autoregressive segment reasoning): the context; the model predicts
//!   the next segment between `<|startofprediction|>` and `<|endofprediction|>`.
//! - `msr` (RLPT, middle segment reasoning): the context and the segment after the
//!   masked one; the model fills the middle, in the same tags.
//!
//! Templates are plain text with `{text}`, `{context}` and `{next_segment}` slots,
//! replaced verbatim (so `\boxed{}` needs no escaping). The user message is wrapped in
//! ChatML when the vocabulary has `<|im_start|>` (SmolLM2-Instruct, Qwen) or the config
//! asks for it.

use rlpt_lm::Tokenizer;
use rlpt_rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::data::Triple;
use crate::error::{Error, Result};
use crate::rewards::RewardKind;

/// Opens a prediction in `asr` and `msr` answers.
pub const PREDICTION_START: &str = "<|startofprediction|>";
/// Closes a prediction in `asr` and `msr` answers.
pub const PREDICTION_END: &str = "<|endofprediction|>";

// The default templates follow the papers' prompt structure, in this project's words:
// RPT's next-token prompt shows the text under a `### Context` heading, asks for the
// most likely next token in `\boxed{}` after weighing candidates, and notes that the
// token may begin with a space; RLPT's ASR prompt shows the text under `### Context`
// and asks for the next sentence between the prediction tags; its MSR prompt shows the
// text with the missing sentence replaced by `<MASK>`.

const NEXT_TOKEN_TEMPLATE: &str = "Predict the next token of the text under ### Context. \
Think about which tokens could come next and how likely each one is, then write the most \
likely one inside \\boxed{}. The token may begin with a space; if it does, keep the space.\
\n\n### Context\n{text}";

const ASR_TEMPLATE: &str = "Predict the sentence that most probably comes next after the \
text under ### Context. Think about what the text is saying and where it is going, then \
write the sentence between <|startofprediction|> and <|endofprediction|>.\n\n### \
Context\n{context}";

const MSR_TEMPLATE: &str = "One sentence of the text under ### Context has been replaced \
by <MASK>. Think about what connects the text before and after it, then write the masked \
sentence between <|startofprediction|> and <|endofprediction|>.\n\n### Context\n\
{context}<MASK> {next_segment}";

/// What a task asks for; in configs `next-token`, `asr` or `msr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Predict the token(s) after a hard token's position.
    NextToken,
    /// Predict the next segment.
    Asr,
    /// Fill the masked middle segment.
    Msr,
}

impl TaskKind {
    /// From its config name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "next-token" => Ok(Self::NextToken),
            "asr" => Ok(Self::Asr),
            "msr" => Ok(Self::Msr),
            other => Err(Error::Config(format!(
                "task kind `{other}`: use next-token, asr or msr"
            ))),
        }
    }

    /// Its config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NextToken => "next-token",
            Self::Asr => "asr",
            Self::Msr => "msr",
        }
    }

    /// Its default prompt, after the paper's (see the templates above).
    pub fn default_template(self) -> &'static str {
        match self {
            Self::NextToken => NEXT_TOKEN_TEMPLATE,
            Self::Asr => ASR_TEMPLATE,
            Self::Msr => MSR_TEMPLATE,
        }
    }

    /// The reward the papers use for it.
    pub fn default_reward(self) -> RewardKind {
        match self {
            Self::NextToken => RewardKind::PrefixToken,
            Self::Asr | Self::Msr => RewardKind::PrefixSemantic,
        }
    }
}

/// A task instance before templating: the model sees `before` (and `after` for msr)
/// and should produce the start of `reference`.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The text the prediction continues.
    pub before: String,
    /// The text after the gap (msr only).
    pub after: Option<String>,
    /// The ground truth.
    pub reference: String,
    /// The document's text right after the reference (asr: the next segment): the
    /// prefix judge reads the reference and it as what really follows.
    pub following: Option<String>,
    /// Where the reference's first tokens end (bytes), as the text was tokenized in
    /// context (next-token: the segment's tokens); what follows the last is tokenized
    /// on its own. Empty: the whole reference is.
    pub token_ends: Vec<usize>,
    /// The entropy of the predicted token (next-token only).
    pub token_entropy: Option<f32>,
}

/// The instance `kind` makes of `triple`, if the triple can serve it (next-token needs
/// a hard token after the segment's start, which `choose` draws among all of them; msr
/// needs a next segment).
pub fn instance(
    kind: TaskKind,
    triple: &Triple,
    hard_entropy: f32,
    choose: &mut SplitMix64,
) -> Option<Instance> {
    match kind {
        TaskKind::NextToken => {
            let hard: Vec<usize> = (0..triple.token_offsets.len())
                .filter(|&i| {
                    triple.token_offsets[i] > 0
                        && triple
                            .token_entropy
                            .get(i)
                            .is_some_and(|&e| e >= hard_entropy)
                })
                .collect();
            if hard.is_empty() {
                return None;
            }
            next_token_at(
                triple,
                hard[(choose.next_u64() % hard.len() as u64) as usize],
            )
        }
        TaskKind::Asr => Some(Instance {
            before: triple.context.clone(),
            after: None,
            reference: triple.segment.clone(),
            following: triple
                .next_segment
                .as_ref()
                .map(|next| format!("{}{next}", segment_separator(triple))),
            token_ends: Vec::new(),
            token_entropy: None,
        }),
        TaskKind::Msr => Some(Instance {
            before: triple.context.clone(),
            after: Some(triple.next_segment.clone()?),
            reference: triple.segment.clone(),
            following: None,
            token_ends: Vec::new(),
            token_entropy: None,
        }),
    }
}

/// The next-token instance that stops before the segment's token at `position`: the
/// reference is the rest of the segment and the next segment.
pub fn next_token_at(triple: &Triple, position: usize) -> Option<Instance> {
    let segment = &triple.segment;
    let offset = *triple.token_offsets.get(position)? as usize;
    if offset == 0 || !segment.is_char_boundary(offset) || offset >= segment.len() {
        return None;
    }
    let token_ends = triple.token_offsets[position + 1..]
        .iter()
        .map(|&start| start as usize)
        .chain([segment.len()])
        .filter(|&end| end > offset && end <= segment.len() && segment.is_char_boundary(end))
        .map(|end| end - offset)
        .collect();
    Some(Instance {
        before: format!("{}{}", triple.context, &segment[..offset]),
        after: None,
        reference: match &triple.next_segment {
            Some(next) => format!("{}{}{next}", &segment[offset..], segment_separator(triple)),
            None => segment[offset..].to_string(),
        },
        following: None,
        token_ends,
        token_entropy: triple.token_entropy.get(position).copied(),
    })
}

/// What stood between two segments of the triple's document: segments are stored
/// trimmed, so this is the whitespace the context ends with (the separator before the
/// segment), or a space when the context is empty. Text that separates sentences by
/// no whitespace (Chinese, Japanese) gets none.
fn segment_separator(triple: &Triple) -> &str {
    if triple.context.is_empty() {
        return " ";
    }
    let context = triple.context.as_str();
    &context[context.trim_end().len()..]
}

/// The user message: `template` with its slots filled from `instance`.
pub fn fill(template: &str, kind: TaskKind, instance: &Instance) -> String {
    let text = template.replace("{next_segment}", instance.after.as_deref().unwrap_or(""));
    match kind {
        TaskKind::NextToken => text.replace("{text}", &instance.before),
        TaskKind::Asr | TaskKind::Msr => text.replace("{context}", &instance.before),
    }
}

/// How prompts are made for one tokenizer and chat template.
#[derive(Clone, Copy)]
pub struct Prompter<'a> {
    /// The model's tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// How the user message is wrapped.
    pub chat: ChatTemplate,
}

impl Prompter<'_> {
    /// `instance` with its text before the gap cut from the left (whole tokens, whole
    /// characters) so that its prompt under `template` fits `max_tokens`, and that
    /// prompt's ids: exactly the cut instance's prompt, chat header and all (where
    /// re-encoding at the cut takes more tokens, more is cut).
    pub fn fitted(
        &self,
        kind: TaskKind,
        template: &str,
        instance: &Instance,
        max_tokens: usize,
    ) -> Result<(Instance, Vec<u32>)> {
        let encode = |instance: &Instance| {
            self.tokenizer
                .encode(&self.chat.wrap(&fill(template, kind, instance)))
        };
        let whole = encode(instance)?;
        if whole.len() <= max_tokens {
            return Ok((instance.clone(), whole));
        }
        let before = self.tokenizer.encode(&instance.before)?;
        let starts = self.token_starts(&instance.before, &before);
        let mut excess = whole.len() - max_tokens;
        while excess < before.len() {
            let cut = Instance {
                before: self.text_from_token(
                    &instance.before,
                    &before,
                    starts.as_deref(),
                    excess,
                )?,
                ..instance.clone()
            };
            let ids = encode(&cut)?;
            if ids.len() <= max_tokens {
                return Ok((cut, ids));
            }
            excess += ids.len() - max_tokens;
        }
        Err(Error::Config(format!(
            "a {} prompt needs {} tokens without its text: raise max_prompt_tokens ({max_tokens})",
            kind.name(),
            whole.len().saturating_sub(before.len())
        )))
    }

    /// Where each token of `ids` starts in `text`, in bytes; `None` for a tokenizer
    /// whose tokens do not spell `text` byte for byte (one that normalises).
    fn token_starts(&self, text: &str, ids: &[u32]) -> Option<Vec<usize>> {
        let mut starts = Vec::with_capacity(ids.len());
        let mut at = 0;
        for &id in ids {
            let piece = self.tokenizer.token_bytes(id);
            if !text.as_bytes()[at..].starts_with(&piece) {
                return None;
            }
            starts.push(at);
            at += piece.len();
        }
        (at == text.len()).then_some(starts)
    }

    /// `text` (encoded as `ids`, its tokens starting at `starts`) from its token `skip`
    /// on. A cut inside a character (byte-level tokens split them) moves past it, so
    /// the rest is whole text, never a replacement character; without `starts` the
    /// tokens are decoded.
    fn text_from_token(
        &self,
        text: &str,
        ids: &[u32],
        starts: Option<&[usize]>,
        skip: usize,
    ) -> Result<String> {
        let Some(starts) = starts else {
            return Ok(self.tokenizer.decode(&ids[skip..])?);
        };
        let mut at = starts[skip];
        while !text.is_char_boundary(at) {
            at += 1;
        }
        Ok(text[at..].to_string())
    }

    /// The bytes of each token of `instance`'s reference, as the prefix-token reward
    /// reads them: split at its in-context token ends, the rest tokenized on its own.
    pub fn reference_tokens(&self, instance: &Instance) -> Result<Vec<Vec<u8>>> {
        let bytes = instance.reference.as_bytes();
        let mut tokens = Vec::new();
        let mut start = 0;
        for &end in &instance.token_ends {
            tokens.push(bytes[start..end].to_vec());
            start = end;
        }
        let rest = self.tokenizer.encode(&instance.reference[start..])?;
        tokens.extend(rest.iter().map(|&id| self.tokenizer.token_bytes(id)));
        Ok(tokens)
    }
}

/// ChatML in Jinja: each message between `<|im_start|>role` and `<|im_end|>`, then
/// an open assistant turn when the caller asks for one ([`ChatTemplate::wrap`]).
const CHATML_JINJA: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] \
+ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt \
%}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// How prompts are presented to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// The user message as it is.
    None,
    /// `<|im_start|>user … <|im_end|>` then an open assistant turn.
    ChatMl,
}

/// The config's `chat_template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatTemplateSetting {
    /// ChatML when the vocabulary has `<|im_start|>` and `<|im_end|>`, else none.
    #[default]
    Auto,
    /// Always ChatML.
    Chatml,
    /// The user message as it is.
    None,
}

impl ChatTemplate {
    /// The template `setting` gives a model with `tokenizer`.
    pub fn choose(setting: ChatTemplateSetting, tokenizer: &rlpt_lm::Tokenizer) -> Self {
        match setting {
            ChatTemplateSetting::Chatml => Self::ChatMl,
            ChatTemplateSetting::None => Self::None,
            ChatTemplateSetting::Auto
                if tokenizer.token_id("<|im_start|>").is_some()
                    && tokenizer.token_id("<|im_end|>").is_some() =>
            {
                Self::ChatMl
            }
            ChatTemplateSetting::Auto => Self::None,
        }
    }

    /// The prompt text of `user`.
    pub fn wrap(self, user: &str) -> String {
        match self {
            Self::None => user.to_string(),
            Self::ChatMl => format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"),
        }
    }

    /// The template in Jinja (`chat_template` of a Hugging Face tokenizer config), for
    /// a model whose tokenizer has none.
    pub fn jinja(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::ChatMl => Some(CHATML_JINJA),
        }
    }

    /// Text that ends the assistant's turn, if the template has one.
    pub fn end_of_turn(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::ChatMl => Some("<|im_end|>"),
        }
    }
}

/// One task of the mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// `next-token`, `asr` or `msr`.
    pub kind: TaskKind,
    /// Share of prompts drawn for this task (relative to the others).
    pub weight: f64,
    /// `prefix-token`, `prefix-semantic` or `strict`; default per kind.
    pub reward: Option<RewardKind>,
    /// The prompt, with `{text}` (next-token), `{context}`, `{next_segment}`; default:
    /// the paper's.
    pub template: Option<String>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: TaskKind::NextToken,
            weight: 1.0,
            reward: None,
            template: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple() -> Triple {
        Triple {
            id: "d#1".into(),
            doc_id: "d".into(),
            context: "Algebra is old. ".into(),
            segment: "It studies équations.".into(),
            next_segment: Some("It has rules.".into()),
            difficulty: Some("hard".into()),
            seg_entropy_mean: Some(1.0),
            token_entropy: vec![2.0, 0.1, 1.7, 0.2],
            token_offsets: vec![0, 2, 10, 13],
        }
    }

    #[test]
    fn next_token_draws_among_every_hard_token_and_reaches_into_the_next_segment() {
        let mut two_hard = triple();
        two_hard.token_entropy = vec![2.0, 1.6, 1.7, 0.2];
        let mut seen = std::collections::BTreeMap::new();
        for seed in 0..64 {
            let drawn = instance(
                TaskKind::NextToken,
                &two_hard,
                1.5,
                &mut SplitMix64::new(seed),
            )
            .unwrap();
            seen.insert(drawn.before.clone(), drawn);
        }
        let befores: Vec<&String> = seen.keys().collect();
        assert_eq!(
            befores,
            ["Algebra is old. It", "Algebra is old. It studies"],
            "the first token (offset 0) is never a candidate, both hard ones are"
        );
        let last = &seen["Algebra is old. It studies"];
        // Segments are stored trimmed: the document's separator (the one the context
        // ends with) joins the segment and the next.
        assert_eq!(last.reference, " équations. It has rules.");
        assert_eq!(last.token_entropy, Some(1.7));
        // In-context token ends within the segment: " équ" ends at 13 − 10, the
        // segment at its 22 bytes; the next segment is tokenized on its own.
        assert_eq!(last.token_ends, [3, 12]);
        assert!(instance(TaskKind::NextToken, &triple(), 3.0, &mut SplitMix64::new(0)).is_none());
    }

    #[test]
    fn msr_needs_a_next_segment_and_fills_both_slots() {
        let mut last = triple();
        let msr = instance(TaskKind::Msr, &last, 1.5, &mut SplitMix64::new(0)).unwrap();
        let text = fill("{context}|{next_segment}", TaskKind::Msr, &msr);
        assert_eq!(text, "Algebra is old. |It has rules.");
        let asr = instance(TaskKind::Asr, &last, 1.5, &mut SplitMix64::new(0)).unwrap();
        assert_eq!(asr.following.as_deref(), Some(" It has rules."));
        let mut unspaced = last.clone();
        unspaced.context = "代数很古老。".into();
        let asr = instance(TaskKind::Asr, &unspaced, 1.5, &mut SplitMix64::new(0)).unwrap();
        assert_eq!(asr.following.as_deref(), Some("It has rules."));
        last.next_segment = None;
        assert!(instance(TaskKind::Msr, &last, 1.5, &mut SplitMix64::new(0)).is_none());
        assert_eq!(
            instance(TaskKind::Asr, &last, 1.5, &mut SplitMix64::new(0))
                .unwrap()
                .reference,
            "It studies équations."
        );
    }

    #[test]
    fn default_templates_follow_the_papers_layout() {
        let next = instance(TaskKind::NextToken, &triple(), 1.5, &mut SplitMix64::new(0)).unwrap();
        let text = fill(
            TaskKind::NextToken.default_template(),
            TaskKind::NextToken,
            &next,
        );
        assert!(text.contains("\\boxed{}") && text.contains("begin with a space"));
        assert!(text.ends_with("### Context\nAlgebra is old. It studies"));
        let msr = instance(TaskKind::Msr, &triple(), 1.5, &mut SplitMix64::new(0)).unwrap();
        let text = fill(TaskKind::Msr.default_template(), TaskKind::Msr, &msr);
        assert!(text.ends_with("### Context\nAlgebra is old. <MASK> It has rules."));
        assert_eq!(
            ChatTemplate::ChatMl.wrap("hi"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_fitted_prompt_keeps_its_chat_header_and_whole_characters_at_any_budget() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data-samples/tokenizers/smollm2-135m.json.gz");
        let tokenizer = Tokenizer::from_file(&path).unwrap();
        let prompter = Prompter {
            tokenizer: &tokenizer,
            chat: ChatTemplate::ChatMl,
        };
        // Byte-level tokens split the characters of these scripts, so most cuts
        // fall inside one.
        let mut long = triple();
        long.context = "代数很古老。Ἄλγεβρα — 🧮 équations, Zahlentheorie. ".repeat(12);
        let next = instance(TaskKind::NextToken, &long, 1.5, &mut SplitMix64::new(0)).unwrap();
        let template = TaskKind::NextToken.default_template();
        let header = tokenizer.encode("<|im_start|>user\n").unwrap();
        let (_, whole) = prompter
            .fitted(TaskKind::NextToken, template, &next, 10_000)
            .unwrap();
        for budget in (whole.len() - 120..whole.len()).step_by(7) {
            let (cut, ids) = prompter
                .fitted(TaskKind::NextToken, template, &next, budget)
                .unwrap();
            assert!(ids.len() <= budget, "{} tokens over {budget}", ids.len());
            assert!(ids.starts_with(&header), "the header is cut at {budget}");
            assert!(next.before.ends_with(&cut.before), "{:?}", cut.before);
            assert!(!cut.before.contains(char::REPLACEMENT_CHARACTER));
            let prompt = ChatTemplate::ChatMl.wrap(&fill(template, TaskKind::NextToken, &cut));
            assert_eq!(
                ids,
                tokenizer.encode(&prompt).unwrap(),
                "the cut's own prompt"
            );
        }
        let refused = prompter.fitted(TaskKind::NextToken, template, &next, 8);
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("raise max_prompt_tokens")
        );
    }
}
