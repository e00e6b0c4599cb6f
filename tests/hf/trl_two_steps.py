"""Two TRL GRPOTrainer steps on an `rlpt export trl` dataset, rewarded by the exported
rlpt_reward.trl_reward, with a model `rlpt export hf` wrote (CPU).

    python3 tests/hf/trl_two_steps.py EXPORT_DIR MODEL_DIR WORK_DIR

Trains on the dataset's next-token rows (the prefix-token reward needs no judge).
Prints one JSON line: the steps done and the mean reward TRL logged at each.
"""

import importlib.util
import json
import sys
from pathlib import Path

from datasets import load_dataset
from trl import GRPOConfig, GRPOTrainer


def main() -> None:
    export_dir, model_dir, work_dir = (Path(p) for p in sys.argv[1:4])
    spec = importlib.util.spec_from_file_location("rlpt_reward", export_dir / "rlpt_reward.py")
    reward = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reward)
    dataset = load_dataset("parquet", data_files=str(export_dir / "train.parquet"), split="train")
    dataset = dataset.filter(lambda row: row["task"] == "next-token").select(range(8))
    config = GRPOConfig(
        output_dir=str(work_dir), per_device_train_batch_size=4, num_generations=4,
        max_completion_length=8, temperature=1.0, beta=0.0, learning_rate=1e-4,
        max_steps=2, logging_steps=1, use_cpu=True, report_to="none", save_strategy="no",
        bf16=False, seed=0, disable_tqdm=True, log_level="error",
    )
    trainer = GRPOTrainer(
        model=str(model_dir), reward_funcs=reward.trl_reward, args=config, train_dataset=dataset,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    print(json.dumps({
        "steps": trainer.state.global_step,
        "rewards": [entry["reward"] for entry in logged],
        "reward_keys": sorted(k for k in logged[0] if k.startswith("rewards/")) if logged else [],
    }))


if __name__ == "__main__":
    main()
