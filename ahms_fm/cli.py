"""The `ahms-fm` command: `ahms-fm [train] --config ...`, `ahms-fm ingest --config ...`,
`ahms-fm probe --checkpoint ...`, `ahms-fm sweep --sweep ...`, `ahms-fm curves RUN ...`.

Each subcommand is its own program (python -m ahms_fm.main, python -m
ahms_fm.ingest, python -m ahms_fm.sweep, python -m ahms_fm.curves); this only picks
one, so their flags never meet.
"""

from __future__ import annotations

import sys

COMMANDS = ("train", "ingest", "probe", "sweep", "curves")


def run():
    given = len(sys.argv) > 1 and not sys.argv[1].startswith("-")
    command = sys.argv[1] if given else "train"
    if command not in COMMANDS:
        sys.exit(f"ahms-fm: unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    argv = [f"{sys.argv[0]} {command}", *sys.argv[2 if given else 1:]]
    if command == "ingest":
        from ahms_fm import ingest

        return ingest.run(argv)
    if command == "probe":
        from ahms_fm.evaluation import probe

        return probe.run(argv)
    if command == "sweep":
        from ahms_fm import sweep

        return sweep.run(argv)
    if command == "curves":
        from ahms_fm import curves

        return curves.run(argv)
    from ahms_fm import main

    sys.argv = argv
    return main.run()
