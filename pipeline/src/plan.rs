//! A pipeline config as steps: every `[[stage]]` expanded into the steps it runs
//! (dedup's four, one for any other stage), each with its input and output resolved
//! (an omitted input is the previous stage's output), and the steps a `--only` or
//! `--from` selection keeps. `rlpt run`, `rlpt slurm submit` and `rlpt slurm status`
//! all walk this one plan, so a step means the same directories everywhere.

use std::path::{Path, PathBuf};

use rlpt_trainer::Split;

use crate::config::{PipelineConfig, StageEntry};
use crate::error::{Error, Result};
use crate::jobs::dedup::DedupDirs;

/// What a step is: a stage's only step, or one of dedup's four. It owns what differs
/// between steps — whether the step is one task, and where its manifest lives — so
/// no caller tells steps apart by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A stage that runs as one step of work units (ingest, filter, pii, decontam,
    /// segment, entropy).
    Units,
    /// Dedup's MinHash signatures (work units).
    DedupSignatures,
    /// Dedup's band buckets (one unit per band).
    DedupBuckets,
    /// Dedup's clusters (one task).
    DedupClusters,
    /// Dedup's filter of the documents (work units).
    DedupFilter,
    /// Training (one task).
    Train,
    /// Evaluation (one task).
    Eval,
}

impl StepKind {
    /// Dedup's steps, in the order they run.
    pub const DEDUP: [StepKind; 4] = [
        StepKind::DedupSignatures,
        StepKind::DedupBuckets,
        StepKind::DedupClusters,
        StepKind::DedupFilter,
    ];

    /// The step's name (summaries and `--only` use it): a dedup step's own, else its
    /// stage's.
    pub fn name(self, stage: &'static str) -> &'static str {
        match self {
            Self::DedupSignatures => "dedup-signatures",
            Self::DedupBuckets => "dedup-buckets",
            Self::DedupClusters => "dedup-clusters",
            Self::DedupFilter => "dedup-filter",
            Self::Units | Self::Train | Self::Eval => stage,
        }
    }

    /// Whether the step is one task rather than work units shared across ranks.
    pub fn single_task(self) -> bool {
        matches!(self, Self::DedupClusters | Self::Train | Self::Eval)
    }

    /// The directory whose manifest records the step's progress, for a step writing
    /// to `output` (train and eval keep none).
    pub fn manifest_dir(self, output: &Path) -> PathBuf {
        let dirs = DedupDirs::new(output);
        match self {
            Self::DedupSignatures => dirs.signatures(),
            Self::DedupBuckets => dirs.pairs(),
            Self::DedupClusters => dirs.clusters(),
            Self::Units | Self::DedupFilter | Self::Train | Self::Eval => output.to_path_buf(),
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// Position in the whole plan, from 1.
    pub number: usize,
    /// The `[[stage]]` it comes from.
    pub entry: &'a StageEntry,
    /// `ingest`, `dedup-signatures` … `dedup-filter`, `pii`, …, `train`, `eval`.
    pub name: &'static str,
    /// What the step is.
    pub kind: StepKind,
    /// The input: files, a directory or a glob (eval: the triples it scores).
    pub input: String,
    /// The output directory (eval: the report file).
    pub output: PathBuf,
    /// Which documents of the input an eval step scores.
    pub split: Split,
    /// Eval: the train stage's output, whose latest checkpoint it scores.
    pub checkpoints: Option<PathBuf>,
}

impl Step<'_> {
    /// Whether the step is one task (dedup clusters, train, eval) rather than work
    /// units shared across ranks.
    pub fn single_task(&self) -> bool {
        self.kind.single_task()
    }

    fn answers_to(&self, name: &str) -> bool {
        name == self.name || name == self.entry.name() || name == self.entry.output()
    }
}

/// Every step of a config, in order.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The steps.
    pub steps: Vec<Step<'a>>,
}

impl<'a> Plan<'a> {
    /// Resolves `config` (read from `config_path`) with outputs under `out_dir`.
    pub fn new(config: &'a PipelineConfig, config_path: &Path, out_dir: &Path) -> Result<Self> {
        let base = config_path.parent().unwrap_or(Path::new("."));
        let mut steps: Vec<Step<'a>> = Vec::new();
        let mut previous_output: Option<PathBuf> = None;
        // The last train stage's input and checkpoints, for an eval stage after it.
        let mut trained: Option<(String, PathBuf)> = None;
        for (index, entry) in config.stages.iter().enumerate() {
            let problem = |problem: &str| Error::Config {
                path: config_path.to_path_buf(),
                problem: format!("stage {} ({}) {problem}", index + 1, entry.name()),
            };
            let given = |input: Option<&String>| -> Result<String> {
                match (input, &previous_output) {
                    (Some(input), _) => Ok(base.join(input).to_string_lossy().into_owned()),
                    (None, Some(previous)) => Ok(previous.to_string_lossy().into_owned()),
                    (None, None) => Err(problem("has no `input` and no stage before it")),
                }
            };
            let output = out_dir.join(entry.output());
            let mut input = match entry {
                // Eval reads the train stage's input unless it names its own.
                StageEntry::Eval(_) => String::new(),
                _ => given(entry.input())?,
            };
            let mut split = Split::All;
            let mut checkpoints = None;
            match entry {
                StageEntry::Train(_) => trained = Some((input.clone(), output.clone())),
                StageEntry::Eval(e) => {
                    let (train_input, train_output) = trained
                        .clone()
                        .ok_or_else(|| problem("has no train stage before it"))?;
                    checkpoints = Some(train_output);
                    input = match &e.input {
                        Some(given) => base.join(given).to_string_lossy().into_owned(),
                        None => {
                            split = Split::Heldout;
                            train_input
                        }
                    };
                }
                _ => {}
            }
            let kinds: Vec<StepKind> = match entry {
                StageEntry::Dedup(_) => StepKind::DEDUP.into(),
                StageEntry::Train(_) => vec![StepKind::Train],
                StageEntry::Eval(_) => vec![StepKind::Eval],
                _ => vec![StepKind::Units],
            };
            for kind in kinds {
                steps.push(Step {
                    number: steps.len() + 1,
                    entry,
                    name: kind.name(entry.name()),
                    kind,
                    input: input.clone(),
                    output: output.clone(),
                    split,
                    checkpoints: checkpoints.clone(),
                });
            }
            // An eval stage's output is a report, not a table: a stage after it reads
            // what the stage before it wrote.
            if !matches!(entry, StageEntry::Eval(_)) {
                previous_output = Some(output);
            }
        }
        Ok(Self { steps })
    }

    /// The steps `--only` (any of the named steps) or `--from` (the first named step
    /// and every one after it) keeps; all of them when neither is given. A name is a
    /// step (`dedup-buckets`), a stage (`dedup`: all its steps) or a stage's `output`.
    pub fn select(&self, only: &[String], from: Option<&str>) -> Result<Vec<&Step<'a>>> {
        let matching = |name: &str| -> Result<Vec<usize>> {
            let found: Vec<usize> = (0..self.steps.len())
                .filter(|&i| self.steps[i].answers_to(name))
                .collect();
            if found.is_empty() {
                let known: Vec<&str> = self.steps.iter().map(|s| s.name).collect();
                return Err(Error::Usage(format!(
                    "no step of the config is called {name:?}; its steps: {} (a stage's name \
                     or output selects all its steps)",
                    known.join(", ")
                )));
            }
            Ok(found)
        };
        let mut keep = vec![only.is_empty() && from.is_none(); self.steps.len()];
        for name in only {
            for index in matching(name)? {
                keep[index] = true;
            }
        }
        if let Some(name) = from {
            let first = matching(name)?[0];
            keep[first..].fill(true);
        }
        Ok(self
            .steps
            .iter()
            .zip(keep)
            .filter_map(|(step, kept)| kept.then_some(step))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEDUP_NAMES: [&str; 4] = [
        "dedup-signatures",
        "dedup-buckets",
        "dedup-clusters",
        "dedup-filter",
    ];

    fn sample() -> (PipelineConfig, PathBuf) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples/pipeline.toml");
        (PipelineConfig::load(&path).unwrap(), path)
    }

    fn names(steps: &[&Step<'_>]) -> Vec<&'static str> {
        steps.iter().map(|s| s.name).collect()
    }

    #[test]
    fn the_default_config_expands_into_twelve_steps_with_chained_inputs() {
        let (config, path) = sample();
        let plan = Plan::new(&config, &path, Path::new("out")).unwrap();
        let all = plan.select(&[], None).unwrap();
        let stages_after_dedup = [
            "filter", "pii", "decontam", "segment", "entropy", "train", "eval",
        ];
        let expected: Vec<&str> = std::iter::once("ingest")
            .chain(DEDUP_NAMES)
            .chain(stages_after_dedup)
            .collect();
        assert_eq!(names(&all), expected);
        assert!(all[0].input.ends_with("wiki-stem/*.jsonl"));
        assert_eq!(all[5].input, "out/deduped");
        assert_eq!(all[6].input, "out/filtered");
        let eval = all[11];
        assert_eq!(eval.input, "out/tagged");
        assert_eq!(eval.split, Split::Heldout);
        assert_eq!(eval.checkpoints.as_deref(), Some(Path::new("out/train")));
        let single: Vec<&str> = names(
            &all.into_iter()
                .filter(|s| s.single_task())
                .collect::<Vec<_>>(),
        );
        assert_eq!(single, ["dedup-clusters", "train", "eval"]);
    }

    #[test]
    fn only_and_from_select_by_step_stage_or_output() {
        let (config, path) = sample();
        let plan = Plan::new(&config, &path, Path::new("out")).unwrap();
        let only = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            plan.select(&names, None).map(|s| super::tests::names(&s))
        };
        assert_eq!(only(&["dedup-buckets"]).unwrap(), ["dedup-buckets"]);
        assert_eq!(only(&["dedup"]).unwrap(), DEDUP_NAMES);
        assert_eq!(only(&["tagged", "pii"]).unwrap(), ["pii", "entropy"]);
        assert_eq!(
            names(&plan.select(&[], Some("entropy")).unwrap()),
            ["entropy", "train", "eval"]
        );
        let error = only(&["dedupe"]).unwrap_err().to_string();
        assert!(
            error.contains("\"dedupe\"") && error.contains("dedup-clusters"),
            "{error}"
        );
    }
}
