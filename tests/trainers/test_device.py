"""Device selection: --device is honoured, CPU is the default without CUDA, cuda without CUDA is a
one-line error before any compute; metrics say where the parameters and batches were."""

import json
import sys

import pytest
import torch

from r1data import cli
from r1data.errors import ConfigError
from r1data.trainers.common import derive_seed, native_bf16, pick_device
from tests.trainers.test_grpo_trainer import grpo_data  # noqa: F401 - the shared dataset fixture
from tests.trainers.test_sft_trainer import sft_data  # noqa: F401 - the shared dataset fixture

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_default_is_cuda_when_available_else_cpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    want = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(pick_device(None)) == want
    assert str(pick_device("cpu")) == "cpu"


@NO_CUDA
def test_cuda_without_cuda_is_a_config_error():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device(name)
    with pytest.raises(ConfigError, match="not a torch device"):
        pick_device("gpu0")
    with pytest.raises(ConfigError, match="only cpu and cuda"):
        pick_device("meta")


def test_bf16_follows_the_hardware():
    flags = open("/proc/cpuinfo").read().split()  # noqa: SIM115 - a read-once proc file
    assert native_bf16(torch.device("cpu")) == ("amx_bf16" in flags or "avx512_bf16" in flags)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "sample", 3, 1) == derive_seed(0, "sample", 3, 1)
    seeds = {derive_seed(s, name, step, k) for s in (0, 1) for name in ("sample", "pick")
             for step in range(20) for k in range(8)}
    assert len(seeds) == 2 * 2 * 20 * 8  # seed + step would collide (0/step 1 = 1/step 0)


@NO_CUDA
def test_cli_device_cuda_fails_in_one_line_before_compute(tiny_model, grpo_data, sft_data,  # noqa: F811
                                                          tmp_path, monkeypatch, capsys):
    for cmd, data in (("sft", sft_data), ("grpo", grpo_data)):
        out = tmp_path / cmd
        monkeypatch.setattr(sys, "argv", ["r1data", "train", cmd, "--data", str(data),
                                          "--model", str(tiny_model), "--out", str(out),
                                          "--device", "cuda", "--no-progress"])
        with pytest.raises(SystemExit) as e:
            cli.main()
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1, err
        assert "device 'cuda': CUDA is not available" in err, err
        assert not (out / "metrics.jsonl").exists()


def test_grpo_on_cpu_logs_where_params_and_batches_were(tiny_model, grpo_data, tmp_path,  # noqa: F811
                                                        monkeypatch, capsys):
    out = tmp_path / "o"
    monkeypatch.setattr(sys, "argv", [
        "r1data", "train", "grpo", "--data", str(grpo_data), "--model", str(tiny_model),
        "--out", str(out), "--max-steps", "1", "--num-generations", "2", "--prompts-per-step",
        "2", "--max-completion-length", "4", "--device", "cpu", "--micro-batch-size", "3",
        "--no-progress"])
    cli.main()
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["device"] == row["param_device"] == row["batch_device"] == "cpu"
    assert row["bf16"] == native_bf16(torch.device("cpu"))
    saved = json.loads((out / "config.json").read_text())
    assert saved["device"] == "cpu" and saved["micro_batch_size"] == 3
