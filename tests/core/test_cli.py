"""The CLI in-process: thin commands, one-line errors, defaults printed by --help."""

import json
import sys

import pytest

from r1data import cli


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["r1data", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_help_prints_r1_defaults(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for default in ("[default: (64)]", "[default: (0.6)]", "[default: (0.95)]",
                    "[default: (vllm)]"):
        assert default in flat


@pytest.mark.parametrize("args,needle", [
    (["query", "--store", "st", "--sql", "1"], "No such option: --sql"),
    (["generate", "--bogus"], "No such option: --bogus"),
    (["select", "--store", "st", "--k", "many"], "Invalid value for '--k'"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_usage_errors_are_one_error_line_and_exit_2(monkeypatch, capsys, args, needle):
    """typer 0.29 raises its own copy of click's exceptions: they must still print a usage
    error, not a traceback."""
    code, out, err = run_cli(monkeypatch, capsys, *args)
    errors = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert code == 2 and len(errors) == 1 and needle in errors[0], err
    assert "Traceback" not in err + out


@pytest.mark.parametrize("command,model,fields", [
    ("generate", "GenerateConfig", {"n": "n", "temperature": "temperature",
                                    "max-tokens": "max_tokens", "shard-prompts": "shard_prompts"}),
    ("filter", "FilterConfig", {"target-language": "target_language",
                                "min-consistency": "min_consistency", "timeout": "timeout"}),
    ("select", "SelectConfig", {"k": "k", "policy": "policy", "near-dup": "near_dup_threshold",
                                "ngram": "ngram"}),
])
def test_help_defaults_are_the_config_models(monkeypatch, capsys, command, model, fields):
    """--help reads the library's config models: change a model default and the help follows."""
    from r1data.config import field_defaults
    from r1data.filtering import FilterConfig
    from r1data.selection import SelectConfig

    cls = {"GenerateConfig": cli.GenerateConfig, "FilterConfig": FilterConfig,
           "SelectConfig": SelectConfig}[model]
    defaults = field_defaults(cls)
    monkeypatch.setenv("COLUMNS", "250")  # one line per option
    code, out, _ = run_cli(monkeypatch, capsys, command, "--help")
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines()
             if line.startswith("│") and len(line.split()) > 1}
    for flag, field in fields.items():
        shown = lines[f"--{flag}"].split("[default: ", 1)[1].split("]", 1)[0].strip("()")
        assert shown == str(defaults[field]), (flag, shown)


def test_config_layers_fallback_yaml_flag(tmp_path):
    """A YAML's fields win over the fallbacks; a flag wins only when given (None = not given)."""
    from r1data.config import GenerateConfig, load_config

    yml = tmp_path / "g.yaml"
    yml.write_text("model: m\nn: 3\ntemperature: 0.3\n")
    cfg = load_config(GenerateConfig, yml, fallbacks={"model": "x"}, n=None, temperature=0.9,
                      top_p=None)
    assert (cfg.model, cfg.n, cfg.temperature, cfg.top_p) == ("m", 3, 0.9, 0.95)
    assert load_config(GenerateConfig, None, fallbacks={"model": "x"}).model == "x"
    assert load_config(GenerateConfig, yml, system_prompt="").system_prompt is None


@pytest.mark.slow
def test_generate_yaml_config_reaches_rows_and_a_given_flag_wins(monkeypatch, capsys, tmp_path,
                                                                   tiny_model):
    """`r1data generate --config`: the YAML's n and temperature are what the rows record (the
    flag defaults used to override them); --max-tokens on the command line beats the YAML's."""
    from r1data.store import Store

    st = tmp_path / "st"
    run_cli(monkeypatch, capsys, "prompts", "synth", "--store", st, "--kinds", "arithmetic",
            "--n", "2")
    yml = tmp_path / "gen.yaml"
    yml.write_text(f"model: {tiny_model}\nn: 3\ntemperature: 0.3\nmax_tokens: 9\n"
                   "max_model_len: 512\nseed: 5\n")
    code, out, err = run_cli(monkeypatch, capsys, "generate", "--store", st, "--run", "y",
                             "--config", yml, "--max-tokens", "4", "--no-progress")
    assert code == 0, err
    rows = Store(st, create=False).read("samples", "y").to_pylist()
    assert len(rows) == 2 * 3 and {r["sample_idx"] for r in rows} == {0, 1, 2}
    assert {(r["seed"], r["max_tokens"]) for r in rows} == {(5, 4)}
    assert all(r["temperature"] == pytest.approx(0.3) for r in rows)  # float32 column
    assert all(r["num_tokens"] <= 4 for r in rows)


def test_prompts_synth_then_query(monkeypatch, capsys, tmp_path):
    st = tmp_path / "st"
    code, out, _ = run_cli(monkeypatch, capsys, "prompts", "synth", "--store", st, "--kinds",
                           "arithmetic,countdown", "--n", "3")
    assert code == 0 and json.loads(out)["added"] == 6
    code, out, _ = run_cli(monkeypatch, capsys, "query", "--store", st,
                           "SELECT domain, count(*) AS n FROM prompts GROUP BY 1 ORDER BY 1")
    assert code == 0 and "countdown" in out and "math" in out
    out_csv = tmp_path / "p.csv"
    code, out, _ = run_cli(monkeypatch, capsys, "query", "--store", st, "--report", "pass_rate",
                           "--out", out_csv)
    assert code == 0 and out_csv.exists()


@pytest.mark.parametrize("args,needle", [
    (["prompts", "add", "{tmp}/missing.jsonl", "--store", "{tmp}/st"], "missing.jsonl"),
    (["prompts", "add", "{tmp}/data.jsonl", "--store", "{tmp}/st", "--map", "answer=nope"],
     "field 'answer'"),
    (["prompts", "add", "{tmp}/data.jsonl", "--store", "{tmp}/afile"], "not a directory"),
    (["query", "--store", "{tmp}/st", "--report", "nope"], "unknown report"),
    (["query", "--store", "{tmp}/absent", "SELECT 1"], "no such store"),
    (["prompts", "synth", "--store", "{tmp}/st", "--kinds", "poems"], "unknown synthetic kind"),
    (["generate", "--store", "{tmp}/st", "--run", "r", "--model", "smollm2-typo"],
     "no such folder"),
    (["generate", "--store", "{tmp}/st", "--run", "../x", "--model", "{tmp}"], "run name"),
])
def test_errors_are_one_line_with_exit_2(monkeypatch, capsys, tmp_path, args, needle):
    (tmp_path / "data.jsonl").write_text('{"problem": "p", "answer": "1"}\n')
    (tmp_path / "afile").write_text("x")
    run_cli(monkeypatch, capsys, "prompts", "synth", "--store", tmp_path / "st", "--n", "1")
    code, out, err = run_cli(monkeypatch, capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
