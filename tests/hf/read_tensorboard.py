"""Reads a run's TensorBoard event files with TensorBoard's own loader.

    python3 tests/hf/read_tensorboard.py RUN/tensorboard

Prints one JSON object: each scalar tag → [[step, value], ...].
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    events = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    events.Reload()
    print(json.dumps({
        tag: [[event.step, event.value] for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }))


if __name__ == "__main__":
    main()
