//! `rlpt dedup`: exact and near-duplicate removal in four steps, each a [`ShardJob`]
//! with its own output directory, so each resumes and splits across ranks on its own:
//!
//! ```text
//! OUT/                       documents without duplicates          ← filter (per input unit)
//! OUT/dedup_clusters/        every cluster member, kept or not     ← clusters (one task)
//! OUT/dedup_clusters/_removed/  keys of removed documents, sorted  ← clusters
//! OUT/_dedup/signatures/     key, id, exact hash, signature, bands ← signatures (per input unit)
//! OUT/_dedup/pairs/          candidate pairs, one unit per band    ← buckets (per band)
//! ```
//!
//! `rlpt dedup` runs the four in order in one process; `rlpt dedup signatures|buckets|
//! clusters|filter` runs one, for a scheduler to chain (the clusters step is one task).
//! A step refuses to start on an earlier step's incomplete output.
//!
//! [`ShardJob`]: rlpt_engine::executor::ShardJob

mod buckets;
mod clusters;
mod filter;
mod signatures;

use std::path::{Path, PathBuf};

use rlpt_engine::executor::{Sharding, StageRun};
use rlpt_engine::layout::Layout;
use rlpt_engine::progress::ProgressMode;
use rlpt_engine::summary::StageSummary;
use rlpt_stages::dedup::DedupConfig;
use rlpt_stages::dedup::lsh::Banding;

use crate::error::{Error, Result};

/// The directory of removed keys inside `dedup_clusters/`.
pub const REMOVED_DIR: &str = "_removed";

/// Default memory for sorting one band's entries before spilling to disk.
pub const DEFAULT_SORT_MEMORY: u64 = 1 << 30;

/// Where each step writes, under the output directory.
#[derive(Debug, Clone)]
pub struct DedupDirs {
    output: PathBuf,
}

impl DedupDirs {
    /// The directories of a dedup whose documents go to `output`.
    pub fn new(output: &Path) -> Self {
        Self {
            output: output.to_path_buf(),
        }
    }

    /// The deduplicated documents.
    pub fn documents(&self) -> PathBuf {
        self.output.clone()
    }

    /// The signatures step's output.
    pub fn signatures(&self) -> PathBuf {
        self.output.join("_dedup").join("signatures")
    }

    /// The buckets step's output.
    pub fn pairs(&self) -> PathBuf {
        self.output.join("_dedup").join("pairs")
    }

    /// The clusters step's output.
    pub fn clusters(&self) -> PathBuf {
        self.output.join("dedup_clusters")
    }

    /// The removed keys, written by the clusters step.
    pub fn removed(&self) -> PathBuf {
        self.clusters().join(REMOVED_DIR)
    }
}

/// Settings every step shares.
#[derive(Debug, Clone)]
pub struct DedupRun {
    /// The algorithm's settings.
    pub config: DedupConfig,
    /// Unit and shard sizes.
    pub layout: Layout,
    /// Memory for one band's sort before it spills to disk.
    pub sort_memory: u64,
    /// This process's share.
    pub sharding: Sharding,
    /// Recompute finished work.
    pub force: bool,
    /// How to show progress.
    pub progress: ProgressMode,
}

impl DedupRun {
    fn stage_run(&self, output: PathBuf) -> StageRun {
        StageRun {
            output,
            layout: self.layout,
            sharding: self.sharding,
            force: self.force,
            strict: false,
            progress: self.progress,
        }
    }

    fn banding(&self) -> Result<Banding> {
        self.config.banding().map_err(Error::Usage)
    }

    /// Runs the four steps in order (one process: every unit of every step).
    pub fn all(&self, input: &str, dirs: &DedupDirs) -> Result<Vec<StageSummary>> {
        if self.sharding.world_size > 1 {
            return Err(Error::Usage(
                "`rlpt dedup` runs every step in one process; to split the work across \
                 processes run `rlpt dedup signatures|buckets|clusters|filter` in turn"
                    .into(),
            ));
        }
        Ok(vec![
            self.signatures(input, dirs)?,
            self.buckets(dirs)?,
            self.clusters(dirs)?,
            self.filter(input, dirs)?,
        ])
    }

    /// Step 1: signatures of this rank's input units.
    pub fn signatures(&self, input: &str, dirs: &DedupDirs) -> Result<StageSummary> {
        signatures::run(self, input, dirs)
    }

    /// Step 2: candidate pairs of this rank's bands.
    pub fn buckets(&self, dirs: &DedupDirs) -> Result<StageSummary> {
        buckets::run(self, dirs)
    }

    /// Step 3: clusters, in one task.
    pub fn clusters(&self, dirs: &DedupDirs) -> Result<StageSummary> {
        clusters::run(self, dirs)
    }

    /// Step 4: this rank's input units without their removed documents.
    pub fn filter(&self, input: &str, dirs: &DedupDirs) -> Result<StageSummary> {
        filter::run(self, input, dirs)
    }
}
