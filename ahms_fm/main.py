"""Command line: `ahms-fm train --config ppg[:variant] --workdir DIR` (or a config file,
`configs/ppg.py[:variant]`; also `python -m ahms_fm.main`).

Overrides: `--config.optimizer.learning_rate=3e-4` (unknown keys are errors).
Trains (`ahms_fm.train.train_and_evaluate`), resuming from DIR if it holds checkpoints.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from ahms_fm import cli_help, config_utils, host_memory

_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")
_LOADED = []  # the config, loaded (config_utils.load) before absl parses the other flags


def main(argv):
    del argv
    from ahms_fm import train

    logging.set_verbosity(logging.WARNING)
    train.train_and_evaluate(_LOADED[0], _WORKDIR.value)


def run(argv=None):
    """Console entry point `ahms-fm train`."""
    argv = sys.argv if argv is None else argv
    if cli_help.wants_help(argv):
        cli_help.print_help(
            argv,
            __name__,
            "Pretrain (or resume) a foundation model: checkpoints and metrics go to --workdir.",
            [
                "ahms-fm train --config ppg:demo --workdir runs/demo",
                "ahms-fm train --config ecg:cinc2017,study "
                "--workdir runs/cinc --config.num_steps=600",
            ],
        )
    spec, overrides, rest = config_utils.split_argv(argv)
    _LOADED[:] = [config_utils.load_required(spec, overrides, "ahms-fm train --config ppg:demo")]
    host_memory.keep_freed_memory()  # before JAX starts its threads
    flags.mark_flags_as_required(["workdir"])
    app.run(main, argv=rest)


if __name__ == "__main__":
    run()
