"""Retail print sheets: many labels laid out on A4/A3/Letter pages, one label per model.

A shop prints labels for a shelf of models, not for each unit scanned, so results are reduced to
one device per (vendor, model), the most recently tested one winning. Labels are placed at
their true size with cut marks, so a printed label measures exactly 96 x 192 mm (or the sticker
size) when the PDF is printed at 100 %.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from iotrate.errors import UsageError

from .label import FONT, LABEL_SIZES, LabelData, Size, _cairosvg, _n, label_body

SHEETS: dict[str, tuple[float, float]] = {
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
    "LETTER": (215.9, 279.4),
}
MARGIN = 5.0  # most office printers cannot print the outer 4-5 mm
GAP = 4.0  # room for cut marks between labels
MARK = 2.5


@dataclass(frozen=True)
class Grid:
    sheet: str
    page_w: float
    page_h: float
    cols: int
    rows: int
    label_w: float
    label_h: float

    @property
    def per_page(self) -> int:
        return self.cols * self.rows

    def origin(self, slot: int) -> tuple[float, float]:
        """Top-left corner of label ``slot`` on a page; the grid is centred on the page."""
        used_w = self.cols * self.label_w + (self.cols - 1) * GAP
        used_h = self.rows * self.label_h + (self.rows - 1) * GAP
        x0 = (self.page_w - used_w) / 2
        y0 = (self.page_h - used_h) / 2
        r, c = divmod(slot, self.cols)
        return x0 + c * (self.label_w + GAP), y0 + r * (self.label_h + GAP)


def grid(sheet: str, size: Size = "full") -> Grid:
    key = sheet.upper()
    if key not in SHEETS:
        raise UsageError(f"sheet must be one of {', '.join(SHEETS)}")
    page_w, page_h = SHEETS[key]
    label_w, label_h = LABEL_SIZES[size]
    cols = int((page_w - 2 * MARGIN + GAP) // (label_w + GAP))
    rows = int((page_h - 2 * MARGIN + GAP) // (label_h + GAP))
    if cols < 1 or rows < 1:
        raise UsageError(f"a {size} label does not fit on {key}")
    return Grid(key, page_w, page_h, cols, rows, label_w, label_h)


def pages(n: int, g: Grid) -> list[list[int]]:
    """Label indices per page: ceil(n / per_page) pages, the last one possibly partial."""
    return [list(range(i, min(i + g.per_page, n))) for i in range(0, n, g.per_page)]


def page_count(n: int, g: Grid) -> int:
    return math.ceil(n / g.per_page)


def _cut_marks(x: float, y: float, w: float, h: float) -> str:
    d = []
    for cx, sx in ((x, -1), (x + w, 1)):
        for cy, sy in ((y, -1), (y + h, 1)):
            d.append(f"M{_n(cx + sx * 0.8)} {_n(cy)}h{_n(sx * MARK)}")
            d.append(f"M{_n(cx)} {_n(cy + sy * 0.8)}v{_n(sy * MARK)}")
    return f'<path d="{"".join(d)}" stroke="#777777" stroke-width="0.15" fill="none"/>'


def page_svg(labels: list[LabelData], g: Grid, size: Size) -> str:
    parts = []
    for slot, data in enumerate(labels):
        x, y = g.origin(slot)
        parts.append(_cut_marks(x, y, g.label_w, g.label_h))
        parts.append(f'<g transform="translate({_n(x)} {_n(y)})">{label_body(data, size)}</g>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_n(g.page_w)}mm" '
        f'height="{_n(g.page_h)}mm" viewBox="0 0 {_n(g.page_w)} {_n(g.page_h)}" '
        f'font-family="{FONT}">{"".join(parts)}</svg>\n'
    )


def one_per_model(items: Iterable[LabelData]) -> list[LabelData]:
    """The newest label of each (vendor, model), sorted by vendor then model for a stable
    print order. Unidentified devices have no model to share, so each keeps its own label."""
    best: dict[tuple[str, str], LabelData] = {}
    for d in items:
        key = (d.vendor.casefold(), d.model.casefold())
        if d.model.startswith("Unidentified "):
            key = (key[0], f"{key[1]}\0{d.device_id}")
        old = best.get(key)
        if old is None or (d.tested or date.min) > (old.tested or date.min):
            best[key] = d
    return [best[k] for k in sorted(best)]


def render_pdf(labels: list[LabelData], sheet: str = "A4", size: Size = "full") -> bytes:
    """All labels on as many pages as needed, as one PDF."""
    if not labels:
        raise UsageError("no labels to print")
    g = grid(sheet, size)
    cairosvg = _cairosvg()
    cairocffi: Any = cairosvg.surface.cairo
    out = io.BytesIO()
    pt = 72 / 25.4
    target = cairocffi.PDFSurface(out, g.page_w * pt, g.page_h * pt)

    class _Page(cairosvg.surface.PDFSurface):  # type: ignore[misc, name-defined]
        """cairosvg draws one SVG per surface; drawing each page onto one shared cairo PDF
        surface gives a multi-page PDF without another PDF library."""

        def _create_surface(self, width: float, height: float) -> tuple[Any, float, float]:
            return target, width, height

        def finish(self) -> None:
            target.show_page()

    for idx in pages(len(labels), g):
        svg = page_svg([labels[i] for i in idx], g, size)
        tree = cairosvg.parser.Tree(bytestring=svg.encode("utf-8"))
        _Page(tree, None, 96).finish()
    target.finish()
    return out.getvalue()
