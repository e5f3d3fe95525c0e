"""Command line: `python -m ahms_fm.main --config configs/ppg.py[:variant] --workdir DIR`.

Overrides: `--config.optimizer.learning_rate=3e-4` (unknown keys are errors).
Trains (`ahms_fm.train.train_and_evaluate`), resuming from DIR if it holds checkpoints.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from ahms_fm import host_memory

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variants].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")


def main(argv):
    del argv
    from ahms_fm import train

    logging.set_verbosity(logging.WARNING)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
    """Console entry point `ahms-fm train`."""
    host_memory.keep_freed_memory()  # before JAX starts its threads
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run()
