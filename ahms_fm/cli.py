"""The `ahms-fm` command: `ahms-fm [train] --config ...`, `ahms-fm ingest --config ...`,
`ahms-fm probe --checkpoint ...`.

Each subcommand is its own absl program (python -m ahms_fm.main, python -m
ahms_fm.ingest); this only picks one, so their flags never meet.
"""

from __future__ import annotations

import sys

COMMANDS = ("train", "ingest", "probe")


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
    from ahms_fm import main

    sys.argv = argv
    return main.run()
