//! The text measures the filters share, defined as the published rules (Gopher, C4,
//! FineWeb, as datatrove implements them) read them: Python's line splitting and
//! whitespace, lengths in characters (code points), words as a spaCy-like tokenizer
//! cuts them (UAX #29 words, an ellipsis one token, `'s` and `n't` split off), and
//! Unicode's `Sentence_Terminal` characters.

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_segmentation::UnicodeSegmentation;

/// Whether `c` is whitespace to Python's `str.strip` and `str.split`: Unicode
/// `White_Space` and the four information separators U+001C…U+001F.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `text` without leading and trailing whitespace (Python's `str.strip()`).
pub fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// Length in characters (Python's `len` of a `str`).
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// Python's `str.splitlines()`: lines without their ends, split at `\n`, `\r`,
/// `\r\n`, VT, FF, U+001C…U+001E, NEL, U+2028, U+2029; no empty last line.
pub fn python_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{1c}'
                ..='\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..at]);
        start = at + c.len_utf8();
        if c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n') {
            chars.next();
            start += 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The words of `text`: UAX #29 word segments that are not whitespace, a run of
/// full stops one word (`...`), and a trailing `'s` or `n't` its own word, as
/// spaCy's English tokenizer (datatrove's word splitter for English) cuts them.
pub fn words(text: &str) -> Vec<&str> {
    let mut words: Vec<&str> = Vec::new();
    let mut last_end = usize::MAX;
    for (at, piece) in text.split_word_bound_indices() {
        if piece.chars().all(is_space) {
            continue;
        }
        let extends_dots = piece == "."
            && at == last_end
            && words.last().is_some_and(|w| w.bytes().all(|b| b == b'.'));
        if extends_dots {
            let dots = words.pop().expect("a previous word");
            words.push(&text[at - dots.len()..=at]);
        } else if let Some(cut) = clitic_start(piece) {
            words.extend([&piece[..cut], &piece[cut..]]);
        } else {
            words.push(piece);
        }
        last_end = at + piece.len();
    }
    words
}

/// Where a word's clitic starts: `it's` → `it` + `'s`, `don't` → `do` + `n't` (either
/// apostrophe, any case).
fn clitic_start(word: &str) -> Option<usize> {
    ["n't", "n’t", "'s", "’s"].into_iter().find_map(|suffix| {
        let cut = word
            .len()
            .checked_sub(suffix.len())
            .filter(|&cut| cut > 0)?;
        (word.is_char_boundary(cut) && word[cut..].eq_ignore_ascii_case(suffix)).then_some(cut)
    })
}

/// Whether every character of `word` is punctuation, a symbol, a control or a
/// separator: a word that is only symbols.
pub fn is_symbol_word(word: &str) -> bool {
    word.chars().all(|c| {
        use GeneralCategory::*;
        matches!(
            get_general_category(c),
            ConnectorPunctuation
                | DashPunctuation
                | OpenPunctuation
                | ClosePunctuation
                | InitialPunctuation
                | FinalPunctuation
                | OtherPunctuation
                | MathSymbol
                | CurrencySymbol
                | ModifierSymbol
                | OtherSymbol
                | Control
                | Format
                | SpaceSeparator
                | LineSeparator
                | ParagraphSeparator
        )
    })
}

/// Whether `word` holds a letter (Python's `str.isalpha` of one of its characters).
pub fn has_letter(word: &str) -> bool {
    word.chars().any(|c| {
        use GeneralCategory::*;
        matches!(
            get_general_category(c),
            UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter
        )
    })
}

/// Unicode's `Sentence_Terminal` characters (`.`, `!`, `?`, `。`, `।`, …), as
/// inclusive ranges: the line endings FineWeb's punctuation rule counts.
const SENTENCE_TERMINALS: [(char, char); 82] = [
    ('\u{21}', '\u{21}'),
    ('\u{2e}', '\u{2e}'),
    ('\u{3f}', '\u{3f}'),
    ('\u{589}', '\u{589}'),
    ('\u{61d}', '\u{61f}'),
    ('\u{6d4}', '\u{6d4}'),
    ('\u{700}', '\u{702}'),
    ('\u{7f9}', '\u{7f9}'),
    ('\u{837}', '\u{837}'),
    ('\u{839}', '\u{839}'),
    ('\u{83d}', '\u{83e}'),
    ('\u{964}', '\u{965}'),
    ('\u{104a}', '\u{104b}'),
    ('\u{1362}', '\u{1362}'),
    ('\u{1367}', '\u{1368}'),
    ('\u{166e}', '\u{166e}'),
    ('\u{1735}', '\u{1736}'),
    ('\u{17d4}', '\u{17d6}'),
    ('\u{17d9}', '\u{17da}'),
    ('\u{1803}', '\u{1803}'),
    ('\u{1809}', '\u{1809}'),
    ('\u{1944}', '\u{1945}'),
    ('\u{1aa8}', '\u{1aab}'),
    ('\u{1b5a}', '\u{1b5b}'),
    ('\u{1b5e}', '\u{1b5f}'),
    ('\u{1b7d}', '\u{1b7e}'),
    ('\u{1c3b}', '\u{1c3c}'),
    ('\u{1c7e}', '\u{1c7f}'),
    ('\u{203c}', '\u{203d}'),
    ('\u{2047}', '\u{2049}'),
    ('\u{2e2e}', '\u{2e2e}'),
    ('\u{2e3c}', '\u{2e3c}'),
    ('\u{2e53}', '\u{2e54}'),
    ('\u{3002}', '\u{3002}'),
    ('\u{a4ff}', '\u{a4ff}'),
    ('\u{a60e}', '\u{a60f}'),
    ('\u{a6f3}', '\u{a6f3}'),
    ('\u{a6f7}', '\u{a6f7}'),
    ('\u{a876}', '\u{a877}'),
    ('\u{a8ce}', '\u{a8cf}'),
    ('\u{a92f}', '\u{a92f}'),
    ('\u{a9c8}', '\u{a9c9}'),
    ('\u{aa5d}', '\u{aa5f}'),
    ('\u{aaf0}', '\u{aaf1}'),
    ('\u{abeb}', '\u{abeb}'),
    ('\u{fe52}', '\u{fe52}'),
    ('\u{fe56}', '\u{fe57}'),
    ('\u{ff01}', '\u{ff01}'),
    ('\u{ff0e}', '\u{ff0e}'),
    ('\u{ff1f}', '\u{ff1f}'),
    ('\u{ff61}', '\u{ff61}'),
    ('\u{10a56}', '\u{10a57}'),
    ('\u{10f55}', '\u{10f59}'),
    ('\u{10f86}', '\u{10f89}'),
    ('\u{11047}', '\u{11048}'),
    ('\u{110be}', '\u{110c1}'),
    ('\u{11141}', '\u{11143}'),
    ('\u{111c5}', '\u{111c6}'),
    ('\u{111cd}', '\u{111cd}'),
    ('\u{111de}', '\u{111df}'),
    ('\u{11238}', '\u{11239}'),
    ('\u{1123b}', '\u{1123c}'),
    ('\u{112a9}', '\u{112a9}'),
    ('\u{1144b}', '\u{1144c}'),
    ('\u{115c2}', '\u{115c3}'),
    ('\u{115c9}', '\u{115d7}'),
    ('\u{11641}', '\u{11642}'),
    ('\u{1173c}', '\u{1173e}'),
    ('\u{11944}', '\u{11944}'),
    ('\u{11946}', '\u{11946}'),
    ('\u{11a42}', '\u{11a43}'),
    ('\u{11a9b}', '\u{11a9c}'),
    ('\u{11c41}', '\u{11c42}'),
    ('\u{11ef7}', '\u{11ef8}'),
    ('\u{11f43}', '\u{11f44}'),
    ('\u{16a6e}', '\u{16a6f}'),
    ('\u{16af5}', '\u{16af5}'),
    ('\u{16b37}', '\u{16b38}'),
    ('\u{16b44}', '\u{16b44}'),
    ('\u{16e98}', '\u{16e98}'),
    ('\u{1bc9f}', '\u{1bc9f}'),
    ('\u{1da88}', '\u{1da88}'),
];

/// Whether `c` ends sentences (Unicode `Sentence_Terminal`).
pub fn is_sentence_terminal(c: char) -> bool {
    SENTENCE_TERMINALS
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// How many elements of `items` repeat an earlier one, and their total characters
/// (Gopher's duplicate lines and paragraphs).
pub fn duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = rustc_hash::FxHashSet::default();
    let (mut count, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(item) {
            count += 1;
            chars += char_len(item);
        }
    }
    (count, chars)
}
