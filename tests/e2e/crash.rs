//! Crash safety of `rlpt run`: SIGKILL at 20 random moments spread over every step of
//! the pipeline (one in each step's time window, the rest anywhere), each followed by a
//! rerun to completion, gives the same tables, checkpoints, metrics and report as an
//! uninterrupted run. The config is the default pipeline with the tiny model for
//! entropy and training (SmolLM2 would make each of the 21 runs take minutes) and a
//! 6-step cold start instead of 60 (the train stage is most of each run's time).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rlpt_rng::SplitMix64;

use crate::harness::*;

/// The default pipeline, every path absolute, the tiny model everywhere, small units
/// (more shard writes to land in), six training steps (three checkpoint writes) after
/// a six-step cold start.
fn crash_config(dir: &Path) -> PathBuf {
    let samples = repo_root().join("data-samples");
    let train_config = train_config_with_cold_start(dir, 6);
    let text = std::fs::read_to_string(samples.join("pipeline.toml"))
        .unwrap()
        .replace(
            "model = \"cache/models/SmolLM2-135M-Instruct.Q4_1.gguf\"",
            "model = \"tiny\"",
        )
        .replace("unit_bytes = \"64KiB\"", "unit_bytes = \"24KiB\"")
        .replace("steps = 4", "steps = 6")
        .replace("limit = 60", "limit = 24");
    let mut absolute = String::new();
    for line in text.lines() {
        let line = match line.split_once(" = \"") {
            Some((key, rest))
                if ["input", "config", "tokenizer", "model", "fallback_model"]
                    .contains(&key.trim()) =>
            {
                format!("{key} = \"{}/{rest}", samples.display())
            }
            _ if line.trim_start().starts_with('"') && line.contains("=benchmarks/") => line
                .replace(
                    "=benchmarks/",
                    &format!("={}/benchmarks/", samples.display()),
                ),
            _ => line.to_string(),
        };
        absolute += &line;
        absolute.push('\n');
    }
    let absolute = absolute.replace(
        &format!("config = \"{}\"", samples.join("train.toml").display()),
        &format!("config = \"{}\"", train_config.display()),
    );
    assert!(absolute.contains("model = \"") && absolute.contains("steps = 6"));
    assert!(absolute.contains(&train_config.display().to_string()));
    let path = dir.join("crash.toml");
    std::fs::write(&path, absolute).unwrap();
    path
}

/// The steps of the config in order (the first column of `rlpt slurm status`).
fn step_names(config: &Path, out: &Path) -> Vec<String> {
    status(config, out)
        .into_iter()
        .map(|(step, _)| step)
        .collect()
}

/// (step, state) of every step of the config, from `rlpt slurm status`, which reads
/// the manifests and checkpoints.
fn status(config: &Path, out: &Path) -> Vec<(String, String)> {
    let output = rlpt_ok(&["slurm", "status", arg(config), "--out-dir", arg(out)]);
    stdout(&output)
        .lines()
        .skip(1)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[0].to_string(), words[3..].join(" "))
        })
        .collect()
}

/// The first step a killed run left unfinished, by what it wrote.
fn interrupted_step(config: &Path, out: &Path) -> String {
    status(config, out)
        .into_iter()
        .find(|(_, state)| !state.starts_with("done"))
        .map_or("nothing (all done)".into(), |(step, _)| step)
}

#[test]
fn sigkill_at_twenty_moments_across_every_step_then_rerun_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = crash_config(dir.path());
    let out = dir.path().join("out");
    // The uninterrupted run, one step at a time, timing each step's window.
    let mut windows: Vec<(String, f64, f64)> = Vec::new();
    for step in step_names(&config, &out) {
        let started = Instant::now();
        rlpt_ok(&[
            "-q",
            "run",
            arg(&config),
            "--out-dir",
            arg(&out),
            "--only",
            &step,
        ]);
        let start = windows.last().map_or(0.0, |w| w.2);
        windows.push((step, start, start + started.elapsed().as_secs_f64()));
    }
    assert_eq!(windows.len(), 12, "{windows:?}");
    let total = windows[11].2;
    let expected = dir.path().join("reference");
    std::fs::rename(&out, &expected).unwrap();

    // One moment in each step's window (its last tenth left out: a whole run is a
    // little faster than its steps run one by one), the rest anywhere.
    // The kill moments, reproducible from their seed.
    let mut moments = SplitMix64::new(2026);
    let mut kills: Vec<f64> = windows
        .iter()
        .map(|(_, start, end)| start + 0.9 * (end - start) * moments.next_f64())
        .collect();
    while kills.len() < 20 {
        kills.push(0.9 * total * moments.next_f64());
    }
    let mut landed = Vec::new();
    let mut interrupted = std::collections::BTreeSet::new();
    for at in &kills {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = rlpt_in(&repo_root())
            .args(["-q", "run", arg(&config), "--out-dir", arg(&out)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(*at));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        let half_written = tmp_entries(&out);
        let step = interrupted_step(&config, &out);
        interrupted.insert(step.clone());
        landed.push(format!(
            "at {at:.2}s, in {step}: {}{}",
            if still_running {
                "killed"
            } else {
                "had finished"
            },
            if half_written.is_empty() {
                String::new()
            } else {
                format!(", left {half_written:?}")
            }
        ));
        rlpt_ok(&["-q", "run", arg(&config), "--out-dir", arg(&out)]);
        assert_same_run_output(&expected, &out);
        assert_eq!(
            tmp_entries(&out),
            Vec::<String>::new(),
            "after the kill {}",
            landed.last().unwrap()
        );
    }
    eprintln!("kills:\n  {}", landed.join("\n  "));
    let killed = landed.iter().filter(|l| l.contains("killed")).count();
    assert!(
        killed >= 15,
        "only {killed} of 20 kills landed mid-run:\n{landed:#?}"
    );
    assert!(
        interrupted.len() >= 6,
        "the kills interrupted only {interrupted:?}:\n{landed:#?}"
    );
}
