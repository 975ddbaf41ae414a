"""`r1data serve` over a small real store (synth prompts, samples written by the store, verdicts
by the real filter run): the pages, the escaping of hostile output, the read-only SQL box, the
compare report; and the real server process driven by headless Chromium."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
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
from tests.core.test_generate_openai import free_port
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


def test_bad_page_parameters_are_one_line_errors(client):
    for params, says in (({"run": "zzz"}, "no such run"), ({"run": "a", "page": "x"},
                                                          "page must be an integer"),
                         ({"run": "a", "min_pass": "high"}, "min_pass must be a number")):
        got = client.get("/prompts", params=params)
        assert got.status_code == 400 and says in got.text
    assert "no such prompt" in client.get("/prompt", params={"run": "a", "id": "<b>"}).text


def test_plots_are_the_reports(client):
    body = client.get("/plots").text
    for section in ("funnel", "pass_rate", "lengths", "language"):
        assert f'data-plot="{section}"><svg' in body


def test_plots_tables_are_the_reports_tables(built):
    """The plots come from the index's aggregates: each table equals its report over the
    views (exact quantiles from the length histograms, newest verdicts, all runs)."""
    from r1data.serve_index import StoreIndex

    ix = StoreIndex(built)
    funnel = query.run(built, query.report_sql("funnel")).pl().to_dicts()
    assert sorted(ix.funnel(), key=str) == sorted(funnel, key=str)  # ties: in any order
    table, stats = ix.pass_rates()
    assert table == query.run(built, query.report_sql("pass_rate")).pl().to_dicts()
    views = query.run(built, "SELECT run, n_correct / n AS pass_rate FROM prompt_stats WHERE "
                             "n_verified > 0 ORDER BY run, prompt_id").pl().to_dicts()
    assert stats == views and {r["run"] for r in stats} == {"a", "b"}
    table, hist = ix.lengths()
    assert table == query.run(built, query.report_sql("lengths")).pl().to_dicts()
    tokens = query.run(built, """SELECT CASE WHEN v.keep IS NULL THEN 'unfiltered' WHEN v.keep
        THEN 'kept' ELSE 'rejected' END AS verdict, s.num_tokens, count(*) AS samples
        FROM samples s LEFT JOIN verdicts v USING (run, prompt_id, sample_idx)
        WHERE s.num_tokens IS NOT NULL GROUP BY ALL ORDER BY ALL""").pl().to_dicts()
    assert hist == tokens
    langs = query.run(built, "SELECT coalesce(lang, 'unknown') AS lang, count(*) AS samples, "
                             "round(avg(lang_consistency), 3) AS mean_consistency FROM verdicts "
                             "GROUP BY ALL ORDER BY samples DESC, lang").pl().to_dicts()
    assert ix.languages() == langs


def agrees_with_views(ix, store: Store) -> None:
    cols = "run, prompt_id, source, domain, n, n_verified, n_correct, n_kept, round(mean_tokens, 6)"
    for run in store.runs():
        ix.ensure(run)
    mine = ix.db.execute(f"SELECT {cols} FROM prompt_stats ORDER BY ALL").fetchall()
    assert mine == query.run(store, f"SELECT {cols} FROM prompt_stats ORDER BY ALL").fetchall()
    funnel = query.run(store, query.report_sql("funnel")).pl().to_dicts()
    assert sorted(ix.funnel(), key=str) == sorted(funnel, key=str)
    assert ix.lengths()[0] == query.run(store, query.report_sql("lengths")).pl().to_dicts()


@pytest.fixture
def copied(built, tmp_path) -> Store:
    """A copy of the built store (mtimes kept: its saved index stays valid) to change."""
    from r1data.serve_index import StoreIndex

    for run in built.runs():
        StoreIndex(built).update(run)  # saved before the copy
    shutil.copytree(built.root, tmp_path / "store")
    return Store(tmp_path / "store")


def test_index_is_saved_and_a_reopen_reads_no_shard(copied):
    """(~1 s) A second index over the store loads the saved tables: nothing is read again."""
    from r1data.serve_index import StoreIndex

    ix = StoreIndex(copied)
    assert [ix.update(run) for run in copied.runs()] == [False, False, False]
    assert ix.progress["a"]["phase"] == "loading the saved index"
    agrees_with_views(ix, copied)
    assert (copied.root / "runs" / ".serve-index" / "a.json").is_file()


def test_index_reads_new_and_removed_shards_alone(copied):
    """(~2 s) A new sample shard and a new filter run are read alone (plus the shards of the
    prompts they touch), a removed verdict shard takes its verdicts away; each time the
    index agrees with the views again, and a second index sees the same."""
    from r1data.serve_index import StoreIndex

    ix = StoreIndex(copied)
    ix.update("a")
    now = dt.datetime.now(dt.UTC)
    pid = prompt_ids(copied)[2]
    text = completion("correct", next(p["answer"] for p in copied.read("prompts").to_pylist()
                                      if p["prompt_id"] == pid))
    reasoning, final = split_think(text)
    copied.write_shard("samples", pa.Table.from_pylist(
        [{"run": "a", "prompt_id": pid, "sample_idx": 6 + i, "completion": text,
          "reasoning": reasoning, "final": final, "num_tokens": 7, "finish_reason": "length",
          "created_at": now} for i in range(2)], schema=SAMPLES_SCHEMA), "a")
    assert ix.update("a") is True
    # one new shard, and the two old shards (samples, verdicts) that hold its prompt
    assert (ix.progress["a"]["done"], ix.progress["a"]["total"]) == (3, 3)
    agrees_with_views(ix, copied)
    assert ix.prompt("a", pid)["n"] == 8
    filter_run(copied, "a", FilterConfig(workers=1), progress=False)  # a second filter run
    assert ix.update("a") is True
    agrees_with_views(ix, copied)
    newest = max(copied.shards("verdicts", "a"), key=lambda f: f.stat().st_mtime_ns)
    newest.unlink()
    assert ix.update("a") is True
    agrees_with_views(ix, copied)
    again = StoreIndex(copied)
    assert again.update("a") is False
    agrees_with_views(again, copied)


def test_index_unsaved_or_damaged_is_rebuilt_in_memory(copied):
    """(~1.5 s) A damaged saved index is read again from the shards; a store where it cannot
    be saved is served from memory, and the runs page says so in one line."""
    from r1data.serve import runs_page
    from r1data.serve_index import StoreIndex

    cols = "prompt_id, n, n_verified, n_correct, n_kept, round(mean_tokens, 6)"
    views = query.run(copied, f"SELECT {cols} FROM prompt_stats WHERE run = 'a' "
                              f"ORDER BY ALL").fetchall()
    saved = copied.root / "runs" / ".serve-index"
    (saved / "a.json").write_text("{not json")
    for damage in ("json", "no folder"):
        ix = StoreIndex(copied)
        assert ix.update("a") is True
        assert ix.db.execute(f"SELECT {cols} FROM prompt_stats WHERE run = 'a' ORDER BY ALL"
                             ).fetchall() == views
        if damage == "json":
            assert ix.saved is None
            shutil.rmtree(saved)
            saved.write_text("")  # a file where the folder goes: nothing can be saved
    assert "not saved" in ix.saved and "index kept in memory only" in runs_page(ix)
    assert saved.is_file() and saved.read_text() == ""


def test_first_build_shows_its_progress_and_pages_follow(built, tmp_path):
    """(~1 s) No saved index: the page answers at once (202) with the build's progress, and
    reloads into the page once the index is there."""
    from fastapi.testclient import TestClient

    from r1data.serve import make_app

    shutil.copytree(built.root, tmp_path / "store",
                    ignore=shutil.ignore_patterns(".serve-index"))
    store = Store(tmp_path / "store")
    app = TestClient(make_app(store, wait=0))
    got = app.get("/prompts", params={"run": "a"})
    assert got.status_code == 202 and 'id="building"' in got.text
    assert "indexing run a" in got.text and 'http-equiv="refresh"' in got.text
    deadline = time.monotonic() + 60
    while (got := app.get("/prompts", params={"run": "a"})).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert got.status_code == 200 and "4 prompts match" in got.text


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


def test_serve_listens_on_loopback_only_and_starts_no_process(server):
    import psutil

    base, proc = server
    me = psutil.Process(proc.pid)
    listening = [c.laddr for c in me.net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening and all(a.ip == "127.0.0.1" for a in listening)
    assert me.children(recursive=True) == []  # nothing that could outlive it
    assert urllib.request.urlopen(base + "/prompts?run=a").status == 200


def test_serve_refuses_a_missing_store(tmp_path, monkeypatch, capsys):
    from tests.core.test_cli import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "serve", "--store", tmp_path / "nope")
    assert code == 2 and "no such store" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()


class Browser:
    """Headless Chromium driven over the DevTools protocol (websockets): real clicks, typing
    and screenshots. Its processes are one session, killed as a group at the end."""

    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-port=0", "--window-size=1280,1000",
                                      "about:blank"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert self.proc.poll() is None and time.monotonic() < deadline, "chromium failed"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                                    timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=2**27, open_timeout=30)
        self.n = 0

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.n:
                assert "error" not in msg, msg["error"]
                return msg["result"]

    def js(self, expr: str):
        got = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in got, got["exceptionDetails"]
        return got["result"].get("value")

    def wait(self, expr: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.js(f"document.readyState === 'complete' && ({expr})")
            except AssertionError:  # the old page's context went away mid-navigation
                got = None
            if got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {expr}"
            time.sleep(0.1)

    def click(self, selector: str, then: str):
        """Click the first match of a selector, then wait for a condition of the new page."""
        self.js(f"window.__old = true; document.querySelector({json.dumps(selector)}).click()")
        self.wait(f"!window.__old && ({then})")

    def goto(self, url: str, then: str = "true"):
        self.call("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && ({then})")

    def screenshot(self, out: Path) -> Path:
        import base64

        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot",
                                                   format="png")["data"]))
        return out

    def close(self):
        import signal

        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.mark.slow
def test_serve_in_headless_chromium(built, server, tmp_path):
    base, proc = server
    pids = prompt_ids(built)
    gold = {p["prompt_id"]: p["answer"] for p in built.read("prompts").to_pylist()}
    b = Browser(tmp_path / "profile")
    try:
        b.goto(base + "/", "!!document.querySelector('section.run')")
        assert "language_mixing" in b.js("document.querySelector('[data-run=a]').innerText")
        b.click("[data-run=a] a.run-link", "location.pathname === '/prompts'")
        assert "4 prompts match" in b.js("document.body.innerText")
        # filter by a reject reason with the form, as a user does
        b.js("document.querySelector('select[name=reason]').value = 'language_mixing'")
        b.click("form.filters button", "location.search.includes('reason=language_mixing')")
        assert "2 prompts match" in b.js("document.body.innerText")
        listed = b.js("[...document.querySelectorAll('td a')].map(a => a.innerText)")
        assert sorted(listed) == pids[:2]
        b.click("td a", "location.pathname === '/prompt'")
        assert b.js("document.querySelectorAll('section.sample').length") == 1
        b.click("section.sample h3 a", "location.search.includes('idx=')")
        pid = b.js("new URLSearchParams(location.search).get('id')")
        assert b.js("document.querySelector('.verdict').innerText") == "rejected"
        assert "language_mixing" in b.js("document.querySelector('section.sample h3').innerText")
        assert b.js("document.querySelector('mark.answer').innerText") == gold[pid]
        assert b.js("document.querySelector('mark.foreign').innerText").startswith(
            "Nous additionnons")
        shots = [b.screenshot(tmp_path / "sample.png")]
        # the raw completion toggles (app.js runs under the page's CSP)
        b.js("document.querySelector('[data-toggle]').click()")
        assert b.js("document.querySelector('pre[id^=raw-]').hidden") is False
        # a hostile completion is text: no script ran, no element was injected
        b.goto(f"{base}/prompt?run=a&id={pids[0]}&idx=5")
        assert "pwned" not in b.js("document.title")
        assert b.js("document.querySelectorAll('script').length") == 1
        assert b.js("document.querySelectorAll('main img').length") == 0
        assert "<script>document.title" in b.js("document.querySelector('.think').innerText")
        # the SQL box: a SELECT gives a table and a CSV link; a write is refused
        b.goto(base + "/sql")
        b.js("document.querySelector('textarea').value = 'SELECT run, reject_reason, count(*) "
             "AS n FROM verdicts GROUP BY ALL ORDER BY ALL'")
        b.click("form button", "!!document.querySelector('table')")
        cells = b.js("[...document.querySelectorAll('tr')].map(r => r.innerText)")
        assert "a\tlanguage_mixing\t2" in cells
        csv = urllib.request.urlopen(base + html.unescape(b.js(
            "document.querySelector('#csv').getAttribute('href')"))).read().decode()
        assert "a,language_mixing,2" in csv.splitlines()
        shots.append(b.screenshot(tmp_path / "sql.png"))
        b.js("document.querySelector('textarea').value = 'DELETE FROM prompts'")
        b.click("form button", "!!document.querySelector('#sql-error')")
        assert "read-only: only one SELECT" in b.js("document.querySelector('#sql-error')"
                                                     ".innerText")
        b.goto(base + "/plots")
        assert b.js("document.querySelectorAll('figure svg').length") >= 4
        b.goto(f"{base}/prompt?run=a&id={pids[0]}")
        shots.append(b.screenshot(tmp_path / "prompt.png"))
        b.goto(f"{base}/compare?a=a&b=b")
        assert b.js("document.body.innerText").count("only_a") >= 1
        shots.append(b.screenshot(tmp_path / "compare.png"))
    finally:
        b.close()
    assert all(s.stat().st_size > 20_000 and s.read_bytes()[:4] == b"\x89PNG" for s in shots)
    docs = ROOT / "docs" / "serve.png"  # the README's screenshot: made once, or on request
    if not docs.exists() or os.environ.get("R1DATA_UPDATE_DOCS"):
        docs.parent.mkdir(exist_ok=True)
        shutil.copy(shots[0], docs)
    assert proc.poll() is None  # still serving after every page
