"""One trainer per workdir (ahms_fm/lock.py): refused while held, stale locks taken over."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ahms_fm.lock import NAME, WorkdirBusy, WorkdirLock


def _write(workdir, **holder):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / NAME).write_text(json.dumps(holder))


def test_a_held_lock_refuses_a_second_holder_and_is_released(tmp_path):
    with WorkdirLock(tmp_path / "run"):
        held = json.loads((tmp_path / "run" / NAME).read_text())
        assert (held["host"], held["pid"]) == (socket.gethostname(), os.getpid())
        with pytest.raises(WorkdirBusy, match=f"in use by process {os.getpid()} on "):
            WorkdirLock(tmp_path / "run").acquire()
    assert not (tmp_path / "run" / NAME).exists()
    WorkdirLock(tmp_path / "run").acquire().release()  # free again


def test_the_lock_of_a_process_that_is_gone_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write(tmp_path, host=socket.gethostname(), pid=dead.pid, since="earlier")
    with WorkdirLock(tmp_path):
        assert json.loads((tmp_path / NAME).read_text())["pid"] == os.getpid()
    assert "taking over a stale lock" in caplog.text and f"process {dead.pid}" in caplog.text


def test_a_live_process_of_this_host_keeps_its_lock(tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write(tmp_path, host=socket.gethostname(), pid=alive.pid, since="now")
        with pytest.raises(WorkdirBusy, match=str(alive.pid)):
            WorkdirLock(tmp_path).acquire()
    finally:
        alive.kill()
        alive.wait()


def test_another_hosts_lock_is_stale_only_when_not_refreshed(tmp_path):
    _write(tmp_path, host="elsewhere", pid=1, since="now")
    with pytest.raises(WorkdirBusy, match="on elsewhere"):
        WorkdirLock(tmp_path, stale_seconds=600).acquire()
    old = time.time() - 3600
    os.utime(tmp_path / NAME, (old, old))
    lock = WorkdirLock(tmp_path, stale_seconds=600).acquire()
    assert json.loads((tmp_path / NAME).read_text())["host"] == socket.gethostname()
    # Refreshing keeps it young for the next one who looks.
    lock.refresh_seconds = 0
    os.utime(tmp_path / NAME, (old, old))
    lock.refresh()
    assert time.time() - (tmp_path / NAME).stat().st_mtime < 60
    lock.release()


def test_inactive_and_remote_locks_do_nothing(tmp_path):
    with WorkdirLock(tmp_path, active=False):
        assert not (tmp_path / NAME).exists()
    WorkdirLock("gs://bucket/run").acquire().release()
