//! Sentence boundaries: Unicode's (UAX #29, which already keeps decimals, versions,
//! URLs, emails, closing quotes after terminal punctuation, Spanish ¿ ¡ and CJK 。！？
//! right), corrected where it is wrong:
//!
//! - no boundary inside protected regions: TeX math (`$…$`, `$$…$$`, `\(…\)`,
//!   `\[…\]`, `\begin{…}…\end{…}`) and code (fenced blocks, inline code, `\verb|…|`,
//!   PARI's `\bprog…@eprog`), whose content is not parsed for math;
//! - no boundary after a title or reference abbreviation (Mr., Dr., Fig., Eq., e.g.,
//!   i.e., cf., vs., pp., Sr., Mme, …) nor after one that can end a sentence (etc.,
//!   et al., Inc., U.S., a.m.) or an initial (J. R. R. Tolkien, M. Dupont) unless the
//!   next word starts a sentence (The, This, It, Il, El, …);
//! - closing punctuation UAX #29 leaves at the start of the next sentence (French
//!   `Bonjour. »`) goes back to the sentence it closes;
//! - a list marker alone (`1.`, `a)`, `iv.`, `-`, `•`) joins the item it introduces;
//! - a line break inside a paragraph that does not end a sentence (hard-wrapped text)
//!   joins the lines; a blank line always ends a sentence.
//!
//! Sentences are byte ranges that tile the text (each keeps its trailing whitespace).

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Abbreviations that never end a sentence (lowercase, without the final period).
const NEVER_FINAL: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "sra", "srta", "st", "mt", "fig", "figs", "eq", "eqs",
    "cf", "vs", "e.g", "i.e", "approx", "ca", "dept", "eds", "lt", "sgt", "capt", "gov", "sen",
    "mme", "mlle", "dra", "ud", "uds", "pág", "núm", "thm", "lem", "resp", "jan", "feb", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// Abbreviations that refer to a number (No. 5, p. 12, vol. 3): they join only a
/// sentence that starts with a digit, since as words (`no`) they end sentences too.
const BEFORE_NUMBER: &[&str] = &[
    "no", "nos", "nr", "p", "pp", "vol", "vols", "ch", "sec", "secs", "art", "ref", "refs", "ex",
    "op", "ed", "col", "prop", "def", "cor", "rev", "tel",
];

/// Abbreviations that may end a sentence: a boundary after them stands only before a
/// word that starts sentences.
const MAYBE_FINAL: &[&str] = &[
    "etc", "al", "inc", "ltd", "co", "corp", "jr", "v", "a.m", "p.m", "u.s", "u.k", "u.n", "e.u",
    "ibid", "cit",
];

/// Words that start sentences (English, French, Spanish), for abbreviations and
/// initials that may end one.
const STARTERS: &[&str] = &[
    "The", "This", "That", "These", "Those", "It", "Its", "He", "She", "They", "We", "I", "You",
    "In", "On", "At", "For", "But", "However", "Then", "There", "A", "An", "As", "After", "Before",
    "If", "When", "While", "Although", "Our", "His", "Her", "Their", "Some", "Many", "Most", "One",
    "Each", "All", "By", "From", "With", "Thus", "Hence", "Since", "So", "Also", "Moreover", "Le",
    "La", "Les", "Il", "Elle", "Ils", "Elles", "Un", "Une", "Des", "Ce", "Cette", "Mais", "Dans",
    "En", "El", "Los", "Las", "Ella", "Una", "Este", "Esta", "Pero",
];

/// Sentence ranges tiling `text`.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let protected = protected_regions(text);
    let mut raw: Vec<Range<usize>> = Vec::new();
    let mut at = 0;
    for piece in text.split_sentence_bounds() {
        raw.push(at..at + piece.len());
        at += piece.len();
    }
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(raw.len());
    for range in raw {
        let Some(last) = merged.last_mut() else {
            merged.push(range);
            continue;
        };
        let closing = leading_closing(&text[range.clone()]);
        if closing > 0 && !ends_paragraph(&text[last.clone()]) {
            last.end += closing;
            if last.end == range.end {
                continue;
            }
        }
        let next = last.end..range.end;
        if joins(text, last.clone(), next.clone(), &protected) {
            last.end = next.end;
        } else {
            merged.push(next);
        }
    }
    merged
}

/// Whether the boundary between `previous` and `next` is a false one.
fn joins(
    text: &str,
    previous: Range<usize>,
    next: Range<usize>,
    protected: &[Range<usize>],
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
    if is_list_marker(before.trim()) {
        return true;
    }
    if before.ends_with(['\n', '\r']) {
        return soft_wrap(before, after);
    }
    let trimmed = before.trim_end();
    if !trimmed.ends_with('.') {
        return false;
    }
    let word = last_word(trimmed);
    let lower = word.to_lowercase();
    let starter = starts_sentence(after);
    if NEVER_FINAL.contains(&lower.as_str()) {
        return true;
    }
    if BEFORE_NUMBER.contains(&lower.as_str()) {
        return after.trim_start().starts_with(|c: char| c.is_ascii_digit());
    }
    let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    (MAYBE_FINAL.contains(&lower.as_str()) || initial) && !starter
}

/// The word before a sentence's final period: letters and inner periods (`e.g`,
/// `U.S`), without the final period.
fn last_word(trimmed: &str) -> &str {
    let body = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let start = body
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphabetic() || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &body[start..]
}

fn starts_sentence(after: &str) -> bool {
    let first: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect();
    STARTERS.contains(&first.as_str())
}

/// Whether a sentence ends with a blank line (a paragraph break).
fn ends_paragraph(sentence: &str) -> bool {
    let tail = sentence.trim_end_matches([' ', '\t']);
    tail.ends_with("\n\n") || tail.ends_with("\r\n\r\n") || tail.ends_with("\n\r\n")
}

/// A line that ends without terminal punctuation, followed by a line that is not a new
/// item or heading: the same sentence, wrapped.
fn soft_wrap(before: &str, after: &str) -> bool {
    let line = before.trim_end();
    let terminal = line.ends_with(['.', '!', '?', ':', ';', '。', '！', '？', '…']);
    let next = after.trim_start();
    let new_item = next.starts_with(['-', '*', '•', '#', '|', '>', '\\'])
        || is_list_marker(next.split_whitespace().next().unwrap_or(""));
    !terminal && !line.is_empty() && !new_item
}

/// `1.`, `12)`, `a.`, `b)`, `iv.`, `-`, `*`, `•`.
fn is_list_marker(token: &str) -> bool {
    if matches!(token, "-" | "*" | "•" | "–") {
        return true;
    }
    let Some(body) = token.strip_suffix(['.', ')']) else {
        return false;
    };
    let body = body.strip_prefix('(').unwrap_or(body);
    (!body.is_empty() && body.len() <= 3 && body.bytes().all(|b| b.is_ascii_digit()))
        || (body.chars().count() == 1 && body.chars().all(|c| c.is_ascii_lowercase()))
        || (!body.is_empty() && body.len() <= 5 && body.chars().all(|c| "ivxlc".contains(c)))
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

/// Byte ranges no sentence boundary may fall inside: TeX math and environments, code.
pub fn protected_regions(text: &str) -> Vec<Range<usize>> {
    let tex = looks_like_tex(text);
    let bytes = text.as_bytes();
    let mut regions = Vec::new();
    let mut at = 0;
    while let Some(offset) = memchr::memchr3(b'$', b'\\', b'`', &bytes[at..]) {
        at += offset;
        let rest = &text[at..];
        let found = if rest.starts_with("```") {
            close_after(text, at, 3, "```")
        } else if rest.starts_with("$$") {
            close_after(text, at, 2, "$$")
        } else if rest.starts_with("\\[") {
            close_after(text, at, 2, "\\]")
        } else if rest.starts_with("\\(") {
            close_after(text, at, 2, "\\)")
        } else if rest.starts_with("\\begin{") {
            environment(text, at)
        } else if rest.starts_with("\\bprog") {
            close_after(text, at, "\\bprog".len(), "@eprog")
        } else if rest.starts_with("\\verb")
            && rest.len() > 5
            && !rest.as_bytes()[5].is_ascii_alphabetic()
        {
            let delimiter = rest[5..].chars().next().expect("checked above");
            close_after(text, at, 5 + delimiter.len_utf8(), &delimiter.to_string())
        } else if bytes[at] == b'$' && (at == 0 || bytes[at - 1] != b'\\') {
            inline_math(text, at, tex)
        } else if bytes[at] == b'`' {
            close_after(text, at, 1, "`").filter(|r| !text[r.clone()].contains('\n'))
        } else {
            None
        };
        match found {
            Some(region) => {
                at = region.end;
                regions.push(region);
            }
            None => at += 1,
        }
    }
    regions
}

/// `start..end of closing` when `closing` occurs after the opener of `open_len` bytes.
fn close_after(text: &str, start: usize, open_len: usize, closing: &str) -> Option<Range<usize>> {
    let from = start + open_len;
    text[from..]
        .find(closing)
        .map(|i| start..from + i + closing.len())
}

/// `\begin{name}…\end{name}`, nested environments included.
fn environment(text: &str, start: usize) -> Option<Range<usize>> {
    let name_start = start + "\\begin{".len();
    let name = &text[name_start..name_start + text[name_start..].find('}')?];
    let closing = format!("\\end{{{name}}}");
    close_after(text, start, "\\begin{".len() + name.len() + 1, &closing)
}

/// Whether a text is TeX source: it begins environments or sections, or uses several
/// backslash commands.
fn looks_like_tex(text: &str) -> bool {
    if text.contains("\\begin{") || text.contains("\\section") || text.contains("\\documentclass") {
        return true;
    }
    let commands = text
        .as_bytes()
        .windows(2)
        .filter(|w| w[0] == b'\\' && w[1].is_ascii_alphabetic())
        .take(3)
        .count();
    commands >= 3
}

/// `$…$` inline math, without a blank line inside. In TeX every unescaped `$` opens or
/// closes math; elsewhere only as pandoc reads it — a non-space after the opening `$`,
/// a non-space before the closing one, no digit right after it — so prices like
/// `$5 and $10` are not math.
fn inline_math(text: &str, start: usize, tex: bool) -> Option<Range<usize>> {
    let body_start = start + 1;
    if !tex && text[body_start..].starts_with(char::is_whitespace) {
        return None;
    }
    let mut search = body_start;
    while let Some(offset) = text[search..].find('$') {
        let close = search + offset;
        let body = &text[body_start..close];
        if body.contains("\n\n") || close - start > 2000 {
            return None;
        }
        let escaped = text[..close].ends_with('\\');
        let before_ok = tex || (!body.ends_with(char::is_whitespace) && !body.is_empty());
        let after_ok = tex || !text[close + 1..].starts_with(|c: char| c.is_ascii_digit());
        if before_ok && after_ok && !escaped {
            return Some(start..close + 1);
        }
        search = close + 1;
    }
    None
}
