//! `rlpt slurm`: a pipeline config on a Slurm cluster. `submit` writes one sbatch
//! script per step of the plan into `OUT/_slurm/` — an array of `--array N` tasks for
//! a step of work units (each task `rlpt run CONFIG --only STEP --rank
//! $SLURM_ARRAY_TASK_ID --world-size N`), a single job for a single-task step (dedup
//! clusters, train, eval) — and submits them chained with `--dependency=afterok`,
//! recording the job ids in `OUT/_slurm/jobs.json`. `status` reads each step's
//! manifest (units done of units planned; train's latest checkpoint; eval's report)
//! and asks `squeue` about the recorded jobs; `cancel` runs `scancel` on them.
//!
//! The scripts run `rlpt run` from the directory `submit` ran in, with the config path
//! and output directory as given, so a task resolves every path — and so every config
//! hash — exactly as a local `rlpt run` does: the tables come out byte-identical.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rlpt_engine::Error as EngineError;
use rlpt_engine::IoContext;
use rlpt_engine::manifest::Manifest;
use serde::{Deserialize, Serialize};

use crate::cli::{SlurmSubmitCommand, SubmissionArgs};
use crate::config::{PipelineConfig, StageEntry};
use crate::error::{Error, Result};
use crate::plan::{Plan, Step};

/// Where `submit` writes its scripts, logs and `jobs.json`, under the output directory.
pub const SLURM_DIR: &str = "_slurm";

/// The record of a submission's jobs, in [`SLURM_DIR`].
const JOBS_FILE: &str = "jobs.json";

/// What `submit` submitted: read back by `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// Array tasks of each step of work units.
    pub array: usize,
    /// One entry per step, in order.
    pub jobs: Vec<SubmittedJob>,
}

/// One submitted step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmittedJob {
    /// The step (`ingest`, `dedup-buckets`, …).
    pub step: String,
    /// Slurm's job id (of the array, for an array).
    pub job_id: String,
    /// Tasks: `--array` for a step of work units, 1 for a single-task step.
    pub tasks: usize,
    /// The sbatch script.
    pub script: PathBuf,
}

/// The config, its plan and where it writes.
struct Loaded {
    config: PipelineConfig,
    out_dir: PathBuf,
}

impl Loaded {
    fn new(config_path: &Path, out_dir: Option<&PathBuf>) -> Result<Self> {
        let config = PipelineConfig::load(config_path)?;
        let out_dir = out_dir.cloned().unwrap_or_else(|| config.out_dir.clone());
        Ok(Self { config, out_dir })
    }

    fn plan<'a>(&'a self, config_path: &Path) -> Result<Plan<'a>> {
        Plan::new(&self.config, config_path, &self.out_dir)
    }
}

/// `rlpt slurm submit`: writes the scripts, submits them unless `--dry-run`, and
/// returns what to print.
pub fn submit(command: &SlurmSubmitCommand) -> Result<String> {
    if command.array == 0 {
        return Err(Error::Usage("--array must be at least 1".into()));
    }
    let loaded = Loaded::new(&command.config, command.out_dir.as_ref())?;
    let plan = loaded.plan(&command.config)?;
    let script_context = ScriptContext::new(command, &loaded.out_dir)?;
    let slurm_dir = loaded.out_dir.join(SLURM_DIR);
    std::fs::create_dir_all(slurm_dir.join("logs")).at(&slurm_dir)?;
    let mut submission = Submission {
        array: command.array,
        jobs: Vec::new(),
    };
    let mut report = String::new();
    for step in &plan.steps {
        let tasks = if step.single_task() { 1 } else { command.array };
        let script = slurm_dir.join(format!("{:02}-{}.sbatch", step.number, step.name));
        rlpt_engine::atomic::write_file(&script, script_context.script(step, tasks).as_bytes())?;
        let dependency = submission
            .jobs
            .last()
            .map(|job| format!("--dependency=afterok:{}", job.job_id));
        let job_id = if command.dry_run {
            let args: String = dependency.iter().map(|a| format!("{a} ")).collect();
            let _ = writeln!(report, "sbatch {args}{}", script.display());
            format!("<{}>", step.name)
        } else {
            sbatch(&script, dependency.as_deref(), &submission.jobs)?
        };
        submission.jobs.push(SubmittedJob {
            step: step.name.to_string(),
            job_id,
            tasks,
            script,
        });
        if !command.dry_run {
            // Recorded as it grows, so that `cancel` finds a partial submission's jobs.
            write_submission(&slurm_dir, &submission)?;
        }
    }
    if command.dry_run {
        let _ = writeln!(
            report,
            "(dry run: scripts in {}, nothing submitted)",
            slurm_dir.display()
        );
        return Ok(report);
    }
    let _ = writeln!(report, "{:<18} {:>8} {:>6}  script", "step", "job", "tasks");
    for job in &submission.jobs {
        let _ = writeln!(
            report,
            "{:<18} {:>8} {:>6}  {}",
            job.step,
            job.job_id,
            job.tasks,
            job.script.display()
        );
    }
    Ok(report)
}

/// Records the jobs submitted so far in `OUT/_slurm/jobs.json`.
fn write_submission(slurm_dir: &Path, submission: &Submission) -> Result<()> {
    let json = serde_json::to_vec_pretty(submission).expect("a submission serialises");
    Ok(rlpt_engine::atomic::write_file(
        &slurm_dir.join(JOBS_FILE),
        &json,
    )?)
}

/// The submission `submit` recorded under `out_dir`, if any.
fn read_submission(out_dir: &Path) -> Result<Option<Submission>> {
    let path = out_dir.join(SLURM_DIR).join(JOBS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| EngineError::Json { path, source }.into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Ok(Err(err).at(path)?),
    }
}

/// What every script shares: the binary, the directory, the config, sbatch options.
struct ScriptContext {
    rlpt: PathBuf,
    workdir: PathBuf,
    config: PathBuf,
    out_dir: PathBuf,
    logs: PathBuf,
    options: Vec<String>,
}

impl ScriptContext {
    fn new(command: &SlurmSubmitCommand, out_dir: &Path) -> Result<Self> {
        let workdir = std::env::current_dir().at(".")?;
        let rlpt = match &command.rlpt {
            Some(path) => path.clone(),
            None => std::env::current_exe().at("the rlpt binary")?,
        };
        let mut options = vec![format!("--cpus-per-task={}", command.cpus_per_task)];
        for (flag, value) in [
            ("--partition", &command.partition),
            ("--time", &command.time),
        ] {
            if let Some(value) = value {
                options.push(format!("{flag}={}", sbatch_value(flag, value)?));
            }
        }
        for option in &command.sbatch_args {
            refuse_control_characters("--sbatch-arg", option)?;
            options.push(option.clone());
        }
        for (flag, path) in [
            ("--rlpt", &rlpt),
            ("the config path", &command.config),
            ("--out-dir", &out_dir.to_path_buf()),
            ("the working directory", &workdir),
        ] {
            refuse_control_characters(flag, &path.to_string_lossy())?;
        }
        let logs = workdir.join(out_dir).join(SLURM_DIR).join("logs");
        sbatch_value("--out-dir", &logs.to_string_lossy())?;
        sbatch_value("the working directory", &workdir.to_string_lossy())?;
        Ok(Self {
            rlpt,
            logs,
            workdir,
            config: command.config.clone(),
            out_dir: out_dir.to_path_buf(),
            options,
        })
    }

    /// The sbatch script of `step` with `tasks` array tasks (1: a single job).
    fn script(&self, step: &Step<'_>, tasks: usize) -> String {
        let mut text = String::from("#!/bin/bash\n");
        let _ = writeln!(
            text,
            "# Step {} ({}) of {}, written by `rlpt slurm submit`.",
            step.number,
            step.name,
            self.config.display()
        );
        let _ = writeln!(text, "#SBATCH --job-name=rlpt-{}", step.name);
        let log = if tasks > 1 { "%A_%a" } else { "%j" };
        let log_file = self
            .logs
            .join(format!("{:02}-{}-{log}.log", step.number, step.name));
        let sbatch_path = |path: &Path| {
            sbatch_value("a path", &path.to_string_lossy()).expect("checked in ScriptContext::new")
        };
        let _ = writeln!(text, "#SBATCH --output={}", sbatch_path(&log_file));
        let _ = writeln!(text, "#SBATCH --chdir={}", sbatch_path(&self.workdir));
        if tasks > 1 {
            let _ = writeln!(text, "#SBATCH --array=0-{}", tasks - 1);
        }
        for option in &self.options {
            let _ = writeln!(text, "#SBATCH {option}");
        }
        let share = if tasks > 1 {
            format!(" --rank \"$SLURM_ARRAY_TASK_ID\" --world-size {tasks}")
        } else {
            String::new()
        };
        let _ = write!(
            text,
            "set -euo pipefail\nexec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --log-format json \
             run {} --out-dir {} --only {}{share}\n",
            shell_quote(&self.rlpt.to_string_lossy()),
            shell_quote(&self.config.to_string_lossy()),
            shell_quote(&self.out_dir.to_string_lossy()),
            step.name,
        );
        text
    }
}

/// Refuses a value with a control character: a newline would end its `#SBATCH` line
/// (or the script's comment) and run the rest as shell when the job starts.
fn refuse_control_characters(what: &str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::Usage(format!(
            "{what} {value:?} holds the control character {c:?}, which cannot go into an sbatch \
             script"
        ))),
        None => Ok(()),
    }
}

/// `value` as an `#SBATCH` option's value: no control characters, double-quoted when it
/// holds spaces or quotes (sbatch reads quoted values), never holding a double quote.
fn sbatch_value(what: &str, value: &str) -> Result<String> {
    refuse_control_characters(what, value)?;
    if value.contains('"') {
        return Err(Error::Usage(format!(
            "{what} {value:?} holds a double quote, which an #SBATCH line cannot carry"
        )));
    }
    Ok(
        if value.contains(|c: char| c.is_whitespace() || c == '\'') {
            format!("\"{value}\"")
        } else {
            value.to_string()
        },
    )
}

/// A word the shell reads back as `text`.
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Submits `script`; returns its job id. On failure the error lists the jobs already
/// submitted, so they can be cancelled.
fn sbatch(script: &Path, dependency: Option<&str>, submitted: &[SubmittedJob]) -> Result<String> {
    let mut command = Command::new("sbatch");
    command.arg("--parsable").args(dependency).arg(script);
    let failure = |detail: String| {
        let ids: Vec<&str> = submitted.iter().map(|j| j.job_id.as_str()).collect();
        let submitted = if ids.is_empty() {
            String::new()
        } else {
            format!(
                " (already submitted, recorded in {JOBS_FILE}: {}; `rlpt slurm cancel` cancels them)",
                ids.join(" ")
            )
        };
        Error::Slurm(format!("sbatch {}: {detail}{submitted}", script.display()))
    };
    let output = command
        .output()
        .map_err(|err| failure(format!("cannot run sbatch: {err} (is Slurm installed?)")))?;
    if !output.status.success() {
        return Err(failure(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = stdout.trim().split(';').next().unwrap_or_default();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(failure(format!("unexpected output {stdout:?}")));
    }
    Ok(id.to_string())
}

/// `rlpt slurm status`: every step's progress from its manifest, and the Slurm state
/// of the jobs `submit` recorded.
pub fn status(command: &SubmissionArgs) -> Result<String> {
    let loaded = Loaded::new(&command.config, command.out_dir.as_ref())?;
    let plan = loaded.plan(&command.config)?;
    let base = command.config.parent().unwrap_or(Path::new("."));
    let submission = read_submission(&loaded.out_dir)?;
    let states = submission.as_ref().map(job_states).unwrap_or_default();
    let mut text = format!("{:<18} {:<12} {:<11} slurm\n", "step", "done", "state");
    for step in &plan.steps {
        let (done, state) = step_progress(step, base)?;
        // Jobs are recorded one per step, in the plan's order.
        let job = submission
            .as_ref()
            .and_then(|s| s.jobs.get(step.number - 1))
            .filter(|job| job.step == step.name);
        let job_state = job.and_then(|job| states.get(&job.job_id));
        let slurm = match job {
            Some(job) => format!(
                "job {} {}",
                job.job_id,
                job_state.map_or("(not in squeue)", String::as_str)
            ),
            None => "-".into(),
        };
        let state = shown_state(state, job_state.map(String::as_str));
        let _ = writeln!(text, "{:<18} {:<12} {:<11} {slurm}", step.name, done, state);
    }
    Ok(text)
}

/// `rlpt slurm cancel`: `scancel` of the jobs `submit` recorded that Slurm still has
/// pending or running; returns what to print, a line per step.
pub fn cancel(command: &SubmissionArgs) -> Result<String> {
    let loaded = Loaded::new(&command.config, command.out_dir.as_ref())?;
    let Some(submission) = read_submission(&loaded.out_dir)? else {
        return Err(Error::Slurm(format!(
            "nothing to cancel: no {JOBS_FILE} in {} (was `rlpt slurm submit` run with this output directory?)",
            loaded.out_dir.join(SLURM_DIR).display()
        )));
    };
    let states = job_states(&submission);
    let state_of = |job: &SubmittedJob| states.get(&job.job_id).map(String::as_str);
    let active: Vec<&str> = submission
        .jobs
        .iter()
        .filter(|job| state_of(job).is_some_and(is_active))
        .map(|job| job.job_id.as_str())
        .collect();
    if !active.is_empty() {
        let output = Command::new("scancel")
            .args(&active)
            .output()
            .map_err(|err| {
                Error::Slurm(format!("cannot run scancel: {err} (is Slurm installed?)"))
            })?;
        if !output.status.success() {
            return Err(Error::Slurm(format!(
                "scancel {}: {}",
                active.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    let mut report = String::new();
    for job in &submission.jobs {
        let what = if active.contains(&job.job_id.as_str()) {
            "cancelled".to_string()
        } else {
            format!("left as {}", state_of(job).unwrap_or("(not in squeue)"))
        };
        let _ = writeln!(report, "{:<18} job {:>8}  {what}", job.step, job.job_id);
    }
    Ok(report)
}

/// Whether a job in this [`job_states`] state has tasks Slurm has yet to end.
fn is_active(state: &str) -> bool {
    const ACTIVE: [&str; 6] = [
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUE",
    ];
    ACTIVE.iter().any(|word| state.contains(word))
}

/// The state shown for a step: what its manifest says, except that an unfinished step
/// whose job has running tasks is `running`.
fn shown_state(written: &'static str, slurm: Option<&str>) -> &'static str {
    match slurm {
        Some(slurm) if written != "done" && slurm.contains("RUNNING") => "running",
        _ => written,
    }
}

/// `done` ("3/5 units") and a state word of one step, from what it wrote.
fn step_progress(step: &Step<'_>, base: &Path) -> Result<(String, &'static str)> {
    let state = |done: u64, total: u64| match (done, total) {
        (0, _) => "not started",
        (d, t) if d >= t => "done",
        _ => "partial",
    };
    match step.entry {
        StageEntry::Train(entry) => {
            let mut target = rlpt_trainer::TrainConfig::from_file(&base.join(&entry.config))?.steps;
            target = entry.steps.unwrap_or(target);
            let reached = rlpt_trainer::checkpoint::resolve(&step.output)
                .and_then(|dir| rlpt_trainer::checkpoint::open(&dir))
                .map_or(0, |state| state.step);
            Ok((format!("{reached}/{target} steps"), state(reached, target)))
        }
        StageEntry::Eval(_) => {
            let written = u64::from(step.output.is_file());
            Ok((format!("{written}/1 report"), state(written, 1)))
        }
        _ => {
            let dir = step.kind.manifest_dir(&step.output);
            Ok(match Manifest::of(&dir).read_progress()? {
                Some(progress) => {
                    let (done, total) = (progress.done.len() as u64, progress.stage.units as u64);
                    (format!("{done}/{total} units"), state(done, total))
                }
                None => ("-".into(), "not started"),
            })
        }
    }
}

/// Slurm's state of each recorded job, from `squeue` (jobs it has forgotten, or no
/// `squeue` at all, are left out): `COMPLETED`, or counts such as `RUNNING 2, PENDING 1`
/// over an array's tasks.
fn job_states(submission: &Submission) -> BTreeMap<String, String> {
    let ids: Vec<&str> = submission.jobs.iter().map(|j| j.job_id.as_str()).collect();
    let Ok(output) = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%F|%T", "--jobs"])
        .arg(ids.join(","))
        .output()
    else {
        return BTreeMap::new();
    };
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((job, state)) = line.trim().split_once('|') {
            *counts
                .entry(job.to_string())
                .or_default()
                .entry(state.to_string())
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(job, states)| {
            let text = if states.len() == 1 {
                states.into_keys().next().unwrap_or_default()
            } else {
                let parts: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
                parts.join(", ")
            };
            (job, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_running_while_its_job_runs_and_done_by_its_manifest() {
        assert_eq!(shown_state("not started", Some("RUNNING")), "running");
        assert_eq!(
            shown_state("partial", Some("COMPLETED 1, RUNNING 2")),
            "running"
        );
        assert_eq!(shown_state("partial", Some("PENDING")), "partial");
        assert_eq!(shown_state("done", Some("RUNNING")), "done");
        assert_eq!(shown_state("not started", None), "not started");
    }

    #[test]
    fn only_jobs_with_unended_tasks_are_cancelled() {
        assert!(is_active("PENDING"));
        assert!(is_active("COMPLETED 2, RUNNING 1"));
        assert!(!is_active("COMPLETED"));
        assert!(!is_active("CANCELLED 1, COMPLETED 2"));
        assert!(!is_active("FAILED"));
    }

    #[test]
    fn sbatch_values_are_quoted_and_control_characters_refused() {
        assert_eq!(sbatch_value("--time", "1:00:00").unwrap(), "1:00:00");
        assert_eq!(
            sbatch_value("--out-dir", "my out/$(id)").unwrap(),
            "\"my out/$(id)\""
        );
        for bad in ["a\nb", "a\rb", "a\u{0}b", "a\u{1b}[2Jb"] {
            let err = sbatch_value("--partition", bad).unwrap_err().to_string();
            assert!(
                err.contains("--partition") && err.contains("control character"),
                "{err}"
            );
        }
        assert!(sbatch_value("--partition", "a\"b").is_err());
    }

    #[test]
    fn shell_quoting_survives_spaces_and_quotes() {
        assert_eq!(
            shell_quote("data-samples/pipeline.toml"),
            "data-samples/pipeline.toml"
        );
        assert_eq!(shell_quote("my dir/it's"), "'my dir/it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
