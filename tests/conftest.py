"""Shared fixtures: a tiny model built once per session, caches kept inside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("R1DATA_CACHE_DIR", str(ROOT / ".cache" / "r1data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny Llama with a BPE tokenizer: real weights files vLLM and transformers load."""
    from r1data.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def vllm_engine(tiny_model):
    """One real vLLM engine on the tiny model for every in-process test (each start costs
    ~25 s of process spawns and imports on 2 cores). Sampling settings travel per call, so
    only the model and max_model_len (512) are fixed here."""
    from r1data.config import GenerateConfig
    from r1data.engines import VllmEngine

    eng = VllmEngine(GenerateConfig(model=str(tiny_model), max_tokens=12, max_model_len=512))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def sums_teacher(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny base and its cold start on the first 80 single-digit sums (r1data.testing), 150
    SFT steps (~20 s on one core), after which it answers about half the held-out sums:
    (base, teacher model folder). Trained once per session: the learning tests and the distill
    flow test share it."""
    import torch

    from r1data.testing import (
        SUM_PAIRS,
        build_tiny_model,
        chat_dataset,
        r1_sum_answer,
        sum_question,
    )
    from r1data.trainers.sft import SFTConfig, train_sft

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sums")
    base = build_tiny_model(root / "base", seed=0)
    data = chat_dataset(root / "cold", [(sum_question(a, b), r1_sum_answer(a, b))
                                        for a, b in SUM_PAIRS[:80]])
    train_sft(SFTConfig(data=str(data), model=str(base), out=str(root / "sft"), max_steps=150,
                        batch_size=8, lr=3e-3, warmup_steps=10, max_len=256, eval_every=0,
                        save_every=0, seed=0), progress=False)
    return base, root / "sft" / "model"


@pytest.fixture
def store(tmp_path):
    from r1data.store import Store

    return Store(tmp_path / "store")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under a store with its bytes: 'unchanged' means this is equal before and after."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
