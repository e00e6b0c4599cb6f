//! Benchmark-contamination removal, the GPT-3 recipe: index the word n-grams (13 by
//! default) of every benchmark item; in a document, remove every matching span plus
//! `window` characters on each side, split what is left into pieces, drop pieces
//! shorter than `min_chars`, and drop the document when it was split more than
//! `max_splits` times or nothing is left. `--mode drop` drops any document with a hit.
//!
//! Words are maximal runs of letters and digits, lowercased, so whitespace, case and
//! punctuation changes (and an item split across paragraphs) still match. An item
//! shorter than `n` words matches whole.

use std::collections::{BTreeMap, HashMap};
use std::ops::{AddAssign, Range};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::hashing::{window_hashes, word_hash};

const WORD_SEED: u64 = 0x726c_7074_6465_636f; // "rlptdeco"

/// What to do with a contaminated document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DecontamMode {
    /// Remove the matching spans and their surroundings.
    #[default]
    Remove,
    /// Drop the whole document.
    Drop,
}

/// The decontam stage's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct DecontamConfig {
    /// A benchmark: `NAME=PATH[:FIELD,FIELD…]`, JSONL or JSONL.gz; without fields,
    /// every string field but the id (repeatable).
    #[arg(long = "benchmark", value_name = "NAME=PATH[:FIELDS]", required = true)]
    pub benchmarks: Vec<String>,
    /// Words per indexed n-gram.
    #[arg(long, default_value_t = 13)]
    pub ngram: usize,
    /// Characters removed on each side of a match.
    #[arg(long, default_value_t = 200)]
    pub window: usize,
    /// Drop a document split into more pieces than this.
    #[arg(long, default_value_t = 10)]
    pub max_splits: usize,
    /// Drop pieces shorter than this, and the document when nothing longer is left.
    #[arg(long, default_value_t = 200)]
    pub min_chars: usize,
    /// Remove spans, or drop every document with a hit.
    #[arg(long, value_enum, default_value_t)]
    pub mode: DecontamMode,
}

impl Default for DecontamConfig {
    fn default() -> Self {
        Self {
            benchmarks: Vec::new(),
            ngram: 13,
            window: 200,
            max_splits: 10,
            min_chars: 200,
            mode: DecontamMode::Remove,
        }
    }
}

/// A `--benchmark` value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkSpec {
    /// The benchmark's name in reports.
    pub name: String,
    /// Its file.
    pub path: String,
    /// The fields to index (empty: every string field but the id).
    pub fields: Vec<String>,
}

impl BenchmarkSpec {
    /// Parses `NAME=PATH[:FIELD,FIELD…]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, rest) = text
            .split_once('=')
            .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
            .ok_or_else(|| format!("--benchmark {text:?}: expected NAME=PATH[:FIELD,FIELD…]"))?;
        let (path, fields) = match rest.rsplit_once(':') {
            Some((path, fields)) if !fields.contains(['/', '.']) => {
                (path, fields.split(',').map(str::to_string).collect())
            }
            _ => (rest, Vec::new()),
        };
        Ok(Self {
            name: name.to_string(),
            path: path.to_string(),
            fields,
        })
    }
}

/// One benchmark item's text, as loaded by the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkItem {
    /// The benchmark's name.
    pub benchmark: String,
    /// The item's id within it.
    pub item_id: String,
    /// Its indexed text (the chosen fields, joined).
    pub text: String,
}

/// A word of a text: its byte range and hash.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    hash: u64,
}

/// Words: maximal runs of letters and digits, lowercased (ASCII on a fast path,
/// lowercased into one reused buffer).
fn words(text: &str) -> Vec<Word> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut lower = String::new();
    let mut at = 0;
    while at < bytes.len() {
        let (c, width) = next_char(text, at);
        if !c.is_alphanumeric() {
            at += width;
            continue;
        }
        let start = at;
        lower.clear();
        while at < bytes.len() {
            let (c, width) = next_char(text, at);
            if !c.is_alphanumeric() {
                break;
            }
            if c.is_ascii() {
                lower.push(c.to_ascii_lowercase());
            } else {
                lower.extend(c.to_lowercase());
            }
            at += width;
        }
        words.push(Word {
            start,
            end: at,
            hash: word_hash(&lower, WORD_SEED),
        });
    }
    words
}

/// The character at byte `at` and its width.
fn next_char(text: &str, at: usize) -> (char, usize) {
    let byte = text.as_bytes()[at];
    if byte.is_ascii() {
        (char::from(byte), 1)
    } else {
        let c = text[at..].chars().next().expect("a char boundary");
        (c, c.len_utf8())
    }
}

/// The n-grams of every benchmark item, for lookup.
#[derive(Debug, Clone)]
pub struct ContaminationIndex {
    /// Window hash → item, by window length (n, or the length of a shorter item).
    grams: HashMap<(usize, u64), u32>,
    lengths: Vec<usize>,
    items: Vec<(String, String)>,
}

impl ContaminationIndex {
    /// Indexes `items` by their `n`-grams (an item of fewer words, whole).
    pub fn new(items: &[BenchmarkItem], n: usize) -> Self {
        let mut grams = HashMap::new();
        let mut lengths = std::collections::BTreeSet::new();
        for (index, item) in items.iter().enumerate() {
            let hashes: Vec<u64> = words(&item.text).iter().map(|w| w.hash).collect();
            if hashes.is_empty() {
                continue;
            }
            let length = n.min(hashes.len());
            lengths.insert(length);
            for hash in window_hashes(&hashes, length) {
                grams.entry((length, hash)).or_insert(index as u32);
            }
        }
        Self {
            grams,
            lengths: lengths.into_iter().collect(),
            items: items
                .iter()
                .map(|i| (i.benchmark.clone(), i.item_id.clone()))
                .collect(),
        }
    }

    /// Distinct indexed n-grams.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// The `(benchmark, item id)` of an item index.
    pub fn item(&self, index: u32) -> (&str, &str) {
        let (benchmark, id) = &self.items[index as usize];
        (benchmark, id)
    }
}

/// Hits of one benchmark item in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemHit {
    /// The item (see [`ContaminationIndex::item`]).
    pub item: u32,
    /// The document's text of the first matching n-gram.
    pub ngram: String,
    /// How many of the document's n-grams match the item.
    pub matches: u32,
}

/// A document after decontamination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decontaminated {
    /// The new text; `None` when the document is clean (unchanged) or dropped.
    pub text: Option<String>,
    /// Whether the document is dropped.
    pub dropped: bool,
    /// Hits by item, in order of first match.
    pub hits: Vec<ItemHit>,
    /// Characters removed (all of them when dropped).
    pub chars_removed: u64,
}

/// What decontamination counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DecontamCounters {
    /// Documents read.
    pub documents: u64,
    /// Documents with at least one hit.
    pub contaminated: u64,
    /// Documents dropped.
    pub dropped: u64,
    /// Characters removed from kept or dropped documents.
    pub chars_removed: u64,
}

impl DecontamCounters {
    /// Counts a batch.
    pub fn count(docs: &[Decontaminated]) -> Self {
        Self {
            documents: docs.len() as u64,
            contaminated: docs.iter().filter(|d| !d.hits.is_empty()).count() as u64,
            dropped: docs.iter().filter(|d| d.dropped).count() as u64,
            chars_removed: docs.iter().map(|d| d.chars_removed).sum(),
        }
    }
}

impl AddAssign for DecontamCounters {
    fn add_assign(&mut self, other: Self) {
        self.documents += other.documents;
        self.contaminated += other.contaminated;
        self.dropped += other.dropped;
        self.chars_removed += other.chars_removed;
    }
}

/// Removes benchmark text from documents with one config and index.
#[derive(Debug, Clone)]
pub struct Decontaminator {
    config: DecontamConfig,
    index: ContaminationIndex,
}

impl Decontaminator {
    /// A decontaminator for `config` over `index`.
    pub fn new(config: &DecontamConfig, index: ContaminationIndex) -> Result<Self, String> {
        if config.ngram == 0 {
            return Err("--ngram must be at least 1".into());
        }
        Ok(Self {
            config: config.clone(),
            index,
        })
    }

    /// The index in use.
    pub fn index(&self) -> &ContaminationIndex {
        &self.index
    }

    /// Decontaminates many documents in parallel, in input order.
    pub fn run_batch(&self, texts: &[&str]) -> Vec<Decontaminated> {
        texts.par_iter().map(|text| self.run(text)).collect()
    }

    /// Decontaminates one document.
    pub fn run(&self, text: &str) -> Decontaminated {
        let words = words(text);
        let (spans, hits) = self.matches(text, &words);
        if hits.is_empty() {
            return Decontaminated {
                text: None,
                dropped: false,
                hits,
                chars_removed: 0,
            };
        }
        let all_chars = text.chars().count() as u64;
        if self.config.mode == DecontamMode::Drop {
            return Decontaminated {
                text: None,
                dropped: true,
                hits,
                chars_removed: all_chars,
            };
        }
        let removed = self.removed_ranges(text, &words, &spans);
        let pieces: Vec<&str> = gaps(text.len(), &removed)
            .into_iter()
            .map(|range| &text[range])
            .filter(|piece| piece.trim().chars().count() >= self.config.min_chars)
            .collect();
        if removed.len() > self.config.max_splits || pieces.is_empty() {
            return Decontaminated {
                text: None,
                dropped: true,
                hits,
                chars_removed: all_chars,
            };
        }
        let kept = pieces.join("\n\n");
        let chars_removed =
            all_chars.saturating_sub(pieces.iter().map(|p| p.chars().count() as u64).sum());
        Decontaminated {
            text: Some(kept),
            dropped: false,
            hits,
            chars_removed,
        }
    }

    /// Matching word spans (merged) and the hits by item.
    fn matches(&self, text: &str, words: &[Word]) -> (Vec<Range<usize>>, Vec<ItemHit>) {
        let hashes: Vec<u64> = words.iter().map(|w| w.hash).collect();
        let mut spans: Vec<Range<usize>> = Vec::new();
        let mut hits: BTreeMap<u32, (usize, ItemHit)> = BTreeMap::new();
        for &length in &self.index.lengths {
            for (first, hash) in window_hashes(&hashes, length).enumerate() {
                let Some(&item) = self.index.grams.get(&(length, hash)) else {
                    continue;
                };
                spans.push(first..first + length);
                let order = hits.len();
                hits.entry(item)
                    .or_insert_with(|| {
                        let ngram =
                            text[words[first].start..words[first + length - 1].end].to_string();
                        (
                            order,
                            ItemHit {
                                item,
                                ngram,
                                matches: 0,
                            },
                        )
                    })
                    .1
                    .matches += 1;
            }
        }
        let mut hits: Vec<(usize, ItemHit)> = hits.into_values().collect();
        hits.sort_by_key(|(order, _)| *order);
        spans.sort_by_key(|span| span.start);
        (merge(spans), hits.into_iter().map(|(_, hit)| hit).collect())
    }

    /// Byte ranges to remove: each matching span's words plus `window` characters on
    /// each side, merged.
    fn removed_ranges(
        &self,
        text: &str,
        words: &[Word],
        spans: &[Range<usize>],
    ) -> Vec<Range<usize>> {
        let ranges: Vec<Range<usize>> = spans
            .iter()
            .map(|span| {
                let start = back_chars(text, words[span.start].start, self.config.window);
                let end = forward_chars(text, words[span.end - 1].end, self.config.window);
                start..end
            })
            .collect();
        merge(ranges)
    }
}

/// Sorted ranges with overlapping or touching ones merged.
fn merge(ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// The parts of `0..len` not covered by sorted, disjoint `removed`.
fn gaps(len: usize, removed: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut kept = Vec::new();
    let mut at = 0;
    for range in removed {
        if range.start > at {
            kept.push(at..range.start);
        }
        at = range.end;
    }
    if at < len {
        kept.push(at..len);
    }
    kept
}

/// The byte offset `chars` characters before `at` (or 0).
fn back_chars(text: &str, at: usize, chars: usize) -> usize {
    text[..at]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i)
        .min(at)
}

/// The byte offset `chars` characters after `at` (or the end).
fn forward_chars(text: &str, at: usize, chars: usize) -> usize {
    text[at..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBLEM: &str = "Let a string consist of digit 1, 2, 3. How many such strings of length 6 have adjacent digit differing by less than or equal to 1?";

    fn decontaminator(config: DecontamConfig) -> Decontaminator {
        let items = [
            BenchmarkItem {
                benchmark: "champ".into(),
                item_id: "P_Combinatorics_1".into(),
                text: PROBLEM.into(),
            },
            BenchmarkItem {
                benchmark: "tiny".into(),
                item_id: "t1".into(),
                text: "Prove Fermat's last theorem.".into(),
            },
        ];
        let index = ContaminationIndex::new(&items, config.ngram);
        Decontaminator::new(&config, index).unwrap()
    }

    fn filler(words: usize) -> String {
        (0..words)
            .map(|i| format!("filler{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn benchmark_specs_parse() {
        let spec =
            BenchmarkSpec::parse("humaneval=data/HumanEval.jsonl.gz:prompt,canonical_solution")
                .unwrap();
        assert_eq!(spec.path, "data/HumanEval.jsonl.gz");
        assert_eq!(spec.fields, ["prompt", "canonical_solution"]);
        assert_eq!(
            BenchmarkSpec::parse("champ=champ.jsonl").unwrap().fields,
            Vec::<String>::new()
        );
        assert!(BenchmarkSpec::parse("no-path").is_err());
    }

    #[test]
    fn clean_documents_are_untouched() {
        let out = decontaminator(DecontamConfig::default()).run(&filler(500));
        assert_eq!((out.text, out.dropped, out.hits.len()), (None, false, 0));
    }

    #[test]
    fn a_planted_item_is_removed_with_its_window_whatever_the_formatting() {
        let d = decontaminator(DecontamConfig::default());
        let mangled = "LET A STRING consist   of digit 1,2,3.\n\nHow many such strings of length 6 have adjacent digit — differing by less than or equal to 1";
        for planted in [PROBLEM, mangled] {
            let doc = format!("{} {planted} {}", filler(150), filler(150));
            let out = d.run(&doc);
            assert_eq!(out.hits.len(), 1, "{planted}");
            assert_eq!(
                d.index().item(out.hits[0].item),
                ("champ", "P_Combinatorics_1")
            );
            let text = out.text.expect("kept");
            assert!(
                !text.contains("adjacent") && !text.to_lowercase().contains("string"),
                "{text}"
            );
            assert!(text.starts_with("filler0 ") && text.ends_with("filler149"));
            assert!(text.contains("\n\n"), "the two sides are separate pieces");
            assert!(out.chars_removed >= 400 + PROBLEM.len() as u64 - 10);
        }
    }

    #[test]
    fn short_items_match_whole_and_short_leftovers_drop_the_document() {
        let d = decontaminator(DecontamConfig::default());
        let out = d.run("To show off: prove Fermat's last theorem, then rest.");
        assert_eq!(d.index().item(out.hits[0].item), ("tiny", "t1"));
        assert!(out.dropped, "fewer than 200 characters are left");
    }

    #[test]
    fn too_many_splits_or_drop_mode_drop_the_document() {
        let d = decontaminator(DecontamConfig {
            max_splits: 1,
            ..DecontamConfig::default()
        });
        let doc = format!(
            "{} {PROBLEM} {} {PROBLEM} {}",
            filler(150),
            filler(150),
            filler(150)
        );
        assert!(d.run(&doc).dropped);
        let drop = decontaminator(DecontamConfig {
            mode: DecontamMode::Drop,
            ..DecontamConfig::default()
        });
        let out = drop.run(&format!("{} {PROBLEM}", filler(300)));
        assert!(out.dropped && out.text.is_none());
        assert_eq!(
            out.hits[0].matches as usize,
            27 - 13 + 1,
            "every 13-gram of the 27-word item"
        );
    }
}
