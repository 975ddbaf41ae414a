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
def sums_teacher(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny base and its cold start on single-digit sums (r1data.testing), trained once per
    session: the learning tests and the distill flow test share it."""
    import torch

    from r1data.testing import train_sums_teacher

    torch.set_num_threads(1)
    return train_sums_teacher(tmp_path_factory.mktemp("sums"))


@pytest.fixture
def store(tmp_path):
    from r1data.store import Store

    return Store(tmp_path / "store")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under a store with its bytes: 'unchanged' means this is equal before and after."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
