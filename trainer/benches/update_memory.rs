//! Peak memory of one GRPO update of SmolLM2-135M-Instruct: a group of 8 sequences of
//! 512, 2,048 and 8,192 tokens (a shared prompt of PARI/GP's TeX manual, 32-token
//! completions from later in it, rewards alternating 1 and 0), in f32 and bf16, with
//! and without activation checkpointing — `grpo_run::update` itself (loss, backward
//! pass, AdamW step) on a `Run` started from `data-samples/train-smollm2.toml`.
//!
//!     python3 data-samples/fetch.py models pari-doc
//!     cargo bench -p rlpt-trainer --bench update_memory
//!
//! Each configuration runs in its own process (this binary with `--one TOKENS DTYPE
//! on|off`), which prints its peak RSS (VmHWM) after loading and after the update and
//! the update's seconds; the driver stops a process whose RSS passes
//! `RLPT_BENCH_RSS_LIMIT_GB` (default 20) and prints a Markdown table.
//! `RLPT_BENCH_TOKENS` (e.g. `512,2048`) picks the lengths.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rlpt_trainer::optim::OptimConfig;
use rlpt_trainer::policy::Precision;
use rlpt_trainer::run::Run;
use rlpt_trainer::{Group, TrainConfig, update};

const GROUP: usize = 8;
const COMPLETION_TOKENS: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--one") {
        Some(at) => one(&args[at + 1], &args[at + 2], &args[at + 3]),
        None => drive(),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs every configuration in a child process and prints the table.
fn drive() {
    let limit_gb: f64 = std::env::var("RLPT_BENCH_RSS_LIMIT_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0);
    let lengths: Vec<String> = std::env::var("RLPT_BENCH_TOKENS")
        .unwrap_or_else(|_| "512,2048,8192".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let exe = std::env::current_exe().unwrap();
    println!("| tokens per sequence | dtype | checkpointing | peak RSS | after loading | update |");
    println!("|---|---|---|---|---|---|");
    for tokens in &lengths {
        for dtype in ["f32", "bf16"] {
            for checkpointing in ["on", "off"] {
                let row = run_child(&exe, tokens, dtype, checkpointing, limit_gb);
                println!("| {tokens} | {dtype} | {checkpointing} | {row} |");
            }
        }
    }
}

/// One configuration's cells: its figures, or how it ended.
fn run_child(exe: &Path, tokens: &str, dtype: &str, checkpointing: &str, limit_gb: f64) -> String {
    let mut child = Command::new(exe)
        .args(["--one", tokens, dtype, checkpointing])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut highest = 0.0f64;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            return match text.lines().find(|l| l.starts_with("result ")) {
                Some(line) if status.success() => line["result ".len()..].to_owned(),
                _ => format!("failed ({status}) | — | —"),
            };
        }
        let rss = rss_gb(child.id(), "VmRSS:").unwrap_or(0.0);
        highest = highest.max(rss);
        if rss > limit_gb {
            child.kill().unwrap();
            child.wait().unwrap();
            return format!("> {limit_gb:.0} GB (stopped) | — | —");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `/proc/PID/status` memory field in GB.
fn rss_gb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e6)
}

/// One update of one configuration, in this process.
fn one(tokens: &str, dtype: &str, checkpointing: &str) {
    let tokens: usize = tokens.parse().unwrap();
    let root = root();
    let mut config = TrainConfig::from_file(&root.join("data-samples/train-smollm2.toml")).unwrap();
    let output = tempfile::tempdir().unwrap();
    config.output = output.path().join("run");
    config.dtype = match dtype {
        "bf16" => Precision::Bf16,
        _ => Precision::F32,
    };
    config.grpo.activation_checkpointing = checkpointing == "on";
    config.input = root.join("data-samples/triples/train.parquet");
    let optim: OptimConfig = config.optim.clone();
    let files = vec![config.input.clone()];
    let mut run = Run::start(config, "grpo", optim, files, None, None).unwrap();
    let loaded = rss_gb(std::process::id(), "VmHWM:").unwrap();
    let groups = vec![group(&root, &run, tokens)];
    let started = Instant::now();
    update(&mut run, &groups, None, 1e-6).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let peak = rss_gb(std::process::id(), "VmHWM:").unwrap();
    println!("result {peak:.2} GB | {loaded:.2} GB | {seconds:.1} s");
}

/// A prompt of `tokens - 32` tokens of the manual and 8 completions of 32 tokens.
fn group(root: &Path, run: &Run, tokens: usize) -> Group {
    let manual = root.join("data-samples/cache/pari-doc/usersch3.tex");
    let text = std::fs::read_to_string(&manual).unwrap_or_else(|_| {
        panic!(
            "{} is missing: python3 data-samples/fetch.py pari-doc",
            manual.display()
        )
    });
    let ids = run.policy.tokenizer.encode(&text).unwrap();
    let prompt_tokens = tokens - COMPLETION_TOKENS;
    let completions = (0..GROUP)
        .map(|i| {
            let start = prompt_tokens + i * COMPLETION_TOKENS;
            ids[start..start + COMPLETION_TOKENS].to_vec()
        })
        .collect();
    Group {
        prompt: ids[..prompt_tokens].to_vec(),
        completions,
        rewards: (0..GROUP).map(|i| (i % 2) as f32).collect(),
    }
}
