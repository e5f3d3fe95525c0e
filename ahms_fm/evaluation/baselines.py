"""Untrained encoders as baselines: K random initializations and the run's own one.

    seeds = random_seeds(config.seed, probe.seed, probe.random_seeds)
    encoders = untrained_encoders(config, step_dir, which, windows, seeds=seeds, passes=40)
    # {"random_init/0": Encoder, ..., "random_init/4": Encoder, "init": Encoder}

What pretraining adds is measured against the same architecture before it: a
frozen encoder that was never trained. One such encoder is one draw; K seeds
show how much the baseline itself varies. The run's own initialization (its
step-0 checkpoint, `init`) is the exact starting point of the trained weights.

Every untrained encoder gets the same batch-norm treatment: its running statistics
re-estimated on training windows (`embeddings.calibrate_batch_norm`). A fresh
network's eval-mode statistics (mean 0, variance 1) do not normalize, so its
activations shrink layer by layer (to ~1e-6) and its quality depends on the seed by
chance; re-estimated, every layer normalizes as in a trained network, and the
baseline is the architecture's prior rather than an artefact of initialization.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from absl import logging

from ahms_fm.evaluation import embeddings

RANDOM = "random_init"  # feature set names: random_init/0 ... random_init/{K-1}
INIT = "init"


def random_seeds(run_seed: int, probe_seed: int, k: int) -> list[int]:
    """K distinct initialization seeds, never the run's own `run_seed` (its init is the
    `init` baseline): run_seed + 1 + probe_seed * k onwards, skipping run_seed."""
    start = int(run_seed) + 1 + int(probe_seed) * int(k)
    return list(itertools.islice((s for s in itertools.count(start) if s != run_seed), k))


def random_name(i: int) -> str:
    return f"{RANDOM}/{i}"


def is_random(name: str) -> bool:
    return name.startswith(RANDOM + "/")


def init_encoder(step_dir: Path, which: str, windows, passes: int):
    """The run's step-0 encoder, batch norm re-estimated; None (with a warning) if the run
    kept no step-0 checkpoint."""
    try:
        zero = embeddings.find_checkpoint(Path(step_dir).parent, step=0)
    except FileNotFoundError:
        logging.warning(
            "%s: no step-0 checkpoint in this run, so no `init` baseline (runs "
            "save one from the start; older runs have none)",
            Path(step_dir).parent,
        )
        return None
    encoder = embeddings.load_encoder(zero, which=which)
    return embeddings.calibrate_batch_norm(encoder, windows, passes=passes)


def untrained_encoders(
    config, step_dir: Path, which: str, windows, *, seeds, passes: int, init: bool = True
) -> dict:
    """{name: encoder}: `random_init/<i>` for each seed, then `init` when there is one."""
    out = {}
    for i, seed in enumerate(seeds):
        fresh = embeddings.random_encoder(config, seed=seed)
        out[random_name(i)] = embeddings.calibrate_batch_norm(fresh, windows, passes=passes)
    if init:
        zero = init_encoder(step_dir, which, windows, passes)
        if zero is not None:
            out[INIT] = zero
    return out
