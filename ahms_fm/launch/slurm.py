"""launch/slurm: an sbatch script; srun starts the processes, JAX reads SLURM_* itself."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from ahms_fm.launch.common import (
    ROOT,
    SBATCH_END,
    LaunchError,
    Shell,
    absolute_workdir,
    check_config,
    default_python,
    env_pairs,
    is_remote,
    parse_args,
    parser,
    resolve_config,
    sbatch_value,
    train_argv,
)


def slurm_script(args, overrides) -> str:
    """The batch script: one task per GPU (or per node), srun, and a time-limit warning
    that becomes SIGTERM for training (checkpoint at the step boundary) and a requeue."""
    tasks = args.gpus_per_node if args.per == "gpu" else 1
    v = sbatch_value
    directives = [
        f"--job-name={v(args.job_name, '--job-name')}",
        f"--nodes={args.nodes}",
        f"--ntasks-per-node={tasks}",
        f"--gpus-per-node={args.gpus_per_node}",
    ]
    for flag, value in (
        ("cpus-per-task", args.cpus_per_task),
        ("partition", args.partition),
        ("account", args.account),
        ("time", args.time),
    ):
        if value:
            directives.append(f"--{flag}={v(str(value), '--' + flag)}")
    directives += [
        f"--output={v(args.output, '--output')}",
        "--open-mode=append",  # one log across requeues
        "--requeue",
        f"--signal=B:USR1@{args.grace}",
        *(v(o, "--sbatch") for o in args.sbatch),
    ]
    train = shlex.join(
        [
            "srun",
            "--kill-on-bad-exit=1",
            *train_argv(args.python, args.config, args.workdir, overrides),
        ]
    )
    env = {"AHMS_FM_DISTRIBUTED": "1"}  # train.py: jax.distributed.initialize() reads SLURM_*
    if args.per == "node":  # JAX's Slurm default gives each process 1 GPU (SLURM_LOCALID)
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(map(str, range(args.gpus_per_node)))
    env.update(env_pairs(args.env))
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        f"# Written by launch/slurm ({args.per}: {tasks} process(es) per node).",
        "",
        f"cd {shlex.quote(str(ROOT))}",
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
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def slurm(argv=None) -> int:
    p = parser(
        "launch/slurm",
        "Submit training to a Slurm GPU cluster (sbatch + srun; "
        "jax.distributed.initialize() picks up the allocation).",
    )
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument(
        "--per",
        choices=("gpu", "node"),
        default="gpu",
        help="one process per GPU (default) or per node",
    )
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--time", help="time limit, e.g. 24:00:00 (the cluster's default if unset)")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--job-name", default="ahms-fm")
    p.add_argument(
        "--grace",
        type=int,
        default=120,
        metavar="SECONDS",
        help="warn training this long before the time limit (default 120)",
    )
    p.add_argument("--output", help="the job's log (default WORKDIR/slurm-%%j.out)")
    p.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="OPTION",
        help="another #SBATCH option, e.g. --sbatch=--qos=high (repeatable)",
    )
    p.add_argument(
        "--python",
        default=default_python(),
        help="Python on the nodes (default: the checkout's .venv)",
    )
    p.add_argument("--script", action="store_true", help="print only the sbatch script")
    args, overrides = parse_args(p, argv)
    if args.nodes < 1 or args.gpus_per_node < 1:
        raise LaunchError("--nodes and --gpus-per-node must be at least 1")
    args.config = resolve_config(args.config)
    check_config(args.config, overrides)
    args.workdir = absolute_workdir(args.workdir)
    if not args.output:
        if is_remote(args.workdir):
            raise LaunchError(
                "with a gs:// workdir, say where the job's log goes: --output "
                "/shared/path/slurm-%j.out"
            )
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
