//! Sentence boundaries: Unicode's (UAX #29, which already keeps decimals, versions,
//! URLs, emails, closing quotes after terminal punctuation, Spanish ¿ ¡ and CJK 。！？
//! right), with the boundaries it misses added and the false ones it makes removed.
//!
//! Added (`lists.rs`): items of a list written on one line (`1.) … 2.) …`, `a. … b. …`,
//! `(i) … (ii) …`, `• … • …`) and sentences glued without a space (`out.Nobody`).
//!
//! Removed:
//! - inside protected regions (`protected.rs`): TeX math and code;
//! - after a title or an abbreviation that always continues (Mr., Dr., Mt., e.g., cf.,
//!   vs., approx., Sr., Mme, pág., av.; `words.rs`), after a reference before its number
//!   (No. 5, p. 12, n°. 40); after an initialism (U.S., D.C., E.U., J.-C.) unless the next
//!   word starts sentences (The, How, Il, El, …); after an initial (J. R. R. Tolkien,
//!   M. Dupont, Samuel L. Hart) unless the next word starts sentences — but a capital
//!   letter after an ordinary lowercase word ends a sentence (`vitamin D.`, `so did I.`);
//! - after a.m./p.m. (a. m., a. C., J.-C.) only when the time opens its sentence
//!   (`By 9 p.m. Mrs. Lund …`); elsewhere they end one before a capitalised word;
//! - after `!` or `?` followed by a lowercase word (`Yahoo! for`, `"Run!" he shouted`);
//! - after a spaced three-dot ellipsis (` . . . `) and an editorial `[...]`; a four-dot
//!   one (` . . . .`) ends a sentence;
//! - a list marker alone (`1.`, `a)`, `(iv)`, `-`, `• 9.`) joins the item it introduces;
//! - a line break inside a paragraph joins the lines when the line has no terminal
//!   punctuation and is not followed by a new item, and the text is wrapped prose: the
//!   line is long, or ends with a space, or the paragraph goes on to a sentence end, or
//!   it has only two lines — three or more short lines without one
//!   (`Shopping list\nbread\nmilk`) are a list of lines. A blank line always ends a
//!   sentence.
//!
//! Closing punctuation UAX #29 leaves at the start of the next sentence (French
//! `Bonjour. »`) goes back to the sentence it closes. Sentences are byte ranges that
//! tile the text (each keeps its trailing whitespace).

mod lists;
mod protected;
mod words;

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

pub use lists::is_list_marker;
pub use protected::protected_regions;
use words::{BEFORE_NAMES, BEFORE_NUMBER, NEVER_FINAL, STARTERS};

/// Lines at least this many characters long are wrapped prose when they end without
/// terminal punctuation.
const WRAPPED_LINE_CHARS: usize = 40;

/// Punctuation that closes a quotation or a bracket.
const CLOSING: &[char] = &[
    '"', '\'', '»', '”', '’', ')', ']', '}', '」', '』', '）', '›',
];

/// Punctuation that opens one, skipped when looking at the next sentence's first word.
const OPENING: &[char] = &[
    '"', '\'', '«', '“', '‘', '(', '[', '{', '¿', '¡', '「', '『', '（', '‹', '—', '-',
];

/// Sentence ranges tiling `text`.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let protected = protected_regions(text);
    let forced = lists::forced_boundaries(text, &protected);
    let mut paragraphs = Paragraphs::new(text);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for (range, forced) in pieces(text, &forced) {
        let Some(last) = merged.last_mut() else {
            merged.push(range);
            continue;
        };
        if forced {
            merged.push(range);
            continue;
        }
        let closing = leading_closing(&text[range.clone()]);
        if closing > 0 && !ends_paragraph(&text[last.clone()]) {
            last.end += closing;
            if last.end == range.end {
                continue;
            }
        }
        let next = last.end..range.end;
        if joins(
            text,
            last.clone(),
            next.clone(),
            &protected,
            &mut paragraphs,
        ) {
            last.end = next.end;
        } else {
            merged.push(next);
        }
    }
    merged
}

/// UAX #29's sentences cut again at every forced boundary, each with whether it
/// starts at one (a boundary no rule may remove).
fn pieces(text: &str, forced: &[usize]) -> Vec<(Range<usize>, bool)> {
    let mut pieces = Vec::new();
    let mut cuts = forced.iter().copied().peekable();
    let mut at = 0;
    for piece in text.split_sentence_bounds() {
        let end = at + piece.len();
        let (mut start, mut is_forced) = (at, false);
        while let Some(cut) = cuts.next_if(|&cut| cut < end) {
            if cut > start {
                pieces.push((start..cut, is_forced));
                start = cut;
            }
            is_forced = true;
        }
        pieces.push((start..end, is_forced));
        at = end;
    }
    pieces
}

/// Whether the boundary between `previous` and `next` is a false one.
fn joins(
    text: &str,
    previous: Range<usize>,
    next: Range<usize>,
    protected: &[Range<usize>],
    paragraphs: &mut Paragraphs<'_>,
) -> bool {
    let boundary = previous.end;
    if protected
        .iter()
        .any(|region| region.start < boundary && boundary < region.end)
    {
        return true;
    }
    let before = &text[previous];
    if ends_paragraph(before) {
        return false;
    }
    let after = &text[next];
    if is_list_marker(before) {
        return true;
    }
    if before.ends_with(['\n', '\r']) {
        return soft_wrap(before, after, boundary, paragraphs);
    }
    let core = before.trim_end_matches(|c: char| c.is_whitespace() || CLOSING.contains(&c));
    if core.ends_with(['!', '?', '！', '？']) {
        return starts_lowercase(after);
    }
    if let Some(joins) = ellipsis_joins(core) {
        return joins;
    }
    core.ends_with('.') && period_joins(core, after)
}

/// For a sentence ending with an ellipsis: a spaced three-dot one (` . . .`) and an
/// editorial `[...]` continue the sentence, any other ends it. `None` for no ellipsis.
fn ellipsis_joins(core: &str) -> Option<bool> {
    if let Some(body) = core.strip_suffix('…') {
        return Some(body.ends_with('['));
    }
    let body = core.trim_end_matches(['.', ' ']);
    let run = core[body.len()..].trim_start();
    let dots = run.matches('.').count();
    if dots < 3 {
        return None;
    }
    let body = &core[..core.len() - run.len()];
    Some(if run.contains(' ') {
        dots == 3
    } else {
        // `[...]` marks an omission; a lone word before the dots is a hesitation
        // (`Well... I suppose`).
        body.ends_with('[') || !body.trim().contains(char::is_whitespace)
    })
}

/// Whether the period ending `core` (a sentence without its closing punctuation and
/// trailing space) continues into `after`.
fn period_joins(core: &str, after: &str) -> bool {
    let body = &core[..core.len() - 1];
    let word = last_word(body);
    let previous = previous_word(&body[..body.len() - word.len()]);
    let mut letters = word.chars();
    if let (Some(letter), None) = (letters.next(), letters.next()) {
        return single_letter_joins(letter, previous, body, after);
    }
    let lower = word.to_lowercase();
    if NEVER_FINAL.contains(&lower.as_str()) {
        return true;
    }
    if BEFORE_NUMBER.contains(&lower.as_str()) {
        return starts_with_digit(after);
    }
    if lower == "a.m" || lower == "p.m" || (lower == "j.-c" && matches!(previous, "av." | "apr.")) {
        return time_joins(body, after);
    }
    if is_initialism(word) || lower == "uu" {
        return !starts_sentence(after);
    }
    false
}

/// The period after a single letter: an initial, the pronoun I, part of a spaced
/// abbreviation (`p. ex.`, `a. m.`, `a. C.`), or a letter ending a sentence.
fn single_letter_joins(letter: char, previous: &str, body: &str, after: &str) -> bool {
    if letter.is_lowercase() {
        let word = letter.to_string();
        if letter == 'm' && matches!(previous, "a." | "p.") {
            return time_joins(body, after);
        }
        return NEVER_FINAL.contains(&word.as_str())
            || (BEFORE_NUMBER.contains(&word.as_str()) && starts_with_digit(after))
            || next_is_short_abbreviation(after);
    }
    if !letter.is_uppercase() {
        return false;
    }
    if letter == 'C' && matches!(previous, "a." | "d.") {
        return time_joins(body, after);
    }
    // After a name, a title, an initial or a word that comes before names (`by`, `as`,
    // `et`, `de`) a capital letter is an initial, unless a sentence starts after it;
    // after an ordinary lowercase word or a number it ends a sentence (`vitamin D.`,
    // `so did I.`, `122.3° W.`) unless more initials follow (`británico J. R. R.`).
    let name_before = previous.is_empty()
        || previous.starts_with(char::is_uppercase)
        || BEFORE_NAMES.contains(&previous.to_lowercase().as_str());
    let initial_follows = after.split_whitespace().next().is_some_and(is_initial);
    if !name_before {
        return initial_follows;
    }
    is_initial(previous) || initial_follows || !starts_sentence(after)
}

/// A time or era abbreviation (a.m., p. m., a. C., J.-C.) ends its sentence before a
/// capitalised word unless the time opens the sentence: at most two words before its
/// number (`By 9 p.m.`, `A las 9 a. m.`).
fn time_joins(body: &str, after: &str) -> bool {
    if !starts_capitalised(after) {
        return true;
    }
    body.split_whitespace()
        .position(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .is_some_and(|index| index <= 2)
}

/// `U.S`, `D.C`, `U.S.A`, `Ph.D`, `J.-C`: groups of one or two letters joined by
/// periods (or `.-`).
fn is_initialism(word: &str) -> bool {
    let groups: Vec<&str> = word.split(['.', '-']).filter(|g| !g.is_empty()).collect();
    groups.len() >= 2
        && word.contains('.')
        && groups
            .iter()
            .all(|g| g.chars().count() <= 2 && g.chars().all(char::is_alphabetic))
        && word.starts_with(char::is_uppercase)
}

/// A single capital letter with its period (`J.`).
fn is_initial(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next(), chars.next()), (Some(c), Some('.'), None) if c.is_uppercase())
}

/// The word before a sentence's final period (`body` is the sentence without it):
/// letters, inner periods and hyphens (`e.g`, `U.S`, `J.-C`, `c.-à-d`) and a degree
/// sign (`N°`).
fn last_word(body: &str) -> &str {
    let start = body
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphabetic() || matches!(c, '.' | '-' | '°' | 'º')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    body[start..].trim_start_matches(['.', '-'])
}

/// The whitespace-separated word that ends `text` (after its trailing whitespace).
fn previous_word(text: &str) -> &str {
    let text = text.trim_end();
    text[after_last_whitespace(text).unwrap_or(0)..].trim_start_matches(OPENING)
}

/// The byte after the last whitespace character of `text`, if it has one.
pub(super) fn after_last_whitespace(text: &str) -> Option<usize> {
    text.char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
}

/// The next sentence with its leading whitespace and opening punctuation skipped.
fn next_text(after: &str) -> &str {
    after.trim_start_matches(|c: char| c.is_whitespace() || OPENING.contains(&c))
}

fn starts_capitalised(after: &str) -> bool {
    next_text(after).starts_with(char::is_uppercase)
}

fn starts_lowercase(after: &str) -> bool {
    next_text(after).starts_with(char::is_lowercase)
}

fn starts_with_digit(after: &str) -> bool {
    after.trim_start().starts_with(|c: char| c.is_ascii_digit())
}

/// Whether the next word is a short abbreviation (`ex.`, `C.`, `m.`): the second half
/// of a spaced one.
fn next_is_short_abbreviation(after: &str) -> bool {
    let word = after.split_whitespace().next().unwrap_or("");
    word.strip_suffix('.').is_some_and(|body| {
        (1..=3).contains(&body.chars().count()) && body.chars().all(char::is_alphabetic)
    })
}

/// Whether the next sentence begins with a word that starts sentences, or with a
/// French elision (`L'`, `C'`, `Qu'`).
fn starts_sentence(after: &str) -> bool {
    let text = next_text(after);
    let first: &str = &text[..text
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(text.len())];
    let elided = text[first.len()..].starts_with(['\'', '’'])
        && (first.chars().count() == 1 || first == "Qu")
        && first.starts_with(char::is_uppercase);
    elided || STARTERS.contains(&first)
}

/// Whether a sentence ends with a blank line (a paragraph break).
fn ends_paragraph(sentence: &str) -> bool {
    let tail = sentence.trim_end_matches([' ', '\t']);
    tail.ends_with("\n\n") || tail.ends_with("\r\n\r\n") || tail.ends_with("\n\r\n")
}

/// Whether the line break ending `before` is a wrap inside a sentence.
fn soft_wrap(before: &str, after: &str, boundary: usize, paragraphs: &mut Paragraphs) -> bool {
    let line = before.trim_end();
    let terminal = line.ends_with(['.', '!', '?', ':', ';', '。', '！', '？', '…']);
    let next = after.trim_start();
    let new_item = next.starts_with(['-', '*', '•', '#', '|', '>', '\\'])
        || is_list_marker(next.split_whitespace().next().unwrap_or(""));
    if terminal || line.is_empty() || new_item {
        return false;
    }
    let last_line = &line[line.rfind('\n').map_or(0, |i| i + 1)..];
    if before.trim_end_matches(['\n', '\r']).ends_with([' ', '\t'])
        || last_line.chars().count() >= WRAPPED_LINE_CHARS
    {
        return true;
    }
    paragraphs.wraps_prose_at(boundary)
}

/// What is known of the paragraph being looked at, found once per paragraph
/// (boundaries are asked about in order): where it ends, where its last sentence end
/// is, and how many line breaks follow the first one asked about.
struct Paragraphs<'t> {
    text: &'t str,
    end: usize,
    last_sentence_end: Option<usize>,
    line_breaks: usize,
}

impl<'t> Paragraphs<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            end: 0,
            last_sentence_end: None,
            line_breaks: 0,
        }
    }

    /// Whether the line break before `at` is inside wrapped prose: the paragraph goes
    /// on to a sentence end, or it has too few lines (three at least) to be a list of
    /// lines.
    fn wraps_prose_at(&mut self, at: usize) -> bool {
        if at >= self.end {
            self.end = paragraph_end(self.text, at);
            let rest = &self.text[at..self.end];
            self.last_sentence_end = last_sentence_end(rest).map(|i| at + i);
            self.line_breaks = memchr::memchr_iter(b'\n', rest.as_bytes()).count();
        }
        self.last_sentence_end.is_some_and(|end| end >= at) || self.line_breaks == 0
    }
}

/// The end of the paragraph holding `at`: the next blank line, or the text's end.
fn paragraph_end(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    for newline in memchr::memchr_iter(b'\n', &bytes[at..]).map(|i| at + i) {
        let rest = &bytes[newline + 1..];
        let blank = rest
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b'\r'))
            .is_none_or(|i| rest[i] == b'\n');
        if blank {
            return newline;
        }
    }
    text.len()
}

/// The offset of the last punctuation in `text` that ends a sentence (`.`, `!`, `?`,
/// `…` followed by whitespace, closing punctuation or the end) or a line's clause (`:`,
/// `;` at the end of a line: `is used:`).
fn last_sentence_end(text: &str) -> Option<usize> {
    let mut following: Option<char> = None;
    let mut line_end = true;
    for (index, c) in text.char_indices().rev() {
        let sentence_end = matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
            && following.is_none_or(|n| n.is_whitespace() || CLOSING.contains(&n));
        if sentence_end || (line_end && matches!(c, ':' | ';')) {
            return Some(index);
        }
        line_end = c == '\n' || (line_end && matches!(c, ' ' | '\t' | '\r'));
        following = Some(c);
    }
    None
}
/// Bytes of closing punctuation (and the space after it) at the start of a sentence.
fn leading_closing(sentence: &str) -> usize {
    let closing: usize = sentence
        .chars()
        .take_while(|c| matches!(c, '»' | '”' | '’' | ')' | ']' | '}' | '」' | '』' | '）'))
        .map(char::len_utf8)
        .sum();
    if closing == 0 {
        return 0;
    }
    closing + sentence[closing..].len()
        - sentence[closing..]
            .trim_start_matches([' ', '\u{a0}'])
            .len()
}
