//! Every kind: positives in realistic sentences and the look-alikes that must stay.

use super::*;

fn scrub(text: &str) -> String {
    scrub_with(&PiiConfig::default(), text)
}

fn scrub_with(config: &PiiConfig, text: &str) -> String {
    let scrubber = Scrubber::new(config).unwrap();
    let scrubbed = scrubber.scrub(text);
    scrubbed.text.unwrap_or_else(|| text.to_string())
}

fn unchanged(text: &str) {
    assert_eq!(scrub(text), text, "should be left alone");
}

#[test]
fn emails_including_idn_domains() {
    assert_eq!(
        scrub("Write to jane.o'neil+rlpt@example.co.uk or admin@münchen.de today."),
        "Write to <EMAIL> or <EMAIL> today."
    );
    assert_eq!(
        scrub("Contact: <bob_smith@mail.xn--p1ai>"),
        "Contact: <<EMAIL>>"
    );
    unchanged(
        "Follow https://medium.com/@alice/why-rust and https://www.npmjs.com/package/@babel/core",
    );
    unchanged("See https://example.org/users/bob@example.org/profile for details.");
    unchanged("In CSS, @media screen and the decorator @property are not addresses.");
}

#[test]
fn public_ip_addresses_but_not_private_ones_or_versions() {
    assert_eq!(
        scrub("Requests from 81.2.69.142 and 2606:4700:4700::1111 were blocked."),
        "Requests from <IP> and <IP> were blocked."
    );
    assert_eq!(scrub("DNS at 8.8.8.8."), "DNS at <IP>.");
    unchanged("The router is 192.168.1.1, localhost is 127.0.0.1 and ::1, docs use 192.0.2.10.");
    unchanged("Upgrade to version 1.2.3.4 or 10.4.2.1.5; dotted 999.1.1.1 is not an address.");
    unchanged("At 10:30:45 the MAC 00:1a:2b:3c:4d:5e and std::vector::push_back appeared.");
    let config = PiiConfig {
        replace_private_ips: true,
        ..PiiConfig::default()
    };
    assert_eq!(
        scrub_with(&config, "gateway 10.0.0.1 and fe80::1"),
        "gateway <IP> and <IP>"
    );
}

#[test]
fn phone_numbers_in_international_and_national_forms() {
    assert_eq!(
        scrub("Call +1 (415) 555-0132, +44 20 7946 0958 or +4930123456789 now."),
        "Call <PHONE>, <PHONE> or <PHONE> now."
    );
    assert_eq!(
        scrub(
            "Office: (212) 555-0187, mobile 415.555.0199, Paris 01 42 68 53 00, Berlin 030/1234567."
        ),
        "Office: <PHONE>, mobile <PHONE>, Paris <PHONE>, Berlin <PHONE>."
    );
    unchanged("Order 4155550132 shipped in 1999; ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2.");
    unchanged("Released 2024-01-15, due 15.01.2024, version 1.2.3, price $1,234.56, ratio 3-2-1.");
}

#[test]
fn card_numbers_pass_luhn_and_a_network_prefix() {
    assert_eq!(
        scrub("Paid with 4111 1111 1111 1111, Amex 3782-822463-10005 and 5500005555555559."),
        "Paid with <CREDIT_CARD>, Amex <CREDIT_CARD> and <CREDIT_CARD>."
    );
    unchanged("Tracking 4111 1111 1111 1112 fails Luhn; 1234 5678 9012 3456 has no network.");
    unchanged("Mixed 4111-1111 1111-1111 and odd grouping 41111 11111 111111 are not cards.");
}

#[test]
fn social_security_numbers_with_valid_ranges() {
    assert_eq!(
        scrub("SSN 123-45-6789 on file, also 536 22 1943."),
        "SSN <US_SSN> on file, also <US_SSN>."
    );
    unchanged(
        "Invalid: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000, 078-05-1120.",
    );
    unchanged("Mixed separators 123-45 6789 and the date 2024-05-2024 are not SSNs.");
}

#[test]
fn secrets_by_vendor_prefix_block_and_assignment() {
    assert_eq!(
        scrub(
            "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE and token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789."
        ),
        "export AWS_ACCESS_KEY_ID=<SECRET> and token <SECRET>."
    );
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(
        scrub(&format!("Authorization: Bearer {jwt}")),
        "Authorization: Bearer <SECRET>"
    );
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----";
    assert_eq!(scrub(&format!("key:\n{key}\nend")), "key:\n<SECRET>\nend");
    assert_eq!(
        scrub("slack xoxb-123456789012-abcdefABCDEF and api_key = \"q8F2vL9xR3tZ7mK1\""),
        "slack <SECRET> and api_key = \"<SECRET>\""
    );
    unchanged(
        "commit 3f786850e387550fdab836ed7e6dc881de23001b and uuid 123e4567-e89b-12d3-a456-426614174000",
    );
    unchanged("password = ******** (not shown)");
}

#[test]
fn ibans_pass_mod_97() {
    assert_eq!(
        scrub("Pay to DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432."),
        "Pay to <IBAN> or <IBAN>."
    );
    unchanged(
        "DE89 3704 0044 0532 0130 01 fails the checksum; AB12 3456 7890 1234 has no country.",
    );
}

#[test]
fn kinds_can_be_skipped_and_placeholders_changed() {
    let config = PiiConfig {
        skip: vec![PiiKind::Phone],
        placeholders: vec!["email=[redacted email]".into()],
        ..PiiConfig::default()
    };
    assert_eq!(
        scrub_with(&config, "jane@example.com, +44 20 7946 0958"),
        "[redacted email], +44 20 7946 0958"
    );
    assert!(
        Scrubber::new(&PiiConfig {
            placeholders: vec!["name=X".into()],
            ..PiiConfig::default()
        })
        .unwrap_err()
        .contains("not a PII kind")
    );
}

#[test]
fn counts_and_drop_above() {
    let scrubber = Scrubber::new(&PiiConfig {
        drop_above: Some(2),
        ..PiiConfig::default()
    })
    .unwrap();
    let few = scrubber.scrub("a@example.com and b@example.com");
    assert_eq!((few.counts.get(PiiKind::Email), few.dropped), (2, false));
    let many = scrubber.scrub("a@example.com, b@example.com, 8.8.8.8");
    assert_eq!((many.counts.total(), many.dropped), (3, true));
    let clean = scrubber.scrub("Nothing to see here.");
    assert_eq!((clean.text.clone(), clean.counts.total()), (None, 0));
    let counters = PiiCounters::count(&[few, many, clean]);
    assert_eq!(
        (
            counters.documents,
            counters.documents_with_pii,
            counters.dropped
        ),
        (3, 2, 1)
    );
    assert_eq!(counters.hits["hits_email"], 4);
}

/// Regression (issue: PII damage on Debian copyright files and reST docs): reST
/// literal markers, hex-looking words, versions and clause numbers are not PII.
#[test]
fn rest_markers_versions_and_clause_numbers_are_left_alone() {
    unchanged("The output would be::\n\n    x = 1\n\nand column 4:: holds the rest.");
    unchanged("Pairs A::D and A:B::C:D are names in the grammar, dead::beef too.");
    unchanged("GCC 2.95 and GCC 2.7.2.3 were removed; gcc 2.7.2.3 had a bug.");
    unchanged("See sections `3.1.3.6`_, `3.2.2.10`_ and section 3.2.2.1 of the spec.");
    unchanged("As set forth in Clause 252.227-7013 (c) (1) of DFARs.");
    unchanged("Upgrade to version 1.2.3.4 or release 4.3.2.1 today.");
    assert_eq!(
        scrub("Servers 2606:4700:4700::1111 and 2001:4860:4860::8888 answered."),
        "Servers <IP> and <IP> answered."
    );
    assert_eq!(
        scrub("Call 252-227-7013 or 252.227.7013."),
        "Call <PHONE> or <PHONE>."
    );
}

/// Regressions (issue 20): PII written in forms the patterns missed.
#[test]
fn fifteen_digit_cards_of_every_network_including_uatp() {
    assert_eq!(
        scrub("UATP 123456789012347 and 1234 56789 012347 were charged."),
        "UATP <CREDIT_CARD> and <CREDIT_CARD> were charged."
    );
    unchanged("Invoice 123456789012348 fails Luhn; 223456789012347 has no 15-digit network.");
}

#[test]
fn ssns_written_with_dots() {
    assert_eq!(scrub("SSN 123.45.6789 on file."), "SSN <US_SSN> on file.");
    unchanged("Mixed 123.45-6789 and version 123.45.6789 are not SSNs.");
}

#[test]
fn national_phones_with_a_phone_word_or_country_code_nearby() {
    assert_eq!(
        scrub("Tel: 09-7625400 (Kfar Saba office); mobile 13812345678, 手机 138 1234 5678."),
        "Tel: <PHONE> (Kfar Saba office); mobile <PHONE>, 手机 <PHONE>."
    );
    assert_eq!(
        scrub("Israel (+972) office 09-7625400; China +86: 13912345678."),
        "Israel (+972) office <PHONE>; China +86: <PHONE>."
    );
    unchanged("Population 13812345678 in table 09-7625400 of the census.");
}

#[test]
fn ibans_with_dashes_without_spaces_or_followed_by_a_letter() {
    assert_eq!(
        scrub("Pay DE89-3704-0044-0532-0130-00 or GB82WEST12345698765432 today."),
        "Pay <IBAN> or <IBAN> today."
    );
    assert_eq!(
        scrub("IBAN: DE89370400440532013000EUR transfer, DE89 3704 0044 0532 0130 00x."),
        "IBAN: <IBAN>EUR transfer, <IBAN>x."
    );
    unchanged("Part DE89-3704-0044-0532-0130-01 fails mod 97.");
}

#[test]
fn iban_groups_are_never_phone_numbers() {
    for text in [
        "Account DE89 3704 0044 0532 0130 01 (a typo) is not a phone.",
        "Kontonummer DE12 0300 1234 5678 9123 45 unbekannt.",
        "Rekening NL91 ABNA 0417 1643 01 (one digit off) bestaat niet.",
    ] {
        let scrubbed = scrub(text);
        assert!(!scrubbed.contains("<PHONE>"), "{scrubbed}");
    }
}

#[test]
fn an_ipv6_prefix_of_an_invalid_embedded_ipv4_stays() {
    unchanged("The bogus ::ffff:256.0.0.1 and 2001:4860::300.1.2.3 are not addresses.");
    assert_eq!(scrub("Mapped ::ffff:8.8.8.8 seen."), "Mapped <IP> seen.");
}
