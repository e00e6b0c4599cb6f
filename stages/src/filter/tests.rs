use clap::Parser;

use super::text::{is_sentence_terminal, python_lines, words};
use super::*;

/// Five sentences, 80 words of ordinary English prose: passes every default rule.
const GOOD: &str = "The river rises in the hills to the north of the town and flows south for \
about forty miles before it reaches the sea. Farmers have used its water for centuries, and \
the old mills along its banks are still standing today. In the spring the snow melts and the \
level can rise quickly after heavy rain. A new bridge was built with public money in the last \
decade. Visitors often walk the path that follows the water from the station to the harbour.";

fn filter_with(config: FilterConfig) -> QualityFilter {
    QualityFilter::new(&config, UrlBlocklist::default()).unwrap()
}

fn reason(filter: &QualityFilter, text: &str) -> Option<String> {
    filter
        .filter(Document { text, url: None })
        .dropped
        .map(|drop| drop.reason)
}

/// A filter running only the rule group `rule` (defaults otherwise).
fn only(rule: FilterRule) -> QualityFilter {
    filter_with(only_config(rule))
}

fn only_config(rule: FilterRule) -> FilterConfig {
    let groups = [
        FilterRule::Lang,
        FilterRule::GopherRepetition,
        FilterRule::GopherQuality,
        FilterRule::C4,
        FilterRule::FineWeb,
    ];
    FilterConfig {
        skip: groups.into_iter().filter(|&g| g != rule).collect(),
        ..FilterConfig::default()
    }
}

fn defaults() -> QualityFilter {
    filter_with(FilterConfig::default())
}

#[test]
fn the_flags_defaults_are_the_configs() {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        config: FilterConfig,
    }
    assert_eq!(Flags::parse_from(["rlpt"]).config, FilterConfig::default());
    let parsed = Flags::parse_from(["rlpt", "--top-ngrams", "2:0.25,3:0.2", "--skip", "c4,lang"]);
    assert_eq!(parsed.config.top_ngrams, limits(&[(2, 0.25), (3, 0.2)]));
    assert_eq!(parsed.config.skip, [FilterRule::C4, FilterRule::Lang]);
    for bad in ["2", "0:0.1", "2:1.5", "x:0.1"] {
        assert!(bad.parse::<NgramLimit>().is_err(), "{bad}");
    }
}

#[test]
fn words_are_cut_as_spacy_cuts_english() {
    assert_eq!(
        words("It's the cat's toy... Don't go (now), e-mail me!"),
        [
            "It", "'s", "the", "cat", "'s", "toy", "...", "Do", "n't", "go", "(", "now", ")", ",",
            "e", "-", "mail", "me", "!"
        ]
    );
    assert_eq!(
        python_lines("a\r\nb\rc\n\nd\u{2028}e\n"),
        ["a", "b", "c", "", "d", "e"]
    );
    assert!(is_sentence_terminal('.') && is_sentence_terminal('。') && is_sentence_terminal('।'));
    assert!(!is_sentence_terminal(',') && !is_sentence_terminal('"'));
}

#[test]
fn good_prose_passes_every_rule_and_keeps_its_text() {
    let result = defaults().filter(Document {
        text: GOOD,
        url: None,
    });
    assert_eq!(result.dropped, None);
    assert_eq!(result.text, None, "nothing to remove");
    assert_eq!(result.lang, Some("eng"));
    assert!(result.lang_score > 0.5, "{}", result.lang_score);
}

#[test]
fn gopher_quality_rules_each_drop_what_they_name() {
    let filter = only(FilterRule::GopherQuality);
    let short = "The cat sat on the mat with the dog.";
    assert_eq!(
        reason(&filter, short).as_deref(),
        Some("gopher_too_few_words")
    );
    let tiny_words = format!("{GOOD} {}", "a b c d e f g h i j ".repeat(30));
    assert_eq!(
        reason(&filter, &tiny_words).as_deref(),
        Some("gopher_short_words")
    );
    let long_words = format!("{GOOD} {}", "incomprehensibilities ".repeat(100));
    assert_eq!(
        reason(&filter, &long_words).as_deref(),
        Some("gopher_long_words")
    );
    let hashes = format!("{GOOD} {}", "#tag ".repeat(20));
    assert_eq!(reason(&filter, &hashes).as_deref(), Some("gopher_hashes"));
    let ellipses = format!("{GOOD} {}The end.", "and so on... ".repeat(20));
    assert_eq!(
        reason(&filter, &ellipses).as_deref(),
        Some("gopher_ellipses")
    );
    let bullets: String = GOOD.split(". ").map(|s| format!("- {s}\n")).collect();
    assert_eq!(
        reason(&filter, &bullets).as_deref(),
        Some("gopher_bullet_lines")
    );
    let teasers: String = GOOD.split(". ").map(|s| format!("{s}…\n")).collect();
    assert_eq!(
        reason(&filter, &teasers).as_deref(),
        Some("gopher_ellipsis_lines")
    );
    let numbers = format!("{GOOD} {}", "12 , 34 ; 56 ".repeat(20));
    assert_eq!(
        reason(&filter, &numbers).as_deref(),
        Some("gopher_few_letter_words")
    );
    let stop_words = ["the", "be", "to", "of", "and", "that", "have", "with"];
    let one_stop_word: Vec<&str> = GOOD
        .split(' ')
        .map(|w| if stop_words.contains(&w) { "a" } else { w })
        .collect();
    assert_eq!(
        reason(&filter, &one_stop_word.join(" ")).as_deref(),
        Some("gopher_stop_words"),
        "only `The` is left, and stop words are case-sensitive"
    );
    assert_eq!(reason(&filter, GOOD), None);
}

#[test]
fn gopher_repetition_rules_drop_repeated_lines_paragraphs_and_ngrams() {
    let filter = only(FilterRule::GopherRepetition);
    let sentences: Vec<&str> = GOOD.split(". ").collect();
    let paragraphs = format!(
        "{}\n\n{}\n\n{}\n\n{}",
        sentences[0], sentences[1], sentences[0], sentences[0]
    );
    assert_eq!(
        reason(&filter, &paragraphs).as_deref(),
        Some("gopher_dup_paragraphs")
    );
    let lines = format!("{GOOD}\nBuy now\nBuy now\nBuy now\nBuy now");
    assert_eq!(reason(&filter, &lines).as_deref(), Some("gopher_dup_lines"));
    let long_line = format!(
        "{}\n{}\n{}",
        sentences.join("\n"),
        sentences[0],
        sentences[0]
    );
    assert_eq!(
        reason(&filter, &long_line).as_deref(),
        Some("gopher_dup_line_chars")
    );
    let stuffed = format!("{GOOD} {}", "cheap flights ".repeat(10));
    assert_eq!(
        reason(&filter, &stuffed).as_deref(),
        Some("gopher_top_2gram")
    );
    let copied = format!("{GOOD} {GOOD}");
    assert!(
        reason(&filter, &copied).unwrap().starts_with("gopher_"),
        "a copied text repeats"
    );
    assert_eq!(reason(&filter, ""), Some("gopher_empty".into()));
    assert_eq!(reason(&filter, GOOD), None);
}

#[test]
fn duplicated_ngrams_count_the_characters_they_cover() {
    let filter = filter_with(FilterConfig {
        top_ngrams: Vec::new(),
        ..only_config(FilterRule::GopherRepetition)
    });
    let copied = format!("{GOOD} {GOOD}");
    assert_eq!(
        reason(&filter, &copied).as_deref(),
        Some("gopher_dup_5grams")
    );
}

#[test]
fn c4_removes_lines_and_drops_pages_as_published() {
    let filter = only(FilterRule::C4);
    let page = format!(
        "Home | About | Contact\n{GOOD}[12]\nPlease enable JavaScript to see comments.\n\
         This site uses cookies for analytics.\nOk then.\n"
    );
    let result = filter.filter(Document {
        text: &page,
        url: None,
    });
    assert_eq!(result.dropped, None);
    assert_eq!(
        result.text.as_deref(),
        Some(GOOD),
        "citation cut, four lines removed"
    );
    assert_eq!(result.lines_removed, 4);
    let lorem = format!("{GOOD}\nLorem ipsum dolor sit amet, consectetur.");
    assert_eq!(reason(&filter, &lorem).as_deref(), Some("c4_lorem_ipsum"));
    let code = format!("{GOOD}\nCall f() {{ return 1; }} to finish.");
    assert_eq!(reason(&filter, &code).as_deref(), Some("c4_curly_bracket"));
    let few = "One sentence here. Two sentences here. Three are here.";
    assert_eq!(
        reason(&filter, few).as_deref(),
        Some("c4_too_few_sentences")
    );
    let lenient = filter_with(FilterConfig {
        skip: vec![
            FilterRule::Lang,
            FilterRule::C4CurlyBracket,
            FilterRule::C4TerminalPunctuation,
        ],
        ..FilterConfig::default()
    });
    let kept = lenient.filter(Document {
        text: &format!("{GOOD}\nA heading without a stop\n{{x}} is a set."),
        url: None,
    });
    assert_eq!(kept.dropped, None);
    assert_eq!(kept.lines_removed, 0);
}

#[test]
fn fineweb_rules_drop_unpunctuated_short_repeated_and_list_pages() {
    let filter = only(FilterRule::FineWeb);
    let unpunctuated: String = GOOD
        .split(". ")
        .map(|s| format!("{s}\n"))
        .collect::<String>()
        .replace('.', "");
    assert_eq!(
        reason(&filter, &unpunctuated).as_deref(),
        Some("fineweb_line_punctuation")
    );
    let short = format!("{GOOD}\nA.\nB.\nC.\nD.");
    assert_eq!(
        reason(&filter, &short).as_deref(),
        Some("fineweb_short_lines")
    );
    let repeated = format!("{GOOD}\nSee the map.\nSee the map.");
    assert_eq!(
        reason(&filter, &repeated).as_deref(),
        Some("fineweb_dup_line_chars")
    );
    let list: String = (0..40)
        .map(|i| format!("Internationalization{i} considerations.\n"))
        .collect();
    assert_eq!(reason(&filter, &list).as_deref(), Some("fineweb_list"));
    assert_eq!(reason(&filter, "\n \n"), Some("fineweb_empty".into()));
    assert_eq!(reason(&filter, GOOD), None);
}

#[test]
fn languages_outside_the_keep_list_are_dropped_and_every_document_is_tagged() {
    let french = "La rivière prend sa source dans les collines au nord de la ville et coule \
                  vers le sud pendant une soixantaine de kilomètres avant d'atteindre la mer.";
    let english_only = only(FilterRule::Lang);
    let result = english_only.filter(Document {
        text: french,
        url: None,
    });
    assert_eq!(result.lang, Some("fra"));
    assert_eq!(result.dropped.unwrap().reason, "lang_not_kept");
    assert_eq!(
        reason(&english_only, "12345 67890"),
        Some("lang_unknown".into())
    );
    let every = filter_with(FilterConfig {
        languages: vec![String::new()],
        ..only_config(FilterRule::Lang)
    });
    assert_eq!(reason(&every, french), None);
    let strict = filter_with(FilterConfig {
        min_lang_score: 1.0,
        ..only_config(FilterRule::Lang)
    });
    assert_eq!(
        reason(&strict, "The cat and the dog.").as_deref(),
        Some("lang_low_score")
    );
    let error = QualityFilter::new(
        &FilterConfig {
            languages: vec!["en".into()],
            ..FilterConfig::default()
        },
        UrlBlocklist::default(),
    )
    .err()
    .unwrap();
    assert!(
        error.contains("\"en\"") && error.contains("639-3"),
        "{error}"
    );
}

#[test]
fn the_url_block_list_matches_domains_their_subdomains_and_exact_urls() {
    let list = UrlBlocklist::parse(
        "# spam\nspam.example\n*.ads.test\nhttps://news.test/bad-page  # one page\n\n",
    );
    assert_eq!(list.counts(), (2, 1));
    let filter = QualityFilter::new(&only_config(FilterRule::Lang), list).unwrap();
    let drop = |url: &str| {
        filter
            .filter(Document {
                text: GOOD,
                url: Some(url),
            })
            .dropped
            .map(|d| d.reason)
    };
    assert_eq!(
        drop("http://spam.example/x").as_deref(),
        Some("url_domain_blocked")
    );
    assert_eq!(
        drop("https://user@WWW.Spam.Example:8080/?q=1").as_deref(),
        Some("url_domain_blocked")
    );
    assert_eq!(
        drop("https://cdn.ads.test").as_deref(),
        Some("url_domain_blocked")
    );
    assert_eq!(
        drop("https://news.test/bad-page").as_deref(),
        Some("url_blocked")
    );
    assert_eq!(drop("https://news.test/good-page"), None);
    assert_eq!(
        drop("https://notspam.example/"),
        None,
        "a suffix that is not a label"
    );
    assert_eq!(
        filter
            .filter(Document {
                text: GOOD,
                url: None
            })
            .dropped,
        None
    );
}

#[test]
fn a_batch_keeps_input_order_and_counts_by_rule() {
    let filter = defaults();
    let texts = [
        GOOD,
        "Too short.",
        "La rivière coule vers le sud jusqu'à la mer, disent les gens du pays.",
    ];
    let documents: Vec<Document<'_>> = texts
        .iter()
        .map(|&text| Document { text, url: None })
        .collect();
    let results = filter.filter_batch(&documents);
    let counters = FilterCounters::count(&results);
    assert_eq!(results[0].dropped, None);
    assert_eq!(
        results[1].dropped.as_ref().unwrap().rule,
        FilterRule::GopherRepetition,
        "its one 2-gram is all of it"
    );
    assert_eq!(results[2].dropped.as_ref().unwrap().rule, FilterRule::Lang);
    assert_eq!(
        (
            counters.documents,
            counters.kept,
            counters.dropped_lang,
            counters.dropped_gopher_quality
        ),
        (3, 1, 1, 0)
    );
}
