"""Shared by the launchers: arguments, the config check, the training command, running
or printing shell commands (standard library only)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ahms_fm import config_utils

ROOT = Path(__file__).resolve().parents[2]
SBATCH_END = "AHMS_FM_SBATCH"  # heredoc delimiter of the printed sbatch command


class LaunchError(Exception):
    """A problem with the command line, said in words; the launcher exits with it."""


# ----------------------------------------------------------------------------
# Shared: arguments, the config, the training command, running or printing.
# ----------------------------------------------------------------------------


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
        epilog="Any --config.key=value is passed to ahms_fm.main unchanged.",
    )
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE[:VARIANTS]",
        help="config file and variants, e.g. configs/ppg.py:runlocal",
    )
    p.add_argument("--workdir", help="checkpoints and metrics (required)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the training processes (repeatable)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the commands that would run, run nothing"
    )
    return p


def parse_args(p: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, list[str]]:
    """Known flags, and the `--config.*` overrides exactly as given (`--config.a=1` or
    `--config.a 1`); anything else is an error."""
    args, rest = p.parse_known_args(argv)
    overrides, i = [], 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("--config."):
            p.error(
                f"unrecognized argument {token!r} (config overrides look like --config.key=value)"
            )
        overrides.append(token)
        if "=" not in token and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            overrides.append(rest[i + 1])
            i += 1
        i += 1
    if not args.workdir:
        p.error("--workdir is required (where checkpoints and metrics go; a run resumes from it)")
    for item in args.env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", item, flags=re.S):
            p.error(f"--env {item!r}: expected KEY=VALUE")
    # Every value ends up in a shell command or a job script: no line breaks or other
    # control characters, which would start a new command or #SBATCH line.
    for name, value in [*vars(args).items(), *(("--config.*", o) for o in overrides)]:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and re.search(r"[\x00-\x1f\x7f]", text):
                p.error(
                    f"--{name.replace('_', '-').lstrip('-')} {text!r}: control characters "
                    "(line breaks, tabs, ...) are not allowed"
                )
    return args, overrides


def sbatch_value(value: str, what: str) -> str:
    """A value for an #SBATCH line: sbatch splits those lines at spaces, so a value
    with spaces is double-quoted (one with a double quote or a '#' is refused)."""
    if re.search(r'["#]', value):
        raise LaunchError(f"{what} {value!r}: '\"' and '#' cannot go into an #SBATCH line")
    return f'"{value}"' if re.search(r"\s", value) else value


def resolve_config(spec: str, *, inside_repo: bool = False) -> str:
    """`FILE[:VARIANTS]` with FILE relative to the checkout where it lies inside it (the
    commands run from there), else absolute. Checks that the file exists."""
    path, sep, variants = spec.partition(":")
    file = Path(os.path.abspath(os.path.expanduser(path)))  # abspath also removes ".."
    if not file.is_file() and "/" not in path and config_utils.packaged(path):
        return spec  # a packaged config by name: every worker's install has it
    if not file.is_file():
        raise LaunchError(
            f"config file {path!r} not found (give a file, or a packaged "
            f"config's name: {', '.join(config_utils.packaged_names())})"
        )
    try:
        path = str(file.relative_to(ROOT))
    except ValueError:
        if inside_repo:
            raise LaunchError(
                f"config file {path!r} is outside the checkout {ROOT}; the "
                "workers only receive the checkout"
            ) from None
        path = str(file)
    return path + sep + variants


def check_config(config: str, overrides: list[str]):
    """Load the config with its overrides as ahms_fm.main will; the ConfigDict, or None
    where this Python lacks the project's dependencies (then only the file is checked)."""
    if not os.path.isabs(config.partition(":")[0]) and (ROOT / config.partition(":")[0]).is_file():
        config = str(ROOT / config)  # relative to the checkout, as the workers run it
    try:
        return config_utils.load(config, overrides)
    except ImportError:  # the project's dependencies are not installed here
        return None
    except config_utils.ConfigError as e:
        raise LaunchError(str(e)) from None


def default_python() -> str:
    """The checkout's virtual environment if there is one, else this Python."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def train_argv(python: str, config: str, workdir: str, overrides: list[str]) -> list[str]:
    return [python, "-m", "ahms_fm.main", "--config", config, "--workdir", workdir, *overrides]


def is_remote(path: str) -> bool:
    return "://" in path


def absolute_workdir(workdir: str) -> str:
    """Local workdirs absolute (the commands run from the checkout); gs:// as given."""
    return workdir if is_remote(workdir) else os.path.abspath(os.path.expanduser(workdir))


def env_pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


class Shell:
    """Runs shell commands (echoed to stderr), or with `dry_run` prints them and runs
    nothing. Both start from the checkout, so what is printed is what would run."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        if dry_run:
            print(f"cd {shlex.quote(str(ROOT))}")

    def comment(self, text: str):
        print(f"# {text}", file=sys.stdout if self.dry_run else sys.stderr, flush=True)

    def run(
        self, command: str, *, check: bool = True, capture: bool = False, dry_stdout: str = ""
    ) -> subprocess.CompletedProcess:
        """Run `command` with bash; in a dry run, print it and pretend it printed
        `dry_stdout` and succeeded."""
        if self.dry_run:
            print(command, flush=True)
            return subprocess.CompletedProcess(command, 0, stdout=dry_stdout)
        print(f"+ {command}", file=sys.stderr, flush=True)
        return subprocess.run(
            command,
            shell=True,
            executable="/bin/bash",
            cwd=ROOT,
            check=check,
            text=True,
            stdout=subprocess.PIPE if capture else None,
        )


def guarded(build, argv) -> int:
    try:
        return build(argv)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: command failed with status {e.returncode}: {e.cmd}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
