#!/usr/bin/env python3
"""Reference logits of llama.cpp (PyPI llama-cpp-python) for the SmolLM2 GGUF, as a fixture.

Runs llama.cpp with `logits_all=True` over the first sentences of sample documents (and
a few hard cases) and writes, for each text, its token ids and for every position the
top-1 next token, the top-16 renormalised entropy (nats, RPT's proxy entropy) and the
logits of the 8 most likely tokens plus 8 fixed ones — small enough to commit. The Rust
test `lm/tests/model.rs` runs rlpt's model on the same ids and reports max |Δlogit|,
top-1 agreement and entropy agreement against it.

    pip install llama-cpp-python numpy
    python3 data-samples/fetch.py models
    python3 lm/scripts/llamacpp_logits.py
"""

import argparse
import json
from pathlib import Path

import numpy as np
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
GGUF = ROOT / "data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURE = ROOT / "lm/tests/fixtures/smollm2-llamacpp-logits.json"
FIXED_TOKENS = [0, 1, 2, 17, 256, 1000, 20000, 49151]
HARD_CASES = [
    "def f(x):\n    return x**2  # square\n",
    "Élise préfère l'été à Zürich; ¿Qué tal? 1,234.56 — 10^9",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
]


def entropy_top16(logits: np.ndarray) -> float:
    top = np.sort(logits.astype(np.float64))[-16:]
    weights = np.exp(top - top.max())
    p = weights / weights.sum()
    return float(-(p * np.log(p)).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()

    texts = []
    for line in open(ROOT / "data-samples/wiki-stem/stem-en.jsonl"):
        texts.append(json.loads(line)["text"])
        if len(texts) == args.documents:
            break
    texts += HARD_CASES

    llm = Llama(model_path=str(GGUF), logits_all=True, n_ctx=512, n_threads=2, n_batch=512, verbose=False)
    cases = []
    for text in texts:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)[: args.max_tokens]
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)], dtype=np.float32)
        positions = []
        for row in scores:
            top8 = [int(i) for i in np.argsort(-row, kind="stable")[:8]]
            chosen = top8 + [t for t in FIXED_TOKENS if t not in top8]
            positions.append({
                "top1": top8[0],
                "entropy16": round(entropy_top16(row), 6),
                "tokens": chosen,
                "logits": [round(float(row[t]), 5) for t in chosen],
            })
        cases.append({"text": text, "ids": ids, "positions": positions})
    FIXTURE.write_text(json.dumps({
        "model": GGUF.name,
        "reference": "llama-cpp-python " + __import__("llama_cpp").__version__,
        "cases": cases,
    }, ensure_ascii=False, separators=(",", ":")) + "\n")
    tokens = sum(len(c["ids"]) for c in cases)
    print(f"{FIXTURE.relative_to(ROOT)}: {len(cases)} texts, {tokens} positions")


if __name__ == "__main__":
    main()
