"""`r1data serve`: a local, read-only sample browser over a store (runs, prompts, samples, SQL,
plots, two runs compared).

Every page is one GET whose query string is the whole UI state (so a link or a headless browser
reproduces it), rendered on the server. Runs, prompts, samples and the comparison come from a
per-run index saved in the store (r1data/serve_index.py: LIMIT/OFFSET over a table of one row
per prompt; a prompt's samples read from its own shards), and so do the plots of `r1data
report` (from its aggregates); the SQL box is `query.run`'s rules (one SELECT, read-only) on
one kept connection (`query.Cached`: the views are bound once per store change, not per
request). Everything from the store is model output, hostile: it is HTML-escaped, and the
pages forbid inline scripts (Content-Security-Policy), so an escaping slip still runs nothing.
"""

from __future__ import annotations

import html
import json
import re
import threading
from urllib.parse import urlencode

import duckdb

from r1data import query
from r1data.errors import InputError
from r1data.serve_index import SORTS, Building, StoreIndex, rows
from r1data.store import Store

HOST = "127.0.0.1"  # never another interface: the store is private
PORT = 8765
PAGE = 50  # prompts a page
SAMPLES_PAGE = 20  # samples a page (each shown whole)
SQL_ROWS = 500  # rows shown by the SQL box (the CSV download has them all)
_VAR = re.compile(r"getvariable\('([A-Za-z_][A-Za-z0-9_]*)'\)")

CSS = """body{font-family:system-ui,sans-serif;margin:0;color:#222}
nav{background:#264653;padding:.5em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.5em;max-width:1300px}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}th{background:#f4f4f4}
th a{color:#222}pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0}
.think{background:#f6f6fb;border-left:4px solid #8d99ae;padding:.4em .8em}
.final{background:#f3faf6;border-left:4px solid #2a9d8f;padding:.4em .8em}
.sample{border:1px solid #ddd;margin:1em 0;padding:.5em 1em}.kept{border-left:6px solid #2a9d8f}
.rejected{border-left:6px solid #e76f51}mark.foreign{background:#ffd166}
mark.answer{background:#bde0fe;padding:0 .2em}.error{color:#b00020;font-weight:bold}
form.filters label{margin-right:.8em}textarea{width:100%;font-family:monospace}
.muted{color:#777}"""
JS = """document.addEventListener('keydown', function (e) {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && e.target.form) e.target.form.submit();
});
document.querySelectorAll('[data-toggle]').forEach(function (b) {
  b.addEventListener('click', function () {
    var el = document.getElementById(b.dataset.toggle); el.hidden = !el.hidden;
  });
});"""
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'")


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def with_params(sql: str, params: dict[str, str]) -> str:
    """SQL whose `getvariable('k')` calls take the given values, as quoted literals: a report
    parameterised for the DuckDB CLI (SET VARIABLE k = ...) runs the same through the
    one-SELECT guard of `query.run`, which refuses SET."""
    used = set(_VAR.findall(sql))
    unknown = sorted(set(params) - used)
    if unknown:
        raise InputError(f"no such parameter {unknown[0]!r} (this SQL reads: "
                         f"{', '.join(sorted(used)) or 'none'})", path="--param")
    return _VAR.sub(lambda m: query._quote(params[m.group(1)]) if m.group(1) in params
                    else m.group(0), sql)


def parse_params(items: list[str]) -> dict[str, str]:
    """--param k=v pairs."""
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


# --- data ---------------------------------------------------------------------------------------
def run_info(store: Store, run: str) -> dict:
    """The manifests written for a run: generation, filter, evaluation."""
    return {kind: store.read_manifest(kind, run) for kind in ("generate", "filter", "eval")
            if store.read_manifest(kind, run) is not None}


def target_language(store: Store, run: str) -> str:
    from r1data.filtering import FilterConfig

    cfg = (store.read_manifest("filter", run) or {}).get("config") or {}
    return cfg.get("target_language") or FilterConfig().target_language


def foreign_spans(text: str, target: str) -> list[tuple[int, int]]:
    """Spans of `text` (a chain of thought) that the language-consistency check counted as not
    `target`: its sentence units, grouped into the chunks fastText judges, predicted by
    filters.language itself; a unit is foreign when its chunk is, or it holds CJK characters
    of another language."""
    from r1data.filters import language as L

    if not text:
        return []
    units = L._units_batch([text])[0]
    any_cjk = L._has_cjk([text])[0]
    parsed = [L._unit_words(u, any_cjk) for u in units]
    counted = [(u, p) for u, p in zip(units, parsed, strict=True) if p[2]]
    chunks = L._chunks([(p[1], p[2]) for _, p in counted])
    langs = [lang for lang, _ in L._predict([c for c, _ in chunks])]
    foreign: set[int] = set()  # indexes into `counted`
    pos = 0
    for (_, n), lang in zip(chunks, langs, strict=True):  # chunks are consecutive units
        got = 0
        while got < n and pos < len(counted):
            if lang != target:
                foreign.add(pos)
            got += counted[pos][1][2]
            pos += 1
    spans, cursor, k = [], 0, 0
    for unit, (cjk, _, words) in zip(units, parsed, strict=True):
        is_foreign = (words and k in foreign) or any(lang != target for lang in cjk)
        k += 1 if words else 0
        span = _locate(text, unit, cursor)
        if span:
            cursor = span[1]
            if is_foreign:
                spans.append(span)
    return spans


def _locate(text: str, unit: str, start: int) -> tuple[int, int] | None:
    """Where a unit (a sentence with its math blanked) lies in the original text: from its
    first word to its last, found in order from `start`."""
    from r1data.filters.language import _WORD

    words = _WORD.findall(unit)
    if not words:
        return None
    first = text.find(words[0], start)
    if first < 0:
        return None
    end, at = first, first
    for w in words:
        at = text.find(w, at)
        if at < 0:
            break
        end = at + len(w)
        at = end
    while end < len(text) and text[end] in ".!?。！？":
        end += 1
    return first, end


def highlighted(text: str | None, spans: list[tuple[int, int]]) -> str:
    text = text or ""
    out, pos = [], 0
    for a, b in spans:
        out.append(esc(text[pos:a]))
        out.append(f'<mark class="foreign">{esc(text[a:b])}</mark>')
        pos = b
    out.append(esc(text[pos:]))
    return "".join(out)


# --- HTML ---------------------------------------------------------------------------------------
def url(path: str, **params) -> str:
    return esc(path + ("?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})
                       if any(v not in (None, "") for v in params.values()) else ""))


def table(rows: list[dict], links: dict | None = None, sort: dict | None = None) -> str:
    """Rows as an escaped table; `links` maps a column to a function row -> href; `sort` maps a
    column to the href that sorts by it."""
    if not rows:
        return '<p class="muted">no rows</p>'
    cols = [c for c in rows[0] if c != "matching"]
    links, sort = links or {}, sort or {}
    head = "".join(f'<th><a href="{sort[c]}">{esc(c)}</a></th>' if c in sort else
                   f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = [f'<td><a href="{links[c](r)}">{esc(r[c])}</a></td>' if c in links else
                 f"<td>{esc(r[c])}</td>" for c in cols]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def layout(title: str, body: str) -> str:
    nav = "".join(f'<a href="{href}">{name}</a>' for name, href in (
        ("Runs", "/"), ("Prompts", "/prompts"), ("Compare", "/compare"), ("SQL", "/sql"),
        ("Plots", "/plots")))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)} · r1data"
            f"</title><link rel='stylesheet' href='/app.css'></head><body><nav>{nav}</nav>"
            f"<main><h1>{esc(title)}</h1>{body}</main><script src='/app.js'></script>"
            f"</body></html>")


def select(name: str, value: str, options: list[str], blank: str = "any") -> str:
    opts = [f'<option value="">{esc(blank)}</option>'] + [
        f'<option value="{esc(o)}"{" selected" if o == value else ""}>{esc(o)}</option>'
        for o in options]
    return f'<select name="{esc(name)}">{"".join(opts)}</select>'


def sample_html(s: dict, gold: str | None, target: str, link: str | None = None) -> str:
    """One sample whole: verdict columns, the extracted answer against the gold, the chain of
    thought with its other-language sentences marked, the answer apart."""
    state = "unfiltered" if s["keep"] is None else "kept" if s["keep"] else "rejected"
    verdict = {k: round(s[k], 3) if isinstance(s[k], float) else s[k]
               for k in ("keep", "reject_reason", "correct", "format_ok", "format_reason",
                         "repetition", "lang", "lang_prob", "lang_consistency", "num_tokens",
                         "finish_reason")}
    title = f"sample {s['sample_idx']}"
    head = f'<a href="{link}">{esc(title)}</a>' if link else esc(title)
    think = s["reasoning"]
    spans = foreign_spans(think, target) if think else []
    parts = [f'<section class="sample {state}" data-sample="{esc(s["sample_idx"])}">',
             f"<h3>{head} · <span class='verdict'>{esc(state)}</span>"
             f"{' · ' + esc(s['reject_reason']) if s['reject_reason'] else ''}"
             f"<span class='muted'> · {esc(s['model'])}</span></h3>",
             table([verdict]),
             f'<p>answer <mark class="answer">{esc(s["answer"])}</mark> · gold '
             f'<code class="gold">{esc(gold)}</code> · correct '
             f'<b class="correct">{esc(s["correct"])}</b></p>']
    if think is None:
        parts.append("<p class='muted'>no &lt;/think&gt;: the whole completion is the answer"
                     "</p>")
    else:
        parts.append(f"<div class='think'><b>&lt;think&gt;</b> <span class='muted'>"
                     f"({len(spans)} sentence(s) not {esc(target)} marked)</span>"
                     f"<pre>{highlighted(think, spans)}</pre></div>")
    parts.append(f"<div class='final'><b>answer</b><pre>{esc(s['final'])}</pre></div>")
    raw = f"raw-{esc(s['sample_idx'])}"
    parts.append(f"<button type='button' data-toggle='{raw}'>raw completion</button>"
                 f"<pre id='{raw}' hidden>{esc(s['completion'])}</pre></section>")
    return "".join(parts)


# --- pages --------------------------------------------------------------------------------------
def runs_page(ix: StoreIndex) -> str:
    store = ix.store
    parts = []
    for run in store.runs():
        info = run_info(store, run)
        parts.append(
            f'<section class="run" data-run="{esc(run)}"><h2><a class="run-link" '
            f'href="{url("/prompts", run=run)}">{esc(run)}</a></h2>{table(ix.funnel(run))}'
            + "".join(f"<details><summary>{esc(kind)} settings</summary><pre>"
                      f"{esc(json.dumps(m, indent=2, default=str))}</pre></details>"
                      for kind, m in info.items()) + "</section>")
    sets = []
    for name in store.parts("curated"):
        m = store.read_manifest("select", name)
        sets.append(f"<details><summary>selection {esc(name)}</summary><pre>"
                    f"{esc(json.dumps(m, indent=2, default=str))}</pre></details>")
    body = "".join(parts) or '<p class="muted">no runs in this store yet</p>'
    if ix.saved:
        body += f'<p class="muted">{esc(ix.saved)}</p>'
    return layout(f"Runs in {store.root.name}", body + "".join(sets))


def _run(ix: StoreIndex, p: dict, key: str = "run", default: int = 0) -> str:
    runs = ix.store.runs()
    run = p.get(key) or (runs[min(default, len(runs) - 1)] if runs else "")
    if run and run not in runs:
        raise InputError(f"no such run (runs: {', '.join(runs) or 'none'})", path=run)
    return run


def prompts_page(ix: StoreIndex, p: dict) -> str:
    run = _run(ix, p)
    if not run:
        return layout("Prompts", '<p class="muted">no runs in this store yet</p>')
    keep = {k: p.get(k, "") for k in ("source", "domain", "reason", "min_pass", "max_pass", "q")}
    page = _int(p, "page")
    rows, matching = ix.prompts(
        run, source=keep["source"], domain=keep["domain"], outcome=keep["reason"],
        min_pass=_float(p, "min_pass"), max_pass=_float(p, "max_pass"), text=keep["q"],
        sort=p.get("sort", "pass_rate"), desc=p.get("desc") == "1", limit=PAGE,
        offset=page * PAGE)
    form = (f'<form class="filters" method="get" action="/prompts">'
            f'<label>run {select("run", run, ix.store.runs(), blank="")}</label>'
            f'<label>source {select("source", keep["source"], ix.values(run, "source"))}'
            f'</label><label>domain {select("domain", keep["domain"], ix.values(run, "domain"))}'
            f'</label><label>outcome {select("reason", keep["reason"], ix.outcomes(run))}'
            f'</label><label>pass rate <input name="min_pass" size="4" '
            f'value="{esc(keep["min_pass"])}"> to <input name="max_pass" size="4" '
            f'value="{esc(keep["max_pass"])}"></label><label>text <input name="q" '
            f'value="{esc(keep["q"])}"></label><button>filter</button></form>')
    sort = {c: url("/prompts", run=run, **keep, sort=c,
                   desc="" if p.get("sort") == c and p.get("desc") == "1" else "1")
            for c in SORTS}
    links = {"prompt_id": lambda r: url("/prompt", run=run, id=r["prompt_id"],
                                        reason=keep["reason"])}
    hrefs = {k: url("/prompts", run=run, **keep, sort=p.get("sort"), desc=p.get("desc"),
                    page=k) for k in (page - 1, page + 1) if 0 <= k and k * PAGE < matching}
    pager = " ".join(f'<a class="page" href="{href}">{"next" if k > page else "previous"}</a>'
                     for k, href in hrefs.items())
    return layout(f"Prompts of {run}", form + f"<p>{matching} prompts match · page "
                  f"{page + 1}</p>" + table(rows, links, sort) + f"<p>{pager}</p>")


def prompt_detail(ix: StoreIndex, p: dict) -> str:
    run, pid, reason = _run(ix, p), p.get("id", ""), p.get("reason", "")
    prompt = ix.prompt(run, pid)
    if prompt is None:
        raise InputError(f"no such prompt in run {run!r}", path=pid)
    idx = _int(p, "idx", None)
    page = _int(p, "page")
    samples = ix.samples(run, pid, outcome=reason, idx=idx, limit=SAMPLES_PAGE,
                         offset=page * SAMPLES_PAGE)
    target = target_language(ix.store, run)
    body = (f"<p>run <code>{esc(run)}</code> · source {esc(prompt['source'])} · domain "
            f"{esc(prompt['domain'])} · pass rate {prompt['n_correct']}/{prompt['n']}"
            f"{' · outcome ' + esc(reason) if reason else ''}</p>"
            f"<pre class='problem'>{esc(prompt['problem'])}</pre>"
            f"<p>gold <code>{esc(prompt['answer'])}</code></p>")
    body += "".join(sample_html(s, prompt["answer"], target,
                                url("/prompt", run=run, id=pid, idx=s["sample_idx"]))
                    for s in samples) or '<p class="muted">no samples match</p>'
    if idx is None and len(samples) == SAMPLES_PAGE:
        nxt = url("/prompt", run=run, id=pid, reason=reason, page=page + 1)
        body += f'<p><a class="page" href="{nxt}">next samples</a></p>'
    title = f"Sample {idx} of {pid}" if idx is not None else f"Prompt {pid}"
    return layout(title, body)


def sql_page(cache: query.Cached, sql: str) -> tuple[str, int]:
    body = (f'<form method="get" action="/sql"><textarea name="q" rows="6">{esc(sql)}'
            f'</textarea><button>run</button> <span class="muted">one SELECT over prompts, '
            f'samples, verdicts, curated, prompt_stats (Ctrl+Enter)</span></form>')
    status = 200
    if sql.strip():
        try:
            rows = cache.run(limited(sql, SQL_ROWS + 1)).pl().to_dicts()
            more = len(rows) > SQL_ROWS
            body += (f'<p>{min(len(rows), SQL_ROWS)}{"+" if more else ""} rows · '
                     f'<a id="csv" href="{url("/sql.csv", q=sql)}">download CSV</a></p>'
                     + table(rows[:SQL_ROWS]))
        except InputError as e:
            status = 400
            body += f'<p class="error" id="sql-error">{esc(e)}</p>'
    return layout("SQL", body), status


def limited(sql: str, n: int) -> str:
    """The user's SELECT (refused here if it is not one) with at most n rows."""
    query.check_select(sql)
    return f"SELECT * FROM (\n{sql.strip().rstrip(';')}\n) LIMIT {int(n)}"


class Plots:
    """`r1data report`'s plots and tables, drawn from the index's aggregates (the views would
    scan every sample: minutes on a 1M-sample store of 4,000 shards) and kept until the index
    changes."""

    def __init__(self, ix: StoreIndex):
        self.ix = ix
        self.key: tuple | None = None
        self.html = ""
        self._lock = threading.Lock()

    def page(self) -> str:
        runs = self.ix.store.runs()
        for run in runs:
            self.ix.ensure(run)  # Building while a run is indexed for the first time
        key = (self.ix.version, tuple(runs))
        with self._lock:
            if key != self.key:
                self.html, self.key = plots_html(self.ix), key
            return layout("Plots", self.html)


def plots_html(ix: StoreIndex) -> str:
    """The four store sections of `r1data report`, drawn by its figure functions from the
    index's aggregates (same titles, plots and tables)."""
    from r1data import report

    return "".join((report.funnel_figure(ix.funnel()), report.pass_rate_figure(*ix.pass_rates()),
                    report.lengths_figure(*ix.lengths()), report.language_figure(ix.languages())))


def building_page(message: str) -> str:
    """Shown while a run is indexed for the first time: the server is up at once, and this
    page reloads itself until the index is there."""
    return ('<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" '
            'content="1"><title>Indexing · r1data</title><link rel="stylesheet" '
            'href="/app.css"></head><body><main><h1>Indexing the store</h1>'
            f'<p id="building">{esc(message)}</p><p class="muted">once per store: the index '
            'is saved in it (runs/.serve-index), a reopen only reads the shards written since.'
            ' This page reloads itself.</p></main></body></html>')


def compare_page(ix: StoreIndex, p: dict) -> str:
    """sql/compare.sql itself, run on the index (whose prompt_stats has the view's columns)."""
    runs = ix.store.runs()
    a, b = _run(ix, p, "a", 0), _run(ix, p, "b", 1)
    only = p.get("only", "")
    form = (f'<form class="filters" method="get" action="/compare"><label>A '
            f'{select("a", a, runs, blank="")}</label><label>B {select("b", b, runs, blank="")}'
            f'</label><label>show {select("only", only, ["only_a", "only_b"], "all prompts")}'
            f'</label><button>compare</button></form>')
    if not a:
        return layout("Compare", form)
    ix.cursor(a)
    con = ix.cursor(b)
    con.execute("SET VARIABLE run_a = ?", [a])
    con.execute("SET VARIABLE run_b = ?", [b])
    cmp = query.report_sql("compare").strip().rstrip(";")
    summary = rows(con, f"SELECT * EXCLUDE (prompt_id) FROM (\n{cmp}\n) WHERE level <> 'prompt'")
    cond = {"only_a": "AND only_a = 1", "only_b": "AND only_b = 1"}.get(only, "")
    page = _int(p, "page")
    per_prompt = rows(con, f"SELECT prompt_id, source, pass_a, pass_b, delta, only_a, only_b "
                           f"FROM (\n{cmp}\n) WHERE level = 'prompt' {cond} "
                           f"LIMIT {PAGE} OFFSET {page * PAGE}")
    links = {"prompt_id": lambda r: url("/prompt", run=a if r["only_a"] else b,
                                        id=r["prompt_id"])}
    nxt = (f'<a class="page" href="{url("/compare", a=a, b=b, only=only, page=page + 1)}">'
           f'next</a>' if len(per_prompt) == PAGE else "")
    return layout(f"{a} vs {b}", form + "<h2>Per source</h2>" + table(summary)
                  + "<h2>Per prompt (largest differences first)</h2>"
                  + table(per_prompt, links) + f"<p>{nxt}</p>")


def _int(p: dict, key: str, default: int | None = 0) -> int | None:
    v = p.get(key, "")
    try:
        return int(v) if v != "" else default
    except ValueError:
        raise InputError(f"{key} must be an integer, got {v!r}", path=key) from None


def _float(p: dict, key: str) -> float | None:
    v = p.get(key, "")
    try:
        return float(v) if v != "" else None
    except ValueError:
        raise InputError(f"{key} must be a number, got {v!r}", path=key) from None


# --- app ----------------------------------------------------------------------------------------
def make_app(store: Store, *, warm: bool = False, wait: float = 30.0):
    """The FastAPI app over one store; handlers are sync (run in uvicorn's thread pool), each
    with its own DuckDB cursor. `warm`: index every run and open the SQL box's connection in
    a background thread at once, so the first page does not wait for it; `wait`: seconds a
    page waits for an index being built before it shows the progress instead."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, PlainTextResponse, Response

    app = FastAPI(title="r1data", docs_url=None, redoc_url=None, openapi_url=None)
    ix = StoreIndex(store, wait=wait)
    cache = query.Cached(store)
    plots = Plots(ix)

    def warm_up() -> None:
        for run in store.runs():
            try:
                ix.ensure(run, wait=24 * 3600)
            except (Building, InputError):
                pass  # the page shows it
        cache.cursor()  # the views, bound once
        try:
            plots.page()  # drawn once the index is there (matplotlib's import is ~0.5 s)
        except (Building, InputError):
            pass

    if warm:
        threading.Thread(target=warm_up, daemon=True, name="r1data-serve-warm").start()

    @app.middleware("http")
    async def headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def page(render):
        def handler(request: Request):
            try:
                out = render(dict(request.query_params))
            except InputError as e:
                return HTMLResponse(layout("Error", f'<p class="error">{esc(e)}</p>'), 400)
            except Building as e:
                return HTMLResponse(building_page(str(e)), 202)
            except duckdb.Error as e:  # a shard removed under the index: the next load redoes
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                return HTMLResponse(layout("Error", f'<p class="error">{esc(msg)}</p>'), 500)
            text, status = out if isinstance(out, tuple) else (out, 200)
            return HTMLResponse(text, status)
        handler.__annotations__["request"] = Request  # a string under `annotations`
        return handler

    app.get("/")(page(lambda p: runs_page(ix)))
    app.get("/prompts")(page(lambda p: prompts_page(ix, p)))
    app.get("/prompt")(page(lambda p: prompt_detail(ix, p)))
    app.get("/compare")(page(lambda p: compare_page(ix, p)))
    app.get("/sql")(page(lambda p: sql_page(cache, p.get("q", ""))))
    app.get("/plots")(page(lambda p: plots.page()))

    @app.get("/sql.csv")
    def sql_csv(q: str = ""):
        try:
            frame = cache.run(q).pl()
        except InputError as e:
            return PlainTextResponse(f"error: {e}\n", 400)
        return Response(frame.write_csv(), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="query.csv"'})

    @app.get("/app.css")
    def css():
        return Response(CSS, media_type="text/css")

    @app.get("/app.js")
    def js():
        return Response(JS, media_type="text/javascript")

    return app


def serve(store: Store, port: int = PORT) -> None:
    """Serve until interrupted, on 127.0.0.1 only; uvicorn runs in this process (no workers,
    no reloader), so nothing outlives it."""
    import uvicorn

    uvicorn.run(make_app(store, warm=True, wait=0.5), host=HOST, port=port,
                log_level="warning", workers=None)
