"""Processes: whether a pid lives, sweeping the temp folders of dead ones, and making sure
nothing a command starts outlives it (run_owned, the reaper).

vLLM engines (r1data/engines.py) and bounded-call workers (r1data/filters/bounded.py) each make
a folder named `<prefix><pid>-...` for their process; a SIGKILLed process never removes its
own, so the next one sweeps those whose pid is gone. Core, so every layer shares one copy.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (someone else's counts: kill says EPERM)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def sweep_dead_owners(root: str | Path, prefix: str) -> list[Path]:
    """Remove the folders `<prefix><pid>-*` under root whose process is gone; the ones removed.
    Names whose pid part is not a number are left alone."""
    swept = []
    for d in Path(root).glob(f"{prefix}*-*"):
        pid = d.name[len(prefix):].split("-")[0]
        if d.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            swept.append(d)
    return swept


# --- Nothing r1data starts outlives it ----------------------------------------------------------
# A long command (`r1data flow run`) starts processes of its own and through libraries: Prefect's
# ephemeral API server (a uvicorn subprocess), vLLM's EngineCore and its worker, bounded-call
# workers, sandboxes. SIGTERM or Ctrl-C ends the command through `run_owned`, which stops every
# descendant before exiting; a SIGKILL (the OOM killer, `kill -9`) leaves that to a reaper, a
# small process that watches the command and stops what it started once it is gone. Orphans are
# re-parented to init, so the tree cannot be walked afterwards: the reaper walks it while the
# command lives, and, for a child started since its last walk, looks for the owner mark the
# command puts in its environment, which every process it starts inherits (and /proc shows).
REAP_EVERY = 1.0  # seconds between the reaper's walks (~4 ms of CPU each); its death wakes it
STOP_GRACE = 2.0  # seconds a descendant has to exit on SIGTERM before it gets SIGKILL
OWNER_ENV = "R1DATA_OWNER"
_REAPER: subprocess.Popen | None = None
T = TypeVar("T")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks) from /proc/PID/stat; None if there is no such
    process. The start time tells a process from a later one that got the same pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def living(pid: int, start: int | None = None) -> bool:
    """Running, not a zombie (a zombie has exited: it waits for a parent, or an init that may
    never reap it in a container), and the same process as the one started at `start`."""
    st = _stat(pid)
    return st is not None and st[0] not in "ZX" and (start is None or st[2] == start)


def _pids() -> list[int]:
    """Every pid in /proc (none where there is no /proc)."""
    try:
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []


def descendants(pid: int) -> dict[int, int]:
    """Every living process below pid (children of children too): pid -> start time. One read
    of each /proc/N/stat (about 2 ms for 100 processes): the per-thread children lists cost
    five times that for torch's many threads."""
    kids: dict[int, list[tuple[int, int]]] = {}
    for p in _pids():
        if (st := _stat(p)) and st[0] not in "ZX":
            kids.setdefault(st[1], []).append((p, st[2]))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, start in kids.get(todo.pop(), []):
            if child not in found:
                found[child] = start
                todo.append(child)
    return found


def owner_mark(pid: int | None = None) -> str:
    """The mark a command's processes carry: its pid and start time, unique on this machine."""
    pid = os.getpid() if pid is None else pid
    st = _stat(pid)
    return f"{pid}-{st[2] if st else 0}"


def marked(mark: str) -> dict[int, int]:
    """Living processes whose environment (as they were started) carries this owner mark."""
    needle = f"{OWNER_ENV}={mark}".encode()
    found = {}
    for pid in _pids():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone, or someone else's
            continue
        if needle in env and (st := _stat(pid)) and st[0] not in "ZX":
            found[pid] = st[2]
    return found


def stop_processes(procs: dict[int, int], grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM each (pid -> start time), SIGKILL those still running after `grace` seconds,
    wait for them to go; the pids still running after that (none, unless not ours to kill)."""
    def signal_all(sig: int) -> None:
        for pid, start in procs.items():
            if living(pid, start):
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)

    def wait(seconds: float) -> list[int]:
        deadline = time.monotonic() + seconds
        while (left := [p for p, s in procs.items() if living(p, s)]) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    signal_all(signal.SIGTERM)
    if wait(grace):
        signal_all(signal.SIGKILL)
    return wait(5.0)


def reap_after(parent: int, mark: str, every: float = REAP_EVERY) -> None:
    """The reaper's loop (`python -m r1data.procs PID MARK`): record parent's descendants while
    it lives, then stop them, those they started and those carrying its mark. Signals a terminal
    or a process group sends are ignored: the parent handles those, and the reaper must outlive
    it to clean up."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    me = os.getpid()
    start = _stat(parent)
    seen: dict[int, int] = {}
    try:
        fd = os.pidfd_open(parent)  # readable once parent exits: no polling for that
    except (OSError, AttributeError):
        fd = None
    poller = select.poll()
    if fd is not None:
        poller.register(fd, select.POLLIN)
    while start is not None and living(parent, start[2]):
        seen.update(descendants(parent))
        if fd is not None:
            poller.poll(every * 1000)
        else:
            time.sleep(every)
    for pid, s in list(seen.items()):  # and what they started since the last walk
        if living(pid, s):
            seen.update(descendants(pid))
    seen.update(marked(mark))
    seen.pop(me, None)
    stop_processes(seen, grace=1.0)


def start_reaper() -> subprocess.Popen:
    """Mark this process's environment and start (once) the reaper of what it starts."""
    global _REAPER
    if _REAPER is None or _REAPER.poll() is not None:
        os.environ[OWNER_ENV] = mark = owner_mark()
        _REAPER = subprocess.Popen([sys.executable, "-m", "r1data.procs", str(os.getpid()), mark],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    return _REAPER


def _stop_and_exit(signum: int, _frame) -> None:
    """SIGTERM/SIGINT handler of `run_owned`: one line, every descendant stopped, exit 128+N.
    os.write and os._exit: the work thread may hold stderr's lock or be deep in a stage, and
    what a stage stores is written atomically, so cutting it short loses nothing stored."""
    for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the cleanup
        signal.signal(sig, signal.SIG_IGN)
    name = signal.Signals(signum).name
    os.write(2, f"r1data: stopped by {name}; finished stages stay cached, a rerun resumes\n"
             .encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):  # the work thread's last words about vanished children are noise
        os.dup2(devnull, fd)
    mark, reaper = os.environ.get(OWNER_ENV, ""), _REAPER.pid if _REAPER else None
    for _ in range(3):  # the work thread may start a process while the others stop
        left = descendants(os.getpid()) | (marked(mark) if mark else {})
        left.pop(reaper, None)
        if not left:
            break
        stop_processes(left)
    if _REAPER is not None:  # nothing left to reap: it goes too, so none outlives this exit
        _REAPER.kill()
        _REAPER.wait()
    os._exit(128 + signum)


def run_owned(fn: Callable[[], T]) -> T:
    """fn's result, run so that nothing it starts outlives this process.

    fn runs in a worker thread so the main thread stays free for signals: Prefect swaps in its
    own SIGTERM handler while a flow runs in the main thread, then waits for the running task
    (minutes of vLLM), which is why `flow run` ignored SIGTERM. Here SIGTERM and SIGINT stop
    every descendant and exit 128+N at once; the reaper covers SIGKILL. Off the main thread
    (signals are the main thread's) fn just runs, under the reaper still.
    """
    start_reaper()
    if threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - raised again in the main thread
            box["error"] = e

    old = {s: signal.signal(s, _stop_and_exit) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        t = threading.Thread(target=work, name="r1data-work", daemon=True)
        t.start()
        while t.is_alive():
            t.join(0.5)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


if __name__ == "__main__":  # the reaper: python -m r1data.procs PID MARK
    reap_after(int(sys.argv[1]), sys.argv[2])
