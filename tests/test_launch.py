"""The launchers (launch/local, launch/slurm, launch/tpu_pod) and a gs:// workdir.

Each launcher runs as the real executable with --dry-run and its printed commands
are parsed; the shell parts (Slurm's requeue on USR1, the TPU workers' detached
start, log stream and status) are run for real against small fakes of srun,
scancel, scontrol and Python. Training itself is not run here: tests/test_train.py
already checks that 2 processes x 4 devices match 8 devices, with the same
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID that launch/local sets.
"""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import ROOT, load_config

OVERRIDES = ["--config.num_steps=7", "--config.data.data_dir=/data/my cohort"]


def _launch(name, *args, check=True):
    done = subprocess.run(
        [sys.executable, str(ROOT / "launch" / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT / "tests",
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _dry(name, *args) -> list[str]:
    lines = _launch(name, *args, "--dry-run").stdout.splitlines()
    assert lines[0] == f"cd {ROOT}"  # every printed command runs from the checkout
    return lines[1:]


def _ends_with_training(argv, workdir, python=None):
    """argv is `python -m ahms_fm.main --config ... --workdir W <overrides as given>`."""
    i = argv.index("ahms_fm.main")
    assert argv[i - 1] == "-m" and (python is None or argv[i - 2] == python)
    assert argv[i + 1 :] == ["--config", "configs/ppg.py:tiny", "--workdir", workdir, *OVERRIDES]


# ----------------------------------------------------------------------------
# launch/local
# ----------------------------------------------------------------------------


def test_local_dry_run_starts_processes_with_one_coordinator_and_fake_devices(tmp_path):
    lines = _dry(
        "local",
        "--config",
        "../configs/ppg.py:tiny",
        "--workdir",
        str(tmp_path),
        "--processes",
        "3",
        "--devices-per-process",
        "2",
        "--port",
        "4321",
        "--env",
        "A=b c",
        *OVERRIDES,
    )
    assert lines[-1] == "wait" and len(lines) == 4
    for i, line in enumerate(lines[:-1]):
        assert line.endswith(" &")
        argv = shlex.split(line[:-2])
        assert argv[0] == "env"
        env = dict(w.split("=", 1) for w in argv[1:] if "=" in w and not w.startswith("-"))
        assert env["JAX_COORDINATOR_ADDRESS"] == "localhost:4321"
        assert env["JAX_NUM_PROCESSES"] == "3" and env["JAX_PROCESS_ID"] == str(i)
        assert env["JAX_PLATFORMS"] == "cpu"
        assert "--xla_force_host_platform_device_count=2" in env["XLA_FLAGS"].split()
        assert env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] == "gloo" and env["A"] == "b c"
        _ends_with_training(argv, str(tmp_path))


def test_local_one_process_is_the_plain_command_and_gpus_are_split(tmp_path):
    (line,) = _dry("local", "--config", "../configs/ppg.py:tiny", "--workdir", "run", *OVERRIDES)
    argv = shlex.split(line)
    assert argv[0] != "env" and not line.endswith("&")  # no coordinator for one process
    _ends_with_training(argv, str(ROOT / "tests" / "run"))  # relative to where it was called
    lines = _dry(
        "local",
        "--config",
        "../configs/ppg.py:tiny",
        "--workdir",
        "run",
        "--processes",
        "2",
        "--gpus-per-process",
        "4",
        *OVERRIDES,
    )
    assert [
        "CUDA_VISIBLE_DEVICES=0,1,2,3" in lines[0],
        "CUDA_VISIBLE_DEVICES=4,5,6,7" in lines[1],
    ] == [True, True]


FAKE_TRAINER = """#!/bin/bash
# Stands in for Python: reports its process id and arguments, checkpoints on SIGTERM.
trap 'echo "process $JAX_PROCESS_ID: checkpoint, exit"; exit 0' TERM
touch "$MARKS/started.$JAX_PROCESS_ID"
echo "process $JAX_PROCESS_ID of $JAX_NUM_PROCESSES at $JAX_COORDINATOR_ADDRESS: $*"
if [ "$JAX_PROCESS_ID" = "$FAIL" ]; then exit 3; fi
[ -n "$FINISH" ] && exit 0
while :; do sleep 0.05; done
"""


def _wait_for(condition, timeout=30.0):
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)


def _fake(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_local_runs_the_processes_forwards_sigterm_and_stops_all_when_one_fails(tmp_path):
    trainer = _fake(tmp_path / "python", FAKE_TRAINER)
    cmd = [
        sys.executable,
        str(ROOT / "launch" / "local"),
        "--config",
        "configs/ppg.py:tiny",
        "--workdir",
        str(tmp_path / "run"),
        "--processes",
        "2",
        "--python",
        trainer,
        *OVERRIDES,
    ]
    marks = tmp_path / "marks"
    marks.mkdir()
    env = dict(os.environ, MARKS=str(marks))
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env=dict(env, FINISH="1"), timeout=60
    )
    assert done.returncode == 0, done.stderr
    for i in range(2):
        assert f"[p{i}] process {i} of 2 at localhost:" in done.stdout
    assert "'--config.data.data_dir=/data/my cohort'" not in done.stdout  # argv, not a string
    assert "--config.data.data_dir=/data/my cohort" in done.stdout

    # Ctrl-C / SIGTERM to the launcher: SIGTERM to every process (checkpoint, exit 0).
    for mark in marks.iterdir():
        mark.unlink()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    _wait_for(lambda: len(list(marks.iterdir())) == 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "[p0] process 0: checkpoint, exit" in out and "[p1] process 1: checkpoint" in out

    # One process fails: the other is stopped, the launcher fails with its status.
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env=dict(env, FAIL="1"), timeout=60
    )
    assert done.returncode == 3 and "[p0] process 0: checkpoint, exit" in done.stdout


# ----------------------------------------------------------------------------
# launch/slurm
# ----------------------------------------------------------------------------


def _sbatch(*args) -> tuple[list[str], str]:
    """(the commands before sbatch, the script fed to sbatch) of a dry run."""
    lines = _dry("slurm", "--config", "../configs/ppg.py:tiny", *args, *OVERRIDES)
    start = lines.index("sbatch <<'AHMS_FM_SBATCH'")
    assert lines[-1] == "AHMS_FM_SBATCH"
    return lines[:start], "\n".join(lines[start + 1 : -1]) + "\n"


@pytest.mark.parametrize("per, tasks", [("gpu", 4), ("node", 1)])
def test_slurm_script(tmp_path, per, tasks):
    workdir = str(tmp_path / "run")
    before, script = _sbatch(
        "--workdir",
        workdir,
        "--nodes",
        "3",
        "--gpus-per-node",
        "4",
        "--per",
        per,
        "--partition",
        "gpu",
        "--time",
        "12:00:00",
        "--account",
        "lab",
        "--sbatch=--qos=high",
        "--python",
        "/py",
    )
    assert before == [f"mkdir -p {workdir}"]
    lines = script.splitlines()
    directives = [line.split(" ", 1)[1] for line in lines if line.startswith("#SBATCH ")]
    assert {
        "--nodes=3",
        f"--ntasks-per-node={tasks}",
        "--gpus-per-node=4",
        "--partition=gpu",
        "--time=12:00:00",
        "--account=lab",
        "--requeue",
        "--signal=B:USR1@120",
        f"--output={workdir}/slurm-%j.out",
        "--open-mode=append",
        "--qos=high",
    } <= set(directives)
    assert "export AHMS_FM_DISTRIBUTED=1" in lines
    # One process per node sees all its GPUs; per GPU, JAX takes SLURM_LOCALID's.
    assert ("export JAX_LOCAL_DEVICE_IDS=0,1,2,3" in lines) == (per == "node")
    (srun,) = [line for line in lines if line.startswith("srun ")]
    argv = shlex.split(srun.removesuffix(" &"))
    assert argv[:2] == ["srun", "--kill-on-bad-exit=1"]
    _ends_with_training(argv, workdir, python="/py")
    assert 'scontrol requeue "$SLURM_JOB_ID"' in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert (
        _launch(
            "slurm",
            "--config",
            "../configs/ppg.py:tiny",
            "--workdir",
            workdir,
            "--nodes",
            "3",
            "--gpus-per-node",
            "4",
            "--per",
            per,
            "--partition",
            "gpu",
            "--time",
            "12:00:00",
            "--account",
            "lab",
            "--sbatch=--qos=high",
            "--python",
            "/py",
            *OVERRIDES,
            "--script",
        ).stdout
        == script
    )


SLURM_FAKES = {
    # srun: drop its options, run the task (one task is enough to test the script).
    "srun": '#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n',
    # scancel --signal=TERM JOB: signal the "steps" (the fake trainer), not the script.
    "scancel": '#!/bin/bash\nkill -TERM "$(cat "$FAKES/trainer.pid")"\n',
    "scontrol": '#!/bin/bash\necho "$@" >> "$FAKES/scontrol.log"\n',
    "python": (
        '#!/bin/bash\necho $$ > "$FAKES/trainer.pid"\n'
        "trap 'echo checkpoint >> \"$FAKES/trainer.log\"; exit 0' TERM\n"
        '[ -n "$FINISH" ] && exit 0\nwhile :; do sleep 0.05; done\n'
    ),
}


@pytest.mark.parametrize("warned", [True, False])
def test_slurm_script_requeues_after_the_time_limit_warning_only(tmp_path, warned):
    for name, text in SLURM_FAKES.items():
        _fake(tmp_path / name, text)
    _, script = _sbatch("--workdir", str(tmp_path / "run"), "--python", str(tmp_path / "python"))
    env = dict(
        os.environ,
        FAKES=str(tmp_path),
        SLURM_JOB_ID="42",
        PATH=f"{tmp_path}:{os.environ['PATH']}",
        **({} if warned else {"FINISH": "1"}),
    )
    job = subprocess.Popen(
        ["bash", "-c", script], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if warned:
        _wait_for((tmp_path / "trainer.pid").exists)
        time.sleep(0.2)  # its trap set
        job.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@120 sends
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 0, out
    log = tmp_path / "scontrol.log"
    if warned:
        assert (tmp_path / "trainer.log").read_text() == "checkpoint\n"
        assert log.read_text() == "requeue 42\n"
    else:
        assert not log.exists()  # finished: no requeue


def test_slurm_needs_a_log_folder_for_a_gs_workdir():
    done = _launch(
        "slurm",
        "--config",
        "../configs/ppg.py:tiny",
        "--workdir",
        "gs://b/r",
        "--dry-run",
        check=False,
    )
    assert done.returncode == 2 and "--output" in done.stderr


# ----------------------------------------------------------------------------
# launch/tpu_pod
# ----------------------------------------------------------------------------

TPU = [
    "--config",
    "../configs/ppg.py:tiny",
    "--workdir",
    "gs://bucket/run",
    "--name",
    "fm",
    "--zone",
    "us-central2-b",
    "--project",
    "proj",
]
WHERE = ["--zone=us-central2-b", "--project=proj"]


def _gcloud(lines) -> list[list[str]]:
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert all(c[0] == "gcloud" for c in commands if c[0] not in ("mkdir", "(while"))
    return commands


def _remote(argv) -> str:
    """The --command of a `gcloud compute tpus tpu-vm ssh NAME --worker=all` line."""
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "fm"]
    assert "--worker=all" in argv and argv[-2:] == WHERE
    return argv[argv.index("--command") + 1]


def test_tpu_dry_run_creates_ships_installs_runs_streams_and_deletes():
    lines = _dry("tpu_pod", *TPU, "--accelerator", "v4-32", *OVERRIDES)
    create, tar, scp, install, start, stream, status, delete = _gcloud(lines)
    assert create == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "create",
        "fm",
        "--accelerator-type=v4-32",
        "--version=tpu-ubuntu2204-base",
        *WHERE,
    ]
    assert "git ls-files -z --cached --others --exclude-standard" in shlex.join(tar)
    assert scp == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "scp",
        "build/ahms_fm-fm.tgz",
        "fm:ahms_fm.tgz",
        "--worker=all",
        *WHERE,
    ]
    assert "tar -xzf ~/ahms_fm.tgz -C ~/ahms_fm" in _remote(install)
    assert 'pip install --python .venv/bin/python -e ".[tpu]" gcsfs' in _remote(install)
    run = _remote(start)
    assert "export AHMS_FM_DISTRIBUTED=1" in run
    train = shlex.join(
        [
            ".venv/bin/python",
            "-m",
            "ahms_fm.main",
            "--config",
            "configs/ppg.py:tiny",
            "--workdir",
            "gs://bucket/run",
            *OVERRIDES,
        ]
    )
    ingest = shlex.join(
        [".venv/bin/python", "-m", "ahms_fm.ingest", "--config", "configs/ppg.py:tiny", *OVERRIDES]
    )
    assert f"{ingest} && {train}; echo $? > train.rc" in run  # each worker has its own disk
    assert "tail -n +1 -F" in _remote(stream) and "train.rc" in _remote(status)
    assert delete == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "fm", "--quiet", *WHERE]


def test_tpu_queued_resource_spot_and_best_effort_and_reuse():
    lines = _dry(
        "tpu_pod", *TPU, "--accelerator", "v5litepod-16", "--queued", "--spot", "--restarts", "2"
    )
    create, _, *_, delete = _gcloud(lines)
    assert create == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "create",
        "fm",
        "--node-id=fm",
        "--accelerator-type=v5litepod-16",
        "--runtime-version=v2-alpha-tpuv5-lite",
        "--spot",
        *WHERE,
    ]
    (wait,) = [line for line in lines if line.startswith("(while")]  # until it is ACTIVE
    assert "queued-resources describe fm --format 'value(state.state)' " in wait
    assert "case $s in ACTIVE) break;; FAILED|SUSPENDED) exit 1;; esac" in wait
    assert delete == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "delete",
        "fm",
        "--force",
        "--quiet",
        *WHERE,
    ]
    assert lines[-1].startswith("# after a preemption: all of the above again, up to 2")

    (create, *_) = _gcloud(
        _dry("tpu_pod", *TPU, "--accelerator", "v6e-8", "--queued", "--best-effort")
    )
    assert create[:2] == ["gcloud", "alpha"] and "--best-effort" in create
    assert "--runtime-version=v2-alpha-tpuv6e" in create

    commands = [shlex.join(c) for c in _gcloud(_dry("tpu_pod", *TPU, "--reuse"))]
    assert not any(" create " in c or " delete " in c for c in commands)  # not ours


def test_tpu_git_shipping_clones_the_commit_on_every_worker():
    lines = _dry(
        "tpu_pod",
        *TPU,
        "--accelerator",
        "v4-8",
        "--ship",
        "git",
        "--git-url",
        "https://example.org/ahms_fm.git",
        "--git-ref",
        "abc123",
    )
    install = _remote(_gcloud(lines)[1])
    assert install.startswith("(git clone --quiet https://example.org/ahms_fm.git ~/ahms_fm")
    assert "checkout --quiet --force abc123" in install
    assert not any(" scp " in line for line in lines)


FAKE_WORKER_PYTHON = """#!/bin/bash
echo "python $*"
[[ " $* " == *" ahms_fm.main "* ]] && exit "${TRAIN_STATUS:-0}"
exit 0
"""


@pytest.mark.parametrize("status", [0, 5])
def test_tpu_worker_commands_run_detached_stream_and_report_status(tmp_path, status):
    """The --command strings of start, stream and status, run by bash on a fake worker."""
    home = tmp_path / "home"
    (home / "ahms_fm" / ".venv" / "bin").mkdir(parents=True)
    _fake(home / "ahms_fm" / ".venv" / "bin" / "python", FAKE_WORKER_PYTHON)
    lines = _dry("tpu_pod", *TPU, "--accelerator", "v4-32", "--env", "X=1 2", *OVERRIDES)
    _, _, _, _, start, stream, status_cmd, _ = _gcloud(lines)
    env = dict(os.environ, HOME=str(home), TRAIN_STATUS=str(status))

    def worker(argv):
        return subprocess.run(
            ["bash", "-c", _remote(argv)], env=env, capture_output=True, text=True, timeout=30
        )

    assert worker(start).returncode == 0  # returns at once: training runs in the background
    out = worker(stream).stdout  # follows the log until training ends
    host = socket.gethostname()
    assert f"[{host}] python -m ahms_fm.ingest --config configs/ppg.py:tiny" in out
    assert (
        f"[{host}] python -m ahms_fm.main --config configs/ppg.py:tiny --workdir "
        f"gs://bucket/run {' '.join(OVERRIDES)}"
    ) in out
    assert worker(status_cmd).stdout.split() == [str(status)]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config", "configs/nope.py", "--workdir", "gs://b/r", "--accelerator", "v4-8"],
            "config file 'configs/nope.py' not found",
        ),
        (["--config", "../configs/ppg.py", "--accelerator", "v4-8"], "--workdir is required"),
        (
            ["--config", "../configs/ppg.py", "--workdir", "runs/x", "--accelerator", "v4-8"],
            "must be in Cloud Storage",
        ),
        (["--config", "../configs/ppg.py", "--workdir", "gs://b/r"], "--accelerator is needed"),
        (
            ["--config", "../configs/ppg.py:tinyy", "--workdir", "gs://b/r", "--reuse"],
            "unknown config variant(s) ['tinyy']",
        ),
        (
            [
                "--config",
                "../configs/ppg.py",
                "--workdir",
                "gs://b/r",
                "--reuse",
                "--config.num_stpes=3",
            ],
            'Did you mean "num_steps"',
        ),
        (
            ["--config", "../configs/ppg.py", "--workdir", "gs://b/r", "--reuse", "--zones=x"],
            "unrecognized argument '--zones=x'",
        ),
        (
            [
                "--config",
                "../configs/ppg.py",
                "--workdir",
                "gs://b/r",
                "--accelerator",
                "v4-8",
                "--best-effort",
            ],
            "--best-effort is a queued-resource tier",
        ),
    ],
)
def test_bad_input_is_an_error_that_names_the_problem(args, message):
    done = _launch("tpu_pod", *args, "--dry-run", check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == ""  # nothing printed as if it would run


@pytest.mark.parametrize(
    "launcher, args, message",
    [
        # Before: the name went unquoted into a tar path and ran the injected command.
        (
            "tpu_pod",
            ["--workdir", "gs://b/r", "--reuse", "--name", "x;touch PWNED;y"],
            "--name 'x;touch PWNED;y': a TPU name is lowercase letters",
        ),
        ("tpu_pod", ["--workdir", "gs://b/r", "--reuse", "--name", "Upper"], "a TPU name"),
        # Before: a line break put a line into the job script and disabled the later #SBATCH.
        (
            "slurm",
            ["--workdir", "/tmp/r", "--account", "acc\ntouch PWNED"],
            "--account 'acc\\ntouch PWNED': control characters",
        ),
        ("slurm", ["--workdir", "/tmp/r", "--job-name", 'a"b'], "cannot go into an #SBATCH line"),
        ("local", ["--workdir", "/tmp/r\rx"], "control characters"),
        ("slurm", ["--workdir", "/tmp/r", "--config.seed=1\n#"], "control characters"),
    ],
)
def test_names_and_values_cannot_inject_commands(tmp_path, launcher, args, message):
    done = _launch(launcher, "--config", "../configs/ppg.py:tiny", *args, "--dry-run", check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == "" and not (ROOT / "tests" / "PWNED").exists()


def test_slurm_quotes_a_log_path_with_spaces(tmp_path):
    out = tmp_path / "my logs" / "job-%j.out"
    script = _launch(
        "slurm",
        "--config",
        "../configs/ppg.py:tiny",
        "--workdir",
        str(tmp_path / "r"),
        "--output",
        str(out),
        "--script",
    ).stdout
    assert f'#SBATCH --output="{out}"' in script.splitlines()


# ----------------------------------------------------------------------------
# A gs:// workdir: paths are not mangled; the monitor uploads whole files.
# ----------------------------------------------------------------------------


def test_gs_workdir_paths_stay_uris():
    from ahms_fm.checkpoint import as_path

    assert str(as_path("gs://bucket/run") / "checkpoints") == "gs://bucket/run/checkpoints"
    assert str(as_path("runs/x")) == os.path.abspath("runs/x")


def test_monitor_on_a_gs_workdir_uploads_whole_files_and_appends_on_resume(tmp_path, monkeypatch):
    """gs:// served by the local file system (etils' mock: every URI goes to the OS backend,
    so gs://bucket/run is the folder gs:/bucket/run under the current one)."""
    from etils.epath import testing

    from ahms_fm.data.preprocess import ModalitySpec
    from ahms_fm.monitor import Monitor

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the local staging folder
    (tmp_path / "tmp").mkdir()
    config = load_config("ppg", "tiny")
    spec = ModalitySpec.from_config(config)
    remote = tmp_path / "gs:" / "bucket" / "run"
    with testing.mock_epath():
        for steps in ([1, 2], [3]):  # a run, then its resumption
            monitor = Monitor("gs://bucket/run", config, spec, total_steps=3, devices=1)
            for step in steps:
                monitor.log(step, {"loss": 1.0 / step})
                rows = [json.loads(r) for r in (remote / "metrics.jsonl").read_text().splitlines()]
                assert rows[-1]["step"] == step  # uploaded at each log, not only at the end
            monitor.close()
    rows = (remote / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3]
    assert json.loads((remote / "config.json").read_text())["model"]["embed_dim"] == 36
    assert (remote / "modality_spec.json").exists()
    assert len(list((remote / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert not list((tmp_path / "tmp").iterdir())  # removed at close
