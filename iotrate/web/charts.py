"""Small charts drawn on the server as inline SVG: the page needs no script and no chart
library, and the drawing is testable as text.

Only numbers, grade letters, dates and escaped links go into the SVG; grade colours are the
label's (:data:`iotrate.reports.label.GRADE_COLOURS`), so a grade looks the same on a label, in
a report and here.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from iotrate.models import GRADES
from iotrate.reports.label import GRADE_COLOURS
from iotrate.reports.textfit import xml_escape

from .views import UNRATED, HistoryPoint

UNRATED_COLOUR = "#9AA3AD"
DARK_TEXT = frozenset("CDE")  # light bars (yellow-green to amber) take black letters


def colour(grade: str | None) -> str:
    return str(GRADE_COLOURS.get(grade or "", UNRATED_COLOUR))


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def grade_bar(grades: Sequence[tuple[str, int]], width: float = 200, height: float = 16) -> Markup:
    """One stacked bar of devices per grade, A on the left; empty when there are none."""
    total = sum(n for _, n in grades)
    words = ", ".join(f"{n} {g}" for g, n in grades if n)
    parts = [
        f'<svg class="gradebar" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" '
        f'height="{_n(height)}" role="img" aria-label="{xml_escape(words or "no devices")}">'
    ]
    if total == 0:
        parts.append(
            f'<rect width="{_n(width)}" height="{_n(height)}" rx="3" fill="#E6E9ED"></rect>'
        )
    x = 0.0
    for g, n in grades:
        if not n:
            continue
        w = width * n / total
        parts.append(
            f'<rect x="{_n(x)}" width="{_n(w)}" height="{_n(height)}" fill="{colour(g)}">'
            f"<title>{n} × {xml_escape(g)}</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers, letters and escaped text


def history_chart(points: Sequence[HistoryPoint]) -> Markup:
    """A device's grade per scan over time: A at the top, G (then unrated) at the bottom, one
    dot per scan, spaced by date; each dot links to the device as that scan saw it."""
    rows = [*GRADES, UNRATED]
    w, h = 720.0, 40.0 + 24.0 * len(rows)
    left, right, top = 44.0, 24.0, 14.0
    step = 24.0

    def y(grade: str | None) -> float:
        return top + step * rows.index(grade if grade in GRADES else UNRATED) + step / 2

    times = [p.started or "" for p in points]
    stamps = sorted(set(times))
    span = len(stamps) - 1

    def x(i: int) -> float:
        if span <= 0:
            return left + (w - left - right) / 2
        return left + (w - left - right) * stamps.index(times[i]) / span

    label = "; ".join(f"{p.grade or UNRATED} on {p.started_text}" for p in points)
    out = [
        f'<svg class="history" viewBox="0 0 {_n(w)} {_n(h)}" role="img" '
        f'aria-label="{xml_escape("Grade history: " + (label or "no scans"))}">'
    ]
    for g in rows:
        yy = y(g)
        out.append(
            f'<rect x="{_n(left)}" y="{_n(yy - step / 2 + 1)}" width="{_n(w - left - right)}" '
            f'height="{_n(step - 2)}" rx="3" fill="{colour(g if g in GRADES else None)}" '
            'fill-opacity="0.12"></rect>'
            f'<text x="{_n(left - 12)}" y="{_n(yy + 5)}" text-anchor="middle" class="axis">'
            f"{'?' if g == UNRATED else g}</text>"
        )
    if len(points) > 1:
        coords = " ".join(f"{_n(x(i))},{_n(y(p.grade))}" for i, p in enumerate(points))
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="#0B3C5D" stroke-width="2" '
            'stroke-linejoin="round"></polyline>'
        )
    every = max(1, len(points) // 6)
    for i, p in enumerate(points):
        cx, cy = x(i), y(p.grade)
        letter = p.grade or "?"
        ink = "#000000" if p.grade in DARK_TEXT else "#FFFFFF"
        ring = (
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="14" fill="none" stroke="#0B3C5D" '
            'stroke-width="2"></circle>'
            if p.current
            else ""
        )
        out.append(
            f'<a href="{xml_escape(p.href)}"><title>{xml_escape(p.started_text)}: grade '
            f"{xml_escape(letter)}, {p.findings} findings</title>{ring}"
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="10" fill="{colour(p.grade)}" '
            'stroke="#FFFFFF" stroke-width="1.5"></circle>'
            f'<text x="{_n(cx)}" y="{_n(cy + 4.5)}" text-anchor="middle" class="dot" '
            f'fill="{ink}">{xml_escape(letter)}</text></a>'
        )
        if i % every == 0 or i == len(points) - 1:
            # Dates at the chart's edges are anchored inwards so they are not cut off.
            anchor = "start" if cx - left < 40 else "end" if w - right - cx < 40 else "middle"
            out.append(
                f'<text x="{_n(cx)}" y="{_n(h - 8)}" text-anchor="{anchor}" class="axis">'
                f"{xml_escape((p.started or '')[:10])}</text>"
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - built from numbers, letters and escaped text
