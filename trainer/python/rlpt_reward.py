"""rlpt's rewards for verl and TRL, written by `rlpt export verl|trl` beside the dataset.

The same answer extraction and rewards as `rlpt train` (trainer/src/rewards.rs and
judge.rs; tests/hf/reward_parity.py checks them case by case):

- the answer is the last complete `\\boxed{...}` (next-token) or the last
  `<|startofprediction|>...<|endofprediction|>` (asr, msr), after the last `</think>`;
  none scores 0;
- `prefix-token` (RPT): the answer's UTF-8 bytes are a non-empty prefix of the
  reference's and end where one of its tokens ends (`token_ends`, bytes, written by the
  export from the model's tokenizer); an answer without the reference's leading
  whitespace is read with it;
- `strict`: equal after collapsing whitespace, trimming and lower-casing;
- `prefix-semantic` (RLPT): an OpenAI-compatible judge answers `Score: 1` when the
  prediction is a semantically valid prefix of the reference (and what follows it).

Entry points:
- verl: `custom_reward_function.path=DIR/rlpt_reward.py`, name `compute_score`
  (`compute_score(data_source, solution_str, ground_truth, extra_info)`);
- TRL: `GRPOTrainer(reward_funcs=rlpt_reward.trl_reward, ...)` on the exported dataset,
  whose columns arrive as keyword arguments.

The judge's prompt and endpoint come from rlpt_reward.json (the rlpt config's `[judge]`);
RLPT_JUDGE_ENDPOINT and RLPT_JUDGE_MODEL override them, and the API key is read from the
variable `api_key_env` names.
"""

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

PREDICTION_START = "<|startofprediction|>"
PREDICTION_END = "<|endofprediction|>"
THINK_END = "</think>"
# Rust's char::is_whitespace (Unicode White_Space); str.isspace also counts U+001C-U+001F.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
WHITESPACE_RUN = re.compile(f"[{re.escape(WHITESPACE)}]+")
# Rust's u8::is_ascii_whitespace: no vertical tab.
ASCII_WHITESPACE = b" \t\n\x0c\r"


def after_thinking(completion: str) -> str:
    """The part of a completion after its last `</think>`, or all of it."""
    at = completion.rfind(THINK_END)
    return completion if at < 0 else completion[at + len(THINK_END):]


def boxed_answer(completion: str):
    """The content of the last complete `\\boxed{...}` (braces balanced) after thinking."""
    text = after_thinking(completion)
    last, search = None, 0
    while True:
        found = text.find("\\boxed{", search)
        if found < 0:
            return last
        open_at = found + len("\\boxed{")
        depth, close = 1, None
        for i in range(open_at, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    close = i
                    break
        if close is None:
            return last
        last, search = text[open_at:close], close + 1


def tagged_prediction(completion: str):
    """The content of the last prediction tags after thinking."""
    text = after_thinking(completion)
    start = text.rfind(PREDICTION_START)
    if start < 0:
        return None
    start += len(PREDICTION_START)
    end = text.find(PREDICTION_END, start)
    return None if end < 0 else text[start:end]


def prefix_token(answer: str, reference: str, token_ends) -> bool:
    """RPT's reward: a non-empty byte prefix of `reference` ending on a token end."""
    whole = reference.encode("utf-8")
    ends = set(token_ends)

    def matches(candidate: bytes) -> bool:
        return bool(candidate) and whole.startswith(candidate) and len(candidate) in ends

    if matches(answer.encode("utf-8")):
        return True
    leading = len(whole) - len(whole.lstrip(ASCII_WHITESPACE))
    bare = answer.lstrip(WHITESPACE)
    return leading > 0 and bare == answer and matches(whole[:leading] + bare.encode("utf-8"))


def normalise(text: str) -> str:
    """Lower-cased, whitespace runs collapsed to one space, trimmed."""
    return " ".join(part for part in WHITESPACE_RUN.split(text) if part).lower()


def strict(answer: str, reference: str) -> bool:
    """Whether `answer` equals `reference` after normalising both."""
    answer = normalise(answer)
    return bool(answer) and answer == normalise(reference)


def parse_score(answer: str):
    """The judge's verdict: the digit after its last `Score:`, else None."""
    at = answer.rfind("Score:")
    if at < 0:
        return None
    rest = answer[at + len("Score:"):].lstrip(WHITESPACE)
    return {"1": True, "0": False}.get(rest[:1])


def judge_prompt(template: str, context: str, reference: str, prediction: str) -> str:
    """The judge's prompt: the template's slots filled in rlpt's order."""
    return (
        template.replace("{context}", context)
        .replace("{reference}", reference)
        .replace("{prediction}", prediction)
    )


def settings() -> dict:
    """rlpt_reward.json beside this file, with the environment's overrides."""
    path = Path(__file__).with_name("rlpt_reward.json")
    loaded = json.loads(path.read_text()) if path.exists() else {}
    loaded["endpoint"] = os.environ.get("RLPT_JUDGE_ENDPOINT", loaded.get("endpoint"))
    loaded["endpoint_model"] = os.environ.get("RLPT_JUDGE_MODEL", loaded.get("endpoint_model", "judge"))
    return loaded


def ask_judge(prompt: str, config: dict) -> str:
    """The endpoint's answer to `prompt`, retrying failures as rlpt does."""
    endpoint = config.get("endpoint")
    if not endpoint:
        raise RuntimeError("a prefix-semantic reward needs a judge: set RLPT_JUDGE_ENDPOINT "
                           "(an OpenAI-compatible base URL) or judge.endpoint in the rlpt config")
    url = endpoint.rstrip("/") + "/chat/completions"
    body = json.dumps({
        "model": config.get("endpoint_model", "judge"),
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.0,
        "max_tokens": 16,
    }).encode()
    headers = {"Content-Type": "application/json"}
    key_variable = config.get("api_key_env")
    if key_variable:
        headers["Authorization"] = f"Bearer {os.environ[key_variable]}"
    retries = int(config.get("retries", 2))
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep((250 << min(attempt, 4)) / 1000)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=max(1, int(config.get("timeout_s", 60)))) as answer:
                return json.load(answer)["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as error:
            if not (error.code in (408, 429) or error.code >= 500):
                raise RuntimeError(f"the judge refused the request: HTTP {error.code}") from None
            last_error = f"HTTP {error.code}"
        except (urllib.error.URLError, TimeoutError) as error:
            last_error = str(error)
    raise RuntimeError(f"the judge is unreachable after {retries + 1} attempt(s): {last_error}")


def score(task, reward, completion, reference, token_ends=(), context="", following=None,
          config=None) -> float:
    """rlpt's reward of one completion: 1.0 or 0.0."""
    answer = boxed_answer(completion) if task == "next-token" else tagged_prediction(completion)
    if answer is None:
        return 0.0
    if reward == "prefix-token":
        return float(prefix_token(answer, reference, token_ends))
    if reward == "strict":
        return float(strict(answer, reference))
    if reward == "prefix-semantic":
        config = config if config is not None else settings()
        if following and int(config.get("reference_segments", 2)) > 1:
            reference = reference + following
        template = config["template"]
        return float(parse_score(ask_judge(judge_prompt(template, context, reference, answer), config)) is True)
    raise ValueError(f"unknown reward kind {reward!r}: prefix-token, prefix-semantic or strict")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **_):
    """verl's reward function: `extra_info` is the row's, as `rlpt export verl` wrote it."""
    info = extra_info or {}
    return score(
        info.get("task", str(data_source).removeprefix("rlpt/")),
        info.get("reward", "prefix-token"),
        solution_str,
        ground_truth,
        list(info.get("token_ends") or ()),
        info.get("context", ""),
        info.get("following"),
    )


def completion_text(completion) -> str:
    """A TRL completion: text, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") for message in completion)


def trl_reward(completions, task, reward, reference, token_ends, context, following, **_):
    """TRL's reward function over a batch: the dataset's columns arrive by name."""
    return [
        score(t, r, completion_text(c), ref, list(ends or ()), ctx, follow)
        for c, t, r, ref, ends, ctx, follow in zip(
            completions, task, reward, reference, token_ends, context, following
        )
    ]
