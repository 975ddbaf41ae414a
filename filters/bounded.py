"""Bounded-time calls: a pool of worker processes, each killed and replaced when a call overruns.

Signal-based timeouts (math-verify's own) only work in the main thread; this works from any
thread and any process, which the filter runner and GRPO rewards need. Workers are plain
subprocesses speaking JSON lines (`python -m r1data.filters.bounded module:function`), so they
never re-import the caller's __main__ the way multiprocessing's spawn does.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
from typing import Any

from r1data.errors import R1DataError


class WorkerError(R1DataError):
    """The function raised inside the worker; the message is its one-line error."""


class _Worker:
    def __init__(self, target: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "r1data.filters.bounded", target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
        # Same process group as the caller: killing the caller's group takes the workers too;
        # a worker whose caller vanished exits at end of input.
        self.buf = b""

    def call(self, args: list, timeout: float):
        self.proc.stdin.write(json.dumps(args).encode() + b"\n")
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class BoundedPool:
    """`call(args, timeout)` runs `module:function(*args)` in a worker; None on timeout or error.

    Threads borrow a worker each, so at most `size` calls run at once.
    """

    def __init__(self, target: str, size: int, env: dict[str, str] | None = None):
        self.target, self.size, self.env = target, max(1, size), env
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self.timeouts = 0
        atexit.register(self.close)

    def _get(self) -> _Worker:
        with self._lock:
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                return _Worker(self.target, self.env)
        return self._idle.get()

    def call(self, args: list, timeout: float) -> Any:
        worker = self._get()
        try:
            status, value = worker.call(args, timeout)
        except (TimeoutError, EOFError, OSError, ValueError):
            worker.kill()
            self.timeouts += 1
            self._idle.put(_Worker(self.target, self.env))  # replace the killed worker
            return None
        self._idle.put(worker)
        return value if status == "ok" else None

    def call_or_raise(self, args: list, timeout: float) -> Any:
        """Like call, but a timeout or an error inside the worker raises WorkerError."""
        worker = self._get()
        try:
            status, value = worker.call(args, timeout)
        except (TimeoutError, EOFError, OSError, ValueError) as e:
            worker.kill()
            self._idle.put(_Worker(self.target, self.env))
            raise WorkerError(f"{self.target} did not finish ({type(e).__name__})") from None
        self._idle.put(worker)
        if status != "ok":
            raise WorkerError(value)
        return value

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().kill()


def _serve(target: str) -> None:
    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            reply = ["ok", fn(*json.loads(line))]
        except Exception as e:  # noqa: BLE001 - the caller decides what an error means
            reply = ["error", f"{type(e).__name__}: {e}"]
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve(sys.argv[1])
