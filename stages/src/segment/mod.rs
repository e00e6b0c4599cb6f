//! Semantic segmentation: a document's text → sentences ([`sentences`]) → segments
//! (short sentences merged into the next, long ones split at clause boundaries) →
//! (context, segment, next segment) triples with token counts.
//!
//! Segments are byte ranges of the document without leading or trailing whitespace.
//! The context of segment `i` is the document from the start of segment `j` to the
//! start of segment `i`, whitespace included, so `context + segment` is exactly
//! `text[start of j .. end of i]`: nothing is normalised. `j` is the earliest segment
//! that keeps the context within `max_context_tokens`; a triple needs at least
//! `min_context_segments` segments before it.
//!
//! Token counts are exact. A counter that is [additive at
//! whitespace](TokenCounter::additive_at_whitespace) (byte-level BPE behind GPT-2's
//! pre-tokenizer) lets a context's count be summed from per-segment counts, so each
//! segment is tokenized twice (alone, and with the whitespace before it) instead of
//! every context being re-tokenized — linear in the document rather than quadratic up
//! to the budget. Any other counter tokenizes each candidate context.

pub mod sentences;

use std::ops::{AddAssign, Range};

use serde::{Deserialize, Serialize};

/// Counts tokens of a text under the configured tokenizer; an error is the
/// tokenizer's message (the document is then rejected, not the run stopped).
pub trait TokenCounter: Sync {
    /// The number of tokens of `text`.
    fn count(&self, text: &str) -> Result<usize, String>;

    /// Whether the counter guarantees, for every `a` ending with a non-whitespace
    /// character and every `b` starting with a whitespace character, that
    /// `count(a + b) == count(a) + count(b)`, and that no text has more tokens than
    /// bytes. Byte-level BPE behind GPT-2's pre-tokenizer does; segmentation then
    /// counts less. The default claims nothing.
    fn additive_at_whitespace(&self) -> bool {
        false
    }
}

impl<F: Fn(&str) -> Result<usize, String> + Sync> TokenCounter for F {
    fn count(&self, text: &str) -> Result<usize, String> {
        self(text)
    }
}

/// The segment stage's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct SegmentConfig {
    /// Tokenizer for token counts: a .gguf file or a tokenizer.json (.json, .json.gz);
    /// the pipeline loads it.
    #[arg(long, value_name = "PATH", required = true)]
    pub tokenizer: std::path::PathBuf,
    /// Sentences shorter than this many characters merge with the next (0: never).
    #[arg(long, default_value_t = 32)]
    pub min_segment_chars: usize,
    /// Sentences of fewer tokens merge with the next (0: never).
    #[arg(long, default_value_t = 0)]
    pub min_segment_tokens: usize,
    /// Sentences of more tokens split at clause boundaries (; : , —), then at spaces.
    #[arg(long, default_value_t = 256)]
    pub max_segment_tokens: usize,
    /// Segments a triple needs before it.
    #[arg(long, default_value_t = 1)]
    pub min_context_segments: usize,
    /// The context is left-truncated, at a segment boundary, to this many tokens.
    #[arg(long, default_value_t = 2048)]
    pub max_context_tokens: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            tokenizer: std::path::PathBuf::new(),
            min_segment_chars: 32,
            min_segment_tokens: 0,
            max_segment_tokens: 256,
            min_context_segments: 1,
            max_context_tokens: 2048,
        }
    }
}

/// Bytes a single token covers at most, for cutting an over-long word into pieces
/// (tokenizer vocabularies hold far shorter tokens).
const MAX_TOKEN_BYTES: usize = 256;

/// One segment of a document with its context and the segment after it: a row of
/// the `triples` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Index of the segment in its document.
    pub index: usize,
    /// The text before the segment, from a segment boundary.
    pub context: String,
    /// The segment.
    pub segment: String,
    /// The segment after it, if any.
    pub next_segment: Option<String>,
    /// Segments in the context.
    pub context_segments: usize,
    /// Tokens of the context.
    pub context_tokens: usize,
    /// Tokens of the segment.
    pub segment_tokens: usize,
}

/// What segmentation counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SegmentCounters {
    /// Documents read.
    pub documents: u64,
    /// Sentences found.
    pub sentences: u64,
    /// Segments made.
    pub segments: u64,
    /// Triples written.
    pub triples: u64,
    /// Sentences split because they had too many tokens.
    pub split_sentences: u64,
    /// Segments without a triple: too few segments before them within the budget.
    pub segments_without_context: u64,
}

impl AddAssign for SegmentCounters {
    fn add_assign(&mut self, other: Self) {
        self.documents += other.documents;
        self.sentences += other.sentences;
        self.segments += other.segments;
        self.triples += other.triples;
        self.split_sentences += other.split_sentences;
        self.segments_without_context += other.segments_without_context;
    }
}

/// A document's triples and counts.
#[derive(Debug, Clone, Default)]
pub struct Segmented {
    /// Its segments that have a context, in order (the triples).
    pub segments: Vec<Segment>,
    /// Counts.
    pub counters: SegmentCounters,
}

/// Segments documents with one config and token counter.
pub struct Segmenter<'a> {
    config: SegmentConfig,
    counter: &'a dyn TokenCounter,
}

/// A tokenizer failure while segmenting a document.
pub type CountError = String;

impl<'a> Segmenter<'a> {
    /// A segmenter counting tokens with `counter`.
    pub fn new(config: &SegmentConfig, counter: &'a dyn TokenCounter) -> Self {
        Self {
            config: config.clone(),
            counter,
        }
    }

    fn count(&self, text: &str) -> Result<usize, CountError> {
        self.counter.count(text)
    }

    /// The segments of `text` (trimmed byte ranges), how many sentences it has, and
    /// how many of them were split.
    pub fn segments(&self, text: &str) -> Result<(Vec<Range<usize>>, usize, usize), CountError> {
        let sentences: Vec<Range<usize>> = sentences::sentences(text)
            .into_iter()
            .map(|range| trim(text, range))
            .filter(|range| !range.is_empty())
            .collect();
        let mut split = 0;
        let mut pieces = Vec::with_capacity(sentences.len());
        for sentence in &sentences {
            let parts = self.split_long(text, sentence.clone())?;
            split += usize::from(parts.len() > 1);
            pieces.extend(parts);
        }
        Ok((self.merge_short(text, pieces)?, sentences.len(), split))
    }

    /// Whether `piece` has at most `max` tokens; not tokenized when its byte length
    /// already bounds its count.
    fn fits(&self, piece: &str, max: usize) -> Result<bool, CountError> {
        Ok(
            (self.counter.additive_at_whitespace() && piece.len() <= max)
                || self.count(piece)? <= max,
        )
    }

    fn is_short(&self, piece: &str) -> Result<bool, CountError> {
        Ok(piece.chars().count() < self.config.min_segment_chars
            || (self.config.min_segment_tokens > 0
                && self.count(piece)? < self.config.min_segment_tokens))
    }

    /// Short pieces join the next one (a short last piece joins the previous), unless
    /// the joined segment would exceed `max_segment_tokens`: then the short piece stays
    /// a segment of its own.
    fn merge_short(
        &self,
        text: &str,
        pieces: Vec<Range<usize>>,
    ) -> Result<Vec<Range<usize>>, CountError> {
        let mut segments: Vec<Range<usize>> = Vec::with_capacity(pieces.len());
        let mut pending: Option<Range<usize>> = None;
        for piece in pieces {
            let range = match pending.take() {
                Some(short) if self.within_max(&text[short.start..piece.end])? => {
                    short.start..piece.end
                }
                Some(short) => {
                    segments.push(short);
                    piece
                }
                None => piece,
            };
            if self.is_short(&text[range.clone()])? {
                pending = Some(range);
            } else {
                segments.push(range);
            }
        }
        if let Some(rest) = pending {
            match segments.last_mut() {
                Some(last) if self.within_max(&text[last.start..rest.end])? => last.end = rest.end,
                _ => segments.push(rest),
            }
        }
        Ok(segments)
    }

    /// Whether `piece` is within `max_segment_tokens` (0: no limit).
    fn within_max(&self, piece: &str) -> Result<bool, CountError> {
        let max = self.config.max_segment_tokens;
        Ok(max == 0 || self.fits(piece, max)?)
    }

    /// A sentence of more than `max_segment_tokens`, split at clause boundaries and,
    /// for a clause still too long, at spaces.
    fn split_long(
        &self,
        text: &str,
        sentence: Range<usize>,
    ) -> Result<Vec<Range<usize>>, CountError> {
        let max = self.config.max_segment_tokens;
        if self.within_max(&text[sentence.clone()])? {
            return Ok(vec![sentence]);
        }
        let clauses = split_after(text, sentence, |c| {
            matches!(c, ';' | ':' | ',' | '—' | '–' | '；' | '：' | '，')
        });
        let mut pieces = Vec::new();
        for clause in self.pack(text, clauses)? {
            if self.count(&text[clause.clone()])? <= max {
                pieces.push(clause);
            } else {
                let words = split_after(text, clause, char::is_whitespace);
                for piece in self.pack(text, words)? {
                    if self.count(&text[piece.clone()])? <= max {
                        pieces.push(piece);
                    } else {
                        pieces.extend(self.split_word(text, piece)?);
                    }
                }
            }
        }
        Ok(pieces)
    }

    /// A word of more than `max_segment_tokens` (a long URL, a run of digits) cut
    /// between characters into the longest pieces within the budget.
    fn split_word(&self, text: &str, word: Range<usize>) -> Result<Vec<Range<usize>>, CountError> {
        let max = self.config.max_segment_tokens;
        let mut pieces = Vec::new();
        let mut start = word.start;
        while start < word.end {
            // No token is longer than this, so the piece ends inside the window.
            let mut window = word
                .end
                .min(start.saturating_add(max.saturating_mul(MAX_TOKEN_BYTES)));
            while !text.is_char_boundary(window) {
                window -= 1;
            }
            let ends: Vec<usize> = text[start..window]
                .char_indices()
                .skip(1)
                .map(|(offset, _)| start + offset)
                .chain([window])
                .collect();
            // The first end whose piece is over the budget; one character at least.
            let over = ends.partition_point(|&end| {
                self.count(&text[start..end])
                    .is_ok_and(|count| count <= max)
            });
            let end = ends[over.saturating_sub(1)];
            self.count(&text[start..end])?;
            pieces.push(start..end);
            start = end;
        }
        Ok(pieces)
    }

    /// Consecutive ranges joined greedily while they stay within the token budget.
    fn pack(&self, text: &str, parts: Vec<Range<usize>>) -> Result<Vec<Range<usize>>, CountError> {
        let mut packed: Vec<Range<usize>> = Vec::new();
        for part in parts {
            match packed.last_mut() {
                Some(last)
                    if self.count(&text[last.start..part.end])?
                        <= self.config.max_segment_tokens =>
                {
                    last.end = part.end;
                }
                _ => packed.push(part),
            }
        }
        Ok(packed)
    }

    /// The triples of a document.
    pub fn run(&self, text: &str) -> Result<Segmented, CountError> {
        let (segments, sentences, split) = self.segments(text)?;
        let mut counters = SegmentCounters {
            documents: 1,
            sentences: sentences as u64,
            segments: segments.len() as u64,
            split_sentences: split as u64,
            ..SegmentCounters::default()
        };
        let tokens = SegmentTokens::new(self, text, &segments)?;
        let mut rows = Vec::new();
        let mut first = 0;
        for index in 0..segments.len() {
            match self.context_start(&tokens, first, index)? {
                Some((start, context_tokens)) => {
                    first = start;
                    rows.push(Segment {
                        index,
                        context: text[segments[start].start..segments[index].start].to_string(),
                        segment: text[segments[index].clone()].to_string(),
                        next_segment: segments.get(index + 1).map(|s| text[s.clone()].to_string()),
                        context_segments: index - start,
                        context_tokens,
                        segment_tokens: tokens.alone[index],
                    });
                }
                None => {
                    // A context that does not fit only grows with the segment: the
                    // next one's search starts past every start tried here, so each
                    // document is walked once.
                    first = first.max((index + 1).saturating_sub(self.config.min_context_segments));
                    counters.segments_without_context += 1;
                }
            }
        }
        counters.triples = rows.len() as u64;
        Ok(Segmented {
            segments: rows,
            counters,
        })
    }

    /// The earliest segment (from `first` on) whose context up to `index` fits the
    /// budget, with its token count (an empty context, `start == index`, has none);
    /// `None` when fewer than `min_context_segments` fit.
    fn context_start(
        &self,
        tokens: &SegmentTokens<'_>,
        first: usize,
        index: usize,
    ) -> Result<Option<(usize, usize)>, CountError> {
        let minimum = self.config.min_context_segments;
        if index < minimum {
            return Ok(None);
        }
        for start in first.min(index)..=index - minimum {
            let count = if start == index {
                0
            } else {
                tokens.context(self, start, index)?
            };
            if count <= self.config.max_context_tokens {
                return Ok(Some((start, count)));
            }
        }
        Ok(None)
    }
}

/// Token counts of one document's segments, and of any context made of them.
struct SegmentTokens<'t> {
    text: &'t str,
    starts: Vec<usize>,
    /// Tokens of each segment alone.
    alone: Vec<usize>,
    /// With an additive counter, what sums a context's count.
    sums: Option<ContextSums>,
}

/// For a context of segments `j..i`: `alone[j]`, plus `led[k]` (segment `k` with the
/// whitespace before it) for `j < k < i`, plus `gap_after[i - 1]` (the whitespace
/// that ends the context) — exact when every segment end from `j` to `i - 1` is
/// followed by whitespace, the cut an additive counter allows.
struct ContextSums {
    /// `led_prefix[k]`: sum of `led[1..=k]` (0 for `k = 0`).
    led_prefix: Vec<usize>,
    /// Tokens of the whitespace after each segment (0 after the last).
    gap_after: Vec<usize>,
    /// `glued_before[k]`: how many of segments `0..k` end without whitespace after.
    glued_before: Vec<usize>,
}

impl<'t> SegmentTokens<'t> {
    fn new(
        segmenter: &Segmenter<'_>,
        text: &'t str,
        segments: &[Range<usize>],
    ) -> Result<Self, CountError> {
        let alone = segments
            .iter()
            .map(|s| segmenter.count(&text[s.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        let sums = if segmenter.counter.additive_at_whitespace() {
            Some(ContextSums::new(segmenter, text, segments)?)
        } else {
            None
        };
        Ok(Self {
            text,
            starts: segments.iter().map(|s| s.start).collect(),
            alone,
            sums,
        })
    }

    /// Tokens of the context of segments `start..index`.
    fn context(
        &self,
        segmenter: &Segmenter<'_>,
        start: usize,
        index: usize,
    ) -> Result<usize, CountError> {
        match &self.sums {
            Some(sums) if sums.glued_before[index] == sums.glued_before[start] => Ok(self.alone
                [start]
                + sums.led_prefix[index - 1]
                - sums.led_prefix[start]
                + sums.gap_after[index - 1]),
            _ => segmenter.count(&self.text[self.starts[start]..self.starts[index]]),
        }
    }
}

impl ContextSums {
    fn new(
        segmenter: &Segmenter<'_>,
        text: &str,
        segments: &[Range<usize>],
    ) -> Result<Self, CountError> {
        let mut sums = Self {
            led_prefix: vec![0],
            gap_after: Vec::with_capacity(segments.len()),
            glued_before: vec![0],
        };
        for (index, segment) in segments.iter().enumerate() {
            let next_start = segments.get(index + 1).map_or(segment.end, |s| s.start);
            let gap = &text[segment.end..next_start];
            sums.gap_after.push(segmenter.count(gap)?);
            let glued = !gap.starts_with(char::is_whitespace);
            sums.glued_before
                .push(sums.glued_before[index] + usize::from(glued));
            if let Some(next) = segments.get(index + 1) {
                let led = segmenter.count(&text[segment.end..next.end])?;
                sums.led_prefix.push(sums.led_prefix[index] + led);
            }
        }
        Ok(sums)
    }
}

/// `range` without leading and trailing whitespace.
fn trim(text: &str, range: Range<usize>) -> Range<usize> {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    let end = range.start + slice.trim_end().len();
    start..end.max(start)
}

/// `range` cut after each character matching `boundary` (pieces trimmed, none empty).
fn split_after(
    text: &str,
    range: Range<usize>,
    boundary: impl Fn(char) -> bool,
) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    for (offset, c) in text[range.clone()].char_indices() {
        if boundary(c) {
            let end = range.start + offset + c.len_utf8();
            pieces.push(trim(text, start..end));
            start = end;
        }
    }
    pieces.push(trim(text, start..range.end));
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

#[cfg(test)]
mod tests;
