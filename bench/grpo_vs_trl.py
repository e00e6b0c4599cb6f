"""GRPO on CPU: `rlpt train` against TRL's GRPOTrainer, same model, prompts, batch and
lengths, measured in the same run.

    python3 bench/grpo_vs_trl.py                       # the committed tiny model
    python3 bench/grpo_vs_trl.py --model smollm2       # SmolLM2-135M (fetch.py models)

Both sides: plain-text prompts (the last --prompt-tokens tokens of sample triples'
contexts, the same strings), G completions per prompt, --prompts prompts per step, at
most --max-tokens new tokens at temperature 1, no KL, one update per batch, token-mean
loss, one micro-batch, f32, 2 threads, no gradient checkpointing (`--checkpointing`:
both sides recompute activations in the backward pass, rlpt block by block with each
group's prompt run once, TRL with torch's checkpointing). Rewards are 0 on both sides (the timing does not
depend on them; every step still runs the full forward and backward pass). Reported:
median step time over the steps after the first, and generated tokens per second of
step time. Needs: pip install torch trl transformers gguf polars
(and target/release/rlpt: cargo build --release).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from common import ROOT as REPO, measure, report

SAMPLES = REPO / "data-samples"
MODELS = {
    "tiny": (SAMPLES / "tiny", SAMPLES / "tiny/tokenizer.json"),
    "smollm2": (SAMPLES / "cache/models/SmolLM2-135M-Instruct.Q4_1.gguf", None),
}


def prompts_table(tokenizer, count: int, prompt_tokens: int, path: Path) -> list[str]:
    """Writes a triples file whose contexts are the prompts; returns them."""
    triples = pl.read_parquet(SAMPLES / "triples/train.parquet").head(count)
    contexts = []
    for context in triples["context"].to_list():
        ids = tokenizer(context, add_special_tokens=False)["input_ids"][-prompt_tokens:]
        contexts.append(tokenizer.decode(ids))
    table = triples.with_columns(pl.Series("context", contexts)).select(
        "id", "doc_id", "source", "seg_index", "context", "segment", "next_segment",
        "context_segments", "context_tokens", "segment_tokens",
    )
    table.write_parquet(path)
    return contexts


def run_rlpt(model: Path, triples: Path, out: Path, args) -> dict:
    config = out.parent / "rlpt-bench.toml"
    config.write_text(
        f"""
model = "{model}"
input = "{triples}"
steps = {args.steps}
chat_template = "none"
max_prompt_tokens = {args.prompt_tokens + 16}
[data]
shuffle_buffer = 1
[[task]]
kind = "asr"
reward = "strict"
template = "{{context}}"
[sampling]
temperature = 1.0
max_tokens = {args.max_tokens}
[grpo]
group_size = {args.group}
prompts_per_step = {args.prompts}
dynamic_sampling = false
micro_batch = {args.group * args.prompts}
activation_checkpointing = {str(args.checkpointing).lower()}   # as TRL's gradient_checkpointing
[optim]
lr = 1e-6
[checkpoint]
every = 1000000
"""
    )
    rlpt = REPO / "target/release/rlpt"
    _, rss_mb = measure([rlpt, "-q", "--threads", "2", "train", "--config", config, "--output", out])
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    times = [l["timing"]["rollout_s"] + l["timing"]["update_s"] for l in lines]
    tokens = [l["response_length_mean"] * args.group * args.prompts for l in lines]
    rollout = [l["timing"]["rollout_s"] for l in lines]
    return summarise(times, tokens, rollout) | {"rss_mb": rss_mb}


def run_trl(model_name: str, tokenizer, prompts: list[str], out: Path, args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(2)
    path, _ = MODELS[model_name]
    if path.suffix == ".gguf":
        # transformers dequantizes the GGUF but marks the model quantized, which its
        # Trainer refuses: copy the f32 weights into a plain model of the same config.
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                      torch_dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        del loaded
    else:
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    steps: list[float] = []
    tokens: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            steps.append(time.perf_counter() - self.started)

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "completions/mean_length" in logs:
                tokens.append(logs["completions/mean_length"] * args.group * args.prompts)

    config = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.group * args.prompts,
        num_generations=args.group, max_completion_length=args.max_tokens,
        temperature=1.0, top_k=0, top_p=1.0, beta=0.0, num_iterations=1, loss_type="dapo",
        learning_rate=1e-6, max_steps=args.steps, logging_steps=1, use_cpu=True,
        report_to="none", save_strategy="no", bf16=False, seed=0,
        gradient_checkpointing=args.checkpointing, disable_tqdm=True, log_level="error",
    )
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=config,
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        train_dataset=Dataset.from_dict({"prompt": prompts}), callbacks=[Timer()],
    )
    trainer.train()
    # The peak of this process, which ran only TRL (rlpt ran as a child).
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return summarise(steps, tokens, None) | {"rss_mb": rss_mb}


def summarise(times: list[float], tokens: list[float], rollout) -> dict:
    later = slice(1, None) if len(times) > 1 else slice(None)
    step = statistics.median(times[later])
    out = {
        "steps": len(times),
        "step_s": step,
        "tokens_per_step": statistics.mean(tokens[later]),
        "tokens_per_s": sum(tokens[later]) / sum(times[later]),
    }
    if rollout:
        out["rollout_tokens_per_s"] = sum(tokens[later]) / sum(rollout[later])
    return out


def tokenizer_of(model_name: str):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path, tokenizer_file = MODELS[model_name]
    if tokenizer_file:
        return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file),
                                       eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="tiny")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--checkpointing", action="store_true",
                        help="activation (gradient) checkpointing on both sides")
    args = parser.parse_args()
    if not MODELS[args.model][0].exists():
        sys.exit(f"{MODELS[args.model][0]} is missing: python3 data-samples/fetch.py models")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tokenizer = tokenizer_of(args.model)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        prompts = prompts_table(tokenizer, 64, args.prompt_tokens, work / "prompts.parquet")
        rlpt = run_rlpt(MODELS[args.model][0], work / "prompts.parquet", work / "rlpt", args)
        print("rlpt:", json.dumps(rlpt), flush=True)
        trl = run_trl(args.model, tokenizer, prompts, work / "trl", args)
    print(f"model {args.model}: {args.prompts} prompts x G={args.group}, <= {args.max_tokens} "
          f"new tokens, prompts {args.prompt_tokens} tokens, {args.steps} steps, 2 threads")
    print(f"{'':8}{'step s':>10}{'tokens/step':>13}{'tokens/s':>10}")
    for name, r in [("rlpt", rlpt), ("TRL", trl)]:
        print(f"{name:8}{r['step_s']:>10.2f}{r['tokens_per_step']:>13.1f}{r['tokens_per_s']:>10.1f}")
    print(f"rlpt rollout alone: {rlpt['rollout_tokens_per_s']:.1f} tokens/s")
    print(f"peak RSS: rlpt {rlpt['rss_mb']:.0f} MB, TRL {trl['rss_mb']:.0f} MB "
          f"(checkpointing {'on' if args.checkpointing else 'off'})")
    print(f"ratio rlpt/TRL: {trl['step_s'] / rlpt['step_s']:.2f}x step time, "
          f"{rlpt['tokens_per_s'] / trl['tokens_per_s']:.2f}x tokens/s")
    checkpointing = ", checkpointing" if args.checkpointing else ""
    report(f"GRPO step ({args.model}{checkpointing}, CPU, 2 threads)", rlpt["tokens_per_s"], "tokens/s", rss_mb=rlpt["rss_mb"],
           vs_peer=trl["step_s"] / rlpt["step_s"], peer=f"TRL {__import__('trl').__version__} GRPOTrainer, step time",
           note=f"{rlpt['step_s']:.2f} s vs {trl['step_s']:.2f} s per step")


if __name__ == "__main__":
    main()
