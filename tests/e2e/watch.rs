//! Training you can watch: TensorBoard event files (`tensorboard = true`) that
//! TensorBoard's own loader reads, and `rlpt plot`'s PNG of a run.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::*;

fn triples() -> PathBuf {
    repo_root().join("data-samples/triples/train.parquet")
}

/// The scalars of `dir` as TensorBoard reads them: tag → [(step, value)].
fn tensorboard_scalars(python: &str, dir: &Path) -> Value {
    python_report(python, "read_tensorboard.py", &[arg(dir)], &[])
}

#[test]
fn tensorboard_holds_each_steps_metrics_and_a_resume_keeps_it_in_step() {
    let Some(python) = hf_python() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let config = train_config_with_cold_start(work.path(), 2);
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("tensorboard = false"),
        "train.toml lists the switch"
    );
    fs::write(
        &config,
        text.replace("tensorboard = false", "tensorboard = true"),
    )
    .unwrap();
    let run = work.path().join("run");
    let input = triples();
    let train = |steps: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            arg(&config),
            "--input",
            arg(&input),
            "--output",
            arg(&run),
            "--steps",
            steps,
        ];
        args.extend_from_slice(extra);
        rlpt_ok(&args);
    };
    train("2", &[]);
    train("3", &["--resume"]);

    let scalars = tensorboard_scalars(&python, &run.join("tensorboard"));
    let lines = metrics_lines(&run);
    assert_eq!(lines.len(), 3);
    for key in ["reward_mean", "lr", "timing/rollout_s", "groups_kept"] {
        let points = scalars[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {scalars}"));
        let steps: Vec<u64> = points.iter().map(|p| p[0].as_u64().unwrap()).collect();
        assert_eq!(steps, [1, 2, 3], "{key}: one point per step, none twice");
    }
    for (point, line) in scalars["reward_mean"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&lines)
    {
        let logged = line["reward_mean"].as_f64().unwrap() as f32;
        assert_eq!(point[1].as_f64().unwrap() as f32, logged);
    }
    assert!(scalars.get("step").is_none(), "the step is the x-axis");
    let cold_start = tensorboard_scalars(&python, &run.join("cold-start/tensorboard"));
    assert_eq!(
        cold_start["loss"].as_array().unwrap().len(),
        2,
        "{cold_start}"
    );
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let field = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (field(16), field(20))
}

#[test]
fn plot_draws_a_run_and_its_cold_start_and_refuses_a_run_without_steps() {
    let work = tempfile::tempdir().unwrap();
    let config = train_config_with_cold_start(work.path(), 2);
    let run = work.path().join("run");
    rlpt_ok(&[
        "train",
        "--config",
        arg(&config),
        "--input",
        arg(&triples()),
        "--output",
        arg(&run),
        "--steps",
        "2",
    ]);
    let plotted = rlpt_ok(&["plot", arg(&run)]);
    assert!(
        stdout(&plotted).contains("metrics.png"),
        "{}",
        stdout(&plotted)
    );
    assert_eq!(png_size(&run.join("metrics.png")), (1400, 1500));
    let sft_png = work.path().join("cold-start.png");
    rlpt_ok(&[
        "plot",
        arg(&run.join("cold-start")),
        "--output",
        arg(&sft_png),
    ]);
    assert_eq!(png_size(&sft_png), (1400, 1500));
    let partial: Vec<PathBuf> = entries_under(work.path())
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains(".tmp"))
        })
        .collect();
    assert!(
        partial.is_empty(),
        "nothing half-written is left: {partial:?}"
    );

    let empty = work.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("metrics.jsonl"), "").unwrap();
    let refused = rlpt(&["plot", arg(&empty)]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("no steps logged yet"),
        "{}",
        stderr(&refused)
    );
    fs::write(empty.join("metrics.jsonl"), "{\"step\": 1}\nnot json\n").unwrap();
    let refused = rlpt(&["plot", arg(&empty)]);
    assert!(
        stderr(&refused).contains("metrics.jsonl line 2"),
        "{}",
        stderr(&refused)
    );
    assert!(!empty.join("metrics.png").exists());
}
