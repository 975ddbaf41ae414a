"""`r1data flow run` as a process: SIGTERM, Ctrl-C and SIGKILL leave no process it started.

The first cases drive r1data.procs directly (a parent whose child double-forks a sleeper: an
orphan at once, found only by the owner mark); the slow ones start the curate flow on the tiny
model and signal it once its Prefect API server (a uvicorn child) is up, while the flow waits
for its vLLM engine. Descendants are recorded by walking the process tree while it lives, and
a test marker in its environment, which every descendant inherits, finds any that escaped the
walk (re-parented to init before it saw them).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.timeout(400)  # minutes only when the machine is starved
MARK = "R1DATA_LIFECYCLE_MARK"


def living(p: psutil.Process) -> bool:
    """Running and not a zombie (dead, waiting for a reaper the container may not have)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # gone or a zombie
        return []


def marked(mark: str) -> list[psutil.Process]:
    """Living processes whose environment carries the marker: the run's, wherever they went."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK) == mark and living(p):
                found.append(p)
        except psutil.Error:  # gone, or not ours to read
            pass
    return found


# A parent under run_owned: its child starts a sleeper and exits, so the sleeper is re-parented
# to init at once; the parent prints READY and waits to be signalled.
PARENT = """
import subprocess, sys, time
from r1data.procs import run_owned
def work():
    subprocess.run([sys.executable, "-c",
                    "import subprocess; subprocess.Popen(['sleep', '600'])"], check=True)
    print("READY", flush=True)
    time.sleep(600)
run_owned(work)
"""


def start_parent(mark: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, MARK: mark})
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    assert [p.name() for p in marked(mark) if p.name() == "sleep"] == ["sleep"]
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_an_orphaned_grandchild_dies_with_its_owner(sig):
    mark = uuid.uuid4().hex
    proc = start_parent(mark)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    if sig != signal.SIGKILL:  # the handler: one line, 128+N, nothing left when it exits
        assert proc.returncode == 128 + sig, err
        assert err.startswith(f"r1data: stopped by {sig.name};"), err
        assert gone_within([], mark, 0) == []
    else:  # the reaper, soon after
        assert proc.returncode == -signal.SIGKILL
        assert gone_within([], mark, 5) == []


def start_flow(tmp_path: Path, tiny_model: Path) -> tuple[subprocess.Popen, str]:
    cfg = {"name": "t", "flow": "curate", "store": "store",
           "prompts": {"synth": {"kinds": ["arithmetic"], "n": 2, "level": 1}},
           "generate": {"model": str(tiny_model), "run": "r", "n": 4, "max_tokens": 8,
                        "max_model_len": 1024},
           "select": {"name": "cur", "k": 2}, "export": {"format": "sft", "out": "exp"}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    mark = uuid.uuid4().hex
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / ".prefect"), MARK: mark,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "r1data.cli", "flow", "run", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            text=True)
    return proc, mark


def family_once_served(proc: subprocess.Popen, timeout: float = 240) -> list[psutil.Process]:
    """The run's descendants, walked until its Prefect server child exists (and a moment on)."""
    root, family = psutil.Process(proc.pid), {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        try:
            family |= {c.pid: c for c in root.children(recursive=True)}
        except psutil.Error:  # the run ended between the poll and the walk
            pass
        if any("uvicorn" in cmdline(c) for c in family.values()):
            return list(family.values())
        time.sleep(0.1)
    pytest.fail("no Prefect server child within the timeout")


def gone_within(procs: list[psutil.Process], mark: str, seconds: float) -> list:
    """What is still alive of procs and of the marked processes after waiting `seconds`."""
    deadline = time.monotonic() + seconds
    while (alive := [p for p in procs if living(p)] + marked(mark)) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    return [(p.pid, p.name()) for p in alive if living(p)]


@pytest.mark.slow
def test_a_stopped_flow_run_exits_at_once_and_leaves_no_process(tmp_path, tiny_model):
    sig = signal.SIGTERM  # SIGINT takes the same handler (the orphan case above)
    proc, mark = start_flow(tmp_path, tiny_model)
    family = family_once_served(proc)
    assert any("r1data.procs" in cmdline(p) for p in family), "the reaper runs from the start"
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + sig, err[-2000:]
    assert took < 10, took
    assert err.strip().splitlines()[-1].startswith(f"r1data: stopped by {sig.name};"), err
    # Gone when it exits, not a moment later: the reaper included.
    assert gone_within(family, mark, 0) == []


@pytest.mark.slow
def test_a_sigkilled_flow_run_leaves_no_process(tmp_path, tiny_model):
    proc, mark = start_flow(tmp_path, tiny_model)
    family = family_once_served(proc)
    os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer would: no handler runs
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert gone_within(family, mark, 10) == []
