"""The `ahms-fm` command: one program per subcommand, picked here, so their flags never
meet. `ahms-fm --help` lists them; `ahms-fm X --help` shows X's own flags.

Expected user errors (a bad file, config value, flag, checkpoint or workdir) print one
line naming the problem and exit 2; `--debug` anywhere shows the traceback instead.
"""

from __future__ import annotations

import sys

# name -> ("module" with run(argv), or "module:function", one line of help)
COMMANDS = {
    "train": ("ahms_fm.main", "pretrain (or resume) on a dataset; checkpoints to --workdir"),
    "ingest": ("ahms_fm.ingest", "recordings or the synthetic cohort -> a dataset"),
    "probe": (
        "ahms_fm.evaluation.command",
        "linear probes of a checkpoint's embeddings, with baselines and intervals",
    ),
    "embed": (
        "ahms_fm.evaluation.embed_command",
        "a checkpoint's embeddings of a folder of recordings (or a dataset) -> Parquet",
    ),
    "sweep": ("ahms_fm.sweep", "many runs from one config (the paper's ablations ...)"),
    "curves": ("ahms_fm.curves", "training curves of one or several runs from metrics.jsonl"),
    "launch": (
        "ahms_fm.launch:main",
        "train on local processes, a Slurm cluster or a TPU pod (local, slurm, tpu_pod)",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: ahms-fm COMMAND [flags]   (ahms-fm COMMAND --help for its flags)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        "",
        "`ahms-fm --config ...` without a command trains. --debug: tracebacks "
        "instead of one-line errors.",
        "docs: README.md, docs/",
    ]
    return "\n".join(lines)


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix, said in one line."""
    from ahms_fm.config_utils import ConfigError
    from ahms_fm.data.recording import DataError
    from ahms_fm.data.write import DatasetMismatch, NothingKept
    from ahms_fm.lock import WorkdirBusy

    found = [ConfigError, DataError, DatasetMismatch, NothingKept, WorkdirBusy, FileNotFoundError]
    for module, name in (
        ("ahms_fm.train", "ResumeMismatch"),
        ("ahms_fm.train", "NonFiniteLoss"),
        ("ahms_fm.checkpoint", "CorruptCheckpoint"),
        ("ahms_fm.evaluation.probe", "NoTargets"),
    ):
        if module in sys.modules:  # only a loaded module can have raised it
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def run():
    argv = list(sys.argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    given = len(argv) > 1 and not argv[1].startswith("-")
    if not given and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        print(usage())
        return 0
    command = argv[1] if given else "train"
    if command not in COMMANDS:
        print(f"ahms-fm: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    program = [f"{argv[0]} {command}", *argv[2 if given else 1 :]]
    import importlib

    module_name, _, function = COMMANDS[command][0].partition(":")
    entry = getattr(importlib.import_module(module_name), function or "run")
    try:
        return entry(program)
    except Exception as e:
        if debug or not isinstance(e, user_errors()):
            raise
        print(f"ahms-fm {command}: error: {e}", file=sys.stderr)
        return 2
