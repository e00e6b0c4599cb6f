//! Gopher's document rules (Rae et al. 2021, appendix A1): quality heuristics (word
//! count, mean word length, symbol/word ratios, bullet and ellipsis lines, words with
//! letters, stop words) and repetition (duplicate lines and paragraphs, the most
//! frequent 2–4-gram, duplicated 5–10-grams), with datatrove's reading of each.

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_64;

use super::text::{
    char_len, duplicates, has_letter, is_space, is_symbol_word, python_lines, strip,
};
use super::{Drop, FilterConfig, FilterRule, NgramLimit};

/// A rule on the share of lines a test matches: (reason, what the lines do, the largest
/// share allowed, the test).
type LineRule<'a> = (&'a str, &'a str, f64, fn(&str) -> bool);

/// Gopher's quality heuristics; `words` are `text`'s words.
pub fn quality(config: &FilterConfig, text: &str, words: &[&str]) -> Result<(), Drop> {
    let drop =
        |reason: &str, detail: String| Err(Drop::new(FilterRule::GopherQuality, reason, detail));
    let content: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !is_symbol_word(w))
        .collect();
    if content.len() < config.min_words {
        return drop(
            "gopher_too_few_words",
            format!("{} words < {}", content.len(), config.min_words),
        );
    }
    if content.len() > config.max_words {
        return drop(
            "gopher_too_many_words",
            format!("{} words > {}", content.len(), config.max_words),
        );
    }
    let mean = content.iter().map(|w| char_len(w)).sum::<usize>() as f64 / content.len() as f64;
    if mean < config.min_mean_word_length {
        return drop(
            "gopher_short_words",
            format!(
                "mean word length {mean:.2} < {}",
                config.min_mean_word_length
            ),
        );
    }
    if mean > config.max_mean_word_length {
        return drop(
            "gopher_long_words",
            format!(
                "mean word length {mean:.2} > {}",
                config.max_mean_word_length
            ),
        );
    }
    let n_words = words.len() as f64;
    let hashes = text.matches('#').count() as f64 / n_words;
    if hashes > config.max_symbol_word_ratio {
        return drop(
            "gopher_hashes",
            format!(
                "{hashes:.3} '#' per word > {}",
                config.max_symbol_word_ratio
            ),
        );
    }
    let ellipses = (text.matches("...").count() + text.matches('…').count()) as f64 / n_words;
    if ellipses > config.max_symbol_word_ratio {
        return drop(
            "gopher_ellipses",
            format!(
                "{ellipses:.3} ellipses per word > {}",
                config.max_symbol_word_ratio
            ),
        );
    }
    let lines = python_lines(text);
    let line_rules: [LineRule; 2] = [
        (
            "gopher_bullet_lines",
            "start with a bullet",
            config.max_bullet_line_ratio,
            |line| line.trim_start_matches(is_space).starts_with(['•', '-']),
        ),
        (
            "gopher_ellipsis_lines",
            "end in an ellipsis",
            config.max_ellipsis_line_ratio,
            |line| {
                let line = line.trim_end_matches(is_space);
                line.ends_with("...") || line.ends_with('…')
            },
        ),
    ];
    for (reason, what, limit, matches) in line_rules {
        let share =
            lines.iter().filter(|line| matches(line)).count() as f64 / lines.len().max(1) as f64;
        if share > limit {
            return drop(reason, format!("{share:.3} of lines {what} > {limit}"));
        }
    }
    let alpha = words.iter().filter(|w| has_letter(w)).count() as f64 / n_words;
    if alpha < config.min_alpha_word_ratio {
        return drop(
            "gopher_few_letter_words",
            format!(
                "{alpha:.3} of words have a letter < {}",
                config.min_alpha_word_ratio
            ),
        );
    }
    let present: FxHashSet<&str> = words
        .iter()
        .copied()
        .filter(|w| config.stop_words.iter().any(|s| s == w))
        .collect();
    if present.len() < config.min_stop_words {
        return drop(
            "gopher_stop_words",
            format!("{} stop words < {}", present.len(), config.min_stop_words),
        );
    }
    Ok(())
}

/// Gopher's repetition rules; `words` are `text`'s words.
pub fn repetition(config: &FilterConfig, text: &str, words: &[&str]) -> Result<(), Drop> {
    let drop = |reason: String, detail: String| {
        Err(Drop::new(FilterRule::GopherRepetition, &reason, detail))
    };
    let chars = char_len(text) as f64;
    if chars == 0.0 {
        return drop("gopher_empty".into(), "no text".into());
    }
    let paragraphs = cut_at_newlines(strip(text), 2);
    let lines = cut_at_newlines(text, 1);
    for (pieces, name, max_repeated, max_chars) in [
        (
            &paragraphs,
            "paragraph",
            config.max_dup_paragraph_ratio,
            config.max_dup_paragraph_char_ratio,
        ),
        (
            &lines,
            "line",
            config.max_dup_line_ratio,
            config.max_dup_line_char_ratio,
        ),
    ] {
        let (count, dup_chars) = duplicates(pieces.iter().copied());
        let ratio = count as f64 / pieces.len() as f64;
        if ratio > max_repeated {
            return drop(
                format!("gopher_dup_{name}s"),
                format!("{ratio:.3} of {name}s repeat > {max_repeated}"),
            );
        }
        let ratio = dup_chars as f64 / chars;
        if ratio > max_chars {
            return drop(
                format!("gopher_dup_{name}_chars"),
                format!("{ratio:.3} of characters in repeated {name}s > {max_chars}"),
            );
        }
    }
    let lengths: Vec<usize> = words.iter().map(|w| char_len(w)).collect();
    let hashes: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
    for &NgramLimit { n, max_char_ratio } in &config.top_ngrams {
        let ratio = top_ngram_chars(&hashes, &lengths, n) as f64 / chars;
        if ratio > max_char_ratio {
            return drop(
                format!("gopher_top_{n}gram"),
                format!(
                    "the most frequent {n}-gram covers {ratio:.3} of characters > {max_char_ratio}"
                ),
            );
        }
    }
    for &NgramLimit { n, max_char_ratio } in &config.dup_ngrams {
        let ratio = duplicated_ngram_chars(&hashes, &lengths, n) as f64 / chars;
        if ratio > max_char_ratio {
            return drop(
                format!("gopher_dup_{n}grams"),
                format!("repeated {n}-grams cover {ratio:.3} of characters > {max_char_ratio}"),
            );
        }
    }
    Ok(())
}

/// `text` cut at every run of at least `min_run` newlines, the runs left out (an empty
/// piece where it starts or ends with one): paragraphs at 2, lines at 1.
fn cut_at_newlines(text: &str, min_run: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let (mut pieces, mut start, mut at) = (Vec::new(), 0, 0);
    while at < bytes.len() {
        if bytes[at] != b'\n' {
            at += 1;
            continue;
        }
        let run = bytes[at..].iter().take_while(|&&b| b == b'\n').count();
        if run >= min_run {
            pieces.push(&text[start..at]);
            start = at + run;
        }
        at += run;
    }
    pieces.push(&text[start..]);
    pieces
}

/// A hash of the `n`-gram of `hashes` starting at `first` (the words' own hashes
/// mixed in order).
fn ngram_hash(hashes: &[u64], first: usize, n: usize) -> u64 {
    hashes[first..first + n]
        .iter()
        .fold(0x9E37_79B9_7F4A_7C15, |h, &w| {
            (h ^ w).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(29)
        })
}

/// Characters of the most frequent `n`-gram (words joined by a space) times its count;
/// among equally frequent ones, the first to occur.
fn top_ngram_chars(hashes: &[u64], lengths: &[usize], n: usize) -> usize {
    if hashes.len() < n {
        return 0;
    }
    let mut counts: FxHashMap<u64, (usize, usize)> = FxHashMap::default();
    for first in 0..=hashes.len() - n {
        counts
            .entry(ngram_hash(hashes, first, n))
            .and_modify(|(count, _)| *count += 1)
            .or_insert((1, first));
    }
    let &(count, first) = counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .expect("at least one n-gram");
    let chars: usize = lengths[first..first + n].iter().sum::<usize>() + n - 1;
    chars * count
}

/// Characters covered by `n`-grams that repeat an earlier one, scanning left to right
/// and jumping past each repeat. (datatrove compares the words joined without a space;
/// two different word sequences with the same concatenation count as different here.)
fn duplicated_ngram_chars(hashes: &[u64], lengths: &[usize], n: usize) -> usize {
    let mut seen = FxHashSet::default();
    let (mut repeated, mut at) = (0, 0);
    while hashes.len().saturating_sub(at) >= n {
        if seen.insert(ngram_hash(hashes, at, n)) {
            at += 1;
        } else {
            repeated += lengths[at..at + n].iter().sum::<usize>();
            at += n;
        }
    }
    repeated
}
