#!/usr/bin/env python3
"""`rlpt entropy` against llama.cpp or Hugging Face transformers on the same model, the
same texts, the same run.

Triples come from the first `--docs` documents of the embedded sample (`rlpt ingest` and
`rlpt segment` with SmolLM2's tokenizer). rlpt runs `rlpt --threads 2 entropy` with the
SmolLM2-135M-Instruct Q4_1 GGUF (weights dequantized to f32, its default). The peer does
the same work on 2 threads: one pass per chain of triples whose text extends the previous
one's (the passes rlpt makes), and the top-16 entropy of every position in numpy —
llama.cpp (PyPI llama-cpp-python, `logits_all=True`) on the same GGUF, or transformers
(torch, f32, no grad) on the same weights exported by `rlpt export hf --model GGUF`. Both
count the tokens they run through the model; the ratio is of tokens/s. The script also
reports how closely the two agree on the segment tokens' entropies.

    pip install llama-cpp-python numpy polars          # or: torch transformers numpy polars
    python3 data-samples/fetch.py models && cargo build --release
    python3 bench/entropy_vs_llamacpp.py [--docs 40] [--peer llamacpp|transformers]
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from common import RLPT, ROOT, measure, report

GGUF = ROOT / "data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZER = ROOT / "data-samples/tokenizers/smollm2-135m.json.gz"


def entropy16(logits: np.ndarray) -> np.ndarray:
    top = np.sort(logits.astype(np.float64), axis=1)[:, -16:]
    weights = np.exp(top - top[:, -1:])
    p = weights / weights.sum(axis=1, keepdims=True)
    return -(p * np.log(p)).sum(axis=1)


def chains(texts: list[str]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i, text in enumerate(texts):
        if groups and text.startswith(texts[groups[-1][-1]]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class LlamaCpp:
    """llama.cpp on the GGUF: token ids and every position's logits."""

    def __init__(self, _work: Path):
        from llama_cpp import Llama, __version__

        self.name = f"llama.cpp (llama-cpp-python {__version__})"
        self.llm = Llama(model_path=str(GGUF), logits_all=True, n_ctx=4096, n_batch=512,
                         n_threads=2, verbose=False)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=False)

    def logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)


class Transformers:
    """transformers on the GGUF's weights exported by `rlpt export hf` (f32, CPU)."""

    def __init__(self, work: Path):
        import torch
        import transformers

        torch.set_num_threads(2)
        exported = work / "smollm2-hf"
        subprocess.run([RLPT, "-q", "export", "hf", "--model", GGUF, "--output", exported], check=True)
        self.torch = torch
        self.name = f"transformers {transformers.__version__} (torch {torch.__version__}, f32)"
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def logits(self, ids: list[int]) -> np.ndarray:
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([ids]))
        return out.logits[0].float().numpy()


PEERS = {"llamacpp": LlamaCpp, "transformers": Transformers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--peer", choices=sorted(PEERS), default="llamacpp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlpt-entropy-") as tmp:
        tmp = Path(tmp)
        lines = open(ROOT / "data-samples/wiki-stem/stem-en.jsonl").read().splitlines()[: args.docs]
        (tmp / "docs.jsonl").write_text("\n".join(lines) + "\n")
        run = lambda *a: subprocess.run([RLPT, "-q", *a], check=True)
        run("ingest", "--input", tmp / "docs.jsonl", "--output", tmp / "documents")
        run("segment", "--input", tmp / "documents", "--output", tmp / "triples", "--tokenizer", TOKENIZER)
        rlpt_s, rss_mb = measure([RLPT, "-q", "--threads", "2", "entropy", "--input", tmp / "triples", "--output",
                                  tmp / "tagged", "--model", GGUF])
        counters = json.loads((tmp / "tagged/_manifest/unit-00000.json").read_text())["counters"]
        tagged = pl.read_parquet(tmp / "tagged/*.parquet")
        peer = PEERS[args.peer](tmp)

        texts = [c + s for c, s in zip(tagged["context"], tagged["segment"])]
        forward_tokens = 0
        agreement = []
        started = time.perf_counter()
        for group in chains(texts):
            ids = peer.tokenize(texts[group[-1]])
            entropies = entropy16(peer.logits(ids))
            forward_tokens += len(ids)
            for row in group:
                ours = tagged["token_entropy"][row].to_numpy()
                end = len(peer.tokenize(texts[row]))
                theirs = entropies[end - len(ours) - 1 : end - 1]
                agreement.extend(np.abs(ours - theirs))
        peer_s = time.perf_counter() - started

    ours_tps = counters["forward_tokens"] / rlpt_s
    theirs_tps = forward_tokens / peer_s
    print(f"{len(texts)} triples of {args.docs} sample documents; "
          f"{counters['segment_tokens']} segment tokens tagged")
    print(f"rlpt entropy (2 threads, whole process): {counters['forward_tokens']} tokens in {rlpt_s:.1f} s "
          f"= {ours_tps:.0f} tokens/s, {len(texts) / rlpt_s:.1f} triples/s")
    print(f"{peer.name} (2 threads, every position's logits, entropy in numpy): "
          f"{forward_tokens} tokens in {peer_s:.1f} s = {theirs_tps:.0f} tokens/s")
    print(f"rlpt / peer: {ours_tps / theirs_tps:.2f}x tokens/s")
    agreement = np.array(agreement)
    print(f"top-16 entropy agreement on {len(agreement)} segment tokens: mean |d| {agreement.mean():.4f} nats, "
          f"p99 {np.quantile(agreement, 0.99):.3f}, max {agreement.max():.3f}")
    name = "entropy (SmolLM2-135M, 2 threads)"
    if args.peer != "llamacpp":
        name = f"entropy vs {args.peer} (SmolLM2-135M, 2 threads)"
    report(name, ours_tps, "tokens/s",
           vs_peer=ours_tps / theirs_tps, rss_mb=rss_mb, peer=f"{peer.name}, same passes",
           note=f"top-16 entropy mean |d| {agreement.mean():.3f} nats")


if __name__ == "__main__":
    main()
