"""Trainer inputs: the datasets `r1data export` writes, checked before any model is loaded."""

from __future__ import annotations

from pathlib import Path

from r1data.chat import prompt_messages  # noqa: F401 - the trainers' import of it
from r1data.errors import ConfigError, InputError

SFT_COLUMNS = {"messages"}
GRPO_COLUMNS = {"prompt", "answer"}


def load_split(path: str | Path, split: str, needed: set[str]):
    """A split of a save_to_disk folder with the columns a trainer needs, or a one-line error."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise InputError("no such dataset folder", path=str(path))
    try:
        dd = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"not a dataset folder ({str(e).splitlines()[0]})", path=str(path)) \
            from None
    except IndexError:  # datasets saves an empty split as 0 shards it cannot read back
        raise InputError("a split is empty (0 shards)", path=str(path)) from None
    if isinstance(dd, datasets.Dataset):
        ds = dd if split == "train" else None
    else:
        ds = dd.get(split)
    if ds is None:
        if split == "train":
            raise InputError("no train split", path=str(path))
        return None
    missing = needed - set(ds.column_names)
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)} (has {ds.column_names})",
                         path=str(path), field=sorted(missing)[0])
    if len(ds) == 0 and split == "train":
        raise InputError("train split is empty", path=str(path))
    return ds


def check_model_dir(model: str) -> None:
    """A local model folder must hold config.json; hub ids are left to transformers."""
    p = Path(model)
    looks_local = p.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1
    if looks_local and not (p / "config.json").exists():
        raise InputError("model folder missing or has no config.json", path=model)


def load_tokenizer(model: str):
    """As the folder was written (transformers 5's AutoTokenizer may rebuild Qwen2 tokenizers)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ConfigError(f"{model}: tokenizer has no chat template")
    return tok


def encode_sft(example: dict, tok, max_len: int) -> dict:
    """input_ids + labels with the prompt masked (-100): loss on the assistant turn only."""
    msgs = example["messages"]
    if not msgs or msgs[-1]["role"] != "assistant":
        raise InputError("last message must be the assistant's", field="messages")
    prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(prompt):  # templates that rewrite earlier turns: fall back
        full = prompt + msgs[-1]["content"] + tok.eos_token
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    ids = tok(full, add_special_tokens=False).input_ids[:max_len]
    labels = [-100] * min(len(p_ids), len(ids)) + ids[len(p_ids):]
    return {"input_ids": ids, "labels": labels[:len(ids)]}


def pack(examples: list[dict], max_len: int) -> list[dict]:
    """Greedy packing into rows of at most max_len; position ids restart per sample, and the
    model builds the block-diagonal mask from them (no attention across samples)."""
    rows, cur = [], {"input_ids": [], "labels": [], "position_ids": []}
    for ex in examples:
        n = len(ex["input_ids"])
        if cur["input_ids"] and len(cur["input_ids"]) + n > max_len:
            rows.append(cur)
            cur = {"input_ids": [], "labels": [], "position_ids": []}
        cur["input_ids"] += ex["input_ids"]
        cur["labels"] += ex["labels"]
        cur["position_ids"] += list(range(n))
    if cur["input_ids"]:
        rows.append(cur)
    return rows


def collate(rows: list[dict], pad_id: int):
    """Right-padded (ids, labels, position_ids, None). No attention mask: position ids restart
    at 0 for every packed sample (and for the padding), and attention keeps to each sample
    from them (trainers/packed_attention.py; transformers' own sdpa derives a block-diagonal
    mask from them too), never a (B, 1, T, T) fp32 mask (4 GiB per 32k-token row)."""
    import torch

    T = max(len(r["input_ids"]) for r in rows)
    B = len(rows)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    pos = torch.zeros((B, T), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        pos[i, :n] = torch.tensor(r.get("position_ids", list(range(n))))
        pos[i, n:] = torch.arange(T - n)  # the padding is one sample of its own
    return ids, labels, pos, None
