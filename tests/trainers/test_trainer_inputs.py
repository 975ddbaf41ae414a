"""Bad trainer input fails in one line before any model is loaded."""

import sys

import datasets
import pytest

from r1data import cli
from r1data.errors import ConfigError, InputError
from r1data.trainers.grpo import GRPOConfig, train_grpo
from r1data.trainers.sft import SFTConfig, train_sft


@pytest.fixture
def folders(tmp_path, tiny_model):
    no_cols = tmp_path / "nocols"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "hi"}])}).save_to_disk(
        str(no_cols))
    empty = tmp_path / "empty"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [{"prompt": "p", "answer": "1", "messages": [{"role": "user", "content": "x"}]}]
    ).select([])}).save_to_disk(str(empty))
    good = tmp_path / "good"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(
        [{"prompt": "What is 1+1?", "answer": "2"}])}).save_to_disk(str(good))
    return {"nocols": no_cols, "empty": empty, "good": good, "model": tiny_model,
            "tmp": tmp_path}


def test_missing_columns(folders):
    with pytest.raises(InputError, match="missing column.*messages"):
        train_sft(SFTConfig(data=str(folders["nocols"]), model=str(folders["model"]),
                            out=str(folders["tmp"] / "o")))
    with pytest.raises(InputError, match="missing column.*answer"):
        train_grpo(GRPOConfig(data=str(folders["nocols"]), model=str(folders["model"]),
                              out=str(folders["tmp"] / "o")))


def test_empty_dataset_and_missing_model_folder(folders, monkeypatch):
    with pytest.raises(InputError, match="empty"):
        train_grpo(GRPOConfig(data=str(folders["empty"]), model=str(folders["model"]),
                              out=str(folders["tmp"] / "o")))
    import transformers

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the input check")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(InputError, match="model folder"):
        train_grpo(GRPOConfig(data=str(folders["good"]), model=str(folders["tmp"] / "nomodel"),
                              out=str(folders["tmp"] / "o")))
    with pytest.raises(InputError, match="no such dataset"):
        train_sft(SFTConfig(data=str(folders["tmp"] / "nodata"), model=str(folders["model"]),
                            out=str(folders["tmp"] / "o")))


def test_unknown_reward_is_rejected_when_configured(folders):
    with pytest.raises(Exception, match="unknown reward 'acuracy'.*accuracy"):
        GRPOConfig(data="d", model="m", out="o", rewards={"acuracy": 1.0})


def test_cli_errors_are_one_line(folders, monkeypatch, capsys):
    for args, needle in [
        (["train", "grpo", "--data", str(folders["good"]), "--model", str(folders["model"]),
          "--out", str(folders["tmp"] / "o"), "--reward", "vibes:1"], "unknown reward 'vibes'"),
        (["train", "sft", "--data", str(folders["nocols"]), "--model", str(folders["model"]),
          "--out", str(folders["tmp"] / "o")], "missing column"),
        (["train", "grpo", "--data", str(folders["good"]), "--model", str(folders["model"]),
          "--out", str(folders["tmp"] / "o"), "--rollout", "sglang"], "'rollout'"),
    ]:
        monkeypatch.setattr(sys, "argv", ["r1data", *args])
        with pytest.raises(SystemExit) as e:
            cli.main()
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and needle in err, err
    assert ConfigError  # the named error class the CLI reports


def test_cli_passes_rollout_fsdp_and_saves(folders, monkeypatch, capsys):
    import json

    out = folders["tmp"] / "cli"
    monkeypatch.setattr(sys, "argv", [
        "r1data", "train", "grpo", "--data", str(folders["good"]), "--model",
        str(folders["model"]), "--out", str(out), "--max-steps", "2", "--num-generations", "2",
        "--prompts-per-step", "1", "--max-completion-length", "4", "--rollout", "hf", "--fsdp",
        "--save-every", "1", "--no-progress"])
    cli.main()
    assert json.loads(capsys.readouterr().out)["step"] == 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["rollout"] == "hf" and saved["fsdp"] is True  # one process: plain model
    assert saved["save_every"] == 1  # TRL's save_steps: the step-1 policy is loadable
    assert (out / "steps" / "step-00001" / "model" / "config.json").is_file()
