//! The text dedup compares: Unicode NFKC, lowercase, every decimal digit folded to `0`,
//! punctuation, symbols and control/format characters removed, whitespace collapsed to
//! one space. Letters and combining marks of every script are kept as they are —
//! accents included, so `pêche` and `péché` stay different words, and Thai or
//! Devanagari marks are not dropped.
//!
//! The same pass tells whether the text is mostly in a script written without spaces
//! (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan), for which shingles are characters.

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// A document as dedup sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// The normalised text.
    pub text: String,
    /// Whether most letters belong to scripts written without spaces.
    pub spaceless: bool,
}

/// Normalises `text` into `out` (cleared first) and reports its script class.
pub fn normalize_into(text: &str, out: &mut Normalized) {
    out.text.clear();
    let mut writer = Writer {
        out: &mut out.text,
        pending_space: false,
        letters: 0,
        spaceless_letters: 0,
    };
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.chars().for_each(|c| writer.push(c));
    } else {
        text.nfkc().for_each(|c| writer.push(c));
    }
    out.spaceless = writer.spaceless_letters * 2 > writer.letters;
}

/// Normalises `text`.
pub fn normalize(text: &str) -> Normalized {
    let mut out = Normalized::default();
    normalize_into(text, &mut out);
    out
}

struct Writer<'a> {
    out: &'a mut String,
    pending_space: bool,
    letters: usize,
    spaceless_letters: usize,
}

impl Writer<'_> {
    fn push(&mut self, c: char) {
        if c.is_ascii() {
            match c {
                'a'..='z' => self.letter(c, false),
                'A'..='Z' => self.letter(c.to_ascii_lowercase(), false),
                '0'..='9' => self.keep('0'),
                c if c.is_ascii_whitespace() => self.pending_space = true,
                _ => {}
            }
            return;
        }
        if c.is_whitespace() {
            self.pending_space = true;
            return;
        }
        use GeneralCategory::*;
        match get_general_category(c) {
            UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter => {
                let spaceless = is_spaceless_script(c);
                c.to_lowercase()
                    .for_each(|lower| self.letter(lower, spaceless));
            }
            NonspacingMark | SpacingMark | EnclosingMark | LetterNumber | OtherNumber => {
                self.keep(c)
            }
            DecimalNumber => self.keep('0'),
            _ => {}
        }
    }

    fn letter(&mut self, c: char, spaceless: bool) {
        self.letters += 1;
        self.spaceless_letters += usize::from(spaceless);
        self.keep(c);
    }

    fn keep(&mut self, c: char) {
        if self.pending_space && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.pending_space = false;
        self.out.push(c);
    }
}

/// Scripts whose words are not separated by spaces.
fn is_spaceless_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x0F00..=0x0FFF    // Tibetan
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3134F  // CJK extensions B–G
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(input: &str) -> String {
        normalize(input).text
    }

    #[test]
    fn case_digits_punctuation_and_whitespace_are_folded() {
        assert_eq!(
            text("  Hello,   World!\n\tIt's 2024 — 3.14 $5 "),
            "hello world its 0000 000 0"
        );
        assert_eq!(
            text("ＦＵＬＬ－ＷＩＤＴＨ ①"),
            "fullwidth 0",
            "NFKC folds compatibility forms"
        );
        assert_eq!(text("…!?"), "");
    }

    #[test]
    fn accents_are_kept_so_different_words_stay_different() {
        assert_eq!(
            text("Pêche, péché, peché, PECHE"),
            "pêche péché peché peche"
        );
        assert_eq!(
            text("e\u{301}te\u{301}"),
            "été",
            "decomposed input is composed"
        );
        assert_eq!(text("¿Año? ¡Sí!"), "año sí");
    }

    #[test]
    fn combining_marks_of_thai_and_devanagari_are_kept() {
        assert_eq!(text("ภาษาไทย ก่อน"), "ภาษาไทย ก่อน");
        assert_eq!(text("हिन्दी किताब"), "हिन्दी किताब");
        assert_ne!(text("किताब"), text("कताब"));
    }

    #[test]
    fn scripts_without_spaces_are_detected_by_majority() {
        assert!(normalize("机器学习是人工智能的一个分支。").spaceless);
        assert!(normalize("ภาษาไทยเป็นภาษาราชการ").spaceless);
        assert!(!normalize("Machine learning (機械学習) is a field").spaceless);
        assert!(!normalize("Русский язык").spaceless);
    }
}
