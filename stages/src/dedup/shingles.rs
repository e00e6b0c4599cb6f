//! Shingles: the set a document's MinHash is taken over. Word n-grams (words by
//! Unicode word boundaries, UAX #29) for most text; character n-grams for text mostly
//! in a script written without spaces. A document with fewer tokens than `n` is one
//! shingle of all of them; one with none has no shingles. Hashes are 64-bit, seeded
//! with fixed constants: the same on every machine, in every version that keeps
//! [`SHINGLE_HASH_VERSION`].

use unicode_segmentation::UnicodeSegmentation;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::normalize::Normalized;
use crate::hashing::{window_hashes, word_hash};

/// Bumped whenever shingle hashes change; recorded in the signature files.
pub const SHINGLE_HASH_VERSION: u32 = 1;
const WORD_SEED: u64 = 0x726c_7074_776f_7264; // "rlptword"
const CHAR_SEED: u64 = 0x726c_7074_6368_6172; // "rlptchar"

/// How a document was shingled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShingleKind {
    /// Word n-grams.
    Words,
    /// Character n-grams.
    Chars,
}

/// Appends the shingle hashes of `doc` to `out` (cleared first); duplicates are kept
/// (a MinHash ignores them).
pub fn shingle_hashes(
    doc: &Normalized,
    word_n: usize,
    char_n: usize,
    out: &mut Vec<u64>,
) -> ShingleKind {
    out.clear();
    if doc.spaceless {
        char_shingles(&doc.text, char_n, out);
        ShingleKind::Chars
    } else {
        word_shingles(&doc.text, word_n, out);
        ShingleKind::Words
    }
}

fn word_shingles(text: &str, n: usize, out: &mut Vec<u64>) {
    let words: Vec<u64> = text
        .unicode_words()
        .map(|word| word_hash(word, WORD_SEED))
        .collect();
    let n = n.clamp(1, words.len().max(1));
    out.extend(window_hashes(&words, n));
}

fn char_shingles(text: &str, n: usize, out: &mut Vec<u64>) {
    let compact: String = text.chars().filter(|c| *c != ' ').collect();
    let starts: Vec<usize> = compact
        .char_indices()
        .map(|(i, _)| i)
        .chain([compact.len()])
        .collect();
    let chars = starts.len() - 1;
    if chars == 0 {
        return;
    }
    let n = n.clamp(1, chars);
    out.extend((0..=chars - n).map(|first| {
        xxh3_64_with_seed(
            &compact.as_bytes()[starts[first]..starts[first + n]],
            CHAR_SEED,
        )
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::normalize::normalize;

    fn shingles(text: &str, n: usize) -> (ShingleKind, Vec<u64>) {
        let mut out = Vec::new();
        let kind = shingle_hashes(&normalize(text), n, n, &mut out);
        (kind, out)
    }

    #[test]
    fn word_ngrams_slide_over_words() {
        let (kind, hashes) = shingles("one two three four five six", 5);
        assert_eq!(kind, ShingleKind::Words);
        assert_eq!(hashes.len(), 2);
        let (_, shifted) = shingles("two three four five six seven", 5);
        assert_eq!(hashes[1], shifted[0], "the same five words hash the same");
        assert_ne!(shingles("b a", 2).1, shingles("a b", 2).1, "order matters");
    }

    #[test]
    fn short_and_empty_documents() {
        assert_eq!(shingles("just three words", 5).1.len(), 1);
        assert!(shingles("!!! ...", 5).1.is_empty());
    }

    #[test]
    fn text_without_spaces_gets_character_ngrams() {
        let (kind, hashes) = shingles("机器学习是人工智能的一个分支", 5);
        assert_eq!(kind, ShingleKind::Chars);
        assert_eq!(hashes.len(), 14 - 5 + 1);
    }

    #[test]
    fn hashes_are_stable_across_versions() {
        // Changing these values changes every signature: bump SHINGLE_HASH_VERSION.
        assert_eq!(
            shingles("the quick brown fox jumps", 5).1,
            [7_175_732_885_106_858_713]
        );
    }
}
