//! Sentence fixtures for every rule, in English, French, Spanish, Chinese and LaTeX, and
//! the triples' invariants.

use super::sentences::sentences;
use super::*;

/// The sentences of `text`, trimmed.
fn split(text: &str) -> Vec<&str> {
    sentences(text)
        .into_iter()
        .map(|r| text[r].trim())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn sentences_tile_the_text() {
    let text = "One. Two!  Three?\n\nFour";
    let ranges = sentences(text);
    assert_eq!(ranges.first().unwrap().start, 0);
    assert_eq!(ranges.last().unwrap().end, text.len());
    assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
}

#[test]
fn abbreviations_titles_and_references() {
    assert_eq!(
        split("Mr. Smith met Dr. Jones at St. Mary's. They talked."),
        ["Mr. Smith met Dr. Jones at St. Mary's.", "They talked."]
    );
    assert_eq!(
        split(
            "See e.g. the results in Fig. 3 and Eq. 2. Then stop. Compare i.e. this, cf. that, vs. the rest."
        ),
        [
            "See e.g. the results in Fig. 3 and Eq. 2.",
            "Then stop.",
            "Compare i.e. this, cf. that, vs. the rest."
        ]
    );
    assert_eq!(
        split("It is listed as No. 5 on p. 12. The answer is no. We left."),
        [
            "It is listed as No. 5 on p. 12.",
            "The answer is no.",
            "We left."
        ]
    );
}

#[test]
fn abbreviations_that_may_end_a_sentence() {
    assert_eq!(
        split("Smith et al. showed this. The U.S. Army agreed. It was in the U.S. Then more."),
        [
            "Smith et al. showed this.",
            "The U.S. Army agreed.",
            "It was in the U.S.",
            "Then more."
        ]
    );
    assert_eq!(
        split("We bought apples, pears, etc. Then we left. Acme Inc. The company grew."),
        [
            "We bought apples, pears, etc.",
            "Then we left.",
            "Acme Inc.",
            "The company grew."
        ]
    );
}

#[test]
fn initials() {
    assert_eq!(
        split("J. R. R. Tolkien wrote it. He was British."),
        ["J. R. R. Tolkien wrote it.", "He was British."]
    );
    assert_eq!(
        split("It needs vitamin C. The dose matters."),
        ["It needs vitamin C.", "The dose matters."]
    );
}

#[test]
fn decimals_versions_ellipses_quotes_urls_and_emails() {
    assert_eq!(
        split("Pi is 3.14 and v1.2.3 shipped. Next."),
        ["Pi is 3.14 and v1.2.3 shipped.", "Next."]
    );
    assert_eq!(
        split("Wait... what? He paused... Then he left."),
        ["Wait... what?", "He paused...", "Then he left."]
    );
    assert_eq!(
        split("He said \"Stop.\" Then left. (See above.) Fine."),
        ["He said \"Stop.\"", "Then left.", "(See above.)", "Fine."]
    );
    assert_eq!(
        split("Visit www.example.com/a.html today. Then email a.b@c.org now."),
        [
            "Visit www.example.com/a.html today.",
            "Then email a.b@c.org now."
        ]
    );
}

#[test]
fn list_items_and_line_breaks() {
    assert_eq!(
        split("Items:\n1. First item\n2. Second item\n- third item\n\nAfter the list."),
        [
            "Items:",
            "1. First item",
            "2. Second item",
            "- third item",
            "After the list."
        ]
    );
    assert_eq!(
        split("This line is hard\nwrapped in the middle. Next sentence.\n\nNew paragraph"),
        [
            "This line is hard\nwrapped in the middle.",
            "Next sentence.",
            "New paragraph"
        ]
    );
    assert_eq!(
        split("a) alpha is first\nb) beta is second"),
        ["a) alpha is first", "b) beta is second"]
    );
}

#[test]
fn latex_math_environments_and_code_are_never_split() {
    assert_eq!(
        split("We have $x = 1. Y$ and \\(a. B\\) here. Done."),
        ["We have $x = 1. Y$ and \\(a. B\\) here.", "Done."]
    );
    assert_eq!(
        split("Let\n$$\\sum_{n} a_n. B = 1.$$\nThus. Then \\[x. Y\\] holds."),
        [
            "Let\n$$\\sum_{n} a_n. B = 1.$$\nThus.",
            "Then \\[x. Y\\] holds."
        ]
    );
    assert_eq!(
        split("\\begin{theorem} Let p be prime. Then p divides it. \\end{theorem} Next."),
        ["\\begin{theorem} Let p be prime. Then p divides it. \\end{theorem} Next."]
    );
    assert_eq!(
        split("It costs $5. Then it costs $10. Done."),
        ["It costs $5.", "Then it costs $10.", "Done."]
    );
    assert_eq!(
        split("Run `a.b() Then` now. Code:\n```\nx = 1. Y = 2.\n```\nEnd."),
        [
            "Run `a.b() Then` now.",
            "Code:",
            "```\nx = 1. Y = 2.\n```\nEnd."
        ]
    );
}

#[test]
fn french() {
    assert_eq!(
        split("Il a dit « Bonjour. » M. Dupont est là. Vraiment ? Oui ! Mme Curie aussi."),
        [
            "Il a dit « Bonjour. »",
            "M. Dupont est là.",
            "Vraiment ?",
            "Oui !",
            "Mme Curie aussi."
        ]
    );
}

#[test]
fn spanish() {
    assert_eq!(
        split("¿Qué hora es? Son las tres. ¡Hola! La Sra. García llegó. Adiós."),
        [
            "¿Qué hora es?",
            "Son las tres.",
            "¡Hola!",
            "La Sra. García llegó.",
            "Adiós."
        ]
    );
}

#[test]
fn chinese() {
    assert_eq!(
        split("数学是一门学科。它很重要！你知道吗？是的。"),
        ["数学是一门学科。", "它很重要！", "你知道吗？", "是的。"]
    );
}

/// Counts whitespace-separated words: a stand-in tokenizer for segment tests.
fn words(text: &str) -> Result<usize, String> {
    Ok(text.split_whitespace().count())
}

fn segmenter(config: SegmentConfig) -> Segmented {
    let text = "First sentence is long enough here. Short one. Third sentence is also long enough. \
                Fourth: with clauses, several of them, each a few words long, enough to split.";
    Segmenter::new(&config, &words).run(text).unwrap()
}

#[test]
fn short_sentences_merge_with_the_next_and_zero_disables_merging() {
    let text = "A very long first sentence here. Tiny. Another long sentence follows it. End.";
    let merged = Segmenter::new(&SegmentConfig::default(), &words)
        .segments(text)
        .unwrap()
        .0;
    let merged: Vec<&str> = merged.into_iter().map(|r| &text[r]).collect();
    assert_eq!(
        merged,
        [
            "A very long first sentence here.",
            "Tiny. Another long sentence follows it. End."
        ]
    );
    let config = SegmentConfig {
        min_segment_chars: 0,
        ..SegmentConfig::default()
    };
    let exact = Segmenter::new(&config, &words).segments(text).unwrap().0;
    assert_eq!(exact.len(), 4);
}

#[test]
fn long_sentences_split_at_clause_boundaries() {
    let config = SegmentConfig {
        max_segment_tokens: 6,
        min_segment_chars: 0,
        ..SegmentConfig::default()
    };
    let out = segmenter(config.clone());
    let segments: Vec<&str> = out.triples.iter().map(|t| t.segment.as_str()).collect();
    assert_eq!(
        segments[2..],
        [
            "Fourth: with clauses, several of them,",
            "each a few words long,",
            "enough to split."
        ],
        "clauses packed greedily within 6 tokens"
    );
    assert!(
        out.triples.iter().all(|t| t.segment_tokens <= 6),
        "{segments:?}"
    );
    assert_eq!(out.counters.split_sentences, 1);
}

#[test]
fn triples_reproduce_the_text_and_respect_the_budget() {
    let text = "Alpha beta gamma delta. Epsilon zeta eta theta.\n\nIota kappa lambda mu. Nu xi omicron pi. Rho sigma tau upsilon.";
    for budget in [4, 8, 12, 100] {
        let config = SegmentConfig {
            min_segment_chars: 0,
            max_context_tokens: budget,
            ..SegmentConfig::default()
        };
        let out = Segmenter::new(&config, &words).run(text).unwrap();
        for triple in &out.triples {
            let joined = format!("{}{}", triple.context, triple.segment);
            assert!(
                text.contains(&joined),
                "context + segment is a slice of the text: {joined:?}"
            );
            let prefix_end = text.find(&triple.segment).unwrap() + triple.segment.len();
            assert!(text[..prefix_end].ends_with(&joined));
            assert!(
                triple.context_tokens <= budget
                    && triple.context_tokens == words(&triple.context).unwrap()
            );
            assert!(triple.context_segments >= 1);
        }
    }
    let full = Segmenter::new(
        &SegmentConfig {
            min_segment_chars: 0,
            ..SegmentConfig::default()
        },
        &words,
    )
    .run(text)
    .unwrap();
    assert_eq!(full.triples.len(), 4, "the first segment has no context");
    assert_eq!(
        full.triples[3].context,
        "Alpha beta gamma delta. Epsilon zeta eta theta.\n\nIota kappa lambda mu. Nu xi omicron pi. "
    );
    assert_eq!(
        full.triples[0].next_segment.as_deref(),
        Some("Iota kappa lambda mu.")
    );
    assert_eq!(full.triples[3].next_segment, None);
}

#[test]
fn a_budget_too_small_for_any_context_leaves_the_segment_without_a_triple() {
    let config = SegmentConfig {
        min_segment_chars: 0,
        max_context_tokens: 2,
        ..SegmentConfig::default()
    };
    let out = Segmenter::new(&config, &words)
        .run("One two three. Four five six. Seven.")
        .unwrap();
    assert!(out.triples.is_empty());
    assert_eq!(out.counters.segments_without_context, 3);
}
