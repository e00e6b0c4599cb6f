#!/usr/bin/env python3
"""rlpt dedup against datatrove's MinHash deduplication, same corpus, same run.

Both find near duplicates with word 5-grams and 14 bands x 8 rows, on one core
(`rlpt --threads 1`, datatrove's LocalPipelineExecutor with one worker), through all
four steps (signatures, buckets, clusters, filter). Reported: documents per second per
core for each and their ratio, what each removed, and the peak RSS of rlpt's signatures
step at 1x and 4x the corpus (it must stay flat: memory is bounded by batches).

    cargo build --release
    python3 data-samples/fetch.py wiki
    python3 -m venv /tmp/dtenv && /tmp/dtenv/bin/pip install datatrove
    /tmp/dtenv/bin/python bench/dedup_vs_datatrove.py

Options: --copies N repeats the corpus (ids made distinct); --skip-datatrove.
"""

import argparse
import json
from importlib.metadata import version
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CACHE, RLPT, measure, report


def write_corpus(out: Path, copies: int) -> int:
    """The fetched Wikipedia extracts, `copies` times, one JSONL file per language and copy."""
    out.mkdir(parents=True)
    docs = 0
    for copy in range(copies):
        for lang in ("en", "fr", "es"):
            source = CACHE / "wiki" / f"wiki-{lang}.jsonl"
            if not source.exists():
                sys.exit(f"{source} is missing: run python3 data-samples/fetch.py wiki")
            with open(source) as src, open(out / f"wiki-{lang}-{copy}.jsonl", "w") as dst:
                for line in src:
                    record = json.loads(line)
                    if copy:
                        record["id"] = f"{record['id']}#{copy}"
                    dst.write(json.dumps({"id": record["id"], "text": record["text"]}, ensure_ascii=False) + "\n")
                    docs += 1
    return docs


def ingested(corpus: Path, work: Path) -> Path:
    """The corpus as a documents table under `work` (ingested once, not timed)."""
    documents = work / "documents"
    if not documents.exists():
        subprocess.run([RLPT, "-q", "ingest", "--input", corpus, "--output", documents], check=True)
    return documents


def rlpt_dedup(corpus: Path, work: Path, threads: int) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and documents kept by `rlpt dedup` (ingest not timed)."""
    documents = ingested(corpus, work)
    output = work / f"dedup-{threads}t"
    seconds, rss = measure([RLPT, "-q", "--threads", threads, "dedup", "--input", documents,
                            "--output", output, "--bands", "14", "--rows", "8"])
    unit_files = sorted((output / "_manifest").glob("unit-*.json"))
    kept = sum(json.loads(f.read_text())["rows_out"] for f in unit_files)
    return seconds, rss, kept


def rlpt_signatures_rss(corpus: Path, work: Path) -> float:
    documents = ingested(corpus, work)
    _, rss = measure([RLPT, "-q", "--threads", "1", "dedup", "signatures", "--input", documents,
                      "--output", work / "signatures-only"])
    return rss


DATATROVE = r"""
import sys, time, logging
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature,
    MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from loguru import logger
logger.remove()
corpus, work = sys.argv[1], sys.argv[2]
config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
def run(pipeline, tasks, name):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs/{name}").run()
started = time.perf_counter()
run([JsonlReader(corpus), MinhashDedupSignature(output_folder=f"{work}/signatures", config=config)], 1, "signatures")
run([MinhashDedupBuckets(input_folder=f"{work}/signatures", output_folder=f"{work}/buckets", config=config)], config.num_buckets, "buckets")
run([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config)], 1, "clusters")
run([JsonlReader(corpus), MinhashDedupFilter(input_folder=f"{work}/remove_ids"), JsonlWriter(f"{work}/output")], 1, "filter")
print(time.perf_counter() - started)
"""


def datatrove_dedup(corpus: Path, work: Path) -> tuple[float, int]:
    """Seconds (inside the interpreter, imports excluded) and documents kept."""
    result = subprocess.run([sys.executable, "-c", DATATROVE, str(corpus), str(work)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"datatrove failed:\n{result.stderr[-3000:]}")
    seconds = float(result.stdout.strip().splitlines()[-1])
    kept = 0
    for path in (work / "output").glob("*.jsonl.gz"):
        kept += int(subprocess.run(["sh", "-c", f"zcat '{path}' | wc -l"], capture_output=True, text=True).stdout)
    return seconds, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args()
    if not RLPT.exists():
        sys.exit(f"{RLPT} is missing: run cargo build --release")
    with tempfile.TemporaryDirectory(prefix="rlpt-bench-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        docs = write_corpus(corpus, args.copies)
        mb = sum(f.stat().st_size for f in corpus.iterdir()) / 1e6
        print(f"corpus: fetched Wikipedia extracts x{args.copies}: {docs} documents, {mb:.1f} MB of JSONL")
        one_s, one_rss, kept = rlpt_dedup(corpus, tmp / "rlpt", 1)
        all_s, all_rss, _ = rlpt_dedup(corpus, tmp / "rlpt", os.cpu_count())
        print(f"rlpt dedup, 1 thread:   {one_s:7.2f} s  {docs / one_s:9.0f} docs/s  peak RSS {one_rss:.0f} MB  kept {kept}")
        print(f"rlpt dedup, {os.cpu_count()} threads:  {all_s:7.2f} s  {docs / all_s:9.0f} docs/s  peak RSS {all_rss:.0f} MB")
        four = tmp / "corpus-x4"
        write_corpus(four, 4 * args.copies)
        rss_1 = rlpt_signatures_rss(corpus, tmp / "sig-1x")
        rss_4 = rlpt_signatures_rss(four, tmp / "sig-4x")
        print(f"rlpt dedup signatures peak RSS: {rss_1:.0f} MB at 1x, {rss_4:.0f} MB at 4x")
        if args.skip_datatrove:
            report("dedup (all 4 steps, 1 core)", docs / one_s, "docs/s", rss_mb=one_rss)
            return
        dt_s, dt_kept = datatrove_dedup(corpus, tmp / "datatrove")
        print(f"datatrove, 1 worker:    {dt_s:7.2f} s  {docs / dt_s:9.0f} docs/s  kept {dt_kept}")
        print(f"ratio rlpt / datatrove, docs/s per core: {dt_s / one_s:.1f}x")
        report("dedup (all 4 steps, 1 core)", docs / one_s, "docs/s", rss_mb=one_rss, vs_peer=dt_s / one_s,
               peer=f"datatrove {version('datatrove')} MinHash, 1 worker", note=f"{docs / all_s:,.0f} docs/s on {os.cpu_count()} cores")
        print()
        print("| stage | corpus | docs/s (1 core) | docs/s (all cores) | vs datatrove per core | peak RSS |")
        print(f"| dedup | Wikipedia x{args.copies}, {docs} docs, {mb:.0f} MB | {docs / one_s:,.0f} | {docs / all_s:,.0f} | "
              f"{dt_s / one_s:.1f}x ({docs / dt_s:,.0f} docs/s) | {one_rss:.0f} MB (signatures: {rss_1:.0f} MB at 1x, {rss_4:.0f} MB at 4x) |")


if __name__ == "__main__":
    main()
