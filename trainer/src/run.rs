//! What GRPO and SFT runs share: starting fresh or from a checkpoint (verified, and
//! refused under another config), the optimizer step with gradient accumulation and
//! clipping, the metrics file, and checkpoints on schedule.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};

use crate::checkpoint::{self, TrainerState};
use crate::config::{OptimConfig, TrainConfig};
use crate::data::{Split, TripleStream};
use crate::error::{Error, Result, compute, io};
use crate::optim::{AdamW, clip_scale, grad_norm, learning_rate};
use crate::policy::{Policy, checkpoint_weights, tokenizer_for};
use crate::tensorboard::EventWriter;

/// Triples read in a row that a task (or SFT) cannot use before the run gives up on
/// the data, rather than reading it around forever.
pub const MAX_UNUSABLE: usize = 10_000;

/// The metrics file in a run's output directory.
pub const METRICS: &str = "metrics.jsonl";

/// The file that marks an output directory as a training run's, written when a fresh
/// run starts in it.
pub const RUN_MARKER: &str = "rlpt-run.json";

/// The directory of a GRPO run's cold start ([`crate::config::ColdStartConfig`]), in
/// its output.
pub const COLD_START: &str = "cold-start";

/// The lock file a trainer holds in its output directory (taken by the `rlpt` binary).
pub const LOCK: &str = "rlpt.lock";

/// The file in a `train` stage's output naming the input it was trained on.
pub const INPUT_STAMP: &str = "input-fingerprint";

/// What a finished run did.
pub struct Summary {
    /// Steps done in total.
    pub steps: u64,
    /// The checkpoint it resumed from.
    pub resumed_from: Option<PathBuf>,
    /// The last step's metrics.
    pub last: serde_json::Value,
}

/// Marks `output` as this fresh run's, refusing a directory holding files rlpt did not
/// write there (a fresh run would overwrite a `metrics.jsonl`, through a link too). A
/// directory already marked is an earlier run's that made no checkpoint: started again.
pub(crate) fn claim_output(output: &Path, kind: &str) -> Result<()> {
    let marker = output.join(RUN_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let mut foreign = Vec::new();
    for entry in fs::read_dir(output).map_err(io(output))? {
        let name = entry.map_err(io(output))?.file_name();
        let name = name.to_string_lossy();
        if name != LOCK && name != INPUT_STAMP && name != COLD_START {
            foreign.push(name.into_owned());
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        foreign.truncate(5);
        return Err(Error::Config(format!(
            "{} holds files rlpt did not write there ({}…); a fresh run would overwrite \
             them: choose a new or empty --output",
            output.display(),
            foreign.join(", ")
        )));
    }
    let record = serde_json::json!({ "kind": kind }).to_string();
    fs::write(&marker, record).map_err(io(&marker))
}

/// A training run in progress.
pub struct Run {
    /// Its config.
    pub config: TrainConfig,
    /// `grpo` or `sft`.
    pub kind: &'static str,
    /// The model being trained.
    pub policy: Policy,
    /// Its optimizer.
    pub optimizer: AdamW,
    /// The data.
    pub stream: TripleStream,
    /// Steps done.
    pub step: u64,
    /// Steps the learning-rate schedule spans: `config.steps` of the run's first start.
    schedule_steps: u64,
    /// Where the run resumed from, if it did.
    pub resumed_from: Option<PathBuf>,
    optim: OptimConfig,
    metrics_lines: u64,
    last_metrics: serde_json::Value,
    /// The TensorBoard event file, when the config asks for one.
    events: Option<EventWriter>,
}

impl Run {
    /// Starts `kind` on `files` — from the checkpoint `resume` names (a checkpoint or
    /// an output directory) when given, else afresh from the weights at `start_from`
    /// (default: the config's model); a fresh start refuses an output directory that
    /// already holds checkpoints.
    pub fn start(
        config: TrainConfig,
        kind: &'static str,
        optim: OptimConfig,
        files: Vec<std::path::PathBuf>,
        resume: Option<&Path>,
        start_from: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        let device = rlpt_lm::device(&config.device)?;
        fs::create_dir_all(&config.output).map_err(io(&config.output))?;
        let tokenizer = tokenizer_for(&config.model, config.tokenizer.as_deref())?;
        let metrics_path = config.output.join(METRICS);
        let (weights, resumed) = match resume {
            None => {
                if checkpoint::resolve(&config.output).is_ok() {
                    return Err(Error::Config(format!(
                        "{} already holds checkpoints of a run; pass --resume to continue it, \
                         or choose another --output",
                        config.output.display()
                    )));
                }
                claim_output(&config.output, kind)?;
                File::create(&metrics_path).map_err(io(&metrics_path))?;
                let weights = start_from.map_or_else(|| config.model.clone(), Path::to_path_buf);
                (weights, None)
            }
            Some(resume) => {
                let dir = checkpoint::resolve(resume)?;
                let state = checkpoint::open(&dir)?;
                refuse_mismatch(&dir, &state, &config, kind)?;
                keep_lines(&metrics_path, state.metrics_lines)?;
                (checkpoint_weights(&dir), Some((dir, state)))
            }
        };
        let events = config
            .tensorboard
            .then(|| EventWriter::open(&config.output, &metrics_path))
            .transpose()?;
        let policy = Policy::load_for(&weights, tokenizer, &device, &config)?;
        let mut optimizer = AdamW::new(optim.clone(), &policy.params)?;
        if let Some((dir, _)) = &resumed {
            optimizer.load(&policy.params, &dir.join("optimizer.safetensors"), &device)?;
        }
        let (resumed_from, state) = resumed.unzip();
        let schedule_steps = state.as_ref().map_or(config.steps, |s| {
            let planned = s.schedule_steps.unwrap_or(s.config.steps);
            if planned != config.steps {
                tracing::warn!(
                    "resuming with --steps {} where the run began with {planned}: the \
                     learning-rate schedule stays the one over {planned} steps (past its \
                     end, the rate stays at its last value)",
                    config.steps
                );
            }
            planned
        });
        let stream = TripleStream::new(
            files,
            config.data.clone(),
            Split::Train,
            config.seed,
            state.as_ref().map(|s| s.cursor.clone()),
        )?;
        Ok(Self {
            config,
            kind,
            policy,
            optimizer,
            stream,
            step: state.as_ref().map_or(0, |s| s.step),
            schedule_steps,
            resumed_from,
            optim,
            metrics_lines: state.as_ref().map_or(0, |s| s.metrics_lines),
            last_metrics: state.map_or(serde_json::Value::Null, |s| s.metrics),
            events,
        })
    }

    /// Runs `step` until `config.steps` are done (or it returns none: the data ran
    /// out), recording each step; `on_step` sees each step's number and metrics.
    pub fn drive(
        mut self,
        mut step: impl FnMut(&mut Self) -> Result<Option<serde_json::Value>>,
        on_step: &mut dyn FnMut(u64, &serde_json::Value),
    ) -> Result<Summary> {
        let mut last = serde_json::Value::Null;
        while self.step < self.config.steps {
            let Some(metrics) = step(&mut self)? else {
                break;
            };
            on_step(self.step + 1, &metrics);
            self.finish_step(metrics.clone())?;
            last = metrics;
        }
        Ok(Summary {
            steps: self.step,
            resumed_from: self.resumed_from.take(),
            last,
        })
    }

    /// The device the run computes on.
    pub fn device(&self) -> &Device {
        self.policy.model.device()
    }

    /// The learning rate of the current step.
    pub fn learning_rate(&self) -> f64 {
        learning_rate(&self.optim, self.step, self.schedule_steps)
    }

    /// Clips the accumulated gradients and applies one AdamW update at `lr`; returns
    /// the gradient norm before clipping.
    pub fn apply(&mut self, grads: Gradients, lr: f64) -> Result<f64> {
        let grads = grads.into_tensors(&self.policy)?;
        let norm = grad_norm(&grads)?;
        let scale = clip_scale(norm, self.optim.max_grad_norm);
        self.optimizer
            .update(&self.policy.params, &grads, lr, scale)?;
        Ok(norm)
    }

    /// Records a finished step: its metrics line, and a checkpoint when one is due.
    pub fn finish_step(&mut self, metrics: serde_json::Value) -> Result<()> {
        self.step += 1;
        let path = self.config.output.join(METRICS);
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        writeln!(file, "{metrics}").map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        self.metrics_lines += 1;
        if let Some(events) = &mut self.events {
            events.write(self.step, &metrics)?;
        }
        self.last_metrics = metrics;
        let every = self.config.checkpoint.every.max(1);
        if self.step.is_multiple_of(every) || self.step >= self.config.steps {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes `step-N/` for the current step.
    pub fn checkpoint(&self) -> Result<PathBuf> {
        let state = TrainerState {
            kind: self.kind.to_string(),
            step: self.step,
            schedule_steps: Some(self.schedule_steps),
            cursor: self.stream.cursor(),
            config_hash: self.config.hash(),
            config: self.config.clone(),
            metrics_lines: self.metrics_lines,
            metrics: self.last_metrics.clone(),
            rlpt_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        checkpoint::save(
            &self.config.output,
            &state,
            self.config.checkpoint.keep_last,
            |dir| {
                self.policy.save(dir, DType::F32)?;
                self.optimizer
                    .save(&self.policy.params, &dir.join("optimizer.safetensors"))
            },
        )
    }
}

/// Refuses a checkpoint of another kind of run or another config, naming what differs.
fn refuse_mismatch(
    dir: &Path,
    state: &TrainerState,
    config: &TrainConfig,
    kind: &str,
) -> Result<()> {
    if state.kind != kind {
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            problem: format!("is a `{}` checkpoint, not `{kind}`", state.kind),
        });
    }
    if state.config_hash == config.hash() {
        return Ok(());
    }
    let before = serde_json::to_value(&state.config).expect("a config serialises");
    let now = serde_json::to_value(config).expect("a config serialises");
    let changed: Vec<String> = now
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| {
            !matches!(key.as_str(), "steps" | "output" | "device")
                && before.get(*key) != Some(value)
        })
        .map(|(key, value)| {
            let was = before
                .get(key)
                .map_or("nothing".into(), ToString::to_string);
            format!("{key}: {was} → {value}")
        })
        .collect();
    Err(Error::Checkpoint {
        path: dir.to_path_buf(),
        problem: format!(
            "was written under another config ({}); resume with the same config, or start a \
             new run in another --output",
            changed.join("; ")
        ),
    })
}

/// Truncates the metrics file to its first `lines` lines (what a checkpoint saw).
fn keep_lines(path: &Path, lines: u64) -> Result<()> {
    let kept: Vec<String> = match File::open(path) {
        Ok(file) => BufReader::new(file)
            .lines()
            .take(lines as usize)
            .collect::<std::io::Result<_>>()
            .map_err(io(path))?,
        Err(_) => Vec::new(),
    };
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    fs::write(path, text).map_err(io(path))
}

/// Gradients summed over micro-batches (and a checkpointed pass's partial backward
/// passes), one slot per parameter.
pub struct Gradients(Vec<Option<Sum>>);

/// One parameter's gradient so far.
enum Sum {
    /// The first tensor a backward pass gave, as it came (its storage may be shared).
    Received(Tensor),
    /// A sum this struct alone holds, into which later gradients are added in place on
    /// the CPU: a new tensor per addition held three copies of the tied embedding's
    /// gradient at once (SmolLM2: 113 MB each) at the end of a checkpointed update.
    Owned(Tensor),
}

impl Sum {
    fn tensor(self) -> Tensor {
        match self {
            Sum::Received(t) | Sum::Owned(t) => t,
        }
    }
}

impl Gradients {
    /// None yet for `policy`'s parameters.
    pub fn new(policy: &Policy) -> Self {
        Self(policy.params.iter().map(|_| None).collect())
    }

    /// Adds a backward pass's gradients, summed in f32 whatever the parameters' dtype.
    pub fn add(&mut self, policy: &Policy, store: &GradStore) -> Result<()> {
        let fail = || compute("accumulating gradients");
        for ((_, var), slot) in policy.params.iter().zip(&mut self.0) {
            if let Some(grad) = store.get(var.as_tensor()) {
                let grad = grad.to_dtype(DType::F32).map_err(fail())?;
                *slot = Some(match slot.take() {
                    None => Sum::Received(grad),
                    Some(Sum::Owned(sum))
                        if crate::optim::add_in_place(&sum, &grad).map_err(fail())? =>
                    {
                        Sum::Owned(sum)
                    }
                    Some(sum) => Sum::Owned((sum.tensor() + grad).map_err(fail())?),
                });
            }
        }
        Ok(())
    }

    /// One f32 tensor per parameter (zeros where no gradient reached).
    fn into_tensors(self, policy: &Policy) -> Result<Vec<Tensor>> {
        self.0
            .into_iter()
            .zip(&policy.params)
            .map(|(grad, (_, var))| match grad {
                Some(grad) => Ok(grad.tensor()),
                None => Tensor::zeros(var.shape(), DType::F32, var.device())
                    .map_err(compute("zero gradient")),
            })
            .collect()
    }
}
