//! Regions no sentence boundary may fall inside: TeX math and environments, code.

use std::ops::Range;

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
