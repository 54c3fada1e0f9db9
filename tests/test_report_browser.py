"""The HTML report rendered by a real headless browser (Debian's chromium).

Runs by default where chromium is installed (``./install.sh test`` installs it), skips
otherwise. The page marks itself ``data-images="loaded/total"`` once the browser has decoded
its figures; every figure must have decoded (naturalWidth > 0). The screenshot is kept next
to the report (``report.png``) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import _runkit

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).exists()),
                None)
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
              pytest.mark.filterwarnings(_runkit.EXACT_BELOW_ZERO)]

#: distributions, birth year, sex, genomic gain, convergence, exact check, timings
FIGURES = 7


def _chromium(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp() / "runkit"
    base.mkdir(exist_ok=True)
    return _runkit.reference(base) / "report.html"


def test_report__renders_with_every_figure_decoded(report, tmp_path):
    html = report.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    assert html.count("<img") == FIGURES
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'<body[^>]*data-images="(\d+)/(\d+)"', dom.stdout)
    assert m is not None, "the page's load script did not run"
    assert int(m.group(1)) == int(m.group(2)) == FIGURES
    for section in ("Reliability of genotyped and non-genotyped animals",
                    "Mean reliability by birth year", "Mean reliability by sex",
                    "Gain from genomics for young animals", "Convergence of the iteration",
                    "Approximate vs exact reliabilities", "Genotype quality control",
                    "Stage timings"):
        assert section in dom.stdout, section


def test_report__screenshot(report, tmp_path):
    png = report.with_name("report.png")
    shot = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,3000",
                     report.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 3000)
    assert len(data) > 100_000  # figures drawn, not a blank page
