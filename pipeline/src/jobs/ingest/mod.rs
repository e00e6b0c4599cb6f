//! The IO side of `rlpt ingest`: which files are input and in what format, reading them
//! (transparently decompressing `.gz`/`.zst`) in bounded batches of raw records, and
//! handing those to the pure [`rlpt_stages::ingest`] transform. Formats: JSONL, plain
//! text (a document per file or per blank-line-separated paragraph), Parquet.
//!
//! A read error in the middle of a file (a truncated gzip, say) does not lose what came
//! before it: the records read so far are kept and the rest of the file becomes one
//! `unreadable` reject naming the line where reading stopped; a Parquet file that
//! cannot be opened (no footer: truncated, or not Parquet at all) or whose pages stop
//! decoding is rejected the same way, from its first unread row.

use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow_array::Array;
use rlpt_schemas::{Reject, documents};
use rlpt_stages::ingest::{
    IngestConfig, IngestCounters, RawRecord, RejectReason, TextMode, ingest_batch,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod lines;
mod parquet_input;

use lines::{Line, LineReader, open_decoded};
use parquet_input::{ParquetColumns, text_cell};
use rlpt_engine::Error as EngineError;
use rlpt_engine::inputs::{self, InputFile, WorkUnit};
use rlpt_engine::layout::Layout;
use rlpt_engine::progress::RowsToBytes;
use rlpt_engine::shard_reader::ParquetBatches;
use rlpt_engine::summary::StageSummary;

use crate::error::Result;
use rlpt_engine::executor::{
    OutputTable, ShardJob, StageRun, UnitCounts, UnitSink, counter_map, run_stage,
};

/// A batch of raw records holds at most this many bytes…
const BATCH_BYTES: usize = 8 << 20;
/// …and this many records.
const BATCH_RECORDS: usize = 8192;
/// Rows per batch when reading Parquet input.
const PARQUET_BATCH_ROWS: usize = 2048;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Input formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// From each file's extension: .jsonl/.json/.ndjson, .txt/.text/.md/.tex, .parquet
    /// (before an optional .gz/.zst).
    #[default]
    Auto,
    /// One JSON object per line.
    Jsonl,
    /// Plain UTF-8 text.
    Text,
    /// Parquet with a text column.
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A file's compression and format from its extensions (`x.jsonl.gz`).
fn detect(path: &Path) -> (Compression, Option<InputFormat>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase());
    let name = name.as_deref().unwrap_or("");
    let (compression, rest) = if let Some(rest) = name.strip_suffix(".gz") {
        (Compression::Gzip, rest)
    } else if let Some(rest) = name
        .strip_suffix(".zst")
        .or_else(|| name.strip_suffix(".zstd"))
    {
        (Compression::Zstd, rest)
    } else {
        (Compression::None, name)
    };
    let format = match rest.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jsonl" | "json" | "ndjson") => Some(InputFormat::Jsonl),
        Some("txt" | "text" | "md" | "rst" | "tex") => Some(InputFormat::Text),
        Some("parquet") => Some(InputFormat::Parquet),
        _ => None,
    };
    (compression, format)
}

/// The name of a file without its format and compression extensions.
fn stem(file: &InputFile) -> String {
    let name = file
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let lower = name.to_ascii_lowercase();
    let mut end = name.len();
    for ext in [".gz", ".zst", ".zstd"] {
        if lower[..end].ends_with(ext) {
            end -= ext.len();
            break;
        }
    }
    if detect(&file.path).1.is_some() {
        end = lower[..end].rfind('.').unwrap_or(end);
    }
    name[..end].to_string()
}

/// Expands every `--input` (in the order given, each one's files sorted) and plans the
/// work units, leaving out anything under `output` (rlpt's own shards, when the output
/// directory is inside an input one). A file two inputs name is refused.
pub fn plan<S: AsRef<str>>(
    inputs: &[S],
    format: InputFormat,
    layout: &Layout,
    output: &Path,
) -> Result<Vec<WorkUnit>> {
    let mut files: Vec<InputFile> = Vec::new();
    // Which input first named each file (a link inside one input may name a file twice,
    // as a directory of licences does; two inputs naming one file is a mistake).
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    for (index, input) in inputs.iter().enumerate() {
        let input = input.as_ref();
        for file in readable_files(input, format, output)? {
            let key = file
                .path
                .canonicalize()
                .unwrap_or_else(|_| file.path.clone());
            let first = *seen.entry(key).or_insert(index);
            if first != index {
                return Err(EngineError::Input {
                    spec: input.to_string(),
                    problem: format!(
                        "{} is also named by --input {}; give each file once",
                        file.display(),
                        inputs[first].as_ref()
                    ),
                }
                .into());
            }
            files.push(file);
        }
    }
    Ok(inputs::plan_units(files, layout.unit_bytes))
}

/// The files of one `--input` ingest reads. With `--format auto`, a directory or glob
/// keeps the files whose extension names a format (logging what it skips), and a
/// single file must have such an extension.
fn readable_files(input: &str, format: InputFormat, output: &Path) -> Result<Vec<InputFile>> {
    let explicit_file = Path::new(input).is_file();
    let files = inputs::expand(input, inputs::outside(output))?;
    let mut kept = Vec::with_capacity(files.len());
    let mut skipped = Vec::new();
    for file in files {
        let (compression, detected) = detect(&file.path);
        let resolved = if format == InputFormat::Auto {
            detected
        } else {
            Some(format)
        };
        match resolved {
            Some(InputFormat::Parquet) if compression != Compression::None => {
                return Err(EngineError::Input {
                    spec: input.to_string(),
                    problem: format!(
                        "{}: Parquet files cannot be read through .gz/.zst",
                        file.display()
                    ),
                }
                .into());
            }
            Some(_) => kept.push(file),
            None if explicit_file => {
                return Err(EngineError::Input {
                    spec: input.to_string(),
                    problem: "cannot tell the format from the extension; pass --format jsonl|text|parquet"
                        .into(),
                }.into());
            }
            None => skipped.push(file.rel),
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            count = skipped.len(),
            first = %skipped[0],
            "skipping input files whose extension names no format (pass --format to read them)"
        );
    }
    if kept.is_empty() {
        return Err(EngineError::Input {
            spec: input.to_string(),
            problem: "no file has a known format (.jsonl, .txt, .parquet…); pass --format".into(),
        }
        .into());
    }
    Ok(kept)
}

/// The ingest stage as the executor runs it: how to read, and the stage's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestJob {
    /// Input format.
    pub format: InputFormat,
    /// The stage's own settings.
    #[serde(flatten)]
    pub stage: IngestConfig,
}

impl ShardJob for IngestJob {
    type Error = crate::Error;

    fn stage(&self) -> &'static str {
        "ingest"
    }

    fn output_tables(&self) -> Vec<OutputTable> {
        vec![OutputTable::main(documents::spec())]
    }

    fn config(&self) -> Value {
        serde_json::to_value(self).expect("ingest settings serialise")
    }

    fn run_unit(&self, unit: &WorkUnit, sink: &mut UnitSink<'_>) -> Result<UnitCounts> {
        let mut tally = Tally::default();
        for file in &unit.files {
            let mut reader = FileIngest {
                config: &self.stage,
                file,
                source: self.stage.source.clone().unwrap_or_else(|| stem(file)),
                sink: &mut *sink,
                tally: &mut tally,
            };
            match self.format_of(file) {
                InputFormat::Parquet => reader.parquet()?,
                InputFormat::Text if self.stage.text_mode == TextMode::Paragraph => {
                    reader.lines(LineRecords::Paragraphs)?
                }
                InputFormat::Text => reader.whole_file()?,
                InputFormat::Jsonl | InputFormat::Auto => reader.lines(LineRecords::JsonLines)?,
            }
        }
        let mut counters = counter_map(&tally.counters);
        counters.insert("blank_lines".into(), tally.blank_lines);
        Ok(UnitCounts {
            rows_in: tally.counters.records,
            counters,
        })
    }
}

impl IngestJob {
    /// Plans `inputs` into work units and runs this rank's share.
    pub fn run<S: AsRef<str>>(&self, inputs: &[S], run: &StageRun) -> Result<StageSummary> {
        let units = plan(inputs, self.format, &run.layout, &run.output)?;
        run_stage(self, &units, run)
    }

    fn format_of(&self, file: &InputFile) -> InputFormat {
        match self.format {
            InputFormat::Auto => detect(&file.path).1.unwrap_or(InputFormat::Jsonl),
            format => format,
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    counters: IngestCounters,
    blank_lines: u64,
}

/// Reads one input file and feeds it through the stage.
struct FileIngest<'a, 's> {
    config: &'a IngestConfig,
    file: &'a InputFile,
    source: String,
    sink: &'a mut UnitSink<'s>,
    tally: &'a mut Tally,
}

/// Raw records of one batch: their bytes in one buffer, each with its line.
#[derive(Default)]
struct RecordBuffer {
    bytes: Vec<u8>,
    records: Vec<(u64, Range<usize>)>,
    /// Lines skipped for being over `--max-record-bytes`: (line, bytes).
    too_long: Vec<(u64, u64)>,
}

impl RecordBuffer {
    fn is_full(&self) -> bool {
        self.bytes.len() >= BATCH_BYTES || self.records.len() >= BATCH_RECORDS
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        self.too_long.clear();
    }

    fn line_numbers(&self) -> Vec<u64> {
        self.records.iter().map(|(line, _)| *line).collect()
    }
}

impl FileIngest<'_, '_> {
    /// Reads a line-based file in batches: JSON lines, or blank-line-separated
    /// paragraphs (joined with `\n`, with their path and first line as `meta`).
    fn lines(&mut self, kind: LineRecords) -> Result<()> {
        let mut lines = LineReader::open(&self.file.path, self.config.max_record_bytes)?;
        let mut buffer = RecordBuffer::default();
        loop {
            let end = match kind {
                LineRecords::JsonLines => {
                    fill_json_lines(&mut lines, &mut buffer, &mut self.tally.blank_lines)
                }
                LineRecords::Paragraphs => fill_paragraphs(&mut lines, &mut buffer),
            };
            let metas: Vec<String> = match kind {
                LineRecords::JsonLines => Vec::new(),
                LineRecords::Paragraphs => buffer
                    .records
                    .iter()
                    .map(|(line, _)| {
                        serde_json::json!({ "path": self.file.rel, "line": line }).to_string()
                    })
                    .collect(),
            };
            let records: Vec<RawRecord> = buffer
                .records
                .iter()
                .enumerate()
                .map(|(index, (_, range))| {
                    let bytes = &buffer.bytes[range.clone()];
                    match kind {
                        LineRecords::JsonLines => RawRecord::JsonLine(bytes),
                        LineRecords::Paragraphs => RawRecord::Text {
                            bytes,
                            meta: Some(&metas[index]),
                        },
                    }
                })
                .collect();
            for &(line, bytes) in &buffer.too_long {
                self.too_long(line, bytes)?;
            }
            self.feed(&buffer.line_numbers(), &records, lines.take_consumed())?;
            buffer.clear();
            match end {
                BatchEnd::Full => {}
                BatchEnd::Eof => return Ok(()),
                BatchEnd::Failed(err) => return self.unreadable(lines.line + 1, &err),
            }
        }
    }

    fn whole_file(&mut self) -> Result<()> {
        let mut decoded = open_decoded(&self.file.path)?;
        let mut bytes = Vec::new();
        let limit = self.config.max_record_bytes;
        if let Err(err) = (&mut decoded.reader)
            .take(limit + 1)
            .read_to_end(&mut bytes)
        {
            return self.unreadable(1, &err);
        }
        if bytes.len() as u64 > limit {
            return self.too_long(1, self.file.bytes.max(limit + 1));
        }
        let text = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
        let meta = serde_json::json!({ "path": self.file.rel }).to_string();
        let record = RawRecord::Text {
            bytes: text,
            meta: Some(&meta),
        };
        self.feed(&[1], &[record], decoded.consumed.get())
    }

    fn parquet(&mut self) -> Result<()> {
        let batches = match ParquetBatches::open(&self.file.path, PARQUET_BATCH_ROWS) {
            Ok(batches) => batches,
            Err(err) => return self.unreadable(1, &err),
        };
        let columns = ParquetColumns::locate(self.config, &self.file.path, batches.schema())?;
        let mut progress = RowsToBytes::new(self.file.bytes, batches.total_rows());
        let mut rows_done = 0u64;
        for batch in batches {
            let batch = match batch {
                Ok(batch) => batch,
                Err(err) => return self.unreadable(rows_done + 1, &err),
            };
            let ids = columns.ids(&batch, &self.file.path)?;
            let metas = columns.metas(&batch, &self.file.path)?;
            let text = columns.text(&batch, &self.file.path)?;
            let records: Vec<RawRecord> = (0..batch.num_rows())
                .map(|row| RawRecord::Columns {
                    text: text_cell(text.as_ref(), row),
                    id: ids
                        .as_ref()
                        .and_then(|ids| ids.is_valid(row).then(|| ids.value(row))),
                    meta: metas[row].as_deref(),
                })
                .collect();
            let lines: Vec<u64> = (1..=batch.num_rows() as u64)
                .map(|row| rows_done + row)
                .collect();
            rows_done += batch.num_rows() as u64;
            self.feed(
                &lines,
                &records,
                progress.rows_done(batch.num_rows() as u64),
            )?;
        }
        Ok(())
    }

    /// Runs the stage on a batch (`lines[i]` is the line of `records[i]`) and writes
    /// documents and rejects; `bytes` is the input consumed for it.
    fn feed(&mut self, lines: &[u64], records: &[RawRecord], bytes: u64) -> Result<()> {
        let out = ingest_batch(self.config, &self.source, records);
        self.tally.counters += out.counters;
        if !out.documents.is_empty() {
            self.sink.write(&documents::to_batch(&out.documents))?;
        }
        for (index, rejection) in out.rejects {
            self.sink.reject(Reject {
                file: self.file.display(),
                line: lines[index],
                reason: rejection.reason.as_str().to_string(),
                detail: rejection.detail,
                raw: raw_bytes(&records[index]),
            })?;
        }
        self.sink.advance(bytes, records.len() as u64);
        Ok(())
    }

    /// Rejects the record at `line`, of `bytes` bytes, as `too_long`.
    fn too_long(&mut self, line: u64, bytes: u64) -> Result<()> {
        let limit = self.config.max_record_bytes;
        let detail = format!("{bytes} bytes, over --max-record-bytes {limit}");
        self.reject_unread(line, RejectReason::TooLong, detail)
    }

    /// Rejects the rest of the file from `line` (a row for Parquet) as `unreadable`.
    fn unreadable(&mut self, line: u64, err: &dyn std::fmt::Display) -> Result<()> {
        let detail = format!("reading stopped here: {err}");
        self.reject_unread(line, RejectReason::Unreadable, detail)
    }

    /// Counts and rejects a record the stage never read into a batch (no raw bytes).
    fn reject_unread(&mut self, line: u64, reason: RejectReason, detail: String) -> Result<()> {
        self.tally.counters.records += 1;
        self.tally.counters.rejected += 1;
        Ok(self.sink.reject(Reject {
            file: self.file.display(),
            line,
            reason: reason.as_str().to_string(),
            detail,
            raw: None,
        })?)
    }
}

/// How a line-based file's lines become records.
#[derive(Debug, Clone, Copy)]
enum LineRecords {
    /// Each non-blank line is a JSON record.
    JsonLines,
    /// Each run of non-blank lines is a text record.
    Paragraphs,
}

/// Why a batch stopped filling.
enum BatchEnd {
    /// It is full; more input follows.
    Full,
    /// The input ended.
    Eof,
    /// Reading failed; the batch holds what came before.
    Failed(io::Error),
}

/// Fills `buffer` with non-blank lines, counting the blank ones.
fn fill_json_lines(
    lines: &mut LineReader,
    buffer: &mut RecordBuffer,
    blank_lines: &mut u64,
) -> BatchEnd {
    while !buffer.is_full() {
        let start = buffer.bytes.len();
        match lines.next_line(&mut buffer.bytes) {
            Ok(Line::End) => return BatchEnd::Eof,
            Ok(Line::TooLong(bytes)) => buffer.too_long.push((lines.line, bytes)),
            Ok(Line::Read) if is_blank(&buffer.bytes[start..]) => {
                buffer.bytes.truncate(start);
                *blank_lines += 1;
            }
            Ok(Line::Read) => buffer.records.push((lines.line, start..buffer.bytes.len())),
            Err(err) => return BatchEnd::Failed(err),
        }
    }
    BatchEnd::Full
}

/// Fills `buffer` with whole paragraphs (lines joined with `\n`); a batch only ends
/// between paragraphs.
fn fill_paragraphs(lines: &mut LineReader, buffer: &mut RecordBuffer) -> BatchEnd {
    let mut open: Option<(u64, usize)> = None;
    loop {
        let start = buffer.bytes.len();
        if open.is_some() {
            buffer.bytes.push(b'\n');
        }
        let end = match lines.next_line(&mut buffer.bytes) {
            Ok(Line::Read) if !is_blank(&buffer.bytes[start..]) => {
                open.get_or_insert((lines.line, start));
                continue;
            }
            Ok(Line::Read) => None,
            // A line too long to read ends its paragraph, as a blank line would.
            Ok(Line::TooLong(bytes)) => {
                buffer.too_long.push((lines.line, bytes));
                None
            }
            Ok(Line::End) => Some(BatchEnd::Eof),
            Err(err) => Some(BatchEnd::Failed(err)),
        };
        buffer.bytes.truncate(start);
        if let Some((line, first)) = open.take() {
            buffer.records.push((line, first..start));
        }
        match end {
            Some(end) => return end,
            None if buffer.is_full() => return BatchEnd::Full,
            None => {}
        }
    }
}

fn raw_bytes(record: &RawRecord) -> Option<Vec<u8>> {
    match *record {
        RawRecord::JsonLine(bytes) | RawRecord::Text { bytes, .. } => Some(bytes.to_vec()),
        RawRecord::Columns { .. } => None,
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> InputFile {
        InputFile {
            path: name.into(),
            rel: name.into(),
            bytes: 0,
            mtime_ns: 0,
            rows: None,
        }
    }

    #[test]
    fn formats_and_compression_come_from_extensions() {
        assert_eq!(
            detect(Path::new("a.JSONL.gz")),
            (Compression::Gzip, Some(InputFormat::Jsonl))
        );
        assert_eq!(
            detect(Path::new("b.txt.zst")),
            (Compression::Zstd, Some(InputFormat::Text))
        );
        assert_eq!(
            detect(Path::new("c.parquet")),
            (Compression::None, Some(InputFormat::Parquet))
        );
        assert_eq!(detect(Path::new("README")), (Compression::None, None));
    }

    #[test]
    fn the_default_source_is_the_file_name_without_extensions() {
        assert_eq!(stem(&file("dir/stem-en.jsonl.gz")), "stem-en");
        assert_eq!(stem(&file("wiki.v2.parquet")), "wiki.v2");
        assert_eq!(stem(&file("notes")), "notes");
    }
}
