//! Reading a line-based input file (JSONL or text) through its decompressor
//! (`.gz`, `.zst`), line by line without terminators, counting the bytes read from
//! disk for progress.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use rlpt_engine::IoContext;

use super::{Compression, UTF8_BOM, detect};
use crate::error::Result;

/// Counts compressed bytes read from disk, for progress.
pub(super) struct CountingReader {
    inner: File,
    count: Rc<Cell<u64>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A file read through its decompressor.
pub(super) struct Decoded {
    pub(super) reader: Box<dyn Read>,
    /// Bytes read from disk so far.
    pub(super) consumed: Rc<Cell<u64>>,
}

pub(super) fn open_decoded(path: &Path) -> Result<Decoded> {
    let consumed = Rc::new(Cell::new(0));
    let file = CountingReader {
        inner: File::open(path).at(path)?,
        count: Rc::clone(&consumed),
    };
    let reader: Box<dyn Read> = match detect(path).0 {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::Decoder::new(file).at(path)?),
    };
    Ok(Decoded { reader, consumed })
}

/// Reads lines (without terminators, `\r\n` or `\n`), skipping a leading BOM.
pub(super) struct LineReader {
    reader: BufReader<Box<dyn Read>>,
    consumed: Rc<Cell<u64>>,
    reported: u64,
    /// 1-based number of the last line read.
    pub(super) line: u64,
    /// Longer lines are skipped as [`Line::TooLong`].
    max_bytes: u64,
}

/// What [`LineReader::next_line`] found.
pub(super) enum Line {
    /// A line, appended to the buffer.
    Read,
    /// A line of this many bytes, over the limit: skipped, nothing appended.
    TooLong(u64),
    /// The end of the input.
    End,
}

impl LineReader {
    pub(super) fn open(path: &Path, max_bytes: u64) -> Result<Self> {
        let decoded = open_decoded(path)?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, decoded.reader),
            consumed: decoded.consumed,
            reported: 0,
            line: 0,
            max_bytes,
        })
    }

    /// Appends the next line to `out` — or, for a line longer than `max_bytes`, skips
    /// it, holding no more than `max_bytes` of it at any time.
    pub(super) fn next_line(&mut self, out: &mut Vec<u8>) -> io::Result<Line> {
        let start = out.len();
        let (mut seen, mut over, mut any) = (0u64, false, false);
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            any = true;
            let (chunk, ends) = match memchr::memchr(b'\n', available) {
                Some(newline) => (&available[..=newline], true),
                None => (available, false),
            };
            let taken = chunk.len();
            seen += taken as u64;
            // The line's own bytes, its `\r\n` aside.
            if !over && seen > self.max_bytes + 2 {
                over = true;
                out.truncate(start);
            }
            if !over {
                out.extend_from_slice(chunk);
            }
            self.reader.consume(taken);
            if ends {
                break;
            }
        }
        if !any {
            return Ok(Line::End);
        }
        self.line += 1;
        if out.last() == Some(&b'\n') {
            out.pop();
            if out.last() == Some(&b'\r') {
                out.pop();
            }
        }
        if self.line == 1 && out[start..].starts_with(UTF8_BOM) {
            out.drain(start..start + UTF8_BOM.len());
        }
        if over || (out.len() - start) as u64 > self.max_bytes {
            out.truncate(start);
            return Ok(Line::TooLong(seen));
        }
        Ok(Line::Read)
    }

    /// Bytes read from disk since the last call.
    pub(super) fn take_consumed(&mut self) -> u64 {
        let total = self.consumed.get();
        let delta = total - self.reported;
        self.reported = total;
        delta
    }
}
