"""The `ahms-fm` command line: one listing of the subcommands, each one's own flags,
one-line errors for the user's mistakes (exit 2), tracebacks with --debug."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from ahms_fm import cli


def _ahms(*args, cwd=ROOT):
    code = "import sys; from ahms_fm import cli; sys.exit(cli.run())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_help_lists_every_command_with_a_line():
    done = _ahms("--help")
    assert done.returncode == 0
    for name, (_, text) in cli.COMMANDS.items():
        assert f"  {name}" in done.stdout and text in done.stdout
    assert _ahms().stdout == done.stdout  # no arguments: the same listing
    bad = _ahms("trian")
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr


@pytest.mark.parametrize(
    "command, flag", [("train", "--workdir"), ("ingest", "--overwrite"), ("probe", "--checkpoint")]
)
def test_each_command_shows_its_own_flags_and_an_example(command, flag):
    """Before: `ahms-fm probe --help` printed only 'Try --helpfull'."""
    done = _ahms(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: " in done.stdout and f"  {flag}: " in done.stdout
    assert f"examples:\n  ahms-fm {command} " in done.stdout
    assert "--jax_" not in done.stdout and "--helpfull" not in done.stdout
    assert len(done.stdout.splitlines()) < 40


def test_a_user_error_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path):
    args = (
        "train",
        "--config",
        "configs/ppg.py:tiny",
        "--workdir",
        str(tmp_path / "r"),
        "--config.num_steps=-5",
    )
    done = _ahms(*args)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ahms-fm train: error: config: num_steps must be a positive integer, got -5"
    )
    debug = _ahms(*args, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    missing = _ahms("probe", "--checkpoint", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("ahms-fm probe: error: ") and "nowhere" in missing.stderr


def test_embed_and_launch_are_subcommands_with_their_own_help():
    done = _ahms("embed", "--help")
    assert done.returncode == 0 and "--checkpoint" in done.stdout and "--spec" in done.stdout
    assert "examples:\n  ahms-fm embed " in done.stdout
    done = _ahms("launch", "--help")
    assert done.returncode == 0 and "{local,slurm,tpu_pod}" in done.stdout
    done = _ahms("launch", "local", "--help")
    assert done.returncode == 0 and "--processes" in done.stdout
    assert _ahms("launch", "moon").returncode == 2
