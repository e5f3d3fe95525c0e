"""The package works installed as users install it: a wheel built from the checkout,
installed non-editable into a fresh virtual environment, run from outside the checkout
(so nothing can reach into it): the command line's help, and a tiny ingest, train and
probe with the packaged configs."""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh environment's `ahms-fm`, a working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("install")
    wheels = base / "wheels"
    had_build = (ROOT / "build").exists()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        cwd=base,
        env=_env(),
    )
    if not had_build:  # setuptools builds inside the checkout: leave it as it was
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = wheels.glob("ahms_fm-*.whl")
    env_dir = base / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The dependencies (JAX, TFDS, ...) come from this environment, without network: its
    # site-packages as a path entry (its own .pth files, e.g. the editable install of the
    # checkout, are not processed from there).
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--quiet",
            str(wheel),
        ],
        check=True,
        env=_env(),
    )
    with open(os.path.join(purelib, "deps.pth"), "w") as f:  # after: pip would see ahms_fm
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    work = base / "work"
    work.mkdir()
    return env_dir / "bin" / "ahms-fm", work


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from here


def _run(installed, *args, timeout=600):
    exe, work = installed
    out = subprocess.run(
        [str(exe), *args], cwd=work, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_installed_package_is_not_the_checkout(installed):
    exe, work = installed
    where = subprocess.run(
        [
            str(exe.parent / "python"),
            "-c",
            "import ahms_fm, ahms_fm.configs.common as c; print(ahms_fm.__file__, c.__file__)",
        ],
        cwd=work,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where


def test_help_from_the_installed_command(installed):
    text = _run(installed, "--help")
    for command in ("train", "ingest", "probe", "embed", "sweep", "curves", "launch"):
        assert f"  {command}" in text
    text = _run(installed, "probe", "--help")
    assert "--checkpoint" in text and "ahms-fm probe --checkpoint" in text


def test_ingest_train_probe_with_packaged_configs(installed):
    _, work = installed
    data = f"--config.data.data_dir={work / 'datasets'}"
    _run(installed, "ingest", "--config", "ppg:tiny", data)
    _run(
        installed,
        "train",
        "--config",
        "ppg:tiny",
        "--workdir",
        str(work / "run"),
        data,
        "--config.num_steps=2",
        "--config.checkpoint_every_steps=2",
    )
    text = _run(
        installed,
        "probe",
        "--checkpoint",
        str(work / "run"),
        "--baselines=",
        "--targets=age",
        f"--data_dir={work / 'datasets'}",
    )
    assert (work / "run" / "probe" / "report.md").is_file() and "age" in text
