"""SFT under torchrun: 2 CPU processes on gloo (DDP, or FSDP2 with fsdp=True) give the same run
as one process with the same global batch (losses per step and final weights)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from r1data.trainers.sft import SFTConfig, train_sft
from tests.trainers.test_sft_trainer import sft_data  # noqa: F401 - the shared dataset fixture

pytestmark = pytest.mark.slow
CODE = ("import json, sys, torch; torch.set_num_threads(1); "
        "from r1data.trainers.sft import SFTConfig, train_sft; "
        "train_sft(SFTConfig(**json.loads(sys.argv[1])), progress=False)")


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_gloo_processes_match_one(tiny_model, sft_data, tmp_path, fsdp):  # noqa: F811
    from safetensors.torch import load_file

    kw = dict(data=str(sft_data), model=str(tiny_model), grad_accum=2, lr=3e-3,
              warmup_steps=2, max_len=256, eval_every=0, save_every=0, max_steps=6,
              bf16=False)  # fp32: on AVX512-BF16 CPUs (Zen 4) bf16 autocast's kernels block
    # by batch size, so one process and two differ by ~1e-4 whatever the reduction does
    torch.set_num_threads(1)
    train_sft(SFTConfig(out=str(tmp_path / "one"), batch_size=4, **kw), progress=False)
    script = tmp_path / "sft_ddp.py"
    script.write_text(CODE.replace("; ", "\n"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(script),
                          json.dumps(kw | {"out": str(tmp_path / "two"), "batch_size": 2,
                                           "fsdp": fsdp})],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["processes"] for r in two] == [2] * 6 and [r["processes"] for r in one] == [1] * 6
    assert [r["tokens"] for r in one] == [r["tokens"] for r in two]
    assert [r["loss"] for r in one] == pytest.approx([r["loss"] for r in two], abs=1e-5)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert all(torch.allclose(w1[k].float(), w2[k].float(), atol=1e-4) for k in w1)
