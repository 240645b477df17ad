"""Report rendering: number formatting, Markdown and HTML output, settings validation."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from misalign_fv.report import ReportInputError
from misalign_fv.report.compose import fmt, fmt_est, fmt_p
from misalign_fv.report.config import ReportSettings
from misalign_fv.report.render import Bullets, Heading, Image, Paragraph, Table, png_size, to_html, to_markdown


def test_number_formats() -> None:
    assert fmt(-0.031234) == "-0.0312"
    assert fmt(0.5) == "0.500"
    assert fmt(1234.56) == "1234.6" and fmt(65.234) == "65.2" and fmt(0.0) == "0"
    assert fmt(np.nan) == "n/a"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.04567) == "0.046" and fmt_p(np.nan) == "n/a"
    assert fmt_est(0.25, 0.1, 0.4) == "0.250 [0.100, 0.400]"
    assert fmt_est(0.25, np.nan, np.nan) == "0.250"


def test_markdown_and_html(tmp_path: Path) -> None:
    mpimg.imsave(tmp_path / "fig.png", np.zeros((20, 30)))
    png = (tmp_path / "fig.png").read_bytes()
    blocks = [
        Heading(2, "Results"),
        Paragraph("a < b & c", anchor="answer"),
        Bullets(("one", "two")),
        Table(("name", "value"), (("x|y", "1"),), anchor="primary"),
        Image("fig.png", "fig.pdf", "A caption", anchor="lead-figure"),
    ]
    md = to_markdown(blocks)
    assert md == (
        "## Results\n\na < b & c\n\n- one\n- two\n\n| name | value |\n|---|---|\n| x\\|y | 1 |\n\n"
        "![A caption](fig.png)\n\n*A caption* ([PDF](fig.pdf))\n"
    )
    html = to_html(blocks, "T & t", tmp_path)
    assert "<title>T &amp; t</title>" in html and '<p id="answer">a &lt; b &amp; c</p>' in html
    assert f'<figure id="lead-figure"><img alt="A caption" width="30" height="20" src="data:image/png;base64,{base64.b64encode(png).decode()}">' in html
    assert '<table id="primary">' in html and "<td>x|y</td>" in html
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(20))


def test_settings_errors_name_the_key() -> None:
    raw = {
        "model": "m", "task": "t", "conditions": ["a", "shuffled"], "seeds": [0], "steps": 1, "hardware": "h",
        "control": "shuffled", "positive_control": None, "primary": [{"benchmark": "b", "metric": "m"}],
        "coverage_threshold": 0.8, "gpus_per_rule": {}, "headline_metrics": {}, "alpha": 0.05, "power": 0.8,
    }  # fmt: skip
    cfg = ReportSettings.from_mapping(raw)
    assert cfg.treatments == ("a",) and cfg.checkpoints() == ["base", "dpo", "a/seed0", "shuffled/seed0"]
    with pytest.raises(ReportInputError, match=r"^settings: control 'ctl' is not among conditions"):
        ReportSettings.from_mapping({**raw, "control": "ctl"})
    with pytest.raises(ReportInputError, match=r"^settings: missing key 'alpha'$"):
        ReportSettings.from_mapping({k: v for k, v in raw.items() if k != "alpha"})
