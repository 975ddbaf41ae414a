"""Test helpers: tiny Llama models built locally (tests and demos need a model folder, no hub).

Llama, not Qwen2: transformers 5 forces AutoTokenizer on a `qwen2` folder to rebuild a
Qwen2Tokenizer whose ids differ from the saved tokenizer.json; for `llama` it loads the file as
written.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus() -> list[str]:
    """Text the tokenizer learns from: R1-format arithmetic, so merges fit the demo tasks."""
    lines = []
    for a in range(0, 60):
        for b in range(1, 12):
            lines.append(
                f"<think>\nWe compute {a} + {b} = {a + b}. Then {a} * {b} = {a * b}.\n</think>\n"
                f"The answer is \\boxed{{{a + b}}}."
            )
    lines += [
        "Please reason step by step, and put your final answer within \\boxed{}.",
        "What is the sum? Countdown: reach the target using the numbers once each.",
        "You are a helpful assistant. A conversation between User and Assistant.",
        "def add(a, b):\n    return a + b\n",
    ]
    return lines


def build_tokenizer(vocab_size: int = 512):
    """Train a byte-level BPE tokenizer with ChatML specials, wrapped as PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    out: str | Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
    max_positions: int = 2048,
) -> Path:
    """A randomly initialised Llama + tokenizer folder that vLLM and transformers both load."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,  # 32768 for the long-row packing test
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Name the class that wrote the files, so every loader reads them as written.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


# --- A task the tiny model learns in seconds: single-digit sums in the R1 format ---------------
SUM_PAIRS = [(a, b) for a in range(10) for b in range(10)]
random.Random(0).shuffle(SUM_PAIRS)  # fixed order: the first 80 train, the last 20 are held out


def sum_question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def r1_sum_answer(a: int, b: int) -> str:
    return f"<think>\n{a} + {b} = {a + b}\n</think>\n\\boxed{{{a + b}}}"


def chat_dataset(path: str | Path, examples: list[tuple[str, str]]) -> Path:
    """(user, assistant) pairs as a one-split `messages` dataset on disk, as SFT reads it."""
    import datasets

    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]}
            for q, r in examples]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    return Path(path)

