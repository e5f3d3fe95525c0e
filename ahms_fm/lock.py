"""One trainer per workdir: a lock file naming its holder.

`WORKDIR/lock.json` is created atomically (O_CREAT | O_EXCL) by the trainer's process 0
and holds the host, the process id, the process's start time and when it was taken. A
second trainer on the same workdir is refused with a message naming the holder. A lock
left behind by a killed trainer is taken over, with a warning, when it is stale:

- on the same host: its process is gone (or the id now belongs to a process started at
  another time);
- from another host (a preempted VM, whose process cannot be looked up from here): it
  has not been refreshed for `stale_seconds`; the holder refreshes it as it trains.

Object-store workdirs (gs://...) have no atomic create: they are not locked (a warning
says so); run one trainer per workdir there.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from absl import logging

NAME = "lock.json"


class WorkdirBusy(RuntimeError):
    """Another trainer holds the workdir."""


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, after the command name


def process_alive(pid: int, start=None) -> bool:
    """Whether process `pid` of this host runs (and, with `start`, is the one started at
    those clock ticks, not a later one given the same id)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    now = _start_ticks(pid)
    return start is None or now is None or now == start


class WorkdirLock:
    """`with WorkdirLock(workdir):` holds the lock for the block (see the module)."""

    def __init__(
        self,
        workdir,
        *,
        active: bool = True,
        stale_seconds: float = 600.0,
        refresh_seconds: float = 60.0,
    ):
        self.active = active  # False: a no-op (processes other than 0 of a multi-host run)
        self.workdir = str(workdir)
        self.remote = "://" in self.workdir
        self.path = Path(self.workdir) / NAME
        self.stale_seconds = stale_seconds
        self.refresh_seconds = refresh_seconds
        self._held = False
        self._refreshed = 0.0

    def holder(self) -> dict | None:
        """The lock's contents (None: no lock; {} while it is being written)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return {}

    def _stale(self, holder: dict) -> str | None:
        """Why the lock can be taken over, or None."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "it is gone"
        if not holder:  # empty or cut short: a writer killed mid-write, or one writing now
            return "it is unreadable and old" if age > 5.0 else None
        if holder.get("host") == socket.gethostname():
            if not process_alive(int(holder.get("pid", -1)), holder.get("start_ticks")):
                return f"process {holder.get('pid')} on this host is gone"
            return None
        if age > self.stale_seconds:
            return f"it was last refreshed {age / 60:.0f} min ago by another host"
        return None

    def acquire(self) -> WorkdirLock:
        if not self.active:
            return self
        if self.remote:
            logging.warning(
                "%s: an object-store workdir is not locked; run one trainer on it", self.workdir
            )
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start_ticks": _start_ticks(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile
                why = self._stale(holder)
                if why is None:
                    raise WorkdirBusy(
                        f"{self.workdir} is in use by process {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')} (since {holder.get('since', '?')}; lock "
                        f"{self.path}). Wait for it, or use another --workdir; if that "
                        "trainer is certainly gone, delete the lock file."
                    ) from None
                logging.warning("%s: taking over a stale lock (%s): %s", self.workdir, why, holder)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            self._refreshed = time.monotonic()
            return self
        raise WorkdirBusy(f"{self.workdir}: could not take the lock {self.path}")

    def refresh(self) -> None:
        """Mark the lock as alive (at most every `refresh_seconds`; cheap to call often)."""
        if self._held and time.monotonic() - self._refreshed >= self.refresh_seconds:
            try:
                os.utime(self.path)
            except FileNotFoundError:
                logging.warning(
                    "%s: the lock file was removed while this trainer runs", self.workdir
                )
            self._refreshed = time.monotonic()

    def release(self) -> None:
        if self._held:
            holder = self.holder()
            if (
                holder
                and holder.get("pid") == os.getpid()
                and holder.get("host") == socket.gethostname()
            ):
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
