"""The HTML report renders offline in headless Chromium with every plot present."""

import json
import shutil
import subprocess

import pytest

from r1data.report import render
from tests.core.test_query import fill


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: scripts/setup.sh installs it"
    return path


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_report_has_every_section_and_no_remote_resources(store, tmp_path):
    fill(store, {0: 0, 1: 3, 2: 8})
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "reward": s / 10, "kl": s / 100,
                                       "loss": 1 / (s + 1)}) + "\n" for s in range(10)))
    out = render(store, tmp_path / "report.html", [log])
    page = out.read_text()
    for section in ("funnel", "pass_rate", "lengths", "language", "training"):
        assert f'data-plot="{section}"><svg' in page
    import re

    # nothing fetched from a network: no remote src/href/url(), no external script or style
    assert not re.search(r"(src|href)\s*=\s*[\"']https?:|url\(\s*[\"']?https?:|<link|<script",
                         page)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(store, tmp_path):
    fill(store, {0: 1, 1: 4})
    out = render(store, tmp_path / "report.html")
    profile = tmp_path / "profile"
    dom = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                          f"file://{out}"], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") >= 4  # funnel, pass rate, lengths, language (training: no logs)
    assert 'data-plot="funnel"><svg' in dom
    shot = tmp_path / "report.png"
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1100,1600", f"file://{out}"], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
