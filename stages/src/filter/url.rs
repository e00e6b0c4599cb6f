//! The URL block list: a document whose `url` names a listed domain (or a subdomain of
//! one) or a listed URL is dropped.
//!
//! The list is text, one entry a line (`#` starts a comment): an entry with `/` is a
//! URL, matched exactly; any other is a domain, matched against the URL's host and
//! every parent of it (`example.com` blocks `www.example.com`).

use rustc_hash::FxHashSet;

use super::{Drop, FilterRule};

/// A parsed block list.
#[derive(Debug, Clone, Default)]
pub struct UrlBlocklist {
    domains: FxHashSet<String>,
    urls: FxHashSet<String>,
}

impl UrlBlocklist {
    /// Reads a list's text.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        for line in text.lines() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            if entry.contains('/') {
                list.urls.insert(entry.to_string());
            } else {
                let domain = entry.trim_start_matches("*.").trim_matches('.');
                list.domains.insert(domain.to_ascii_lowercase());
            }
        }
        list
    }

    /// Whether the list blocks nothing.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.urls.is_empty()
    }

    /// Entries: (domains, URLs).
    pub fn counts(&self) -> (usize, usize) {
        (self.domains.len(), self.urls.len())
    }

    /// Refuses `url` when the list names it or its host.
    pub fn check(&self, url: &str) -> Result<(), Drop> {
        let url = url.trim();
        if self.urls.contains(url) {
            return Err(Drop::new(FilterRule::Url, "url_blocked", url.to_string()));
        }
        let host = host(url);
        let mut domain = host.as_str();
        loop {
            if self.domains.contains(domain) {
                return Err(Drop::new(
                    FilterRule::Url,
                    "url_domain_blocked",
                    format!("{host} (listed: {domain})"),
                ));
            }
            match domain.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => domain = parent,
                _ => return Ok(()),
            }
        }
    }
}

/// The host of `url`, lowercased: after the scheme, without user info, port or a
/// final dot.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}
