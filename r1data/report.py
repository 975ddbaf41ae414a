"""`r1data report`: one self-contained HTML page (inline SVG plots, no CDN) over a store.

The numbers come from the SQL reports of `sql/`; the page only draws them.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
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


# The four store plots are drawn from plain rows, so that the report (over the views) and
# `r1data serve`'s /plots (over its index's aggregates) draw them by one code path.


def funnel_figure(rows: list[dict]) -> str:
    """sql/funnel.sql's rows as bars: kept in green, every reject reason in red."""
    svg = None
    if rows:
        fig, ax = _plt().subplots(figsize=(8, 0.5 + 0.35 * len(rows)))
        labels = [f"{r['run']} · {r['source']} · {r['outcome']}" for r in rows]
        colors = ["#2a9d8f" if r["outcome"] == "kept" else "#e76f51" for r in rows]
        ax.barh(labels[::-1], [r["samples"] for r in rows][::-1], color=colors[::-1])
        ax.set_xlabel("samples")
        svg = _svg(fig)
    return _figure("funnel", "Rejection-sampling funnel", svg, rows)


def _histograms(points: list[dict], by: str, value: str, xlabel: str, ylabel: str,
                **hist) -> str | None:
    """One overlaid histogram of `value` per distinct `by` (sorted), each point weighted by
    its "samples" (1 where absent): the report and serve pass counted or single points."""
    if not points:
        return None
    fig, ax = _plt().subplots(figsize=(8, 3.2))
    for key in sorted({r[by] for r in points}):
        got = [r for r in points if r[by] == key]
        ax.hist([r[value] for r in got], weights=[r.get("samples", 1) for r in got],
                alpha=0.6, label=key, **hist)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return _svg(fig)


def pass_rate_figure(rows: list[dict], stats: list[dict]) -> str:
    """sql/pass_rate.sql's rows, and a histogram per run of its prompts' pass rates."""
    svg = _histograms(stats, "run", "pass_rate", "pass rate of a prompt over its samples",
                      "prompts", bins=20, range=(0, 1))
    return _figure("pass_rate", "Per-prompt pass rate", svg, rows)


def lengths_figure(rows: list[dict], hist: list[dict]) -> str:
    """sql/lengths.sql's rows, and a histogram per verdict of completion tokens (`hist`:
    verdict, num_tokens, samples)."""
    svg = _histograms(hist, "verdict", "num_tokens", "completion tokens", "samples", bins=30)
    return _figure("lengths", "Length distribution by verdict", svg, rows)


def language_figure(rows: list[dict]) -> str:
    """Samples by the language of their final answer, the 15 commonest as bars."""
    svg = None
    if rows:
        fig, ax = _plt().subplots(figsize=(8, 3))
        ax.bar([r["lang"] for r in rows[:15]], [r["samples"] for r in rows[:15]],
               color="#264653")
        ax.set_ylabel("samples (final answer language)")
        svg = _svg(fig)
    return _figure("language", "Language mix", svg, rows)


def funnel_section(store: Store) -> str:
    return funnel_figure(query.run(store, query.report_sql("funnel")).pl().to_dicts())


def pass_rate_section(store: Store) -> str:
    stats = query.run(store, "SELECT run, n_correct / n AS pass_rate FROM prompt_stats "
                             "WHERE n_verified > 0").pl().to_dicts()
    return pass_rate_figure(query.run(store, query.report_sql("pass_rate")).pl().to_dicts(),
                            stats)


def lengths_section(store: Store) -> str:
    hist = query.run(store, """
        SELECT CASE WHEN v.keep IS NULL THEN 'unfiltered' WHEN v.keep THEN 'kept'
                    ELSE 'rejected' END AS verdict, s.num_tokens, count(*) AS samples
        FROM samples s LEFT JOIN verdicts v USING (run, prompt_id, sample_idx)
        WHERE s.num_tokens IS NOT NULL GROUP BY ALL""").pl().to_dicts()
    return lengths_figure(query.run(store, query.report_sql("lengths")).pl().to_dicts(), hist)


def language_section(store: Store) -> str:
    return language_figure(query.run(store, (
        "SELECT coalesce(lang, 'unknown') AS lang, count(*) AS samples, "
        "round(avg(lang_consistency), 3) AS mean_consistency FROM verdicts "
        "GROUP BY ALL ORDER BY samples DESC")).pl().to_dicts())


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


_EXAM_RUN = re.compile(r"^exam-(.+)-(suffix|plain)$")


def exam_scores(store: Store, labels: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """label -> {'suffix': scores, 'plain': scores} from the exam's eval manifests
    (r1data.exam.evaluate_exam): the given labels in their order, else every examined one."""
    found: dict[str, dict[str, dict]] = {}
    for run in store.runs():
        m = _EXAM_RUN.match(run)
        rec = store.read_manifest("eval", run) if m else None
        if rec and "pass_at_1" in rec and "ci95" in rec:
            found.setdefault(m.group(1), {})[m.group(2)] = rec
    order = labels if labels is not None else sorted(found)
    return {lb: found[lb] for lb in order if len(found.get(lb, {})) == 2}


def exam_section(store: Store, labels: list[str] | None = None) -> str:
    """The held-out exam: pass@1 per model with and without the R1 suffix, 95% CI whiskers."""
    data = exam_scores(store, labels)
    rows = [{"model": lb, "with suffix": f"{d['suffix']['pass_at_1']:.3f} "
             f"[{d['suffix']['ci95'][0]:.3f}, {d['suffix']['ci95'][1]:.3f}]",
             "format (suffix)": d["suffix"]["format_rate"],
             "last answer (suffix)": d["suffix"]["last_answer"],
             "without suffix": f"{d['plain']['pass_at_1']:.3f} "
             f"[{d['plain']['ci95'][0]:.3f}, {d['plain']['ci95'][1]:.3f}]",
             "format (plain)": d["plain"]["format_rate"],
             "last answer (plain)": d["plain"]["last_answer"],
             "prompts × k": f"{d['suffix']['prompts']} × {d['suffix']['k']}"}
            for lb, d in data.items()]
    svg = None
    if data:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(data) + 2), 3.2))
        x = list(range(len(data)))
        for off, key, color in ((-0.2, "suffix", "#2a9d8f"), (0.2, "plain", "#e9c46a")):
            vals = [d[key]["pass_at_1"] for d in data.values()]
            err = [[max(0.0, v - d[key]["ci95"][0]) for v, d in zip(vals, data.values(),
                                                                   strict=True)],
                   [max(0.0, d[key]["ci95"][1] - v) for v, d in zip(vals, data.values(),
                                                                   strict=True)]]
            ax.bar([i + off for i in x], vals, width=0.4, yerr=err, capsize=3, color=color,
                   label="with the R1 suffix" if key == "suffix" else "without it")
        ax.set_xticks(x, list(data))
        ax.set_ylabel("exam pass@1 (95% CI)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        svg = _svg(fig)
    return _figure("exam", "Held-out exam", svg, rows)


_STEP = re.compile(r"^(.+)_step(\d+)$")


def exam_curve_section(store: Store, curves: dict[str, dict] | None) -> str:
    """GRPO's exam every N steps beside its reward curve: `curves` maps a policy's label to
    {"log": its metrics.jsonl, "start": the label of the model RL started from (step 0),
    "steps": its last step (the policy's own exam)}; labels <policy>_step<N> in between."""
    scored = exam_scores(store)
    rows, svg = [], None
    series = {}
    for prefix, c in (curves or {}).items():
        log = c["log"]
        pts = sorted((int(m.group(2)), d) for lb, d in scored.items()
                     if (m := _STEP.match(lb)) and m.group(1) == prefix)
        if c.get("start") in scored:
            pts.insert(0, (0, scored[c["start"]]))
        if prefix in scored and c.get("steps"):
            pts.append((int(c["steps"]), scored[prefix]))
        recs = [json.loads(ln) for ln in Path(log).read_text().splitlines() if ln.strip()] \
            if Path(log).exists() else []
        series[prefix] = (pts, [(r.get("step", i), r["reward"]) for i, r in enumerate(recs)
                                if isinstance(r.get("reward"), (int, float))])
        rows += [{"policy": prefix, "step": step, "pass@1 suffix": d["suffix"]["pass_at_1"],
                  "pass@1 plain": d["plain"]["pass_at_1"],
                  "format suffix": d["suffix"]["format_rate"]} for step, d in pts]
    if any(pts for pts, _ in series.values()):
        plt = _plt()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2), sharex=True)
        for prefix, (pts, reward) in series.items():
            for key, style in (("suffix", "-o"), ("plain", "--s")):
                ys = [d[key]["pass_at_1"] for _, d in pts]
                err = [[y - d[key]["ci95"][0] for y, (_, d) in zip(ys, pts, strict=True)],
                       [d[key]["ci95"][1] - y for y, (_, d) in zip(ys, pts, strict=True)]]
                left.errorbar([s for s, _ in pts], ys, yerr=err, fmt=style, capsize=3,
                              label=f"{prefix} ({'with' if key == 'suffix' else 'without'} "
                                    "suffix)")
            if reward:
                right.plot(*zip(*reward, strict=True), label=prefix)
        left.set_title("exam pass@1 (95% CI)")
        left.set_xlabel("GRPO step")
        left.set_ylim(0, 1)
        left.legend(fontsize=7)
        right.set_title("reward")
        right.set_xlabel("GRPO step")
        right.legend(fontsize=7)
        svg = _svg(fig)
    return _figure("exam_curve", "Exam during RL, beside the reward", svg, rows)


def render(store: Store, out: str | Path, train_logs: list[str | Path] | None = None, *,
           exam_labels: list[str] | None = None,
           exam_curves: dict[str, dict] | None = None) -> Path:
    """Write the report page; every section renders, empty or not. `exam_labels`: the
    examined models in the order to show them (default: every one in the store)."""
    out = Path(out)
    sections = [exam_section(store, exam_labels), funnel_section(store),
                pass_rate_section(store), lengths_section(store), language_section(store),
                training_section([Path(p) for p in train_logs or []])]
    if exam_curves:
        sections.append(exam_curve_section(store, exam_curves))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>r1data report</title>"
            f"<style>{CSS}</style></head><body><h1>r1data report</h1>"
            f"<p>store <code>{html.escape(str(store.root))}</code> · {now}</p>"
            + "".join(sections) + "</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
