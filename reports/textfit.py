"""Text measuring, fitting and escaping for the SVG label.

Device names, models and firmware strings come from the device itself, so they are both
unbounded and hostile. The label must never let one overflow its box or break out of the SVG.
Widths come from a table of DejaVu Sans advances (``_fontmetrics``) rather than from a font file
opened at run time: the layout is then identical on every machine, testable without fonts, and
matches what cairosvg draws (it places glyphs one by one, without kerning).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

from ._fontmetrics import RANGES

ELLIPSIS = "…"
# DejaVu Sans vertical metrics (hhea ascent 1901, descent 483 of 2048 units per em).
ASCENT = 0.929
DESCENT = 0.236
# A glyph the table does not know is assumed to be a full em wide: a fallback font may draw it
# (CJK, emoji) and overestimating only costs a little space, underestimating overflows.
UNKNOWN_WIDTH = 1000
# Browsers that substitute Verdana or similar draw a few percent wider than DejaVu.
SLACK = 0.97


@cache
def _table(weight: str) -> dict[int, int]:
    table: dict[int, int] = {}
    for start, run in RANGES[weight]:
        for i, w in enumerate(run.split()):
            table[start + i] = int(w)
    return table


def _unprintable(ch: str) -> bool:
    """The one rule, for labels and terminals alike, of what device text may not carry:
    control characters (C0, DEL, C1: ESC, CSI, OSC, BEL, NUL...), format characters (bidi
    overrides, zero-width), line and paragraph separators, surrogates, private-use and
    unassigned code points, non-characters."""
    cp = ord(ch)
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return True
    return (cp & 0xFFFE) == 0xFFFE or 0xFDD0 <= cp <= 0xFDEF


def clean(text: object, limit: int = 512) -> str:
    """Printable text only: what :func:`_unprintable` names is dropped, runs of whitespace
    become one space.

    Bidi overrides could make a label read differently from what the device sent, and XML 1.0
    forbids most control characters outright, so they are removed rather than escaped.
    """
    s = "" if text is None else str(text)
    out: list[str] = []
    for ch in s[: limit * 4]:
        if ch in "\t\n\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif not _unprintable(ch):
            out.append(ch)
    return " ".join("".join(out).split())[:limit]


def terminal_safe(text: str) -> str:
    """``text`` as it may reach a terminal: line feeds and tabs kept, everything
    :func:`_unprintable` names dropped. Every line the CLI prints passes through here (see
    ``iotrate.cli.console``), so an escape sequence in a device's answer can never move the
    cursor, retitle the window, plant a hyperlink or reorder what the user reads."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if ch in "\n\t" or not _unprintable(ch))


def json_safe(text: str) -> str:
    """A JSON document with every character :func:`_unprintable` names written as a ``\\u``
    escape: the same JSON value (so digests and parsers agree), safe to print on a terminal."""
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        if ch in "\n\t" or not _unprintable(ch):
            out.append(ch)
            continue
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            out.append(f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}")
        else:
            out.append(f"\\u{cp:04x}")
    return "".join(out)


def xml_escape(text: str) -> str:
    """Escape for both XML text and quoted attribute values."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """Advance width of ``text`` at font ``size`` (same unit as ``size``)."""
    table = _table("bold" if bold else "regular")
    units = 0
    for ch in text:
        w = table.get(ord(ch))
        if w is None:
            w = 0 if unicodedata.combining(ch) else UNKNOWN_WIDTH
        units += w
    return units * size / 1000


@dataclass(frozen=True)
class Fitted:
    text: str
    size: float
    truncated: bool

    def width(self, *, bold: bool = False) -> float:
        return text_width(self.text, self.size, bold=bold)


def fit(
    text: str, max_width: float, size: float, *, bold: bool = False, min_size: float | None = None
) -> Fitted:
    """Fit ``text`` into ``max_width``: shrink the font down to ``min_size``, then cut the text
    and end it with an ellipsis. Shrinking first keeps a moderately long model name whole."""
    room = max_width * SLACK
    floor = size if min_size is None else min(min_size, size)
    if text_width(text, size, bold=bold) <= room:
        return Fitted(text, size, False)
    natural = text_width(text, 1.0, bold=bold)
    shrunk = room / natural if natural else size
    if shrunk >= floor:
        return Fitted(text, shrunk, False)
    # Longest prefix that fits with the ellipsis, found by bisection (width is monotone).
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + ELLIPSIS, floor, bold=bold) <= room:
            lo = mid
        else:
            hi = mid - 1
    return Fitted(text[:lo].rstrip() + ELLIPSIS, floor, True)
