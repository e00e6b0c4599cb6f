"""What the benchmark scripts share: where the release binary and the fetched assets
are, a whole-process timer that also reads the process's peak RSS, and the one
machine-readable line each benchmark prints for bench/suite.py:

    BENCH {"benchmark": "pii", "throughput": 56.1, "unit": "MB/s", "peer": "datatrove ...",
           "vs_peer": 3.5, "vs_bare": null, "rss_mb": 41}
"""

import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RLPT = ROOT / "target" / "release" / "rlpt"
CACHE = Path(os.environ.get("RLPT_CACHE", ROOT / "data-samples" / "cache"))


def measure(command: list, **popen) -> tuple[float, float]:
    """Runs `command` to completion; returns (wall seconds, peak RSS in MB). Fails loudly."""
    started = time.perf_counter()
    process = subprocess.Popen([str(part) for part in command], **popen)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return seconds, usage.ru_maxrss / 1024


def report(benchmark: str, throughput: float, unit: str, *, peer: str | None = None,
           vs_peer: float | None = None, vs_bare: float | None = None,
           rss_mb: float | None = None, note: str | None = None) -> None:
    """Prints the benchmark's BENCH line (rlpt's figures; ratios > 1 mean rlpt is faster)."""
    fields = {"benchmark": benchmark, "throughput": round(throughput, 3), "unit": unit,
              "peer": peer, "vs_peer": None if vs_peer is None else round(vs_peer, 3),
              "vs_bare": None if vs_bare is None else round(vs_bare, 3),
              "rss_mb": None if rss_mb is None else round(rss_mb), "note": note}
    print("BENCH " + json.dumps(fields), flush=True)
