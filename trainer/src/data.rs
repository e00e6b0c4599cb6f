//! Streaming `triples` shards into the trainer in a seeded order, never holding more
//! than one record batch and the shuffle buffer.
//!
//! Each epoch visits the shards in an order drawn from the seed and the epoch number;
//! rows go through the filter (difficulty labels, minimum segment entropy) into a
//! bounded shuffle buffer, and each draw takes a random row out of it. The whole state
//! — epoch, shard position, next row, the generator's state and the buffered rows — is
//! a [`Cursor`] that checkpoints store, so a resumed run draws exactly the rows the
//! uninterrupted run would have.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use rlpt_engine::inputs::RowRange;
use rlpt_engine::shard_reader::TableReader;
use rlpt_rng::SplitMix64;
pub use rlpt_schemas::triples::Triple;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// Rows read from a shard at once.
const BATCH_ROWS: usize = 256;

/// Which documents a stream reads, given `data.holdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Documents not held out (training).
    Train,
    /// Only the held-out documents.
    Heldout,
    /// Every document.
    All,
}

impl Split {
    /// Whether a triple of document `doc_id` belongs to this split when `holdout` of
    /// the documents (by a hash of their id) are held out.
    pub fn contains(self, doc_id: &str, holdout: f64) -> bool {
        let held = xxh3_64(doc_id.as_bytes()) % 1_000_000 < (holdout * 1e6) as u64;
        match self {
            Self::Train => !held,
            Self::Heldout => held,
            Self::All => true,
        }
    }
}

/// Where a stream stands: enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Passes completed over the data.
    pub epoch: u64,
    /// Position of the shard being read in this epoch's order.
    pub shard: usize,
    /// Rows of that shard already read.
    pub row: u64,
    /// The shuffle generator's state.
    pub rng: u64,
    /// Rows read but not yet drawn.
    pub buffer: Vec<Triple>,
    /// Whether the last epoch allowed has been read to its end.
    pub exhausted: bool,
    /// Rows that passed the filter since this epoch began (none by its end: the
    /// filter keeps nothing).
    pub accepted: u64,
}

impl Cursor {
    /// The start of a stream seeded with `seed`.
    pub fn start(seed: u64) -> Self {
        Self {
            epoch: 0,
            shard: 0,
            row: 0,
            rng: seed ^ 0x5EED_DA7A,
            buffer: Vec::new(),
            exhausted: false,
            accepted: 0,
        }
    }
}

/// Triples from a list of shards, filtered and shuffled as configured.
pub struct TripleStream {
    files: Vec<PathBuf>,
    config: DataConfig,
    split: Split,
    seed: u64,
    cursor: Cursor,
    rng: SplitMix64,
    reader: Option<Open>,
}

/// The shard being read.
struct Open {
    path: PathBuf,
    reader: TableReader,
    batch: Option<RecordBatch>,
    at: usize,
}

impl TripleStream {
    /// A stream of the `split` of `files` (sorted by the caller) from `cursor` (or the
    /// start).
    pub fn new(
        files: Vec<PathBuf>,
        config: DataConfig,
        split: Split,
        seed: u64,
        cursor: Option<Cursor>,
    ) -> Result<Self> {
        if files.is_empty() {
            return Err(Error::Config("no triples shards to train on".into()));
        }
        let cursor = cursor.unwrap_or_else(|| Cursor::start(seed));
        Ok(Self {
            rng: SplitMix64::new(cursor.rng),
            files,
            config,
            split,
            seed,
            cursor,
            reader: None,
        })
    }

    /// Where the stream stands now.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            rng: self.rng.state(),
            ..self.cursor.clone()
        }
    }

    /// The next triple; none once the configured epochs are used up.
    pub fn next_triple(&mut self) -> Result<Option<Triple>> {
        let capacity = self.config.shuffle_buffer.max(1);
        while self.cursor.buffer.len() < capacity && !self.cursor.exhausted {
            match self.read_row()? {
                Some(triple) => self.cursor.buffer.push(triple),
                None => break,
            }
        }
        if self.cursor.buffer.is_empty() {
            return Ok(None);
        }
        let pick = (self.rng.next_u64() % self.cursor.buffer.len() as u64) as usize;
        Ok(Some(self.cursor.buffer.swap_remove(pick)))
    }

    /// The next row that passes the filter, moving across shards and epochs.
    fn read_row(&mut self) -> Result<Option<Triple>> {
        loop {
            if self.cursor.shard >= self.files.len() {
                if self.cursor.accepted == 0 {
                    return Err(Error::Config(format!(
                        "no triple in the {} input shard(s) passes the data filter \
                         ({:?} split of holdout {}, difficulties {:?}, min_entropy {:?})",
                        self.files.len(),
                        self.split,
                        self.config.holdout,
                        self.config.difficulties,
                        self.config.min_entropy
                    )));
                }
                self.cursor.epoch += 1;
                self.cursor.shard = 0;
                self.cursor.row = 0;
                self.cursor.accepted = 0;
                if self.config.epochs.is_some_and(|e| self.cursor.epoch >= e) {
                    self.cursor.exhausted = true;
                    return Ok(None);
                }
            }
            if self.reader.is_none() {
                self.reader = Some(self.open_shard()?);
            }
            let open = self.reader.as_mut().expect("opened above");
            match next_row(open)? {
                Some((batch, index)) => {
                    let row = self.cursor.row;
                    self.cursor.row += 1;
                    let triple =
                        Triple::from_row(&batch, index).map_err(|problem| Error::Data {
                            path: open.path.clone(),
                            row: Some(row),
                            problem,
                        })?;
                    if self.keeps(&triple) {
                        self.cursor.accepted += 1;
                        return Ok(Some(triple));
                    }
                }
                None => {
                    self.reader = None;
                    self.cursor.shard += 1;
                    self.cursor.row = 0;
                }
            }
        }
    }

    fn keeps(&self, triple: &Triple) -> bool {
        let split_ok = self.split.contains(&triple.doc_id, self.config.holdout);
        let label_ok = self.config.difficulties.is_empty()
            || triple
                .difficulty
                .as_ref()
                .is_some_and(|d| self.config.difficulties.contains(d));
        let entropy_ok = self
            .config
            .min_entropy
            .is_none_or(|min| triple.seg_entropy_mean.is_some_and(|e| e >= min));
        split_ok && label_ok && entropy_ok
    }

    /// Opens the current shard of this epoch's order at the cursor's row.
    fn open_shard(&self) -> Result<Open> {
        let order = shard_order(self.files.len(), self.seed, self.cursor.epoch);
        let path = self.files[order[self.cursor.shard]].clone();
        let from_cursor = RowRange {
            start: self.cursor.row,
            end: u64::MAX,
        };
        let reader = TableReader::open_rows(
            &path,
            rlpt_schemas::triples::spec(),
            Some(from_cursor),
            BATCH_ROWS,
        )?;
        Ok(Open {
            path,
            reader,
            batch: None,
            at: 0,
        })
    }
}

/// The shards' order in `epoch`: a Fisher–Yates shuffle seeded by the seed and epoch.
fn shard_order(count: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng = SplitMix64::new(seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F));
    for i in (1..count).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The next (batch, row) of an open shard.
fn next_row(open: &mut Open) -> Result<Option<(RecordBatch, usize)>> {
    loop {
        if let Some(batch) = &open.batch
            && open.at < batch.num_rows()
        {
            open.at += 1;
            return Ok(Some((batch.clone(), open.at - 1)));
        }
        match open.reader.next() {
            Some(Ok(batch)) => {
                open.batch = Some(batch);
                open.at = 0;
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(None),
        }
    }
}

/// Which triples are read, and in what order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Rows held back and drawn from at random (1: shard order as written).
    pub shuffle_buffer: usize,
    /// Keep only triples with one of these `difficulty` labels (empty: all).
    pub difficulties: Vec<String>,
    /// Keep only triples whose `seg_entropy_mean` is at least this.
    pub min_entropy: Option<f32>,
    /// Passes over the data; none: as many as the steps need.
    pub epochs: Option<u64>,
    /// A token whose entropy reaches this is "hard": where `next-token` prompts stop.
    pub hard_token_entropy: f32,
    /// Share of documents held out of training (chosen by a hash of their id) for
    /// `rlpt eval --split heldout`.
    pub holdout: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            shuffle_buffer: 256,
            difficulties: Vec::new(),
            min_entropy: None,
            epochs: None,
            hard_token_entropy: 1.5,
            holdout: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_splits_documents_by_their_id() {
        let docs: Vec<String> = (0..10_000)
            .map(|i| format!("wikipedia/en/doc-{i}"))
            .collect();
        let held = docs
            .iter()
            .filter(|d| Split::Heldout.contains(d, 0.1))
            .count();
        assert!((900..1100).contains(&held), "{held} of 10000 held out");
        for doc in &docs {
            assert_ne!(
                Split::Train.contains(doc, 0.1),
                Split::Heldout.contains(doc, 0.1)
            );
            assert!(Split::Train.contains(doc, 0.0) && Split::All.contains(doc, 0.1));
        }
    }

    #[test]
    fn shard_order_is_a_seeded_permutation_per_epoch() {
        let first = shard_order(10, 3, 0);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(first, shard_order(10, 3, 0));
        assert_ne!(first, shard_order(10, 3, 1));
    }
}
