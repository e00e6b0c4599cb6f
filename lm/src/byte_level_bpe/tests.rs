//! The fast encoder against the `tokenizers` crate on SmolLM2's tokenizer: every sample
//! document, llama.cpp's hard cases, generated text mixing every character class the
//! pre-token pattern distinguishes, and the fetched corpora when present.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn smollm2() -> tokenizers::Tokenizer {
    let mut json = Vec::new();
    let file =
        std::fs::File::open(repo().join("data-samples/tokenizers/smollm2-135m.json.gz")).unwrap();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut json)
        .unwrap();
    tokenizers::Tokenizer::from_bytes(json).unwrap()
}

/// The `text` fields of a JSONL file.
fn jsonl_texts(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["text"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Asserts the fast encoder gives the `tokenizers` crate's ids for every text; returns
/// the tokens compared.
fn assert_same_ids(texts: impl IntoIterator<Item = String>) -> usize {
    let reference = smollm2();
    let fast = ByteLevelBpe::from_tokenizer(&reference).expect("SmolLM2 is covered");
    let mut tokens = 0;
    for text in texts {
        let expected = reference.encode_fast(text.as_str(), false).unwrap();
        let ids = fast.encode(&text);
        assert_eq!(ids, expected.get_ids(), "{text:?}");
        assert_eq!(fast.count(&text), ids.len());
        tokens += ids.len();
    }
    tokens
}

/// Characters of every class the pattern tells apart, and the strings that trip it.
const PALETTE: &[&str] = &[
    "a",
    "Z",
    "é",
    "e\u{301}",
    "ß",
    "Ω",
    "я",
    "数",
    "学",
    "ا",
    "ก",
    "\u{e31}",
    "ǅ",
    "ʰ",
    "0",
    "7",
    "٣",
    "²",
    "Ⅻ",
    "½",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    ".",
    ",",
    "'",
    "'s",
    "'ll",
    "'re",
    "'d",
    "'S",
    "’",
    "-",
    "—",
    "$",
    "\\",
    "{",
    "}",
    "🙂",
    "👩‍👩‍👧",
    "\u{200b}",
    "\u{feff}",
    "<|im_start|>",
    "<|endoftext|>",
    "<|im_",
    "<file_sep>",
    "don't",
    "http://x.y/z?q=1",
    "3.14",
    "1,000",
    "\u{4}",
    "\u{13}x",
];

/// Deterministic text from the palette (xorshift64).
fn generated(count: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let length = 1 + next() % 40;
            (0..length)
                .map(|_| PALETTE[(next() % PALETTE.len() as u64) as usize])
                .collect()
        })
        .collect()
}

#[test]
fn generated_text_gets_the_tokenizers_crate_ids() {
    assert!(assert_same_ids(generated(20_000)) > 200_000);
}

#[test]
fn sample_documents_and_hard_cases_get_the_tokenizers_crate_ids() {
    let mut texts: Vec<String> = ["en", "es", "fr"]
        .iter()
        .flat_map(|lang| {
            jsonl_texts(&repo().join(format!("data-samples/wiki-stem/stem-{lang}.jsonl")))
        })
        .collect();
    texts.extend(jsonl_texts(
        &repo().join("lm/tests/fixtures/smollm2-llamacpp.jsonl"),
    ));
    texts.push(String::new());
    texts.push("x".repeat(5000));
    texts.push("!?".repeat(3000));
    texts.push(format!(" {}", "ab".repeat(100)));
    assert!(assert_same_ids(texts) > 50_000);
}

/// PARI/GP's TeX manual (fetched: CI has it; without it the test fails, naming the
/// fetch command, unless RLPT_SKIP_MISSING_ASSETS=1 skips it) and the Wikipedia
/// corpora when they were fetched too.
#[test]
fn fetched_corpora_get_the_tokenizers_crate_ids() {
    let cache = repo().join("data-samples/cache");
    let pari = cache.join("pari-doc");
    if !pari.exists() {
        let message = format!(
            "{} is missing: python3 data-samples/fetch.py pari-doc (or \
             RLPT_SKIP_MISSING_ASSETS=1 to skip the tests that need it)",
            pari.display()
        );
        assert!(
            std::env::var("RLPT_SKIP_MISSING_ASSETS").as_deref() == Ok("1"),
            "{message}"
        );
        eprintln!("skipped: {message}");
        return;
    }
    let mut texts: Vec<String> = std::fs::read_dir(&pari)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
        .collect();
    for lang in ["en", "es", "fr"] {
        let path = cache.join(format!("wiki/wiki-{lang}.jsonl"));
        if path.exists() {
            texts.extend(jsonl_texts(&path));
        }
    }
    let tokens = assert_same_ids(texts);
    assert!(
        tokens > 100_000,
        "only {tokens} tokens of the fetched corpora compared"
    );
}

#[test]
fn the_pattern_splits_like_gpt2() {
    let split = |text: &str| {
        let mut pieces = Vec::new();
        pre_tokens(text, true, &mut |p| pieces.push(p.to_string()));
        pieces
    };
    assert_eq!(
        split("Hello  world's 42\n\n  end."),
        [
            "Hello", " ", " world", "'s", " ", "4", "2", "\n\n ", " end", "."
        ]
    );
    assert_eq!(
        split("a\u{a0}b \u{3000}c"),
        ["a", "\u{a0}", "b", " ", "\u{3000}", "c"]
    );
}

#[test]
fn gpt2_characters_are_the_byte_level_alphabet() {
    assert_eq!(gpt2_char(b'!'), '!');
    assert_eq!(gpt2_char(b' '), 'Ġ');
    assert_eq!(gpt2_char(b'\n'), 'Ċ');
    assert_eq!(gpt2_char(0), 'Ā');
    assert_eq!(gpt2_char(0xAD), 'Ń');
}
