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
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"
SBATCH_END = "AHMS_FM_SBATCH"  # heredoc delimiter of the printed sbatch command


class LaunchError(Exception):
    """A problem with the command line, said in words; the launcher exits with it."""


# ----------------------------------------------------------------------------
# Shared: arguments, the config, the training command, running or printing.
# ----------------------------------------------------------------------------


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=description, allow_abbrev=False,
        epilog="Any --config.key=value is passed to ahms_fm.main unchanged.")
    p.add_argument("--config", required=True, metavar="FILE[:VARIANTS]",
                   help="config file and variants, e.g. configs/ppg.py:runlocal")
    p.add_argument("--workdir", help="checkpoints and metrics (required)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for the training processes (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands that would run, run nothing")
    return p


def _parse(p: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, list[str]]:
    """Known flags, and the `--config.*` overrides exactly as given (`--config.a=1` or
    `--config.a 1`); anything else is an error."""
    args, rest = p.parse_known_args(argv)
    overrides, i = [], 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("--config."):
            p.error(f"unrecognized argument {token!r} (config overrides look like "
                    "--config.key=value)")
        overrides.append(token)
        if "=" not in token and i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            overrides.append(rest[i + 1])
            i += 1
        i += 1
    if not args.workdir:
        p.error("--workdir is required (where checkpoints and metrics go; a run resumes "
                "from it)")
    for item in args.env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", item, flags=re.S):
            p.error(f"--env {item!r}: expected KEY=VALUE")
    # Every value ends up in a shell command or a job script: no line breaks or other
    # control characters, which would start a new command or #SBATCH line.
    for name, value in [*vars(args).items(), *(("--config.*", o) for o in overrides)]:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and re.search(r"[\x00-\x1f\x7f]", text):
                p.error(f"--{name.replace('_', '-').lstrip('-')} {text!r}: control characters "
                        "(line breaks, tabs, ...) are not allowed")
    return args, overrides


def _sbatch_value(value: str, what: str) -> str:
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
    if not file.is_file() and "/" not in path and not path.endswith(".py") \
            and (PACKAGE_CONFIGS / f"{path}.py").is_file():
        return spec  # a packaged config by name: every worker's install has it
    if not file.is_file():
        raise LaunchError(f"config file {path!r} not found (give a file, or a packaged "
                          f"config's name: {', '.join(_packaged_names())})")
    try:
        path = str(file.relative_to(ROOT))
    except ValueError:
        if inside_repo:
            raise LaunchError(f"config file {path!r} is outside the checkout {ROOT}; the "
                              "workers only receive the checkout") from None
        path = str(file)
    return path + sep + variants


def check_config(config: str, overrides: list[str]):
    """Load the config with its overrides as ahms_fm.main will; the ConfigDict, or None
    where this Python lacks the project's dependencies (then only the file is checked)."""
    try:
        from ahms_fm import config_utils
    except ImportError:
        return None
    if not os.path.isabs(config.partition(":")[0]) and (ROOT / config.partition(":")[0]).is_file():
        config = str(ROOT / config)  # relative to the checkout, as the workers run it
    try:
        return config_utils.load(config, overrides)
    except Exception as e:  # absl wraps the config's errors in a traceback: keep the point
        while e.args and isinstance(e.args[0], BaseException):  # ConfigDict: AttributeError
            e = e.args[0]  # wrapping a KeyError (a misspelt key) that suggests the right one
        message = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
        lines = message.splitlines()
        message = lines[-1] if "Traceback" in message else " ".join(lines)
        message = f"unknown key {message}" if isinstance(e, KeyError) else message
        raise LaunchError(f"{shlex.join(['--config', config, *overrides])}: {message}") \
            from None


def _packaged_names() -> list[str]:
    return sorted(p.stem for p in PACKAGE_CONFIGS.glob("[!_]*.py"))


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

    def run(self, command: str, *, check: bool = True, capture: bool = False,
            dry_stdout: str = "") -> subprocess.CompletedProcess:
        """Run `command` with bash; in a dry run, print it and pretend it printed
        `dry_stdout` and succeeded."""
        if self.dry_run:
            print(command, flush=True)
            return subprocess.CompletedProcess(command, 0, stdout=dry_stdout)
        print(f"+ {command}", file=sys.stderr, flush=True)
        return subprocess.run(command, shell=True, executable="/bin/bash", cwd=ROOT,
                              check=check, text=True,
                              stdout=subprocess.PIPE if capture else None)


def _main(build, argv) -> int:
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


# ----------------------------------------------------------------------------
# Local: N processes on this machine (fake CPU devices or the local GPUs).
# ----------------------------------------------------------------------------


def local_processes(args, overrides) -> list[tuple[dict[str, str], list[str]]]:
    """(environment additions, argv) of each process."""
    argv = train_argv(args.python, args.config, args.workdir, overrides)
    procs = []
    for i in range(args.processes):
        env = {}
        if args.processes > 1:  # train.initialize_distributed reads these
            env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{args.port}",
                       JAX_NUM_PROCESSES=str(args.processes), JAX_PROCESS_ID=str(i))
        if args.devices_per_process:
            xla = re.sub(r"--xla_force_host_platform_device_count=\S+", "",
                         os.environ.get("XLA_FLAGS", "")).split()
            env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(
                [*xla, f"--xla_force_host_platform_device_count={args.devices_per_process}"]))
            if args.processes > 1:  # XLA:CPU's cross-process collectives
                env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
        if args.gpus_per_process:
            first = i * args.gpus_per_process
            env["CUDA_VISIBLE_DEVICES"] = ",".join(
                str(g) for g in range(first, first + args.gpus_per_process))
        env.update(env_pairs(args.env))
        procs.append((env, argv))
    return procs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def local(argv=None) -> int:
    p = _parser("launch/local", "Train with N processes on this machine: a multi-host run "
                "in miniature (fake CPU devices) or one process per GPU group.")
    p.add_argument("--processes", type=int, default=1, help="JAX processes (default 1)")
    p.add_argument("--devices-per-process", type=int, default=0, metavar="D",
                   help="D fake CPU devices per process (XLA_FLAGS); 0: the real devices")
    p.add_argument("--gpus-per-process", type=int, default=0, metavar="K",
                   help="give process i GPUs i*K..i*K+K-1 (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--port", type=int, default=0, help="coordinator port (default: a free one)")
    p.add_argument("--python", default=default_python(), help="Python that runs the training")
    args, overrides = _parse(p, argv)
    if args.processes < 1:
        raise LaunchError("--processes must be at least 1")
    if args.devices_per_process and args.gpus_per_process:
        raise LaunchError("--devices-per-process (fake CPU devices) and --gpus-per-process "
                          "exclude each other")
    args.config = resolve_config(args.config)
    check_config(args.config, overrides)
    args.workdir = absolute_workdir(args.workdir)
    args.port = args.port or _free_port()
    procs = local_processes(args, overrides)

    def line(env, argv):
        words = [f"{k}={v}" for k, v in env.items()]
        return shlex.join(["env", *words, *argv] if words else argv)

    if args.dry_run:
        print(f"cd {shlex.quote(str(ROOT))}")
        if len(procs) == 1:
            print(line(*procs[0]))
        else:
            for env, argv in procs:
                print(line(env, argv) + " &")
            print("wait")
        return 0
    return _run_local(procs)


def _run_local(procs) -> int:
    """Start the processes, prefix and forward their output, and turn Ctrl-C or SIGTERM
    into SIGTERM for each (a checkpoint at the next step, then exit); a second one kills."""
    children, pumps = [], []
    for i, (env, argv) in enumerate(procs):
        print(f"+ {shlex.join(argv)}  (process {i})", file=sys.stderr, flush=True)
        # Own session: the terminal's Ctrl-C reaches the launcher only, which sends SIGTERM.
        child = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        prefix = f"[p{i}] " if len(procs) > 1 else ""
        pumps.append(threading.Thread(target=_pump, args=(child.stdout, prefix), daemon=True))
        pumps[-1].start()
        children.append(child)

    stops = []

    def stop(signum, frame):
        stops.append(signum)
        kill = signal.SIGKILL if len(stops) > 1 else signal.SIGTERM
        print(f"launch/local: sending {kill.name} to the training processes",
              file=sys.stderr, flush=True)
        for c in children:
            if c.poll() is None:
                c.send_signal(kill)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed_at = None
        while any(c.poll() is None for c in children):
            if failed_at is None and any(c.poll() not in (None, 0) for c in children):
                # The others would wait forever in a collective: stop them.
                failed_at = time.monotonic()
                for c in children:
                    if c.poll() is None:
                        c.terminate()
            if failed_at is not None and time.monotonic() - failed_at > 30:
                for c in children:
                    if c.poll() is None:
                        c.kill()
            time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [c.wait() for c in children]
    for pump in pumps:  # the last lines of output
        pump.join(timeout=5)
    code = next((c for c in codes if c != 0), 0)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


def _pump(stream, prefix: str):
    for text in stream:
        sys.stdout.write(prefix + text)
        sys.stdout.flush()


# ----------------------------------------------------------------------------
# Slurm: an sbatch script; srun starts the processes, JAX reads SLURM_* itself.
# ----------------------------------------------------------------------------


def slurm_script(args, overrides) -> str:
    """The batch script: one task per GPU (or per node), srun, and a time-limit warning
    that becomes SIGTERM for training (checkpoint at the step boundary) and a requeue."""
    tasks = args.gpus_per_node if args.per == "gpu" else 1
    v = _sbatch_value
    directives = [f"--job-name={v(args.job_name, '--job-name')}", f"--nodes={args.nodes}",
                  f"--ntasks-per-node={tasks}", f"--gpus-per-node={args.gpus_per_node}"]
    for flag, value in (("cpus-per-task", args.cpus_per_task), ("partition", args.partition),
                        ("account", args.account), ("time", args.time)):
        if value:
            directives.append(f"--{flag}={v(str(value), '--' + flag)}")
    directives += [f"--output={v(args.output, '--output')}",
                   "--open-mode=append",  # one log across requeues
                   "--requeue", f"--signal=B:USR1@{args.grace}",
                   *(v(o, "--sbatch") for o in args.sbatch)]
    train = shlex.join(["srun", "--kill-on-bad-exit=1",
                        *train_argv(args.python, args.config, args.workdir, overrides)])
    env = {"AHMS_FM_DISTRIBUTED": "1"}  # train.py: jax.distributed.initialize() reads SLURM_*
    if args.per == "node":  # JAX's Slurm default gives each process 1 GPU (SLURM_LOCALID)
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(map(str, range(args.gpus_per_node)))
    env.update(env_pairs(args.env))
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives),
             f"# Written by launch/slurm ({args.per}: {tasks} process(es) per node).",
             "", f"cd {shlex.quote(str(ROOT))}",
             *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
             'echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST"',
             "",
             f"# {args.grace} s before the time limit Slurm sends USR1 to this script, which",
             "# sends SIGTERM to the training tasks (scancel signals the steps, not this",
             "# script): they checkpoint at the next step boundary and exit, then the job goes",
             "# back to the queue and resumes from the workdir. A plain scancel or a",
             "# preemption SIGTERMs the tasks directly (checkpoint, no requeue by this script).",
             "requeue=0",
             "on_usr1() {",
             '  echo "time limit near: checkpoint, then requeue"',
             "  requeue=1",
             '  scancel --signal=TERM "$SLURM_JOB_ID"',
             "}",
             "trap on_usr1 USR1",
             f"{train} &",
             "pid=$!",
             "# `wait` returns early when USR1 arrives: wait again until srun has ended,",
             "# then once more for its exit status (bash keeps it).",
             'while kill -0 "$pid" 2> /dev/null; do wait "$pid"; done',
             'wait "$pid"; status=$?',
             'if [ "$requeue" = 1 ]; then scontrol requeue "$SLURM_JOB_ID"; fi',
             'exit "$status"']
    return "\n".join(lines) + "\n"


def slurm(argv=None) -> int:
    p = _parser("launch/slurm", "Submit training to a Slurm GPU cluster (sbatch + srun; "
                "jax.distributed.initialize() picks up the allocation).")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--per", choices=("gpu", "node"), default="gpu",
                   help="one process per GPU (default) or per node")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--time", help="time limit, e.g. 24:00:00 (the cluster's default if unset)")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--job-name", default="ahms-fm")
    p.add_argument("--grace", type=int, default=120, metavar="SECONDS",
                   help="warn training this long before the time limit (default 120)")
    p.add_argument("--output", help="the job's log (default WORKDIR/slurm-%%j.out)")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="another #SBATCH option, e.g. --sbatch=--qos=high (repeatable)")
    p.add_argument("--python", default=default_python(),
                   help="Python on the nodes (default: the checkout's .venv)")
    p.add_argument("--script", action="store_true", help="print only the sbatch script")
    args, overrides = _parse(p, argv)
    if args.nodes < 1 or args.gpus_per_node < 1:
        raise LaunchError("--nodes and --gpus-per-node must be at least 1")
    args.config = resolve_config(args.config)
    check_config(args.config, overrides)
    args.workdir = absolute_workdir(args.workdir)
    if not args.output:
        if is_remote(args.workdir):
            raise LaunchError("with a gs:// workdir, say where the job's log goes: --output "
                              "/shared/path/slurm-%j.out")
        args.output = str(Path(args.workdir) / "slurm-%j.out")
    args.output = os.path.abspath(args.output)  # sbatch reads it from the checkout
    script = slurm_script(args, overrides)
    if args.script:
        sys.stdout.write(script)
        return 0
    # Slurm does not create the log's folder.
    mkdir = f"mkdir -p {shlex.quote(str(Path(args.output).parent))}"
    if args.dry_run:
        print(f"cd {shlex.quote(str(ROOT))}")
        print(mkdir)
        print(f"sbatch <<'{SBATCH_END}'\n{script}{SBATCH_END}")
        return 0
    Shell(dry_run=False).run(mkdir)
    print(f"+ sbatch <<'{SBATCH_END}' ...", file=sys.stderr)
    done = subprocess.run(["sbatch"], input=script, text=True, cwd=ROOT)
    if done.returncode == 0:
        print(f"log: {args.output} (%j = the job id); follow it with tail -F", file=sys.stderr)
    return done.returncode


# ----------------------------------------------------------------------------
# TPU pod: a TPU VM or queued resource, the code on every worker, training on all.
# ----------------------------------------------------------------------------

REMOTE_DIR = "~/ahms_fm"  # the checkout on each worker
SETUP = ("export PATH=$HOME/.local/bin:$PATH && "
         "(command -v uv > /dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh) && "
         "(test -x .venv/bin/python || uv venv --python {python_version} .venv) && "
         "uv pip install --python .venv/bin/python -e \".[tpu]\" gcsfs")


def default_runtime(accelerator: str) -> str:
    """The TPU software version Cloud TPU recommends for JAX on this accelerator."""
    a = accelerator.lower()
    for prefixes, version in ((("v6e",), "v2-alpha-tpuv6e"), (("v5p",), "v2-alpha-tpuv5"),
                              (("v5litepod", "v5e"), "v2-alpha-tpuv5-lite"),
                              (("v2", "v3", "v4"), "tpu-ubuntu2204-base")):
        if a.startswith(prefixes):
            return version
    raise LaunchError(f"no default --version for accelerator {accelerator!r}; pass --version")


class Gcloud:
    """The gcloud commands for one TPU VM (or queued resource) named `args.name`."""

    def __init__(self, args):
        self.a = args
        self.where = [f"--zone={args.zone}"] if args.zone else []
        self.where += [f"--project={args.project}"] if args.project else []

    def _cmd(self, *words) -> str:
        return shlex.join(["gcloud", *words, *self.where])

    def create(self) -> list[str]:
        a = self.a
        if not a.queued:
            return [self._cmd("compute", "tpus", "tpu-vm", "create", a.name,
                              f"--accelerator-type={a.accelerator}", f"--version={a.version}",
                              *(["--spot"] if a.spot else []))]
        tier = ["--spot"] if a.spot else ["--best-effort"] if a.best_effort else []
        alpha = ["alpha"] if a.best_effort else []  # --best-effort is an alpha flag
        create = self._cmd(*alpha, "compute", "tpus", "queued-resources", "create", a.name,
                           f"--node-id={a.name}", f"--accelerator-type={a.accelerator}",
                           f"--runtime-version={a.version}", *tier)
        state = self._cmd("compute", "tpus", "queued-resources", "describe", a.name,
                          "--format", "value(state.state)")
        # A subshell, so that `exit` ends the wait, not a shell this line is pasted into.
        wait = (f"(while :; do s=$({state}); echo \"queued resource {a.name}: $s\"; "
                "case $s in ACTIVE) break;; FAILED|SUSPENDED) exit 1;; esac; sleep 30; done)")
        return [create, wait]

    def delete(self) -> str:
        if self.a.queued:
            return self._cmd("compute", "tpus", "queued-resources", "delete", self.a.name,
                             "--force", "--quiet")
        return self._cmd("compute", "tpus", "tpu-vm", "delete", self.a.name, "--quiet")

    def state(self) -> str:
        """Prints the node's state (PREEMPTED after a preemption) and the queued resource's."""
        node = self._cmd("compute", "tpus", "tpu-vm", "describe", self.a.name,
                         "--format", "value(state)")
        if not self.a.queued:
            return node
        return node + "; " + self._cmd("compute", "tpus", "queued-resources", "describe",
                                       self.a.name, "--format", "value(state.state)")

    def ssh(self, command: str) -> str:
        return self._cmd("compute", "tpus", "tpu-vm", "ssh", self.a.name, "--worker=all",
                         "--command", command)

    def scp(self, local: str, remote: str) -> str:
        return self._cmd("compute", "tpus", "tpu-vm", "scp", local, f"{self.a.name}:{remote}",
                         "--worker=all")


def tpu_worker_commands(args, overrides) -> dict[str, str]:
    """What runs on every worker (shell), by stage."""
    q = shlex.quote
    python = ".venv/bin/python"
    if args.ship == "git":
        fetch = (f"(git clone --quiet {q(args.git_url)} {REMOTE_DIR} 2> /dev/null || "
                 f"git -C {REMOTE_DIR} fetch --quiet origin) && "
                 f"git -C {REMOTE_DIR} checkout --quiet --force {q(args.git_ref)}")
    else:
        fetch = f"mkdir -p {REMOTE_DIR} && tar -xzf ~/ahms_fm.tgz -C {REMOTE_DIR}"
    install = f"{fetch} && cd {REMOTE_DIR} && {args.setup}"
    # Each worker has its own disk: the dataset is copied there (--data-from) and/or
    # ingested there (the synthetic cohort is built; an existing dataset is reused).
    data = (f"gcloud storage rsync --recursive {q(args.data_from)} datasets && "
            if args.data_from else "")
    ingest = shlex.join([python, "-m", "ahms_fm.ingest", "--config", args.config, *overrides])
    train = shlex.join(train_argv(python, args.config, args.workdir, overrides))
    exports = "".join(f"export {k}={q(v)}; "
                      for k, v in {"AHMS_FM_DISTRIBUTED": "1", **env_pairs(args.env)}.items())
    # Detached (a lost connection does not stop it), its status in train.rc when it ends.
    start = (f"cd {REMOTE_DIR} && rm -f train.rc && (trap \"\" HUP; {exports}{data}{ingest} "
             f"&& {train}; echo $? > train.rc) > train.log 2>&1 < /dev/null & "
             f"echo $! > {REMOTE_DIR}/train.pid")
    stream = (f"tail -n +1 -F --pid=$(cat {REMOTE_DIR}/train.pid) {REMOTE_DIR}/train.log "
              f"2> /dev/null | sed -u \"s/^/[$(hostname)] /\"")
    status = f"cat {REMOTE_DIR}/train.rc 2> /dev/null || echo running"
    stop = f"pkill -TERM -P $(cat {REMOTE_DIR}/train.pid)"  # the training under the subshell
    return {"install": install, "start": start, "stream": stream, "status": status,
            "stop": stop}


def _git(*words) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *words], check=True, text=True,
                          capture_output=True).stdout.strip()


def tpu_pod(argv=None) -> int:
    p = _parser("launch/tpu_pod", "Train on a Cloud TPU VM or pod slice: create it (or a "
                "queued resource), ship the code to every worker, run, stream the logs, "
                "delete it.")
    try:
        user = re.sub(r"[^a-z0-9-]", "-", getpass.getuser().lower())
    except (KeyError, OSError):  # no user name (some containers)
        user = "user"
    p.add_argument("--name", default=f"ahms-fm-{user}", help="TPU (and queued resource) name")
    p.add_argument("--zone", help="e.g. us-central2-b (default: gcloud's compute/zone)")
    p.add_argument("--project", help="default: gcloud's core/project")
    p.add_argument("--accelerator", help="e.g. v4-32, v5litepod-16 (needed to create)")
    p.add_argument("--version", help="TPU software version (default: by accelerator)")
    p.add_argument("--queued", action="store_true", help="use a queued resource")
    p.add_argument("--spot", action="store_true", help="Spot capacity (preemptible)")
    p.add_argument("--best-effort", action="store_true",
                   help="queued resource at the best-effort tier (gcloud alpha)")
    p.add_argument("--reuse", action="store_true",
                   help="use the existing TPU --name: create nothing, delete nothing")
    p.add_argument("--keep", action="store_true", help="do not delete the TPU at the end")
    p.add_argument("--detach", action="store_true",
                   help="start training and return (print how to follow, stop, delete)")
    p.add_argument("--restarts", type=int, default=0,
                   help="after a preemption, recreate and resume up to this many times")
    p.add_argument("--ship", choices=("tar", "git"), default="tar",
                   help="tar: the working tree (git ls-files, ignored files left out) by "
                        "scp; git: clone --git-url at --git-ref on each worker")
    p.add_argument("--git-url", help="default: the origin remote")
    p.add_argument("--git-ref", help="default: the current commit")
    p.add_argument("--python-version", default="3.12", help="Python on the workers (uv)")
    p.add_argument("--setup", help="the install command run in the checkout on each worker "
                   "(default: uv, a .venv, pip install -e '.[tpu]' gcsfs)")
    p.add_argument("--data-from", metavar="GS_URI",
                   help="copy this datasets/ folder to every worker before training")
    args, overrides = _parse(p, argv)
    # Cloud TPU names: lowercase letters, digits and hyphens, a letter first, <= 63 long.
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", args.name):
        raise LaunchError(f"--name {args.name!r}: a TPU name is lowercase letters, digits and "
                          "hyphens, starts with a letter, ends with a letter or digit, and is "
                          "at most 63 characters")
    if not args.workdir.startswith("gs://"):
        raise LaunchError(f"--workdir {args.workdir!r}: TPU workers have separate disks, so "
                          "the workdir must be in Cloud Storage (gs://bucket/path)")
    if args.best_effort and (args.spot or not args.queued):
        raise LaunchError("--best-effort is a queued-resource tier: use it with --queued, "
                          "without --spot")
    if not args.reuse and not args.accelerator:
        raise LaunchError("--accelerator is needed to create a TPU (e.g. v4-32), or pass "
                          "--reuse for an existing one")
    if args.data_from and not args.data_from.startswith("gs://"):
        raise LaunchError(f"--data-from {args.data_from!r}: expected a gs:// folder")
    args.config = resolve_config(args.config, inside_repo=True)
    check_config(args.config, overrides)
    if args.accelerator and not args.version:
        args.version = default_runtime(args.accelerator)
    args.setup = args.setup or SETUP.format(python_version=args.python_version)
    if args.ship == "git":
        args.git_url = args.git_url or _git("remote", "get-url", "origin")
        args.git_ref = args.git_ref or _git("rev-parse", "HEAD")
    return _run_tpu(args, tpu_worker_commands(args, overrides))


def _run_tpu(args, worker) -> int:
    g, sh = Gcloud(args), Shell(args.dry_run)
    tarball = f"build/ahms_fm-{args.name}.tgz"
    after = [f"follow:  {g.ssh(worker['stream'])}",
             f"stop (checkpoint, then exit):  {g.ssh(worker['stop'])}"]
    after += [] if args.reuse else [f"delete:  {g.delete()}"]
    for attempt in range(args.restarts + 1):
        created = False
        try:
            if not args.reuse:
                sh.comment(f"create {args.name} ({args.accelerator}, {args.version})")
                created = True
                for command in g.create():
                    sh.run(command)
            if args.ship == "tar":
                sh.comment("ship the working tree: tracked and untracked files, not ignored ones")
                sh.run(f"mkdir -p build && git ls-files -z --cached --others --exclude-standard "
                       f"| tar --null -T - -czf {shlex.quote(tarball)}")
                sh.run(g.scp(tarball, "ahms_fm.tgz"))
            sh.comment("install on every worker")
            sh.run(g.ssh(worker["install"]))
            sh.comment(f"start training on every worker (workdir {args.workdir})")
            sh.run(g.ssh(worker["start"]))
        except subprocess.CalledProcessError as e:
            print(f"error: command failed with status {e.returncode}", file=sys.stderr)
            if created and not args.keep:
                sh.run(g.delete(), check=False)
            return 1
        if args.detach:
            for line in after:
                sh.comment(line)
            return 0
        sh.comment("stream the logs of every worker until training ends")
        try:
            sh.run(g.ssh(worker["stream"]), check=False)
        except KeyboardInterrupt:
            print("\nlaunch/tpu_pod: training goes on on the TPU.", file=sys.stderr)
            for line in after:
                print(line, file=sys.stderr)
            return 130
        sh.comment("read each worker's exit status")
        status = sh.run(g.ssh(worker["status"]), check=False, capture=True, dry_stdout="0\n")
        words = status.stdout.split() if status.returncode == 0 else []
        if "running" in words:
            print("launch/tpu_pod: the log stream ended but training is still running.",
                  file=sys.stderr)
            for line in after:
                print(line, file=sys.stderr)
            return 1
        codes = [int(w) for w in words if w.lstrip("-").isdigit()]
        preempted = False
        if not codes:  # the workers did not answer: preempted, or only unreachable?
            state = sh.run(g.state(), check=False, capture=True).stdout or ""
            preempted = bool(re.search(r"PREEMPTED|SUSPEND", state))
            print(f"launch/tpu_pod: no status from the workers; state: {state.split()}",
                  file=sys.stderr)
            if not preempted:  # never delete a TPU that may still be training
                for line in after:
                    print(line, file=sys.stderr)
                return 1
        if created and not args.keep:
            sh.comment(f"delete {args.name}")
            sh.run(g.delete(), check=False)
        if preempted and created and attempt < args.restarts:
            print(f"launch/tpu_pod: preempted; recreating (restart {attempt + 1} of "
                  f"{args.restarts}), training resumes from {args.workdir}", file=sys.stderr)
            continue
        if args.dry_run and args.restarts and not args.reuse:
            sh.comment(f"after a preemption: all of the above again, up to {args.restarts} "
                       f"times (training resumes from {args.workdir})")
        return max(codes, default=1)
    return 1


def run(kind: str, argv=None) -> int:
    """Entry point of the scripts in launch/: `kind` is local, slurm or tpu_pod."""
    build = {"local": local, "slurm": slurm, "tpu_pod": tpu_pod}[kind]
    return _main(build, sys.argv[1:] if argv is None else argv)
