"""Bounded-time calls: a pool of worker processes, each killed and replaced when a call overruns.

Signal-based timeouts (math-verify's own) only work in the main thread; this works from any
thread and any process, which the filter runner and GRPO rewards need. Workers are plain
subprocesses speaking JSON lines (`python -m r1data.filters.bounded module:function`), so they
never re-import the caller's __main__ the way multiprocessing's spawn does.

Three rules make a verdict independent of machine load and of how the caller ends:
- a worker imports its function (and runs an optional warm-up) *before* it says `ready`, and
  the caller waits for that outside the call's time budget: the timeout bounds the check, never
  the worker's start;
- a killed worker is replaced at once, so its successor warms up while others work;
- a worker dies with its caller: PR_SET_PDEATHSIG (Linux) and, as belt and braces, a lifeline
  pipe whose caller end closes when the caller dies, however it dies: the kernel then sends
  the worker SIGIO (O_ASYNC; it kills even a worker stuck in C code holding the GIL), and a
  watchdog thread exits on its EOF. Each worker's TMPDIR is its own folder, swept once its
  owner is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import importlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from r1data.errors import R1DataError
from r1data.procs import sweep_dead_owners

START_TIMEOUT = 300.0  # seconds a worker may take to import and warm up; not the call's budget
_TMP_PREFIX = "r1data-worker-"


class WorkerError(R1DataError):
    """The function raised inside the worker; the message is its one-line error."""


# ---------------------------------------------------------------------------------------------
# Spawning: PR_SET_PDEATHSIG fires when the *thread* that forked the worker exits, so workers
# are forked by one long-lived thread, not by whichever short-lived pool thread needed one.

_SPAWN: queue.SimpleQueue | None = None
_SPAWN_LOCK = threading.Lock()


def _spawner() -> None:
    while True:
        args, kwargs, reply = _SPAWN.get()
        try:
            reply.put((True, subprocess.Popen(*args, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - handed back to the thread that asked
            reply.put((False, e))


def _popen(*args, **kwargs) -> subprocess.Popen:
    global _SPAWN
    with _SPAWN_LOCK:
        if _SPAWN is None:
            _SPAWN = queue.SimpleQueue()
            threading.Thread(target=_spawner, name="r1data-spawner", daemon=True).start()
    reply: queue.SimpleQueue = queue.SimpleQueue()
    _SPAWN.put((args, kwargs, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


def sweep_stale_tmp(root: str | None = None) -> int:
    """Remove worker temp folders whose worker process no longer exists; how many went."""
    return len(sweep_dead_owners(root or tempfile.gettempdir(), _TMP_PREFIX))


class _Worker:
    def __init__(self, target: str, env: dict[str, str] | None = None, warm: str | None = None):
        self.lifeline_r, self.lifeline_w = os.pipe()  # the caller never writes; EOF = it died
        self.tmp = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")
        cmd = [sys.executable, "-m", "r1data.filters.bounded", target, str(self.lifeline_r),
               str(os.getpid())] + ([warm] if warm else [])
        try:
            self.proc = _popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, pass_fds=(self.lifeline_r,),
                               env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": self.tmp,
                                    **(env or {})})
        finally:
            os.close(self.lifeline_r)
        self.buf = b""
        self.ready = False

    def _line(self, timeout: float) -> list:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the worker has imported and warmed up: outside any call's budget."""
        if not self.ready:
            if self._line(timeout)[0] != "ready":
                raise EOFError
            self.ready = True

    def call(self, args: list, timeout: float):
        self.wait_ready()
        self.proc.stdin.write(json.dumps(args).encode() + b"\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()
        with contextlib.suppress(OSError):
            os.close(self.lifeline_w)
        shutil.rmtree(self.tmp, ignore_errors=True)


_BROKEN = (TimeoutError, EOFError, OSError, ValueError)


class BoundedPool:
    """`call(args, timeout)` runs `module:function(*args)` in a worker; None on timeout or error.

    All `size` workers start when the pool is made (each imports `target`, then runs `warm`,
    a `module:function` of no arguments, if given); threads borrow a worker each, so at most
    `size` calls run at once.
    """

    def __init__(self, target: str, size: int, env: dict[str, str] | None = None,
                 warm: str | None = None):
        self.target, self.size, self.env, self.warm = target, max(1, size), env, warm
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self.timeouts = 0
        self.closed = False
        sweep_stale_tmp()
        for _ in range(self.size):
            self._idle.put(self._new())
        atexit.register(self.close)

    def _new(self) -> _Worker:
        w = _Worker(self.target, self.env, self.warm)
        with self._lock:
            self._all.add(w)
        return w

    def _borrow(self) -> _Worker:
        """An idle worker that has said ready; one that died while starting is replaced."""
        for _ in range(3):
            if self.closed:
                raise WorkerError(f"{self.target}: the pool is closed")
            worker = self._idle.get()
            try:
                worker.wait_ready()
                return worker
            except _BROKEN:
                self._replace(worker)
        raise WorkerError(f"{self.target}: workers do not start (3 tries)")

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        if not self.closed:
            self._idle.put(self._new())  # starts now, warms while the others work

    def _run(self, args: list, timeout: float) -> tuple[str, Any]:
        worker = self._borrow()
        try:
            reply = worker.call(args, timeout)
        except _BROKEN as e:
            self.timeouts += 1
            self._replace(worker)
            raise WorkerError(f"{self.target} did not finish ({type(e).__name__})") from None
        self._idle.put(worker)
        return reply

    def call(self, args: list, timeout: float) -> Any:
        try:
            status, value = self._run(args, timeout)
        except WorkerError:
            return None
        return value if status == "ok" else None

    def call_or_raise(self, args: list, timeout: float) -> Any:
        """Like call, but a timeout or an error inside the worker raises WorkerError."""
        status, value = self._run(args, timeout)
        if status != "ok":
            raise WorkerError(value)
        return value

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all]

    def close(self) -> None:
        self.closed = True
        with self._lock:
            workers, self._all = list(self._all), set()
        for w in workers:
            w.kill()


# ---------------------------------------------------------------------------------------------
# Worker side

_PR_SET_PDEATHSIG = 1


def _die_with_parent(lifeline: int, parent: int) -> None:
    """SIGKILL when the forking thread's process goes (Linux), and a watchdog on the lifeline
    pipe for everything else; a parent already gone before this ran is caught by getppid."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    # The kernel signals SIGIO (default action: terminate) when the lifeline's last writer
    # closes, even while a C call holds the GIL (a big-integer power, math.factorial).
    with contextlib.suppress(OSError, AttributeError):
        signal.signal(signal.SIGIO, signal.SIG_DFL)
        fcntl.fcntl(lifeline, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(lifeline, fcntl.F_SETFL, fcntl.fcntl(lifeline, fcntl.F_GETFL) | os.O_ASYNC)

    def watch() -> None:  # for a caller gone before O_ASYNC was set
        with contextlib.suppress(OSError):
            while os.read(lifeline, 1):
                pass
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _load(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _serve(target: str, lifeline: int, parent: int, warm: str | None = None) -> None:
    _die_with_parent(lifeline, parent)
    fn = _load(target)
    if warm:
        _load(warm)()
    out = sys.stdout.buffer
    out.write(json.dumps(["ready", os.getpid()]).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            reply = ["ok", fn(*json.loads(line))]
        except Exception as e:  # noqa: BLE001 - the caller decides what an error means
            reply = ["error", f"{type(e).__name__}: {e}"]
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
