"""launch/tpu_pod: a TPU VM or queued resource, the code on every worker, training on all."""

from __future__ import annotations

import getpass
import re
import shlex
import subprocess
import sys

from ahms_fm.launch.common import (
    ROOT,
    LaunchError,
    Shell,
    check_config,
    env_pairs,
    parse_args,
    parser,
    resolve_config,
    train_argv,
)

REMOTE_DIR = "~/ahms_fm"  # the checkout on each worker
SETUP = (
    "export PATH=$HOME/.local/bin:$PATH && "
    "(command -v uv > /dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh) && "
    "(test -x .venv/bin/python || uv venv --python {python_version} .venv) && "
    'uv pip install --python .venv/bin/python -e ".[tpu]" gcsfs'
)


def default_runtime(accelerator: str) -> str:
    """The TPU software version Cloud TPU recommends for JAX on this accelerator."""
    a = accelerator.lower()
    for prefixes, version in (
        (("v6e",), "v2-alpha-tpuv6e"),
        (("v5p",), "v2-alpha-tpuv5"),
        (("v5litepod", "v5e"), "v2-alpha-tpuv5-lite"),
        (("v2", "v3", "v4"), "tpu-ubuntu2204-base"),
    ):
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
            return [
                self._cmd(
                    "compute",
                    "tpus",
                    "tpu-vm",
                    "create",
                    a.name,
                    f"--accelerator-type={a.accelerator}",
                    f"--version={a.version}",
                    *(["--spot"] if a.spot else []),
                )
            ]
        tier = ["--spot"] if a.spot else ["--best-effort"] if a.best_effort else []
        alpha = ["alpha"] if a.best_effort else []  # --best-effort is an alpha flag
        create = self._cmd(
            *alpha,
            "compute",
            "tpus",
            "queued-resources",
            "create",
            a.name,
            f"--node-id={a.name}",
            f"--accelerator-type={a.accelerator}",
            f"--runtime-version={a.version}",
            *tier,
        )
        state = self._cmd(
            "compute",
            "tpus",
            "queued-resources",
            "describe",
            a.name,
            "--format",
            "value(state.state)",
        )
        # A subshell, so that `exit` ends the wait, not a shell this line is pasted into.
        wait = (
            f'(while :; do s=$({state}); echo "queued resource {a.name}: $s"; '
            "case $s in ACTIVE) break;; FAILED|SUSPENDED) exit 1;; esac; sleep 30; done)"
        )
        return [create, wait]

    def delete(self) -> str:
        if self.a.queued:
            return self._cmd(
                "compute", "tpus", "queued-resources", "delete", self.a.name, "--force", "--quiet"
            )
        return self._cmd("compute", "tpus", "tpu-vm", "delete", self.a.name, "--quiet")

    def state(self) -> str:
        """Prints the node's state (PREEMPTED after a preemption) and the queued resource's."""
        node = self._cmd(
            "compute", "tpus", "tpu-vm", "describe", self.a.name, "--format", "value(state)"
        )
        if not self.a.queued:
            return node
        return (
            node
            + "; "
            + self._cmd(
                "compute",
                "tpus",
                "queued-resources",
                "describe",
                self.a.name,
                "--format",
                "value(state.state)",
            )
        )

    def ssh(self, command: str) -> str:
        return self._cmd(
            "compute", "tpus", "tpu-vm", "ssh", self.a.name, "--worker=all", "--command", command
        )

    def scp(self, local: str, remote: str) -> str:
        return self._cmd(
            "compute", "tpus", "tpu-vm", "scp", local, f"{self.a.name}:{remote}", "--worker=all"
        )


def tpu_worker_commands(args, overrides) -> dict[str, str]:
    """What runs on every worker (shell), by stage."""
    q = shlex.quote
    python = ".venv/bin/python"
    if args.ship == "git":
        fetch = (
            f"(git clone --quiet {q(args.git_url)} {REMOTE_DIR} 2> /dev/null || "
            f"git -C {REMOTE_DIR} fetch --quiet origin) && "
            f"git -C {REMOTE_DIR} checkout --quiet --force {q(args.git_ref)}"
        )
    else:
        fetch = f"mkdir -p {REMOTE_DIR} && tar -xzf ~/ahms_fm.tgz -C {REMOTE_DIR}"
    install = f"{fetch} && cd {REMOTE_DIR} && {args.setup}"
    # Each worker has its own disk: the dataset is copied there (--data-from) and/or
    # ingested there (the synthetic cohort is built; an existing dataset is reused).
    data = (
        f"gcloud storage rsync --recursive {q(args.data_from)} datasets && "
        if args.data_from
        else ""
    )
    ingest = shlex.join([python, "-m", "ahms_fm.ingest", "--config", args.config, *overrides])
    train = shlex.join(train_argv(python, args.config, args.workdir, overrides))
    exports = "".join(
        f"export {k}={q(v)}; "
        for k, v in {"AHMS_FM_DISTRIBUTED": "1", **env_pairs(args.env)}.items()
    )
    # Detached (a lost connection does not stop it), its status in train.rc when it ends.
    start = (
        f'cd {REMOTE_DIR} && rm -f train.rc && (trap "" HUP; {exports}{data}{ingest} '
        f"&& {train}; echo $? > train.rc) > train.log 2>&1 < /dev/null & "
        f"echo $! > {REMOTE_DIR}/train.pid"
    )
    stream = (
        f"tail -n +1 -F --pid=$(cat {REMOTE_DIR}/train.pid) {REMOTE_DIR}/train.log "
        f'2> /dev/null | sed -u "s/^/[$(hostname)] /"'
    )
    status = f"cat {REMOTE_DIR}/train.rc 2> /dev/null || echo running"
    stop = f"pkill -TERM -P $(cat {REMOTE_DIR}/train.pid)"  # the training under the subshell
    return {"install": install, "start": start, "stream": stream, "status": status, "stop": stop}


def _git(*words) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *words], check=True, text=True, capture_output=True
    ).stdout.strip()


def tpu_pod(argv=None) -> int:
    p = parser(
        "launch/tpu_pod",
        "Train on a Cloud TPU VM or pod slice: create it (or a "
        "queued resource), ship the code to every worker, run, stream the logs, "
        "delete it.",
    )
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
    p.add_argument(
        "--best-effort",
        action="store_true",
        help="queued resource at the best-effort tier (gcloud alpha)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="use the existing TPU --name: create nothing, delete nothing",
    )
    p.add_argument("--keep", action="store_true", help="do not delete the TPU at the end")
    p.add_argument(
        "--detach",
        action="store_true",
        help="start training and return (print how to follow, stop, delete)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=0,
        help="after a preemption, recreate and resume up to this many times",
    )
    p.add_argument(
        "--ship",
        choices=("tar", "git"),
        default="tar",
        help="tar: the working tree (git ls-files, ignored files left out) by "
        "scp; git: clone --git-url at --git-ref on each worker",
    )
    p.add_argument("--git-url", help="default: the origin remote")
    p.add_argument("--git-ref", help="default: the current commit")
    p.add_argument("--python-version", default="3.12", help="Python on the workers (uv)")
    p.add_argument(
        "--setup",
        help="the install command run in the checkout on each worker "
        "(default: uv, a .venv, pip install -e '.[tpu]' gcsfs)",
    )
    p.add_argument(
        "--data-from",
        metavar="GS_URI",
        help="copy this datasets/ folder to every worker before training",
    )
    args, overrides = parse_args(p, argv)
    # Cloud TPU names: lowercase letters, digits and hyphens, a letter first, <= 63 long.
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", args.name):
        raise LaunchError(
            f"--name {args.name!r}: a TPU name is lowercase letters, digits and "
            "hyphens, starts with a letter, ends with a letter or digit, and is "
            "at most 63 characters"
        )
    if not args.workdir.startswith("gs://"):
        raise LaunchError(
            f"--workdir {args.workdir!r}: TPU workers have separate disks, so "
            "the workdir must be in Cloud Storage (gs://bucket/path)"
        )
    if args.best_effort and (args.spot or not args.queued):
        raise LaunchError(
            "--best-effort is a queued-resource tier: use it with --queued, without --spot"
        )
    if not args.reuse and not args.accelerator:
        raise LaunchError(
            "--accelerator is needed to create a TPU (e.g. v4-32), or pass "
            "--reuse for an existing one"
        )
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
    after = [
        f"follow:  {g.ssh(worker['stream'])}",
        f"stop (checkpoint, then exit):  {g.ssh(worker['stop'])}",
    ]
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
                sh.run(
                    f"mkdir -p build && git ls-files -z --cached --others --exclude-standard "
                    f"| tar --null -T - -czf {shlex.quote(tarball)}"
                )
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
            print(
                "launch/tpu_pod: the log stream ended but training is still running.",
                file=sys.stderr,
            )
            for line in after:
                print(line, file=sys.stderr)
            return 1
        codes = [int(w) for w in words if w.lstrip("-").isdigit()]
        preempted = False
        if not codes:  # the workers did not answer: preempted, or only unreachable?
            state = sh.run(g.state(), check=False, capture=True).stdout or ""
            preempted = bool(re.search(r"PREEMPTED|SUSPEND", state))
            print(
                f"launch/tpu_pod: no status from the workers; state: {state.split()}",
                file=sys.stderr,
            )
            if not preempted:  # never delete a TPU that may still be training
                for line in after:
                    print(line, file=sys.stderr)
                return 1
        if created and not args.keep:
            sh.comment(f"delete {args.name}")
            sh.run(g.delete(), check=False)
        if preempted and created and attempt < args.restarts:
            print(
                f"launch/tpu_pod: preempted; recreating (restart {attempt + 1} of "
                f"{args.restarts}), training resumes from {args.workdir}",
                file=sys.stderr,
            )
            continue
        if args.dry_run and args.restarts and not args.reuse:
            sh.comment(
                f"after a preemption: all of the above again, up to {args.restarts} "
                f"times (training resumes from {args.workdir})"
            )
        return max(codes, default=1)
    return 1
