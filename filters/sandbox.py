"""Run untrusted Python in a sandboxed subprocess: time, CPU, memory, processes, files, network.

Where the OS allows it (root, util-linux `unshare` and `setpriv`, a Python readable by `nobody`)
each run gets its own mount, network and PID namespaces: private tmpfs over every world-writable
directory, no network interfaces, the program as user `nobody` without capabilities, and the
whole namespace killed at the end. Elsewhere it falls back to resource limits, a scrubbed
environment and a socket-blocking prelude; `sandbox_info()` says which is in effect.
"""

from __future__ import annotations

import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

NOBODY = 65534
MAX_SOURCE = 120_000  # bytes: the program travels as one argv string (kernel limit 128 KiB)
_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_PRELUDE = (  # fallback only: no sockets for the program (namespaces do this properly)
    "import socket as _s\n"
    "def _no(*a, **k):\n    raise PermissionError('network disabled in the r1data sandbox')\n"
    "_s.socket = _no; _s.create_connection = _no; _s.socketpair = _no\n"
    "del _s, _no\n"
)


@dataclass
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # timeout | output_limit | memory | source_too_large | None
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_reason is None


def _python_for_nobody() -> str | None:
    """An interpreter user `nobody` can execute (pyenv/venv pythons often sit under /root)."""
    for cand in (os.environ.get("R1DATA_SANDBOX_PYTHON"), "/usr/bin/python3", sys.executable):
        if not cand or not os.path.exists(cand):
            continue
        real = os.path.realpath(cand)
        parts = real.split(os.sep)
        ok = all(os.stat(os.sep.join(parts[:i]) or os.sep).st_mode & 0o001
                 for i in range(2, len(parts)))
        if ok and os.stat(real).st_mode & 0o001:
            return cand
    return None


@functools.lru_cache(maxsize=1)
def sandbox_info() -> dict:
    """Which isolation runs here: 'namespaces' (full) or 'rlimits' (fallback)."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    py = _python_for_nobody()
    if os.geteuid() == 0 and unshare and setpriv and py:
        probe = subprocess.run([unshare, "--mount", "--net", "--pid", "--fork", "--kill-child",
                                "true"], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return {"isolation": "namespaces", "python": py, "user": "nobody",
                    "network": "empty network namespace", "processes": "own PID namespace"}
    return {"isolation": "rlimits", "python": sys.executable, "user": str(os.geteuid()),
            "network": "sockets blocked in-process", "processes": "RLIMIT_NPROC + group kill"}


def _limits(memory_mb: int, cpu_seconds: float, nproc: int):
    def apply():
        mem = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = max(1, int(cpu_seconds + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


def _command(source: str, info: dict) -> list[str]:
    if info["isolation"] != "namespaces":
        return [info["python"], "-I", "-S", "-c", _PRELUDE + source]
    mounts = " && ".join(f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {d}" for d in _WRITABLE
                         if os.path.isdir(d))
    script = (f"{mounts} && mkdir /tmp/w && chown {NOBODY}:{NOBODY} /tmp/w && cd /tmp/w && "
              f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --no-new-privs "
              f"--inh-caps=-all --bounding-set=-all -- {info['python']} -I -S -c \"$1\"")
    return ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--",
            "/bin/sh", "-c", script, "sandbox", source]


def run_python(source: str, *, stdin: str = "", timeout: float = 5.0,
               cpu_seconds: float | None = None, memory_mb: int = 512, max_output: int = 64_000,
               nproc: int = 32) -> RunResult:
    """Run `source` isolated; the whole process tree is killed on return, whatever it did."""
    start = time.monotonic()
    if len(source.encode()) > MAX_SOURCE:
        return RunResult(None, "", "", False, "source_too_large", 0.0)
    info = sandbox_info()
    workdir = tempfile.mkdtemp(prefix="r1data-sbx-")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp/w" if info["isolation"] == "namespaces"
           else workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(_command(source, info), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, env=env,
                            start_new_session=True,
                            preexec_fn=_limits(memory_mb, cpu_seconds or timeout, nproc))
    out, err, reason = bytearray(), bytearray(), None
    try:
        try:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
        while streams:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                reason = "timeout"
                break
            ready, _, _ = select.select(list(streams), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del streams[fd]
                    continue
                streams[fd].extend(chunk)
            if len(out) + len(err) > max_output:
                reason = "output_limit"
                break
        if reason is None:
            try:
                proc.wait(max(0.0, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                reason = "timeout"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # unshare --kill-child takes the namespace along
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)
    stderr = err[:max_output].decode(errors="replace")
    if reason is None and "MemoryError" in stderr:
        reason = "memory"
    return RunResult(None if reason == "timeout" else proc.returncode,
                     out[:max_output].decode(errors="replace"), stderr, reason == "timeout",
                     reason, time.monotonic() - start)
