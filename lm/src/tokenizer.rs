//! The tokenizer every stage and the trainer share: a Hugging Face `tokenizer.json`
//! (optionally `.gz`), or one built from a GGUF file's `tokenizer.ggml.*` metadata —
//! byte-level BPE vocabulary and merges, token types (control tokens become special
//! tokens), bos/eos/pad ids, the chat template, and the pre-tokenizer llama.cpp
//! associates with `tokenizer.ggml.pre`. Beside a `tokenizer.json`, a Hugging Face
//! `tokenizer_config.json` (and `chat_template.jinja`) supplies the special tokens and
//! chat template; [`Tokenizer::hf_tokenizer_config`] writes them back in that form.
//!
//! For SmolLM2 (`pre = "smollm"`) that pre-tokenizer isolates every digit before the
//! GPT-2 byte-level split, as llama.cpp does; Hugging Face transformers' GGUF converter
//! keeps only the byte-level split, so the two disagree on multi-digit numbers
//! (`lm/tests/` measures both against llama.cpp).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};
use xxhash_rust::xxh3::xxh3_64;

use crate::byte_level_bpe::ByteLevelBpe;
use crate::error::{Error, Result};
use crate::gguf::{Metadata, gguf_metadata};
use crate::model::SpecialTokenIds;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The pre-tokenizer regex of Llama 3 style BPE vocabularies.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The pre-tokenizer regex of Qwen2 vocabularies.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer, with where it came from.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    name: String,
    fingerprint: String,
    extras: Extras,
    /// The fast encoder, for the tokenizers it reproduces exactly.
    fast: Option<Arc<ByteLevelBpe>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .field("vocab", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Loads `path`: a GGUF file (`.gguf`), or a `tokenizer.json` (`.json`, `.json.gz`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let fingerprint = format!("{:016x}", xxh3_64(&bytes));
        let lower = name.to_ascii_lowercase();
        let (mut inner, extras) = if lower.ends_with(".gguf") {
            from_gguf(path, &bytes)?
        } else if lower.ends_with(".json") || lower.ends_with(".json.gz") {
            let inner = from_json(path, &bytes, lower.ends_with(".gz"))?;
            let extras = Extras::beside(path, &inner)?;
            (inner, extras)
        } else {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "this file type".into(),
                hint: "; give a .gguf file or a tokenizer.json (.json or .json.gz)".into(),
            });
        };
        // Counts and ids are of the whole text: a file's truncation or padding would
        // silently change them.
        inner
            .with_truncation(None)
            .map_err(|source| tokenizer_error(path, source))?;
        inner.with_padding(None);
        Ok(Self {
            fast: ByteLevelBpe::from_tokenizer(&inner).map(Arc::new),
            inner,
            name,
            fingerprint,
            extras,
        })
    }

    /// A byte-level BPE tokenizer (GPT-2's pre-token pattern, so the fast encoder
    /// applies) trained on `texts` to `vocab_size` tokens, `special` tokens first.
    /// Deterministic: the same texts give the same merges. Returned as tokenizer.json.
    pub fn train_byte_level_bpe(
        texts: &[String],
        vocab_size: usize,
        special: &[&str],
    ) -> Result<String> {
        let train_error = |source| Error::Tokenizer {
            context: "training a byte-level BPE tokenizer".into(),
            source,
        };
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .min_frequency(2)
                .show_progress(false)
                .special_tokens(
                    special
                        .iter()
                        .map(|token| AddedToken::from(token.to_string(), true))
                        .collect(),
                )
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
        tokenizer
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_decoder(Some(ByteLevelDecoder::new(false, true, true)));
        tokenizer
            .train(&mut trainer, texts.iter())
            .map_err(train_error)?;
        tokenizer.to_string(false).map_err(train_error)
    }

    /// The file name it was loaded from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// xxh3-64 of the file it was loaded from, in hex: its identity in configs.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The beginning-of-sequence token, when the source names one.
    pub fn bos(&self) -> Option<u32> {
        self.extras.bos
    }

    /// The end-of-sequence token, when the source names one.
    pub fn eos(&self) -> Option<u32> {
        self.extras.eos
    }

    /// The beginning, end and padding token ids the source names.
    pub fn special_ids(&self) -> SpecialTokenIds {
        SpecialTokenIds {
            bos: self.extras.bos,
            eos: self.extras.eos,
            pad: self.extras.pad,
        }
    }

    /// The source's chat template (Jinja), when it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.extras.chat_template.as_deref()
    }

    /// The Hugging Face `tokenizer_config.json` of this tokenizer with the `special`
    /// tokens (and the source's unknown token), `chat_template` (the source's, else
    /// `fallback_template`), and no cleanup of decoded spaces (decoding must give back
    /// the text).
    pub fn hf_tokenizer_config(
        &self,
        special: &SpecialTokenIds,
        fallback_template: Option<&str>,
    ) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        for (key, id) in [
            ("bos_token", special.bos),
            ("eos_token", special.eos),
            ("pad_token", special.pad),
            ("unk_token", self.extras.unk),
        ] {
            if let Some(token) = id.and_then(|id| self.inner.id_to_token(id)) {
                fields.insert(key.into(), token.into());
            }
        }
        if let Some(template) = self.chat_template().or(fallback_template) {
            fields.insert("chat_template".into(), template.into());
        }
        fields.insert("clean_up_tokenization_spaces".into(), false.into());
        serde_json::to_string_pretty(&fields).expect("a JSON map serialises")
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The token ids of `text` (no bos/eos added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.fast {
            Some(fast) => Ok(fast.encode(text)),
            None => self.encode_with_tokenizers(text),
        }
    }

    /// The token ids of `text` from the `tokenizers` crate, whatever the tokenizer.
    fn encode_with_tokenizers(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|source| Error::Tokenizer {
                context: format!("encoding with {}", self.name),
                source,
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The token ids of `text` with the byte range of the text each covers (as the
    /// `tokenizers` crate reports it), through the `tokenizers` crate.
    pub fn encode_with_offsets(&self, text: &str) -> Result<IdsAndOffsets> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|source| Error::Tokenizer {
                context: format!("encoding with {}", self.name),
                source,
            })?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// The number of tokens of `text`.
    pub fn count(&self, text: &str) -> Result<usize> {
        match &self.fast {
            Some(fast) => Ok(fast.count(text)),
            None => Ok(self.encode_with_tokenizers(text)?.len()),
        }
    }

    /// Whether counts add up across a cut between a non-whitespace and a whitespace
    /// character (`count(a + b) == count(a) + count(b)`), and no text has more tokens
    /// than bytes: true for the byte-level BPE vocabularies behind GPT-2's
    /// pre-tokenizer that the fast encoder covers (SmolLM2's among them), since no
    /// pre-token spans such a cut and no added token holds whitespace. Llama 3 and
    /// Qwen2 patterns glue punctuation to the newlines after it, so they are not.
    pub fn additive_at_whitespace(&self) -> bool {
        self.fast
            .as_ref()
            .is_some_and(|fast| fast.added_tokens_hold_no_whitespace())
    }

    /// The text of `ids` (special tokens included).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|source| Error::Tokenizer {
                context: format!("decoding with {}", self.name),
                source,
            })
    }

    /// The id of the token spelled `token` in the vocabulary (special tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The bytes token `id` stands for on its own: a byte-level token's bytes (which
    /// may be part of a UTF-8 character), an added token's text, else its decoded text.
    /// Empty for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(piece) = self.inner.id_to_token(id) else {
            return Vec::new();
        };
        // The added vocabulary's own map (Tokenizer::get_added_tokens_decoder copies it).
        let added = self
            .inner
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .contains_key(&id);
        let byte_level = matches!(
            self.inner.get_decoder(),
            Some(tokenizers::DecoderWrapper::ByteLevel(_))
        );
        if byte_level
            && !added
            && let Some(bytes) = crate::byte_level_bpe::gpt2_bytes(&piece)
        {
            return bytes;
        }
        if added {
            return piece.into_bytes();
        }
        self.decode(&[id])
            .map(String::into_bytes)
            .unwrap_or_default()
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|source| Error::Tokenizer {
                context: format!("serialising {}", self.name),
                source,
            })
    }
}

fn tokenizer_error(path: &Path, source: tokenizers::Error) -> Error {
    Error::Tokenizer {
        context: path.display().to_string(),
        source,
    }
}

fn from_json(path: &Path, bytes: &[u8], gzipped: bool) -> Result<tokenizers::Tokenizer> {
    let mut json = Vec::new();
    let bytes = if gzipped {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        &json[..]
    } else {
        bytes
    };
    tokenizers::Tokenizer::from_bytes(bytes).map_err(|source| tokenizer_error(path, source))
}

type Built = (tokenizers::Tokenizer, Extras);

/// What a tokenizer's source says besides the vocabulary.
#[derive(Debug, Clone, Default)]
struct Extras {
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    unk: Option<u32>,
    chat_template: Option<String>,
}

/// The parts of a `tokenizer_config.json` read here.
#[derive(serde::Deserialize)]
struct HfTokenizerConfig {
    bos_token: Option<serde_json::Value>,
    eos_token: Option<serde_json::Value>,
    pad_token: Option<serde_json::Value>,
    unk_token: Option<serde_json::Value>,
    chat_template: Option<serde_json::Value>,
}

impl Extras {
    /// From the `tokenizer_config.json` and `chat_template.jinja` beside `path`, when
    /// there are; token names the vocabulary lacks are an error.
    fn beside(path: &Path, inner: &tokenizers::Tokenizer) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let config_path = dir.join("tokenizer_config.json");
        let mut extras = Self::default();
        if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
                path: config_path.clone(),
                source,
            })?;
            let problem = |problem: String| Error::Model {
                path: config_path.clone(),
                problem,
            };
            let config: HfTokenizerConfig = serde_json::from_str(&text)
                .map_err(|err| problem(format!("not a readable tokenizer_config.json: {err}")))?;
            let id = |key: &str, value: Option<serde_json::Value>| -> Result<Option<u32>> {
                let Some(token) = value.as_ref().and_then(token_content) else {
                    return Ok(None);
                };
                inner
                    .token_to_id(token)
                    .map(Some)
                    .ok_or_else(|| problem(format!("its {key} {token:?} is not in the vocabulary")))
            };
            extras.bos = id("bos_token", config.bos_token)?;
            extras.eos = id("eos_token", config.eos_token)?;
            extras.pad = id("pad_token", config.pad_token)?;
            extras.unk = id("unk_token", config.unk_token)?;
            extras.chat_template = config.chat_template.as_ref().and_then(default_template);
        }
        let jinja = dir.join("chat_template.jinja");
        if jinja.exists() {
            extras.chat_template =
                Some(std::fs::read_to_string(&jinja).map_err(|source| Error::Io {
                    path: jinja.clone(),
                    source,
                })?);
        }
        Ok(extras)
    }
}

/// A special token's text: a string, or an object with `content`.
fn token_content(value: &serde_json::Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("content").and_then(serde_json::Value::as_str))
}

/// A `chat_template` entry: a string, or a list of named templates (the `default`).
fn default_template(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(template) => Some(template.clone()),
        serde_json::Value::Array(named) => named
            .iter()
            .find(|t| t.get("name").and_then(serde_json::Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(serde_json::Value::as_str)
            .map(String::from),
        _ => None,
    }
}

/// Token ids and, for each, the byte range `(start, end)` of the text it covers.
pub type IdsAndOffsets = (Vec<u32>, Vec<(usize, usize)>);

fn from_gguf(path: &Path, bytes: &[u8]) -> Result<Built> {
    let content = gguf_metadata(path, bytes)?;
    let meta = Metadata {
        path,
        content: &content,
    };
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!("tokenizer model `{model}`"),
            hint: "; byte-level BPE (`gpt2`) vocabularies are".into(),
        });
    }
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    meta.problem(
                        "tokenizer.ggml.merges",
                        &format!("holds {merge:?}, not `A B`"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let types = meta.ints("tokenizer.ggml.token_type")?;
    if types.len() != tokens.len() {
        return Err(meta.problem(
            "tokenizer.ggml.token_type",
            "does not have one entry per token",
        ));
    }
    let pre = meta
        .string("tokenizer.ggml.pre")
        .unwrap_or_else(|_| "default".into());
    let (pre_tokenizer, ignore_merges) = pre_tokenizer(path, &pre)?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|source| tokenizer_error(path, source))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = added(&tokens, &types, TOKEN_TYPE_CONTROL, true);
    let user: Vec<AddedToken> = added(&tokens, &types, TOKEN_TYPE_USER_DEFINED, false);
    tokenizer
        .add_special_tokens(special)
        .map_err(|source| tokenizer_error(path, source))?;
    tokenizer
        .add_tokens(user)
        .map_err(|source| tokenizer_error(path, source))?;
    let extras = Extras {
        bos: meta.optional_u32("tokenizer.ggml.bos_token_id")?,
        eos: meta.optional_u32("tokenizer.ggml.eos_token_id")?,
        pad: meta.optional_u32("tokenizer.ggml.padding_token_id")?,
        unk: meta.optional_u32("tokenizer.ggml.unknown_token_id")?,
        chat_template: meta.string("tokenizer.chat_template").ok(),
    };
    if meta.optional_bool("tokenizer.ggml.add_bos_token")? {
        let bos_id = extras.bos.ok_or_else(|| {
            meta.problem(
                "tokenizer.ggml.bos_token_id",
                "is missing but add_bos_token is set",
            )
        })?;
        let bos_token = tokens.get(bos_id as usize).cloned().unwrap_or_default();
        let template = TemplateProcessing::builder()
            .try_single(format!("{bos_token} $A"))
            .and_then(|b| {
                b.special_tokens(vec![(bos_token.clone(), bos_id)])
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|err| meta.problem("tokenizer.ggml.add_bos_token", &err.to_string()))?;
        tokenizer.with_post_processor(Some(template));
    }
    Ok((tokenizer, extras))
}

fn added(tokens: &[String], types: &[i32], wanted: i32, special: bool) -> Vec<AddedToken> {
    tokens
        .iter()
        .zip(types)
        .filter(|(_, kind)| **kind == wanted)
        .map(|(token, _)| AddedToken::from(token.clone(), special))
        .collect()
}

/// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name, and whether the
/// vocabulary ignores merges for whole-token matches (Llama 3 style).
fn pre_tokenizer(path: &Path, pre: &str) -> Result<(PreTokenizerWrapper, bool)> {
    let byte_level =
        |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(PreTokenizerWrapper::Split)
        .map_err(|source| tokenizer_error(path, source))
    };
    Ok(match pre {
        "default" | "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" => (byte_level(true), false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => (
            PreTokenizerWrapper::Sequence(Sequence::new(vec![split(r"\p{N}")?, byte_level(true)])),
            false,
        ),
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" => (
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                split(LLAMA3_PATTERN)?,
                byte_level(false),
            ])),
            true,
        ),
        "qwen2" => (
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                split(QWEN2_PATTERN)?,
                byte_level(false),
            ])),
            false,
        ),
        other => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("pre-tokenizer `{other}`"),
                hint: "; supported: gpt2, smollm, starcoder, llama3, qwen2 (and their aliases)"
                    .into(),
            });
        }
    })
}
