//! The `ingest` stage: raw records become `documents` rows, or rejects with a reason.
//!
//! A raw record is one JSONL line, one plain-text file or paragraph, or one row of a
//! columnar file, already read by the pipeline (which owns all IO and knows the file
//! and line). This module parses, validates, normalises (Unicode NFC) and assigns the
//! stable id: the source's id when the record has one, else a hash of the text.

use std::fmt;
use std::ops::AddAssign;

use indexmap::IndexMap;
use rayon::prelude::*;
use rlpt_schemas::Document;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Default JSONL/Parquet field holding the text.
pub const DEFAULT_TEXT_FIELD: &str = "text";
/// Default JSONL/Parquet field holding the id.
pub const DEFAULT_ID_FIELD: &str = "id";

/// How plain-text files become documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TextMode {
    /// One document per file.
    #[default]
    File,
    /// One document per paragraph (paragraphs are separated by blank lines).
    Paragraph,
}

/// The ingest stage's settings (what it does to records, not where they come from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct IngestConfig {
    /// Field (JSONL key or Parquet column) that holds the text.
    #[arg(long, default_value = DEFAULT_TEXT_FIELD)]
    pub text_field: String,
    /// Field that holds the document id; records without one get a content hash.
    #[arg(long, default_value = DEFAULT_ID_FIELD)]
    pub id_field: String,
    /// Dataset name for the `source` column [default: each input file's name without
    /// extensions].
    #[arg(long)]
    pub source: Option<String>,
    /// How plain-text files become documents.
    #[arg(long, value_enum, default_value_t)]
    pub text_mode: TextMode,
    /// Longest record read (a JSONL line, a paragraph's line, a text file), e.g. 64MiB;
    /// a longer one is rejected as `too_long`, skipped without being held in memory.
    #[arg(long, value_parser = rlpt_schemas::size::parse_bytes, default_value = "64MiB")]
    #[serde(
        deserialize_with = "rlpt_schemas::size::deserialize_bytes",
        skip_serializing_if = "is_default_max_record_bytes"
    )]
    pub max_record_bytes: u64,
}

/// Default of [`IngestConfig::max_record_bytes`].
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 64 << 20;

/// The default is left out of the config's JSON, so outputs written before the
/// setting existed keep their config hash.
fn is_default_max_record_bytes(bytes: &u64) -> bool {
    *bytes == DEFAULT_MAX_RECORD_BYTES
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            text_field: DEFAULT_TEXT_FIELD.to_string(),
            id_field: DEFAULT_ID_FIELD.to_string(),
            source: None,
            text_mode: TextMode::File,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// The text cell of a columnar row, as the reader found it.
#[derive(Debug, Clone, Copy)]
pub enum TextCell<'a> {
    /// A string column's value.
    Str(&'a str),
    /// A binary column's value: must be UTF-8.
    Bytes(&'a [u8]),
    /// A null.
    Null,
    /// A column of another type; the type's name.
    OtherType(&'a str),
}

/// One input record, as read by the pipeline.
#[derive(Debug, Clone, Copy)]
pub enum RawRecord<'a> {
    /// One JSONL line, without its line terminator.
    JsonLine(&'a [u8]),
    /// A whole text file or one paragraph; `meta` is the provenance the reader records.
    Text {
        /// The raw bytes.
        bytes: &'a [u8],
        /// JSON object to store as `meta`.
        meta: Option<&'a str>,
    },
    /// A row of a columnar file, split into fields by the reader.
    Columns {
        /// The text cell.
        text: TextCell<'a>,
        /// The id, if the row has one.
        id: Option<&'a str>,
        /// The row's other columns as a JSON object.
        meta: Option<&'a str>,
    },
}

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// A JSONL line is not valid JSON.
    MalformedJson,
    /// A JSONL line is valid JSON but not an object.
    NotAnObject,
    /// The text field is absent or null.
    MissingText,
    /// The text field is not a string.
    NonStringText,
    /// The text is empty or only whitespace.
    EmptyText,
    /// The id field is present but not a non-empty string or an integer.
    InvalidId,
    /// The rest of the input file could not be read (a truncated or corrupt
    /// compressed file, a read error); what came before it was kept.
    Unreadable,
    /// The record is longer than `--max-record-bytes`.
    TooLong,
    /// A JSONL object names a field twice (which one holds the record is unclear).
    DuplicateKey,
}

impl RejectReason {
    /// The stable code written to the `rejects` table and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingText => "missing_text",
            RejectReason::NonStringText => "non_string_text",
            RejectReason::EmptyText => "empty_text",
            RejectReason::InvalidId => "invalid_id",
            RejectReason::Unreadable => "unreadable",
            RejectReason::TooLong => "too_long",
            RejectReason::DuplicateKey => "duplicate_key",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason and a sentence saying what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What was expected and what was found.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What ingest counted, summed over records, shards and ranks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCounters {
    /// Records seen.
    pub records: u64,
    /// Documents produced.
    pub documents: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Documents whose id came from the source.
    pub ids_from_source: u64,
    /// Documents whose id is a content hash.
    pub ids_from_content: u64,
    /// Documents whose text NFC normalisation changed.
    pub nfc_changed: u64,
    /// UTF-8 bytes of text produced.
    pub text_bytes: u64,
}

impl AddAssign for IngestCounters {
    fn add_assign(&mut self, other: Self) {
        self.records += other.records;
        self.documents += other.documents;
        self.rejected += other.rejected;
        self.ids_from_source += other.ids_from_source;
        self.ids_from_content += other.ids_from_content;
        self.nfc_changed += other.nfc_changed;
        self.text_bytes += other.text_bytes;
    }
}

/// The result of ingesting a batch: documents and rejects in input order.
#[derive(Debug, Default)]
pub struct IngestedBatch {
    /// The documents, in input order.
    pub documents: Vec<Document>,
    /// `(index of the record in the batch, why)`, in input order.
    pub rejects: Vec<(usize, Rejection)>,
    /// Counts for this batch.
    pub counters: IngestCounters,
}

/// Ingests a batch of records from one file in parallel; the output order is the input
/// order whatever the thread count. `source` is the dataset name for every record.
pub fn ingest_batch(
    config: &IngestConfig,
    source: &str,
    records: &[RawRecord<'_>],
) -> IngestedBatch {
    let results: Vec<Result<Ingested, Rejection>> = records
        .par_iter()
        .map(|record| ingest_record(config, source, record))
        .collect();
    let mut batch = IngestedBatch::default();
    for (index, result) in results.into_iter().enumerate() {
        batch.counters.records += 1;
        match result {
            Ok(ingested) => {
                let counters = &mut batch.counters;
                counters.documents += 1;
                counters.text_bytes += ingested.document.text.len() as u64;
                counters.nfc_changed += u64::from(ingested.nfc_changed);
                match ingested.id_origin {
                    IdOrigin::Source => counters.ids_from_source += 1,
                    IdOrigin::Content => counters.ids_from_content += 1,
                }
                batch.documents.push(ingested.document);
            }
            Err(rejection) => {
                batch.counters.rejected += 1;
                batch.rejects.push((index, rejection));
            }
        }
    }
    batch
}

/// Where a document's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrigin {
    /// The record's own id field.
    Source,
    /// A hash of the normalised text.
    Content,
}

/// One ingested record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The document.
    pub document: Document,
    /// Where its id came from.
    pub id_origin: IdOrigin,
    /// Whether NFC normalisation changed the text.
    pub nfc_changed: bool,
}

/// Ingests one record.
pub fn ingest_record(
    config: &IngestConfig,
    source: &str,
    record: &RawRecord<'_>,
) -> Result<Ingested, Rejection> {
    let fields = match *record {
        RawRecord::JsonLine(line) => parse_json_line(config, line)?,
        RawRecord::Text { bytes, meta } => Fields {
            text: utf8(bytes)?.into(),
            id: None,
            meta: meta.map(str::to_string),
        },
        RawRecord::Columns { text, id, meta } => Fields {
            text: text_from_cell(config, text)?.into(),
            id: id.map(str::to_string),
            meta: meta.map(str::to_string),
        },
    };
    build_document(source, fields)
}

/// A record split into the parts a document is made of.
struct Fields<'a> {
    text: std::borrow::Cow<'a, str>,
    id: Option<String>,
    meta: Option<String>,
}

fn build_document(source: &str, fields: Fields<'_>) -> Result<Ingested, Rejection> {
    if fields.text.trim().is_empty() {
        return Err(Rejection::new(
            RejectReason::EmptyText,
            "the text is empty or only whitespace",
        ));
    }
    if fields.id.as_deref() == Some("") {
        return Err(Rejection::new(
            RejectReason::InvalidId,
            "the id is an empty string",
        ));
    }
    let (text, nfc_changed) = nfc(fields.text);
    let (id, id_origin) = match fields.id {
        Some(id) => (id, IdOrigin::Source),
        None => (content_id(&text), IdOrigin::Content),
    };
    Ok(Ingested {
        document: Document {
            id,
            text,
            source: source.to_string(),
            meta: fields.meta,
        },
        id_origin,
        nfc_changed,
    })
}

/// The id of a document whose source gives none: 128-bit xxh3 of its NFC text, in hex.
pub fn content_id(text: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn nfc(text: std::borrow::Cow<'_, str>) -> (String, bool) {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        return (text.into_owned(), false);
    }
    let normalised: String = text.nfc().collect();
    let changed = normalised != text;
    (normalised, changed)
}

fn utf8(bytes: &[u8]) -> Result<&str, Rejection> {
    std::str::from_utf8(bytes).map_err(|err| {
        Rejection::new(
            RejectReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", err.valid_up_to()),
        )
    })
}

fn text_from_cell<'a>(config: &IngestConfig, cell: TextCell<'a>) -> Result<&'a str, Rejection> {
    match cell {
        TextCell::Str(text) => Ok(text),
        TextCell::Bytes(bytes) => utf8(bytes),
        TextCell::Null => Err(Rejection::new(
            RejectReason::MissingText,
            format!("column `{}` is null", config.text_field),
        )),
        TextCell::OtherType(type_name) => Err(Rejection::new(
            RejectReason::NonStringText,
            format!(
                "column `{}` has type {type_name}, expected a string",
                config.text_field
            ),
        )),
    }
}

fn parse_json_line<'a>(config: &IngestConfig, line: &'a [u8]) -> Result<Fields<'a>, Rejection> {
    let line = utf8(line)?;
    let JsonObject {
        fields: mut object,
        duplicate,
    } = serde_json::from_str(line).map_err(|err| {
        if err.is_data() {
            Rejection::new(
                RejectReason::NotAnObject,
                format!(
                    "expected a JSON object, found {}",
                    json_kind(line.trim_start())
                ),
            )
        } else {
            Rejection::new(
                RejectReason::MalformedJson,
                format!("malformed JSON: {err}"),
            )
        }
    })?;
    if let Some(key) = duplicate {
        return Err(Rejection::new(
            RejectReason::DuplicateKey,
            format!("field `{key}` appears more than once"),
        ));
    }
    let text = match object.shift_remove(&config.text_field) {
        None => {
            return Err(Rejection::new(
                RejectReason::MissingText,
                format!("no field `{}`", config.text_field),
            ));
        }
        Some(raw) => json_string(raw).ok_or_else(|| {
            if raw.get().starts_with('"') {
                return Rejection::new(
                    RejectReason::InvalidUtf8,
                    format!(
                        "field `{}` holds an escaped lone surrogate (such as \\ud800), which \
                         is no Unicode character",
                        config.text_field
                    ),
                );
            }
            let reason = if raw.get() == "null" {
                RejectReason::MissingText
            } else {
                RejectReason::NonStringText
            };
            Rejection::new(
                reason,
                format!(
                    "field `{}` is {}, expected a string",
                    config.text_field,
                    json_kind(raw.get())
                ),
            )
        })?,
    };
    let id = match object.shift_remove(&config.id_field) {
        Some(raw) if raw.get() != "null" => Some(json_id(raw).ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidId,
                format!(
                    "field `{}` is {}, expected a string or an integer",
                    config.id_field,
                    json_kind(raw.get())
                ),
            )
        })?),
        _ => None,
    };
    let meta = (!object.is_empty())
        .then(|| serde_json::to_string(&object).expect("raw JSON values serialise"));
    Ok(Fields {
        text: text.into(),
        id,
        meta,
    })
}

/// A JSON object's fields in order, and the first key that appeared twice.
struct JsonObject<'a> {
    fields: IndexMap<String, &'a RawValue>,
    duplicate: Option<String>,
}

impl<'de> serde::Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut object = JsonObject {
                    fields: IndexMap::new(),
                    duplicate: None,
                };
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    match object.fields.entry(key) {
                        indexmap::map::Entry::Occupied(mut field) => {
                            object.duplicate.get_or_insert_with(|| field.key().clone());
                            field.insert(value);
                        }
                        indexmap::map::Entry::Vacant(field) => {
                            field.insert(value);
                        }
                    }
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The string a raw JSON value holds, unescaped; `None` when it is not a string.
fn json_string(raw: &RawValue) -> Option<String> {
    raw.get()
        .starts_with('"')
        .then(|| serde_json::from_str(raw.get()).ok())
        .flatten()
}

/// A JSON id: a string as is, an integer as its decimal digits.
fn json_id(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    let is_integer = {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if is_integer {
        Some(text.to_string())
    } else {
        json_string(raw)
    }
}

fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "not JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IngestConfig {
        IngestConfig::default()
    }

    fn json(line: &str) -> Result<Ingested, Rejection> {
        ingest_record(&config(), "wiki", &RawRecord::JsonLine(line.as_bytes()))
    }

    fn reason(line: &[u8]) -> RejectReason {
        ingest_record(&config(), "wiki", &RawRecord::JsonLine(line))
            .unwrap_err()
            .reason
    }

    #[test]
    fn a_json_record_keeps_its_id_and_the_rest_goes_to_meta_in_order() {
        let doc = json(r#"{"title":"Algebra","id":"wikipedia/en/Algebra","text":"Algebra is…","topic":"Mathematics"}"#)
            .unwrap();
        assert_eq!(doc.document.id, "wikipedia/en/Algebra");
        assert_eq!(doc.id_origin, IdOrigin::Source);
        assert_eq!(doc.document.text, "Algebra is…");
        assert_eq!(doc.document.source, "wiki");
        assert_eq!(
            doc.document.meta.as_deref(),
            Some(r#"{"title":"Algebra","topic":"Mathematics"}"#)
        );
    }

    /// Regression: a field named twice was silently last-wins, and a lone surrogate in
    /// the text was reported as "is a string, expected a string".
    #[test]
    fn duplicate_keys_and_lone_surrogates_are_rejected_by_name() {
        let twice = json(r#"{"text":"first","id":"a","text":"second"}"#).unwrap_err();
        assert_eq!(twice.reason, RejectReason::DuplicateKey);
        assert_eq!(twice.detail, "field `text` appears more than once");
        let surrogate = json(r#"{"text":"broken \ud800 here"}"#).unwrap_err();
        assert_eq!(surrogate.reason, RejectReason::InvalidUtf8);
        assert!(
            surrogate.detail.contains("lone surrogate"),
            "{}",
            surrogate.detail
        );
        assert_eq!(reason(b"[1, 2]"), RejectReason::NotAnObject);
        assert_eq!(
            json(r#"{"text":"pair \ud83d\ude00 ok"}"#)
                .unwrap()
                .document
                .text,
            "pair \u{1F600} ok"
        );
    }

    #[test]
    fn integer_ids_become_their_digits_and_missing_ids_a_content_hash() {
        assert_eq!(json(r#"{"id":-42,"text":"x"}"#).unwrap().document.id, "-42");
        let hashed = json(r#"{"text":"x"}"#).unwrap();
        assert_eq!(hashed.id_origin, IdOrigin::Content);
        assert_eq!(hashed.document.id, content_id("x"));
        assert_eq!(hashed.document.id.len(), 32);
        assert_eq!(
            json(r#"{"id":null,"text":"x"}"#).unwrap().document.id,
            content_id("x")
        );
        assert_eq!(hashed.document.meta, None);
    }

    #[test]
    fn the_content_id_is_the_hash_of_the_normalised_text() {
        let decomposed = json("{\"text\":\"e\u{301}t\u{e9}\"}").unwrap();
        let composed = json("{\"text\":\"\u{e9}t\u{e9}\"}").unwrap();
        assert!(decomposed.nfc_changed && !composed.nfc_changed);
        assert_eq!(decomposed.document.text, "\u{e9}t\u{e9}");
        assert_eq!(decomposed.document.id, composed.document.id);
    }

    #[test]
    fn each_bad_record_gets_its_own_reason() {
        assert_eq!(
            reason(br#"{"text": "unterminated"#),
            RejectReason::MalformedJson
        );
        assert_eq!(reason(br#"["text"]"#), RejectReason::NotAnObject);
        assert_eq!(reason(br#"{"body":"x"}"#), RejectReason::MissingText);
        assert_eq!(reason(br#"{"text":null}"#), RejectReason::MissingText);
        assert_eq!(reason(br#"{"text":17}"#), RejectReason::NonStringText);
        assert_eq!(reason(b"{\"text\":\"caf\xe9\"}"), RejectReason::InvalidUtf8);
        assert_eq!(reason(br#"{"text":" \n\t"}"#), RejectReason::EmptyText);
        assert_eq!(reason(br#"{"id":1.5,"text":"x"}"#), RejectReason::InvalidId);
        assert_eq!(reason(br#"{"id":"","text":"x"}"#), RejectReason::InvalidId);
    }

    #[test]
    fn rejection_details_say_what_was_found() {
        let err = json(r#"{"text":[1,2]}"#).unwrap_err();
        assert_eq!(err.detail, "field `text` is an array, expected a string");
        let err = ingest_record(&config(), "w", &RawRecord::JsonLine(b"ab\xffc")).unwrap_err();
        assert_eq!(err.detail, "invalid UTF-8 at byte 2");
    }

    #[test]
    fn configured_field_names_are_used() {
        let config = IngestConfig {
            text_field: "content".into(),
            id_field: "doc_id".into(),
            ..IngestConfig::default()
        };
        let record = RawRecord::JsonLine(br#"{"doc_id":"a","content":"hello","text":"ignored"}"#);
        let doc = ingest_record(&config, "w", &record).unwrap().document;
        assert_eq!((doc.id.as_str(), doc.text.as_str()), ("a", "hello"));
        assert_eq!(doc.meta.as_deref(), Some(r#"{"text":"ignored"}"#));
    }

    #[test]
    fn columnar_cells_are_checked() {
        let columns = |text| RawRecord::Columns {
            text,
            id: None,
            meta: None,
        };
        let config = config();
        let ok = ingest_record(&config, "w", &columns(TextCell::Bytes(b"ok"))).unwrap();
        assert_eq!(ok.document.text, "ok");
        let err = |text| {
            ingest_record(&config, "w", &columns(text))
                .unwrap_err()
                .reason
        };
        assert_eq!(err(TextCell::Bytes(b"\xc3")), RejectReason::InvalidUtf8);
        assert_eq!(err(TextCell::Null), RejectReason::MissingText);
        assert_eq!(
            err(TextCell::OtherType("Int64")),
            RejectReason::NonStringText
        );
    }

    #[test]
    fn a_batch_keeps_input_order_and_counts_everything() {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                if i % 7 == 0 {
                    "{broken".to_string()
                } else {
                    format!(r#"{{"id":"d{i}","text":"document {i}"}}"#)
                }
            })
            .collect();
        let records: Vec<RawRecord> = lines
            .iter()
            .map(|l| RawRecord::JsonLine(l.as_bytes()))
            .collect();
        let batch = ingest_batch(&config(), "w", &records);
        let ids: Vec<String> = (0..200)
            .filter(|i| i % 7 != 0)
            .map(|i| format!("d{i}"))
            .collect();
        assert_eq!(
            batch
                .documents
                .iter()
                .map(|d| d.id.clone())
                .collect::<Vec<_>>(),
            ids
        );
        let rejected: Vec<usize> = batch.rejects.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            rejected,
            (0..200).filter(|i| i % 7 == 0).collect::<Vec<_>>()
        );
        assert_eq!(batch.counters.records, 200);
        assert_eq!(batch.counters.rejected, 29);
        assert_eq!(batch.counters.documents + batch.counters.rejected, 200);
        assert_eq!(batch.counters.ids_from_source, batch.counters.documents);
    }
}
