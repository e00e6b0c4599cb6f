"""Does rlpt's GRPO teach a real model? SmolLM2-135M-Instruct on RPT's next-token task.

    python3 data-samples/fetch.py models wiki       # SmolLM2 and the Wikipedia leads
    cargo build --release -p rlpt-pipeline
    pip install -r bench/requirements.txt           # polars, matplotlib
    python3 bench/learning.py                       # ~1 hour on 2 CPU cores

Steps, each with the `rlpt` binary as a user runs it:
1. data: every 8th English Wikipedia lead of the fetched corpus (`--docs` of them) is
   ingested, segmented and entropy-tagged by SmolLM2 (`rlpt run`);
2. training (`rlpt train`): RLPT's cold start (supervised steps on answers in the
   three formats: `\\boxed{next word}` for next-token, the segment's start between
   prediction tags for asr and msr), then GRPO on next-token with RPT's prefix-token
   reward; a quarter of the documents (by id hash, `data.holdout`) never reach training;
3. evaluation (`rlpt eval --split heldout`) of the base model, the cold-start model and
   the GRPO model on those documents: greedy next-token accuracy in RPT's nested entropy
   buckets, and the same positions as plain next-token prediction, each with its
   bootstrap 95% interval, and GRPO's gain over the cold start with a paired bootstrap
   interval (the same positions resampled together); then the asr and msr reward rates
   (RLPT's prefix reward, judged by the base SmolLM2) with their intervals.

Writes bench/results/learning.json (figures, settings, timings) and learning.png (the
training reward per step and the held-out accuracies), and prints the README table.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data-samples"
MODEL = SAMPLES / "cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
WIKI = SAMPLES / "cache/wiki/wiki-en.jsonl"
RESULTS = ROOT / "bench/results"

PIPELINE = """out_dir = "{work}/data"

[[stage]]
stage = "ingest"
input = "{work}/docs.jsonl"
output = "documents"
source = "wikipedia"

[[stage]]
stage = "segment"
output = "triples"
tokenizer = "{samples}/tokenizers/smollm2-135m.json.gz"

[[stage]]
stage = "entropy"
output = "tagged"
model = "{model}"
"""

# Short answers (no reasoning: a 135M model cannot use it), a group of 8 at
# temperature 1, and a learning rate that moves a 135M model within a hundred steps.
TRAIN = """model = "{model}"
input = "{work}/data/tagged"
output = "{work}/train"
seed = 0
steps = {steps}
max_prompt_tokens = 160
max_idle_steps = 0

[data]
shuffle_buffer = 256
hard_token_entropy = {hard}
holdout = 0.25

[[task]]
kind = "next-token"
weight = 1.0
reward = "prefix-token"

[sampling]
temperature = 1.0
max_tokens = 8

[grpo]
group_size = 8
prompts_per_step = {prompts}
dynamic_sampling = true
max_refill_rounds = 1
micro_batch = 64
activation_checkpointing = false

[optim]
lr = {lr}
warmup_steps = 3
schedule = "constant"

[checkpoint]
every = 1000
keep_last = 1

[sft]
batch_size = 16
max_tokens = 256

[cold_start]
steps = {cold_steps}
lr = {cold_lr}
max_tokens = {cold_tokens}

# The cold start teaches all three answer formats, so the segment tasks can be
# evaluated too; GRPO trains next-token only (its reward needs no judge).
[[cold_start.task]]
kind = "next-token"
weight = 2.0

[[cold_start.task]]
kind = "asr"
weight = 1.0

[[cold_start.task]]
kind = "msr"
weight = 1.0
"""

# The segment tasks' evaluation: answers of up to --cold-tokens tokens (the tags take 13),
# RLPT's prefix reward judged by the base SmolLM2 (the config's `model`) for every model.
SEGMENT_TASKS = """
[[task]]
kind = "asr"
reward = "prefix-semantic"

[[task]]
kind = "msr"
reward = "prefix-semantic"
"""

MODELS = [
    ("base", "SmolLM2-135M-Instruct"),
    ("cold_start", "after the cold start"),
    ("grpo", "after GRPO"),
]
BUCKETS = ["all", "easy", "medium", "hard"]


def run(command: list, log: Path) -> float:
    """Runs `command`, its output into `log`; returns its wall time in seconds."""
    started = time.monotonic()
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed; see {log}")
    return time.monotonic() - started


def write_docs(path: Path, count: int) -> None:
    with open(WIKI) as lines, open(path, "w") as out:
        kept = 0
        for number, line in enumerate(lines):
            if number % 8 == 0 and kept < count:
                out.write(line)
                kept += 1


def evaluate(rlpt: str, config: Path, segment_config: Path, work: Path, limit: int,
             segment_limit: int) -> dict:
    """Each model on the held-out triples: next-token (first `limit` triples) and the
    segment tasks (first `segment_limit`), each with its own config."""
    models = {
        "base": ["--model", str(MODEL)],
        "cold_start": ["--checkpoint", str(work / "train/cold-start")],
        "grpo": ["--checkpoint", str(work / "train")],
    }
    runs = [("next-token", config, limit, "next-token"),
            ("segments", segment_config, segment_limit, "asr,msr")]
    reports, segments, seconds = {}, {}, {}
    for key, flags in models.items():
        for name, task_config, count, tasks in runs:
            report = work / f"eval-{key}-{name}.json"
            seconds[f"{key} {name}"] = run(
                [rlpt, "eval", "--config", task_config, *flags, "--input",
                 work / "data/tagged", "--split", "heldout", "--tasks", tasks,
                 "--limit", str(count), "--output", report],
                work / f"eval-{key}-{name}.log",
            )
            found = json.loads(report.read_text())
            if name == "next-token":
                reports[key] = found["next-token"]
            else:
                segments[key] = {task: found[task] for task in ("asr", "msr")}
    return {"reports": reports, "segments": segments, "seconds": seconds}


def paired_difference(before: str, after: str, resamples: int = 2000) -> dict:
    """The accuracy gain from `before` to `after` (per-position outcomes of two models on
    the same positions, as `rlpt eval` reports them) with its paired percentile-bootstrap
    95% interval: positions are resampled together, so what both models get right or
    wrong alike does not widen it."""
    import random

    assert len(before) == len(after), "the two evaluations saw different positions"
    pairs = [(a == "1", b == "1") for a, b in zip(before, after)]
    n = len(pairs)
    rng = random.Random(0)
    gains = sorted(
        sum(after_right - before_right for before_right, after_right in
            (pairs[rng.randrange(n)] for _ in range(n))) / n
        for _ in range(resamples)
    )
    gain = sum(b - a for a, b in pairs) / n
    return {"gain": gain, "ci95": [gains[round(0.025 * (resamples - 1))],
                                   gains[round(0.975 * (resamples - 1))]],
            "only_after": sum(b and not a for a, b in pairs),
            "only_before": sum(a and not b for a, b in pairs), "n": n}


def read_metrics(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(metrics: list, cold: list, reports: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = [m["step"] for m in metrics]
    rewards = [m["reward_mean"] for m in metrics]
    window = 10
    smooth = [sum(rewards[max(0, i - window + 1): i + 1]) / len(rewards[max(0, i - window + 1): i + 1])
              for i in range(len(rewards))]
    left.plot(steps, rewards, color="0.75", label="reward mean (step)")
    left.plot(steps, smooth, color="C0", label=f"reward mean ({window}-step mean)")
    left.plot(steps, [m["format_failure_fraction"] for m in metrics], color="C3",
              label="format failures (fraction)")
    left.set_xlabel(f"GRPO step (after {len(cold)} cold-start steps)")
    left.set_title("Training: next-token reward (prefix-token) per step")
    left.set_ylim(0, 1)
    left.legend()

    width = 0.25
    for i, (key, label) in enumerate(MODELS):
        buckets = reports[key]["buckets"]
        accuracy = [buckets[b]["accuracy"] for b in BUCKETS]
        errors = [[a - buckets[b]["ci95"][0] for a, b in zip(accuracy, BUCKETS)],
                  [buckets[b]["ci95"][1] - a for a, b in zip(accuracy, BUCKETS)]]
        xs = [x + (i - 1) * width for x in range(len(BUCKETS))]
        right.bar(xs, accuracy, width, yerr=errors, capsize=3, label=label)
    right.set_xticks(range(len(BUCKETS)))
    right.set_xticklabels([f"{b} (n={reports['base']['buckets'][b]['n']})" for b in BUCKETS])
    right.set_title("Held-out next-token accuracy (greedy), 95% bootstrap intervals")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(reports: dict) -> str:
    def cell(tally: dict) -> str:
        low, high = tally["ci95"]
        return f"{100 * tally['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"

    rows = ["| model | " + " | ".join(BUCKETS) + " | format failures | standard next-token (all) |",
            "|---" * (len(BUCKETS) + 3) + "|"]
    for key, label in MODELS:
        report = reports[key]
        buckets = report["buckets"]
        rows.append(
            f"| {label} | " + " | ".join(cell(buckets[b]) for b in BUCKETS)
            + f" | {report['format_failures']}/{report['n']}"
            + f" | {cell(report['standard']['buckets']['all'])} |"
        )
    return "\n".join(rows)


def segment_table(segments: dict) -> str:
    def cell(tally: dict) -> str:
        low, high = tally["ci95"]
        return (f"{100 * tally['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] "
                f"({tally['format_failures']}/{tally['n']} format failures)")

    rows = ["| model | asr reward rate | msr reward rate |", "|---|---|---|"]
    for key, label in MODELS:
        rows.append(f"| {label} | {cell(segments[key]['asr'])} | {cell(segments[key]['msr'])} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rlpt", default=str(ROOT / "target/release/rlpt"))
    parser.add_argument("--work", default=str(ROOT / "rlpt-out/learning"))
    parser.add_argument("--docs", type=int, default=600, help="Wikipedia leads used")
    parser.add_argument("--hard", type=float, default=0.5,
                        help="next-token positions trained on: proxy entropy at least this")
    parser.add_argument("--cold-steps", type=int, default=20, help="cold-start steps of 16")
    parser.add_argument("--cold-lr", type=float, default=3e-5)
    parser.add_argument("--steps", type=int, default=90, help="GRPO steps")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per GRPO step")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--eval-limit", type=int, default=400,
                        help="held-out triples read for next-token")
    parser.add_argument("--segment-limit", type=int, default=80,
                        help="held-out triples read for asr and msr")
    parser.add_argument("--cold-tokens", type=int, default=32,
                        help="answer budget of the cold start and the segment tasks")
    args = parser.parse_args()
    for needed in (MODEL, WIKI, Path(args.rlpt)):
        if not needed.exists():
            sys.exit(f"{needed} is missing: see this script's first lines")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    write_docs(work / "docs.jsonl", args.docs)
    fill = {"work": work, "samples": SAMPLES, "model": MODEL}
    (work / "pipeline.toml").write_text(PIPELINE.format(**fill))
    data_s = run([args.rlpt, "run", work / "pipeline.toml"], work / "data.log")
    config = work / "train.toml"
    config.write_text(TRAIN.format(**fill, steps=args.steps, prompts=args.prompts, lr=args.lr,
                                   hard=args.hard, cold_steps=args.cold_steps,
                                   cold_lr=args.cold_lr, cold_tokens=args.cold_tokens))
    segment_config = work / "eval-segments.toml"
    segment_config.write_text(
        config.read_text().replace("max_tokens = 8\n", f"max_tokens = {args.cold_tokens}\n", 1)
        + SEGMENT_TASKS)
    train_s = run([args.rlpt, "train", "--config", config], work / "train.log")
    evaluation = evaluate(args.rlpt, config, segment_config, work, args.eval_limit,
                          args.segment_limit)
    metrics = read_metrics(work / "train/metrics.jsonl")
    cold = read_metrics(work / "train/cold-start/metrics.jsonl")
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(metrics, cold, evaluation["reports"], RESULTS / "learning.png")
    reports = evaluation["reports"]
    gain = paired_difference(reports["cold_start"]["outcomes"], reports["grpo"]["outcomes"])
    result = {
        "settings": vars(args) | {"train_config": config.read_text()},
        "grpo_gain_over_cold_start": gain,
        "seconds": {"data": data_s, "train": train_s, "eval": evaluation["seconds"],
                    "total": time.monotonic() - started},
        "cpus": os.cpu_count(),
        "eval": evaluation["reports"],
        "eval_segments": evaluation["segments"],
        "training": [{k: m.get(k) for k in ("step", "reward_mean", "format_failure_fraction",
                                            "groups_kept", "groups_sampled", "timing")}
                     for m in metrics],
    }
    (RESULTS / "learning.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(evaluation["reports"]))
    print()
    print(segment_table(evaluation["segments"]))
    print(f"\nGRPO over the cold start, all positions: {100 * gain['gain']:+.1f} points, "
          f"paired 95% interval [{100 * gain['ci95'][0]:+.1f}, {100 * gain['ci95'][1]:+.1f}] "
          f"(right only after GRPO {gain['only_after']}, only before {gain['only_before']})")
    print(f"\ndata {data_s:.0f} s, train {train_s:.0f} s, eval "
          f"{sum(evaluation['seconds'].values()):.0f} s, total {result['seconds']['total']:.0f} s")


if __name__ == "__main__":
    main()
