"""Is the answer on the report's first screen? Checked in a real browser (headless Chromium).

:func:`first_screen_check` opens a copy of report.html at a 1280 x 900 window with a small script that
measures, after the page has loaded (figures included), where the answer paragraph, the
primary-endpoint table and the lead figure sit, and writes the numbers into the DOM, which Chromium's
``--dump-dom`` returns. Optionally it also saves a screenshot of that first screen. The report itself is
not changed. :func:`markdown_lead` checks the same for report.md: the answer in the first 40 lines and at
most 15 lines of flags there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
ANCHORS = ("answer", "primary", "lead-figure")
_PROBE = """<script>
window.addEventListener("load", () => {
  const box = (id) => { const e = document.getElementById(id); if (!e) return null;
    const r = e.getBoundingClientRect(); return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY}; };
  const out = {viewport_width: window.innerWidth, viewport_height: window.innerHeight};
  for (const id of %s) out[id] = box(id);
  const pre = document.createElement("pre"); pre.id = "first-screen-probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False)


def first_screen_check(
    html_path: str | Path, width: int = 1280, height: int = 900, screenshot: str | Path | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:  # fmt: skip
    """Lay out ``html_path`` in headless Chromium at ``width`` x ``height`` and say what is on the first screen.

    Returns the measured boxes (``answer``, ``primary``, ``lead-figure``: ``{"top", "bottom"}`` in CSS px
    from the page top, None when the element is missing), ``viewport_width``/``viewport_height`` and
    ``answer_on_first_screen``: True when the answer paragraph and the primary table both end within
    the first screen (``height`` px, or the browser's viewport height if smaller). ``screenshot``: also
    save a PNG of the first screen there. Raises RuntimeError naming the file when no browser is
    installed or the page cannot be measured.
    """
    browser = find_browser()
    if browser is None:
        raise RuntimeError(f"{html_path}: no Chromium browser on PATH ({', '.join(BROWSERS)})")
    page = Path(html_path).read_text(encoding="utf-8")
    probe = _PROBE % json.dumps(list(ANCHORS))
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "probe.html"
        probed.write_text(page.replace("</body>", probe + "</body>", 1), encoding="utf-8")
        window = f"--window-size={width},{height}"
        proc = _run(browser, [window, "--dump-dom", probed.as_uri()], timeout)
        found = re.search(r'<pre id="first-screen-probe">(.*?)</pre>', proc.stdout, re.S)
        if not found:
            raise RuntimeError(f"{html_path}: Chromium did not report the layout (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-300:]}")  # fmt: skip
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            _run(browser, [window, f"--screenshot={shot}", Path(html_path).resolve().as_uri()], timeout)
            if not shot.is_file():
                raise RuntimeError(f"{html_path}: Chromium wrote no screenshot to {shot}")
    result: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    screen = min(height, result["viewport_height"])
    on_screen = [result.get(a) is not None and result[a]["bottom"] <= screen for a in ANCHORS[:2]]
    result["answer_on_first_screen"] = all(on_screen)
    return result


def markdown_lead(md: str, lines: int = 40) -> dict[str, Any]:
    """What the first ``lines`` lines of report.md hold: ``answer_line`` (1-based line of the paragraph
    starting "We compared", None if not there), ``primary_table_line`` (the primary-endpoint table's
    header), ``flag_lines`` (bullet lines of the Flags section among them) and ``answer_in_lead``."""
    head = md.splitlines()[:lines]
    answer = next((i + 1 for i, line in enumerate(head) if line.startswith("We compared ")), None)
    table = next((i + 1 for i, line in enumerate(head) if line.startswith("| Primary endpoint |")), None)
    in_flags, flag_lines = False, 0
    for line in head:
        if line.startswith("## "):
            in_flags = line == "## Flags"
        elif in_flags and line.startswith("- "):
            flag_lines += 1
    return {"answer_line": answer, "primary_table_line": table, "flag_lines": flag_lines,
            "answer_in_lead": answer is not None and table is not None}  # fmt: skip
