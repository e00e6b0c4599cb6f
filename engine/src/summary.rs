//! What a stage run did, summed over its units — both the units it ran and the ones it
//! reused from an earlier run — printed as a table or as one JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::UnitRecord;

/// Totals of one stage run (this rank's units).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSummary {
    /// The stage.
    pub stage: String,
    /// Its output directory.
    pub output: PathBuf,
    /// Work units in the whole output.
    pub units_total: usize,
    /// Units this run computed.
    pub units_done: usize,
    /// Units this run found finished and reused.
    pub units_reused: usize,
    /// Input bytes of this rank's units.
    pub input_bytes: u64,
    /// Records read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Rejected records by reason.
    pub reject_reasons: BTreeMap<String, u64>,
    /// The stage's counters.
    pub counters: BTreeMap<String, u64>,
    /// Wall time of this run.
    pub seconds: f64,
}

impl StageSummary {
    /// Adds a unit's totals; `reused` says whether this run computed it.
    pub fn add(&mut self, unit: &UnitRecord, reused: bool) {
        if reused {
            self.units_reused += 1;
        } else {
            self.units_done += 1;
        }
        self.input_bytes += unit.input_bytes;
        self.rows_in += unit.rows_in;
        self.rows_out += unit.rows_out;
        self.rejected += unit.rejected();
        add_counts(&mut self.reject_reasons, &unit.reject_reasons);
        add_counts(&mut self.counters, &unit.counters);
    }
}

/// Adds `other`'s counts into `into`, key by key.
pub fn add_counts(into: &mut BTreeMap<String, u64>, other: &BTreeMap<String, u64>) {
    for (key, value) in other {
        *into.entry(key.clone()).or_default() += value;
    }
}

/// A table of stage summaries for a person.
pub fn render_table(summaries: &[StageSummary]) -> String {
    let header = [
        "stage", "units", "reused", "rows in", "rows out", "rejected", "MB in", "seconds",
    ];
    let rows: Vec<[String; 8]> = summaries
        .iter()
        .map(|s| {
            [
                s.stage.clone(),
                s.units_total.to_string(),
                s.units_reused.to_string(),
                s.rows_in.to_string(),
                s.rows_out.to_string(),
                s.rejected.to_string(),
                format!("{:.2}", s.input_bytes as f64 / 1e6),
                format!("{:.2}", s.seconds),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end()).expect("write to string");
    };
    line(header.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    let notes_start = out.len();
    for summary in summaries.iter().filter(|s| s.rejected > 0) {
        let reasons: Vec<String> = summary
            .reject_reasons
            .iter()
            .map(|(reason, count)| format!("{reason}: {count}"))
            .collect();
        writeln!(
            out,
            "{} rejects ({}) are in {}",
            summary.stage,
            reasons.join(", "),
            summary.output.join(crate::manifest::REJECTS_DIR).display()
        )
        .expect("write to string");
    }
    for line in summaries.iter().filter_map(headline) {
        writeln!(out, "{line}").expect("write to string");
    }
    if out.len() > notes_start {
        // A blank line ends the table, so a script reading it stops before the notes.
        out.insert(notes_start, '\n');
    }
    out
}

/// What a stage changed, for the stages whose row counts do not show it: pii's
/// replacements, filter's rules and decontam's hits.
fn headline(summary: &StageSummary) -> Option<String> {
    let counter = |name: &str| summary.counters.get(name).copied().unwrap_or(0);
    match summary.stage.as_str() {
        "pii" => {
            let (total, kinds) = prefixed_counts(summary, "hits_");
            Some(format!(
                "pii replaced {total} items{kinds} in {} documents, dropped {}",
                counter("documents_with_pii"),
                counter("dropped")
            ))
        }
        "filter" => {
            let (total, rules) = prefixed_counts(summary, "dropped_");
            Some(format!(
                "filter kept {} of {} documents, dropped {total}{rules}; C4 removed {} lines \
                 from {} kept documents; the dropped are in {}",
                counter("kept"),
                counter("documents"),
                counter("lines_removed"),
                counter("rewritten"),
                summary.output.join("dropped").display()
            ))
        }
        "decontam" => Some(format!(
            "decontam found benchmark text in {} documents: {} characters removed, {} documents \
             dropped; the hits are in {}",
            counter("contaminated"),
            counter("chars_removed"),
            counter("dropped"),
            summary.output.join("contamination").display()
        )),
        _ => None,
    }
}

/// The sum of the counters named `PREFIX…`, and the nonzero ones as ` (name n, …)`.
fn prefixed_counts(summary: &StageSummary, prefix: &str) -> (u64, String) {
    let counts: Vec<(&str, u64)> = summary
        .counters
        .iter()
        .filter_map(|(name, &count)| Some((name.strip_prefix(prefix)?, count)))
        .collect();
    let total = counts.iter().map(|(_, count)| count).sum();
    let nonzero: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let listed = if nonzero.is_empty() {
        String::new()
    } else {
        format!(" ({})", nonzero.join(", "))
    };
    (total, listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_points_at_rejects() {
        let summary = StageSummary {
            stage: "ingest".into(),
            output: "out/documents".into(),
            units_total: 3,
            units_done: 2,
            units_reused: 1,
            input_bytes: 1_500_000,
            rows_in: 520,
            rows_out: 517,
            rejected: 3,
            reject_reasons: BTreeMap::from([
                ("empty_text".into(), 1),
                ("malformed_json".into(), 2),
            ]),
            counters: BTreeMap::new(),
            seconds: 0.25,
        };
        let table = render_table(&[summary]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "stage   units  reused  rows in  rows out  rejected  MB in  seconds"
        );
        assert_eq!(
            lines[1],
            "ingest      3       1      520       517         3   1.50     0.25"
        );
        assert_eq!(lines[2], "", "a blank line ends the table");
        assert_eq!(
            lines[3],
            "ingest rejects (empty_text: 1, malformed_json: 2) are in out/documents/rejects"
        );
    }

    #[test]
    fn pii_and_decontam_say_what_they_changed() {
        let pii = StageSummary {
            stage: "pii".into(),
            counters: BTreeMap::from([
                ("documents_with_pii".into(), 2),
                ("dropped".into(), 0),
                ("hits_email".into(), 3),
                ("hits_ip".into(), 0),
                ("hits_phone".into(), 1),
            ]),
            ..StageSummary::default()
        };
        let decontam = StageSummary {
            stage: "decontam".into(),
            output: "out/clean".into(),
            counters: BTreeMap::from([
                ("contaminated".into(), 1),
                ("chars_removed".into(), 420),
                ("dropped".into(), 0),
            ]),
            ..StageSummary::default()
        };
        let table = render_table(&[pii, decontam]);
        assert!(
            table.contains("pii replaced 4 items (email 3, phone 1) in 2 documents, dropped 0"),
            "{table}"
        );
        assert!(
            table.contains(
                "decontam found benchmark text in 1 documents: 420 characters removed, 0 \
                 documents dropped; the hits are in out/clean/contamination"
            ),
            "{table}"
        );
    }
}
