#!/usr/bin/env python3
"""rlpt's sentence splitting against pysbd and NLTK's Punkt: accuracy on the same
hand-written boundary cases and speed on the same corpus, same run, one core each.

Accuracy: stages/src/segment/boundary_cases.jsonl holds sentence-boundary cases by
category (abbreviations, initials, numbers, times, ellipses, quotations, lists, URLs,
geo coordinates…) in English, Spanish and French; a case counts when the trimmed
sentences equal the expected ones exactly. pysbd splits each with its language's rules.

The corpus is the fetched Wikipedia extracts (English, French, Spanish). pysbd splits
each document with its language's rules; Punkt is trained (unsupervised, not timed) on
the corpus itself, as it is meant to be, then splits each document. rlpt is timed twice:
its sentence splitter alone on texts in memory (what the peers do; the `sentences`
bench of rlpt-stages), and the whole `rlpt --threads 1 segment` process — reading and
writing Parquet, counting tokens exactly with SmolLM2's tokenizer and building every
triple included.

    cargo build --release                # the sentences bench is built by cargo bench
    python3 data-samples/fetch.py wiki
    /tmp/dtenv/bin/python bench/segment_vs_pysbd.py      # a Python with pysbd and nltk
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CACHE, RLPT, ROOT, measure, report
LANGUAGES = {"en": "english", "fr": "french", "es": "spanish"}


def corpus() -> list[tuple[str, str]]:
    docs = []
    for lang in LANGUAGES:
        source = CACHE / "wiki" / f"wiki-{lang}.jsonl"
        if not source.exists():
            sys.exit(f"{source} is missing: run python3 data-samples/fetch.py wiki")
        docs += [(lang, json.loads(line)["text"]) for line in open(source)]
    return docs


def timed(split, docs) -> tuple[float, int]:
    started = time.perf_counter()
    sentences = sum(len(split(lang, text)) for lang, text in docs)
    return time.perf_counter() - started, sentences


CASES = ROOT / "stages" / "src" / "segment" / "boundary_cases.jsonl"


def accuracy(pysbd) -> dict:
    """Cases right per language for rlpt and pysbd, and the totals, on the boundary cases."""
    cases = [json.loads(line) for line in open(CASES, encoding="utf-8")]
    bench = subprocess.run(["cargo", "bench", "-q", "-p", "rlpt-stages", "--bench", "sentences", "--", "--cases",
                            str(CASES)], cwd=ROOT, check=True, capture_output=True, text=True)
    rlpt = json.loads(bench.stdout.strip().splitlines()[-1])["sentences"]
    segmenters = {lang: pysbd.Segmenter(language=lang, clean=False) for lang in LANGUAGES}
    right = {"rlpt": {}, "pysbd": {}, "total": {}}
    for case, ours in zip(cases, rlpt, strict=True):
        theirs = [s.strip() for s in segmenters[case["lang"]].segment(case["text"]) if s.strip()]
        lang = case["lang"]
        right["total"][lang] = right["total"].get(lang, 0) + 1
        for name, got in (("rlpt", ours), ("pysbd", theirs)):
            right[name][lang] = right[name].get(lang, 0) + (got == case["sentences"])
            if got != case["sentences"]:
                print(f"  {name:5} wrong [{lang} {case['category']}] {case['text']!r}: {got}")
    return right


def main() -> None:
    import pysbd
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    if not RLPT.exists():
        sys.exit(f"{RLPT} is missing: run cargo build --release")
    right = accuracy(pysbd)
    for lang in LANGUAGES:
        print(f"boundary cases, {lang}: rlpt {right['rlpt'][lang]}/{right['total'][lang]}, "
              f"pysbd {right['pysbd'][lang]}/{right['total'][lang]}")
    total = sum(right["total"].values())
    ours, theirs = sum(right["rlpt"].values()), sum(right["pysbd"].values())
    print(f"boundary cases, all: rlpt {ours}/{total}, pysbd {theirs}/{total}")
    cases_note = (f"boundary cases right: rlpt {ours}/{total}, pysbd {theirs}/{total} ("
                  + ", ".join(f"{lang} {right['rlpt'][lang]} vs {right['pysbd'][lang]} of {right['total'][lang]}"
                              for lang in LANGUAGES) + ")")
    docs = corpus()
    mb = sum(len(text.encode()) for _, text in docs) / 1e6
    print(f"corpus: {len(docs)} Wikipedia extracts (en, fr, es), {mb:.1f} MB")

    segmenters = {lang: pysbd.Segmenter(language=lang, clean=False) for lang in LANGUAGES}
    pysbd_s, pysbd_n = timed(lambda lang, text: segmenters[lang].segment(text), docs)

    punkt = {}
    for lang in LANGUAGES:
        trainer = PunktTrainer()
        trainer.train("\n\n".join(text for l, text in docs if l == lang), finalize=True)
        punkt[lang] = PunktSentenceTokenizer(trainer.get_params())
    punkt_s, punkt_n = timed(lambda lang, text: punkt[lang].tokenize(text), docs)

    with tempfile.TemporaryDirectory(prefix="rlpt-segment-") as tmp:
        tmp = Path(tmp)
        with open(tmp / "corpus.jsonl", "w") as out:
            for index, (lang, text) in enumerate(docs):
                out.write(json.dumps({"id": f"{lang}-{index}", "text": text}, ensure_ascii=False) + "\n")
        subprocess.run([RLPT, "-q", "ingest", "--input", tmp / "corpus.jsonl", "--output", tmp / "docs"], check=True)
        rlpt_s, rss_mb = measure([RLPT, "-q", "--threads", "1", "segment", "--input", tmp / "docs", "--output",
                                  tmp / "triples", "--tokenizer", ROOT / "data-samples/tokenizers/smollm2-135m.json.gz",
                                  "--min-segment-chars", "0"])
        unit = json.loads((tmp / "triples" / "_manifest" / "unit-00000.json").read_text())
        rlpt_n = unit["counters"]["sentences"]

    splitter = splitter_alone()
    rows = [("pysbd 0.3.4 (rules per language)", pysbd_s, pysbd_n), ("nltk punkt (trained on the corpus)", punkt_s, punkt_n),
            ("rlpt sentence splitter, 1 thread, in memory", splitter["seconds"], splitter["sentences"]),
            ("rlpt segment, 1 thread (with IO, tokens, triples)", rlpt_s, rlpt_n)]
    for name, seconds, sentences in rows:
        print(f"{name:52} {seconds:7.2f} s {len(docs) / seconds:9.0f} docs/s {mb / seconds:7.2f} MB/s  {sentences} sentences")
    for name, seconds in [("splitter", splitter["seconds"]), ("segment stage", rlpt_s)]:
        print(f"rlpt {name} / pysbd: {pysbd_s / seconds:.0f}x docs/s; / punkt: {punkt_s / seconds:.1f}x")
    report("sentence splitter, 1 core", mb / splitter["seconds"], "MB/s of text", vs_peer=pysbd_s / splitter["seconds"],
           peer="pysbd 0.3.4", note=f"{punkt_s / splitter['seconds']:.1f}x NLTK Punkt; {cases_note}")
    report("segment stage, 1 core", mb / rlpt_s, "MB/s of text", vs_peer=pysbd_s / rlpt_s, peer="pysbd 0.3.4",
           rss_mb=rss_mb, note=f"{punkt_s / rlpt_s:.1f}x NLTK Punkt")


def splitter_alone() -> dict:
    files = [str(CACHE / "wiki" / f"wiki-{lang}.jsonl") for lang in LANGUAGES]
    bench = subprocess.run(["cargo", "bench", "-q", "-p", "rlpt-stages", "--bench", "sentences", "--", *files],
                           cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(bench.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
