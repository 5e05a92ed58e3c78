"""The security label: it fits whatever a device calls itself, escapes what a device sends,
prints at the right size, and lays out on retail sheets."""

from __future__ import annotations

import io
import math
import re
from datetime import date

import pytest
from defusedxml import ElementTree
from iotrate.reports import label as lbl
from iotrate.reports import sheet as sheets
from iotrate.reports.labelcheck import read_label
from iotrate.reports.textfit import ELLIPSIS, clean, fit, text_width
from PIL import Image
from support.labels import (
    LONG_NAME,
    SCRIPT,
    every_grade_long_names,
    fridge,
    hostile_device,
    rating,
    result,
)

from iotrate.models import GRADES, Coverage

SVG_NS = "{http://www.w3.org/2000/svg}"
DPI = 200
PX_PER_MM = DPI / 25.4
TOLERANCE_MM = 0.35  # anti-aliasing and glyph overshoot


def _ink_box(svg_text: str, x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
    """Render one text element alone in a window around its box; return its ink bounds in mm
    (label coordinates), or an empty tuple if nothing was drawn."""
    pad = 12.0
    vx, vy, vw, vh = x0 - pad, y0 - pad, (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    doc = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{vw}mm" height="{vh}mm" '
        f'viewBox="{vx} {vy} {vw} {vh}" font-family="{lbl.FONT}">'
        f'<rect x="{vx}" y="{vy}" width="{vw}" height="{vh}" fill="#808080"/>'
        f"{svg_text}</svg>"
    )
    png = lbl.to_png(doc, dpi=DPI)
    im = Image.open(io.BytesIO(png)).convert("RGB")
    # Ink is anything that differs from the grey background (text may be white or black).
    diff = Image.eval(im, lambda v: 255 if abs(v - 128) > 24 else 0).convert("L")
    bbox = diff.point(lambda v: 255 if v else 0).getbbox()
    if bbox is None:
        return ()
    left, top, right, bottom = bbox
    return (
        vx + left / PX_PER_MM,
        vy + top / PX_PER_MM,
        vx + right / PX_PER_MM,
        vy + bottom / PX_PER_MM,
    )


def _texts(svg: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    return list(root.iter(f"{SVG_NS}text"))


@pytest.mark.parametrize("size", ["full", "sticker"])
@pytest.mark.parametrize("grade", [*GRADES, None])
def test_long_names_never_leave_their_box(grade: str | None, size: lbl.Size) -> None:
    """A 120-character vendor, model and firmware, for every grade: every piece of text is
    rendered and its ink must stay inside the box it was fitted to, and so inside the label."""
    devices = every_grade_long_names()
    order: list[str | None] = [*GRADES, None]
    dev = devices[order.index(grade)]
    svg = lbl.device_label(dev, result(devices), size=size)
    width, height = lbl.LABEL_SIZES[size]
    texts = _texts(svg)
    assert len(texts) > 15
    names = [t for t in texts if (t.text or "").startswith(LONG_NAME[:10])]
    assert names and all(t.text.endswith(ELLIPSIS) for t in names)
    for t in texts:
        x0, y0, x1, y1 = (float(v) for v in t.get("data-box", "").split())
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height, t.text
        # Serialise the element back without its namespace prefix.
        attrs = " ".join(
            f'{k}="{v}"' for k, v in t.attrib.items() if not k.startswith("data-")
        ).replace("&", "&amp;")
        body = (t.text or "").replace("&", "&amp;").replace("<", "&lt;")
        ink = _ink_box(f"<text {attrs}>{body}</text>", x0, y0, x1, y1)
        assert ink, f"nothing drawn for {t.text!r}"
        ix0, iy0, ix1, iy1 = ink
        assert ix0 >= x0 - TOLERANCE_MM and ix1 <= x1 + TOLERANCE_MM, (t.text, ink, (x0, x1))
        assert iy0 >= y0 - TOLERANCE_MM and iy1 <= y1 + TOLERANCE_MM, (t.text, ink, (y0, y1))


@pytest.mark.parametrize("grade", ["A", "G"])
def test_png_has_label_size_and_white_margin(grade: str) -> None:
    devices = every_grade_long_names()
    svg = lbl.device_label(devices[GRADES.index(grade)], result(devices))
    im = Image.open(io.BytesIO(lbl.to_png(svg, dpi=150))).convert("RGB")
    assert im.size == (round(96 / 25.4 * 150), round(192 / 25.4 * 150))
    w, h = im.size
    margin = int(0.8 * 150 / 25.4)  # outside the frame line at 1.2 mm nothing is drawn
    for box in ((0, 0, w, margin), (0, h - margin, w, h), (0, 0, margin, h), (w - margin, 0, w, h)):
        assert im.crop(box).getextrema() == ((255, 255),) * 3, box


def test_pdf_and_png_sizes() -> None:
    svg_full = lbl.device_label(fridge(), result([fridge()]))
    svg_sticker = lbl.device_label(fridge(), result([fridge()]), size="sticker")
    for svg, (w, h) in ((svg_full, (96, 192)), (svg_sticker, (48, 96))):
        pdf = lbl.to_pdf(svg)
        assert pdf.startswith(b"%PDF")
        box = re.search(rb"/MediaBox \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)\s*\]", pdf)
        assert box is not None
        assert float(box.group(3)) == pytest.approx(w / 25.4 * 72, abs=0.05)
        assert float(box.group(4)) == pytest.approx(h / 25.4 * 72, abs=0.05)
        png = Image.open(io.BytesIO(lbl.to_png(svg, dpi=300)))
        assert png.size == (round(w / 25.4 * 300), round(h / 25.4 * 300))


@pytest.mark.parametrize("size", ["full", "sticker"])
def test_hostile_strings_are_escaped(size: lbl.Size) -> None:
    dev = hostile_device()
    svg = lbl.device_label(dev, result([dev]), size=size)
    assert "<script" not in svg.lower()
    assert "<b>" not in svg
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202e]", svg)
    root = ElementTree.fromstring(svg)  # well-formed XML
    allowed = {"svg", "title", "metadata", "label", "rect", "path", "text", "g", "circle"}
    assert {e.tag.rsplit("}", 1)[-1] for e in root.iter()} <= allowed
    assert "&lt;script&gt;" in svg
    meta = read_label(svg)
    assert meta.device_id == clean(dev.id)
    assert SCRIPT in meta.device_id


def test_unrated_device_gets_an_unrated_label() -> None:
    dev = fridge(rating=None)
    svg = lbl.device_label(dev, result([dev]))
    assert "NOT RATED" in svg
    assert "unknown" in svg  # support period and the pictogram rows
    assert read_label(svg).grade == ""
    assert lbl.to_png(svg, dpi=50).startswith(b"\x89PNG")


def test_unidentified_device_still_has_a_name() -> None:
    dev = fridge(vendor=None, model=None, firmware=None, names=[])
    svg = lbl.device_label(dev, result([dev]))
    assert "Unknown manufacturer" in svg
    assert "Unidentified appliance at 10.231.47.11" in svg


def test_support_period_is_shown_in_each_state() -> None:
    until = fridge(rating=rating("C", support_until=date(2031, 12, 31)))
    ended = fridge(rating=rating("C", support_until=date(2024, 6, 30)))
    unknown = fridge(rating=rating("C", support_until=None))
    r = result([until])
    assert "Security updates until" in lbl.device_label(until, r) and "2031-12" in (
        lbl.device_label(until, r)
    )
    assert "Security updates ended" in lbl.device_label(ended, r)
    assert ">unknown<" in lbl.device_label(unknown, r)


def test_coverage_and_disclaimer_are_on_every_label() -> None:
    dev = fridge(rating=rating("B", coverage=Coverage(fraction=0.5, checks_run=5, checks_total=10)))
    for size in ("full", "sticker"):
        svg = lbl.device_label(dev, result([dev]), size=size)
        assert "not a certification" in svg
        assert "50 %" in svg
        assert "iotrate 2026.1" in svg


def test_qr_code_carries_digest_and_report_location() -> None:
    dev = fridge()
    r = result([dev])
    data = lbl.label_data(dev, r, report_url="https://lab.example/reports/1.html")
    assert data.qr_payload == f"https://lab.example/reports/1.html#sha256={data.digest}"
    svg = lbl.render_svg(data)
    meta = read_label(svg)
    assert meta.qr_d == lbl.qr_path(meta.qr_payload)[0]
    bare = lbl.label_data(dev, r)
    assert bare.qr_payload == f"IOTRATE:SHA256:{bare.digest.upper()}"
    with pytest.raises(Exception, match="http"):
        lbl.check_report_url("javascript:alert(1)")


def test_same_input_same_bytes() -> None:
    dev = fridge()
    assert lbl.device_label(dev, result([dev])) == lbl.device_label(dev, result([dev]))


def test_file_stem_is_safe() -> None:
    stem = lbl.file_stem(hostile_device())
    assert re.fullmatch(r"[a-z0-9-]+", stem)


# --- text fitting -----------------------------------------------------------------------------


def test_fit_keeps_short_text_and_shrinks_before_cutting() -> None:
    assert fit("LG", 50, 5).text == "LG"
    moderate = "InstaView ThinQ GSX961NSVZ Pro"
    f = fit(moderate, text_width(moderate, 5) * 0.9, 5, min_size=3)
    assert f.text == moderate and f.size < 5 and not f.truncated
    long = fit(LONG_NAME, 60, 5, min_size=3)
    assert long.truncated and long.text.endswith(ELLIPSIS) and long.size == 3
    assert text_width(long.text, long.size) <= 60


def test_wide_and_unknown_glyphs_are_counted_wide() -> None:
    assert text_width("漢字", 10) == pytest.approx(20)
    assert fit("漢" * 50, 30, 5).text.endswith(ELLIPSIS)


def test_clean_drops_controls_and_bidi() -> None:
    assert clean("a\x1b[31mb\u202ec\x00d\ufeff  e\n") == "a[31mbcd e"


# --- retail sheets ----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"), [(1, "full"), (2, "full"), (5, "full"), (7, "sticker")])
def test_sheet_has_ceil_n_over_per_page_pages(n: int, size: lbl.Size) -> None:
    devices = [
        fridge(id=f"02:00:00:00:01:{i:02x}", model=f"Model {i}", rating=rating(GRADES[i % 7]))
        for i in range(n)
    ]
    r = result(devices)
    data = [lbl.label_data(d, r) for d in devices]
    g = sheets.grid("A4", size)
    pdf = sheets.render_pdf(data, "A4", size)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == math.ceil(n / g.per_page)
    assert sheets.page_count(n, g) == math.ceil(n / g.per_page)


def test_sheet_grid_fits_the_page() -> None:
    for sheet in sheets.SHEETS:
        for size in ("full", "sticker"):
            g = sheets.grid(sheet, size)
            xs = [g.origin(i) for i in range(g.per_page)]
            assert all(x >= sheets.MARGIN - 1e-6 and y >= sheets.MARGIN - 1e-6 for x, y in xs)
            assert all(
                x + g.label_w <= g.page_w - sheets.MARGIN + 1e-6
                and y + g.label_h <= g.page_h - sheets.MARGIN + 1e-6
                for x, y in xs
            )
    assert sheets.grid("A4", "full").per_page == 2
    assert sheets.pages(5, sheets.grid("A4", "full")) == [[0, 1], [2, 3], [4]]


def test_one_label_per_model_newest_wins() -> None:
    old = result([fridge(rating=rating("G"))])
    new = result([fridge(rating=rating("C"))]).model_copy(
        update={"finished_at": old.finished_at.replace(year=2027)}  # type: ignore[union-attr]
    )
    other = fridge(id="x", vendor="TP-Link", model="Tapo P110")
    items = [
        lbl.label_data(old.devices[0], old),
        lbl.label_data(new.devices[0], new),
        lbl.label_data(other, old),
        lbl.label_data(fridge(id="u1", vendor=None, model=None), old),
        lbl.label_data(fridge(id="u2", vendor=None, model=None, address="10.0.0.2"), old),
    ]
    chosen = sheets.one_per_model(items)
    assert len(chosen) == 4
    lg = next(c for c in chosen if c.vendor == "LG")
    assert lg.grade == "C"


def test_file_stems_differ_for_addresses_that_share_digits() -> None:
    """10.0.11.5 and 10.0.1.15 once both became "...-100115": one label overwrote the other."""
    a = fridge(id="10.0.11.5", address="10.0.11.5", mac=None)
    b = fridge(id="10.0.1.15", address="10.0.1.15", mac=None)
    c = fridge(id="10:0:11:5", address="10.0.11.6", mac=None)
    stems = {lbl.file_stem(d) for d in (a, b, c)}
    assert len(stems) == 3
    assert all(re.fullmatch(r"[a-z0-9-]+", s) for s in stems)
    assert "10-0-11-5" in lbl.file_stem(a)
