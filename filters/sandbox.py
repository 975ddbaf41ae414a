"""Run untrusted Python in a sandboxed subprocess: time, CPU, memory, processes, files, network.

Model-written code is hostile. Where the OS allows it (root, util-linux `unshare` and `setpriv`,
a Python that user `nobody` can execute) every run gets its own mount, network, PID, IPC and UTS
namespaces: the root filesystem read-only, private tmpfs on /tmp, /var/tmp and /dev/shm, no
network interface, its own /proc, and the program running as `nobody` without capabilities under
a root-owned init that it cannot signal, so killing that init ends every process of the run,
including ones that left the process group with setsid(). Where cgroup v1 `pids` and `memory`
controllers can be nested under our own cgroup, each run also gets its own process cap and a
memory cap for all its processes together (RLIMIT_AS alone is per process). Elsewhere it falls
back to resource limits, a scrubbed environment, a socket-blocking prelude and a process-group
kill; `sandbox_info()` says which is in effect.

Thread-safe: no preexec_fn, no signal handlers. The source and stdin travel as memfd files
(so a program that never reads its stdin cannot block the parent) and resource limits are set
by a small bootstrap inside the child before the program is compiled.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

from r1data.errors import ConfigError

log = logging.getLogger(__name__)
NOBODY = 65534
MAX_SOURCE = 512_000  # bytes of program text; larger sources are refused, not run
_TMPFS = ("/tmp", "/var/tmp", "/dev/shm")  # the only writable places inside the namespaces
_SETUP_FAILED = "r1data-sandbox-setup-failed"
_CGROUPS = "/sys/fs/cgroup"

# Runs first in the child: read the program from its memfd, lower the limits (as `nobody` they
# cannot be raised again), optionally block sockets, then run the program as __main__.
_BOOT = r"""
def _r1_boot():
    import os, resource, sys
    fd, mem, cpu, fsize, nofile, nproc, block = (int(a) for a in sys.argv[1:8])
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    os.close(fd)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    if block:  # fallback only (best effort): a network namespace does this properly
        import _socket

        class _Blocked(_socket.socket):
            __slots__ = ()

            def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
                if fileno is None:
                    raise PermissionError("network disabled in the r1data sandbox")
                super().__init__(family, type, proto, fileno)

        _socket.socket = _socket.SocketType = _Blocked
    sys.argv = ["solution.py"]
    del globals()["_r1_boot"]
    return compile(b"".join(parts), "solution.py", "exec")
exec(_r1_boot())
"""


@dataclass(frozen=True)
class RunResult:
    """What a run did; `killed_reason` names the limit that ended it, so callers can count why."""

    returncode: int | None  # negative: killed by that signal; None: killed by us (timeout)
    stdout: str
    stderr: str
    timed_out: bool
    # timeout | output_limit | cpu | memory | processes | source_too_large | sandbox_error
    killed_reason: str | None
    duration: float  # seconds, wall clock

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_reason is None


# --- what this machine allows (probed once) ---------------------------------------------------


def _executable_by_nobody(path: str) -> bool:
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    dirs = [os.sep.join(parts[:i]) or os.sep for i in range(1, len(parts))]
    return all(os.stat(d).st_mode & 0o001 for d in dirs) and bool(os.stat(real).st_mode & 0o001)


def _python_for_nobody() -> str | None:
    """This interpreter if `nobody` can run it, else Debian's (pyenv/venv pythons sit in /root)."""
    for cand in (os.environ.get("R1DATA_SANDBOX_PYTHON"), sys.executable, "/usr/bin/python3"):
        if cand and os.path.exists(cand) and _executable_by_nobody(cand):
            return cand
    return None


def _cgroup_parent(controller: str) -> str | None:
    """Our own cgroup v1 directory for `controller`, if we may create children in it."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, rel = line.split(":", 2)
        if controller not in ctrls.split(","):
            continue
        parent = os.path.join(_CGROUPS, controller, rel.lstrip("/"))
        probe = os.path.join(parent, f"r1data-probe-{uuid.uuid4().hex}")
        try:
            if controller == "memory":  # children must count against our own cgroup
                with open(os.path.join(parent, "memory.use_hierarchy")) as f:
                    if f.read().strip() != "1":
                        return None
            os.mkdir(probe)
            os.rmdir(probe)
        except OSError:
            return None
        return parent
    return None


@functools.lru_cache(maxsize=1)
def _probe() -> dict:
    cgroups = {c: p for c in ("pids", "memory") if (p := _cgroup_parent(c))}
    py = _python_for_nobody()
    if os.geteuid() == 0 and py and shutil.which("unshare") and shutil.which("setpriv"):
        mode = {"isolation": "namespaces", "python": py, "cgroups": cgroups, "network": False}
        trial = _run("print('ok')", "", 20.0, None, 256, 1000, 32, mode)
        if trial.ok and trial.stdout.strip() == "ok":
            return mode
        log.warning("sandbox: namespaces unavailable (%s); using the weaker rlimits fallback",
                    trial.killed_reason or trial.stderr.strip()[-200:])
    return {"isolation": "rlimits", "python": sys.executable,
            "cgroups": cgroups if os.geteuid() == 0 else {}, "network": False}


def sandbox_info() -> dict:
    """Which isolation runs here: 'namespaces' (full) or 'rlimits' (fallback), and its parts."""
    mode = _probe()
    ns = mode["isolation"] == "namespaces"
    return {
        "isolation": mode["isolation"],
        "python": mode["python"],
        "user": "nobody" if ns else str(os.geteuid()),
        "network": "empty network namespace" if ns else "sockets blocked in-process",
        "filesystem": "read-only root, private tmpfs" if ns else "temp working directory",
        "processes": ("own PID namespace" if ns else "process-group kill")
                     + (", pids cgroup" if "pids" in mode["cgroups"] else ", RLIMIT_NPROC"),
        "memory": "RLIMIT_AS" + (" + memory cgroup" if "memory" in mode["cgroups"] else ""),
    }


# --- one run ----------------------------------------------------------------------------------


def _memfd(data: bytes, name: str) -> int:
    """An anonymous in-memory file holding data, read from its start (a temp file elsewhere)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
    else:
        fd, path = tempfile.mkstemp(prefix=name)
        os.unlink(path)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _make_cgroups(mode: dict, memory_mb: int, nproc: int) -> dict[str, str]:
    made = {}
    name = f"r1data-sbx-{uuid.uuid4().hex}"
    for ctrl, parent in mode["cgroups"].items():
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
            if ctrl == "pids":
                _write(path, "pids.max", nproc + 4)  # + sh, timeout, setpriv/python
            else:
                limit = (memory_mb + 64) * 2**20  # + tmpfs pages and the helpers
                _write(path, "memory.limit_in_bytes", limit)
                if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
                    _write(path, "memory.memsw.limit_in_bytes", limit)
        except OSError:
            _remove_cgroup(path)
            continue
        made[ctrl] = path
    return made


def _write(path: str, name: str, value: int) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(str(value))


def _read(path: str, name: str) -> str:
    try:
        with open(os.path.join(path, name)) as f:
            return f.read()
    except OSError:
        return ""


def _remove_cgroup(path: str) -> None:
    """Kill whatever is left in the cgroup, then remove it (the kernel reaps asynchronously)."""
    for _ in range(200):
        for pid in _read(path, "cgroup.procs").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _command(mode: dict, cgroups: dict[str, str], boot_args: list[str], timeout: float
             ) -> list[str]:
    py = [mode["python"], "-s", "-S", "-B", "-c", _BOOT, *boot_args]
    join = "".join(f"echo 0 > {shlex.quote(os.path.join(p, 'cgroup.procs'))} && "
                   for p in cgroups.values())
    if mode["isolation"] != "namespaces":
        return ["/bin/sh", "-c", f"{join}exec {shlex.join(py)}"]
    mounts = "".join(f"mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs {d} && "
                     for d in _TMPFS if os.path.isdir(d))
    backstop = int(timeout) + 10  # if this process dies, the sandbox still ends by itself
    script = (f"{{ {join}mount -o remount,bind,ro / && {mounts}"
              f"mkdir -m 700 /tmp/w && chown {NOBODY}:{NOBODY} /tmp/w && cd /tmp/w; }} "
              f"|| {{ echo {_SETUP_FAILED} >&2; exit 125; }}\n"
              f"timeout -s KILL {backstop} setpriv --reuid={NOBODY} --regid={NOBODY} "
              "--clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "
              f"{shlex.join(py)}\nexit $?")
    net = [] if mode["network"] else ["--net"]
    return ["unshare", "--mount", "--pid", "--ipc", "--uts", *net, "--fork", "--kill-child",
            "--mount-proc", "--", "/bin/sh", "-c", script]


def _read_output(proc: subprocess.Popen, deadline: float, max_output: int
                 ) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr as they come (poll, so any fd number works); stop at the cap."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    out, err = bufs.values()
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    open_fds = set(bufs)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), bytes(err), "timeout"
        for fd, _ in poller.poll(left * 1000):
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
            bufs[fd].extend(chunk)
        if len(out) + len(err) > max_output:
            return bytes(out), bytes(err), "output_limit"
    return bytes(out), bytes(err), None


def _wait(pid: int, deadline: float) -> tuple[int | None, float]:
    """(wait status, CPU seconds of the whole waited tree), or (None, 0) at the deadline."""
    while True:
        got, status, usage = os.wait4(pid, 0 if deadline == float("inf") else os.WNOHANG)
        if got:
            return status, usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return None, 0.0
        time.sleep(0.005)


def _run(source: str, stdin: str, timeout: float, cpu_seconds: float | None, memory_mb: int,
         max_output: int, nproc: int, mode: dict) -> RunResult:
    start = time.monotonic()
    code = source.encode("utf-8", errors="replace")
    if len(code) > MAX_SOURCE:
        return RunResult(None, "", "", False, "source_too_large", 0.0)
    ns = mode["isolation"] == "namespaces"
    cpu = max(1, int(-(-(cpu_seconds or timeout) // 1)))
    status, cpu_used, reason = None, 0.0, None
    out = err = b""
    proc, cgroups, events, workdir, src_fd, in_fd = None, {}, {}, None, -1, -1
    try:
        src_fd = _memfd(code, "r1data-source")
        in_fd = _memfd(stdin.encode("utf-8", errors="replace"), "r1data-stdin")
        cgroups = _make_cgroups(mode, memory_mb, nproc) if mode["cgroups"] else {}
        boot_args = [str(src_fd), str(memory_mb * 2**20), str(cpu), str(16 * 2**20), "256",
                     "0" if "pids" in cgroups else str(nproc),
                     "0" if ns or mode["network"] else "1"]
        workdir = None if ns else tempfile.mkdtemp(prefix="r1data-sbx-")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/w" if ns else workdir,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
        proc = subprocess.Popen(_command(mode, cgroups, boot_args, timeout), stdin=in_fd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(src_fd,),
                                cwd=workdir or "/", env=env, start_new_session=True)
        os.close(src_fd)
        os.close(in_fd)
        src_fd = in_fd = -1
        deadline = start + timeout
        out, err, reason = _read_output(proc, deadline, max_output)
        if reason is None:
            status, cpu_used = _wait(proc.pid, deadline)
            reason = "timeout" if status is None else None
    finally:
        for fd in (src_fd, in_fd):
            if fd >= 0:
                os.close(fd)
        if proc is not None:
            try:  # the group holds unshare and the namespace's init: killing init ends the rest
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if status is None:
                status, cpu_used = _wait(proc.pid, float("inf"))
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            proc.stdout.close()
            proc.stderr.close()
        events = {c: _read(p, "pids.events" if c == "pids" else "memory.oom_control")
                  for c, p in cgroups.items()}
        for path in cgroups.values():
            _remove_cgroup(path)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    rc = proc.returncode
    if ns and rc is not None and 128 < rc < 128 + 65:  # the init shell reports signals as 128+N
        rc = -(rc - 128)
    stderr = err[:max_output].decode("utf-8", errors="replace")
    if reason is None:
        reason = _why(rc, stderr, cpu_used, cpu, events, ns)
    return RunResult(None if reason == "timeout" else rc,
                     out[:max_output].decode("utf-8", errors="replace"), stderr,
                     reason == "timeout", reason, time.monotonic() - start)


def _why(rc: int, stderr: str, cpu_used: float, cpu_limit: int, events: dict[str, str],
         ns: bool) -> str | None:
    """Name the limit a failed run hit, from the evidence the kernel leaves."""
    if rc == 0:
        return None
    if ns and rc == 125 and stderr.startswith(_SETUP_FAILED):
        return "sandbox_error"
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_used >= cpu_limit - 0.05):
        return "cpu"
    oom = events.get("memory", "")
    if any(line.split()[1:] != ["0"] for line in oom.splitlines() if line.startswith("oom_kill ")):
        return "memory"
    tail = stderr.rstrip().rsplit("\n", 1)[-1]
    if tail.startswith("MemoryError"):
        return "memory"
    if any(line.split()[1:] != ["0"] for line in events.get("pids", "").splitlines()
           if line.startswith("max ")):
        return "processes"
    return None


def run_python(source: str, *, stdin: str = "", timeout: float = 5.0,
               cpu_seconds: float | None = None, memory_mb: int = 512, max_output: int = 64_000,
               network: bool = False, nproc: int = 32, isolation: str | None = None
               ) -> RunResult:
    """Run `source` as a fresh program; every process it started is gone when this returns.

    timeout: wall seconds (the parent kills). cpu_seconds: RLIMIT_CPU per process (default
    timeout). memory_mb: RLIMIT_AS per process, and with the memory cgroup for all together.
    max_output: stdout + stderr bytes before the run is killed. nproc: processes and threads.
    isolation: None for the best this machine has, or 'namespaces' / 'rlimits' to insist.
    """
    mode = _probe()
    if isolation not in (None, mode["isolation"]):
        if isolation != "rlimits":
            raise ConfigError(f"sandbox isolation {isolation!r} is not available here "
                              f"(best: {mode['isolation']!r})")
        mode = {**mode, "isolation": "rlimits", "python": sys.executable}
    if network:
        mode = {**mode, "network": True}
    return _run(source, stdin, timeout, cpu_seconds, memory_mb, max_output, nproc, mode)
