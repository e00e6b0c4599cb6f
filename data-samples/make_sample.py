#!/usr/bin/env python3
"""Rebuild the committed samples from the fetched assets.

- wiki-stem/: a deterministic selection of STEM lead paragraphs — the first N articles by
  title of the mathematics and physical-science topics in English, French and Spanish.
- benchmarks/: HumanEval (as shipped) and CHAMP (as JSONL), the decontamination
  benchmarks of the default pipeline, with their MIT licenses.

Run `python3 data-samples/fetch.py wiki humaneval champ` first. The output is committed
to the repository; this script exists so anyone can see, and redo, how it was made.
"""

import json
import shutil
from pathlib import Path

from fetch import CACHE

HERE = Path(__file__).resolve().parent
SELECTION = {
    "en": [("Mathematics", 256), ("Physical sciences", 144)],
    "fr": [("Mathématiques", 60)],
    "es": [("Matemáticas", 60)],
}


def copy_benchmarks() -> None:
    out_dir = HERE / "benchmarks"
    out_dir.mkdir(exist_ok=True)
    for name in ("HumanEval.jsonl.gz", "champ.jsonl"):
        shutil.copyfile(CACHE / "benchmarks" / name, out_dir / name)
        print(f"benchmarks/{name}: {(out_dir / name).stat().st_size} bytes")


def main() -> None:
    copy_benchmarks()
    out_dir = HERE / "wiki-stem"
    out_dir.mkdir(exist_ok=True)
    for lang, topics in SELECTION.items():
        records = [json.loads(line) for line in (CACHE / f"wiki/wiki-{lang}.jsonl").read_text().splitlines()]
        chosen = []
        for topic, count in topics:
            chosen += [r for r in records if r["topic"] == topic][:count]
        chosen.sort(key=lambda r: r["id"])
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen)
        (out_dir / f"stem-{lang}.jsonl").write_text(text)
        print(f"stem-{lang}.jsonl: {len(chosen)} documents, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
