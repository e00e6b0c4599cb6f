#!/usr/bin/env python3
"""Every benchmark and peer comparison in one command; rewrites README.md's summary table.

    python3 bench/suite.py                       # all of them (~20 minutes on 2 cores)
    python3 bench/suite.py --only pii,segment    # some of them
    python3 bench/suite.py --python /tmp/dtenv/bin/python --trl-python /tmp/trlenv/bin/python

It builds the release binary, fetches the corpus and model (data-samples/fetch.py), makes
virtual environments with the peers (bench/.venv from requirements.txt, bench/.venv-trl
from requirements-trl.txt) unless given Pythons, runs each benchmark as its own process,
collects the `BENCH {json}` line each prints (bench/common.py), and writes the table
between the bench-suite markers in README.md: rlpt's throughput, the ratio to the peer
measured in the same run, the ratio to a bare Parquet read+write of the same documents
where the benchmark has one, and the peak RSS of the rlpt process measured. Each
benchmark's whole output goes to bench/results/NAME.log.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BEGIN, END = "<!-- bench-suite:begin -->", "<!-- bench-suite:end -->"

# name, command (PEERS / TRL stand for the Pythons with those packages)
BENCHMARKS = [
    ("stages", ["cargo", "bench", "-q", "-p", "rlpt-pipeline", "--bench", "stages"]),
    ("tokenizer", ["cargo", "bench", "-q", "-p", "rlpt-lm", "--bench", "tokenizer"]),
    ("dedup", ["PEERS", "bench/dedup_vs_datatrove.py"]),
    ("pii", ["PEERS", "bench/pii_vs_datatrove.py"]),
    ("filter", ["PEERS", "bench/filter_vs_datatrove.py"]),
    ("segment", ["PEERS", "bench/segment_vs_pysbd.py"]),
    ("entropy", ["PEERS", "bench/entropy_vs_llamacpp.py", "--docs", "173"]),
    ("entropy-hf", ["TRL", "bench/entropy_vs_llamacpp.py", "--docs", "173", "--peer", "transformers"]),
    ("grpo-tiny", ["TRL", "bench/grpo_vs_trl.py"]),
    ("grpo-smollm2", ["TRL", "bench/grpo_vs_trl.py", "--model", "smollm2"]),
    ("grpo-smollm2-checkpointing", ["TRL", "bench/grpo_vs_trl.py", "--model", "smollm2", "--checkpointing"]),
]


def environment(path: Path, requirements: Path) -> str:
    """The Python of a virtual environment at `path` with `requirements` installed."""
    python = path / "bin" / "python"
    stamp = path / ".requirements"
    if not python.exists():
        print(f"creating {path}", flush=True)
        venv.create(path, with_pip=True)
    if not stamp.exists() or stamp.read_text() != requirements.read_text():
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", requirements], check=True)
        stamp.write_text(requirements.read_text())
    return str(python)


def run(name: str, command: list[str]) -> list[dict]:
    """Runs one benchmark, keeping its output in bench/results/NAME.log; its BENCH lines."""
    print(f"== {name}: {' '.join(command)}", flush=True)
    log = RESULTS / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "bench"))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{name} failed (exit {result.returncode}); its output: {log}\n{result.stderr[-2000:]}")
    lines = [json.loads(line[6:]) for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        sys.exit(f"{name} printed no BENCH line; its output: {log}")
    for line in lines:
        print(f"   {line['benchmark']}: {line['throughput']:,.2f} {line['unit']}", flush=True)
    return lines


def cell(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def table(lines: list[dict]) -> str:
    rows = ["| benchmark | rlpt throughput | vs peer, same run | vs bare Parquet read+write | peak RSS | peer, notes |",
            "|---|---|---|---|---|---|"]
    for line in lines:
        notes = "; ".join(part for part in (line.get("peer"), line.get("note")) if part)
        notes = notes.replace("|", "\\|")  # a pipe would end the table cell
        rows.append(f"| {line['benchmark']} | {line['throughput']:,.2f} {line['unit']} | "
                    f"{cell(line.get('vs_peer'), '**{:.2f}×**')} | {cell(line.get('vs_bare'), '{:.2f}×')} | "
                    f"{cell(line.get('rss_mb'), '{:,.0f} MB')} | {notes or '—'} |")
    return "\n".join(rows)


def rewrite_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    if BEGIN not in content or END not in content:
        sys.exit(f"README.md has no {BEGIN} … {END} section to rewrite")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmarks: " + ",".join(n for n, _ in BENCHMARKS))
    parser.add_argument("--python", help="a Python with requirements.txt installed [default: bench/.venv]")
    parser.add_argument("--trl-python", help="a Python with requirements-trl.txt installed [default: bench/.venv-trl]")
    parser.add_argument("--no-readme", action="store_true", help="print the table, leave README.md alone")
    args = parser.parse_args()
    chosen = [(n, c) for n, c in BENCHMARKS if not args.only or n in args.only.split(",")]
    if not chosen:
        sys.exit(f"--only {args.only}: no such benchmark")
    RESULTS.mkdir(exist_ok=True)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rlpt-pipeline"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "data-samples/fetch.py", "wiki", "models"], cwd=ROOT, check=True)
    pythons = {}
    if any(c[0] == "PEERS" for _, c in chosen):
        pythons["PEERS"] = args.python or environment(ROOT / "bench/.venv", ROOT / "bench/requirements.txt")
    if any(c[0] == "TRL" for _, c in chosen):
        pythons["TRL"] = args.trl_python or environment(ROOT / "bench/.venv-trl", ROOT / "bench/requirements-trl.txt")

    lines = []
    for name, command in chosen:
        lines += run(name, [pythons.get(part, part) for part in command])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    text = (f"`python3 bench/suite.py`, {datetime.date.today()}, commit {commit}, "
            f"{os.cpu_count()} cores, release build:\n\n{table(lines)}")
    print("\n" + text)
    if not args.no_readme and not args.only:
        rewrite_readme(text)
        print("README.md rewritten")


if __name__ == "__main__":
    main()
