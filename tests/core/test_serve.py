"""`r1data serve` over a small real store (synth prompts, samples written by the store, verdicts
by the real filter run): the pages, the escaping of hostile output, the read-only SQL box, the
compare report; and the real server process driven by headless Chromium."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from r1data import query
from r1data.chat import split_think
from r1data.errors import InputError
from r1data.filtering import FilterConfig, filter_run
from r1data.prompts import ingest_synth
from r1data.store import SAMPLES_SCHEMA, Store
from tests.core.test_report import FLAGS, chromium

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("<think>\nWe add the two numbers <script>document.title='pwned'</script> and "
           "write the sum down now.\n</think>\n\n<img src=x onerror=\"document.title='pwned'\">"
           " The answer is \\boxed{GOLD}.")
MIXED = ("<think>\nWe add the two numbers given in the problem to get the total. "
         "Nous additionnons ensuite les deux nombres pour obtenir le résultat final du "
         "problème. Then we check the sum once more to be sure it is right.\n</think>\n\n"
         "The answer is \\boxed{GOLD}.")


def completion(kind: str, gold: str) -> str:
    wrong = str(int(gold) + 1)
    return {
        "correct": "<think>\nWe add the two numbers given in the problem to get the total, "
                   "then check it.\n</think>\n\nThe answer is \\boxed{GOLD}.",
        "incorrect": "<think>\nWe add the two numbers given in the problem to get the total, "
                     "then check it.\n</think>\n\nThe answer is \\boxed{WRONG}.",
        "no_think": "The answer is \\boxed{GOLD}.",
        "mixed": MIXED,
        "hostile": HOSTILE,
    }[kind].replace("GOLD", gold).replace("WRONG", wrong)


# per prompt (in prompt_id order), the kinds of its 6 samples in runs a and b
PLAN = {
    "a": [["correct", "correct", "incorrect", "mixed", "no_think", "hostile"],
          ["correct", "incorrect", "incorrect", "incorrect", "mixed", "correct"],
          ["incorrect"] * 6,
          ["correct"] * 3 + ["incorrect"] * 3],
    "b": [["incorrect"] * 6,
          ["correct", "correct", "correct", "incorrect", "incorrect", "incorrect"],
          ["correct"] + ["incorrect"] * 5,
          ["correct"] * 6],
}


def build_store(root: Path) -> Store:
    """Runs a and b filtered (b twice: the newest verdicts count), c never filtered."""
    store = Store(root)
    ingest_synth(store, ["arithmetic"], 4, 0, 1)
    prompts = sorted(store.read("prompts").to_pylist(), key=lambda p: p["prompt_id"])
    now = dt.datetime.now(dt.UTC)
    for run, plan in {**PLAN, "c": PLAN["a"][:2]}.items():
        rows = []
        for p, kinds in zip(prompts, plan, strict=False):  # c: the first two prompts
            for i, kind in enumerate(kinds):
                text = completion(kind, p["answer"])
                reasoning, final = split_think(text)
                rows.append({"run": run, "prompt_id": p["prompt_id"], "sample_idx": i,
                             "completion": text, "reasoning": reasoning, "final": final,
                             "num_tokens": len(text.split()), "finish_reason": "stop",
                             "model": f"teacher-{run}", "engine": "vllm", "temperature": 0.6,
                             "top_p": 0.95, "max_tokens": 256, "seed": 0, "created_at": now})
        store.write_shard("samples", pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA), run)
        if run != "c":
            filter_run(store, run, FilterConfig(workers=1), progress=False)
    filter_run(store, "b", FilterConfig(workers=1, target_language="fr"), progress=False)
    return store


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Store:
    return build_store(tmp_path_factory.mktemp("serve") / "store")


@pytest.fixture(scope="module")
def client(built):
    from fastapi.testclient import TestClient

    from r1data.serve import make_app

    return TestClient(make_app(built))


def prompt_ids(store: Store) -> list[str]:
    return sorted(store.read("prompts").column("prompt_id").to_pylist())


# --- in-process: pages, escaping, SQL box, compare --------------------------------------------
def test_index_agrees_with_the_views(built):
    from r1data.serve_index import StoreIndex

    ix = StoreIndex(built)
    cols = "prompt_id, source, domain, n, n_verified, n_correct, n_kept, round(mean_tokens, 6)"
    for run in built.runs():
        con = ix.cursor(run)
        mine = con.execute(f"SELECT {cols} FROM prompt_stats WHERE run = ? ORDER BY 1",
                           [run]).fetchall()
        views = query.run(built, f"SELECT {cols} FROM prompt_stats WHERE run = "
                                 f"'{run}' ORDER BY 1").fetchall()
        assert mine == views and len(mine) == (2 if run == "c" else 4)
        funnel = [{k: v for k, v in r.items() if k != "run"} for r in query.run(
            built, query.report_sql("funnel")).pl().to_dicts() if r["run"] == run]
        assert sorted(ix.funnel(run), key=str) == sorted(funnel, key=str)
    assert {r["outcome"] for r in ix.funnel("c")} == {"unfiltered"}
    assert "kept" not in {r["outcome"] for r in ix.funnel("b")}  # the fr filter is newest


def test_prompts_filter_by_reject_reason_and_pass_rate(built, client):
    pids = prompt_ids(built)
    page = client.get("/prompts", params={"run": "a", "reason": "language_mixing"}).text
    # prompts 0 and 1 of run a hold a mixed-language sample; 2 and 3 do not
    assert [pid in page for pid in pids] == [True, True, False, False]
    page = client.get("/prompts", params={"run": "a", "max_pass": "0"}).text
    assert [pid in page for pid in pids] == [False, False, True, False]


def test_hostile_completion_renders_as_text(built, client):
    pid = prompt_ids(built)[0]
    page = client.get("/prompt", params={"run": "a", "id": pid, "idx": 5})
    assert page.status_code == 200
    body = page.text
    assert "<script>document.title" not in body and "<img src=x" not in body
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in body
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert len(re.findall(r"<script\b", body)) == 1  # the app's own /app.js, nothing else


def test_sample_shows_verdict_answer_and_foreign_sentences(built, client):
    pid = prompt_ids(built)[0]
    body = client.get("/prompt", params={"run": "a", "id": pid, "idx": 3}).text
    assert "language_mixing" in body
    marked = re.findall(r'<mark class="foreign">(.*?)</mark>', body)
    assert len(marked) == 1 and html.unescape(marked[0]).startswith("Nous additionnons")
    assert html.unescape(marked[0]).endswith("problème.")
    gold = built.read("prompts").to_pylist()
    gold = next(p["answer"] for p in gold if p["prompt_id"] == pid)
    assert f'<mark class="answer">{gold}</mark>' in body


def test_sql_box_runs_a_select_and_refuses_writes(built, client):
    ok = client.get("/sql", params={"q": "SELECT run, count(*) AS n FROM samples GROUP BY run "
                                         "ORDER BY run"})
    assert ok.status_code == 200 and "<td>a</td><td>24</td>" in ok.text
    csv = client.get("/sql.csv", params={"q": "SELECT run, count(*) AS n FROM samples "
                                              "GROUP BY run ORDER BY run"})
    assert csv.text.splitlines() == ["run,n", "a,24", "b,24", "c,12"]
    before = sorted(p.name for p in built.root.rglob("*"))
    for bad in ("COPY (SELECT 1) TO 'x.csv'", "CREATE TABLE t AS SELECT 1",
                "SELECT 1; DROP VIEW samples"):
        got = client.get("/sql", params={"q": bad})
        assert got.status_code == 400 and "read-only: only one SELECT" in got.text
        assert client.get("/sql.csv", params={"q": bad}).status_code == 400
    assert sorted(p.name for p in built.root.rglob("*")) == before


def test_compare_report_matches_the_plan(built):
    from r1data.serve import with_params

    sql = with_params(query.report_sql("compare"), {"run_a": "a", "run_b": "b"})
    rows = query.run(built, sql).pl().to_dicts()
    overall = next(r for r in rows if r["level"] == "all")
    per = {r["prompt_id"]: r for r in rows if r["level"] == "prompt"}
    solved = {run: [any(k != "incorrect" for k in kinds) for kinds in plan]
              for run, plan in PLAN.items()}
    pairs = list(zip(solved["a"], solved["b"], strict=True))
    assert overall["only_a"] == sum(a and not b for a, b in pairs) == 1
    assert overall["only_b"] == sum(b and not a for a, b in pairs) == 1
    assert overall["solved_both"] == sum(a and b for a, b in pairs) == 2
    pids = prompt_ids(built)
    assert per[pids[0]]["only_a"] == 1 and per[pids[2]]["only_b"] == 1
    assert per[pids[3]]["pass_b"] == 1.0
    with pytest.raises(InputError, match="compare needs run_a"):
        query.run(built, query.report_sql("compare"))


def test_query_cli_passes_params(built, monkeypatch, capsys):
    from tests.core.test_cli import run_cli

    out = built.root.parent / "cmp.csv"
    code, _, err = run_cli(monkeypatch, capsys, "query", "--store", built.root, "--report",
                           "compare", "--param", "run_a=a", "--param", "run_b=b", "--out", out)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0].startswith("level,source,prompt_id") and lines[1].startswith("all,")
    code, _, err = run_cli(monkeypatch, capsys, "query", "--store", built.root, "--report",
                           "compare", "--param", "run_c=a")
    assert code == 2 and "no such parameter 'run_c'" in err


def test_compare_page_lists_prompts_only_one_run_solves(built, client):
    pids = prompt_ids(built)
    body = client.get("/compare", params={"a": "a", "b": "b", "only": "only_a"}).text
    assert pids[0] in body and pids[2] not in body


# --- the real server in headless Chromium ---------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(built):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "r1data.cli", "serve", "--store",
                             str(built.root), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/app.css", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "r1data serve did not start in 60 s"
                time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def dom(url: str, profile: Path) -> str:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120).stdout


def screenshot(url: str, profile: Path, out: Path) -> Path:
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                    "--window-size=1280,1400", url], capture_output=True, timeout=120)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return out


def href(page: str, pattern: str) -> str:
    """The first link whose class/text matches, as the browser would follow it."""
    m = re.search(pattern, page)
    assert m, pattern
    return html.unescape(m.group(1))


@pytest.mark.slow
def test_serve_in_headless_chromium(built, server, tmp_path):
    base, proc = server
    profile = tmp_path / "profile"
    runs = dom(base + "/", profile)
    assert 'data-run="a"' in runs and "language_mixing" in runs
    run_url = base + href(runs, r'<a class="run-link" href="([^"]+)">a</a>')
    listing = dom(run_url, profile)
    assert "4 prompts match" in listing
    # the reject-reason filter, as the form submits it
    filtered_url = run_url + "&" + urllib.parse.urlencode({"reason": "language_mixing"})
    filtered = dom(filtered_url, profile)
    assert "2 prompts match" in filtered
    prompt_url = base + href(filtered, r'<td><a href="(/prompt\?[^"]+)">')
    prompt = dom(prompt_url, profile)
    assert prompt.count('class="sample ') == 1  # only the language_mixing sample
    sample_url = base + href(prompt, r'<h3><a href="([^"]+)">sample')
    sample = dom(sample_url, profile)
    assert re.search(r"<span class=\"verdict\">rejected</span> · language_mixing", sample)
    assert re.search(r'<mark class="foreign">Nous additionnons[^<]*</mark>', sample)
    assert re.search(r'<mark class="answer">\d+</mark>', sample)
    shots = [screenshot(sample_url, profile, tmp_path / "sample.png")]
    # the hostile sample ran nothing: the title is the app's, the markup is text
    pid = prompt_ids(built)[0]
    hostile = dom(f"{base}/prompt?run=a&id={pid}&idx=5", profile)
    assert "pwned" not in re.search(r"<title>(.*?)</title>", hostile).group(1)
    assert "&lt;script&gt;document.title" in hostile
    sql = dom(base + "/sql?" + urllib.parse.urlencode(
        {"q": "SELECT run, reject_reason, count(*) AS n FROM verdicts GROUP BY ALL ORDER BY ALL"}),
        profile)
    assert "<td>a</td><td>language_mixing</td><td>2</td>" in sql and 'id="csv"' in sql
    refused = dom(base + "/sql?" + urllib.parse.urlencode({"q": "DELETE FROM prompts"}), profile)
    assert re.search(r'id="sql-error">[^<]*read-only: only one SELECT', refused)
    plots = dom(base + "/plots", profile)
    assert plots.count("<svg") >= 4
    shots.append(screenshot(prompt_url.replace("reason=language_mixing", "reason="), profile,
                            tmp_path / "prompt.png"))
    shots.append(screenshot(base + "/compare?a=a&b=b", profile, tmp_path / "compare.png"))
    assert all(s.stat().st_size > 20_000 for s in shots)
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copy(shots[0], ROOT / "docs" / "serve.png")
    assert proc.poll() is None  # still serving after every page
