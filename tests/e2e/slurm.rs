//! `rlpt slurm`: the sample pipeline submitted to a real one-node Slurm cluster as
//! chained 3-task arrays gives the same bytes as a local `rlpt run`. The cluster is
//! Debian's slurm-wlm started by `tests/slurm/cluster.sh start` (`.ci/run` does it);
//! without one the test is skipped, unless RLPT_REQUIRE_SLURM=1. Also: dry runs,
//! `rlpt slurm cancel`, and `rlpt run`'s step selection that the scripts use.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Whether a Slurm controller answers here; panics when RLPT_REQUIRE_SLURM=1 and none does.
fn slurm_is_up() -> bool {
    let up = Command::new("sinfo")
        .arg("--noheader")
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var("RLPT_REQUIRE_SLURM").as_deref() != Ok("1"),
            "RLPT_REQUIRE_SLURM=1 but no Slurm cluster answers: run tests/slurm/cluster.sh start"
        );
        eprintln!("skipped: no Slurm cluster (tests/slurm/cluster.sh start makes one)");
    }
    up
}

/// Job ids from `rlpt slurm submit`'s table (step, job, tasks, script).
fn job_ids(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

/// Waits until none of `jobs` is pending or running.
fn wait_for(jobs: &[String], out: &Path) {
    let started = Instant::now();
    loop {
        let queue = Command::new("squeue")
            .args(["--noheader", "--format=%i %T", "--jobs"])
            .arg(jobs.join(","))
            .output()
            .unwrap();
        if stdout(&queue).trim().is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30 * 60),
            "jobs still queued after 30 minutes:\n{}\n{}",
            stdout(&queue),
            logs(out)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The jobs' logs, to show when something failed.
fn logs(out: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(out.join("_slurm/logs")) {
        for entry in entries {
            let path = entry.unwrap().path();
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            text += &format!("== {}\n{}\n", path.display(), log);
        }
    }
    text
}

/// The default config in `dir`, its data linked to the repository's but without the
/// fetched models, so that entropy tags with its fallback (the tiny model): the steps,
/// units and arrays of the default run at a fraction of its cost. `run::` runs the
/// default config itself with the fetched proxy model.
fn default_config_with_the_fallback_proxy(dir: &Path) -> std::path::PathBuf {
    let samples = repo_root().join("data-samples");
    let copy = dir.join("data-samples");
    std::fs::create_dir(&copy).unwrap();
    for name in [
        "wiki-stem",
        "benchmarks",
        "tokenizers",
        "tiny",
        "train.toml",
    ] {
        std::os::unix::fs::symlink(samples.join(name), copy.join(name)).unwrap();
    }
    let config = copy.join("pipeline.toml");
    std::fs::copy(samples.join("pipeline.toml"), &config).unwrap();
    config
}

#[test]
fn the_default_config_on_a_slurm_cluster_matches_a_local_run() {
    if !slurm_is_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = default_config_with_the_fallback_proxy(dir.path());
    // Both runs write to the same path (moved aside in between), as a user rerunning
    // with Slurm would: paths are part of some settings, and so of their hashes.
    let out = dir.path().join("out");
    rlpt_ok(&["-q", "run", arg(&config), "--out-dir", arg(&out)]);
    let local = dir.path().join("local");
    std::fs::rename(&out, &local).unwrap();

    let submitted = rlpt_ok(&[
        "slurm",
        "submit",
        arg(&config),
        "--array",
        "3",
        "--out-dir",
        arg(&out),
    ]);
    let table = stdout(&submitted);
    let jobs = job_ids(&table);
    assert_eq!(jobs.len(), 12, "one job per step:\n{table}");
    let scripts: Vec<String> = table
        .lines()
        .skip(1)
        .map(|line| std::fs::read_to_string(line.split_whitespace().nth(3).unwrap()).unwrap())
        .collect();
    assert!(scripts[2].contains("--array=0-2"), "{}", scripts[2]);
    assert!(
        scripts[2].contains("--only dedup-buckets --rank \"$SLURM_ARRAY_TASK_ID\" --world-size 3"),
        "{}",
        scripts[2]
    );
    assert!(!scripts[3].contains("--array"), "clusters is one job");
    wait_for(&jobs, &out);

    let status = stdout(&rlpt_ok(&["slurm", "status", "--out-dir", arg(&out)]));
    let steps: Vec<&str> = status.lines().skip(1).collect();
    assert_eq!(steps.len(), 12, "{status}");
    for line in &steps {
        assert!(
            line.contains(" done ") && line.contains("COMPLETED"),
            "{status}\n{}",
            logs(&out)
        );
    }
    assert_same_run_output(&local, &out);
}

#[test]
fn a_dry_run_writes_chained_scripts_and_submits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let dry = rlpt_ok(&[
        "slurm",
        "submit",
        "--array",
        "4",
        "--partition",
        "cpu",
        "--sbatch-arg=--mem=8G",
        "--out-dir",
        arg(&out),
        "--dry-run",
    ]);
    let lines: Vec<String> = stdout(&dry).lines().map(String::from).collect();
    assert_eq!(lines.len(), 13, "{lines:?}");
    assert!(lines[0].starts_with("sbatch ") && lines[0].ends_with("01-ingest.sbatch"));
    assert!(
        lines[1].contains("--dependency=afterok:<ingest>"),
        "{}",
        lines[1]
    );
    assert!(!out.join("_slurm/jobs.json").exists());
    let pii = std::fs::read_to_string(out.join("_slurm/07-pii.sbatch")).unwrap();
    for expected in [
        "#SBATCH --array=0-3",
        "#SBATCH --partition=cpu",
        "#SBATCH --mem=8G",
        "--only pii --rank \"$SLURM_ARRAY_TASK_ID\" --world-size 4",
    ] {
        assert!(pii.contains(expected), "{expected} in\n{pii}");
    }
    let train = std::fs::read_to_string(out.join("_slurm/11-train.sbatch")).unwrap();
    assert!(
        !train.contains("--array") && train.contains("--only train\n"),
        "{train}"
    );
    // Nothing ran: every step is still to do, and there is nothing to cancel.
    let status = stdout(&rlpt_ok(&["slurm", "status", "--out-dir", arg(&out)]));
    assert_eq!(status.matches("not started").count(), 12, "{status}");
    let cancel = rlpt(&["slurm", "cancel", "--out-dir", arg(&out)]);
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("nothing to cancel") && stderr(&cancel).contains("jobs.json"),
        "{}",
        stderr(&cancel)
    );
}

#[test]
fn cancel_ends_the_unfinished_jobs_of_a_submission() {
    if !slurm_is_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let submitted = rlpt_ok(&["slurm", "submit", "--array", "2", "--out-dir", arg(&out)]);
    let jobs = job_ids(&stdout(&submitted));
    let cancelled = stdout(&rlpt_ok(&["slurm", "cancel", "--out-dir", arg(&out)]));
    let lines: Vec<&str> = cancelled.lines().collect();
    assert_eq!(lines.len(), 12, "{cancelled}");
    // Eval waits on eleven jobs before it: still pending, so cancelled.
    assert!(
        lines[11].starts_with("eval")
            && lines[11].contains(&jobs[11])
            && lines[11].ends_with("cancelled"),
        "{cancelled}"
    );
    wait_for(&jobs, &out);
    let status = stdout(&rlpt_ok(&["slurm", "status", "--out-dir", arg(&out)]));
    let eval = status.lines().find(|l| l.starts_with("eval")).unwrap();
    assert!(
        eval.contains("not started") && eval.contains("CANCELLED"),
        "{status}"
    );
    assert!(!out.join("eval.json").exists());
    // Nothing is left to cancel.
    let again = stdout(&rlpt_ok(&["slurm", "cancel", "--out-dir", arg(&out)]));
    assert!(
        !again.contains("cancelled\n") && again.contains("left as CANCELLED"),
        "{again}"
    );
}

/// A three-stage config (ingest, dedup, pii) on the sample, written into `dir`.
fn small_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("small.toml");
    let text = format!(
        "[[stage]]\nstage = \"ingest\"\ninput = \"{}\"\noutput = \"documents\"\n\
         [[stage]]\nstage = \"dedup\"\noutput = \"deduped\"\n\
         [[stage]]\nstage = \"pii\"\noutput = \"scrubbed\"\n",
        sample_input().display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn steps_run(output: &std::process::Output) -> Vec<String> {
    summary_rows(output)
        .into_iter()
        .map(|cells| cells[0].clone())
        .collect()
}

#[test]
fn run_selects_steps_with_only_and_from_and_shares_one_step_across_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", arg(&config), "--out-dir", arg(&out)];
        args.extend(extra);
        rlpt(&args)
    };
    let only = run(&["--only", "ingest"]);
    assert_eq!(steps_run(&only), ["ingest"], "{}", stderr(&only));
    assert!(!out.join("deduped").exists());

    let early = run(&["--only", "pii"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(stderr(&early).contains("deduped"), "{}", stderr(&early));
    let unknown = run(&["--only", "dedupe"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("dedup-buckets"),
        "{}",
        stderr(&unknown)
    );
    let several = run(&["--world-size", "3", "--rank", "0"]);
    assert_eq!(several.status.code(), Some(2));
    assert!(
        stderr(&several).contains("runs one step"),
        "{}",
        stderr(&several)
    );

    // The buckets step shared by three ranks, each doing its bands.
    run(&["--only", "dedup-signatures"]);
    for rank in ["0", "1", "2"] {
        let share = run(&[
            "--only",
            "dedup-buckets",
            "--rank",
            rank,
            "--world-size",
            "3",
        ]);
        assert_eq!(steps_run(&share), ["dedup-buckets"], "{}", stderr(&share));
    }
    let rest = run(&["--from", "dedup-clusters"]);
    assert_eq!(
        steps_run(&rest),
        ["dedup-clusters", "dedup-filter", "pii"],
        "{}",
        stderr(&rest)
    );
    let whole = dir.path().join("whole");
    rlpt_ok(&["-q", "run", arg(&config), "--out-dir", arg(&whole)]);
    assert_same_run_output(&whole, &out);
}

/// Regression (security): a newline in `--out-dir`, `--time`, `--partition` or
/// `--sbatch-arg` ended its `#SBATCH` line and ran the rest as shell in the job. Control
/// characters are refused; `$()` and quotes stay literal, in the directives and in the
/// command the script runs.
#[test]
fn values_cannot_inject_shell_into_the_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("PWNED");
    let injection = format!("x\ntouch {}", pwned.display());
    let out = dir.path().join("out");
    for (flag, value) in [
        ("--partition", injection.clone()),
        ("--time", injection.clone()),
        (
            "--sbatch-arg",
            format!("--mem=8G\ntouch {}", pwned.display()),
        ),
        (
            "--out-dir",
            format!("{}\ntouch {}", out.display(), pwned.display()),
        ),
    ] {
        let mut args = vec!["slurm", "submit", "--array", "2", "--dry-run", flag, &value];
        if flag != "--out-dir" {
            args.extend(["--out-dir", arg(&out)]);
        }
        let refused = rlpt(&args);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{flag}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains(flag) && stderr(&refused).contains("control character"),
            "{flag}: {}",
            stderr(&refused)
        );
        assert!(!out.join("_slurm").exists(), "{flag}: nothing is written");
    }

    let tricky = dir
        .path()
        .join(format!("out $(touch {}) 'q' `id`", pwned.display()));
    let echo = which_echo();
    let written = rlpt_ok(&[
        "slurm",
        "submit",
        "--array",
        "2",
        "--dry-run",
        "--partition",
        &format!("cpu $(touch {})", pwned.display()),
        "--rlpt",
        &echo,
        "--out-dir",
        arg(&tricky),
    ]);
    assert!(stdout(&written).contains("dry run"), "{}", stdout(&written));
    let script = tricky.join("_slurm/07-pii.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --partition=\"cpu $(touch"), "{text}");
    // Run the script as the job would (bash reads #SBATCH lines as comments), with
    // `echo` for rlpt: it prints the arguments it was given, literally.
    let ran = std::process::Command::new("bash")
        .arg(&script)
        .current_dir(repo_root())
        .env("SLURM_ARRAY_TASK_ID", "0")
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let echoed = String::from_utf8_lossy(&ran.stdout);
    assert!(echoed.contains(arg(&tricky)), "{echoed}");
    assert!(!pwned.exists(), "a value ran as shell");
}

fn which_echo() -> String {
    ["/bin/echo", "/usr/bin/echo"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("echo")
        .to_string()
}
