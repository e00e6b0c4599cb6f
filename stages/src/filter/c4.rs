//! C4's page rules (Raffel et al. 2020, as its reference code and datatrove run them):
//! lines are kept only when they end in terminal punctuation (`.` `!` `?` `"` `'`, not
//! an ellipsis), hold at least three words, no word over 1,000 characters, and do not
//! mention JavaScript or a cookie / terms-of-use policy; Wikipedia-style citations are
//! cut from lines; "lorem ipsum" or a curly bracket drops the page, and so do fewer
//! than five sentences in the lines kept. The kept lines are the new text.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{is_space, python_lines, strip};
use super::{Drop, FilterConfig, FilterRule};
use crate::segment::sentences::sentences;

/// Citation marks cut from each line: `[12]`, `[]`, `[edit]`, `[citation needed]`.
static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\d*\]|\[edit\]|\[citation needed\]").expect("a valid pattern"));

/// Phrases that mark a line as a site's policy boilerplate.
const POLICY_PHRASES: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// A page that passed: its kept lines joined by newlines, and how many lines went.
pub struct C4Page {
    /// The kept lines, joined by `\n`.
    pub text: String,
    /// Lines removed.
    pub lines_removed: u32,
}

/// Runs C4's rules over `text`.
pub fn page(config: &FilterConfig, text: &str) -> Result<C4Page, Drop> {
    let skips = |rule| config.skip.contains(&rule);
    let drop = |reason: &str, detail: String| Err(Drop::new(FilterRule::C4, reason, detail));
    let lines = python_lines(text);
    let mut kept: Vec<String> = Vec::new();
    let mut sentence_count = 0;
    for line in &lines {
        let line = strip(line);
        let words: Vec<&str> = line.split(is_space).filter(|w| !w.is_empty()).collect();
        if words
            .iter()
            .any(|word| word.chars().count() > config.c4_max_word_length)
        {
            continue;
        }
        let line = if skips(FilterRule::C4Citations) {
            line.to_string()
        } else {
            CITATION.replace_all(line, "").into_owned()
        };
        let terminal = line.ends_with(['.', '?', '!', '"', '\'']) && !line.ends_with("...");
        if !terminal && !skips(FilterRule::C4TerminalPunctuation) {
            continue;
        }
        if words.len() < config.c4_min_words_per_line {
            continue;
        }
        let lower = line.to_lowercase();
        if lower.contains("lorem ipsum") && !skips(FilterRule::C4LoremIpsum) {
            return drop("c4_lorem_ipsum", "\"lorem ipsum\" in a line".into());
        }
        if lower.contains("javascript") && !skips(FilterRule::C4Javascript) {
            continue;
        }
        if line.contains('{') && !skips(FilterRule::C4CurlyBracket) {
            return drop("c4_curly_bracket", "a curly bracket in a line".into());
        }
        if POLICY_PHRASES.iter().any(|p| lower.contains(p)) && !skips(FilterRule::C4Policy) {
            continue;
        }
        sentence_count += sentences(&line).len();
        kept.push(line);
    }
    if sentence_count < config.c4_min_sentences {
        return drop(
            "c4_too_few_sentences",
            format!(
                "{sentence_count} sentences in kept lines < {}",
                config.c4_min_sentences
            ),
        );
    }
    Ok(C4Page {
        text: strip(&kept.join("\n")).to_string(),
        lines_removed: (lines.len() - kept.len()) as u32,
    })
}
