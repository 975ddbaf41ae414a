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
    for default in ("[default: 64]", "[default: 0.6]", "[default: 0.95]", "[default: vllm]"):
        assert default in flat


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
