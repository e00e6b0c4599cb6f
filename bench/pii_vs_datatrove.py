#!/usr/bin/env python3
"""rlpt pii against datatrove's PIIFormatter, same corpus, same run, one core each.

The corpus is the fetched Wikipedia extracts with a sentence of PII (an email, a phone
number, a public IP) appended to every 20th document. datatrove's formatter replaces
emails and IPs only; rlpt pii looks for seven kinds with validators. datatrove is timed
over texts already in memory (no IO); `rlpt --threads 1 pii` is timed as a whole
process (reading and writing Parquet included), so the ratio is conservative.

    cargo build --release
    python3 data-samples/fetch.py wiki
    /tmp/dtenv/bin/python bench/pii_vs_datatrove.py      # a Python with datatrove
"""

import json
from importlib.metadata import version
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CACHE, RLPT, measure, report
PII = " Corrections: write to editor.desk@example.org or call +44 20 7946 0958; mirror at 81.2.69.142."


def corpus(out: Path) -> list[str]:
    texts = []
    with open(out, "w") as dst:
        for lang in ("en", "fr", "es"):
            source = CACHE / "wiki" / f"wiki-{lang}.jsonl"
            if not source.exists():
                sys.exit(f"{source} is missing: run python3 data-samples/fetch.py wiki")
            for line in open(source):
                record = json.loads(line)
                text = record["text"] + (PII if len(texts) % 20 == 0 else "")
                texts.append(text)
                dst.write(json.dumps({"id": record["id"], "text": text}, ensure_ascii=False) + "\n")
    return texts


def main() -> None:
    from datatrove.pipeline.formatters import PIIFormatter

    if not RLPT.exists():
        sys.exit(f"{RLPT} is missing: run cargo build --release")
    with tempfile.TemporaryDirectory(prefix="rlpt-pii-") as tmp:
        tmp = Path(tmp)
        texts = corpus(tmp / "corpus.jsonl")
        mb = sum(len(t.encode()) for t in texts) / 1e6
        formatter = PIIFormatter()
        started = time.perf_counter()
        formatted = [formatter.format(t) for t in texts]
        dt_seconds = time.perf_counter() - started
        dt_changed = sum(a != b for a, b in zip(texts, formatted))

        subprocess.run([RLPT, "-q", "ingest", "--input", tmp / "corpus.jsonl", "--output", tmp / "docs"], check=True)
        rlpt_seconds, rss_mb = measure([RLPT, "-q", "--threads", "1", "pii", "--input", tmp / "docs",
                                        "--output", tmp / "pii"])
        unit = json.loads((tmp / "pii" / "_manifest" / "unit-00000.json").read_text())

        print(f"corpus: {len(texts)} documents, {mb:.1f} MB of text, PII in every 20th")
        print(f"datatrove PIIFormatter (emails, IPs; in memory): {dt_seconds:6.2f} s  {mb / dt_seconds:6.1f} MB/s  "
              f"{len(texts) / dt_seconds:8.0f} docs/s  changed {dt_changed}")
        print(f"rlpt --threads 1 pii (7 kinds; Parquet in and out): {rlpt_seconds:6.2f} s  {mb / rlpt_seconds:6.1f} MB/s  "
              f"{len(texts) / rlpt_seconds:8.0f} docs/s  changed {unit['counters']['documents_with_pii']}")
        print(f"ratio rlpt / datatrove, MB/s on one core: {dt_seconds / rlpt_seconds:.1f}x")
        report("pii, 1 core", mb / rlpt_seconds, "MB/s of text", rss_mb=rss_mb, vs_peer=dt_seconds / rlpt_seconds,
               peer=f"datatrove {version('datatrove')} PIIFormatter (emails, IPs; in memory)")


if __name__ == "__main__":
    main()
