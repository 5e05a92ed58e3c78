"""The dashboard in a real browser: the real ``iotrate serve`` process on 127.0.0.1 (a free
port) over a database built from a lab scan, driven by headless Chromium through chromedriver.
Every page loads with no console error, no script, nothing fetched from elsewhere and nothing
wider than the window; the device filter works through its form; the compare form picks two
scans; the device page's screenshot shows the label's grade colours.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/lab-packages.txt). Without them
the test skips on a developer machine but fails in CI, so a broken page cannot pass unseen.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import support.web
from iotrate.reports.label import GRADE_COLOURS
from support.executables import IOTRATE
from support.hosts import chromium_driver
from support.web import FRIDGE, PLUG, WebDb


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium_driver()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> WebDb:
    return support.web.build(tmp_path_factory.mktemp("web") / "history.db")


@pytest.fixture(scope="module")
def server(db: WebDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real command, as a user starts it; its first line says where it listens."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("config"))}
    proc = subprocess.Popen(
        [IOTRATE, "serve", "--db", str(db.path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", line)
    try:
        assert m is not None, (line, proc.stderr.read() if proc.stderr else "")
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0


def submit(driver: Any, button: Any) -> None:
    """Click a form's button and wait for the page it loads: ``click()`` returns once the
    click is sent, and on a busy machine the old page can still be there a moment later."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    button.click()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def page_state(driver: Any) -> dict[str, Any]:
    return dict(
        driver.execute_script(
            """
            const wide = Array.from(document.querySelectorAll('body *'))
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
              .map(e => e.tagName + '.' + e.className);
            return {
              title: document.title,
              h1: (document.querySelector('h1') || {}).textContent || '',
              scripts: document.querySelectorAll('script').length,
              pwned: typeof window.__pwned,
              resources: performance.getEntriesByType('resource').map(r => r.name),
              images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
              scrollWidth: document.documentElement.scrollWidth,
              innerWidth: window.innerWidth,
              wide: wide.slice(0, 5),
              rows: document.querySelectorAll('td.name a').length,
              text: document.body.innerText,
            };
            """
        )
    )


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_every_page_loads_cleanly(driver: Any, server: str, db: WebDb) -> None:
    hostile = f"/devices/{quote(db.hostile_key, safe=':')}"
    pages = {
        "/": "Overview",
        "/devices": "Devices",
        f"/devices/{PLUG}?site=home": "TP-Link plug",
        f"/devices/{FRIDGE}": "LG appliance",
        hostile: "Evil",
        f"/devices/{db.huge_key}": "<script>",
        "/scans": "Scans",
        f"/scans/{db.scan4}": "Scan",
        "/diff": "Compare scans",
        "/login": "Overview",  # no login on loopback: back to the overview
    }
    driver.get_log("browser")  # start with an empty console
    for path, heading in pages.items():
        driver.get(server + path)
        state = page_state(driver)
        assert heading in state["h1"], (path, state["h1"])
        assert state["scripts"] == 0 and state["pwned"] == "undefined", path
        assert all(r.startswith((server, "data:")) for r in state["resources"]), path
        assert all(state["images"]), path
        assert state["scrollWidth"] <= state["innerWidth"], (path, state["wide"])
        assert console_errors(driver) == [], path
    # The hostile device's markup is shown as text, never run.
    driver.get(server + hostile)
    assert "<script>window.__pwned=1</script>" in page_state(driver)["text"]


def test_filter_through_the_form(driver: Any, server: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(server + "/devices")
    before = page_state(driver)["rows"]
    Select(driver.find_element(By.NAME, "grade")).select_by_value("G")
    Select(driver.find_element(By.NAME, "site")).select_by_value("home")
    submit(driver, driver.find_element(By.ID, "apply"))
    assert "grade=G" in driver.current_url and "site=home" in driver.current_url
    state = page_state(driver)
    assert 0 < state["rows"] < before, (before, state["rows"])
    chips = driver.find_elements(By.CSS_SELECTOR, "table.devices td:first-child .chip")
    assert {c.text for c in chips} == {"G"} and len(chips) == state["rows"]
    assert "3 of 12 devices match." in state["text"]
    # Free text too, and the link is the filter: reloading it gives the same list.
    box = driver.find_element(By.NAME, "q")
    box.clear()
    box.send_keys("hikvision")
    submit(driver, driver.find_element(By.ID, "apply"))
    assert page_state(driver)["rows"] == 1
    driver.get(driver.current_url)
    assert page_state(driver)["rows"] == 1
    assert console_errors(driver) == []


def test_compare_form(driver: Any, server: str, db: WebDb) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(server + "/scans")
    Select(driver.find_element(By.NAME, "a")).select_by_value(db.scan1)
    Select(driver.find_element(By.NAME, "b")).select_by_value(db.scan2)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "#compare button"))
    assert driver.current_url.endswith(f"/diff?a={db.scan1}&b={db.scan2}")
    state = page_state(driver)
    assert "better" in state["text"] and "Hikvision" in state["text"]
    assert driver.find_element(By.ID, "n-new").text == "1"
    assert console_errors(driver) == []


def test_device_page_screenshot(driver: Any, server: str, tmp_path: Path) -> None:
    from PIL import Image

    driver.set_window_size(1280, 1000)
    driver.get(server + f"/devices/{FRIDGE}?site=home")
    shot = tmp_path / "device.png"
    assert driver.save_screenshot(str(shot))
    if os.environ.get("IOTRATE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["IOTRATE_KEEP_SCREENSHOT"])
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 22)
    assert colours is not None and len(colours) > 200, "the screenshot looks blank"
    counts = {c: n for n, c in colours}

    def near(hex_colour: str) -> int:
        r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        return sum(
            n
            for (cr, cg, cb), n in counts.items()
            if abs(cr - r) <= 3 and abs(cg - g) <= 3 and abs(cb - b) <= 3
        )

    # Every bar of the label's A-G scale is on screen, in the label's own colours, and the
    # device's grade (G) also fills the big grade chip and the chart's dots.
    found = {g: near(c) for g, c in GRADE_COLOURS.items()}
    assert all(n >= 150 for n in found.values()), found
    assert found["G"] > 2 * found["A"], found
