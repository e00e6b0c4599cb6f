"""Loads a model directory `rlpt export hf` wrote with Hugging Face transformers and
compares it with rlpt's own run of the same weights.

    python3 tests/hf/check_export.py DIR EXPECTED.json

EXPECTED.json, written by tests/e2e/export.rs from rlpt-lm: `text`, its token `ids` (no
special tokens added), `logits_file` (little-endian f32, one row of `vocab` per id),
`greedy` (rlpt's greedy continuation of `ids`, without the end-of-sequence token) and
`max_new_tokens`, and the logit `tolerance` (1e-3 unless given). Checks that transformers loads the model and tokenizer without a
warning, tokenizes `text` to the same ids, gives logits within the tolerance, continues greedily
with the same tokens, and has a chat template that opens an assistant turn. Prints one
JSON line of what it measured; exits 1 naming each mismatch.
"""

import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load(directory: str):
    """The tokenizer and model, and every warning loading them raised."""
    collected = Collect()
    transformers.logging.set_verbosity_warning()
    logging.getLogger("transformers").addHandler(collected)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory)
    logging.getLogger("transformers").removeHandler(collected)
    return tokenizer, model, collected.messages + [str(w.message) for w in caught]


def main() -> None:
    directory, expected_path = sys.argv[1], sys.argv[2]
    expected = json.loads(Path(expected_path).read_text())
    tokenizer, model, loading_warnings = load(directory)
    model.eval()
    problems = [f"loading warned: {message}" for message in loading_warnings]

    ids = tokenizer(expected["text"], add_special_tokens=False)["input_ids"]
    if ids != expected["ids"]:
        problems.append(f"token ids differ: transformers {ids}, rlpt {expected['ids']}")
    rlpt_ids = torch.tensor([expected["ids"]])
    with torch.no_grad():
        logits = model(rlpt_ids).logits[0].float().numpy()
    reference = np.fromfile(expected["logits_file"], dtype="<f4").reshape(logits.shape)
    difference = float(np.abs(logits - reference).max())
    tolerance = expected.get("tolerance", 1e-3)
    if not difference < tolerance:
        problems.append(f"logits differ by up to {difference:.2e} (tolerance {tolerance})")

    with torch.no_grad():
        generated = model.generate(
            rlpt_ids,
            attention_mask=torch.ones_like(rlpt_ids),
            max_new_tokens=expected["max_new_tokens"],
            do_sample=False,
        )[0, rlpt_ids.shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    if generated and generated[-1] == eos:
        generated = generated[:-1]
    if generated != expected["greedy"]:
        problems.append(f"greedy continuations differ: transformers {generated}, rlpt {expected['greedy']}")

    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
    )
    if "Hello" not in chat or not chat.rstrip().endswith("assistant"):
        problems.append(f"the chat template does not open an assistant turn: {chat!r}")

    print(json.dumps({
        "dtype": str(model.dtype).removeprefix("torch."),
        "max_logit_difference": difference,
        "greedy_tokens": len(generated),
        "warnings": loading_warnings,
        "problems": problems,
    }))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
