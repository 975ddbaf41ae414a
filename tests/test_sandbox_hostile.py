"""Hostile programs, each contained by the sandbox; ordinary programs still work."""

import os
import socket
import subprocess

import pytest

from r1data.filters.sandbox import run_python, sandbox_info


def test_isolation_on_this_machine_is_full():
    # CI runs as root on a machine with util-linux and Debian's python3: the strong path.
    assert sandbox_info()["isolation"] == "namespaces"


def test_normal_program_stdin_exit_codes_and_exceptions():
    r = run_python("import sys\nprint(sys.stdin.read()[::-1])", stdin="abc")
    assert r.ok and r.stdout.strip() == "cba"
    assert run_python("raise SystemExit(3)").returncode == 3
    r = run_python("1/0")
    assert r.returncode == 1 and "ZeroDivisionError" in r.stderr


def _sandbox_pids(settle: float = 0.0) -> set[str]:
    """Processes of user nobody; with settle, waits for the kernel to reap a killed namespace."""
    import time

    deadline = time.monotonic() + settle
    while True:
        out = subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True).stdout
        if not out.split() or time.monotonic() >= deadline:
            return set(out.split())
        time.sleep(0.05)


def test_infinite_loop_is_killed_with_its_children():
    before = _sandbox_pids()
    src = ("import subprocess, sys\n"
           "subprocess.Popen([sys.executable, '-c', 'import signal, time\\n"
           "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: pass'])\n"
           "while True: pass\n")
    r = run_python(src, timeout=1.5)
    assert r.timed_out and r.killed_reason == "timeout" and r.duration < 10
    assert _sandbox_pids(settle=5) <= before  # nothing of that tree survives


def test_fork_bomb_is_contained():
    r = run_python("import os\nwhile True:\n    os.fork()", timeout=3)
    assert not r.ok
    assert _sandbox_pids(settle=5) == set()


def test_memory_bomb_is_contained():
    r = run_python("x = bytearray(4 * 1024 ** 3)", memory_mb=256)
    assert r.killed_reason == "memory" and r.returncode != 0


def test_no_network_even_to_loopback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    r = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                   "print('connected')")
    assert "connected" not in r.stdout and r.returncode != 0
    with pytest.raises(socket.timeout):
        srv.accept()
    srv.close()


def test_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("R1DATA_TEST_SECRET", "hunter2")
    r = run_python("import os\nprint(sorted(os.environ))\n"
                   "print(os.environ.get('R1DATA_TEST_SECRET'))")
    assert "hunter2" not in r.stdout and "R1DATA_TEST_SECRET" not in r.stdout


def test_cannot_write_outside_its_temp_dir(tmp_path):
    target = tmp_path / "owned.txt"
    tmp_path.chmod(0o777)  # even a world-writable directory of the host is out of reach
    r = run_python(f"open({str(target)!r}, 'w').write('pwned')")
    assert r.returncode != 0 and not target.exists()
    marker = "/tmp/r1data-sandbox-escape-test"
    run_python(f"open({marker!r}, 'w').write('x')")  # /tmp is a private tmpfs inside
    assert not os.path.exists(marker)
    assert run_python("open('scratch.txt', 'w').write('ok'); print(open('scratch.txt').read())"
                      ).stdout.strip() == "ok"


def test_huge_output_is_capped():
    r = run_python("while True: print('x' * 1000)", max_output=10_000, timeout=10)
    assert r.killed_reason == "output_limit" and len(r.stdout) <= 10_000


def test_oversized_source_is_refused():
    assert run_python("x = 1\n" * 100_000).killed_reason == "source_too_large"
