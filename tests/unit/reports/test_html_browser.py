"""The HTML report in a real browser (headless Chromium through chromedriver): it renders every
section, nothing overflows sideways on a desktop or a phone, the embedded labels load, no
script runs, and nothing is fetched from the network.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/lab-packages.txt). Without them
the test skips on a developer machine but fails in CI, so a broken page cannot pass unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iotrate.reports import html
from support.hosts import chromium_driver
from support.labels import LONG_NAME, fridge, hostile_device, rating, result

SECTIONS = ("summary", "overview", "devices", "about", "not-a-certification")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium_driver()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    devices = [
        fridge(),
        fridge(id="x1", vendor="TP-Link", model="Tapo P110", rating=rating("A")),
        fridge(id="x2", vendor=LONG_NAME, model=LONG_NAME, firmware="W" * 300, rating=None),
        hostile_device(),
    ]
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html.render(result(devices)), encoding="utf-8")
    return path


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_report_renders_in_chromium(driver: Any, page: Path, width: int, height: int) -> None:
    driver.set_window_size(width, height)
    driver.get(page.as_uri())
    state = driver.execute_script(
        """
        const ids = arguments[0];
        document.querySelectorAll('details').forEach(d => { d.open = true; });
        const visible = ids.map(id => {
          const el = document.getElementById(id);
          if (!el) return [id, false];
          const r = el.getBoundingClientRect();
          return [id, r.width > 0 && r.height > 0];
        });
        const wide = Array.from(document.querySelectorAll('body *'))
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
          .map(e => e.tagName + '.' + e.className);
        return {
          visible: visible,
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          pwned: typeof window.__pwned,
          scripts: document.querySelectorAll('script').length,
          images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
          devices: document.querySelectorAll('article.device').length,
          resources: performance.getEntriesByType('resource').map(r => r.name),
          wide: wide.slice(0, 5),
          text: document.body.innerText.includes('<script>window.__pwned=1</script>'),
        };
        """,
        list(SECTIONS),
    )
    assert all(ok for _, ok in state["visible"]), state["visible"]
    assert state["scrollWidth"] <= state["innerWidth"], (state["scrollWidth"], state["wide"])
    assert state["wide"] == []
    assert state["pwned"] == "undefined" and state["scripts"] == 0
    assert state["text"], "the hostile name should show as text"
    assert state["devices"] == 4
    assert len(state["images"]) == 4 and all(state["images"])
    assert [r for r in state["resources"] if not r.startswith("data:")] == []

    shot = page.with_name(f"report-{width}.png")
    assert driver.save_screenshot(str(shot))
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot looks blank"
