//! Boundaries UAX #29 does not see, and what a list marker is.
//!
//! - Items of a list written on one line: `1.) … 2.) …`, `1) … 2) …`, `1. … 2. …`,
//!   `a. … b. …`, `(i) … (ii) …`. A run of markers is a list when it counts up from its
//!   first value (1, a, A or i) and that first marker opens its line or follows a colon,
//!   so numbers that merely end sentences (`We bought 2. Then 3.`) are not items.
//! - Bullets inside a line (`• one • two`): each starts an item.
//! - A sentence after an ellipsis character (`and on… Nobody`), which UAX #29 does not
//!   take for terminal punctuation.
//! - Sentences glued without a space (`went out.Nobody`, `1,500.Then`), when the word
//!   before the period is not part of a dotted name (`os.path`, `U.S.Army`, a URL).

use std::ops::Range;

/// Characters that mark a list item at the start of a line.
pub const BULLETS: &[char] = &['•', '⁃', '◦', '▪', '‣', '-', '*', '–'];

/// The longest enumerator looked for (`(xxxiv)`, `100.)`), in bytes.
const MAX_MARKER_BYTES: usize = 8;

/// Words glued to the next sentence longer than this are not prose (a blob, a path).
const MAX_GLUED_WORD_BYTES: usize = 64;

/// Bullets that start an item wherever they stand after whitespace.
const INLINE_BULLETS: &[char] = &['•', '⁃', '◦', '▪', '‣'];

/// Whether `token` is only a list marker: a bullet, an enumerator (`1.`, `2)`, `3.)`,
/// `(iv)`, `b.`), or a bullet before an enumerator (`• 9.`, `⁃10.`).
pub fn is_list_marker(token: &str) -> bool {
    let token = token.trim();
    let rest = token.trim_start_matches(BULLETS);
    if rest.len() < token.len() {
        let rest = rest.trim_start();
        return rest.is_empty() || Enumerator::parse(rest).is_some();
    }
    Enumerator::parse(token).is_some()
}

/// How an enumerator is punctuated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `1.`
    Period,
    /// `1)`
    Paren,
    /// `1.)`
    PeriodParen,
    /// `(1)`
    Enclosed,
}

/// The ways a list can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Number,
    Lower,
    Upper,
    Roman,
}

/// An item's enumerator: its punctuation and its value in each way of counting it
/// can belong to (`i` is the ninth letter and the first roman numeral).
#[derive(Debug, Clone, Copy)]
struct Enumerator {
    style: Style,
    number: Option<u32>,
    lower: Option<u32>,
    upper: Option<u32>,
    roman: Option<u32>,
}

impl Enumerator {
    fn parse(token: &str) -> Option<Self> {
        let (style, body) = if let Some(inner) = token.strip_prefix('(') {
            (Style::Enclosed, inner.strip_suffix(')')?)
        } else if let Some(body) = token.strip_suffix(".)") {
            (Style::PeriodParen, body)
        } else if let Some(body) = token.strip_suffix(')') {
            (Style::Paren, body)
        } else {
            (Style::Period, token.strip_suffix('.')?)
        };
        let bytes = body.as_bytes();
        let letter = |range: std::ops::RangeInclusive<u8>| {
            (bytes.len() == 1 && range.contains(&bytes[0])).then(|| u32::from(bytes[0] & 0x1f))
        };
        let enumerator = Self {
            style,
            number: (!body.is_empty() && body.len() <= 3 && bytes.iter().all(u8::is_ascii_digit))
                .then(|| body.parse().ok())
                .flatten(),
            lower: letter(b'a'..=b'z'),
            upper: letter(b'A'..=b'Z'),
            roman: roman(body),
        };
        let any = enumerator.number.is_some()
            || enumerator.lower.is_some()
            || enumerator.upper.is_some()
            || enumerator.roman.is_some();
        any.then_some(enumerator)
    }

    fn value(&self, count: Count) -> Option<u32> {
        match count {
            Count::Number => self.number,
            Count::Lower => self.lower,
            Count::Upper => self.upper,
            Count::Roman => self.roman,
        }
    }
}

/// The value of a lowercase roman numeral up to 39 (`i` … `xxxix`).
fn roman(body: &str) -> Option<u32> {
    if body.is_empty() || body.len() > 6 {
        return None;
    }
    let tens = body.bytes().take_while(|&b| b == b'x').count();
    let units: usize = match &body[tens..] {
        "" => 0,
        "i" => 1,
        "ii" => 2,
        "iii" => 3,
        "iv" => 4,
        "v" => 5,
        "vi" => 6,
        "vii" => 7,
        "viii" => 8,
        "ix" => 9,
        _ => return None,
    };
    let value = tens * 10 + units;
    (tens <= 3 && value > 0).then_some(value as u32)
}

/// A possible list item: where it starts (its bullet included), its enumerator, and
/// whether it may open a list (first on its line, or after a colon).
struct Candidate {
    start: usize,
    line: usize,
    enumerator: Enumerator,
    opens: bool,
}

/// Positions where a sentence must start although UAX #29 sees no boundary there,
/// sorted, none at 0 and none inside `protected`.
pub fn forced_boundaries(text: &str, protected: &[Range<usize>]) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut forced = Vec::new();
    let mut candidates = Vec::new();
    let mut line = 0;
    let mut line_start = 0;
    let mut at = 0;
    while let Some(offset) = memchr::memchr3(b'.', b')', 0xE2, &bytes[at..]) {
        let hit = at + offset;
        at = hit + 1;
        let skipped = &bytes[line_start..hit];
        if let Some(last) = memchr::memrchr(b'\n', skipped) {
            line += memchr::memchr_iter(b'\n', skipped).count();
            line_start += last + 1;
        }
        if bytes[hit] == 0xE2 {
            forced.extend(inline_bullet(text, line_start, hit));
            forced.extend(after_ellipsis_character(text, hit));
            continue;
        }
        if bytes[hit] == b'.' && glued_sentence(text, hit) {
            forced.push(hit + 1);
        }
        if let Some(candidate) = candidate(text, line, line_start, hit) {
            candidates.push(candidate);
        }
    }
    forced.extend(list_items(&candidates));
    forced.sort_unstable();
    forced.dedup();
    forced.retain(|&position| {
        position > 0
            && !protected
                .iter()
                .any(|region| region.start < position && position < region.end)
    });
    forced
}

/// The start of an inline bullet at `hit`: one of [`INLINE_BULLETS`] after whitespace,
/// with something other than whitespace before it on its line.
fn inline_bullet(text: &str, line_start: usize, hit: usize) -> Option<usize> {
    let bullet = text[hit..].chars().next()?;
    if !INLINE_BULLETS.contains(&bullet) {
        return None;
    }
    let before = &text[line_start..hit];
    (before.ends_with(char::is_whitespace) && !before.trim().is_empty()).then_some(hit)
}

/// The start of the sentence after an ellipsis character at `hit` (`…`, which UAX #29
/// does not take for terminal punctuation): a capitalised word after whitespace, the
/// ellipsis not an omission mark (`[…]`, `(…)`).
fn after_ellipsis_character(text: &str, hit: usize) -> Option<usize> {
    let rest = text[hit..].strip_prefix('…')?;
    let next = rest.trim_start_matches([' ', '\t']);
    let omission = text[..hit].ends_with(['[', '(']);
    (next.len() < rest.len() && next.starts_with(char::is_uppercase) && !omission)
        .then(|| text.len() - next.len())
}

/// Whether the period at `period` ends a sentence glued to the next one: a word or
/// number of two or more characters before it, a capitalised word of two or more
/// letters after it, and no other period, slash, `@`, `:` or `_` in either (which
/// would make them a dotted name, an email or a URL: `Jane.Doe@example.com`).
fn glued_sentence(text: &str, period: usize) -> bool {
    let bytes = text.as_bytes();
    let (Some(&next), Some(&second)) = (bytes.get(period + 1), bytes.get(period + 2)) else {
        return false;
    };
    if period == 0
        || !next.is_ascii_uppercase()
        || !second.is_ascii_lowercase()
        || !(bytes[period - 1].is_ascii_lowercase() || bytes[period - 1].is_ascii_digit())
    {
        return false;
    }
    let window = floor_char_boundary(text, period.saturating_sub(MAX_GLUED_WORD_BYTES));
    let word_start = match super::after_last_whitespace(&text[window..period]) {
        Some(i) => window + i,
        None if window == 0 => 0,
        None => return false,
    };
    let word = &text[word_start..period];
    let rest = &text[period + 1
        ..floor_char_boundary(text, (period + 1 + MAX_GLUED_WORD_BYTES).min(text.len()))];
    let next = &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())];
    let dotted = |part: &str| part.contains(['/', '@', ':', '_', '\\', '=']);
    let inner_period = next
        .trim_end_matches(['.', ',', ';', '!', '?'])
        .contains('.');
    word.len() >= 2 && !word.contains('.') && !dotted(word) && !dotted(next) && !inner_period
}

/// `at`, or the nearest char boundary before it.
fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The enumerator token that ends at `hit` (its `.` or `)`), if one stands there
/// followed by a space or tab. `1.)` is seen at its `)`.
fn candidate(text: &str, line: usize, line_start: usize, hit: usize) -> Option<Candidate> {
    let bytes = text.as_bytes();
    if bytes[hit] == b'.' && bytes.get(hit + 1) == Some(&b')') {
        return None;
    }
    let end = hit + 1;
    if !matches!(bytes.get(end), Some(b' ' | b'\t')) {
        return None;
    }
    let window = floor_char_boundary(text, hit.saturating_sub(MAX_MARKER_BYTES).max(line_start));
    let token_start = match text[window..hit]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || INLINE_BULLETS.contains(&c))
    {
        Some((i, c)) => window + i + c.len_utf8(),
        None if window == line_start => line_start,
        None => return None,
    };
    let enumerator = Enumerator::parse(&text[token_start..end])?;
    let before = text[line_start..token_start]
        .trim_end_matches(|c: char| c.is_whitespace() || BULLETS.contains(&c));
    let gap = &text[line_start + before.len()..token_start];
    Some(Candidate {
        start: line_start + before.len() + (gap.len() - gap.trim_start().len()),
        line,
        enumerator,
        opens: before.is_empty() || before.ends_with(':'),
    })
}

/// The starts of items in runs of markers that count up from 1 (a, A, i) on one line.
fn list_items(candidates: &[Candidate]) -> Vec<usize> {
    let mut items = Vec::new();
    for count in [Count::Number, Count::Lower, Count::Upper, Count::Roman] {
        let mut index = 0;
        while index < candidates.len() {
            let first = &candidates[index];
            index += 1;
            if !first.opens || first.enumerator.value(count) != Some(1) {
                continue;
            }
            let mut run = vec![first.start];
            let mut expected = 2;
            for next in &candidates[index..] {
                if next.line != first.line {
                    break;
                }
                if next.enumerator.style == first.enumerator.style
                    && next.enumerator.value(count) == Some(expected)
                {
                    run.push(next.start);
                    expected += 1;
                }
            }
            if run.len() >= 2 {
                items.extend(run);
            }
        }
    }
    items
}
