"""GRPO under torchrun: 2 CPU processes on gloo (DDP, or FSDP2 with --fsdp) give the same run as
one process with the same global batch: samples, rewards, losses per step and final weights."""

import json
import os
import subprocess
import sys

import pytest
import torch

from r1data.trainers.grpo import GRPOConfig, train_grpo
from tests.trainers.test_grpo_trainer import grpo_data  # noqa: F401 - the shared dataset fixture

pytestmark = pytest.mark.slow
CODE = ("import json, sys, torch; torch.set_num_threads(1); "
        "from r1data.trainers.grpo import GRPOConfig, train_grpo; "
        "train_grpo(GRPOConfig(**json.loads(sys.argv[1])), progress=False)")
SAME = ("reward", "reward_std", "rewards/language/mean", "completion_length",
        "completion_length_max", "truncated_frac", "frac_reward_zero_std", "kept_groups")
CLOSE = ("loss", "kl", "entropy", "clip_frac")


def torchrun(tmp_path, kw: dict) -> subprocess.CompletedProcess:
    script = tmp_path / "grpo_dist.py"
    script.write_text(CODE.replace("; ", "\n"))
    env = {k: v for k, v in os.environ.items()  # an engine started here set it for 2 cores
           if k != "VLLM_CPU_OMP_THREADS_BIND"} | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(script), json.dumps(kw)],
                          capture_output=True, text=True, env=env, timeout=900)


def read(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("extra, resume", [
    ({"loss_type": "grpo", "beta": 0.05, "num_iterations": 2, "scale_rewards": "batch"}, False),
    ({"loss_type": "dapo", "dynamic_sampling": True, "rewards": {"language": 1.0}}, False),
    ({"loss_type": "dr_grpo", "fsdp": True}, True),
    # two processes with vLLM rollouts: fsdp-vllm below covers it (and the sharded weight push);
    # plain DDP + vLLM is the same sync path on unsharded weights, so it runs with make test-all
    pytest.param({"rollout": "vllm"}, False, marks=pytest.mark.heavy),
    ({"rollout": "vllm", "fsdp": True, "beta": 0.05}, False),
], ids=["ddp-grpo-kl-mu2", "ddp-dapo-dynamic", "fsdp-dr_grpo-resume", "ddp-vllm", "fsdp-vllm"])
def test_two_gloo_processes_match_one(tiny_model, grpo_data, tmp_path, extra,  # noqa: F811
                                      resume):
    from safetensors.torch import load_file

    kw = dict(data=str(grpo_data), model=str(tiny_model), num_generations=4, prompts_per_step=4,
              max_steps=4, max_completion_length=16, lr=1e-3, save_every=0,
              rewards={"language": 1.0, "length": 0.1}, bf16=False) | extra  # fp32: see test_ddp
    torch.set_num_threads(1)
    train_grpo(GRPOConfig(out=str(tmp_path / "one"), **kw), progress=False)
    if resume:  # killed after step 2 and resumed: the gathered checkpoint round-trips
        res = torchrun(tmp_path, kw | {"out": str(tmp_path / "two"), "max_steps": 2})
        assert res.returncode == 0, res.stderr[-3000:]
    res = torchrun(tmp_path, kw | {"out": str(tmp_path / "two")})
    assert res.returncode == 0, res.stderr[-3000:]
    one, two = read(tmp_path / "one"), read(tmp_path / "two")
    assert [r["processes"] for r in two] == [2] * 4 and [r["processes"] for r in one] == [1] * 4
    for a, b in zip(one, two, strict=True):
        assert {k: a[k] for k in SAME if k in a} == pytest.approx(
            {k: b[k] for k in SAME if k in b}, abs=1e-6)  # the same samples and rewards
        assert {k: a[k] for k in CLOSE} == pytest.approx({k: b[k] for k in CLOSE}, abs=1e-5)
    assert any(r["loss"] != 0.0 for r in one)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert all(torch.allclose(w1[k].float(), w2[k].float(), atol=1e-4) for k in w1)


def test_prompts_that_do_not_split_over_processes_fail_in_one_line(tiny_model, grpo_data,  # noqa: F811
                                                                    tmp_path):
    res = torchrun(tmp_path, dict(data=str(grpo_data), model=str(tiny_model), prompts_per_step=3,
                                  out=str(tmp_path / "o")))
    assert res.returncode != 0
    assert "prompts_per_step (3) must split evenly over 2 processes" in res.stderr
    assert not (tmp_path / "o" / "metrics.jsonl").exists()  # before any compute
