//! The SmolLM2 tokenizer against llama.cpp, and round trips over the sample corpus.
//!
//! `lm/tests/fixtures/smollm2-llamacpp.jsonl` holds llama.cpp's token ids (PyPI
//! llama-cpp-python 0.3.36) for hard cases and sample documents, written by
//! `lm/scripts/llamacpp_reference.py`; `data-samples/tokenizers/smollm2-135m.json.gz` is
//! rlpt's tokenizer built from the GGUF, exported with `rlpt tokenizer export`.

use rlpt_lm::{Error, Tokenizer};

mod common;
use common::{asset, repo};

fn committed() -> Tokenizer {
    Tokenizer::from_file(&repo().join("data-samples/tokenizers/smollm2-135m.json.gz")).unwrap()
}

fn fixture() -> Vec<(String, Vec<u32>)> {
    let text =
        std::fs::read_to_string(repo().join("lm/tests/fixtures/smollm2-llamacpp.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let ids = record["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            (record["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn sample_documents() -> Vec<String> {
    ["en", "es", "fr"]
        .iter()
        .flat_map(|lang| {
            let text = std::fs::read_to_string(
                repo().join(format!("data-samples/wiki-stem/stem-{lang}.jsonl")),
            )
            .unwrap();
            text.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn token_ids_match_llama_cpp() {
    let tokenizer = committed();
    let cases = fixture();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    for (text, expected) in &cases {
        assert_eq!(&tokenizer.encode(text).unwrap(), expected, "{text:?}");
    }
    assert_eq!(tokenizer.vocab_size(), 49_152);
}

#[test]
fn every_sample_document_round_trips_byte_exactly() {
    let tokenizer = committed();
    let mut tokens = 0;
    for text in sample_documents()
        .iter()
        .chain(fixture().iter().map(|(t, _)| t))
    {
        let ids = tokenizer.encode(text).unwrap();
        tokens += ids.len();
        assert_eq!(&tokenizer.decode(&ids).unwrap(), text);
        assert_eq!(tokenizer.count(text).unwrap(), ids.len());
    }
    assert!(tokens > 50_000, "{tokens} tokens");
}

#[test]
fn digits_are_single_tokens_and_special_tokens_are_recognised() {
    let tokenizer = committed();
    let digits = tokenizer.encode("31415926").unwrap();
    assert_eq!(digits.len(), 8);
    assert_eq!(tokenizer.encode("<|im_start|>").unwrap(), [1]);
}

#[test]
fn the_gguf_builds_the_committed_tokenizer() {
    let Some(gguf) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let from_gguf = Tokenizer::from_file(&gguf).unwrap();
    assert_eq!((from_gguf.bos(), from_gguf.eos()), (Some(1), Some(2)));
    let committed = committed();
    for text in sample_documents() {
        assert_eq!(
            from_gguf.encode(&text).unwrap(),
            committed.encode(&text).unwrap()
        );
    }
    assert_eq!(from_gguf.to_json().unwrap(), committed.to_json().unwrap());
}

#[test]
fn unreadable_and_unsupported_files_are_named() {
    let dir = std::env::temp_dir().join(format!("rlpt-lm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("model.gguf");
    std::fs::write(&fake, b"not a gguf").unwrap();
    let err = Tokenizer::from_file(&fake).unwrap_err();
    assert!(
        matches!(err, Error::Gguf { .. }) && err.to_string().contains("model.gguf"),
        "{err}"
    );
    let other = dir.join("vocab.txt");
    std::fs::write(&other, b"a b").unwrap();
    assert!(
        Tokenizer::from_file(&other)
            .unwrap_err()
            .to_string()
            .contains("not supported")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Byte offsets of `text` where a non-whitespace character is followed by whitespace.
fn whitespace_cuts(text: &str) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() && previous.is_some_and(|p| !p.is_whitespace()) {
            cuts.push(at);
        }
        previous = Some(c);
    }
    cuts
}

#[test]
fn smollm2_counts_add_up_across_whitespace_cuts() {
    let tokenizer = committed();
    assert!(tokenizer.additive_at_whitespace());
    let hard = [
        "end.\n\nNext it's 12 34\tx 's",
        "<|im_end|> <|im_start|>user\nHi",
        "数学。 它\u{3000}很 e\u{301} x\u{a0}y 🙂 z",
        "$x^2$ \\[a\\] \\begin{eq} f(x) \\end{eq}",
    ];
    let texts = sample_documents()
        .into_iter()
        .chain(hard.iter().map(|t| t.to_string()));
    let mut checked = 0;
    for text in texts {
        let whole = tokenizer.count(&text).unwrap();
        assert!(whole <= text.len());
        let cuts = whitespace_cuts(&text);
        let step = cuts.len() / 8 + 1;
        for &cut in cuts.iter().step_by(step) {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                tokenizer.count(a).unwrap() + tokenizer.count(b).unwrap(),
                whole,
                "cut at {cut} of {text:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked} cuts");
}

#[test]
fn tokenizers_that_glue_across_whitespace_are_not_additive() {
    let json: serde_json::Value = serde_json::from_str(&committed().to_json().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("rlpt-lm-additive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let variants = [
        (
            "llama3-pattern.json",
            "/pre_tokenizer/pretokenizers/0/pattern/Regex",
            serde_json::json!(r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s+"),
        ),
        (
            "normalized.json",
            "/normalizer",
            serde_json::json!({"type": "NFC"}),
        ),
        ("dropout.json", "/model/dropout", serde_json::json!(0.1)),
    ];
    for (name, pointer, value) in variants {
        let mut variant = json.clone();
        *variant.pointer_mut(pointer).unwrap() = value;
        let path = dir.join(name);
        std::fs::write(&path, variant.to_string()).unwrap();
        assert!(
            !Tokenizer::from_file(&path)
                .unwrap()
                .additive_at_whitespace(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tokenizer.json read with the Hugging Face `tokenizer_config.json` beside it takes
/// its special tokens and chat template from there (a `chat_template.jinja` wins), and
/// writes them back in that form; a special token missing from the vocabulary is an
/// error naming the file.
#[test]
fn special_tokens_and_the_chat_template_come_from_the_tokenizer_config_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::repo().join("data-samples/tiny/tokenizer.json");
    let json = dir.path().join("tokenizer.json");
    std::fs::copy(&tiny, &json).unwrap();
    assert_eq!(Tokenizer::from_file(&json).unwrap().eos(), None);

    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(
        &config,
        r#"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
            "pad_token": null, "chat_template": "{{ messages }}"}"#,
    )
    .unwrap();
    let tokenizer = Tokenizer::from_file(&json).unwrap();
    let (bos, eos) = (
        tokenizer.token_id("<|im_start|>"),
        tokenizer.token_id("<|im_end|>"),
    );
    assert_eq!((tokenizer.bos(), tokenizer.eos()), (bos, eos));
    assert_eq!(tokenizer.chat_template(), Some("{{ messages }}"));
    let written: serde_json::Value = serde_json::from_str(
        &tokenizer.hf_tokenizer_config(&tokenizer.special_ids(), Some("unused")),
    )
    .unwrap();
    assert_eq!(written["eos_token"], "<|im_end|>");
    assert_eq!(written["chat_template"], "{{ messages }}");
    assert!(written.get("pad_token").is_none());

    std::fs::write(dir.path().join("chat_template.jinja"), "{{ jinja }}").unwrap();
    let tokenizer = Tokenizer::from_file(&json).unwrap();
    assert_eq!(tokenizer.chat_template(), Some("{{ jinja }}"));

    std::fs::write(&config, r#"{"eos_token": "<|not-there|>"}"#).unwrap();
    let message = Tokenizer::from_file(&json).unwrap_err().to_string();
    assert!(
        message.contains("tokenizer_config.json") && message.contains("<|not-there|>"),
        "{message}"
    );
}
