"""Sampling with HF generate: GRPO rollouts on CPU, and quick pass@1 checks of small models."""

from __future__ import annotations


def sample(model, tok, prompts: list, *, n: int = 1, temperature: float = 1.0,
           top_p: float = 1.0, max_new_tokens: int = 128, greedy: bool = False) -> list[list[str]]:
    """n completions per prompt (chat prompts: strings or messages), decoded without specials."""
    import torch

    from r1data.trainers.data import prompt_messages

    side = tok.padding_side
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(prompt_messages(p), tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    tok.padding_side = side
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=enc.input_ids.repeat_interleave(n, 0),
                             attention_mask=enc.attention_mask.repeat_interleave(n, 0),
                             do_sample=not greedy, temperature=None if greedy else temperature,
                             top_p=None if greedy else top_p, top_k=None if greedy else 0,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    model.train(was_training)
    decoded = tok.batch_decode(out[:, enc.input_ids.size(1):], skip_special_tokens=True)
    return [decoded[i * n:(i + 1) * n] for i in range(len(prompts))]


def pass_at_1(model_dir: str, prompts: list, answers: list[str], *, n: int = 4,
              temperature: float = 0.6, top_p: float = 0.95, max_new_tokens: int = 64,
              greedy: bool = False) -> float:
    """Mean correctness over n samples per prompt (R1's pass@1), math answers."""
    import torch
    from transformers import AutoModelForCausalLM

    from r1data.filters.math import is_correct
    from r1data.trainers.data import load_tokenizer

    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    outs = sample(model, tok, prompts, n=1 if greedy else n, temperature=temperature,
                  top_p=top_p, max_new_tokens=max_new_tokens, greedy=greedy)
    scores = [is_correct(c, a) for cs, a in zip(outs, answers, strict=True) for c in cs]
    return sum(scores) / len(scores)
