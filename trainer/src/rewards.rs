//! Answers and rewards: pulling the answer out of a completion (`\boxed{}` for
//! next-token, the prediction tags for asr/msr — after `</think>` when the model
//! thinks aloud, the last one when there are several) and scoring it.
//!
//! - `prefix-token` (RPT): the answer's bytes are a prefix of the reference's bytes and
//!   end exactly where one of the reference's tokens ends. Boundaries come from each
//!   token's own bytes (a token may hold part of a UTF-8 character), not from decoded
//!   text. An answer without the reference's leading whitespace (`\boxed{cat}` for
//!   " cat") is read with it.
//! - `strict`: the answer equals the reference after normalisation (Unicode
//!   whitespace collapsed, trimmed, lower-cased).
//! - `prefix-semantic` (RLPT): a judge decides; see [`crate::judge`].
//!
//! A missing or malformed answer scores 0 and is counted as a format failure.

use crate::tasks::{PREDICTION_END, PREDICTION_START};

/// How an answer is scored; in configs `prefix-token`, `prefix-semantic` or `strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RewardKind {
    /// RPT's byte prefix ending on a reference token boundary.
    PrefixToken,
    /// RLPT's judged semantic prefix.
    PrefixSemantic,
    /// Normalised exact match.
    Strict,
}

impl RewardKind {
    /// Its config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PrefixToken => "prefix-token",
            Self::PrefixSemantic => "prefix-semantic",
            Self::Strict => "strict",
        }
    }
}

/// The part of a completion after the reasoning: after the last `</think>`, if any.
fn after_thinking(completion: &str) -> &str {
    completion
        .rfind("</think>")
        .map_or(completion, |at| &completion[at + "</think>".len()..])
}

/// The content of the last complete `\boxed{…}` (braces balanced) after the reasoning.
pub fn boxed_answer(completion: &str) -> Option<&str> {
    let text = after_thinking(completion);
    let mut last = None;
    let mut search = 0;
    while let Some(found) = text[search..].find("\\boxed{") {
        let open = search + found + "\\boxed{".len();
        let mut depth = 1usize;
        let close = text[open..].char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(open + i)
        });
        match close {
            Some(close) => {
                last = Some(&text[open..close]);
                search = close + 1;
            }
            None => break,
        }
    }
    last
}

/// The content of the last `<|startofprediction|>…<|endofprediction|>` after the
/// reasoning.
pub fn tagged_prediction(completion: &str) -> Option<&str> {
    let text = after_thinking(completion);
    let start = text.rfind(PREDICTION_START)? + PREDICTION_START.len();
    let end = text[start..].find(PREDICTION_END)? + start;
    Some(&text[start..end])
}

/// RPT's reward: whether `answer` is a non-empty byte prefix of the reference whose
/// tokens' bytes are `reference_tokens`, ending on one of their boundaries.
pub fn prefix_token(answer: &str, reference_tokens: &[Vec<u8>]) -> bool {
    let reference: Vec<u8> = reference_tokens.concat();
    let boundaries: Vec<usize> = reference_tokens
        .iter()
        .scan(0, |end, token| {
            *end += token.len();
            Some(*end)
        })
        .collect();
    let matches = |answer: &[u8]| {
        !answer.is_empty() && reference.starts_with(answer) && boundaries.contains(&answer.len())
    };
    if matches(answer.as_bytes()) {
        return true;
    }
    let leading = reference.len() - reference.trim_ascii_start().len();
    let bare = answer.trim_start();
    leading > 0 && bare == answer && matches(&[&reference[..leading], bare.as_bytes()].concat())
}

/// Lower-cased, whitespace runs collapsed to one space, trimmed.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether `answer` equals `reference` after [`normalise`].
pub fn strict(answer: &str, reference: &str) -> bool {
    let answer = normalise(answer);
    !answer.is_empty() && answer == normalise(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        pieces.iter().map(|p| p.to_vec()).collect()
    }

    #[test]
    fn prefix_must_end_on_a_token_boundary() {
        let reference = tokens(&[b" mathe", b"matics", b" is"]);
        assert!(prefix_token(" mathe", &reference));
        assert!(prefix_token(" mathematics", &reference));
        assert!(prefix_token(" mathematics is", &reference));
        assert!(!prefix_token(" math", &reference), "inside a token");
        assert!(
            !prefix_token(" mathematics is fun", &reference),
            "past the end"
        );
        assert!(!prefix_token(" physics", &reference));
        assert!(!prefix_token("", &reference));
    }

    #[test]
    fn leading_whitespace_of_the_reference_may_be_left_out() {
        let reference = tokens(&[b" cat", b" sat"]);
        assert!(prefix_token("cat", &reference));
        assert!(prefix_token(" cat sat", &reference));
        assert!(
            !prefix_token("  cat", &reference),
            "extra whitespace is not the reference's"
        );
        assert!(!prefix_token("ca", &reference));
    }

    #[test]
    fn boundaries_inside_a_multibyte_character_count_by_bytes() {
        // "é" is C3 A9; a byte-level vocabulary may split it across tokens.
        let reference = tokens(&[b"caf\xC3", b"\xA9", b" noir"]);
        assert!(prefix_token("café", &reference));
        assert!(prefix_token("café noir", &reference));
        // "caf" + half a character is not a string; the nearest strings miss boundaries.
        assert!(!prefix_token("caf", &reference));
        let whole = tokens(&[b"\xE6\x97\xA5", b"\xE6\x9C\xAC"]); // 日本
        assert!(prefix_token("日", &whole) && prefix_token("日本", &whole));
    }

    #[test]
    fn boxed_takes_the_last_balanced_box_after_thinking() {
        assert_eq!(boxed_answer(r"so \boxed{a} or \boxed{b}"), Some("b"));
        assert_eq!(boxed_answer(r"\boxed{x^{2}}"), Some("x^{2}"));
        assert_eq!(
            boxed_answer(r"<think>maybe \boxed{no}</think> \boxed{yes}"),
            Some("yes")
        );
        assert_eq!(boxed_answer(r"<think>\boxed{no}</think> none"), None);
        assert_eq!(boxed_answer(r"\boxed{unclosed"), None);
        assert_eq!(boxed_answer(r"\boxed{a} \boxed{unclosed"), Some("a"));
        assert_eq!(boxed_answer("no answer"), None);
    }

    #[test]
    fn prediction_tags_need_both_ends() {
        let p = |s| tagged_prediction(s);
        assert_eq!(
            p("think <|startofprediction|> It rains.<|endofprediction|>"),
            Some(" It rains.")
        );
        assert_eq!(p("<|startofprediction|>open only"), None);
        assert_eq!(p("nothing"), None);
        assert_eq!(
            p("<|startofprediction|>a<|endofprediction|><|startofprediction|>b<|endofprediction|>"),
            Some("b")
        );
    }

    #[test]
    fn reward_names_are_the_names_configs_use() {
        for kind in [
            RewardKind::PrefixToken,
            RewardKind::PrefixSemantic,
            RewardKind::Strict,
        ] {
            let serialised = serde_json::to_string(&kind).unwrap();
            assert_eq!(serialised, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn strict_compares_normalised_text() {
        assert!(strict("  It  RAINS.\n", "It rains."));
        assert!(!strict("It rains", "It rains."));
        assert!(!strict("   ", ""));
    }
}
