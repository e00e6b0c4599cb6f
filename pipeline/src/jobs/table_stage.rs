//! The table stages (each reads a table and writes one): the one list of them, and
//! the one way from a stage's settings to its job.
//!
//! `table_stages!` below names every table stage once; the command line's
//! subcommands ([`TableStageCommand`], flattened into `cli::Command`) and the
//! `[[stage]]` entries of `pipeline.toml` ([`TableStageEntry`], one case of
//! `config::StageEntry`) and their dispatch come from that list. [`TableStage`] turns
//! a stage's settings into its job, with the settings' relative paths (a URL block
//! list, benchmark files, a tokenizer, a model) resolved against a directory — the
//! config file's under `rlpt run`, the current one on the command line, where they
//! stay as given.

use std::path::Path;

use rlpt_engine::executor::{ShardJob, StageRun};
use rlpt_engine::layout::Layout;
use rlpt_engine::progress::ProgressMode;
use rlpt_engine::summary::StageSummary;
use rlpt_stages::decontam::DecontamConfig;
use rlpt_stages::entropy::EntropyConfig;
use rlpt_stages::filter::FilterConfig;
use rlpt_stages::pii::PiiConfig;
use rlpt_stages::segment::SegmentConfig;

use crate::cli::TableCommand;
use crate::config::TableEntry;
use crate::error::Result;

/// Declares the table stages, each as `"name" => Variant(Settings)` with its help
/// text: the subcommand `rlpt name` and the entry `stage = "name"` both take
/// `Settings` (which implements [`TableStage`]) besides input, output and layout.
macro_rules! table_stages {
    ($($(#[doc = $doc:literal])* $name:literal => $variant:ident($settings:ty),)+) => {
        /// The table stages on the command line (`rlpt filter`, …).
        #[derive(Debug, clap::Subcommand)]
        pub enum TableStageCommand {
            $(
                $(#[doc = $doc])*
                #[command(name = $name)]
                $variant(TableCommand<$settings>),
            )+
        }

        /// The table stages in `pipeline.toml` (`stage = "filter"`, …).
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "stage")]
        pub enum TableStageEntry {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $name)]
                $variant(TableEntry<$settings>),
            )+
        }

        impl TableStageCommand {
            /// Runs the stage given on the command line (its paths as given, from the
            /// current directory).
            pub fn run(&self, progress: ProgressMode) -> Result<StageSummary> {
                match self {
                    $(Self::$variant(command) => command.run(progress),)+
                }
            }
        }

        impl TableStageEntry {
            /// Every table stage's name, in the order they are declared.
            pub const NAMES: &[&str] = &[$($name),+];

            /// The stage's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// The entry's settings, whatever its stage.
            pub fn settings(&self) -> &dyn ConfiguredTableStage {
                match self {
                    $(Self::$variant(entry) => entry,)+
                }
            }
        }
    };
}

table_stages! {
    /// Drop low-quality documents and other languages: whatlang language id with a
    /// keep-list, a URL block list, Gopher quality and repetition, C4 and FineWeb rules
    /// (published thresholds); dropped documents go to `dropped/` with the rule.
    "filter" => Filter(FilterConfig),
    /// Replace emails, IPs, phones, cards, SSNs, secrets and IBANs with placeholders,
    /// adding a count column per kind.
    "pii" => Pii(PiiConfig),
    /// Remove benchmark text (word 13-grams ± 200 characters, the GPT-3 recipe), with a
    /// report of every hit.
    "decontam" => Decontam(DecontamConfig),
    /// Split documents into sentences and segments, and write (context, segment, next
    /// segment) triples with token counts.
    "segment" => Segment(SegmentConfig),
    /// Tag each triple's segment tokens with the proxy model's top-k entropy, the
    /// segment's mean and first-token entropy and a difficulty label.
    "entropy" => Entropy(EntropyConfig),
}

/// The settings of a stage that reads a table and writes one.
pub trait TableStage {
    /// The job that runs the stage.
    type Job: ShardJob<Error = crate::Error>;

    /// The job, with the settings' relative paths taken from `base`.
    fn job(&self, base: &Path) -> Result<Self::Job>;

    /// Whether `rlpt run` recomputes `output` rather than refusing it for another
    /// config (the command line always refuses without `--force`). No by default.
    fn recompute_under_run(_job: &Self::Job, _output: &Path, _layout: &Layout) -> Result<bool> {
        Ok(false)
    }
}

/// A `[[stage]]` entry of a table stage, whatever the stage: what the plan and
/// `rlpt run` ask of it.
pub trait ConfiguredTableStage {
    /// The input it names, if any (else the previous stage's output).
    fn input(&self) -> Option<&String>;
    /// The output it names, relative to `out_dir`.
    fn output(&self) -> &str;
    /// Its unit and shard sizes.
    fn layout(&self) -> Layout;
    /// The keys it has that no setting takes, and the keys it takes.
    fn unknown_keys(&self) -> (Vec<&String>, Vec<String>);
    /// Runs the stage over `input` as `run` says, its paths taken from `base` (the
    /// config's directory).
    fn run(&self, base: &Path, input: &str, run: StageRun) -> Result<StageSummary>;
}

impl<C: clap::Args + TableStage> TableCommand<C> {
    /// Runs the stage over the command's input into its output, the settings' paths as
    /// given.
    pub fn run(&self, progress: ProgressMode) -> Result<StageSummary> {
        let run = StageRun {
            output: self.io.output.clone(),
            layout: self.layout,
            sharding: self.io.share.sharding()?,
            force: self.io.share.force,
            strict: false,
            progress,
        };
        self.config.job(Path::new(""))?.run(&self.io.input, &run)
    }
}
