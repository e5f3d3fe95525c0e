"""Launchers: `python -m ahms_fm.main` on a TPU pod, a Slurm GPU cluster, or N local processes.

    launch/tpu_pod --config configs/ppg.py --workdir gs://bucket/ppg --accelerator v4-32 --zone Z
    launch/slurm   --config configs/ppg.py --workdir /shared/runs/ppg --nodes 4 --gpus-per-node 8
    launch/local   --config configs/ppg.py:tiny --workdir runs/tiny --processes 2 \
                   --devices-per-process 2

Every launcher passes `--config.key=value` overrides through unchanged, checks
the config and the overrides before anything starts (a misspelt key fails here,
not after an hour in a queue), and with `--dry-run` prints the shell commands
it would run, one per line, ready to paste, and runs nothing. Without it, it
runs exactly those commands. docs/launch.md explains preemption and resume.

The launchers import only the standard library (and the config's own imports):
they run on a laptop without JAX.

Modules: `common` (arguments, the config check, commands), `local`, `slurm`, `tpu_pod`.
`ahms-fm launch KIND ...` and the scripts in launch/ run them.
"""

from __future__ import annotations

import sys

from ahms_fm.launch.common import LaunchError, guarded
from ahms_fm.launch.local import local
from ahms_fm.launch.slurm import slurm
from ahms_fm.launch.tpu_pod import tpu_pod

KINDS = {"local": local, "slurm": slurm, "tpu_pod": tpu_pod}
__all__ = ["KINDS", "LaunchError", "local", "main", "run", "slurm", "tpu_pod"]


def run(kind: str, argv=None) -> int:
    """Entry point of the scripts in launch/: `kind` is local, slurm or tpu_pod."""
    return guarded(KINDS[kind], sys.argv[1:] if argv is None else argv)


def main(argv=None) -> int:
    """`ahms-fm launch KIND [flags]`."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] not in KINDS:
        print(
            f"usage: {argv[0]} {{{','.join(KINDS)}}} [flags]   ({argv[0]} KIND --help for "
            "its flags)",
            file=sys.stderr if len(argv) >= 2 and argv[1] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2
    return run(argv[1], argv[2:])
