"""Command line: `python -m ahms_fm.main --config configs/ppg.py[:variant] --workdir DIR`.

Overrides: `--config.optimizer.learning_rate=3e-4` (unknown keys are errors).
Trains (`ahms_fm.train.train_and_evaluate`), resuming from DIR if it holds checkpoints.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from ahms_fm import cli_help, host_memory

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variants].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")


def main(argv):
    del argv
    from ahms_fm import train

    logging.set_verbosity(logging.WARNING)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
    """Console entry point `ahms-fm train`."""
    if cli_help.wants_help(sys.argv):
        cli_help.print_help(sys.argv, __name__, "Pretrain (or resume) a foundation model: "
                            "checkpoints and metrics go to --workdir.", [
                                "ahms-fm train --config configs/ppg.py:demo --workdir runs/demo",
                                "ahms-fm train --config configs/ecg.py:cinc2017,study "
                                "--workdir runs/cinc --config.num_steps=600"])
    host_memory.keep_freed_memory()  # before JAX starts its threads
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run()
