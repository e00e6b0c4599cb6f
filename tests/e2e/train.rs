//! `rlpt train`, `rlpt sft` and `rlpt eval` as a user runs them: the default config on
//! the committed tiny model and sample triples, checkpoints and metrics, a run killed
//! mid-way and resumed to the same bytes as an uninterrupted one, refusals of corrupt
//! or mismatched checkpoints, and two GRPO steps of the real SmolLM2.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::{RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};

use crate::harness::{
    arg, fetched, ingest_args, metrics_lines, read_parquet, repo_root, rlpt, rlpt_in, rlpt_ok,
    sample_input, shards, stderr, stdout, tmp_entries,
};

const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Metrics without wall-clock timings (which differ between runs).
fn deterministic(mut lines: Vec<Value>) -> Vec<Value> {
    for line in &mut lines {
        line.as_object_mut().unwrap().remove("timing");
    }
    lines
}

fn latest(output: &Path) -> PathBuf {
    output.join(fs::read_to_string(output.join("latest")).unwrap().trim())
}

/// `COMMAND --config CONFIG --output OUTPUT EXTRA…`.
fn run_args<'a>(
    command: &'a str,
    config: &'a Path,
    output: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![command, "--config", arg(config), "--output", arg(output)];
    args.extend_from_slice(extra);
    args
}

#[test]
fn the_default_config_trains_the_tiny_model_and_evaluates_its_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("train");
    let run = rlpt_ok(&["train", "--output", arg(&output)]);
    assert!(stdout(&run).contains("steps      4"), "{}", stdout(&run));
    let lines = metrics_lines(&output);
    assert_eq!(lines.len(), 4);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i as u64 + 1);
        for key in [
            "reward_mean",
            "zero_variance_fraction",
            "format_failures",
            "response_length_mean",
            "groups_sampled",
            "lr",
        ] {
            assert!(!line[key].is_null(), "{key} missing from {line}");
        }
        assert!(line["timing"]["rollout_tokens_per_s"].as_f64().unwrap() > 0.0);
        // A step that trained ran at least one prompt token per completion group.
        let trained = line["trained_tokens"].as_u64().unwrap();
        let prompts = line["update_prompt_tokens"].as_u64().unwrap();
        assert_eq!(trained > 0, prompts > 0, "{line}");
    }
    // Checkpoints every 2 steps; `latest` names the last; each is a loadable model.
    assert_eq!(latest(&output), output.join("step-00000004"));
    for file in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "optimizer.safetensors",
        "trainer_state.json",
        "checksums.json",
    ] {
        assert!(output.join("step-00000002").join(file).exists(), "{file}");
    }
    let heldout = repo_root().join("data-samples/triples/heldout.parquet");
    let report_path = work.path().join("eval.json");
    let eval = rlpt_ok(&[
        "eval",
        "--checkpoint",
        arg(&output),
        "--input",
        arg(&heldout),
        "--limit",
        "6",
        "--tasks",
        "next-token,msr",
        "--output",
        arg(&report_path),
    ]);
    let report: Value = serde_json::from_str(&stdout(&eval)).unwrap();
    assert_eq!(
        report,
        serde_json::from_str::<Value>(&fs::read_to_string(&report_path).unwrap()).unwrap()
    );
    assert_eq!(report["triples"], 6);
    // Without --input, the config's triples; --split heldout keeps the documents
    // training never saw. Regression: a report written to a bare file name (its
    // directory the working one) was written, then the command failed with
    // "error: : No such file or directory" syncing the directory "".
    let config = repo_root().join("data-samples/train.toml");
    let own = rlpt_in(work.path())
        .args([
            "eval",
            "--config",
            arg(&config),
            "--checkpoint",
            arg(&output),
            "--split",
            "heldout",
            "--limit",
            "3",
            "--tasks",
            "next-token",
            "--answers",
            "--output",
            "own.json",
        ])
        .output()
        .unwrap();
    assert!(own.status.success(), "{}", stderr(&own));
    let own: Value = serde_json::from_str(&stdout(&own)).unwrap();
    assert_eq!(
        (&own["triples"], &own["split"]),
        (&json!(3), &json!("heldout"))
    );
    let written = fs::read_to_string(work.path().join("own.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), own);
    // --answers keeps each greedy answer, in the outcomes' order; without it the
    // report has none.
    let answers = own["next-token"]["answers"].as_array().unwrap();
    let outcomes = own["next-token"]["outcomes"].as_str().unwrap();
    assert_eq!(answers.len(), outcomes.len(), "{own}");
    assert!(report["next-token"].get("answers").is_none(), "{report}");
    assert!(report["next-token"]["judge_failures"].is_u64(), "{report}");
    // RPT's Table 1 buckets nest (entropy above 0.5, 1.0, 1.5 within all positions),
    // with and without reasoning, on the same positions.
    let next_token = &report["next-token"];
    for buckets in [&next_token["buckets"], &next_token["standard"]["buckets"]] {
        let n = |b: &str| buckets[b]["n"].as_u64().unwrap();
        assert_eq!(n("all"), next_token["n"].as_u64().unwrap(), "{report}");
        assert!(
            n("all") >= n("easy") && n("easy") >= n("medium") && n("medium") >= n("hard"),
            "{report}"
        );
    }
    assert!(report["msr"]["n"].as_u64().unwrap() > 0);
    // Per-instance outcomes, in order, for paired comparisons between models.
    for task in ["next-token", "msr"] {
        let outcomes = report[task]["outcomes"].as_str().unwrap();
        assert_eq!(outcomes.len() as u64, report[task]["n"].as_u64().unwrap());
        assert_eq!(
            outcomes.matches('1').count() as u64,
            report[task]["correct"].as_u64().unwrap()
        );
        assert!(outcomes.chars().all(|c| c == '0' || c == '1'), "{outcomes}");
    }
}

/// A config whose GRPO steps always update: completions stop at a space, so their
/// lengths vary and the over-length penalty gives every group a spread of rewards. Two
/// updates per batch (so the ratio moves and clips) and a KL term to the initial model
/// take the longest path through a step.
fn resumable_config(dir: &Path) -> PathBuf {
    resumable_config_in(dir, "f32")
}

/// [`resumable_config`] training in `dtype`.
fn resumable_config_in(dir: &Path, dtype: &str) -> PathBuf {
    let samples = repo_root().join("data-samples");
    let text = format!(
        r#"
model = "{tiny}"
input = "{triples}"
steps = 6
dtype = "{dtype}"
[[task]]
kind = "next-token"
[sampling]
max_tokens = 6
stop = [" "]
[grpo]
group_size = 4
prompts_per_step = 2
micro_batch = 3
overlong_buffer = 5
dynamic_sampling = true
updates_per_batch = 2
kl_beta = 0.05
[optim]
lr = 1e-3
warmup_steps = 2
schedule = "cosine"
[checkpoint]
every = 1
keep_last = 2
"#,
        tiny = samples.join("tiny").display(),
        triples = samples.join("triples/train.parquet").display(),
    );
    let path = dir.join("train.toml");
    fs::write(&path, text).unwrap();
    path
}

fn step_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["model.safetensors", "optimizer.safetensors"]
        .iter()
        .map(|f| (f.to_string(), fs::read(dir.join(f)).unwrap()))
        .collect()
}

#[test]
fn a_training_run_killed_mid_way_resumes_bit_identically() {
    killed_run_resumes_bit_identically("f32");
}

/// bf16 training: the master weights in the optimizer state carry what bf16 weights
/// cannot, so a resumed run continues exactly too.
#[test]
fn a_bf16_training_run_killed_mid_way_resumes_bit_identically() {
    killed_run_resumes_bit_identically("bf16");
}

fn killed_run_resumes_bit_identically(dtype: &str) {
    let work = tempfile::tempdir().unwrap();
    let config = resumable_config_in(work.path(), dtype);
    let reference = work.path().join("reference");
    rlpt_ok(&run_args("train", &config, &reference, &[]));
    let reference_metrics = deterministic(metrics_lines(&reference));
    assert_eq!(reference_metrics.len(), 6);
    assert!(
        reference_metrics
            .iter()
            .all(|m| m["groups_kept"].as_u64() > Some(0)),
        "every step must update the model: {reference_metrics:?}"
    );

    let killed = work.path().join("killed");
    let mut child = rlpt_in(&repo_root())
        .args(run_args("train", &config, &killed, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !killed.join("latest").exists() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint within two minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL, wherever it is
    child.wait().unwrap();
    assert_ne!(
        latest(&killed),
        killed.join("step-00000006"),
        "the run finished before it was killed"
    );
    let resumed = rlpt_ok(&run_args("train", &config, &killed, &["--resume"]));
    assert!(
        stdout(&resumed).contains("step-0000000"),
        "{}",
        stdout(&resumed)
    );
    assert_eq!(deterministic(metrics_lines(&killed)), reference_metrics);
    assert_eq!(
        step_files(&latest(&killed)),
        step_files(&latest(&reference)),
        "weights and optimizer state differ after resuming"
    );
    assert_eq!(tmp_entries(&killed), Vec::<String>::new());
    let optimizer = fs::read(latest(&killed).join("optimizer.safetensors")).unwrap();
    let has_masters = optimizer.windows(7).any(|w| w == b"master.");
    assert_eq!(
        has_masters,
        dtype == "bf16",
        "master weights in a {dtype} run"
    );
}

#[test]
fn corrupt_mismatched_or_missing_checkpoints_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let config = resumable_config(work.path());
    let output = work.path().join("out");
    rlpt_ok(&run_args("sft", &config, &output, &["--steps", "2"]));
    // A fresh start on a directory with checkpoints.
    let again = rlpt(&run_args("sft", &config, &output, &[]));
    assert!(
        stderr(&again).contains("pass --resume"),
        "{}",
        stderr(&again)
    );
    // Another config.
    let resume = |extra: &[&str]| {
        let mut args = run_args("sft", &config, &output, &["--resume"]);
        args.extend_from_slice(extra);
        rlpt(&args)
    };
    let seeded = resume(&["--seed", "9", "--steps", "3"]);
    assert!(
        stderr(&seeded).contains("another config") && stderr(&seeded).contains("seed: 0 → 9"),
        "{}",
        stderr(&seeded)
    );
    // GRPO cannot resume an SFT checkpoint.
    let grpo = rlpt(&run_args("train", &config, &output, &["--resume"]));
    assert!(
        stderr(&grpo).contains("is a `sft` checkpoint"),
        "{}",
        stderr(&grpo)
    );
    // A damaged file.
    let weights = latest(&output).join("optimizer.safetensors");
    let mut bytes = fs::read(&weights).unwrap();
    bytes[100] ^= 1;
    fs::write(&weights, bytes).unwrap();
    let damaged = resume(&["--steps", "3"]);
    assert!(!damaged.status.success());
    assert!(
        stderr(&damaged).contains("optimizer.safetensors") && stderr(&damaged).contains("checksum"),
        "{}",
        stderr(&damaged)
    );
}

/// `steps` shapes the cosine schedule: a resume that asks for more steps keeps the
/// schedule the run began with (it used to re-plan it over the new count, so the
/// rates of the first and the resumed steps belonged to two different schedules).
#[test]
fn a_resume_with_more_steps_keeps_the_learning_rate_schedule_it_began_with() {
    let work = tempfile::tempdir().unwrap();
    let config = resumable_config(work.path());
    let output = work.path().join("out");
    rlpt_ok(&run_args("sft", &config, &output, &["--steps", "2"]));
    let resumed = rlpt_ok(&run_args(
        "sft",
        &config,
        &output,
        &["--resume", "--steps", "4"],
    ));
    assert!(
        stderr(&resumed).contains("schedule stays the one over 2 steps"),
        "{}",
        stderr(&resumed)
    );
    let rates: Vec<f64> = metrics_lines(&output)
        .iter()
        .map(|m| m["lr"].as_f64().unwrap())
        .collect();
    // [sft] lr 1e-3, two warmup steps, then a cosine over the 2 planned steps that ends
    // at min_lr_ratio 0.1; re-planned over 4, the last rate would be 5.5e-4.
    let expected = [5e-4, 1e-3, 1e-3, 1e-4];
    assert_eq!(rates.len(), expected.len(), "{rates:?}");
    for (rate, want) in rates.iter().zip(expected) {
        assert!((rate - want).abs() < 1e-12, "{rates:?}");
    }
}

#[test]
fn sft_lowers_the_loss_of_the_tiny_model() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("sft");
    rlpt_ok(&["sft", "--output", arg(&output), "--steps", "12"]);
    let losses: Vec<f64> = metrics_lines(&output)
        .iter()
        .map(|m| m["loss"].as_f64().unwrap())
        .collect();
    let first = losses[..3].iter().sum::<f64>() / 3.0;
    let last = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    // A random 2,048-token model starts near ln 2048 = 7.6 nats.
    assert!(first > 7.0 && last < first - 0.2, "{losses:?}");
}

#[test]
fn smollm2_does_two_grpo_steps_on_real_triples() {
    let Some(model) = fetched(SMOLLM2) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("smol");
    let config = work.path().join("smol.toml");
    let samples = repo_root().join("data-samples");
    fs::write(
        &config,
        format!(
            r#"
model = "{model}"
input = "{triples}"
max_prompt_tokens = 192
[[task]]
kind = "next-token"
[[task]]
kind = "asr"
reward = "strict"
[sampling]
max_tokens = 24
[grpo]
group_size = 2
prompts_per_step = 2
dynamic_sampling = false
micro_batch = 2
[checkpoint]
every = 2
"#,
            model = model.display(),
            triples = samples.join("triples/train.parquet").display(),
        ),
    )
    .unwrap();
    rlpt_ok(&run_args("train", &config, &output, &["--steps", "2"]));
    let lines = metrics_lines(&output);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["groups_kept"], 2, "{line}");
        assert!(line["grad_norm"].as_f64().unwrap().is_finite(), "{line}");
        assert!(line["response_length_mean"].as_f64().unwrap() > 0.0);
    }
    let state: Value = serde_json::from_str(
        &fs::read_to_string(latest(&output).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["step"], 2);
}

/// The sample triples with every context and segment emptied, written to `dir`.
fn emptied_triples(dir: &Path) -> PathBuf {
    let batches = read_parquet(&repo_root().join("data-samples/triples/train.parquet"));
    let schema = batches[0].schema();
    let path = dir.join("empty.parquet");
    let mut writer =
        ArrowWriter::try_new(fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
    for batch in batches {
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| match field.name().as_str() {
                "context" | "segment" => {
                    let empty = StringArray::from(vec![""; batch.num_rows()]);
                    arrow_cast::cast(&empty, field.data_type()).unwrap()
                }
                _ => column.clone(),
            })
            .collect();
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    path
}

/// Regression: `rlpt sft` on triples with empty context and segment spun forever at
/// 100% CPU (GRPO already stopped with an error).
#[test]
fn sft_on_triples_without_text_stops_with_an_error() {
    let work = tempfile::tempdir().unwrap();
    let input = emptied_triples(work.path());
    for command in ["sft", "train"] {
        let output = work.path().join(command);
        let run = rlpt(&[
            command,
            "--input",
            arg(&input),
            "--output",
            arg(&output),
            "--steps",
            "2",
        ]);
        assert_eq!(run.status.code(), Some(2), "{command}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("triples in a row"),
            "{command}: {}",
            stderr(&run)
        );
    }
}

/// A config in `dir` training the tiny model on next-token over the sample triples,
/// with `top` (top-level keys) and `tables` (sections) added.
fn tiny_next_token_config(dir: &Path, top: &str, tables: &str) -> PathBuf {
    let samples = repo_root().join("data-samples");
    let config = dir.join("next-token.toml");
    fs::write(
        &config,
        format!(
            "model = \"{}\"\ninput = \"{}\"\n{top}\n[[task]]\nkind = \"next-token\"\n{tables}\n",
            samples.join("tiny").display(),
            samples.join("triples/train.parquet").display(),
        ),
    )
    .unwrap();
    config
}

/// Regression: GRPO steps that kept no group (the random tiny model never answers in
/// the format) logged groups_kept 0 and loss null on every step, and the run still
/// reported its steps done. Each such step is warned about, with the reason, and the
/// run stops after `max_idle_steps` of them in a row.
#[test]
fn grpo_steps_that_train_on_nothing_are_warned_about_then_stop_the_run() {
    let work = tempfile::tempdir().unwrap();
    let config = tiny_next_token_config(
        work.path(),
        "max_idle_steps = 2",
        "[sampling]\nmax_tokens = 8",
    );
    let output = work.path().join("idle");
    let run = rlpt(&run_args("train", &config, &output, &["--steps", "5"]));
    let message = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{message}");
    assert!(
        message.contains("GRPO step 1 trained on nothing")
            && message.contains("2 GRPO steps in a row trained on nothing")
            && message.contains("answer in the task's format")
            && message.contains("rlpt sft"),
        "{message}"
    );
    let lines = metrics_lines(&output);
    assert_eq!(lines.len(), 1, "the steps before the stop are kept");
    assert_eq!(lines[0]["format_failure_fraction"], 1.0);
}

/// RPT starts dynamic sampling at a later step: before `dynamic_sampling_from_step`
/// every group is kept, even one whose rewards are all equal; from it on such groups
/// are dropped and refilled. (The random tiny model never answers in the format, so
/// every group's rewards are equal.)
#[test]
fn dynamic_sampling_starts_at_its_configured_step() {
    let work = tempfile::tempdir().unwrap();
    let config = tiny_next_token_config(
        work.path(),
        "max_idle_steps = 0",
        "[sampling]\nmax_tokens = 4\n[grpo]\ngroup_size = 2\nprompts_per_step = 2\n\
         max_refill_rounds = 1\ndynamic_sampling_from_step = 3",
    );
    let output = work.path().join("late");
    rlpt_ok(&run_args("train", &config, &output, &["--steps", "3"]));
    let kept_of_sampled: Vec<(u64, u64)> = metrics_lines(&output)
        .iter()
        .map(|m| {
            (
                m["groups_kept"].as_u64().unwrap(),
                m["groups_sampled"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kept_of_sampled, [(2, 2), (2, 2), (0, 4)]);
}

/// Regression: a fresh run truncated a `metrics.jsonl` it found in `--output` (a
/// user's file, or the file a link there points to).
#[test]
fn a_fresh_run_refuses_an_output_holding_files_rlpt_did_not_write() {
    let work = tempfile::tempdir().unwrap();
    let users = work.path().join("users-metrics.jsonl");
    fs::write(&users, "{\"mine\": 1}\n").unwrap();
    let plain = work.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::copy(&users, plain.join("metrics.jsonl")).unwrap();
    let linked = work.path().join("linked");
    fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&users, linked.join("metrics.jsonl")).unwrap();
    for output in [&plain, &linked] {
        let run = rlpt(&["train", "--output", arg(output), "--steps", "1"]);
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(
            stderr(&run).contains("holds files rlpt did not write there (metrics.jsonl"),
            "{}",
            stderr(&run)
        );
        assert_eq!(
            fs::read_to_string(output.join("metrics.jsonl")).unwrap(),
            "{\"mine\": 1}\n"
        );
    }
    // A directory a run marked but left without a checkpoint is started again.
    let own = work.path().join("own");
    rlpt_ok(&["train", "--output", arg(&own), "--steps", "1"]);
    for entry in fs::read_dir(&own).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("step-")
            || path.ends_with("latest")
        {
            fs::remove_dir_all(&path)
                .or_else(|_| fs::remove_file(&path))
                .unwrap();
        }
    }
    rlpt_ok(&["train", "--output", arg(&own), "--steps", "1"]);
    assert_eq!(metrics_lines(&own).len(), 1);
}

/// The shipped demo's cold start teaches the random tiny model the answer format
/// (`rlpt train` runs it into `OUTPUT/cold-start/` first): GRPO's completions carry
/// answers, where the same model without it never gives one (the test above). A
/// resume reuses the finished cold start.
#[test]
fn the_cold_start_teaches_the_tiny_model_the_answer_format() {
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("train");
    rlpt_ok(&["train", "--output", arg(&output), "--steps", "3"]);
    let cold = metrics_lines(&output.join("cold-start"));
    assert_eq!(cold.len(), 60);
    let mean = |lines: &[Value]| {
        lines
            .iter()
            .map(|m| m["loss"].as_f64().unwrap())
            .sum::<f64>()
            / lines.len() as f64
    };
    let (first, last) = (mean(&cold[..10]), mean(&cold[50..]));
    assert!(
        last < first - 1.0,
        "the answers' loss falls: {first} → {last}"
    );
    let grpo = metrics_lines(&output);
    let answered: f64 = grpo
        .iter()
        .map(|m| 1.0 - m["format_failure_fraction"].as_f64().unwrap())
        .sum::<f64>()
        / grpo.len() as f64;
    assert!(answered > 0.3, "answers in the format: {answered}");

    let cold_start = latest(&output.join("cold-start"));
    let weights = fs::read(cold_start.join("model.safetensors")).unwrap();
    rlpt_ok(&[
        "train",
        "--output",
        arg(&output),
        "--steps",
        "4",
        "--resume",
    ]);
    assert_eq!(
        metrics_lines(&output.join("cold-start")).len(),
        60,
        "reused"
    );
    assert_eq!(
        fs::read(cold_start.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(metrics_lines(&output).len(), 4);
}

/// The trainer reads shards through the engine's table reader: a table that is not
/// triples is refused before any step, naming the shard and the table it is.
#[test]
fn training_on_a_table_that_is_not_triples_names_the_shard() {
    let work = tempfile::tempdir().unwrap();
    let documents = work.path().join("documents");
    rlpt_ok(&ingest_args(&sample_input(), &documents, &[]));
    let run = rlpt(&[
        "train",
        "--input",
        arg(&documents),
        "--output",
        arg(&work.path().join("run")),
        "--steps",
        "1",
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let message = stderr(&run);
    let shard = shards(&documents)[0].clone();
    assert!(message.contains(arg(&shard)), "{message}");
    assert!(
        message.contains("triples") && message.contains("documents"),
        "{message}"
    );
}
