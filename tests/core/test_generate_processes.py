"""`r1data generate` as processes: two writers of one run, SIGKILL and what it leaves."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from r1data.engines import private_tmp_root, sweep_stale_tmp
from r1data.prompts import ingest_synth

pytestmark = pytest.mark.slow


def cli(store, model, run, *extra) -> list[str]:
    return [sys.executable, "-m", "r1data.cli", "generate", "--store", str(store.root),
            "--run", run, "--model", str(model), "--max-tokens", "12", "--max-model-len", "512",
            "--shard-prompts", "1", "--no-progress", *extra]


def living(p: psutil.Process) -> bool:
    """Running and not a zombie (dead, waiting for a reaper the container may not have)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def keys(store, run):
    rows = store.read("samples", run, columns=["prompt_id", "sample_idx"]).to_pylist()
    return [(r["prompt_id"], r["sample_idx"]) for r in rows]


@pytest.mark.heavy  # out of CI's make test this session: see the session note
def test_two_writers_on_one_run_write_each_sample_once(store, tiny_model):
    # 12 prompts x 64 samples is more than one writer queues at once (2 x max_num_seqs), so
    # the second writer's engine comes up while prompts are still free and takes some of them.
    ingest_synth(store, ["arithmetic", "expression"], 6, 0, 1)
    procs = [subprocess.Popen(cli(store, tiny_model, "w", "--n", "64"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
        text = out.decode()
        outs.append(json.loads(text[text.find("{\n"):]))  # the CLI prints its report last
    got = keys(store, "w")
    assert len(got) == 12 * 64 == len(set(got))
    assert sum(o["samples_written"] for o in outs) == 12 * 64, outs
    assert store.read_manifest("generate", "w")["status"] == "complete"


def test_sigkilled_generate_leaves_no_process_sweeps_its_temp_dir_and_resumes_once(
        store, tiny_model, vllm_engine):
    """SIGKILL to the CLI alone mid-run, as the OOM killer or a user would send it: its engine
    dies with it, the next start sweeps its private temp dir, and a rerun writes exactly the
    missing samples (each (prompt, sample_idx) once)."""
    from r1data.generate import generate
    from tests.core.test_generate_vllm import cfg_for

    ingest_synth(store, ["arithmetic", "expression"], 5, 0, 1)
    proc = subprocess.Popen(cli(store, tiny_model, "k", "--n", "64"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and len(store.shards("samples", "k")) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    family = psutil.Process(proc.pid).children(recursive=True)
    assert any("EngineCore" in " ".join(c.cmdline()) + c.name() for c in family), family
    root = private_tmp_root()  # the cache dir's tmp/, or a short one for ipc socket paths
    private = list(root.glob(f"vllm-{proc.pid}-*"))
    assert private, "the engine's private temp dir is named for its owner"

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while (alive := [p for p in family if living(p)]) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive, [(p.pid, p.name()) for p in alive]

    mine = root / f"vllm-{os.getpid()}-live"
    mine.mkdir(parents=True, exist_ok=True)
    try:
        swept = sweep_stale_tmp(root)  # what the next engine start runs first
        assert set(private) <= set(swept) and not any(p.exists() for p in private)
        assert mine.exists(), "a live owner's dir is kept"
    finally:
        mine.rmdir()

    done = len(store.shards("samples", "k"))
    assert 2 <= done < 10, "kill landed after the run finished: nothing was interrupted"
    assert store.read_manifest("generate", "k")["status"] == "running"
    rep = generate(store, cfg_for(tiny_model, n=64, shard_prompts=1), "k", engine=vllm_engine,
                   progress=False)
    assert rep.prompts_done_before == done
    got = keys(store, "k")
    assert len(got) == 10 * 64 == len(set(got))
    assert store.read_manifest("generate", "k")["status"] == "complete"


def test_a_deep_cache_dir_gets_a_short_private_tmp(monkeypatch, tmp_path):
    """vLLM's ipc sockets live in the private temp dir; a unix socket path holds 107 bytes, so
    a cache dir deep in a pytest tmp dir (the flows tests) must not break the engine's start."""
    deep = tmp_path / ("d" * 60) / ".cache" / "r1data"
    monkeypatch.setenv("R1DATA_CACHE_DIR", str(deep))
    root = private_tmp_root()
    assert not str(root).startswith(str(deep))
    assert len(str(root)) + len(f"/vllm-{os.getpid()}-abcdefgh/") + 36 <= 107
    short = Path(tempfile.mkdtemp(prefix="c", dir="/tmp"))  # a shallow one stays in the cache
    try:
        monkeypatch.setenv("R1DATA_CACHE_DIR", str(short))
        assert private_tmp_root() == short / "tmp"
    finally:
        shutil.rmtree(short)
