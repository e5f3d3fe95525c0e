"""Why the in-training quick probe disagreed with `ahms-fm probe` (docs/results.md):
re-run the quick probe (evaluation/quick.py, as it is now) on a saved checkpoint's
student and teacher, beside the numbers the run logged at that step.

    python benchmarks/quick_probe_check.py runs/study 1500
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from absl import logging

logging.set_verbosity(logging.ERROR)
from ahms_fm import train
from ahms_fm.data import dataset
from ahms_fm.evaluation import embeddings, quick


def short(d: dict) -> dict:
    return {k.split("/", 1)[1]: round(v, 3) for k, v in d.items() if k.startswith("probe/")}


def main(run: str, step: int) -> None:
    with open(os.path.join(run, "metrics.jsonl")) as f:
        logged = next(
            r
            for r in map(json.loads, f)
            if r["step"] == step and any(k.startswith("probe/") for k in r)
        )
    print("logged  ", short(logged))
    for which in ("student", "teacher"):
        enc = embeddings.load_encoder(run, which=which, step=step)
        split = dataset.load_split(train.prepare_dataset(enc.config), "validation")
        got = quick.quick_probe(
            enc.config,
            split,
            lambda x, enc=enc: enc.embed_windows(x, batch_size=len(x)),
            batch_size=enc.config.batch_size,
        )
        print(f"{which:8s}", short(got))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
