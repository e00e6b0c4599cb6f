//! FineWeb's line-level rules (Penedo et al. 2024, as datatrove runs them): enough lines
//! ending in sentence-terminal punctuation, not too many short lines, hardly any
//! characters in repeated lines, and not a list (newlines per word).

use super::text::{char_len, duplicates, is_sentence_terminal, strip};
use super::{Drop, FilterConfig, FilterRule};

/// Runs FineWeb's rules over `text`; `words` are its words.
pub fn page(config: &FilterConfig, text: &str, words: &[&str]) -> Result<(), Drop> {
    let drop = |reason: &str, detail: String| Err(Drop::new(FilterRule::FineWeb, reason, detail));
    let lines: Vec<&str> = text
        .split('\n')
        .filter(|line| !strip(line).is_empty())
        .collect();
    if lines.is_empty() {
        return drop("fineweb_empty", "no line with text".into());
    }
    let share = |count: usize| count as f64 / lines.len() as f64;
    let terminal = share(
        lines
            .iter()
            .filter(|line| line.chars().next_back().is_some_and(is_sentence_terminal))
            .count(),
    );
    if terminal < config.fineweb_min_line_punct_ratio {
        return drop(
            "fineweb_line_punctuation",
            format!(
                "{terminal:.3} of lines end in punctuation < {}",
                config.fineweb_min_line_punct_ratio
            ),
        );
    }
    let short = share(
        lines
            .iter()
            .filter(|line| char_len(line) <= config.fineweb_short_line_length)
            .count(),
    );
    if short > config.fineweb_max_short_line_ratio {
        return drop(
            "fineweb_short_lines",
            format!(
                "{short:.3} of lines have at most {} characters > {}",
                config.fineweb_short_line_length, config.fineweb_max_short_line_ratio
            ),
        );
    }
    let (_, repeated) = duplicates(lines.iter().copied());
    let chars = text.chars().filter(|&c| c != '\n').count().max(1);
    let ratio = repeated as f64 / chars as f64;
    if ratio > config.fineweb_max_dup_line_char_ratio {
        return drop(
            "fineweb_dup_line_chars",
            format!(
                "{ratio:.3} of characters in repeated lines > {}",
                config.fineweb_max_dup_line_char_ratio
            ),
        );
    }
    let newlines = text.matches('\n').count() as f64 / words.len().max(1) as f64;
    if newlines > config.fineweb_max_newline_word_ratio {
        return drop(
            "fineweb_list",
            format!(
                "{newlines:.3} newlines per word > {}",
                config.fineweb_max_newline_word_ratio
            ),
        );
    }
    Ok(())
}
