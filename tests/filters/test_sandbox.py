"""Hostile programs, each shown contained by the sandbox; ordinary programs still work.

Leftover processes are found by a unique marker in their command line (host /proc shows the
sandbox's processes too), so the checks do not depend on which user the sandbox runs as.
"""

import json
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from r1data.errors import ConfigError
from r1data.filters.sandbox import run_python, sandbox_info


def _alive_with(marker: str, settle: float = 5.0) -> list[int]:
    """Pids whose command line holds marker; waits up to `settle` s for them to be gone."""
    deadline = time.monotonic() + settle
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                continue
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def _spawn(body: str, marker: str) -> str:
    """Program text that starts a detached child running `body` (marker in its argv)."""
    return ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', {body!r}, {marker!r}])\n")


@pytest.fixture
def marker() -> str:
    m = f"r1data-test-{uuid.uuid4().hex}"
    yield m
    for pid in _alive_with(m, settle=0):  # never leave our own strays behind a failed test
        os.kill(pid, signal.SIGKILL)


def test_full_isolation_on_this_machine():
    # CI is the same kind of machine (root, bubblewrap, Debian python3, cgroup v1): strong path.
    info = sandbox_info()
    assert info["isolation"] == "namespaces" and info["user"] == "nobody"
    assert info["backend"] == "bubblewrap" and info["code_rewards"] == "allowed"
    assert "pids cgroup" in info["processes"] and "memory cgroup" in info["memory"]


def test_only_usr_and_private_dirs_exist_inside():
    r = run_python("import json, os\n"
                   "print(json.dumps([os.listdir('/'), os.getuid(), os.getcwd()]))")
    top, uid, cwd = json.loads(r.stdout)
    assert r.ok and uid == 65534 and cwd == "/tmp/w"
    seen = set(top)
    assert seen <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "proc", "dev",
                    "tmp", "var"}
    assert "usr" in seen and not seen & {"etc", "home", "root", "run", "work", "sys", "opt"}


def test_mode_switch_and_unknown_mode(monkeypatch):
    monkeypatch.setenv("R1DATA_SANDBOX_ISOLATION", "rlimits")
    assert sandbox_info()["isolation"] == "rlimits"
    assert run_python("import os\nprint(os.path.isdir('/etc'))").stdout == "True\n"
    monkeypatch.setenv("R1DATA_SANDBOX_ISOLATION", "chroot")
    with pytest.raises(ConfigError, match="chroot"):
        run_python("pass")


def test_host_unix_sockets_are_out_of_reach():
    # A world-writable socket where the host keeps them (/run), and an abstract one.
    place = tempfile.mkdtemp(prefix="r1data-test-", dir="/run" if os.access("/run", os.W_OK)
                             else None)
    path = os.path.join(place, "host.sock")
    try:
        os.chmod(place, 0o777)
        with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as abstract:
            srv.bind(path)
            os.chmod(path, 0o777)
            abstract.bind(f"\0{os.path.basename(place)}")
            for s in (srv, abstract):
                s.listen(1)
                s.settimeout(0.3)
            src = ("import socket\n"
                   f"for addr in ({path!r}, {chr(0) + os.path.basename(place)!r}):\n"
                   "    try:\n"
                   "        socket.socket(socket.AF_UNIX).connect(addr)\n"
                   "        print('connected', repr(addr))\n"
                   "    except OSError as e:\n"
                   "        print('refused', type(e).__name__)\n")
            r = run_python(src)
            assert r.ok and r.stdout.split() == ["refused", "FileNotFoundError",
                                                 "refused", "ConnectionRefusedError"]
            for s in (srv, abstract):
                with pytest.raises(TimeoutError):
                    s.accept()
    finally:
        shutil.rmtree(place, ignore_errors=True)


@pytest.mark.parametrize("isolation", ["namespaces", "rlimits"])
def test_normal_programs_stdin_exit_codes_exceptions(isolation):
    r = run_python("import sys\nprint(sys.stdin.read()[::-1])", stdin="abc", isolation=isolation)
    assert r.ok and r.stdout == "cba\n" and r.killed_reason is None
    assert run_python("raise SystemExit(3)", isolation=isolation).returncode == 3
    r = run_python("def f():\n    return 1 / 0\nf()", isolation=isolation)
    assert r.returncode == 1 and not r.ok and "ZeroDivisionError" in r.stderr
    assert r.killed_reason is None
    r = run_python("def broken(:\n    pass", isolation=isolation)
    assert r.returncode == 1 and "SyntaxError" in r.stderr
    r = run_python("import os; os.kill(os.getpid(), 9)", isolation=isolation)
    assert r.returncode == -signal.SIGKILL


@pytest.mark.timeout(60)
def test_unread_huge_stdin_does_not_block_the_parent():
    r = run_python("print('ignored my input')", stdin="x" * 20_000_000, timeout=10)
    assert r.ok and r.stdout.strip() == "ignored my input"
    # Neither reads nor exits: feeding stdin through a pipe would wait here forever.
    r = run_python("import time\ntime.sleep(600)", stdin="x" * 20_000_000, timeout=1)
    assert r.killed_reason == "timeout"


def test_infinite_loop_kills_whole_tree_including_term_ignoring_and_setsid_children(marker):
    ignore_term = ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "while True: pass")
    escape = "import os, time\nos.setsid()\nwhile True: time.sleep(0.01)"
    src = _spawn(ignore_term, marker) + _spawn(escape, marker) + "while True: pass\n"
    r = run_python(src, timeout=1.5, cpu_seconds=30)
    assert r.timed_out and r.killed_reason == "timeout" and r.returncode is None
    assert _alive_with(marker) == []


def test_setsid_escape_from_the_process_group_is_still_killed(marker):
    # The program leaves the process group a group kill would reach; the PID namespace ends it.
    src = _spawn("import time\nwhile True: time.sleep(0.01)", marker) + \
        "import os, time\nos.setsid()\nwhile True: time.sleep(0.01)\n"
    r = run_python(src, timeout=1.0)
    assert r.killed_reason == "timeout"
    assert _alive_with(marker) == []


def test_cpu_spin_hits_the_cpu_limit_before_the_wall_clock():
    r = run_python("while True: pass", cpu_seconds=1, timeout=20)
    assert r.killed_reason == "cpu" and not r.timed_out and not r.ok


def test_fork_bomb_is_contained_and_machine_still_forks(marker):
    src = ("import os, sys\n"
           f"os.execv(sys.executable, [sys.executable, '-c', "
           f"'import os\\nwhile True:\\n    os.fork()', {marker!r}])\n")
    r = run_python(src, timeout=3)
    assert not r.ok and r.killed_reason in ("processes", "timeout")
    assert _alive_with(marker) == []
    assert run_python("import os\npid = os.fork()\nos._exit(0) if pid == 0 else "
                      "print(os.waitpid(pid, 0)[1])").stdout.strip() == "0"


def test_memory_bomb_is_stopped():
    r = run_python("x = bytearray(4 * 1024 ** 3)", memory_mb=256)
    assert r.killed_reason == "memory" and r.returncode != 0
    r = run_python("x = []\nwhile True:\n    x.append(b'x' * 2**20)", memory_mb=200, timeout=20)
    assert r.killed_reason == "memory" and not r.timed_out


def test_memory_spread_over_forked_children_is_capped_in_total():
    # Each child stays under the per-process limit; together they exceed the run's budget.
    src = ("import os\n"
           "kids = []\n"
           "for _ in range(6):\n"
           "    pid = os.fork()\n"
           "    if pid == 0:\n"
           "        block = b'\\x01' * (150 * 2**20)\n"
           "        import time; time.sleep(2)\n"
           "        os._exit(0)\n"
           "    kids.append(pid)\n"
           "print(sum(os.WIFSIGNALED(os.waitpid(p, 0)[1]) for p in kids))\n")
    r = run_python(src, memory_mb=256, timeout=15)
    assert r.returncode == 0 and int(r.stdout) >= 1  # the memory cgroup's OOM killer stepped in


def _loopback_attempt(wait: float, **run) -> tuple:
    """(run result, whether our listening loopback port saw a connection)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(wait)
        port = srv.getsockname()[1]
        r = run_python("import socket\n"
                       f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                       "print('connected')", **run)
        try:
            srv.accept()[0].close()
        except TimeoutError:
            return r, False
        return r, True


@pytest.mark.parametrize("isolation", ["namespaces", "rlimits"])
def test_no_connection_to_a_listening_loopback_port(isolation):
    r, accepted = _loopback_attempt(0.5, isolation=isolation)
    assert "connected" not in r.stdout and r.returncode != 0 and not accepted


def test_network_flag_lets_loopback_through():
    # The namespace path is what blocks the connection above, not a broken socket stack.
    r, accepted = _loopback_attempt(5, network=True)
    assert r.ok and "connected" in r.stdout and accepted


@pytest.mark.parametrize("isolation", ["namespaces", "rlimits"])
def test_environment_secrets_are_not_visible(monkeypatch, isolation):
    monkeypatch.setenv("R1DATA_TEST_SECRET", "hunter2-secret-value")
    src = ("import os\nprint(sorted(os.environ))\nprint(os.environ.get('R1DATA_TEST_SECRET'))\n"
           "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
           "    try:\n"
           "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
           "    except OSError:\n"
           "        pass\n")
    r = run_python(src, isolation=isolation, max_output=2**26)  # every process: long output
    assert r.ok
    assert "hunter2-secret-value" not in r.stdout and "R1DATA_TEST_SECRET" not in r.stdout


def test_cannot_write_outside_its_temp_dir(tmp_path):
    target = tmp_path / "owned.txt"
    tmp_path.chmod(0o777)  # even a world-writable directory of the host is out of reach
    r = run_python(f"open({str(target)!r}, 'w').write('pwned')")
    assert r.returncode != 0 and not target.exists()
    for place in ("/tmp", "/var/tmp", "/dev/shm"):  # private tmpfs inside, gone afterwards
        marker = f"{place}/r1data-sandbox-escape-{uuid.uuid4().hex}"
        assert run_python(f"open({marker!r}, 'w').write('x'); print('wrote')").stdout == "wrote\n"
        assert not os.path.exists(marker)
    repo_file = os.path.join(os.getcwd(), f"r1data-escape-{uuid.uuid4().hex}")
    r = run_python(f"open({repo_file!r}, 'w').write('x')")
    assert r.returncode != 0 and not os.path.exists(repo_file)
    # read-only root, or (a checkout under /tmp) hidden by the private tmpfs: either way no write
    assert any(m in r.stderr for m in ("Read-only file system", "Permission denied",
                                       "No such file or directory"))


def test_scratch_files_work_and_the_fallback_temp_dir_is_removed():
    r = run_python("open('scratch.txt', 'w').write('ok'); print(open('scratch.txt').read())")
    assert r.ok and r.stdout.strip() == "ok"
    r = run_python("import os; open('f', 'w').write('x'); print(os.getcwd())",
                   isolation="rlimits")
    workdir = r.stdout.strip()
    assert r.ok and workdir.startswith("/") and not os.path.exists(workdir)


def test_huge_output_is_capped_and_the_run_killed():
    r = run_python("while True: print('x' * 1000)", max_output=10_000, timeout=10)
    assert r.killed_reason == "output_limit" and not r.timed_out
    assert len(r.stdout) <= 10_000
    r = run_python("import sys\nwhile True: sys.stderr.write('e' * 1000)", max_output=10_000)
    assert r.killed_reason == "output_limit" and len(r.stderr) <= 10_000


def test_big_files_are_refused():
    r = run_python("open('big', 'wb').write(b'x' * (64 * 2**20))")
    assert r.returncode != 0 and not r.ok


def test_oversized_source_is_refused():
    assert run_python("x = 1\n" * 100_000).killed_reason == "source_too_large"


def test_unknown_isolation_is_a_config_error():
    with pytest.raises(ConfigError):
        run_python("pass", isolation="chroot")


def test_many_threads_at_once_each_get_their_own_result(marker):
    progs = [(f"print({i} * {i})", str(i * i)) for i in range(16)]
    progs += [("while True: pass", None), (f"import os, sys\nos.execv(sys.executable, "
              f"[sys.executable, '-c', 'import os\\nwhile True: os.fork()', {marker!r}])", None)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: run_python(p[0], timeout=2), progs))
    for (_, want), r in zip(progs, results, strict=True):
        if want is not None:
            assert r.ok and r.stdout.strip() == want
        else:
            assert not r.ok
    assert _alive_with(marker) == []

