"""A small document model rendered two ways: Markdown (figures linked) and self-contained HTML
(figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    """A section heading."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text; ``anchor`` becomes its HTML id."""

    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Bullets:
    """An unordered list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells; ``anchor`` becomes its HTML id."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    anchor: str = ""


@dataclass(frozen=True)
class Image:
    """A figure: a PNG shown inline, its PDF linked, and a caption; ``anchor`` becomes its HTML id."""

    png: str
    pdf: str
    caption: str
    anchor: str = ""


Block = Heading | Paragraph | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render ``blocks`` as GitHub-flavoured Markdown; image paths stay relative."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Paragraph):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
        else:
            parts.append(f"![{_md_cell(b.caption)}]({b.png})\n\n*{b.caption}* ([PDF]({b.pdf}))")
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #111; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; }
figure#lead-figure img { max-height: 420px; width: auto; }
figcaption { font-style: italic; font-size: 0.9em; }
h1 { font-size: 1.6em; margin: 0.4em 0; }
p#answer { line-height: 1.4; }
table#primary { font-size: 0.85em; margin: 0.5em 0; }
table#primary td { white-space: nowrap; padding: 0.1em 0.5em; }
table#primary td:last-child { white-space: normal; }
"""


def _id(anchor: str) -> str:
    return f' id="{html.escape(anchor)}"' if anchor else ""


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels from a PNG's IHDR chunk; ValueError if ``data`` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def to_html(blocks: Sequence[Block], title: str, figure_dir: Path) -> str:
    """Render ``blocks`` as one self-contained HTML page; PNGs are read from ``figure_dir`` and embedded."""
    e = html.escape
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            parts.append(f"<p{_id(b.anchor)}>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>\n" + "\n".join(f"<li>{e(i)}</li>" for i in b.items) + "\n</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table{_id(b.anchor)}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>")
        else:
            raw = (figure_dir / b.png).read_bytes()
            width, height = png_size(raw)
            data = base64.b64encode(raw).decode("ascii")
            parts.append(
                f'<figure{_id(b.anchor)}><img alt="{e(b.caption)}" width="{width}" height="{height}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{e(b.caption)}</figcaption></figure>"
            )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
