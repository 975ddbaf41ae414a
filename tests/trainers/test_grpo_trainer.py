"""The GRPO loop on a tiny model: logs what TRL logs, KL only with a reference, resume."""

import json

import datasets
import pytest
import torch

from r1data.trainers.grpo import GRPOConfig, train_grpo


@pytest.fixture(scope="module")
def grpo_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "grpo"
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
             "answer": str(a + b), "domain": "math"} for a in range(4) for b in range(4)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    return path


def run(tiny_model, data, out, **kw):
    torch.set_num_threads(1)
    defaults = {"max_steps": 3, "max_completion_length": 12,
                "rewards": {"accuracy": 1.0, "format": 0.5, "length": 0.1}}
    cfg = GRPOConfig(data=str(data), model=str(tiny_model), out=str(out), num_generations=4,
                     prompts_per_step=2, **(defaults | kw))
    res = train_grpo(cfg, progress=False)
    return res, [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_logs_rewards_by_function_and_saves(tiny_model, grpo_data, tmp_path):
    res, log = run(tiny_model, grpo_data, tmp_path / "o")
    assert len(log) == 3
    for key in ("reward", "rewards/accuracy/mean", "rewards/format/std", "rewards/length/mean",
                "kl", "clip_frac", "entropy", "completion_length", "frac_reward_zero_std"):
        assert key in res
    assert res["kl"] == 0.0  # beta = 0: no reference model, no KL
    assert (tmp_path / "o" / "model" / "config.json").exists()


def test_kl_is_tracked_with_a_reference_and_clipping_with_iterations(tiny_model, grpo_data,
                                                                      tmp_path):
    # language consistency of random text varies within a group: advantages are non-zero
    res, log = run(tiny_model, grpo_data, tmp_path / "o", beta=0.1, num_iterations=2, lr=1e-2,
                   eps_low=0.01, eps_high=0.01, loss_type="grpo", scale_rewards="batch",
                   rewards={"language": 1.0}, max_completion_length=24)
    assert any(r["kl"] > 0 for r in log)  # the policy moved away from the frozen reference
    assert any(r["clip_frac"] > 0 for r in log)  # second update ran outside the trust region


def test_dynamic_sampling_drops_groups_with_equal_rewards(tiny_model, grpo_data, tmp_path):
    # an untrained model is never right: accuracy alone gives all-equal groups, all dropped
    cfg = GRPOConfig(data=str(grpo_data), model=str(tiny_model), out=str(tmp_path / "o"),
                     rewards={"accuracy": 1.0}, num_generations=4, prompts_per_step=2,
                     max_completion_length=8, max_steps=2, dynamic_sampling=True)
    res = train_grpo(cfg, progress=False)
    assert res["frac_reward_zero_std"] == 1.0 and res["kept_groups"] == 0


def test_resume_continues_the_same_run(tiny_model, grpo_data, tmp_path):
    # rewards that vary within groups, so the updates move the policy and the curve can differ
    kw = {"rewards": {"language": 1.0, "length": 0.1}, "lr": 1e-3, "max_completion_length": 16}
    _, whole = run(tiny_model, grpo_data, tmp_path / "whole", max_steps=4, **kw)
    _, first = run(tiny_model, grpo_data, tmp_path / "o", max_steps=2, **kw)
    _, log = run(tiny_model, grpo_data, tmp_path / "o", max_steps=4, **kw)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[:2] == first

    def same(r):  # timings and memory differ between runs
        return {k: v for k, v in r.items() if not k.endswith("seconds") and "peak_" not in k}

    for a, b in zip(log, whole, strict=True):  # same rollouts, rewards and losses
        assert a.keys() == b.keys()
        assert same(a) == pytest.approx(same(b), abs=1e-6)
    assert any(r["loss"] != 0.0 for r in whole)


def test_format_reward_sees_the_rollouts_truncation(tiny_model, grpo_data, tmp_path):
    # every rollout of 2 tokens hits the limit; the real format reward must then reject even a
    # completion it passes when finished, as curation rejects finish_reason "length"
    from r1data.filters.rewards import get_reward
    from r1data.trainers.common import Setup
    from r1data.trainers.data import load_split, load_tokenizer
    from r1data.trainers.grpo import rollout, score

    torch.set_num_threads(1)
    cfg = GRPOConfig(data=str(grpo_data), model=str(tiny_model), out=str(tmp_path / "o"),
                     rewards={"format": 1.0}, num_generations=2, prompts_per_step=2,
                     max_completion_length=2)
    run = Setup(cfg)
    tok = load_tokenizer(cfg.model)
    tok.padding_side = "left"
    ro = rollout(cfg, run, tok, load_split(cfg.data, "train", {"prompt"}),
                 run.load_model(cfg.model), None, 0, [0, 1])
    assert ro.truncated.all()
    good = "<think>\nWe compute 2 + 3 = 5.\n</think>\nThe answer is \\boxed{5}."
    ro.texts = [good] * len(ro.texts)
    fns = {"format": get_reward("format")}
    _, cut = score(cfg, fns, ro)
    ro.truncated = torch.zeros_like(ro.truncated)
    _, done = score(cfg, fns, ro)
    assert cut["format"].tolist() == [0.0] * 4 and done["format"].tolist() == [1.0] * 4


def test_a_dataset_finish_reason_column_is_refused(tiny_model, tmp_path):
    from r1data.errors import InputError

    path = tmp_path / "d"
    rows = [{"prompt": [{"role": "user", "content": "1 + 1?"}], "answer": "2",
             "finish_reason": "stop"}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    with pytest.raises(InputError, match="finish_reason"):
        train_grpo(GRPOConfig(data=str(path), model=str(tiny_model), out=str(tmp_path / "o"),
                              num_generations=2, prompts_per_step=1, max_steps=1),
                   progress=False)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_save_every_keeps_the_loadable_weights_of_each_step(tiny_model, grpo_data, tmp_path):
    # what rl.exam_every examines: one run, the policy after steps 2 and 4 (the last), each a
    # from_pretrained folder with its tokenizer; the last is out/model's weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1data.trainers.checkpoint import step_dir

    kw = {"rewards": {"language": 1.0, "length": 0.1}, "lr": 1e-3, "max_completion_length": 16}
    out = tmp_path / "o"
    _, log = run(tiny_model, grpo_data, out, max_steps=4, save_every=2, **kw)
    assert [p.name for p in sorted((out / "steps").iterdir())] == ["step-00002", "step-00004"]
    assert any(r["loss"] != 0.0 for r in log[:2])  # the policy moved between the saves

    def load(folder):
        m = AutoModelForCausalLM.from_pretrained(folder)
        assert m.lm_head.weight is m.model.embed_tokens.weight  # tied, as the base
        assert AutoTokenizer.from_pretrained(folder).eos_token == "<|im_end|>"
        tokenizer = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
        assert all((folder / f).read_text() == (out / "model" / f).read_text()
                   for f in tokenizer)  # the same tokenizer as the final model
        return m.state_dict()

    two, four, final = (load(d) for d in (step_dir(out, 2) / "model", step_dir(out, 4) / "model",
                                          out / "model"))
    assert any(not torch.equal(two[k], four[k]) for k in four)
    assert all(torch.equal(four[k], final[k]) for k in final)
    assert not list(out.glob("**/*.tmp"))  # saved by rename, nothing half-written left


def test_peak_memory_is_this_process_not_its_parent():
    # ru_maxrss of a child started by (v)fork + exec is its parent's peak when larger: the
    # metrics of a trainer started by a big process (a flow, torchrun) would be the parent's
    import subprocess
    import sys

    from r1data.trainers.common import peak_memory

    ballast = b"x" * (256 << 20)  # the parent's peak is at least this
    code = "from r1data.trainers.common import peak_rss_mib; print(peak_rss_mib())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)
    parent = peak_memory(torch.device("cpu"))["peak_rss_mib"]
    assert parent >= len(ballast) / 2**20
    assert 0 < child < 200 < parent - child  # the child's own few MiB, not the parent's peak
