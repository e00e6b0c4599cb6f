//! Compares whatlang (all 69 languages, and the 7 lingua is built with here) and
//! lingua (7 languages; high and low accuracy modes) on the fetched Wikipedia leads
//! (en/fr/es): share identified right per language and documents/s, one thread.
use std::io::BufRead;
use std::time::Instant;

use lingua::Language;

/// The languages lingua is built with here (its models for all 75 are too big to build).
const SEVEN: [Language; 7] = [
    Language::English,
    Language::French,
    Language::Spanish,
    Language::German,
    Language::Italian,
    Language::Portuguese,
    Language::Dutch,
];

fn main() {
    let dir = std::env::args().nth(1).expect("wiki dir");
    let mut docs: Vec<(String, String)> = Vec::new();
    for lang in ["en", "fr", "es"] {
        let file = std::fs::File::open(format!("{dir}/wiki-{lang}.jsonl")).unwrap();
        for line in std::io::BufReader::new(file).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            docs.push((lang.to_string(), v["text"].as_str().unwrap().to_string()));
        }
    }
    let bytes: usize = docs.iter().map(|d| d.1.len()).sum();
    let report = |name: &str, f: &dyn Fn(&str) -> Option<String>| {
        let start = Instant::now();
        let mut right = [0usize; 3];
        let mut total = [0usize; 3];
        for (lang, text) in &docs {
            let i = ["en", "fr", "es"].iter().position(|l| l == lang).unwrap();
            total[i] += 1;
            if f(text).as_deref() == Some(lang.as_str()) {
                right[i] += 1;
            }
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "{name}: en {}/{} fr {}/{} es {}/{} all {:.4}  {:.0} docs/s {:.2} MB/s",
            right[0],
            total[0],
            right[1],
            total[1],
            right[2],
            total[2],
            right.iter().sum::<usize>() as f64 / docs.len() as f64,
            docs.len() as f64 / s,
            bytes as f64 / s / 1e6
        );
    };
    let code = |l: whatlang::Lang| {
        match l {
            whatlang::Lang::Eng => "en",
            whatlang::Lang::Fra => "fr",
            whatlang::Lang::Spa => "es",
            _ => "other",
        }
        .to_string()
    };
    let all = whatlang::Detector::new();
    report("whatlang (69 languages)", &|t| {
        all.detect(t).map(|i| code(i.lang()))
    });
    use whatlang::Lang::*;
    let seven = whatlang::Detector::with_allowlist(vec![Eng, Fra, Spa, Deu, Ita, Por, Nld]);
    report("whatlang (7 languages)", &|t| {
        seven.detect(t).map(|i| code(i.lang()))
    });
    let t0 = Instant::now();
    let lingua = lingua::LanguageDetectorBuilder::from_languages(&SEVEN)
        .with_preloaded_language_models()
        .build();
    println!("lingua load {:.2}s", t0.elapsed().as_secs_f64());
    let lcode = |l: Language| {
        match l {
            Language::English => "en",
            Language::French => "fr",
            Language::Spanish => "es",
            _ => "other",
        }
        .to_string()
    };
    report("lingua (7 languages)", &|t| {
        lingua.detect_language_of(t).map(lcode)
    });
    let low = lingua::LanguageDetectorBuilder::from_languages(&SEVEN)
        .with_low_accuracy_mode()
        .with_preloaded_language_models()
        .build();
    report("lingua low-accuracy (7 languages)", &|t| {
        low.detect_language_of(t).map(lcode)
    });
}
