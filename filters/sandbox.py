"""Run untrusted Python in a sandboxed subprocess: time, CPU, memory, processes, files, network.

Threat model. The program is model-written code and hostile: it may try to read secrets, write
to the host, reach the network or a unix socket, outlive the run, exhaust the machine, or (for
code rewards, see filters/code.py) fake its own verdict. Two modes; `sandbox_info()` says which
one this machine is in (`python -m r1data.filters.sandbox` prints it), and
R1DATA_SANDBOX_ISOLATION=rlimits forces the weaker one.

- 'namespaces' (needs Debian's `bubblewrap`; as root the program also runs as `nobody`, without
  capabilities; without root, where unprivileged user namespaces are enabled): each run gets a
  fresh mount namespace whose root is an empty tmpfs holding only /usr read-only (plus the
  merged-/usr symlinks and the interpreter's prefix), its own /proc and a minimal /dev, private
  64 MiB tmpfs on /tmp, /var/tmp and /dev/shm, and its own network (no interface: no TCP/UDP,
  no abstract unix sockets), PID, IPC, UTS, user and cgroup namespaces. Host paths (home dirs,
  /run, /var, /etc, the host's /tmp and every filesystem unix socket in them) do not exist
  inside. bwrap --die-with-parent and the PID namespace end every process of the run, setsid()
  or not, when the run ends or when r1data dies (even by SIGKILL). Where cgroup v1 `pids` and
  `memory` can be nested under our own cgroup (root), each run also gets a process cap and a
  memory cap for all its processes together (RLIMIT_AS alone is per process).
- 'rlimits' (no bubblewrap): resource limits, a scrubbed environment, a temp working directory,
  an in-process socket block and a process-group kill. A program can still write wherever the
  user can, reach unix sockets by re-creating a socket object, read the user's files, and leave
  a daemon behind (it gets PR_SET_PDEATHSIG, its children do not). Code rewards refuse this
  mode unless R1DATA_ALLOW_UNSANDBOXED_CODE=1 (`require_code_isolation`).

Not covered in either mode: kernel exploits (no seccomp filter), CPU-cache side channels, a
unix socket someone placed under /usr (visible read-only, and connect() needs no write access to
the mount), and the time and memory a run is allowed to use (bounded, not prevented).

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
_CGROUPS = "/sys/fs/cgroup"
_TMPFS_BYTES = 64 * 2**20
ALLOW_UNSANDBOXED = "R1DATA_ALLOW_UNSANDBOXED_CODE"  # =1: code rewards may run in 'rlimits'
ISOLATION_ENV = "R1DATA_SANDBOX_ISOLATION"  # 'rlimits' forces the fallback (also for tests)

# Runs first in the child: read the program from its memfd, lower the limits (as `nobody` they
# cannot be raised again), optionally block sockets, then run the program as __main__.
_BOOT = r"""
def _r1_boot():
    import os, resource, sys
    fd, mem, cpu, fsize, nofile, nproc, block = (int(a) for a in sys.argv[1:8])
    if block:  # fallback: no PID namespace, so at least this process dies with r1data
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
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
    sys.argv = [sys.argv[8]]
    del globals()["_r1_boot"]
    return compile(b"".join(parts), sys.argv[0], "exec")
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
    # | stopped
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


def _remove_stale_cgroups(parent: str, min_age: float = 300.0) -> None:
    """Empty run cgroups left by an r1data that was SIGKILLed (its sandboxes died with it)."""
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        try:
            if name.startswith("r1data-sbx-") and time.time() - os.stat(path).st_mtime > min_age:
                os.rmdir(path)  # refused while any process is still in it
        except OSError:
            continue


@functools.lru_cache(maxsize=1)
def _probe() -> dict:
    cgroups = {c: p for c in ("pids", "memory") if (p := _cgroup_parent(c))}
    for parent in cgroups.values():
        _remove_stale_cgroups(parent)
    root = os.geteuid() == 0
    py = _python_for_nobody() if root else sys.executable
    bwrap = shutil.which("bwrap")
    if py and bwrap and (not root or shutil.which("setpriv")):
        mode = {"isolation": "namespaces", "python": py, "cgroups": cgroups, "network": False,
                "bwrap": bwrap, "nobody": root}
        trial = _run("print('ok')", "", 20.0, None, 256, 1000, 32, mode)
        if trial.ok and trial.stdout.strip() == "ok":
            return mode
        log.warning("sandbox: bubblewrap failed (%s); using the weaker rlimits fallback",
                    trial.killed_reason or trial.stderr.strip()[-200:])
    elif not bwrap:
        log.warning("sandbox: bubblewrap (bwrap) not found; using the weaker rlimits fallback "
                    "(apt-get install bubblewrap)")
    return _fallback(cgroups if root else {})


def _fallback(cgroups: dict) -> dict:
    return {"isolation": "rlimits", "python": sys.executable, "cgroups": cgroups,
            "network": False}


def _mode(isolation: str | None = None) -> dict:
    """The mode a run uses: `isolation`, else R1DATA_SANDBOX_ISOLATION, else the best here."""
    best = _probe()
    want = isolation or os.environ.get(ISOLATION_ENV) or None
    if want in (None, best["isolation"]):
        return best
    if want != "rlimits":
        raise ConfigError(f"sandbox isolation {want!r} is not available here "
                          f"(best: {best['isolation']!r}; choices: namespaces, rlimits)")
    return _fallback(best["cgroups"])


def sandbox_info(isolation: str | None = None) -> dict:
    """Which isolation runs here: 'namespaces' (full) or 'rlimits' (fallback), and its parts."""
    mode = _mode(isolation)
    ns = mode["isolation"] == "namespaces"
    user = "nobody" if ns and mode["nobody"] else str(os.geteuid())
    return {
        "isolation": mode["isolation"],
        "backend": "bubblewrap" if ns else "rlimits",
        "python": mode["python"],
        "user": user,
        "network": "empty network namespace" if ns else "sockets blocked in-process",
        "filesystem": ("/usr read-only on an empty root, private tmpfs" if ns
                       else "temp working directory (host files reachable)"),
        "processes": ("own PID namespace" if ns else "process-group kill")
                     + (", pids cgroup" if "pids" in mode["cgroups"] else ", RLIMIT_NPROC"),
        "memory": "RLIMIT_AS" + (" + memory cgroup" if "memory" in mode["cgroups"] else ""),
        "code_rewards": "allowed" if ns or os.environ.get(ALLOW_UNSANDBOXED) == "1"
                        else f"refused (set {ALLOW_UNSANDBOXED}=1 to allow)",
    }


def require_code_isolation(isolation: str | None = None) -> None:
    """Fail closed: code rewards need the namespaces mode, or the user's explicit opt-in."""
    mode = _mode(isolation)["isolation"]
    if mode != "namespaces" and os.environ.get(ALLOW_UNSANDBOXED) != "1":
        raise ConfigError(f"code rewards refused: the sandbox here is {mode!r} (no bubblewrap "
                          "namespaces, so solutions could write to the host, reach its unix "
                          "sockets and outlive the run); install bubblewrap, or set "
                          f"{ALLOW_UNSANDBOXED}=1 to run them anyway")


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


def _bwrap_binds(python: str) -> list[str]:
    """A minimal root: /usr read-only, the top-level merged-/usr links, the interpreter's prefix."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{top}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if prefix not in ("/", "/usr") and not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    return args


def _command(mode: dict, cgroups: dict[str, str], boot_args: list[str]) -> list[str]:
    py = [mode["python"], "-s", "-S", "-B", "-c", _BOOT, *boot_args]
    join = "".join(f"echo 0 > {shlex.quote(os.path.join(p, 'cgroup.procs'))} && "
                   for p in cgroups.values())
    if mode["isolation"] != "namespaces":
        return ["/bin/sh", "-c", f"{join}exec {shlex.join(py)}"]
    tmpfs = [a for d in _TMPFS for a in ("--size", str(_TMPFS_BYTES), "--perms", "1777",
                                         "--tmpfs", d)]
    bwrap = [mode["bwrap"], "--unshare-all", *(["--share-net"] if mode["network"] else []),
             "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             *_bwrap_binds(mode["python"]), "--proc", "/proc", "--dev", "/dev", *tmpfs,
             "--dir", "/tmp/w", "--chdir", "/tmp/w", "--", *py]
    if mode["nobody"]:  # bwrap itself runs unprivileged, as nobody, in a user namespace
        bwrap = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--", *bwrap]
    return ["/bin/sh", "-c", f"{join}exec {shlex.join(bwrap)}"] if join else bwrap


def _read_output(proc: subprocess.Popen, deadline: float, max_output: int, stop_fd: int | None
                 ) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr as they come (poll, so any fd number works); stop at the cap, or
    when `stop_fd` becomes readable (the caller no longer needs this run)."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    out, err = bufs.values()
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    if stop_fd is not None:
        poller.register(stop_fd, select.POLLIN)
    open_fds = set(bufs)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), bytes(err), "timeout"
        for fd, _ in poller.poll(left * 1000):
            if fd == stop_fd:
                return bytes(out), bytes(err), "stopped"
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
         max_output: int, nproc: int, mode: dict, fds: tuple[int, ...] = (),
         stop_fd: int | None = None, filename: str = "solution.py") -> RunResult:
    start = time.monotonic()
    code = source.encode("utf-8", errors="replace")
    if len(code) > MAX_SOURCE:
        for fd in fds:
            os.close(fd)
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
                     "0" if ns or mode["network"] else "1", filename]
        workdir = None if ns else tempfile.mkdtemp(prefix="r1data-sbx-")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/w" if ns else workdir,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
        proc = subprocess.Popen(_command(mode, cgroups, boot_args), stdin=in_fd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(src_fd, *fds), cwd=workdir or "/", env=env,
                                start_new_session=True)
        os.close(src_fd)
        os.close(in_fd)
        src_fd = in_fd = -1
        deadline = start + timeout
        out, err, reason = _read_output(proc, deadline, max_output, stop_fd)
        if reason is None:
            status, cpu_used = _wait(proc.pid, deadline)
            reason = "timeout" if status is None else None
    finally:
        for fd in (src_fd, in_fd, *fds):  # the child holds its own copies of `fds`
            if fd >= 0:
                os.close(fd)
        if proc is not None:
            try:  # the group holds bwrap, whose death ends the PID namespace and all in it
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
    if ns and rc is not None and 128 < rc < 128 + 65:  # bwrap reports signals as 128+N
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
    if ns and rc == 1 and stderr.startswith("bwrap: "):
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
               network: bool = False, nproc: int = 32, isolation: str | None = None,
               fds: tuple[int, ...] = (), stop_fd: int | None = None,
               filename: str = "solution.py") -> RunResult:
    """Run `source` as a fresh program; every process it started is gone when this returns.

    timeout: wall seconds (the parent kills). cpu_seconds: RLIMIT_CPU per process (default
    timeout). memory_mb: RLIMIT_AS per process, and with the memory cgroup for all together.
    max_output: stdout + stderr bytes before the run is killed. nproc: processes and threads.
    isolation: None for R1DATA_SANDBOX_ISOLATION or else the best this machine has, or
    'namespaces' / 'rlimits' to insist. fds: pipe ends handed to the program under the same
    numbers; this call owns and closes them. stop_fd: when it turns readable the run is killed
    (killed_reason 'stopped'). filename: the program's name in its tracebacks and sys.argv.
    """
    mode = _mode(isolation)
    if network:
        mode = {**mode, "network": True}
    return _run(source, stdin, timeout, cpu_seconds, memory_mb, max_output, nproc, mode, fds,
                stop_fd, filename)


if __name__ == "__main__":  # `python -m r1data.filters.sandbox`: the mode this machine is in
    import json

    sys.stdout.write(json.dumps(sandbox_info(), indent=1) + "\n")
