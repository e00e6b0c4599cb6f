//! `rlpt train`: the GRPO loop. Each step draws prompts (task chosen by weight, triple
//! from the stream), samples `group_size` completions of each, scores them, drops
//! groups whose rewards are all equal and draws new prompts in their place (dynamic
//! sampling, up to `max_refill_rounds` extra rounds), then updates the policy on the
//! kept groups with the clipped surrogate in micro-batches, and writes a metrics line.
//!
//! Every random choice of step `s` comes from generators seeded by (seed, s, round),
//! and the data stream's state is in each checkpoint, so a resumed run repeats the
//! uninterrupted one bit for bit on CPU.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use rlpt_lm::generate::distinct_rows;
use rlpt_lm::{Mode, Model, SamplingConfig, WeightFormat};
use rlpt_rng::SplitMix64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint;
use crate::config::{SftTarget, TrainConfig};
use crate::error::{Error, Result, compute, io};
use crate::grpo::{Objective, advantages, overlong_penalty, zero_variance};
use crate::judge::{Case, Judge};
use crate::policy::{Policy, Sequence, completion_backward, completion_log_probs};
use crate::rewards::{self, RewardKind};
use crate::run::{self, Gradients, MAX_UNUSABLE, Run, Summary};
use crate::tasks::{self, Instance, PREDICTION_END, PREDICTION_START, TaskKind};

/// A task of the mix, parsed.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// What it asks.
    pub kind: TaskKind,
    /// Its share.
    pub weight: f64,
    /// How answers are scored.
    pub reward: RewardKind,
    /// Its prompt.
    pub template: String,
}

impl TaskSpec {
    /// The tasks of `config`.
    pub fn all(config: &TrainConfig) -> Result<Vec<Self>> {
        config
            .tasks
            .iter()
            .map(|task| {
                let kind = task.kind;
                Ok(Self {
                    kind,
                    weight: task.weight,
                    reward: task.reward.unwrap_or(kind.default_reward()),
                    template: task
                        .template
                        .clone()
                        .unwrap_or_else(|| kind.default_template().to_string()),
                })
            })
            .collect()
    }
}

/// A prompt ready for sampling.
pub struct Drawn {
    /// Index of its task.
    pub task: usize,
    /// Its ids.
    pub prompt: Vec<u32>,
    /// What it was made of.
    pub instance: Instance,
}

/// A prompt's sampled completions and their rewards.
pub struct Group {
    /// The prompt's ids.
    pub prompt: Vec<u32>,
    /// Each completion's ids (eos included when it ended there).
    pub completions: Vec<Vec<u32>>,
    /// Each completion's reward.
    pub rewards: Vec<f32>,
}

/// Rollout counters of a step.
#[derive(Default)]
struct Rollouts {
    groups: usize,
    zero_variance: usize,
    completions: usize,
    format_failures: usize,
    judge_failures: usize,
    generated_tokens: usize,
    /// Per task: (sum, sum of squares, count) of rewards.
    per_task: Vec<(f64, f64, usize)>,
}

/// Scores completions: rewards by kind, through the judge when semantic.
pub struct Scorer {
    tasks: Vec<TaskSpec>,
    judge: Option<Judge>,
    /// Segments the judge reads as the reference
    /// ([`crate::config::JudgeConfig::reference_segments`]).
    reference_segments: usize,
}

/// One completion's score.
pub struct Score {
    /// The reward (0 for a missing answer).
    pub reward: f32,
    /// The answer could not be found.
    pub format_failure: bool,
    /// The judge gave no readable verdict.
    pub judge_failure: bool,
}

impl Scorer {
    /// The scorer of `config`'s tasks; loads the judge only if a task needs it.
    pub fn new(config: &TrainConfig) -> Result<Self> {
        let tasks = TaskSpec::all(config)?;
        let needs_judge = tasks.iter().any(|t| t.reward == RewardKind::PrefixSemantic);
        let judge = if !needs_judge {
            None
        } else if let Some(endpoint) = &config.judge.endpoint {
            Some(Judge::http(endpoint, &config.judge)?)
        } else {
            let path = config.judge.model.as_ref().unwrap_or(&config.model);
            let device = rlpt_lm::device(&config.device)?;
            let tokenizer = crate::policy::tokenizer_for(path, None).or_else(|_| {
                crate::policy::tokenizer_for(&config.model, config.tokenizer.as_deref())
            })?;
            let model = Model::load(path, WeightFormat::F32, &device)?;
            Some(Judge::local(model, tokenizer, &config.judge))
        };
        Ok(Self {
            tasks,
            judge,
            reference_segments: config.judge.reference_segments,
        })
    }

    /// The tasks scored.
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.tasks
    }

    /// Scores `texts`, the completions of prompts of `task` made from `instance`.
    pub fn score(
        &self,
        policy: &Policy,
        task: usize,
        instance: &Instance,
        texts: &[&str],
    ) -> Result<Vec<Score>> {
        let group = Completions {
            task,
            instance,
            texts: texts.to_vec(),
        };
        Ok(self.score_groups(policy, &[group])?.remove(0))
    }

    /// Scores every group's completions, asking the judge once for all of them (a
    /// step's worth of verdicts in one batch or one round of concurrent requests).
    pub fn score_groups(
        &self,
        policy: &Policy,
        groups: &[Completions<'_>],
    ) -> Result<Vec<Vec<Score>>> {
        let answers: Vec<Vec<Option<&str>>> = groups
            .iter()
            .map(|group| {
                let kind = self.tasks[group.task].kind;
                group
                    .texts
                    .iter()
                    .map(|text| match kind {
                        TaskKind::NextToken => rewards::boxed_answer(text),
                        TaskKind::Asr | TaskKind::Msr => rewards::tagged_prediction(text),
                    })
                    .collect()
            })
            .collect();
        let mut judged = self.judged(groups, &answers)?.into_iter();
        groups
            .iter()
            .zip(&answers)
            .map(|(group, answers)| {
                let instance = group.instance;
                let verdicts: Vec<Option<bool>> = match self.tasks[group.task].reward {
                    RewardKind::PrefixToken => {
                        let tokens = policy.reference_tokens(instance)?;
                        answers
                            .iter()
                            .map(|a| Some(a.is_some_and(|a| rewards::prefix_token(a, &tokens))))
                            .collect()
                    }
                    RewardKind::Strict => answers
                        .iter()
                        .map(|a| Some(a.is_some_and(|a| rewards::strict(a, &instance.reference))))
                        .collect(),
                    RewardKind::PrefixSemantic => {
                        judged.next().expect("a verdict per judged group")
                    }
                };
                Ok(answers
                    .iter()
                    .zip(verdicts)
                    .map(|(answer, verdict)| Score {
                        reward: f32::from(u8::from(verdict == Some(true))),
                        format_failure: answer.is_none(),
                        judge_failure: answer.is_some() && verdict.is_none(),
                    })
                    .collect())
            })
            .collect()
    }

    /// For each group whose task the judge rewards, in order: a verdict per answer
    /// (false for missing ones), all asked in one call.
    fn judged(
        &self,
        groups: &[Completions<'_>],
        answers: &[Vec<Option<&str>>],
    ) -> Result<Vec<Vec<Option<bool>>>> {
        let semantic: Vec<usize> = (0..groups.len())
            .filter(|&g| self.tasks[groups[g].task].reward == RewardKind::PrefixSemantic)
            .collect();
        if semantic.is_empty() {
            return Ok(Vec::new());
        }
        let references: Vec<String> = semantic
            .iter()
            .map(|&g| self.judge_reference(groups[g].instance))
            .collect();
        let mut cases = Vec::new();
        let mut slots = Vec::new();
        for (k, &g) in semantic.iter().enumerate() {
            for (i, answer) in answers[g].iter().enumerate() {
                if let Some(prediction) = answer {
                    cases.push(Case {
                        context: &groups[g].instance.before,
                        reference: &references[k],
                        prediction,
                    });
                    slots.push((k, i));
                }
            }
        }
        let judge = self.judge.as_ref().expect("built when a task needs it");
        let verdicts = judge.judge(&cases)?;
        let mut out: Vec<Vec<Option<bool>>> = semantic
            .iter()
            .map(|&g| vec![Some(false); answers[g].len()])
            .collect();
        for ((k, i), verdict) in slots.into_iter().zip(verdicts) {
            out[k][i] = verdict;
        }
        Ok(out)
    }

    /// What the judge reads as the reference: the target segment, and the next one
    /// when configured and present.
    fn judge_reference(&self, instance: &Instance) -> String {
        match &instance.following {
            Some(following) if self.reference_segments > 1 => {
                format!("{}{following}", instance.reference)
            }
            _ => instance.reference.clone(),
        }
    }
}

/// The completions of one prompt, to score.
pub struct Completions<'a> {
    /// The task (an index into [`Scorer::tasks`]).
    pub task: usize,
    /// The instance the prompt was made from.
    pub instance: &'a Instance,
    /// The completions' text.
    pub texts: Vec<&'a str>,
}

/// A seed for (seed, step, round, purpose), mixed so nearby inputs give unrelated
/// streams.
pub fn mix(seed: u64, step: u64, round: u64, purpose: u64) -> u64 {
    let mut rng = SplitMix64::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.next_u64() ^ round.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ purpose.rotate_left(32)
}

/// Runs GRPO to `config.steps`, from `resume` when given — after the cold start the
/// config asks for, which a fresh run starts from; `on_step` sees each step's metrics.
pub fn train(
    config: TrainConfig,
    files: Vec<PathBuf>,
    resume: Option<&Path>,
    on_step: &mut dyn FnMut(u64, &Value),
) -> Result<Summary> {
    let start_from = match resume {
        None => cold_start(&config, &files)?,
        // A GRPO checkpoint exists, so the cold start finished: only its model is needed,
        // as the KL reference.
        Some(_) if config.cold_start.steps > 0 => {
            Some(checkpoint::resolve(&config.output.join(run::COLD_START))?)
        }
        Some(_) => None,
    };
    let initial = start_from.clone().unwrap_or_else(|| config.model.clone());
    let optim = config.optim.clone();
    let run = Run::start(config, "grpo", optim, files, resume, start_from.as_deref())?;
    let scorer = Scorer::new(&run.config)?;
    let reference = if run.config.grpo.kl_beta > 0.0 {
        let device = run.device().clone();
        let format = run.config.dtype.weight_format();
        Some(Model::load(&initial, format, &device)?)
    } else {
        None
    };
    let mut idle = IdleSteps::default();
    run.drive(
        |run| {
            let metrics = grpo_step(run, &scorer, reference.as_ref())?;
            idle.check(&metrics, run.config.max_idle_steps)?;
            // Numbers, strings and string-keyed maps always serialise.
            Ok(Some(
                serde_json::to_value(metrics).expect("step metrics serialise"),
            ))
        },
        on_step,
    )
}

/// Runs (or reuses, or finishes) the config's cold start in `OUTPUT/cold-start/` before
/// a fresh GRPO run, and returns its checkpoint; none when the config has no cold start. Its triples are
/// drawn under another seed than GRPO's, so GRPO does not start on the prompts whose
/// answers it was just shown; it checkpoints only at its end.
fn cold_start(config: &TrainConfig, files: &[PathBuf]) -> Result<Option<PathBuf>> {
    let steps = config.cold_start.steps;
    if steps == 0 {
        return Ok(None);
    }
    fs::create_dir_all(&config.output).map_err(io(&config.output))?;
    run::claim_output(&config.output, "grpo")?;
    let output = config.output.join(run::COLD_START);
    let done = match checkpoint::resolve(&output) {
        Ok(dir) => Some((checkpoint::open(&dir)?.step, dir)),
        Err(_) => None,
    };
    if let Some((step, dir)) = &done
        && *step >= steps
    {
        return Ok(Some(dir.clone()));
    }
    let supervised = cold_start_config(config, output.clone());
    let resume = done.map(|(_, dir)| dir);
    crate::sft::sft(
        supervised,
        files.to_vec(),
        resume.as_deref(),
        &mut |step, metrics| {
            tracing::info!(
                "cold start step {step}/{steps}: loss {:.3}",
                metrics["loss"].as_f64().unwrap_or(f64::NAN)
            );
        },
    )?;
    Ok(Some(checkpoint::resolve(&output)?))
}

/// The supervised run of `config`'s cold start, into `output`: its steps, learning
/// rate, tasks and answer budget, its own seed, one checkpoint at its end.
fn cold_start_config(config: &TrainConfig, output: PathBuf) -> TrainConfig {
    let steps = config.cold_start.steps;
    let mut supervised = config.clone();
    supervised.output = output;
    supervised.steps = steps;
    supervised.seed = mix(config.seed, 0, 0, 4);
    supervised.sft.target = SftTarget::Answers;
    supervised.sft.lr = config.cold_start.lr;
    supervised.checkpoint.every = steps;
    if !config.cold_start.tasks.is_empty() {
        supervised.tasks = config.cold_start.tasks.clone();
    }
    if let Some(max_tokens) = config.cold_start.max_tokens {
        supervised.sampling.max_tokens = max_tokens;
    }
    supervised
}

/// Counts GRPO steps in a row that trained on nothing — no group kept, or every
/// group's rewards equal (all advantages 0, without dynamic sampling) — warning about
/// each and stopping the run after `max_idle_steps` of them.
#[derive(Default)]
struct IdleSteps {
    in_a_row: u64,
}

impl IdleSteps {
    fn check(&mut self, metrics: &StepMetrics, max_idle_steps: u64) -> Result<()> {
        let trained = metrics.trained_tokens > 0;
        let learned_from = metrics.zero_variance_fraction < 1.0;
        if trained && learned_from {
            self.in_a_row = 0;
            return Ok(());
        }
        self.in_a_row += 1;
        let why = idle_reason(metrics);
        tracing::warn!("GRPO step {} trained on nothing: {why}", metrics.step);
        if max_idle_steps > 0 && self.in_a_row >= max_idle_steps {
            return Err(Error::Config(format!(
                "{} GRPO steps in a row trained on nothing, so the run stops: \
                 {why} (max_idle_steps = {max_idle_steps}; 0 never stops)",
                self.in_a_row
            )));
        }
        Ok(())
    }
}

/// Why a step kept no group, and what to change, from its metrics.
fn idle_reason(metrics: &StepMetrics) -> String {
    let sampled = metrics.groups_sampled;
    let format_failures = metrics.format_failure_fraction;
    if sampled == 0 {
        "no prompt could be drawn from the triples".into()
    } else if format_failures >= 1.0 {
        format!(
            "no completion of its {sampled} groups gave an answer in the task's format \
             (\\boxed{{}} for next-token, {PREDICTION_START}…{PREDICTION_END} for asr/msr), so \
             every reward was 0; the model does not follow the prompts: start from a cold start \
             that teaches the format (rlpt sft) or from a model that follows instructions"
        )
    } else {
        format!(
            "in each of its {sampled} groups every completion earned the same reward (mean {:.3}), \
             and GRPO learns only from differences within a group: raise grpo.group_size or \
             sampling.temperature, or train on triples of another difficulty",
            metrics.reward_mean
        )
    }
}

/// One GRPO step.
fn grpo_step(run: &mut Run, scorer: &Scorer, reference: Option<&Model>) -> Result<StepMetrics> {
    let grpo = run.config.grpo.clone();
    let started = Instant::now();
    let mut stats = Rollouts {
        per_task: vec![(0.0, 0.0, 0); scorer.tasks().len()],
        ..Rollouts::default()
    };
    let mut kept: Vec<Group> = Vec::new();
    let dynamic = grpo.dynamic_sampling && run.step + 1 >= grpo.dynamic_sampling_from_step;
    let rounds = if dynamic {
        grpo.max_refill_rounds + 1
    } else {
        1
    };
    for round in 0..rounds as u64 {
        let wanted = grpo.prompts_per_step - kept.len();
        if wanted == 0 {
            break;
        }
        let mut choose = SplitMix64::new(mix(run.config.seed, run.step, round, 1));
        let drawn = draw(run, scorer.tasks(), wanted, &mut choose)?;
        if drawn.is_empty() {
            break;
        }
        let seed = mix(run.config.seed, run.step, round, 2);
        for group in rollout(run, scorer, &drawn, seed, &mut stats)? {
            if !dynamic || !zero_variance(&group.rewards) {
                kept.push(group);
            }
        }
    }
    let rollout_s = started.elapsed().as_secs_f64();
    let updating = Instant::now();
    let lr = run.learning_rate();
    let update = if kept.is_empty() {
        None
    } else {
        Some(update(run, &kept, reference, lr)?)
    };
    let timing = (rollout_s, updating.elapsed().as_secs_f64());
    Ok(step_metrics(
        run,
        scorer.tasks(),
        &stats,
        &kept,
        update,
        lr,
        timing,
    ))
}

/// Up to `wanted` prompts: each task picked by weight, each from the next triples that
/// can serve it. Fewer when the data runs out.
pub fn draw(
    run: &mut Run,
    tasks: &[TaskSpec],
    wanted: usize,
    choose: &mut SplitMix64,
) -> Result<Vec<Drawn>> {
    let total: f64 = tasks.iter().map(|t| t.weight).sum();
    let mut drawn = Vec::with_capacity(wanted);
    while drawn.len() < wanted {
        let mut target = choose.next_f64() * total;
        let task = tasks
            .iter()
            .position(|t| {
                target -= t.weight;
                target < 0.0
            })
            .unwrap_or(tasks.len() - 1);
        let spec = &tasks[task];
        let mut unusable = 0;
        let instance = loop {
            let Some(triple) = run.stream.next_triple()? else {
                return Ok(drawn);
            };
            if let Some(instance) = tasks::instance(
                spec.kind,
                &triple,
                run.config.data.hard_token_entropy,
                choose,
            ) {
                break instance;
            }
            unusable += 1;
            if unusable >= MAX_UNUSABLE {
                return Err(Error::Config(format!(
                    "{MAX_UNUSABLE} triples in a row cannot serve the {} task (next-token needs \
                     entropy-tagged triples with a token of entropy ≥ {}; msr a next segment)",
                    spec.kind.name(),
                    run.config.data.hard_token_entropy
                )));
            }
        };
        let prompt = run.policy.prompt_ids(
            spec.kind,
            &spec.template,
            &instance,
            run.config.max_prompt_tokens,
        )?;
        drawn.push(Drawn {
            task,
            prompt,
            instance,
        });
    }
    Ok(drawn)
}

/// Samples and scores `group_size` completions of each drawn prompt.
fn rollout(
    run: &Run,
    scorer: &Scorer,
    drawn: &[Drawn],
    seed: u64,
    stats: &mut Rollouts,
) -> Result<Vec<Group>> {
    let group_size = run.config.grpo.group_size;
    let s = &run.config.sampling;
    let sampling = SamplingConfig {
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        max_tokens: s.max_tokens,
        stop: run
            .policy
            .chat
            .end_of_turn()
            .map(String::from)
            .into_iter()
            .chain(s.stop.iter().cloned())
            .collect(),
        seed,
        ..SamplingConfig::default()
    };
    let prompts: Vec<Vec<u32>> = drawn
        .iter()
        .flat_map(|d| std::iter::repeat_n(d.prompt.clone(), group_size))
        .collect();
    let generations = run.policy.sample(&prompts, &sampling)?;
    let to_score: Vec<Completions<'_>> = drawn
        .iter()
        .zip(generations.chunks(group_size))
        .map(|(d, gens)| Completions {
            task: d.task,
            instance: &d.instance,
            texts: gens.iter().map(|g| g.text.as_str()).collect(),
        })
        .collect();
    let all_scores = scorer.score_groups(&run.policy, &to_score)?;
    let mut groups = Vec::with_capacity(drawn.len());
    for ((d, gens), (scores, scored)) in drawn
        .iter()
        .zip(generations.chunks(group_size))
        .zip(all_scores.iter().zip(&to_score))
    {
        let texts = &scored.texts;
        let completions: Vec<Vec<u32>> = gens
            .iter()
            .map(|g| run.policy.completion_tokens(g))
            .collect();
        let rewards: Vec<f32> = scores
            .iter()
            .zip(&completions)
            .map(|(score, tokens)| {
                let penalty =
                    overlong_penalty(tokens.len(), s.max_tokens, run.config.grpo.overlong_buffer);
                score.reward + penalty
            })
            .collect();
        tracing::debug!(
            task = scorer.tasks()[d.task].kind.name(),
            reference = %d.instance.reference.chars().take(60).collect::<String>(),
            completions = ?texts,
            rewards = ?rewards,
            "group sampled"
        );
        stats.groups += 1;
        stats.zero_variance += usize::from(zero_variance(&rewards));
        stats.completions += gens.len();
        stats.format_failures += scores.iter().filter(|s| s.format_failure).count();
        stats.judge_failures += scores.iter().filter(|s| s.judge_failure).count();
        stats.generated_tokens += gens.iter().map(|g| g.tokens.len()).sum::<usize>();
        let task = &mut stats.per_task[d.task];
        for &r in &rewards {
            task.0 += f64::from(r);
            task.1 += f64::from(r) * f64::from(r);
            task.2 += 1;
        }
        groups.push(Group {
            prompt: d.prompt.clone(),
            completions,
            rewards,
        });
    }
    Ok(groups)
}

/// What an update did.
pub struct Update {
    /// The loss (token mean over the batch).
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Share of completion tokens whose ratio was clipped.
    pub clip_fraction: f64,
    /// Mean k3 KL per token (0 without a reference).
    pub kl: f64,
    /// Completion tokens trained on.
    pub tokens: usize,
    /// Prompt tokens the update ran: each distinct prompt of a micro-batch once, per
    /// update of the batch (with `tokens`, what a FLOP count of the update needs).
    pub prompt_tokens: usize,
}

/// One sequence of the update: prompt, completion, advantage.
struct Row<'a> {
    prompt: &'a [u32],
    completion: &'a [u32],
    advantage: f32,
}

/// `updates_per_batch` optimizer updates of the policy on `kept` groups at `lr`
/// (advantages normalised within each group), with the k3 KL to `reference` when the
/// config weights it.
pub fn update(run: &mut Run, kept: &[Group], reference: Option<&Model>, lr: f64) -> Result<Update> {
    let grpo = run.config.grpo.clone();
    let objective = Objective {
        epsilon_low: grpo.epsilon_low,
        epsilon_high: grpo.epsilon_high,
        kl_beta: grpo.kl_beta,
    };
    let rows: Vec<Row<'_>> = kept
        .iter()
        .flat_map(|group| {
            let advantages = advantages(&group.rewards, grpo.std_epsilon);
            group
                .completions
                .iter()
                .zip(advantages)
                .map(|(completion, advantage)| Row {
                    prompt: &group.prompt,
                    completion,
                    advantage,
                })
        })
        .collect();
    let tokens: usize = rows.iter().map(|r| r.completion.len()).sum();
    let batches: Vec<&[Row<'_>]> = rows.chunks(grpo.micro_batch).collect();
    let pad = run.policy.pad();
    // Completions are scored under the distribution they were sampled from.
    let temperature = run.config.sampling.temperature;
    let frozen = |model: &Model, batch: &[Row<'_>]| -> Result<Tensor> {
        let sequences = sequences(batch);
        Ok(completion_log_probs(model, &sequences, pad, temperature, Mode::Inference)?.0)
    };
    // The sampling policy's log-probs, when several updates make the ratio move.
    let old: Option<Vec<Tensor>> = if grpo.updates_per_batch > 1 {
        Some(
            batches
                .iter()
                .map(|b| frozen(&run.policy.model, b))
                .collect::<Result<_>>()?,
        )
    } else {
        None
    };
    let refs: Option<Vec<Tensor>> = match reference {
        Some(model) => Some(
            batches
                .iter()
                .map(|b| frozen(model, b))
                .collect::<Result<_>>()?,
        ),
        None => None,
    };
    let prompt_tokens = grpo.updates_per_batch.max(1)
        * batches
            .iter()
            .map(|batch| {
                let prompts: Vec<&[u32]> = batch.iter().map(|r| r.prompt).collect();
                let (first_rows, _) = distinct_rows(&prompts);
                first_rows
                    .iter()
                    .map(|&row| prompts[row].len())
                    .sum::<usize>()
            })
            .sum::<usize>();
    let mut result = Update {
        loss: 0.0,
        grad_norm: 0.0,
        clip_fraction: 0.0,
        kl: 0.0,
        tokens,
        prompt_tokens,
    };
    for _ in 0..grpo.updates_per_batch.max(1) {
        let mut grads = Gradients::new(&run.policy);
        let (mut loss, mut clipped, mut kl) = (0.0, 0.0, 0.0);
        for (index, batch) in batches.iter().enumerate() {
            let advantages: Vec<f32> = batch.iter().map(|r| r.advantage).collect();
            let advantages = Tensor::from_vec(advantages, batch.len(), run.device())
                .map_err(compute("advantages"))?;
            let mut step = None;
            let micro_loss = |log_probs: &Tensor, mask: &Tensor| -> Result<Tensor> {
                let old_log_probs = match &old {
                    Some(old) => old[index].clone(),
                    None => log_probs.detach(),
                };
                let micro = objective
                    .micro_loss(
                        log_probs,
                        &old_log_probs,
                        refs.as_ref().map(|r| &r[index]),
                        &advantages,
                        mask,
                        tokens as f32,
                    )
                    .map_err(compute("GRPO loss"))?;
                let loss = micro.loss.clone();
                step = Some(micro);
                Ok(loss)
            };
            completion_backward(
                &run.policy.model,
                &sequences(batch),
                pad,
                temperature,
                grpo.activation_checkpointing,
                micro_loss,
                |store| grads.add(&run.policy, store),
            )?;
            let micro = step.expect("the loss was computed");
            loss += f64::from(micro.loss.to_scalar::<f32>().map_err(compute("loss"))?);
            clipped += f64::from(micro.clipped);
            kl += f64::from(micro.kl_sum);
        }
        result.grad_norm = run.apply(grads, lr)?;
        result.loss = loss;
        result.clip_fraction = clipped / tokens as f64;
        result.kl = kl / tokens as f64;
    }
    Ok(result)
}

fn sequences<'a>(rows: &[Row<'a>]) -> Vec<Sequence<'a>> {
    rows.iter()
        .map(|r| Sequence {
            prompt: r.prompt,
            completion: r.completion,
        })
        .collect()
}

/// One GRPO step's line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step, from 1.
    pub step: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Mean reward of every completion sampled (penalties included).
    pub reward_mean: f64,
    /// Their standard deviation.
    pub reward_std: f64,
    /// The same by task kind.
    pub tasks: BTreeMap<String, TaskMetrics>,
    /// Groups sampled, refills included.
    pub groups_sampled: usize,
    /// Groups trained on.
    pub groups_kept: usize,
    /// Share of sampled groups whose rewards were all equal.
    pub zero_variance_fraction: f64,
    /// Completions without an answer in the task's format.
    pub format_failures: usize,
    /// Their share of the completions.
    pub format_failure_fraction: f64,
    /// Completions the judge could not score.
    pub judge_failures: usize,
    /// Mean tokens per completion.
    pub response_length_mean: f64,
    /// The update's loss (none when nothing was trained).
    pub loss: Option<f64>,
    /// Its gradient norm before clipping.
    pub grad_norm: Option<f64>,
    /// Share of completion tokens whose ratio was clipped.
    pub clip_fraction: Option<f64>,
    /// Mean k3 KL per token to the reference.
    pub kl: Option<f64>,
    /// Completion tokens trained on.
    pub trained_tokens: usize,
    /// Prompt tokens the update ran (a shared prompt once per micro-batch).
    #[serde(default)]
    pub update_prompt_tokens: usize,
    /// Where the step's time went.
    pub timing: StepTiming,
}

/// One task's rewards in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Mean reward.
    pub reward_mean: f64,
    /// Its standard deviation.
    pub reward_std: f64,
    /// Completions sampled.
    pub completions: usize,
}

/// Seconds of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// Drawing prompts, sampling and scoring.
    pub rollout_s: f64,
    /// The optimizer update.
    pub update_s: f64,
    /// Completion tokens generated per second of rollout.
    pub rollout_tokens_per_s: f64,
}

/// The step's metrics.
fn step_metrics(
    run: &Run,
    tasks: &[TaskSpec],
    stats: &Rollouts,
    kept: &[Group],
    update: Option<Update>,
    lr: f64,
    (rollout_s, update_s): (f64, f64),
) -> StepMetrics {
    let (sum, squares, count) = stats
        .per_task
        .iter()
        .fold((0.0, 0.0, 0), |a, t| (a.0 + t.0, a.1 + t.1, a.2 + t.2));
    let mean_std = |sum: f64, squares: f64, count: usize| {
        let n = count.max(1) as f64;
        let mean = sum / n;
        (mean, (squares / n - mean * mean).max(0.0).sqrt())
    };
    let (reward_mean, reward_std) = mean_std(sum, squares, count);
    let per_task = tasks
        .iter()
        .zip(&stats.per_task)
        .map(|(spec, &(s, q, n))| {
            let (reward_mean, reward_std) = mean_std(s, q, n);
            let metrics = TaskMetrics {
                reward_mean,
                reward_std,
                completions: n,
            };
            (spec.kind.name().to_string(), metrics)
        })
        .collect();
    let completions = stats.completions.max(1) as f64;
    StepMetrics {
        step: run.step + 1,
        lr,
        reward_mean,
        reward_std,
        tasks: per_task,
        groups_sampled: stats.groups,
        groups_kept: kept.len(),
        zero_variance_fraction: stats.zero_variance as f64 / stats.groups.max(1) as f64,
        format_failures: stats.format_failures,
        format_failure_fraction: stats.format_failures as f64 / completions,
        judge_failures: stats.judge_failures,
        response_length_mean: stats.generated_tokens as f64 / completions,
        loss: update.as_ref().map(|u| u.loss),
        grad_norm: update.as_ref().map(|u| u.grad_norm),
        clip_fraction: update.as_ref().map(|u| u.clip_fraction),
        kl: update.as_ref().map(|u| u.kl),
        trained_tokens: update.as_ref().map_or(0, |u| u.tokens),
        update_prompt_tokens: update.as_ref().map_or(0, |u| u.prompt_tokens),
        timing: StepTiming {
            rollout_s,
            update_s,
            rollout_tokens_per_s: stats.generated_tokens as f64 / rollout_s.max(1e-9),
        },
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::config::{JudgeConfig, TaskConfig};
    use crate::tasks::ChatTemplateSetting;

    /// `config`'s scorer and its model as the policy (no chat template).
    fn scorer_and_policy(config: &TrainConfig) -> (Scorer, Policy) {
        config.validate().unwrap();
        let scorer = Scorer::new(config).unwrap();
        let tokenizer = crate::policy::tokenizer_for(&config.model, None).unwrap();
        let policy = Policy::load(
            &config.model,
            tokenizer,
            &Device::Cpu,
            ChatTemplateSetting::None,
            config.dtype,
        )
        .unwrap();
        (scorer, policy)
    }

    /// The request bodies the judge at a loopback endpoint received for one asr
    /// completion, with `reference_segments`.
    fn judge_requests(reference_segments: usize) -> Vec<String> {
        let (endpoint, server) = crate::judge::tests::server(vec![(200, "Score: 1".into())]);
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples/tiny");
        let config = TrainConfig {
            model: tiny,
            tasks: vec![TaskConfig {
                kind: TaskKind::Asr,
                reward: Some(RewardKind::PrefixSemantic),
                ..TaskConfig::default()
            }],
            judge: JudgeConfig {
                endpoint: Some(endpoint),
                reference_segments,
                ..JudgeConfig::default()
            },
            ..TrainConfig::default()
        };
        let (scorer, policy) = scorer_and_policy(&config);
        let instance = Instance {
            before: "Water boils at sea level".into(),
            after: None,
            reference: " at 100 degrees Celsius.".into(),
            following: Some(" It freezes at zero.".into()),
            token_ends: Vec::new(),
            token_entropy: None,
        };
        let completion = format!("{PREDICTION_START}at 100 degrees{PREDICTION_END}");
        let scores = scorer.score(&policy, 0, &instance, &[&completion]).unwrap();
        assert_eq!(scores[0].reward, 1.0);
        server.join().unwrap()
    }

    /// The cold start runs its own tasks within its own answer budget, under its own
    /// seed, checkpointing once; without them it teaches GRPO's tasks at GRPO's budget.
    #[test]
    fn the_cold_start_teaches_its_own_tasks_or_grpos() {
        let config = TrainConfig {
            cold_start: crate::config::ColdStartConfig {
                steps: 5,
                lr: 3e-5,
                ..Default::default()
            },
            ..TrainConfig::default()
        };
        let plain = cold_start_config(&config, PathBuf::from("out/cold-start"));
        assert_eq!(plain.tasks, config.tasks);
        assert_eq!(plain.sampling.max_tokens, config.sampling.max_tokens);
        assert_eq!((plain.steps, plain.checkpoint.every), (5, 5));
        assert_eq!(plain.sft.target, SftTarget::Answers);
        assert_eq!(plain.sft.lr, 3e-5);
        assert_ne!(plain.seed, config.seed);
        let mut own = config.clone();
        own.cold_start.tasks = vec![TaskConfig {
            kind: TaskKind::Asr,
            ..TaskConfig::default()
        }];
        own.cold_start.max_tokens = Some(40);
        let supervised = cold_start_config(&own, PathBuf::from("out/cold-start"));
        assert_eq!(supervised.tasks, own.cold_start.tasks);
        assert_eq!(supervised.sampling.max_tokens, 40);
    }

    /// A step's groups are scored together — the judge's verdicts land on the right
    /// completions of the right groups, beside groups of other reward kinds.
    #[test]
    fn a_steps_groups_are_judged_together_and_each_gets_its_own_verdicts() {
        let (endpoint, _) =
            crate::judge::tests::concurrent_server(std::time::Duration::from_millis(10));
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-samples/tiny");
        let config = TrainConfig {
            model: tiny,
            tasks: vec![
                TaskConfig {
                    kind: TaskKind::Asr,
                    reward: Some(RewardKind::PrefixSemantic),
                    ..TaskConfig::default()
                },
                TaskConfig {
                    kind: TaskKind::Asr,
                    reward: Some(RewardKind::Strict),
                    ..TaskConfig::default()
                },
            ],
            judge: JudgeConfig {
                endpoint: Some(endpoint),
                ..JudgeConfig::default()
            },
            ..TrainConfig::default()
        };
        let (scorer, policy) = scorer_and_policy(&config);
        let instance = Instance {
            before: "Water boils".into(),
            after: None,
            reference: "right".into(),
            following: None,
            token_ends: Vec::new(),
            token_entropy: None,
        };
        let tagged = |text: &str| format!("{PREDICTION_START}{text}{PREDICTION_END}");
        let (a, b, c, d) = (
            tagged("right 1"),
            tagged("wrong 2"),
            tagged("right"),
            tagged("right 4"),
        );
        let groups = [
            Completions {
                task: 0,
                instance: &instance,
                texts: vec![&a, "no tags", &b],
            },
            Completions {
                task: 1,
                instance: &instance,
                texts: vec![&c, &b],
            },
            Completions {
                task: 0,
                instance: &instance,
                texts: vec![&b, &d],
            },
        ];
        let rewards: Vec<Vec<f32>> = scorer
            .score_groups(&policy, &groups)
            .unwrap()
            .iter()
            .map(|scores| scores.iter().map(|s| s.reward).collect())
            .collect();
        assert_eq!(
            rewards,
            [vec![1.0, 0.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]]
        );
        for (group, expected) in groups.iter().zip(&rewards) {
            let alone = scorer
                .score(&policy, group.task, group.instance, &group.texts)
                .unwrap();
            let alone: Vec<f32> = alone.iter().map(|s| s.reward).collect();
            assert_eq!(&alone, expected);
        }
    }

    /// RLPT's prefix reward: the judge reads the target segment and the segment after
    /// it as the reference; with `reference_segments = 1`, the target alone.
    #[test]
    fn the_prefix_judge_reads_the_segment_and_the_next_one() {
        let both = judge_requests(2);
        assert_eq!(both.len(), 1);
        assert!(
            both[0].contains("at 100 degrees Celsius. It freezes at zero."),
            "{}",
            both[0]
        );
        let alone = judge_requests(1);
        assert!(alone[0].contains("at 100 degrees Celsius."), "{}", alone[0]);
        assert!(!alone[0].contains("It freezes"), "{}", alone[0]);
    }
}
