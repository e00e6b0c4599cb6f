#!/usr/bin/env python3
"""rlpt filter against datatrove's Gopher repetition, Gopher quality, C4 quality and
FineWeb quality filters (in that order, FineWeb's, published defaults): the keep/drop
decision and the filter that dropped each document, same corpus, same run, one core.

The corpus: every fetched Wikipedia lead (en, fr, es) as it is; pages of 3-8
consecutive leads of one language, one per line; and low-quality pages generated from
those pages with a seeded generator (repeated lines, navigation and cookie
boilerplate, bullet lists, "lorem ipsum", code with braces, ellipsis teasers, hashtag
spam, number tables, keyword stuffing, short fragments). Language identification and
the URL filter are left out (datatrove's needs a fastText model download and
tldextract's suffix list; rlpt's are tested on their own), so rlpt runs with
`--skip lang,url`. datatrove is timed over documents in memory; `rlpt --threads 1
filter` as a whole process (Parquet in and out), so the speed ratio is conservative.

    cargo build --release
    python3 data-samples/fetch.py wiki
    /tmp/dtenv/bin/python bench/filter_vs_datatrove.py      # a Python with datatrove, spacy

`--input FILE.jsonl` (repeatable) takes the leads from those files instead (the
e2e test runs it on the embedded sample, data-samples/wiki-stem/, with fewer pages);
`--rlpt BIN` names the binary. Exits 1 when agreement is under 0.98.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import polars as pl

from common import CACHE, RLPT, measure, report

# datatrove's filter names -> rlpt's rule groups
GROUPS = {"gopher_rep": "gopher-repetition", "gopher_qual": "gopher-quality", "c4": "c4", "fineweb": "fine-web"}

BOILERPLATE = ["Home | About us | Contact | Blog", "Click here to subscribe", "Share this:", "Log in",
               "This site uses cookies to improve your experience.", "Read our privacy policy and terms of use.",
               "Enable JavaScript to view the comments.", "Copyright 2024 All rights reserved"]


def leads(inputs: list[Path]) -> dict[str, list[dict]]:
    """The leads of each file, by file (one language each)."""
    sources = inputs or [CACHE / "wiki" / f"wiki-{lang}.jsonl" for lang in ("en", "fr", "es")]
    by_file = {}
    for source in sources:
        if not source.exists():
            sys.exit(f"{source} is missing: run python3 data-samples/fetch.py wiki")
        by_file[source.name] = [json.loads(line) for line in open(source)]
    return by_file


def low_quality(page: str, rng: random.Random) -> tuple[str, str]:
    """One damaged version of `page` and the kind of damage."""
    lines = page.split("\n")
    words = page.split()
    kind = rng.choice(["repeated_lines", "boilerplate", "bullets", "lorem", "code", "teasers", "hashtags",
                       "numbers", "stuffing", "fragment", "no_punctuation", "short_lines"])
    if kind == "repeated_lines":
        text = "\n".join(lines + [rng.choice(lines)] * rng.randint(1, 6))
    elif kind == "boilerplate":
        text = "\n".join(rng.sample(BOILERPLATE, rng.randint(2, 6)) + lines + rng.sample(BOILERPLATE, 2))
    elif kind == "bullets":
        text = "\n".join(f"{rng.choice(['-', '•'])} {' '.join(words[i:i + rng.randint(2, 9)])}"
                         for i in range(0, len(words), 6))
    elif kind == "lorem":
        text = page + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."
    elif kind == "code":
        text = page + "\nfunction main() { return 0; }"
    elif kind == "teasers":
        text = "\n".join(" ".join(line.split()[: rng.randint(4, 15)]) + "..." for line in lines)
    elif kind == "hashtags":
        text = page + "\n" + " ".join(f"#{rng.choice(words).strip('.,')}" for _ in range(rng.randint(5, 60)))
    elif kind == "numbers":
        text = "\n".join(" ".join(str(rng.randint(0, 9999)) for _ in range(8)) for _ in range(rng.randint(5, 40)))
    elif kind == "stuffing":
        phrase = " ".join(rng.sample(words, min(len(words), rng.randint(2, 5))))
        text = page + "\n" + " ".join([phrase] * rng.randint(3, 30))
    elif kind == "fragment":
        text = " ".join(words[: rng.randint(3, 60)])
    elif kind == "no_punctuation":
        text = "\n".join(line.rstrip(".!?") for line in lines)
    else:
        text = "\n".join(w for w in words[: rng.randint(20, 200)])
    return text, kind


def corpus(out: Path, inputs: list[Path], pages: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    by_lang = leads(inputs)
    for lang, records in by_lang.items():
        docs += [{"id": r["id"], "text": r["text"], "kind": "lead"} for r in records]
    for number in range(pages):
        lang = rng.choice(list(by_lang))
        records = by_lang[lang]
        start = rng.randrange(len(records) - 8)
        page = "\n".join(r["text"] for r in records[start:start + rng.randint(3, 8)])
        docs.append({"id": f"page/{number}", "text": page, "kind": "page"})
        text, kind = low_quality(page, rng)
        docs.append({"id": f"damaged/{number}", "text": text, "kind": kind})
    with open(out, "w") as dst:
        for doc in docs:
            dst.write(json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n")
    return docs


def datatrove_decisions(docs: list[dict]) -> tuple[dict[str, str | None], float]:
    """Each document's dropping filter (None: kept), and the seconds the filters took."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    filters = [("gopher_rep", GopherRepetitionFilter()), ("gopher_qual", GopherQualityFilter()),
               ("c4", C4QualityFilter()), ("fineweb", FineWebQualityFilter())]
    decisions = {}
    started = time.perf_counter()
    for doc in docs:
        document = Document(text=doc["text"], id=doc["id"])
        decisions[doc["id"]] = None
        for name, step in filters:
            verdict = step.filter(document)
            if verdict is not True and (verdict is False or verdict[0] is False):
                decisions[doc["id"]] = GROUPS[name]
                break
    return decisions, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=3000, help="generated pages (each also damaged once)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--input", type=Path, action="append", default=[], help="leads (JSONL), one language a file")
    parser.add_argument("--rlpt", type=Path, default=RLPT, help="the rlpt binary")
    args = parser.parse_args()
    rlpt_bin = args.rlpt
    if not rlpt_bin.exists():
        sys.exit(f"{rlpt_bin} is missing: run cargo build --release")
    with tempfile.TemporaryDirectory(prefix="rlpt-filter-") as tmp:
        tmp = Path(tmp)
        docs = corpus(tmp / "corpus.jsonl", args.input, args.pages, args.seed)
        mb = sum(len(d["text"].encode()) for d in docs) / 1e6
        subprocess.run([rlpt_bin, "-q", "ingest", "--input", tmp / "corpus.jsonl", "--output", tmp / "docs"], check=True)
        rlpt_seconds, rss_mb = measure([rlpt_bin, "-q", "--threads", "1", "filter", "--skip", "lang,url",
                                        "--input", tmp / "docs", "--output", tmp / "out"])
        dropped = pl.read_parquet(tmp / "out" / "dropped" / "*.parquet")
        rlpt = {doc["id"]: None for doc in docs}
        rlpt.update(dict(zip(dropped["doc_id"], dropped["rule"])))
        rlpt_reasons = Counter(dropped["reason"])
        dt, dt_seconds = datatrove_decisions(docs)

    decision_agree = sum((rlpt[d["id"]] is None) == (dt[d["id"]] is None) for d in docs)
    rule_agree = sum(rlpt[d["id"]] == dt[d["id"]] for d in docs)
    print(f"corpus: {len(docs)} documents ({mb:.1f} MB): {Counter(d['kind'] for d in docs).most_common()}")
    print(f"kept: rlpt {sum(v is None for v in rlpt.values())}, datatrove {sum(v is None for v in dt.values())}")
    print(f"keep/drop agreement: {decision_agree}/{len(docs)} = {decision_agree / len(docs):.4f}")
    print(f"same dropping filter (or both kept): {rule_agree}/{len(docs)} = {rule_agree / len(docs):.4f}")
    by_kind = Counter()
    for d in docs:
        if (rlpt[d["id"]] is None) != (dt[d["id"]] is None):
            by_kind[(d["kind"], rlpt[d["id"]], dt[d["id"]])] += 1
    print("disagreements (kind, rlpt, datatrove):", by_kind.most_common(12))
    print("rlpt's reasons:", rlpt_reasons.most_common())
    print(f"datatrove filters (in memory): {dt_seconds:6.2f} s  {mb / dt_seconds:6.2f} MB/s  {len(docs) / dt_seconds:8.0f} docs/s")
    print(f"rlpt --threads 1 filter (Parquet in and out): {rlpt_seconds:6.2f} s  {mb / rlpt_seconds:6.2f} MB/s  "
          f"{len(docs) / rlpt_seconds:8.0f} docs/s")
    print(f"ratio rlpt / datatrove, one core: {dt_seconds / rlpt_seconds:.1f}x")
    report("filter, 1 core", mb / rlpt_seconds, "MB/s of text", rss_mb=rss_mb, vs_peer=dt_seconds / rlpt_seconds,
           peer=f"datatrove {version('datatrove')} Gopher+C4+FineWeb filters (in memory)",
           note=f"keep/drop agreement {decision_agree / len(docs):.4f} on {len(docs)} documents")
    if decision_agree / len(docs) < 0.98:
        sys.exit(f"agreement {decision_agree / len(docs):.4f} is under 0.98")


if __name__ == "__main__":
    main()
