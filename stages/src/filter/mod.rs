//! Quality and language filtering of documents: language identification (whatlang,
//! a keep-list), a URL block list, Gopher's repetition and quality rules, C4's page
//! rules and FineWeb's line rules, applied in that order (FineWeb's), with the
//! published thresholds as defaults. Each document is kept (C4 may have removed some of
//! its lines) or dropped with the first rule it failed and why.
//!
//! `words`, lines and lengths follow datatrove's implementation of each rule
//! (`text.rs`), so keep/drop decisions agree with it (`bench/filter_vs_datatrove.py`).

mod c4;
mod fineweb;
mod gopher;
pub mod text;
mod url;

use std::cell::LazyCell;
use std::fmt;
use std::ops::AddAssign;
use std::path::PathBuf;
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use url::UrlBlocklist;

/// A rule group, or one of C4's optional rules, that `--skip` turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FilterRule {
    /// Language identification and the keep-list.
    Lang,
    /// The URL block list.
    Url,
    /// Gopher's repetition rules.
    GopherRepetition,
    /// Gopher's quality heuristics.
    GopherQuality,
    /// C4's page rules (all of them).
    C4,
    /// C4: lines without terminal punctuation are kept (FineWeb runs C4 so).
    C4TerminalPunctuation,
    /// C4: citation marks are left in lines.
    C4Citations,
    /// C4: lines mentioning JavaScript are kept.
    C4Javascript,
    /// C4: policy lines (cookies, terms of use) are kept.
    C4Policy,
    /// C4: "lorem ipsum" does not drop the page.
    C4LoremIpsum,
    /// C4: a curly bracket does not drop the page.
    C4CurlyBracket,
    /// FineWeb's line rules.
    FineWeb,
}

impl FilterRule {
    /// The rule's name in configs and counters.
    pub fn name(self) -> &'static str {
        match self {
            FilterRule::Lang => "lang",
            FilterRule::Url => "url",
            FilterRule::GopherRepetition => "gopher-repetition",
            FilterRule::GopherQuality => "gopher-quality",
            FilterRule::C4 => "c4",
            FilterRule::C4TerminalPunctuation => "c4-terminal-punctuation",
            FilterRule::C4Citations => "c4-citations",
            FilterRule::C4Javascript => "c4-javascript",
            FilterRule::C4Policy => "c4-policy",
            FilterRule::C4LoremIpsum => "c4-lorem-ipsum",
            FilterRule::C4CurlyBracket => "c4-curly-bracket",
            FilterRule::FineWeb => "fine-web",
        }
    }
}

/// A limit on the characters an n-gram rule may cover: `N:RATIO`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NgramLimit {
    /// Words per n-gram.
    pub n: usize,
    /// The largest share of the text's characters allowed.
    pub max_char_ratio: f64,
}

impl FromStr for NgramLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not N:RATIO (e.g. 2:0.2), N ≥ 1, RATIO in [0, 1]");
        let (n, ratio) = text.split_once(':').ok_or_else(bad)?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        let max_char_ratio: f64 = ratio.trim().parse().map_err(|_| bad())?;
        if n == 0 || !(0.0..=1.0).contains(&max_char_ratio) {
            return Err(bad());
        }
        Ok(Self { n, max_char_ratio })
    }
}

impl TryFrom<String> for NgramLimit {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<NgramLimit> for String {
    fn from(limit: NgramLimit) -> String {
        limit.to_string()
    }
}

impl fmt::Display for NgramLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.n, self.max_char_ratio)
    }
}

fn limits(pairs: &[(usize, f64)]) -> Vec<NgramLimit> {
    pairs
        .iter()
        .map(|&(n, max_char_ratio)| NgramLimit { n, max_char_ratio })
        .collect()
}

/// The filter stage's settings; the defaults are the published ones (Gopher table A1,
/// C4, FineWeb), as datatrove sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct FilterConfig {
    /// Rules to turn off (comma-separated): lang, url, gopher-repetition,
    /// gopher-quality, c4, c4-terminal-punctuation, c4-citations, c4-javascript,
    /// c4-policy, c4-lorem-ipsum, c4-curly-bracket, fine-web.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip: Vec<FilterRule>,
    /// Languages to keep, ISO 639-3 codes as whatlang names them (eng, fra, spa, deu,
    /// cmn, …); none (`--languages ""`) keeps every language (each is still tagged).
    #[arg(long, value_delimiter = ',', default_values_t = ["eng".to_string()])]
    pub languages: Vec<String>,
    /// The lowest whatlang confidence (0–1) a kept document's language may have.
    #[arg(long, default_value_t = 0.0)]
    pub min_lang_score: f64,
    /// URL block list (domains and URLs, one a line), checked against each document's
    /// `url` (the record's field, kept in `meta`).
    #[arg(long, value_name = "FILE")]
    pub url_blocklist: Option<PathBuf>,
    /// Gopher: fewest words (not counting symbol-only words).
    #[arg(long, default_value_t = 50)]
    pub min_words: usize,
    /// Gopher: most words.
    #[arg(long, default_value_t = 100_000)]
    pub max_words: usize,
    /// Gopher: shortest mean word length, in characters.
    #[arg(long, default_value_t = 3.0)]
    pub min_mean_word_length: f64,
    /// Gopher: longest mean word length, in characters.
    #[arg(long, default_value_t = 10.0)]
    pub max_mean_word_length: f64,
    /// Gopher: most `#` or ellipses per word.
    #[arg(long, default_value_t = 0.1)]
    pub max_symbol_word_ratio: f64,
    /// Gopher: largest share of lines starting with a bullet (`•`, `-`).
    #[arg(long, default_value_t = 0.9)]
    pub max_bullet_line_ratio: f64,
    /// Gopher: largest share of lines ending in an ellipsis.
    #[arg(long, default_value_t = 0.3)]
    pub max_ellipsis_line_ratio: f64,
    /// Gopher: smallest share of words holding a letter.
    #[arg(long, default_value_t = 0.8)]
    pub min_alpha_word_ratio: f64,
    /// Gopher: fewest distinct stop words present.
    #[arg(long, default_value_t = 2)]
    pub min_stop_words: usize,
    /// Gopher: the stop words (case-sensitive).
    #[arg(long, value_delimiter = ',', default_values_t = default_stop_words())]
    pub stop_words: Vec<String>,
    /// Gopher: largest share of lines that repeat an earlier line.
    #[arg(long, default_value_t = 0.3)]
    pub max_dup_line_ratio: f64,
    /// Gopher: largest share of paragraphs that repeat an earlier one.
    #[arg(long, default_value_t = 0.3)]
    pub max_dup_paragraph_ratio: f64,
    /// Gopher: largest share of characters in repeated lines.
    #[arg(long, default_value_t = 0.2)]
    pub max_dup_line_char_ratio: f64,
    /// Gopher: largest share of characters in repeated paragraphs.
    #[arg(long, default_value_t = 0.2)]
    pub max_dup_paragraph_char_ratio: f64,
    /// Gopher: the most frequent n-gram's share of characters, `N:RATIO` each.
    #[arg(long, value_delimiter = ',', default_values_t = default_top_ngrams())]
    pub top_ngrams: Vec<NgramLimit>,
    /// Gopher: the share of characters in repeated n-grams, `N:RATIO` each.
    #[arg(long, value_delimiter = ',', default_values_t = default_dup_ngrams())]
    pub dup_ngrams: Vec<NgramLimit>,
    /// C4: fewest sentences in the kept lines.
    #[arg(long, default_value_t = 5)]
    pub c4_min_sentences: usize,
    /// C4: fewest words a kept line holds.
    #[arg(long, default_value_t = 3)]
    pub c4_min_words_per_line: usize,
    /// C4: a line with a longer word (in characters) is removed.
    #[arg(long, default_value_t = 1000)]
    pub c4_max_word_length: usize,
    /// FineWeb: smallest share of lines ending in sentence-terminal punctuation.
    #[arg(long, default_value_t = 0.12)]
    pub fineweb_min_line_punct_ratio: f64,
    /// FineWeb: largest share of short lines.
    #[arg(long, default_value_t = 0.67)]
    pub fineweb_max_short_line_ratio: f64,
    /// FineWeb: a line of at most this many characters is short.
    #[arg(long, default_value_t = 30)]
    pub fineweb_short_line_length: usize,
    /// FineWeb: largest share of characters in repeated lines.
    #[arg(long, default_value_t = 0.01)]
    pub fineweb_max_dup_line_char_ratio: f64,
    /// FineWeb: most newlines per word (a list).
    #[arg(long, default_value_t = 0.3)]
    pub fineweb_max_newline_word_ratio: f64,
}

fn default_stop_words() -> Vec<String> {
    ["the", "be", "to", "of", "and", "that", "have", "with"]
        .map(String::from)
        .into()
}

fn default_top_ngrams() -> Vec<NgramLimit> {
    limits(&[(2, 0.2), (3, 0.18), (4, 0.16)])
}

fn default_dup_ngrams() -> Vec<NgramLimit> {
    limits(&[
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    ])
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            skip: Vec::new(),
            languages: vec!["eng".into()],
            min_lang_score: 0.0,
            url_blocklist: None,
            min_words: 50,
            max_words: 100_000,
            min_mean_word_length: 3.0,
            max_mean_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_line_ratio: 0.9,
            max_ellipsis_line_ratio: 0.3,
            min_alpha_word_ratio: 0.8,
            min_stop_words: 2,
            stop_words: default_stop_words(),
            max_dup_line_ratio: 0.3,
            max_dup_paragraph_ratio: 0.3,
            max_dup_line_char_ratio: 0.2,
            max_dup_paragraph_char_ratio: 0.2,
            top_ngrams: default_top_ngrams(),
            dup_ngrams: default_dup_ngrams(),
            c4_min_sentences: 5,
            c4_min_words_per_line: 3,
            c4_max_word_length: 1000,
            fineweb_min_line_punct_ratio: 0.12,
            fineweb_max_short_line_ratio: 0.67,
            fineweb_short_line_length: 30,
            fineweb_max_dup_line_char_ratio: 0.01,
            fineweb_max_newline_word_ratio: 0.3,
        }
    }
}

/// Why a document was dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Drop {
    /// The rule group.
    pub rule: FilterRule,
    /// The rule, e.g. `gopher_too_few_words`.
    pub reason: String,
    /// The measure against its threshold, e.g. `37 words < 50`.
    pub detail: String,
}

impl Drop {
    fn new(rule: FilterRule, reason: &str, detail: String) -> Self {
        Self {
            rule,
            reason: reason.to_string(),
            detail,
        }
    }
}

/// What the filter made of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// Its language (ISO 639-3), when identified.
    pub lang: Option<&'static str>,
    /// whatlang's confidence in it, 0 when none.
    pub lang_score: f32,
    /// The new text when C4 removed or changed lines.
    pub text: Option<String>,
    /// Lines C4 removed.
    pub lines_removed: u32,
    /// Why it was dropped, if it was.
    pub dropped: Option<Drop>,
}

/// The stage's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilterCounters {
    /// Documents read.
    pub documents: u64,
    /// Documents kept.
    pub kept: u64,
    /// Kept documents whose text C4 changed.
    pub rewritten: u64,
    /// Lines C4 removed from kept documents.
    pub lines_removed: u64,
    /// Dropped for their language.
    pub dropped_lang: u64,
    /// Dropped by the URL block list.
    pub dropped_url: u64,
    /// Dropped by Gopher's repetition rules.
    pub dropped_gopher_repetition: u64,
    /// Dropped by Gopher's quality heuristics.
    pub dropped_gopher_quality: u64,
    /// Dropped by C4's rules.
    pub dropped_c4: u64,
    /// Dropped by FineWeb's rules.
    pub dropped_fineweb: u64,
}

impl FilterCounters {
    /// The counts of a batch's results.
    pub fn count(results: &[Filtered]) -> Self {
        let mut counters = Self {
            documents: results.len() as u64,
            ..Self::default()
        };
        for result in results {
            let Some(drop) = &result.dropped else {
                counters.kept += 1;
                counters.rewritten += u64::from(result.text.is_some());
                counters.lines_removed += u64::from(result.lines_removed);
                continue;
            };
            *match drop.rule {
                FilterRule::Lang => &mut counters.dropped_lang,
                FilterRule::Url => &mut counters.dropped_url,
                FilterRule::GopherRepetition => &mut counters.dropped_gopher_repetition,
                FilterRule::GopherQuality => &mut counters.dropped_gopher_quality,
                FilterRule::FineWeb => &mut counters.dropped_fineweb,
                _ => &mut counters.dropped_c4,
            } += 1;
        }
        counters
    }
}

impl AddAssign for FilterCounters {
    fn add_assign(&mut self, other: Self) {
        self.documents += other.documents;
        self.kept += other.kept;
        self.rewritten += other.rewritten;
        self.lines_removed += other.lines_removed;
        self.dropped_lang += other.dropped_lang;
        self.dropped_url += other.dropped_url;
        self.dropped_gopher_repetition += other.dropped_gopher_repetition;
        self.dropped_gopher_quality += other.dropped_gopher_quality;
        self.dropped_c4 += other.dropped_c4;
        self.dropped_fineweb += other.dropped_fineweb;
    }
}

/// One document as the filter reads it.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    /// Its text.
    pub text: &'a str,
    /// Its URL, when the record had one.
    pub url: Option<&'a str>,
}

/// The filter, configured.
pub struct QualityFilter {
    config: FilterConfig,
    languages: Vec<whatlang::Lang>,
    blocklist: UrlBlocklist,
    detector: whatlang::Detector,
}

impl QualityFilter {
    /// A filter for `config` with the block list's entries (read by the caller from
    /// `config.url_blocklist`); refuses unknown language codes and ratios outside [0, 1].
    pub fn new(config: &FilterConfig, blocklist: UrlBlocklist) -> Result<Self, String> {
        let languages = config
            .languages
            .iter()
            .filter(|code| !code.trim().is_empty())
            .map(|code| {
                whatlang::Lang::from_code(code.trim()).ok_or_else(|| {
                    format!(
                        "{code:?} is not a language code whatlang knows: use ISO 639-3 \
                         (eng, fra, spa, deu, cmn, jpn, rus, …)"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (name, ratio) in [
            ("max_symbol_word_ratio", config.max_symbol_word_ratio),
            ("max_bullet_line_ratio", config.max_bullet_line_ratio),
            ("max_ellipsis_line_ratio", config.max_ellipsis_line_ratio),
            ("min_alpha_word_ratio", config.min_alpha_word_ratio),
            ("min_lang_score", config.min_lang_score),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("{name} = {ratio:e} is outside [0, 1]"));
            }
        }
        Ok(Self {
            config: config.clone(),
            languages,
            blocklist,
            detector: whatlang::Detector::new(),
        })
    }

    fn runs(&self, rule: FilterRule) -> bool {
        !self.config.skip.contains(&rule)
    }

    /// Filters one document.
    pub fn filter(&self, document: Document<'_>) -> Filtered {
        let mut result = Filtered {
            lang: None,
            lang_score: 0.0,
            text: None,
            lines_removed: 0,
            dropped: None,
        };
        if let Err(drop) = self.check(document, &mut result) {
            result.dropped = Some(drop);
            result.text = None;
        }
        result
    }

    fn check(&self, document: Document<'_>, result: &mut Filtered) -> Result<(), Drop> {
        let config = &self.config;
        if self.runs(FilterRule::Url)
            && let Some(url) = document.url
        {
            self.blocklist.check(url)?;
        }
        if self.runs(FilterRule::Lang) {
            self.identify(document.text, result)?;
        }
        let text = document.text;
        // Three rule families read the words; none of them may run.
        let words = LazyCell::new(|| text::words(text));
        if self.runs(FilterRule::GopherRepetition) {
            gopher::repetition(config, text, &words)?;
        }
        if self.runs(FilterRule::GopherQuality) {
            gopher::quality(config, text, &words)?;
        }
        if self.runs(FilterRule::C4) {
            let page = c4::page(config, text)?;
            if page.text != text {
                result.lines_removed = page.lines_removed;
                result.text = Some(page.text);
            }
        }
        if self.runs(FilterRule::FineWeb) {
            match &result.text {
                Some(changed) => fineweb::page(config, changed, &text::words(changed))?,
                None => fineweb::page(config, text, &words)?,
            }
        }
        Ok(())
    }

    fn identify(&self, text: &str, result: &mut Filtered) -> Result<(), Drop> {
        let info = self.detector.detect(text);
        result.lang = info.as_ref().map(|info| info.lang().code());
        result.lang_score = info.as_ref().map_or(0.0, |info| info.confidence() as f32);
        if self.languages.is_empty() {
            return Ok(());
        }
        let Some(info) = info else {
            return Err(Drop::new(
                FilterRule::Lang,
                "lang_unknown",
                "no language identified".into(),
            ));
        };
        if !self.languages.contains(&info.lang()) {
            return Err(Drop::new(
                FilterRule::Lang,
                "lang_not_kept",
                format!("{} not in {:?}", info.lang().code(), self.config.languages),
            ));
        }
        if info.confidence() < self.config.min_lang_score {
            return Err(Drop::new(
                FilterRule::Lang,
                "lang_low_score",
                format!(
                    "{} at {:.3} < {}",
                    info.lang().code(),
                    info.confidence(),
                    self.config.min_lang_score
                ),
            ));
        }
        Ok(())
    }

    /// Filters a batch in parallel; results in input order.
    pub fn filter_batch(&self, documents: &[Document<'_>]) -> Vec<Filtered> {
        documents.par_iter().map(|&d| self.filter(d)).collect()
    }
}

#[cfg(test)]
mod tests;
