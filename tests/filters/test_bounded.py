"""Bounded worker pools: workers die with their caller, start before the clock, are replaced
ahead of need, and leave no temp folders behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from r1data.filters.bounded import _TMP_PREFIX, BoundedPool, WorkerError, sweep_stale_tmp


def _gone(pid: int, within: float) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


CALLER = textwrap.dedent("""
    import sys
    from r1data.filters.bounded import BoundedPool
    pool = BoundedPool("math:factorial", 1)
    print(pool.pids()[0], flush=True)
    pool.call([10**9], 3600)  # minutes of 100% CPU in the worker
""")


@pytest.mark.timeout(120)
def test_worker_dies_when_its_caller_is_sigkilled():
    caller = subprocess.Popen([sys.executable, "-c", CALLER], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(caller.stdout.readline())
        busy = psutil.Process(worker)
        deadline = time.monotonic() + 60
        while busy.cpu_times().user < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker is computing, not waiting on its input
        assert busy.cpu_times().user >= 0.3
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        assert _gone(worker, within=5), "the worker outlived its SIGKILLed caller"
    finally:
        caller.kill()


@pytest.mark.timeout(60)
def test_lifeline_watchdog_alone_ends_a_busy_worker():
    """Belt and braces: with the caller alive (no PDEATHSIG), closing the caller's end of the
    lifeline pipe ends a worker that is busy computing."""
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "r1data.filters.bounded", "math:factorial",
                             str(r), str(os.getpid())], pass_fds=(r,),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    os.close(r)
    try:
        assert proc.stdout.readline().startswith(b'["ready"')
        proc.stdin.write(b"[1000000000]\n")
        proc.stdin.flush()
        time.sleep(0.5)
        assert proc.poll() is None  # busy
        os.close(w)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def slow_module(tmp_path):
    """A worker module whose warm-up takes 2 s: longer than the calls' budget below."""
    (tmp_path / "slowstart.py").write_text(textwrap.dedent("""
        import time
        def warm():
            time.sleep(2)
        def echo(x):
            return x
        def spin(n):
            while n:
                pass
    """))
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.timeout(120)
def test_the_budget_covers_the_call_not_the_workers_start(slow_module):
    pool = BoundedPool("slowstart:echo", 1, env=slow_module, warm="slowstart:warm")
    try:
        start = time.monotonic()
        assert pool.call(["a"], timeout=1.0) == "a"  # 2 s warm-up not counted
        assert time.monotonic() - start >= 2.0
        assert pool.timeouts == 0
    finally:
        pool.close()


@pytest.mark.timeout(120)
def test_a_killed_worker_is_replaced_ahead_of_need(slow_module):
    pool = BoundedPool("slowstart:spin", 1, env=slow_module, warm="slowstart:warm")
    try:
        first = pool.pids()
        assert pool.call([1], timeout=0.5) is None  # spins: killed
        assert pool.timeouts == 1
        replacement = pool.pids()
        assert len(replacement) == 1 and replacement != first
        assert _gone(first[0], within=5)
        assert psutil.Process(replacement[0]).is_running()  # started before anyone asked
        assert pool.call([0], timeout=1.0) is None  # spin(0) returns None: it ran in budget
        assert pool.timeouts == 1
        with pytest.raises(WorkerError, match="did not finish"):
            pool.call_or_raise([1], timeout=0.5)
    finally:
        pool.close()
    assert all(_gone(p, within=5) for p in pool.pids() + replacement)


def test_stale_worker_temp_folders_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{_TMP_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{_TMP_PREFIX}{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for d in (stale, live, other):
        d.mkdir()
        (d / "f").write_text("x")
    assert sweep_stale_tmp(str(tmp_path)) == 1
    assert not stale.exists() and live.exists() and other.exists()


def test_a_closed_pool_refuses_calls_instead_of_hanging():
    pool = BoundedPool("os.path:join", 1)
    tmp = [w.tmp for w in pool._all]
    assert pool.call(["a", "b"], timeout=30) == os.path.join("a", "b")
    pool.close()
    assert pool.call(["a", "b"], timeout=30) is None
    assert not any(os.path.exists(t) for t in tmp)  # each worker's TMPDIR went with it
