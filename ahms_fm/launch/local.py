"""launch/local: N processes on this machine (fake CPU devices or the local GPUs)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from ahms_fm.launch.common import (
    ROOT,
    LaunchError,
    absolute_workdir,
    check_config,
    default_python,
    env_pairs,
    parse_args,
    parser,
    resolve_config,
    train_argv,
)


def local_processes(args, overrides) -> list[tuple[dict[str, str], list[str]]]:
    """(environment additions, argv) of each process."""
    argv = train_argv(args.python, args.config, args.workdir, overrides)
    procs = []
    for i in range(args.processes):
        env = {}
        if args.processes > 1:  # train.initialize_distributed reads these
            env.update(
                JAX_COORDINATOR_ADDRESS=f"localhost:{args.port}",
                JAX_NUM_PROCESSES=str(args.processes),
                JAX_PROCESS_ID=str(i),
            )
        if args.devices_per_process:
            xla = re.sub(
                r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")
            ).split()
            env.update(
                JAX_PLATFORMS="cpu",
                XLA_FLAGS=" ".join(
                    [*xla, f"--xla_force_host_platform_device_count={args.devices_per_process}"]
                ),
            )
            if args.processes > 1:  # XLA:CPU's cross-process collectives
                env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
        if args.gpus_per_process:
            first = i * args.gpus_per_process
            env["CUDA_VISIBLE_DEVICES"] = ",".join(
                str(g) for g in range(first, first + args.gpus_per_process)
            )
        env.update(env_pairs(args.env))
        procs.append((env, argv))
    return procs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def local(argv=None) -> int:
    p = parser(
        "launch/local",
        "Train with N processes on this machine: a multi-host run "
        "in miniature (fake CPU devices) or one process per GPU group.",
    )
    p.add_argument("--processes", type=int, default=1, help="JAX processes (default 1)")
    p.add_argument(
        "--devices-per-process",
        type=int,
        default=0,
        metavar="D",
        help="D fake CPU devices per process (XLA_FLAGS); 0: the real devices",
    )
    p.add_argument(
        "--gpus-per-process",
        type=int,
        default=0,
        metavar="K",
        help="give process i GPUs i*K..i*K+K-1 (CUDA_VISIBLE_DEVICES)",
    )
    p.add_argument("--port", type=int, default=0, help="coordinator port (default: a free one)")
    p.add_argument("--python", default=default_python(), help="Python that runs the training")
    args, overrides = parse_args(p, argv)
    if args.processes < 1:
        raise LaunchError("--processes must be at least 1")
    if args.devices_per_process and args.gpus_per_process:
        raise LaunchError(
            "--devices-per-process (fake CPU devices) and --gpus-per-process exclude each other"
        )
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
        child = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        prefix = f"[p{i}] " if len(procs) > 1 else ""
        pumps.append(threading.Thread(target=_pump, args=(child.stdout, prefix), daemon=True))
        pumps[-1].start()
        children.append(child)

    stops = []

    def stop(signum, frame):
        stops.append(signum)
        kill = signal.SIGKILL if len(stops) > 1 else signal.SIGTERM
        print(
            f"launch/local: sending {kill.name} to the training processes",
            file=sys.stderr,
            flush=True,
        )
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
