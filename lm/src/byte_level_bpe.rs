//! A fast exact encoder for byte-level BPE behind GPT-2's pre-tokenizer, optionally
//! isolating digits first (SmolLM2, GPT-2, StarCoder vocabularies).
//!
//! It gives the `tokenizers` crate's ids for the same tokenizer — added tokens matched
//! first (non-normalized ones, then normalized ones, leftmost-longest), then GPT-2's
//! pre-token pattern, then merges by rank and, among equal ranks, leftmost first — but
//! scans pre-tokens by hand instead of through a backtracking regex and caches each
//! pre-token's ids per thread. [`ByteLevelBpe::from_tokenizer`] accepts only the
//! tokenizers it reproduces; the tests compare the two on every sample document and on
//! generated text.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::Value;
use thread_local::ThreadLocal;
use tokenizers::models::ModelWrapper;
use unicode_general_category::{GeneralCategory, get_general_category};

/// GPT-2's contractions, the first alternatives of its pre-token pattern.
const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

/// Pre-tokens longer than this are encoded without being cached.
const MAX_CACHED_BYTES: usize = 64;
/// A thread's cache is emptied when it holds this many pre-tokens.
const MAX_CACHED_PRE_TOKENS: usize = 1 << 18;

/// The encoder.
pub(crate) struct ByteLevelBpe {
    /// Added tokens matched in the raw text (`normalized: false`), with their ids.
    raw_added: Option<AddedTokens>,
    /// Added tokens matched in what the first pass left (`normalized: true`).
    normalized_added: Option<AddedTokens>,
    isolate_digits: bool,
    /// Whether no added token contains whitespace.
    added_without_whitespace: bool,
    /// The id of each byte's GPT-2 character; `None` for one the vocabulary lacks,
    /// which the `tokenizers` crate drops (no unknown token, no byte fallback).
    byte_ids: [Option<u32>; 256],
    /// (left, right) → (rank, merged id).
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    cache: ThreadLocal<RefCell<PreTokenCache>>,
}

/// Added tokens and the automaton that finds them.
struct AddedTokens {
    automaton: AhoCorasick,
    ids: Vec<u32>,
}

/// A thread's pre-token → ids cache; ids live in one arena.
#[derive(Default)]
struct PreTokenCache {
    ranges: FxHashMap<Box<str>, (u32, u32)>,
    ids: Vec<u32>,
    /// The ids of the last pre-token too long to cache.
    uncached: Vec<u32>,
}

impl ByteLevelBpe {
    /// The encoder for `tokenizer`, or `None` when it is not byte-level BPE behind
    /// GPT-2's pre-tokenizer with nothing else that changes ids: no normalizer, no
    /// dropout, no subword prefix or suffix, merges not ignored, a byte missing from the
    /// vocabulary dropped (as `tokenizers` does without an unknown token or byte
    /// fallback), and no added token that strips whitespace or must be a single word.
    pub(crate) fn from_tokenizer(tokenizer: &tokenizers::Tokenizer) -> Option<Self> {
        if tokenizer.get_normalizer().is_some() {
            return None;
        }
        let ModelWrapper::BPE(bpe) = tokenizer.get_model() else {
            return None;
        };
        let plain = bpe.dropout.is_none()
            && bpe.continuing_subword_prefix.is_none()
            && bpe.end_of_word_suffix.is_none()
            && !bpe.ignore_merges;
        let pre = serde_json::to_value(tokenizer.get_pre_tokenizer()?).ok()?;
        let isolate_digits = gpt2_pre_tokenizer(&pre)?;
        if !plain {
            return None;
        }
        let model = serde_json::to_string(bpe).ok()?;
        let model: SerializedBpe = serde_json::from_str(&model).ok()?;
        let vocab: FxHashMap<&str, u32> = model
            .vocab
            .iter()
            .map(|(token, &id)| (token.as_ref(), id))
            .collect();
        let mut byte_ids = [None; 256];
        for (byte, id) in byte_ids.iter_mut().enumerate() {
            *id = vocab
                .get(gpt2_char(byte as u8).encode_utf8(&mut [0; 4]) as &str)
                .copied();
        }
        let drops_missing_bytes = bpe.unk_token.is_none() && !bpe.byte_fallback;
        if byte_ids.contains(&None) && !drops_missing_bytes {
            return None;
        }
        let merges = merge_table(&model.merges, &vocab)?;
        let (raw_added, normalized_added) = added_tokens(tokenizer)?;
        let added_without_whitespace = tokenizer
            .get_added_tokens_decoder()
            .values()
            .all(|token| !token.content.contains(char::is_whitespace));
        Some(Self {
            raw_added,
            normalized_added,
            isolate_digits,
            added_without_whitespace,
            byte_ids,
            merges,
            cache: ThreadLocal::new(),
        })
    }

    /// Whether no added token contains whitespace (so none spans a cut between
    /// non-whitespace and whitespace).
    pub(crate) fn added_tokens_hold_no_whitespace(&self) -> bool {
        self.added_without_whitespace
    }

    /// The ids of `text`.
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3);
        self.for_each_pre_token(text, |cache, piece| match piece {
            Piece::Added(id) => ids.push(id),
            Piece::Text(pre_token) => ids.extend_from_slice(cache.ids(self, pre_token)),
        });
        ids
    }

    /// How many ids `text` has.
    pub(crate) fn count(&self, text: &str) -> usize {
        let mut count = 0;
        self.for_each_pre_token(text, |cache, piece| match piece {
            Piece::Added(_) => count += 1,
            Piece::Text(pre_token) => count += cache.ids(self, pre_token).len(),
        });
        count
    }

    fn for_each_pre_token(&self, text: &str, mut visit: impl FnMut(&mut PreTokenCache, Piece<'_>)) {
        let mut cache = self.cache.get_or_default().borrow_mut();
        if cache.ranges.len() >= MAX_CACHED_PRE_TOKENS {
            *cache = PreTokenCache::default();
        }
        split_added(self.raw_added.as_ref(), text, &mut |piece| match piece {
            Piece::Added(id) => visit(&mut cache, Piece::Added(id)),
            Piece::Text(rest) => {
                split_added(
                    self.normalized_added.as_ref(),
                    rest,
                    &mut |piece| match piece {
                        Piece::Added(id) => visit(&mut cache, Piece::Added(id)),
                        Piece::Text(plain) => {
                            pre_tokens(plain, self.isolate_digits, &mut |pre_token| {
                                visit(&mut cache, Piece::Text(pre_token))
                            })
                        }
                    },
                )
            }
        });
    }

    /// The ids of one pre-token: its bytes' ids, the adjacent pair of lowest merge rank
    /// (leftmost among equals) merged again and again until no pair has a merge.
    fn merge(&self, pre_token: &str, out: &mut Vec<u32>) {
        if pre_token.len() <= MAX_CACHED_BYTES {
            self.merge_short(pre_token, out)
        } else {
            self.merge_long(pre_token, out)
        }
    }

    /// `merge` on the stack by scanning for the lowest rank each time: quadratic, and
    /// faster than a heap for the short pre-tokens that are nearly all of any text.
    fn merge_short(&self, pre_token: &str, out: &mut Vec<u32>) {
        const NONE: (u32, u32) = (u32::MAX, 0);
        let merge_of = |left, right| self.merges.get(&(left, right)).copied().unwrap_or(NONE);
        let mut symbols = [0u32; MAX_CACHED_BYTES];
        let mut len = 0;
        for id in pre_token.bytes().filter_map(|b| self.byte_ids[b as usize]) {
            symbols[len] = id;
            len += 1;
        }
        // pairs[i]: (rank, merged id) of symbols[i] and symbols[i + 1].
        let mut pairs = [NONE; MAX_CACHED_BYTES];
        for at in 1..len {
            pairs[at - 1] = merge_of(symbols[at - 1], symbols[at]);
        }
        while len > 1 {
            let (at, (rank, merged)) = pairs[..len - 1]
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|(_, (rank, _))| *rank)
                .expect("two symbols make a pair");
            if rank == u32::MAX {
                break;
            }
            symbols[at] = merged;
            symbols.copy_within(at + 2..len, at + 1);
            pairs.copy_within(at + 1..len - 1, at);
            len -= 1;
            if at + 1 < len {
                pairs[at] = merge_of(symbols[at], symbols[at + 1]);
            }
            if at > 0 {
                pairs[at - 1] = merge_of(symbols[at - 1], symbols[at]);
            }
        }
        out.extend_from_slice(&symbols[..len]);
    }

    /// `merge` with a heap of candidate pairs by (rank, position), as `tokenizers`
    /// does: for pre-tokens of any length.
    fn merge_long(&self, pre_token: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = pre_token
            .bytes()
            .filter_map(|b| self.byte_ids[b as usize])
            .collect();
        let mut next: Vec<usize> = (1..=symbols.len()).collect();
        let mut previous: Vec<Option<usize>> =
            (0..symbols.len()).map(|i| i.checked_sub(1)).collect();
        let mut alive = vec![true; symbols.len()];
        let mut queue = BinaryHeap::new();
        let pair_at = |symbols: &[u32], next: &[usize], at: usize| {
            let right = *next.get(at)?;
            let pair = (symbols[at], *symbols.get(right)?);
            self.merges
                .get(&pair)
                .map(|&(rank, id)| Reverse((rank, at, id)))
        };
        queue.extend((0..symbols.len()).filter_map(|at| pair_at(&symbols, &next, at)));
        while let Some(Reverse((_, at, id))) = queue.pop() {
            let current = pair_at(&symbols, &next, at);
            if !alive[at] || current.is_none_or(|Reverse((_, _, now))| now != id) {
                continue;
            }
            let right = next[at];
            symbols[at] = id;
            alive[right] = false;
            next[at] = next[right];
            if let Some(after) = next.get(at).copied().filter(|&n| n < symbols.len()) {
                previous[after] = Some(at);
            }
            if let Some(before) = previous[at] {
                queue.extend(pair_at(&symbols, &next, before));
            }
            queue.extend(pair_at(&symbols, &next, at));
        }
        out.extend(
            symbols
                .iter()
                .zip(&alive)
                .filter(|(_, alive)| **alive)
                .map(|(id, _)| *id),
        );
    }
}

impl PreTokenCache {
    /// The ids of `pre_token`, from the cache or merged now.
    fn ids(&mut self, bpe: &ByteLevelBpe, pre_token: &str) -> &[u32] {
        if pre_token.len() > MAX_CACHED_BYTES {
            self.uncached.clear();
            bpe.merge(pre_token, &mut self.uncached);
            return &self.uncached;
        }
        let (from, to) = match self.ranges.get(pre_token) {
            Some(&range) => range,
            None => {
                let start = self.ids.len();
                bpe.merge(pre_token, &mut self.ids);
                let range = (start as u32, self.ids.len() as u32);
                self.ranges.insert(pre_token.into(), range);
                range
            }
        };
        &self.ids[from as usize..to as usize]
    }
}

/// A piece of text: an added token's id, or text to pre-tokenize.
#[derive(Clone, Copy)]
enum Piece<'t> {
    Added(u32),
    Text(&'t str),
}

/// `text` as added tokens and the text between them.
fn split_added<'t>(added: Option<&AddedTokens>, text: &'t str, visit: &mut dyn FnMut(Piece<'t>)) {
    let Some(added) = added else {
        return visit(Piece::Text(text));
    };
    let mut at = 0;
    for found in added.automaton.find_iter(text) {
        if at < found.start() {
            visit(Piece::Text(&text[at..found.start()]));
        }
        visit(Piece::Added(added.ids[found.pattern().as_usize()]));
        at = found.end();
    }
    if at < text.len() {
        visit(Piece::Text(&text[at..]));
    }
}

/// The two passes of added tokens, `None` where a pass has none; `None` overall when
/// a token strips whitespace or must be a single word.
type AddedPasses = (Option<AddedTokens>, Option<AddedTokens>);

fn added_tokens(tokenizer: &tokenizers::Tokenizer) -> Option<AddedPasses> {
    let mut raw = (Vec::new(), Vec::new());
    let mut normalized = (Vec::new(), Vec::new());
    let mut tokens: Vec<_> = tokenizer.get_added_tokens_decoder().into_iter().collect();
    tokens.sort_by_key(|(id, _)| *id);
    for (id, token) in tokens {
        if token.lstrip || token.rstrip || token.single_word || token.content.is_empty() {
            return None;
        }
        let pass = if token.normalized {
            &mut normalized
        } else {
            &mut raw
        };
        pass.0.push(token.content);
        pass.1.push(id);
    }
    let automaton = |(patterns, ids): (Vec<String>, Vec<u32>)| -> Option<Option<AddedTokens>> {
        if patterns.is_empty() {
            return Some(None);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        Some(Some(AddedTokens { automaton, ids }))
    };
    Some((automaton(raw)?, automaton(normalized)?))
}

/// Whether `pre` is GPT-2's byte-level pre-tokenizer (`Some(false)`) or that after
/// isolating every `\p{N}` character (`Some(true)`).
pub(crate) fn gpt2_pre_tokenizer(pre: &Value) -> Option<bool> {
    let byte_level = |step: &Value| {
        step["type"] == "ByteLevel"
            && step["use_regex"] == true
            && step["add_prefix_space"] == false
    };
    let isolates_digits = |step: &Value| {
        step["type"] == "Split"
            && step["pattern"]["Regex"] == r"\p{N}"
            && step["behavior"] == "Isolated"
            && step["invert"] == false
    };
    if byte_level(pre) {
        return Some(false);
    }
    match pre["pretokenizers"].as_array().map(Vec::as_slice) {
        Some([digits, bytes])
            if pre["type"] == "Sequence" && isolates_digits(digits) && byte_level(bytes) =>
        {
            Some(true)
        }
        _ => None,
    }
}

/// The parts of a serialised BPE model the encoder needs, borrowed where the JSON has
/// no escapes.
#[derive(Deserialize)]
struct SerializedBpe<'a> {
    #[serde(borrow)]
    vocab: FxHashMap<Cow<'a, str>, u32>,
    #[serde(borrow)]
    merges: Vec<Merge<'a>>,
}

/// A merge as `tokenizers` writes it: `["a", "b"]`, or `"a b"` in older files.
#[derive(Deserialize)]
#[serde(untagged)]
enum Merge<'a> {
    Pair(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
    Joined(#[serde(borrow)] Cow<'a, str>),
}

/// (left, right) → (rank, merged id) from merges in rank order.
fn merge_table(
    merges: &[Merge],
    vocab: &FxHashMap<&str, u32>,
) -> Option<FxHashMap<(u32, u32), (u32, u32)>> {
    let mut table = FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
    let mut joined = String::new();
    for (rank, merge) in merges.iter().enumerate() {
        let (left, right) = match merge {
            Merge::Pair(left, right) => (left.as_ref(), right.as_ref()),
            Merge::Joined(pair) => pair.split_once(' ')?,
        };
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let merged = vocab.get(joined.as_str())?;
        table.insert(
            (*vocab.get(left)?, *vocab.get(right)?),
            (rank as u32, *merged),
        );
    }
    Some(table)
}

/// The printable character GPT-2's byte-level alphabet maps `byte` to.
fn gpt2_char(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        return char::from(byte);
    }
    let shifted = (0..byte).filter(|&b| !printable(b)).count() as u32;
    char::from_u32(256 + shifted).expect("256..512 are characters")
}

/// The bytes a GPT-2 byte-level token string stands for; None if a character is
/// outside the byte-level alphabet.
pub(crate) fn gpt2_bytes(piece: &str) -> Option<Vec<u8>> {
    static BYTE_OF_CHAR: LazyLock<FxHashMap<char, u8>> =
        LazyLock::new(|| (0..=255u8).map(|b| (gpt2_char(b), b)).collect());
    piece
        .chars()
        .map(|c| BYTE_OF_CHAR.get(&c).copied())
        .collect()
}

/// What GPT-2's pre-token pattern sees of a character.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

/// Characters below this have their class in a table.
const TABULATED_CLASSES: usize = 0x3000;

fn class(c: char) -> Class {
    static TABLE: LazyLock<Box<[Class]>> = LazyLock::new(|| {
        (0..TABULATED_CLASSES as u32)
            .map(|code| char::from_u32(code).map_or(Class::Other, class_of))
            .collect()
    });
    match TABLE.get(c as usize) {
        Some(&class) => class,
        None => class_of(c),
    }
}

/// `\p{L}`, `\p{N}` or `\s` as the `regex` crate reads them, or none of these.
fn class_of(c: char) -> Class {
    if c.is_whitespace() {
        return Class::Space;
    }
    if c.is_numeric() {
        return Class::Number;
    }
    match get_general_category(c) {
        GeneralCategory::UppercaseLetter
        | GeneralCategory::LowercaseLetter
        | GeneralCategory::TitlecaseLetter
        | GeneralCategory::ModifierLetter
        | GeneralCategory::OtherLetter => Class::Letter,
        _ => Class::Other,
    }
}

/// The pre-tokens of `text`: each `\p{N}` character alone when `isolate_digits`, and
/// GPT-2's pattern over the rest.
fn pre_tokens<'t>(text: &'t str, isolate_digits: bool, visit: &mut dyn FnMut(&'t str)) {
    if !isolate_digits {
        return gpt2_pre_tokens(text, visit);
    }
    let mut start = 0;
    for (at, c) in text.char_indices() {
        if class(c) == Class::Number {
            if start < at {
                gpt2_pre_tokens(&text[start..at], visit);
            }
            start = at + c.len_utf8();
            visit(&text[at..start]);
        }
    }
    if start < text.len() {
        gpt2_pre_tokens(&text[start..], visit);
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// matched leftmost-first from the start of `text` on.
fn gpt2_pre_tokens<'t>(text: &'t str, visit: &mut dyn FnMut(&'t str)) {
    let mut at = 0;
    while at < text.len() {
        let end = gpt2_match_end(text, at);
        visit(&text[at..end]);
        at = end;
    }
}

/// Where the pattern's match starting at `at` ends.
fn gpt2_match_end(text: &str, at: usize) -> usize {
    let rest = &text[at..];
    if let Some(contraction) = CONTRACTIONS.iter().find(|c| rest.starts_with(**c)) {
        return at + contraction.len();
    }
    let mut chars = rest.chars();
    let first = chars.next().expect("at is before the end");
    let run_end = |from: usize, wanted: Class| {
        text[from..]
            .char_indices()
            .find(|(_, c)| class(*c) != wanted)
            .map_or(text.len(), |(offset, _)| from + offset)
    };
    let after_space = chars.next().map(class).filter(|c| *c != Class::Space);
    match (first, class(first), after_space) {
        (' ', _, Some(wanted)) => run_end(at + 1, wanted),
        (_, Class::Space, _) => {
            let end = run_end(at, Class::Space);
            let last = text[..end]
                .chars()
                .next_back()
                .expect("a space run")
                .len_utf8();
            // `\s+(?!\S)` leaves a run's last space to the word after it.
            if end < text.len() && end - at > last {
                end - last
            } else {
                end
            }
        }
        (_, wanted, _) => run_end(at, wanted),
    }
}

#[cfg(test)]
mod tests;
