"""`r1data report`: one self-contained HTML page (inline SVG plots, no CDN) over a store.

The numbers come from the SQL reports of `sql/`; the page only draws them.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from pathlib import Path

from r1data import query
from r1data.store import Store

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th{background:#f4f4f4}figure{margin:1em 0}
.empty{color:#888;font-style:italic}"""


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _table(rows: list[dict], limit: int = 30) -> str:
    if not rows:
        return '<p class="empty">no rows</p>'
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols)
                   + "</tr>" for r in rows[:limit])
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(name: str, title: str, svg: str | None, rows: list[dict]) -> str:
    plot = svg if svg else '<p class="empty">nothing to plot yet</p>'
    return (f'<section id="{name}"><h2>{html.escape(title)}</h2>'
            f'<figure class="plot" data-plot="{name}">{plot}</figure>{_table(rows)}</section>')


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def funnel_section(store: Store) -> str:
    rows = query.run(store, query.report_sql("funnel")).pl().to_dicts()
    svg = None
    if rows:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.35 * len(rows)))
        labels = [f"{r['run']} · {r['source']} · {r['outcome']}" for r in rows]
        colors = ["#2a9d8f" if r["outcome"] == "kept" else "#e76f51" for r in rows]
        ax.barh(labels[::-1], [r["samples"] for r in rows][::-1], color=colors[::-1])
        ax.set_xlabel("samples")
        svg = _svg(fig)
    return _figure("funnel", "Rejection-sampling funnel", svg, rows)


def pass_rate_section(store: Store) -> str:
    stats = query.run(store, "SELECT run, n_correct / n AS pass_rate FROM prompt_stats "
                             "WHERE n_verified > 0").pl()
    rows = query.run(store, query.report_sql("pass_rate")).pl().to_dicts()
    svg = None
    if stats.height:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for run in stats["run"].unique().sort():
            ax.hist(stats.filter(stats["run"] == run)["pass_rate"].to_list(), bins=20,
                    range=(0, 1), alpha=0.6, label=run)
        ax.set_xlabel("pass rate of a prompt over its samples")
        ax.set_ylabel("prompts")
        ax.legend()
        svg = _svg(fig)
    return _figure("pass_rate", "Per-prompt pass rate", svg, rows)


def lengths_section(store: Store) -> str:
    data = query.run(store, """
        SELECT CASE WHEN v.keep IS NULL THEN 'unfiltered' WHEN v.keep THEN 'kept'
                    ELSE 'rejected' END AS verdict, s.num_tokens
        FROM samples s LEFT JOIN verdicts v USING (run, prompt_id, sample_idx)
        WHERE s.num_tokens IS NOT NULL""").pl()
    rows = query.run(store, query.report_sql("lengths")).pl().to_dicts()
    svg = None
    if data.height:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for verdict in data["verdict"].unique().sort():
            ax.hist(data.filter(data["verdict"] == verdict)["num_tokens"].to_list(), bins=30,
                    alpha=0.6, label=verdict)
        ax.set_xlabel("completion tokens")
        ax.set_ylabel("samples")
        ax.legend()
        svg = _svg(fig)
    return _figure("lengths", "Length distribution by verdict", svg, rows)


def language_section(store: Store) -> str:
    rows = query.run(store, "SELECT coalesce(lang, 'unknown') AS lang, count(*) AS samples, "
                            "round(avg(lang_consistency), 3) AS mean_consistency FROM verdicts "
                            "GROUP BY ALL ORDER BY samples DESC").pl().to_dicts()
    svg = None
    if rows:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar([r["lang"] for r in rows[:15]], [r["samples"] for r in rows[:15]],
               color="#264653")
        ax.set_ylabel("samples (final answer language)")
        svg = _svg(fig)
    return _figure("language", "Language mix", svg, rows)


def training_section(logs: list[Path]) -> str:
    """Reward and KL curves from trainers' JSONL metric files."""
    series: dict[str, list[dict]] = {}
    for p in logs:
        if not p.exists():
            continue
        recs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        series[p.parent.name or p.name] = recs
    svg, rows = None, []
    keys = ("reward", "kl", "loss")
    if any(series.values()):
        plt = _plt()
        fig, axes = plt.subplots(1, 3, figsize=(11, 3))
        for name, recs in series.items():
            for ax, key in zip(axes, keys, strict=True):
                pts = [(r.get("step", i), r[key]) for i, r in enumerate(recs)
                       if isinstance(r.get(key), (int, float))]
                if pts:
                    ax.plot(*zip(*pts, strict=True), label=name)
                    ax.set_title(key)
                    ax.set_xlabel("step")
        axes[0].legend(fontsize=7)
        svg = _svg(fig)
        for name, recs in series.items():
            last = recs[-1] if recs else {}
            rows.append({"run": name, "steps": len(recs),
                         **{k: last.get(k) for k in keys if k in last}})
    return _figure("training", "Training curves (reward, KL, loss)", svg, rows)


def render(store: Store, out: str | Path, train_logs: list[str | Path] | None = None) -> Path:
    """Write the report page; every section renders, empty or not."""
    out = Path(out)
    sections = [funnel_section(store), pass_rate_section(store), lengths_section(store),
                language_section(store),
                training_section([Path(p) for p in train_logs or []])]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>r1data report</title>"
            f"<style>{CSS}</style></head><body><h1>r1data report</h1>"
            f"<p>store <code>{html.escape(str(store.root))}</code> · {now}</p>"
            + "".join(sections) + "</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
