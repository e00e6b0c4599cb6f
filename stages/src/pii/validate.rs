//! Checks run on a candidate after its pattern matched: checksums (Luhn, IBAN
//! mod-97), number ranges (SSN areas, IP octets and address classes) and the context
//! that tells PII from look-alikes (dates, ISBNs, version numbers, URL paths).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The Luhn checksum of a digit string.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (position, byte) in digits.bytes().rev().enumerate() {
        let mut digit = u32::from(byte - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum % 10 == 0
}

/// Card networks: first digits (a range over `width` digits) and card lengths.
const CARD_NETWORKS: &[(u32, u32, usize, (usize, usize))] = &[
    (1, 1, 1, (15, 15)),       // UATP
    (4, 4, 1, (13, 19)),       // Visa
    (51, 55, 2, (16, 16)),     // Mastercard
    (2221, 2720, 4, (16, 16)), // Mastercard 2-series
    (34, 34, 2, (15, 15)),     // American Express
    (37, 37, 2, (15, 15)),     // American Express
    (6011, 6011, 4, (16, 19)), // Discover
    (644, 649, 3, (16, 19)),   // Discover
    (65, 65, 2, (16, 19)),     // Discover
    (3528, 3589, 4, (16, 19)), // JCB
    (300, 305, 3, (14, 19)),   // Diners Club
    (36, 36, 2, (14, 19)),     // Diners Club
    (38, 39, 2, (16, 19)),     // Diners Club
    (62, 62, 2, (16, 19)),     // UnionPay
    (50, 50, 2, (12, 19)),     // Maestro
    (56, 58, 2, (12, 19)),     // Maestro
    (6759, 6763, 4, (12, 19)), // Maestro
];

/// Whether a digit string starts like a card of a major network and has its length.
pub fn card_prefix(digits: &str) -> bool {
    CARD_NETWORKS
        .iter()
        .any(|&(low, high, width, (shortest, longest))| {
            digits.len() >= width
                && digits[..width]
                    .parse::<u32>()
                    .is_ok_and(|prefix| (low..=high).contains(&prefix))
                && (shortest..=longest).contains(&digits.len())
        })
}

/// Card digit groups as people write them: 4-4-4-4(-3), 4-6-5, 4-6-4 or one run.
pub fn card_grouping(groups: &[usize]) -> bool {
    matches!(
        groups,
        [_] | [4, 4, 4, 4]
            | [4, 4, 4, 4, 3]
            | [4, 4, 4, 4, 1]
            | [4, 6, 5]
            | [4, 5, 6]
            | [4, 6, 4]
            | [4, 4, 4, 2]
            | [4, 4, 4, 1]
    )
}

/// A US social security number with a valid area, group and serial: not area 000,
/// 666 or 900–999, not group 00, not serial 0000, and not one of the numbers known to
/// be used as examples (078-05-1120, 219-09-9999).
pub fn ssn(area: &str, group: &str, serial: &str) -> bool {
    let area_number: u32 = area.parse().unwrap_or(0);
    area_number != 0
        && area_number != 666
        && area_number < 900
        && group != "00"
        && serial != "0000"
        && !matches!(
            (area, group, serial),
            ("078", "05", "1120") | ("219", "09", "9999")
        )
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The byte length of the IBAN `candidate` starts with: its country's number of
/// characters, written compact or in groups of four split by one kind of separator
/// (space or dash), with valid check digits; none when it does not start with one.
pub fn iban_prefix(candidate: &str) -> Option<usize> {
    let &(_, length) = IBAN_LENGTHS
        .iter()
        .find(|(country, _)| candidate.starts_with(country))?;
    let separator = candidate
        .bytes()
        .find(|b| !b.is_ascii_alphanumeric())
        .filter(|_| candidate.len() > length);
    let mut compact = String::with_capacity(length);
    for (at, byte) in candidate.bytes().enumerate() {
        if compact.len() == length {
            return iban(&compact).then_some(at);
        }
        if Some(byte) == separator && !compact.is_empty() && compact.len().is_multiple_of(4) {
            if candidate.as_bytes().get(at + 1) == Some(&byte) {
                return None;
            }
            continue;
        }
        if !byte.is_ascii_alphanumeric() {
            return None;
        }
        compact.push(char::from(byte));
    }
    (compact.len() == length && iban(&compact)).then_some(candidate.len())
}

/// Whether byte `start` of `haystack` lies inside an IBAN-shaped run: a country code
/// and two check digits, then groups of letters and digits, reaching `start` (phone
/// patterns must not read its groups).
pub fn inside_iban(haystack: &str, start: usize) -> bool {
    let before = &haystack[..start];
    let run_start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let run = before[run_start..].trim_start_matches([' ', '-']);
    run.len() > 4
        && run.len() <= 40
        && run.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
        && run.as_bytes()[2..4].iter().all(u8::is_ascii_digit)
}

/// Words that say a number nearby is a phone (several languages), and the country
/// codes of the national formats only context tells apart.
const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "fax",
    "call",
    "contact",
    "whatsapp",
    "téléphone",
    "teléfono",
    "telefon",
    "telefono",
    "handy",
    "móvil",
    "portable",
    "电话",
    "手机",
    "電話",
    "טלפון",
    "נייד",
    "+972",
    "+86",
    "00972",
    "0086",
];

/// Whether a phone word or country code appears in the 48 bytes before `start`.
pub fn phone_context(haystack: &str, start: usize) -> bool {
    let from = start.saturating_sub(48);
    let from = (from..=start)
        .find(|&i| haystack.is_char_boundary(i))
        .unwrap_or(start);
    let window = haystack[from..start].to_lowercase();
    PHONE_WORDS.iter().any(|word| window.contains(word))
}

/// An IBAN (spaces removed): the length its country uses and check digits that make
/// the number ≡ 1 mod 97.
pub fn iban(compact: &str) -> bool {
    let Some(&(_, length)) = IBAN_LENGTHS
        .iter()
        .find(|(country, _)| compact.starts_with(country))
    else {
        return false;
    };
    if compact.len() != length
        || !compact
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return false;
    }
    let rearranged = compact[4..].bytes().chain(compact[..4].bytes());
    let mut remainder = 0u32;
    for byte in rearranged {
        let value = if byte.is_ascii_digit() {
            u32::from(byte - b'0')
        } else {
            u32::from(byte - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// Whether an IPv4 address is private, loopback, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast, broadcast, unspecified or reserved.
pub fn ipv4_is_special(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    address.is_private()
        || address.is_loopback()
        || address.is_link_local()
        || address.is_broadcast()
        || address.is_documentation()
        || address.is_unspecified()
        || address.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0)
}

/// Whether an IPv6 address is loopback, unspecified, unique-local, link-local,
/// multicast, documentation (2001:db8::/32) or an IPv4-mapped special address.
pub fn ipv6_is_special(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || address.is_unique_local()
        || address.is_unicast_link_local()
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || address.to_ipv4_mapped().is_some_and(ipv4_is_special)
}

/// Whether text that parses as an IPv6 address is written like one rather than like
/// reST or code: it does not end with `::` (`would be::`, `column 4::`, a literal
/// block), a group holds a decimal digit (`A:B::C:D`, `dead::beef` are words), and it
/// has two groups at least, or starts with `::` (`::1`).
pub fn ipv6_shaped(candidate: &str) -> bool {
    let groups = candidate
        .split(':')
        .filter(|group| !group.is_empty())
        .count();
    !candidate.ends_with("::")
        && candidate.contains(|c: char| c.is_ascii_digit())
        && (groups >= 2 || candidate.starts_with("::"))
}

/// Words before a dotted number that make it a version (`GCC 2.7.2.3`, `v 1.2.3.4`).
pub fn version_word(word: &str) -> bool {
    matches!(
        word,
        "version"
            | "versions"
            | "ver"
            | "v"
            | "release"
            | "rel"
            | "build"
            | "firmware"
            | "revision"
            | "rev"
            | "patch"
            | "update"
            | "gcc"
            | "glibc"
            | "libc"
            | "kernel"
            | "linux"
            | "python"
            | "perl"
            | "ruby"
            | "java"
            | "gnu"
            | "emacs"
            | "debian"
            | "ubuntu"
            | "openssl"
            | "bash"
            | "windows"
            | "macos"
            | "ios"
            | "android"
    )
}

/// Words before a number that make it the number of a part of a document
/// (`Clause 252.227-7013`, `section 3.2.2.1`).
pub fn numbering_word(word: &str) -> bool {
    matches!(
        word,
        "clause"
            | "clauses"
            | "section"
            | "sections"
            | "sec"
            | "chapter"
            | "paragraph"
            | "para"
            | "part"
            | "article"
            | "art"
            | "item"
            | "step"
            | "rule"
            | "subpart"
            | "appendix"
            | "annex"
            | "figure"
            | "fig"
            | "table"
            | "dfars"
            | "far"
            | "cfr"
            | "usc"
            | "rfc"
    )
}

/// Shannon entropy of a string's characters, in bits per character.
pub fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut total = 0usize;
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        total += 1;
    }
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

/// Whether `text` has the shape of a calendar date (2024-01-15, 15.01.2024, 1/15/24).
pub fn looks_like_date(text: &str) -> bool {
    let parts: Vec<&str> = text
        .split(['-', '.', '/', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    let numbers: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    if numbers.len() != 3 || parts.len() != 3 {
        return false;
    }
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    let day_month = |d: u32, m: u32| (1..=31).contains(&d) && (1..=12).contains(&m);
    match lengths.as_slice() {
        [4, 1 | 2, 1 | 2] => day_month(numbers[2], numbers[1]) || day_month(numbers[1], numbers[2]),
        [1 | 2, 1 | 2, 2 | 4] => {
            day_month(numbers[0], numbers[1]) || day_month(numbers[1], numbers[0])
        }
        _ => false,
    }
}

/// The word just before byte `start` of `haystack` (past spaces and opening
/// punctuation), lowercased.
pub fn previous_word(haystack: &str, start: usize) -> String {
    let before = haystack[..start].trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ':' | '#' | '`' | '(' | '[' | '"' | '\'' | '§')
    });
    let word_start = before.rfind(|c: char| !c.is_alphanumeric()).map_or(0, |i| {
        i + before[i..].chars().next().map_or(1, char::len_utf8)
    });
    before[word_start..].to_lowercase()
}

/// Whether byte `start` lies in the path of a URL (after `scheme://host/`) in its
/// whitespace-delimited token.
pub fn inside_url_path(haystack: &str, start: usize) -> bool {
    let token_start = haystack[..start]
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let token = &haystack[token_start..start];
    token
        .find("://")
        .is_some_and(|scheme| token[scheme + 3..].contains('/'))
}

/// The character before byte `start`, if any.
pub fn char_before(haystack: &str, start: usize) -> Option<char> {
    haystack[..start].chars().next_back()
}

/// The character at byte `end`, if any.
pub fn char_at(haystack: &str, end: usize) -> Option<char> {
    haystack[end..].chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_a_changed_digit() {
        for card in [
            "4111111111111111",
            "5500005555555559",
            "378282246310005",
            "6011111111111117",
        ] {
            assert!(luhn(card) && card_prefix(card), "{card}");
        }
        assert!(!luhn("4111111111111112"));
        assert!(!card_prefix("1234567812345670"), "no network starts with 1");
    }

    #[test]
    fn ssn_ranges() {
        assert!(ssn("123", "45", "6789"));
        assert!(
            !ssn("000", "45", "6789") && !ssn("666", "45", "6789") && !ssn("912", "45", "6789")
        );
        assert!(
            !ssn("123", "00", "6789") && !ssn("123", "45", "0000") && !ssn("078", "05", "1120")
        );
    }

    #[test]
    fn iban_checksums_and_lengths() {
        assert!(iban("DE89370400440532013000"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(iban("FR1420041010050500013M02606"));
        assert!(!iban("DE89370400440532013001"), "checksum");
        assert!(!iban("DE8937040044053201300"), "length");
        assert!(!iban("ZZ89370400440532013000"), "country");
    }

    #[test]
    fn special_addresses() {
        for private in [
            "10.1.2.3",
            "192.168.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.7",
            "100.64.0.1",
            "255.255.255.255",
        ] {
            assert!(ipv4_is_special(private.parse().unwrap()), "{private}");
        }
        assert!(!ipv4_is_special("8.8.8.8".parse().unwrap()));
        for special in [
            "::1",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(ipv6_is_special(special.parse().unwrap()), "{special}");
        }
        assert!(!ipv6_is_special("2606:4700:4700::1111".parse().unwrap()));
    }

    #[test]
    fn dates_and_context() {
        assert!(
            looks_like_date("2024-01-15")
                && looks_like_date("15.01.2024")
                && looks_like_date("1/15/24")
        );
        assert!(!looks_like_date("030-1234-5678"));
        assert_eq!(previous_word("Version 1.2.3.4", 8), "version");
        assert_eq!(previous_word("ISBN: 0-306", 6), "isbn");
        assert!(inside_url_path(
            "see https://host.org/users/bob@x.org/p",
            27
        ));
        assert!(!inside_url_path("mailto:bob@x.org", 7));
        assert!(entropy("aaaa") < 0.1 && entropy("aZ3$kP9q") > 2.9);
    }
}
