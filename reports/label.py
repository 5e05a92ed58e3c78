"""The security label: an SVG drawn like the EU energy label, rendered to PNG and PDF for print.

The SVG is the source of truth; PNG and PDF are cairosvg renderings of it. The layout copies what
buyers already know from the energy label (seven bars from dark green A to red G, a black arrow
with the device's class, supplier and model on top, a QR code to the full record) and puts the
one thing research says buyers weigh most, how long the device gets security updates, right
under the scale. Coverage and "not a certification" are printed because a scanner sees only
the network-observable part of a standard, and a label must not claim more.

Every device string is hostile: it is cleaned of control and bidi characters, fitted to its box
(shrunk, then cut with an ellipsis) using DejaVu Sans advances, and XML-escaped. Every text
element records the box it was fitted to (``data-box``) so tests can check rendered ink against
it. The label's ``<metadata>`` carries the result digest and the QR payload so ``iotrate
verify`` (:mod:`.labelcheck`) can check a label against a result. What a device is called comes
from :mod:`iotrate.naming`, shared with every other view of a device.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from types import ModuleType
from typing import Literal
from urllib.parse import urlsplit

import segno

from iotrate import __version__
from iotrate.errors import RuntimeFailure, UsageError
from iotrate.models import (
    GRADES,
    CategoryStatus,
    Coverage,
    Device,
    EtsiCoverage,
    Grade,
    Rating,
    ScanResult,
)
from iotrate.naming import device_firmware, device_names
from iotrate.probing import budget_cut
from iotrate.signing import result_digest

from .scope import scope_short
from .textfit import ASCENT, DESCENT, clean, fit, xml_escape

Size = Literal["full", "sticker"]
LABEL_SIZES: dict[str, tuple[float, float]] = {"full": (96.0, 192.0), "sticker": (48.0, 96.0)}

# The energy label's class colours (sRGB renderings of its CMYK scale, A dark green to G red).
GRADE_COLOURS: dict[str, str] = {
    "A": "#00A54F",
    "B": "#4CB848",
    "C": "#BFD730",
    "D": "#FFF200",
    "E": "#FDB913",
    "F": "#F37021",
    "G": "#ED1C24",
}
GRADE_WORDS: dict[str, str] = {
    "A": "very good",
    "B": "good",
    "C": "fair",
    "D": "weak",
    "E": "poor",
    "F": "very poor",
    "G": "dangerous",
}
INK = "#1A1A1A"
BLUE = "#0B3C5D"
PASS_COLOUR, FAIL_COLOUR, UNKNOWN_COLOUR = "#00A54F", "#D7191C", "#8A8A8A"
ALERT = "#B3261E"
FONT = "DejaVu Sans, Bitstream Vera Sans, Verdana, sans-serif"
NS = "https://iotrate.invalid/ns/label-1"

# Rows shown when a device has no rating yet, so an unrated label still reads like a label.
DEFAULT_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("passwords", "Default passwords"),
    ("encryption", "Encryption"),
    ("updates", "Updates & support period"),
    ("services", "Exposed services"),
    ("privacy", "Data privacy"),
)
STATUS_WORDS = {
    CategoryStatus.PASS: "passed",
    CategoryStatus.FAIL: "failed",
    CategoryStatus.UNKNOWN: "not tested",
}
# A grade claims only what was measured (scheme 2026.3): a row none of whose checks ran, or
# whose checks could not all run, reads "not tested" in grey, never "passed".


# --- what a label shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    status: CategoryStatus


@dataclass(frozen=True)
class LabelData:
    """Everything one label shows, already cleaned: layout code never sees raw device strings."""

    device_id: str
    vendor: str
    model: str
    firmware: str
    tested: date | None
    grade: Grade | None
    rows: tuple[Row, ...]
    support_until: date | None
    declared: bool
    coverage: Coverage | None
    scheme: str
    digest: str
    qr_payload: str
    tool: str = field(default_factory=lambda: f"iotrate {__version__}")
    transport: str = "network"  # "Bluetooth" for a device rated from its BLE advertisements
    budget: float | None = None  # the --budget (seconds) that stopped the scan of this device
    insufficient: bool = False  # scheme 2026.3: nothing decisive was tested, no letter
    at_best: bool = False  # the grade is an upper bound: part of the scan was left out
    valid_until: date | None = None
    forced: bool = False  # the declaration was applied with --force despite a mismatch
    etsi: EtsiCoverage | None = None
    scope: str = "scope not recorded"  # what the scan covered (ports, UDP, budget cut)

    @property
    def firmware_line(self) -> str:
        """The firmware line, which also says when the device was reached over Bluetooth."""
        prefix = "Bluetooth · " if self.transport == "Bluetooth" else ""
        return f"{prefix}Firmware {self.firmware}"

    @property
    def support_state(self) -> Literal["until", "ended", "unknown"]:
        if self.support_until is None:
            return "unknown"
        if self.tested is not None and self.support_until < self.tested:
            return "ended"
        return "until"


def qr_payload(digest: str, report_url: str | None = None) -> str:
    """What the QR code says: the report's address with the digest as fragment, or, without an
    address, the digest alone in QR alphanumeric form (upper case keeps the code small)."""
    if report_url:
        return f"{report_url.split('#', 1)[0]}#sha256={digest}"
    return f"IOTRATE:SHA256:{digest.upper()}"


def check_report_url(url: str) -> str:
    """Reject report addresses a phone should not be sent to from a printed label."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or len(url) > 300
        or clean(url) != url
        or " " in url
    ):
        raise UsageError(f"--report-url must be an http(s) URL without spaces: {url!r}")
    return url


def scheme_text(rating: Rating | None) -> str:
    """Scheme id and version as one string, without repeating a version the id already has."""
    if rating is None or not rating.scheme_id:
        return ""
    text = clean(rating.scheme_id)
    version = clean(rating.scheme_version)
    if version and version not in text:
        text += f" {version}"
    return text


def tested_on(result: ScanResult) -> date:
    return (result.finished_at or result.started_at).date()


def label_data(
    device: Device,
    result: ScanResult,
    *,
    digest: str | None = None,
    report_url: str | None = None,
) -> LabelData:
    rating = device.rating
    vendor, model = device_names(device)
    if rating is not None and rating.categories:
        rows = tuple(Row(c.id, clean(c.title) or c.id, c.status) for c in rating.categories)
    else:
        rows = tuple(Row(i, t, CategoryStatus.UNKNOWN) for i, t in DEFAULT_CATEGORIES)
    scheme = f"Scheme {scheme_text(rating)}" if scheme_text(rating) else "No rating scheme applied"
    dig = digest or result_digest(result)
    return LabelData(
        device_id=clean(device.id),
        vendor=vendor,
        model=model,
        firmware=device_firmware(device),
        tested=tested_on(result),
        grade=rating.grade if rating is not None else None,
        rows=rows,
        support_until=rating.support_until if rating is not None else None,
        declared=bool(rating is not None and rating.declaration),
        coverage=rating.coverage if rating is not None else None,
        scheme=scheme,
        digest=dig,
        qr_payload=qr_payload(dig, report_url),
        transport="Bluetooth" if device.transport == "bluetooth" else "network",
        budget=budget_cut(device),
        insufficient=bool(rating is not None and rating.status == "insufficient_evidence"),
        at_best=bool(rating is not None and rating.at_best),
        valid_until=rating.valid_until if rating is not None else None,
        forced=bool(rating is not None and rating.declared and rating.declared.forced),
        etsi=rating.coverage.etsi if rating is not None and rating.coverage else None,
        scope=scope_short(result.scope),
    )


# --- SVG drawing ------------------------------------------------------------------------------


def _n(v: float) -> str:
    """Short, stable number formatting so the same label is byte-identical every time."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def qr_path(payload: str) -> tuple[str, int]:
    """The QR code as one path in module units (runs of dark modules), and its width in modules.

    One path instead of one rectangle per module keeps the SVG small, and ``verify`` can redraw
    it from the payload in the metadata to prove the printed code says what the metadata says.
    """
    code = segno.make(payload, error="m", micro=False, boost_error=False)
    matrix = code.matrix
    parts: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return "".join(parts), len(matrix)


# Icons drawn on a 6 x 6 grid, stroked: language-neutral pictograms like the energy label's.
ICONS: dict[str, str] = {
    "key": '<circle cx="1.9" cy="3" r="1.35"/><path d="M3.25 3H5.6M4.5 3v1.25M5.45 3v0.95"/>',
    "lock": '<rect x="1.1" y="2.7" width="3.8" height="2.8" rx="0.45"/>'
    '<path d="M1.85 2.7V1.95a1.15 1.15 0 0 1 2.3 0v0.75M3 3.75v0.75"/>',
    "update": '<path d="M4.95 1.9A2.25 2.25 0 0 0 0.9 2.4M1.05 4.1A2.25 2.25 0 0 0 5.1 3.6"/>'
    '<path d="M5.15 0.75V1.95H3.95M0.85 5.25V4.05H2.05"/>',
    "ports": '<path d="M0.9 5.1V2.1h1V1.1h2.2v1h1v3z"/><path d="M2.2 5.1V4M3 5.1V4M3.8 5.1V4"/>',
    "eye": '<path d="M0.45 3C1.6 1.3 4.4 1.3 5.55 3C4.4 4.7 1.6 4.7 0.45 3z"/>'
    '<circle cx="3" cy="3" r="0.95"/>',
    "shield": '<path d="M3 0.6L5.2 1.4V3c0 1.4-0.9 2.25-2.2 2.75C1.7 5.25 0.8 4.4 0.8 3V1.4z"/>',
}


def icon_for(row: Row) -> str:
    """Pick a pictogram from the category's id and title, so new scheme categories still get
    a sensible picture instead of none."""
    key = f"{row.id} {row.title}".lower()
    for words, icon in (
        (("password", "cred", "auth", "login"), "key"),
        (("crypt", "tls", "cipher", "transport"), "lock"),
        (("update", "support", "patch", "firmware", "vuln"), "update"),
        (("service", "expos", "port", "surface", "interface"), "ports"),
        (("privacy", "data", "personal"), "eye"),
    ):
        if any(w in key for w in words):
            return icon
    return "shield"


class _Svg:
    """Accumulates SVG elements; every piece of text goes through :meth:`text`."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, **extra: str) -> None:
        attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
        self.add(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}"{attrs}/>'
        )

    def line(self, x1: float, y: float, x2: float, width: float = 0.3, colour: str = INK) -> None:
        self.add(
            f'<path d="M{_n(x1)} {_n(y)}H{_n(x2)}" stroke="{colour}" '
            f'stroke-width="{_n(width)}" fill="none"/>'
        )

    def text(
        self,
        x: float,
        y: float,
        content: str,
        size: float,
        width: float,
        *,
        anchor: Literal["start", "middle", "end"] = "start",
        bold: bool = False,
        fill: str = INK,
        min_size: float | None = None,
        stroke: str | None = None,
    ) -> None:
        """Fit ``content`` into ``width`` at baseline ``y``; ``x`` is the anchor point."""
        fitted = fit(clean(content), width, size, bold=bold, min_size=min_size)
        x0 = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        box = f"{_n(x0)} {_n(y - ASCENT * size)} {_n(x0 + width)} {_n(y + DESCENT * size)}"
        weight = ' font-weight="bold"' if bold else ""
        paint = f' fill="{fill}"'
        if stroke:
            paint += f' stroke="{stroke}" stroke-width="{_n(size * 0.09)}" stroke-linejoin="round"'
        anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
        self.add(
            f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(fitted.size)}"{weight}{anchor_attr}'
            f'{paint} data-box="{box}">{xml_escape(fitted.text)}</text>'
        )

    def icon(self, name: str, x: float, y: float, size: float, colour: str = INK) -> None:
        scale = size / 6
        self.add(
            f'<g transform="translate({_n(x)} {_n(y)}) scale({_n(scale)})" fill="none" '
            f'stroke="{colour}" stroke-width="0.55" stroke-linecap="round" '
            f'stroke-linejoin="round">{ICONS[name]}</g>'
        )

    def status(self, status: CategoryStatus, cx: float, cy: float, r: float) -> None:
        colour = {
            CategoryStatus.PASS: PASS_COLOUR,
            CategoryStatus.FAIL: FAIL_COLOUR,
            CategoryStatus.UNKNOWN: UNKNOWN_COLOUR,
        }[status]
        self.add(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" fill="{colour}"/>')
        k = r / 2.5
        w = _n(0.62 * r)
        if status == CategoryStatus.PASS:
            d = (
                f"M{_n(cx - 1.15 * k)} {_n(cy + 0.05 * k)}l{_n(0.8 * k)} {_n(0.8 * k)}"
                f"l{_n(1.55 * k)} {_n(-1.7 * k)}"
            )
        elif status == CategoryStatus.FAIL:
            a = 0.95 * k
            d = (
                f"M{_n(cx - a)} {_n(cy - a)}l{_n(2 * a)} {_n(2 * a)}"
                f"M{_n(cx + a)} {_n(cy - a)}l{_n(-2 * a)} {_n(2 * a)}"
            )
        else:
            # A question mark drawn as a path: no font needed, identical everywhere.
            w = _n(0.45 * r)
            d = (
                f"M{_n(cx - 0.8 * k)} {_n(cy - 0.55 * k)}"
                f"a{_n(0.8 * k)} {_n(0.8 * k)} 0 1 1 {_n(1.37 * k)} {_n(0.57 * k)}"
                f"l{_n(-0.57 * k)} {_n(0.5 * k)}v{_n(0.25 * k)}"
                f"M{_n(cx)} {_n(cy + 1.35 * k)}v0.01"
            )
        self.add(
            f'<path d="{d}" fill="none" stroke="#FFFFFF" stroke-width="{w}" '
            'stroke-linecap="round" stroke-linejoin="round"/>'
        )

    def qr(self, payload: str, x: float, y: float, size: float, quiet: int = 3) -> None:
        d, modules = qr_path(payload)
        unit = size / (modules + 2 * quiet)
        self.rect(x, y, size, size, "#FFFFFF", rx=_n(size * 0.04))
        self.add(
            f'<path class="qr" transform="translate({_n(x + quiet * unit)} '
            f'{_n(y + quiet * unit)}) scale({_n(unit)})" fill="#000000" d="{d}"/>'
        )

    def bar(self, x: float, y: float, w: float, h: float, colour: str) -> None:
        """A scale bar: a rectangle with an arrow point, like the energy label's."""
        tip = h / 2
        self.add(
            f'<path d="M{_n(x)} {_n(y)}H{_n(x + w)}L{_n(x + w + tip)} {_n(y + tip)}'
            f'L{_n(x + w)} {_n(y + h)}H{_n(x)}z" fill="{colour}"/>'
        )

    def arrow(self, x: float, y: float, w: float, h: float, fill: str = "#000000") -> None:
        """The class arrow, pointing left at the scale."""
        tip = h / 2
        self.add(
            f'<path d="M{_n(x)} {_n(y + tip)}L{_n(x + tip)} {_n(y)}H{_n(x + w)}V{_n(y + h)}'
            f'H{_n(x + tip)}z" fill="{fill}"/>'
        )


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _support_lines(data: LabelData) -> tuple[str, str, str]:
    """(lead-in, headline, colour) for the support-period block."""
    if data.support_until is None:
        return "Security update period", "unknown", ALERT
    if data.support_state == "ended":
        return "Security updates ended", _month(data.support_until), ALERT
    return "Security updates until", _month(data.support_until), INK


def _coverage_text(cov: Coverage | None, short: bool = False, budget: float | None = None) -> str:
    """Coverage in topics a reader recognises (the label's rows) when the scheme counts them,
    with the checks behind them; 21 TLS sub-checks are not 21 things tested."""
    if cov is None:
        return "Coverage: not measured"
    pct = round(cov.fraction * 100)
    if cov.rows_total:
        cut = f" — stopped at {budget:g} s budget" if budget else ""
        topics = f"{cov.rows_tested or 0} of {cov.rows_total} topics tested"
        if short:
            return f"{topics} ({cov.checks_run}/{cov.checks_total} checks){cut}"
        return f"Coverage: {topics} ({cov.checks_run} of {cov.checks_total} checks){cut}"
    # A scan cut short by --budget says so, so reduced coverage is not read as a clean bill.
    cut = f" — scan stopped at {budget:g} s budget" if budget else ""
    if short:
        cut = f" — stopped at {budget:g} s budget" if budget else ""
        return f"Coverage {pct} % ({cov.checks_run}/{cov.checks_total} checks){cut}"
    return f"Coverage: {cov.checks_run} of {cov.checks_total} checks tested ({pct} %){cut}"


def _etsi_text(etsi: EtsiCoverage | None) -> str:
    if etsi is None:
        return ""
    return (
        f"ETSI EN 303 645: {etsi.tested} provisions tested, {etsi.partly} partly, "
        f"{etsi.declared} declared, {etsi.not_assessed} not assessed"
    )


def _footer_text(data: LabelData, tool: bool = True) -> str:
    valid = f" · valid until {data.valid_until.isoformat()}" if data.valid_until else ""
    who = f" · {data.tool}" if tool else ""
    return f"{data.scheme}{valid}{who} · sha256 {data.digest[: 16 if tool else 12]}"


def _metadata(data: LabelData, size: str) -> str:
    attrs = {
        "result-sha256": data.digest,
        "device-id": data.device_id,
        "grade": data.grade or "",
        "scheme": data.scheme,
        "size": size,
        "tested": data.tested.isoformat() if data.tested else "",
        "valid-until": data.valid_until.isoformat() if data.valid_until else "",
        "qr-payload": data.qr_payload,
        "generator": data.tool,
    }
    if data.transport == "Bluetooth":
        attrs["transport"] = "bluetooth"
    body = " ".join(f'{k}="{xml_escape(v)}"' for k, v in attrs.items())
    return f'<metadata><ir:label xmlns:ir="{NS}" {body}/></metadata>'


def _title(data: LabelData) -> str:
    if data.insufficient:
        grade = "not enough seen to rate"
    elif data.grade:
        grade = f"grade {'at best ' if data.at_best else ''}{data.grade}"
    else:
        grade = "not rated"
    via = " (Bluetooth)" if data.transport == "Bluetooth" else ""
    return f"Cyber-security label: {data.vendor} {data.model}{via}, {grade}"


def _header_band(s: _Svg, w: float, h: float, inset: float, radius: float) -> None:
    r = radius
    s.add(
        f'<path d="M{_n(inset)} {_n(h)}V{_n(inset + r)}a{_n(r)} {_n(r)} 0 0 1 {_n(r)} {_n(-r)}'
        f'H{_n(w - inset - r)}a{_n(r)} {_n(r)} 0 0 1 {_n(r)} {_n(r)}V{_n(h)}z" fill="{BLUE}"/>'
    )


def _draw_full(s: _Svg, data: LabelData) -> None:
    W, H = LABEL_SIZES["full"]
    left, right = 4.0, 92.0
    s.rect(0, 0, W, H, "#FFFFFF")
    _full_header(s, data, W, left, right)
    _full_scale(s, data, left, right)
    _full_support(s, data, left, right)
    _full_rows(s, data, left, right)
    _full_footer(s, data, (W, H), left, right)


def _full_header(s: _Svg, data: LabelData, width: float, left: float, right: float) -> None:
    """The blue band with the QR code, then who made the device and when it was tested."""
    _header_band(s, width, 28.0, 1.2, 2.5)
    s.icon("shield", 3.8, 4.2, 11.5, "#FFFFFF")
    s.icon("key", 6.6, 7.4, 5.8, "#FFFFFF")
    s.text(16.5, 11.6, "CYBER", 7.2, 50, bold=True, fill="#FFFFFF")
    s.text(16.5, 19.6, "SECURITY", 7.2, 50, bold=True, fill="#FFFFFF")
    s.text(4.2, 25.2, "Connected-device security label", 2.5, 62, fill="#FFFFFF")
    s.qr(data.qr_payload, 68.6, 3.0, 23.2)

    s.text(left, 34.6, data.vendor, 4.8, right - left, bold=True, min_size=3.0)
    s.text(left, 40.6, data.model, 4.0, right - left, min_size=2.6)
    s.text(left, 45.6, data.firmware_line, 2.6, 54, min_size=2.0)
    tested = data.tested.isoformat() if data.tested else "unknown"
    s.text(right, 45.6, f"Tested {tested}", 2.6, 32, anchor="end")
    s.line(left, 47.8, right)


def _full_scale(s: _Svg, data: LabelData, left: float, right: float) -> None:
    """The A-G bars and the arrow at the device's class, or a dashed "not rated" box."""
    top, bar_h, gap = 50.6, 7.2, 1.5
    for i, g in enumerate(GRADES):
        y = top + i * (bar_h + gap)
        s.bar(left, y, 28 + 4 * i, bar_h, GRADE_COLOURS[g])
        s.text(left + 2.4, y + bar_h / 2 + 2.05, g, 5.6, 6, bold=True, fill="#FFFFFF", stroke=INK)
        s.text(left + 2.4, y + bar_h / 2 + 2.05, g, 5.6, 6, bold=True, fill="#FFFFFF")
    if data.grade is not None:
        i = GRADES.index(data.grade)
        cy = top + i * (bar_h + gap) + bar_h / 2
        s.arrow(66.0, cy - 5.6, 26.0, 11.2)
        s.text(81.6, cy + 3.3, data.grade, 9.2, 12, anchor="middle", bold=True, fill="#FFFFFF")
        if data.at_best:
            s.text(65.0, cy + 1.0, "at best", 2.4, 8.5, anchor="end", bold=True, min_size=1.8)
    else:
        cy = top + 3 * (bar_h + gap) + bar_h / 2
        s.rect(
            63.0,
            cy - 8.0,
            29.0,
            16.0,
            "#F2F2F2",
            rx="1.2",
            stroke="#8A8A8A",
            stroke_width="0.35",
            stroke_dasharray="1 0.8",
        )
        head, sub = (
            ("NO GRADE", "not enough seen to rate")
            if data.insufficient
            else ("NOT RATED", "no rating yet")
        )
        s.text(77.5, cy - 1.0, head, 3.4, 26, anchor="middle", bold=True)
        s.text(77.5, cy + 4.0, sub, 2.4, 26, anchor="middle", fill="#555555", min_size=1.8)
    s.line(left, 112.4, right)


def _full_support(s: _Svg, data: LabelData, left: float, right: float) -> None:
    """How long the device gets security updates, and who says so."""
    lead, headline, colour = _support_lines(data)
    s.icon("update", left - 0.4, 115.6, 11.5, colour)
    s.text(17.0, 120.0, lead, 3.2, 52, fill=colour)
    s.text(17.0, 129.0, headline, 7.4, 50, bold=True, fill=colour)
    source = (
        ("declared by", "the manufacturer") if data.declared else ("no manufacturer", "declaration")
    )
    if data.forced:
        source = ("declaration forced:", "did not match the device")
    s.text(right, 125.0, source[0], 2.4, 34, anchor="end", fill="#555555", min_size=1.8)
    s.text(right, 128.6, source[1], 2.4, 34, anchor="end", fill="#555555", min_size=1.8)
    s.line(left, 133.4, right)


def _full_rows(s: _Svg, data: LabelData, left: float, right: float) -> None:
    """One row per category (at most six): pictogram, title, status word and dot."""
    rows = data.rows[:6]
    area_top, area_h = 134.0, 37.0
    row_h = min(7.4, area_h / max(len(rows), 1))
    for i, row in enumerate(rows):
        cy = area_top + row_h * (i + 0.5)
        if i:
            s.line(left, area_top + row_h * i, right, 0.15, "#C8C8C8")
        s.icon(icon_for(row), left + 0.4, cy - 2.9, 5.8)
        s.text(12.6, cy + 1.15, row.title, 3.2, 57, min_size=2.4)
        word, colour = STATUS_WORDS[row.status], INK
        if row.status is CategoryStatus.UNKNOWN:
            colour = "#555555"  # grey, and still legible in print
        s.text(85.4, cy + 1.0, word, 2.8, 15, anchor="end", fill=colour, min_size=2.2)
        s.status(row.status, 89.0, cy, 2.5)
    s.line(left, 171.6, right)


def _full_footer(
    s: _Svg, data: LabelData, size: tuple[float, float], left: float, right: float
) -> None:
    """Coverage with its bar, the "not a certification" line, the provenance and the border."""
    W, H = size
    s.text(
        left, 176.0, _coverage_text(data.coverage, budget=data.budget), 2.6, right - left,
        min_size=2.0,
    )  # fmt: skip
    s.rect(left, 177.5, right - left, 1.7, "#E3E3E3", rx="0.85")
    if data.coverage is not None and data.coverage.fraction > 0:
        s.rect(left, 177.5, (right - left) * data.coverage.fraction, 1.7, BLUE, rx="0.85")
    # The scan's scope always has a line (a grade claims only what was measured); with the
    # ETSI line as well, the small print closes up to keep both inside the border.
    small = [_etsi_text(data.etsi), f"Scan scope: {data.scope}"] if data.etsi else []
    if small:
        for y, line in zip((181.3, 183.6), small, strict=True):
            s.text(left, y, line, 1.9, right - left, fill="#444444", min_size=1.5)
        notice_y, footer_y, notice_size = 186.4, 189.4, 2.5
    else:
        s.text(left, 181.6, f"Scan scope: {data.scope}", 2.0, right - left, fill="#444444")
        notice_y, footer_y, notice_size = 184.4, 188.4, 2.8

    s.text(
        W / 2,
        notice_y,
        "Automated assessment, not a certification",
        notice_size,
        86,
        anchor="middle",
        bold=True,
    )
    s.text(
        W / 2, footer_y, _footer_text(data), 2.0, 86, anchor="middle", fill="#444444", min_size=1.4
    )
    s.add(
        f'<rect x="1.2" y="1.2" width="{_n(W - 2.4)}" height="{_n(H - 2.4)}" rx="2.5" '
        f'fill="none" stroke="{INK}" stroke-width="0.5"/>'
    )


def _draw_sticker(s: _Svg, data: LabelData) -> None:
    W, H = LABEL_SIZES["sticker"]
    left, right = 2.8, 45.2
    s.rect(0, 0, W, H, "#FFFFFF")
    _header_band(s, W, 16.2, 0.7, 1.5)
    s.text(left, 6.6, "CYBER", 3.4, 28, bold=True, fill="#FFFFFF")
    s.text(left, 10.9, "SECURITY", 3.4, 28, bold=True, fill="#FFFFFF")
    s.text(left, 14.2, "security label", 1.6, 26, fill="#FFFFFF")
    s.qr(data.qr_payload, 31.6, 1.6, 13.8, quiet=2)

    s.text(left, 20.4, data.vendor, 2.6, right - left, bold=True, min_size=1.8)
    s.text(left, 23.7, data.model, 2.2, right - left, min_size=1.6)
    tested = data.tested.isoformat() if data.tested else "unknown"
    bt = "BT · " if data.transport == "Bluetooth" else ""
    s.text(left, 26.4, f"{bt}FW {data.firmware}", 1.6, 24, min_size=1.4)
    s.text(right, 26.4, f"Tested {tested}", 1.6, 17, anchor="end")
    s.line(left, 27.5, right, 0.2)

    top, bar_h, gap = 28.8, 4.0, 0.72
    for i, g in enumerate(GRADES):
        y = top + i * (bar_h + gap)
        s.bar(left, y, 13 + 2 * i, bar_h, GRADE_COLOURS[g])
        s.text(left + 1.2, y + bar_h / 2 + 1.15, g, 3.1, 3.6, bold=True, fill="#FFFFFF", stroke=INK)
        s.text(left + 1.2, y + bar_h / 2 + 1.15, g, 3.1, 3.6, bold=True, fill="#FFFFFF")
    if data.grade is not None:
        cy = top + GRADES.index(data.grade) * (bar_h + gap) + bar_h / 2
        s.arrow(32.0, cy - 3.1, right - 32.0, 6.2)
        s.text(40.2, cy + 1.85, data.grade, 5.0, 7, anchor="middle", bold=True, fill="#FFFFFF")
        if data.at_best:
            s.text(31.6, cy + 0.6, "at best", 1.4, 5.5, anchor="end", bold=True, min_size=1.1)
    else:
        cy = top + 3 * (bar_h + gap) + bar_h / 2
        s.rect(
            31.0,
            cy - 4.0,
            right - 31.0,
            8.0,
            "#F2F2F2",
            rx="0.8",
            stroke="#8A8A8A",
            stroke_width="0.25",
            stroke_dasharray="0.8 0.6",
        )
        word = "NO GRADE" if data.insufficient else "NOT RATED"
        s.text((31.0 + right) / 2, cy + 0.7, word, 1.9, 13, anchor="middle", bold=True)
    s.line(left, 62.4, right, 0.2)

    lead, headline, colour = _support_lines(data)
    s.icon("update", left - 0.2, 64.0, 6.2, colour)
    s.text(9.6, 66.4, lead, 1.8, 35, fill=colour)
    s.text(9.6, 70.6, headline, 3.6, 35, bold=True, fill=colour)
    s.line(left, 72.4, right, 0.2)

    rows = data.rows[:6]
    col_w = (right - left) / max(len(rows), 1)
    for i, row in enumerate(rows):
        cx = left + col_w * (i + 0.5)
        s.icon(icon_for(row), cx - 2.3, 73.8, 4.6)
        s.status(row.status, cx, 81.0, 1.45)
    s.line(left, 83.6, right, 0.2)

    s.text(
        W / 2,
        86.4,
        _coverage_text(data.coverage, short=True, budget=data.budget),
        1.6,
        42,
        anchor="middle",
        min_size=1.3,
    )
    s.text(
        W / 2,
        89.4,
        "Automated assessment, not a certification",
        1.65,
        43,
        anchor="middle",
        bold=True,
        min_size=1.4,
    )
    s.text(
        W / 2,
        92.2,
        _footer_text(data, tool=False),
        1.4,
        43,
        anchor="middle",
        fill="#444444",
        min_size=1.2,
    )
    s.add(
        f'<rect x="0.7" y="0.7" width="{_n(W - 1.4)}" height="{_n(H - 1.4)}" rx="1.5" '
        f'fill="none" stroke="{INK}" stroke-width="0.35"/>'
    )


def label_body(data: LabelData, size: Size = "full") -> str:
    """The label's drawing in its own mm coordinates, without the outer ``<svg>`` element, so
    print sheets can place many labels on one page."""
    if size not in LABEL_SIZES:
        raise UsageError(f"label size must be one of {', '.join(LABEL_SIZES)}")
    s = _Svg()
    (_draw_full if size == "full" else _draw_sticker)(s, data)
    return _metadata(data, size) + "".join(s.parts)


def render_svg(data: LabelData, size: Size = "full") -> str:
    w, h = LABEL_SIZES[size] if size in LABEL_SIZES else (0.0, 0.0)
    body = label_body(data, size)
    title = xml_escape(_title(data))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_n(w)}mm" '
        f'height="{_n(h)}mm" viewBox="0 0 {_n(w)} {_n(h)}" font-family="{FONT}" '
        f'role="img" aria-label="{title}"><title>{title}</title>{body}</svg>\n'
    )


def device_label(
    device: Device,
    result: ScanResult,
    *,
    size: Size = "full",
    digest: str | None = None,
    report_url: str | None = None,
) -> str:
    return render_svg(label_data(device, result, digest=digest, report_url=report_url), size)


# --- raster and print -------------------------------------------------------------------------


def _cairosvg() -> ModuleType:
    try:
        return importlib.import_module("cairosvg")
    except OSError as exc:  # cairocffi could not load libcairo
        raise RuntimeFailure(
            f"cannot render PNG/PDF: the cairo library is missing ({exc}); "
            "on Debian: apt-get install libcairo2"
        ) from exc


def to_png(svg: str, dpi: int = 300) -> bytes:
    out = _cairosvg().svg2png(bytestring=svg.encode("utf-8"), dpi=dpi)
    assert isinstance(out, bytes)
    return out


def to_pdf(svg: str) -> bytes:
    out = _cairosvg().svg2pdf(bytestring=svg.encode("utf-8"))
    assert isinstance(out, bytes)
    return out


def file_stem(device: Device) -> str:
    """A file name that is safe on every file system and unique per device in one result."""
    vendor, model = device_names(device)
    # "Unidentified camera at 10.0.0.5": the id below names the device, and an address cut
    # short by the length limit would read as another device's ("…at-10-0-0" + "5f-…").
    model = re.sub(r"\s+at\s+\S+$", "", model)
    raw = f"{vendor}-{model}"
    ascii_ = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_).strip("-").lower()
    if len(slug) > 48:  # cut at a word, never inside one
        slug = slug[:49].rsplit("-", 1)[0]
    # Separators become "-" rather than vanish: "10.0.11.5" and "10.0.1.15" must not meet as
    # "100115". A short hash of the whole id keeps ids that still collide (cut, or differing
    # only in punctuation) apart; one label must never overwrite another.
    ident = re.sub(r"[^A-Za-z0-9]+", "-", device.id).strip("-").lower()[-17:].strip("-")
    tag = hashlib.sha256(device.id.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{slug or 'device'}-{ident or 'x'}-{tag}"
