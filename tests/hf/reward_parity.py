"""Scores cases with the rlpt_reward.py an `rlpt export verl|trl` directory holds, and
compares each reward with the one `rlpt train`'s scorer gave (tests/e2e/export.rs).

    python3 tests/hf/reward_parity.py EXPORT_DIR CASES.json

CASES.json: a list of {task, reward, completion, reference, token_ends, context,
following, rlpt}. Each case is scored through verl's entry point (`compute_score`,
the row's fields as `extra_info`) and, all together, through TRL's (`trl_reward`).
Prints one JSON line {cases, mismatches}; exits 1 when a reward differs.
"""

import importlib.util
import json
import sys
from pathlib import Path


def load_module(directory: Path):
    spec = importlib.util.spec_from_file_location("rlpt_reward", directory / "rlpt_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    directory, cases_path = Path(sys.argv[1]), Path(sys.argv[2])
    reward = load_module(directory)
    cases = json.loads(cases_path.read_text())
    verl = [
        reward.compute_score(
            f"rlpt/{case['task']}",
            case["completion"],
            case["reference"],
            {key: case[key] for key in ("task", "reward", "token_ends", "context", "following")},
        )
        for case in cases
    ]
    columns = {key: [case[key] for case in cases]
               for key in ("task", "reward", "reference", "token_ends", "context", "following")}
    conversational = [[{"role": "assistant", "content": case["completion"]}] for case in cases]
    trl = reward.trl_reward(conversational, **columns)
    mismatches = [
        {"case": i, "rlpt": case["rlpt"], "verl": v, "trl": t, "task": case["task"],
         "reward": case["reward"], "completion": case["completion"]}
        for i, (case, v, t) in enumerate(zip(cases, verl, trl))
        if not (v == t == case["rlpt"])
    ]
    print(json.dumps({"cases": len(cases), "mismatches": mismatches}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
