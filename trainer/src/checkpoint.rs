//! Checkpoints: `step-NNNNNNNN/` directories holding the weights (`model.safetensors`
//! and `config.json`, loadable as a model), `tokenizer.json`, the optimizer's moments
//! (`optimizer.safetensors`), the trainer state (`trainer_state.json`: step, data
//! cursor, config and its hash, last metrics) and `checksums.json` (xxh3-64 of every
//! other file).
//!
//! A checkpoint is assembled in `.step-NNNNNNNN.tmp/`, every file fsynced, then renamed
//! into place, and only then does `latest` (a one-line file, itself replaced
//! atomically) point at it; older checkpoints beyond `keep_last` are deleted after. A
//! crash at any moment leaves the previous checkpoint and `latest` intact. Reading one
//! verifies every checksum first and names the file that does not match.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rlpt_engine::atomic;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::Cursor;
use crate::error::{Error, Result, io};

/// The file naming the newest checkpoint.
pub const LATEST: &str = "latest";
const STATE: &str = "trainer_state.json";
const CHECKSUMS: &str = "checksums.json";

/// What a run needs besides the tensors to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// `grpo` or `sft`.
    pub kind: String,
    /// Optimizer steps done.
    pub step: u64,
    /// Steps the learning-rate schedule spans: the `steps` of the run that began it,
    /// kept by resumes that ask for another count (absent in checkpoints written
    /// before it existed: their config's `steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_steps: Option<u64>,
    /// Where the data stream stands.
    pub cursor: Cursor,
    /// [`TrainConfig::hash`] of the run.
    pub config_hash: String,
    /// The run's config.
    pub config: TrainConfig,
    /// Lines of `metrics.jsonl` written up to this step.
    pub metrics_lines: u64,
    /// The last step's metrics.
    pub metrics: serde_json::Value,
    /// The rlpt version that wrote it.
    pub rlpt_version: String,
}

/// The directory name of the checkpoint after `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes the checkpoint of `state` into `output`: `write_files` puts the tensors and
/// tokenizer into the directory it is given; the state and checksums are added, then
/// the directory is published, `latest` moved, and old checkpoints pruned.
pub fn save(
    output: &Path,
    state: &TrainerState,
    keep_last: usize,
    write_files: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let name = step_dir_name(state.step);
    let staging = output.join(format!(".{name}.tmp"));
    let target = output.join(&name);
    fresh_dir(&staging)?;
    write_files(&staging)?;
    let state_path = staging.join(STATE);
    let json = serde_json::to_vec_pretty(state).expect("the state serialises");
    fs::write(&state_path, json).map_err(io(&state_path))?;
    let sums = checksums(&staging)?;
    let sums_path = staging.join(CHECKSUMS);
    let json = serde_json::to_vec_pretty(&sums).expect("checksums serialise");
    fs::write(&sums_path, json).map_err(io(&sums_path))?;
    // A checkpoint of this step already there is from a run that crashed before
    // moving `latest`: replaced.
    atomic::publish_dir(&staging, &target)?;
    atomic::write_file(&output.join(LATEST), format!("{name}\n").as_bytes())?;
    prune(output, keep_last)?;
    Ok(target)
}

/// The checkpoint `path` names: a checkpoint directory, or a training output directory
/// (its newest published `step-N`: the one `latest` names, or a newer one a crash
/// published before it could move `latest`).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join(STATE).exists() {
        return Ok(path.to_path_buf());
    }
    if let Some((_, newest)) = published_steps(path)?.pop() {
        return Ok(newest);
    }
    let latest = path.join(LATEST);
    let name = fs::read_to_string(&latest).map_err(|e| Error::Checkpoint {
        path: latest.clone(),
        problem: format!("cannot read it ({e}): no checkpoint to resume from here"),
    })?;
    let dir = path.join(name.trim());
    if !dir.join(STATE).exists() {
        return Err(Error::Checkpoint {
            path: dir,
            problem: format!("{} points here, but it holds no {STATE}", latest.display()),
        });
    }
    Ok(dir)
}

/// Verifies every file of the checkpoint `dir` against its checksums and reads its
/// state.
pub fn open(dir: &Path) -> Result<TrainerState> {
    let sums_path = dir.join(CHECKSUMS);
    let text = fs::read_to_string(&sums_path).map_err(|e| Error::Checkpoint {
        path: sums_path.clone(),
        problem: format!("cannot read it ({e}); the checkpoint is incomplete"),
    })?;
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: sums_path.clone(),
            problem: format!("not a checksum list: {e}"),
        })?;
    for (file, sum) in &expected {
        let path = dir.join(file);
        if !path.exists() {
            return Err(Error::Checkpoint {
                path,
                problem: "is missing; the checkpoint is incomplete".into(),
            });
        }
        let actual = file_checksum(&path)?;
        if &actual != sum {
            return Err(Error::Checkpoint {
                path,
                problem: format!(
                    "checksum {actual} differs from the recorded {sum}: the file was changed or \
                     damaged after it was written"
                ),
            });
        }
    }
    let state_path = dir.join(STATE);
    let text = fs::read_to_string(&state_path).map_err(io(&state_path))?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: state_path,
        problem: format!("not a trainer state: {e}"),
    })
}

/// xxh3-64 of every file directly in `dir`, by name.
fn checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            sums.insert(name, file_checksum(&path)?);
        }
    }
    Ok(sums)
}

fn file_checksum(path: &Path) -> Result<String> {
    Ok(rlpt_engine::checksum::file_checksum(path)?)
}

/// Creates `dir` empty (and its parents), removing what a killed run left there.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    fs::create_dir_all(dir).map_err(io(dir))
}

/// The `step-N` directories of `output` that hold a state (published: a checkpoint is
/// renamed into place whole), oldest first; none when `output` is not a directory.
fn published_steps(output: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let Ok(entries) = fs::read_dir(output) else {
        return Ok(Vec::new());
    };
    let mut steps = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(output))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix("step-")?.parse::<u64>().ok());
        if let Some(step) = step
            && path.join(STATE).exists()
        {
            steps.push((step, path));
        }
    }
    steps.sort();
    Ok(steps)
}

/// Deletes all but the `keep_last` newest `step-N` directories (0: keep all), and
/// staging directories a crash left behind.
fn prune(output: &Path, keep_last: usize) -> Result<()> {
    for entry in fs::read_dir(output).map_err(io(output))? {
        let path = entry.map_err(io(output))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with(".step-") && n.ends_with(".tmp")) {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    let steps = published_steps(output)?;
    if keep_last > 0 && steps.len() > keep_last {
        for (_, path) in &steps[..steps.len() - keep_last] {
            fs::remove_dir_all(path).map_err(io(path))?;
        }
    }
    Ok(())
}

/// Checkpoint cadence and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write `step-N/` every this many steps (and at the last step).
    pub every: u64,
    /// Keep this many newest checkpoints (0: all).
    pub keep_last: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 10,
            keep_last: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainerState {
        TrainerState {
            kind: "grpo".into(),
            step,
            schedule_steps: Some(step),
            cursor: Cursor::start(1),
            config_hash: "abc".into(),
            config: TrainConfig::default(),
            metrics_lines: step,
            metrics: serde_json::json!({"step": step}),
            rlpt_version: "test".into(),
        }
    }

    fn save_step(output: &Path, step: u64) -> PathBuf {
        save(output, &state(step), 2, |dir| {
            fs::write(dir.join("model.safetensors"), format!("weights {step}")).map_err(io(dir))
        })
        .unwrap()
    }

    #[test]
    fn latest_points_at_the_newest_and_old_ones_are_pruned() {
        let out = tempfile::tempdir().unwrap();
        for step in 1..=3 {
            save_step(out.path(), step);
        }
        assert_eq!(
            resolve(out.path()).unwrap(),
            out.path().join("step-00000003")
        );
        assert!(!out.path().join("step-00000001").exists());
        assert!(out.path().join("step-00000002").exists());
        assert_eq!(open(&out.path().join("step-00000003")).unwrap(), state(3));
    }

    /// Regression: a run killed between publishing `step-N` and moving `latest` resumed
    /// from the checkpoint before it.
    #[test]
    fn a_checkpoint_published_before_latest_moved_is_the_one_resumed() {
        let out = tempfile::tempdir().unwrap();
        save_step(out.path(), 1);
        save_step(out.path(), 2);
        fs::write(out.path().join(LATEST), "step-00000001\n").unwrap();
        assert_eq!(
            resolve(out.path()).unwrap(),
            out.path().join("step-00000002")
        );
        fs::remove_file(out.path().join(LATEST)).unwrap();
        assert_eq!(
            resolve(out.path()).unwrap(),
            out.path().join("step-00000002")
        );
        fs::create_dir(out.path().join("step-00000003")).unwrap();
        assert_eq!(
            resolve(out.path()).unwrap(),
            out.path().join("step-00000002"),
            "a step directory without a state is not a checkpoint"
        );
    }

    #[test]
    fn a_changed_or_missing_file_is_refused_by_name() {
        let out = tempfile::tempdir().unwrap();
        let dir = save_step(out.path(), 1);
        fs::write(dir.join("model.safetensors"), "tampered").unwrap();
        let message = open(&dir).unwrap_err().to_string();
        assert!(
            message.contains("model.safetensors") && message.contains("checksum"),
            "{message}"
        );
        fs::remove_file(dir.join("model.safetensors")).unwrap();
        assert!(open(&dir).unwrap_err().to_string().contains("is missing"));
        let empty = tempfile::tempdir().unwrap();
        assert!(
            resolve(empty.path())
                .unwrap_err()
                .to_string()
                .contains("no checkpoint")
        );
    }
}
