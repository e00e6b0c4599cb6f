#!/usr/bin/env python3
"""Token ids of llama.cpp (PyPI llama-cpp-python) for the SmolLM2 GGUF, as a fixture.

Tokenizes the embedded sample corpus and a set of hard cases (numbers, whitespace runs,
contractions, accents, CJK, emoji, code, special tokens) with llama.cpp, writes the first
`--keep` texts with their ids to the fixture the Rust tests compare against, and reports
how many texts rlpt's tokenizer (and, with --also, another tokenizer) tokenizes exactly
as llama.cpp does.

    pip install llama-cpp-python
    python3 data-samples/fetch.py models && cargo build
    python3 lm/scripts/llamacpp_reference.py [--also ../shared/reference/smollm2/tokenizer.json]
"""

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GGUF = ROOT / "data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURE = ROOT / "lm/tests/fixtures/smollm2-llamacpp.jsonl"

HARD_CASES = [
    "In 2024, the 1999 edition cost $1,234.56 (3.14159%) — 10^9 or 1e-9?",
    "  leading spaces,\ttabs,\n\nnewlines\r\nand trailing   ",
    "I'LL say it: don't, won't, she's, they're, we've, I'd.",
    "Élise préfère l'été à Zürich; ¿Qué tal? ¡Olé! Ångström, naïve, façade.",
    "数学是研究数量、结构、变化以及空间等概念的一门学科。東京は日本の首都です。",
    "Emoji: 😀🚀 and combined 👩‍💻 flags 🇫🇷, math: ∑ᵢ xᵢ² ≤ ∞, √2 ≈ 1.414",
    "def f(x):\n    return x**2  # square\n\nfor i in range(10):\n\tprint(f\"{i}: {f(i)}\")",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "hello     world\n\n\n\nend",
    "",
]


def rlpt_ids(tokenizer: Path, texts: list[str]) -> list[list[int]]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for text in texts:
            f.write(json.dumps({"text": text}) + "\n")
    out = subprocess.run(
        [ROOT / "target/debug/rlpt", "tokenizer", "encode", "--tokenizer", tokenizer, "--input", f.name],
        check=True, capture_output=True, text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def agreement(name: str, ours: list[list[int]], reference: list[list[int]], texts: list[str]) -> None:
    same = sum(a == b for a, b in zip(ours, reference))
    tokens = sum(len(r) for r in reference)
    same_tokens = sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(ours, reference) if len(a) == len(b))
    print(f"{name}: {same}/{len(texts)} texts identical to llama.cpp, {same_tokens}/{tokens} tokens")
    for text, a, b in zip(texts, ours, reference):
        if a != b:
            print(f"  differs on {text[:60]!r}: {len(a)} vs {len(b)} tokens")
            break


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=int, default=80, help="sample documents kept in the fixture")
    parser.add_argument("--also", type=Path, help="another tokenizer to measure against llama.cpp")
    args = parser.parse_args()
    llm = Llama(model_path=str(GGUF), vocab_only=True, verbose=False)
    docs = []
    for lang in ("en", "es", "fr"):
        for line in open(ROOT / f"data-samples/wiki-stem/stem-{lang}.jsonl"):
            docs.append(json.loads(line)["text"])
    texts = HARD_CASES + docs
    reference = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]
    with open(FIXTURE, "w") as out:
        for text, ids in list(zip(texts, reference))[: len(HARD_CASES) + args.keep]:
            out.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")
    print(f"llama-cpp-python: {len(texts)} texts ({len(HARD_CASES)} hard cases + {len(docs)} sample documents), "
          f"{sum(map(len, reference))} tokens; fixture: {FIXTURE.relative_to(ROOT)}")
    agreement("rlpt (from the GGUF)", rlpt_ids(GGUF, texts), reference, texts)
    if args.also:
        agreement(f"{args.also}", rlpt_ids(args.also, texts), reference, texts)


if __name__ == "__main__":
    main()
