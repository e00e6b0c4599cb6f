//! Sorting more `(u64, u64)` pairs than fit in memory: entries accumulate up to a
//! budget, each full buffer is sorted and spilled to a run file, and [`finish`]
//! merges the runs (k-way, with a heap) into one ascending stream. With no spill it
//! sorts in memory. The output is the same sorted sequence whatever the budget.
//!
//! [`finish`]: ExternalSorter::finish

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Bytes of one entry in memory and in a run file.
pub const ENTRY_BYTES: u64 = 16;

/// Sorts `(u64, u64)` entries within a memory budget, spilling to `dir`.
pub struct ExternalSorter {
    dir: PathBuf,
    capacity: usize,
    buffer: Vec<(u64, u64)>,
    runs: Vec<PathBuf>,
}

impl ExternalSorter {
    /// A sorter holding at most `memory_bytes` of entries, spilling into `dir` (created
    /// when needed, emptied first: leftovers of a crashed run are garbage).
    pub fn new(dir: &Path, memory_bytes: u64) -> Result<Self> {
        match fs::remove_dir_all(dir) {
            Err(err) if err.kind() != ErrorKind::NotFound => return Err(err).at(dir),
            _ => {}
        }
        let capacity = (memory_bytes / ENTRY_BYTES).max(1) as usize;
        Ok(Self {
            dir: dir.to_path_buf(),
            capacity,
            buffer: Vec::new(),
            runs: Vec::new(),
        })
    }

    /// Adds an entry.
    pub fn push(&mut self, entry: (u64, u64)) -> Result<()> {
        if self.buffer.len() == self.capacity {
            self.spill()?;
        }
        self.buffer.push(entry);
        Ok(())
    }

    /// Number of run files written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> Result<()> {
        self.buffer.sort_unstable();
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let path = self.dir.join(format!("run-{:05}.bin", self.runs.len()));
        let mut out = BufWriter::new(File::create(&path).at(&path)?);
        for (a, b) in self.buffer.drain(..) {
            out.write_all(&a.to_le_bytes()).at(&path)?;
            out.write_all(&b.to_le_bytes()).at(&path)?;
        }
        out.flush().at(&path)?;
        self.runs.push(path);
        Ok(())
    }

    /// Visits every entry in ascending order, then removes the run files.
    pub fn finish<E: From<Error>>(
        mut self,
        mut visit: impl FnMut((u64, u64)) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            return self.buffer.drain(..).try_for_each(visit);
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut readers = self
            .runs
            .iter()
            .map(|path| Ok(RunReader::new(File::open(path).at(path)?, path)))
            .collect::<Result<Vec<_>>>()?;
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (index, reader) in readers.iter_mut().enumerate() {
            if let Some(entry) = reader.next()? {
                heap.push(Reverse((entry, index)));
            }
        }
        while let Some(Reverse((entry, index))) = heap.pop() {
            visit(entry)?;
            if let Some(next) = readers[index].next()? {
                heap.push(Reverse((next, index)));
            }
        }
        Ok(fs::remove_dir_all(&self.dir).at(&self.dir)?)
    }
}

struct RunReader {
    input: BufReader<File>,
    path: PathBuf,
}

impl RunReader {
    fn new(file: File, path: &Path) -> Self {
        Self {
            input: BufReader::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
        }
    }

    fn next(&mut self) -> Result<Option<(u64, u64)>> {
        let mut bytes = [0u8; 16];
        match self.input.read_exact(&mut bytes) {
            Ok(()) => Ok(Some((
                u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
            ))),
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => Ok(None),
            Err(err) => Err(err).at(&self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_with(memory_bytes: u64, entries: &[(u64, u64)]) -> (Vec<(u64, u64)>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("sort");
        let mut sorter = ExternalSorter::new(&scratch, memory_bytes).unwrap();
        entries.iter().for_each(|&e| sorter.push(e).unwrap());
        let runs = sorter.runs();
        let mut out = Vec::new();
        sorter
            .finish(|entry| {
                out.push(entry);
                Ok::<_, Error>(())
            })
            .unwrap();
        assert!(!scratch.exists(), "run files are removed");
        (out, runs)
    }

    #[test]
    fn spilled_and_in_memory_sorts_agree() {
        let mut state = 1u64;
        let entries: Vec<(u64, u64)> = (0..10_000)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state % 97, i)
            })
            .collect();
        let (in_memory, no_runs) = sorted_with(1 << 30, &entries);
        let (spilled, runs) = sorted_with(16 * 700, &entries);
        assert_eq!(no_runs, 0);
        assert!(runs >= 14, "{runs} runs");
        let mut expected = entries.clone();
        expected.sort_unstable();
        assert_eq!(in_memory, expected);
        assert_eq!(spilled, expected);
    }
}
