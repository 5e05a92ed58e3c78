"""The dashboard (``iotrate serve``): pages and their JSON twins, filters, escaping of hostile
device strings, login, headers and the CLI's refusals — in-process through Starlette's test
client, and as the real ``iotrate serve`` process (uvicorn) over HTTP, over HTTPS with sign-in,
and reading a real PostgreSQL server (``support.fleet.postgres``).

The database is built from a real lab scan (``tests/support/web.py``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import support.web
from iotrate.reports.label import GRADE_COLOURS
from support.executables import IOTRATE
from support.fleet import postgres  # noqa: F401  (the PostgreSQL server fixture)
from support.labels import SCRIPT
from support.web import CAMERA, FRIDGE, HOME, HUGE, PLUG, SHOP, WebDb
from typer.testing import CliRunner

from iotrate.cli import app as cli_app
from iotrate.errors import UsageError
from iotrate.storage import Store
from iotrate.web import DashboardConfig, create_app
from iotrate.web.app import CSP, host_of
from iotrate.web.auth import (
    LoginThrottle,
    add_user,
    hash_password,
    load_users,
    safe_next,
    verify_password,
)

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2, which is not a dependency; httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8765"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> WebDb:
    return support.web.build(tmp_path_factory.mktemp("web") / "history.db")


def make_app(db: WebDb, **kw: Any) -> Any:
    return create_app(DashboardConfig(open_store=lambda: Store(db.path), **kw))


@pytest.fixture(scope="module")
def client(db: WebDb) -> Iterator[TestClient]:
    app = make_app(db, allowed_hosts=frozenset({"127.0.0.1", "localhost", "::1"}))
    with TestClient(app, base_url=BASE) as c:
        yield c


def api(client: TestClient, url: str, status: int = 200) -> Any:
    r = client.get(url)
    assert r.status_code == status, (url, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def rows_in(html: str) -> int:
    return len(re.findall(r'<td class="name"><a href="/devices/', html))


# --- pages and API ----------------------------------------------------------------------------


def test_overview_counts_what_the_latest_scans_saw(client: TestClient) -> None:
    data = api(client, "/api/sites")
    sites = {s["site"]: s for s in data["sites"]}
    assert set(sites) == {HOME, SHOP}
    # home: its latest complete scan (scan 2, the whole lab), not the interrupted scan 3
    assert sites[HOME]["devices"] == 6 and sites[HOME]["scans"] == 3
    assert sites[HOME]["last_status"] == "interrupted"
    assert dict(sites[HOME]["grades"]) == {
        "A": 1, "B": 0, "C": 1, "D": 0, "E": 1, "F": 0, "G": 3, "unrated": 0
    }  # fmt: skip
    assert sites[HOME]["attention"] == 4
    assert sites[SHOP]["devices"] == 6 and dict(sites[SHOP]["grades"])["unrated"] == 1
    assert data["devices"] == 12 and data["scans"] == 4
    page = client.get("/")
    assert page.status_code == 200
    assert "shop-2 &lt;i&gt;&#34;east&#34;&lt;/i&gt;" in page.text
    assert '<i>"east"' not in page.text
    assert 'id="stat-devices">12<' in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 12),
        ("?site=home", 6),
        ("?grade=G", 4),
        ("?grade=g&site=home", 3),
        ("?grade=unrated", 1),
        ("?grade=unrated&site=home", 0),
        ("?category=camera", 1),
        ("?q=hikvision", 1),
        ("?q=192.168.50.", 6),
        ("?finding=cred.default-password", 2),
        ("?finding=cred", 2),
        ("?finding=tls.cert.expired", 2),
        ("?severity=critical", 4),
        ("?severity=high&site=home", 3),
        ("?severity=info&site=home", 6),
        ("?scan=11111111", 5),
        ("?scan=33333333&grade=G", 2),
        ("?site=" + SHOP.replace('"', "%22").replace(" ", "+").replace("<", "%3C"), 6),
    ],
)
def test_device_filters(client: TestClient, query: str, expected: int) -> None:
    data = api(client, "/api/devices" + query)
    assert len(data["devices"]) == expected, [d["name"] for d in data["devices"]]
    f = data["filters"]
    for d in data["devices"]:
        if f["grade"]:
            assert (d["grade"] or "unrated") == f["grade"]
        if f["site"]:
            assert d["site"] == f["site"]
        if f["finding"]:
            assert any(c.startswith(f["finding"]) for c in d["checks"])
    # The page shows the same rows, and keeps the filter in its form and links.
    page = client.get("/devices" + query)
    assert page.status_code == 200
    assert rows_in(page.text) == expected
    if "grade=G" in query:
        assert '<option value="G" selected>' in page.text


def test_device_list_sorts_worst_first_and_by_name(client: TestClient) -> None:
    grades = [d["grade"] for d in api(client, "/api/devices?site=home")["devices"]]
    assert grades == ["G", "G", "G", "E", "C", "A"]
    names = [d["name"].lower() for d in api(client, "/api/devices?sort=name")["devices"]]
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("query", "word"),
    [("?grade=Z", "grade"), ("?severity=urgent", "severity"), ("?sort=x", "sort"),
     ("?q=" + "x" * 201, "longer")],
)  # fmt: skip
def test_bad_filters_are_400_with_a_reason(client: TestClient, query: str, word: str) -> None:
    assert word in api(client, "/api/devices" + query, 400)["error"]
    page = client.get("/devices" + query)
    assert page.status_code == 400 and word in page.text


def test_device_page_label_findings_history(client: TestClient, db: WebDb) -> None:
    data = api(client, f"/api/devices/{PLUG}?site=home")
    assert data["view"]["grade"] == "A" and data["scan"]["scan_id"] == db.scan2
    # 2026.3: without its declaration no firmware version is known, so the plug is C
    assert [(p["grade"], p["scan_id"]) for p in data["history"]] == [
        ("C", db.scan1),
        ("A", db.scan2),
    ]
    assert "label_uri" not in data["view"]  # the API leaves the picture to the page
    page = client.get(f"/devices/{PLUG}?site=home").text
    assert '<img src="data:image/svg+xml;base64,' in page
    chart = page[page.index('<svg class="history"') :]
    chart = chart[: chart.index("</svg>")]
    assert f'fill="{GRADE_COLOURS["A"]}"' in chart and f'fill="{GRADE_COLOURS["C"]}"' in chart
    assert chart.count('r="10"') == 2  # one dot per scan
    # An earlier scan's record, by link from the chart.
    old = api(client, f"/api/devices/{PLUG}?site=home&scan=11111111")
    assert old["view"]["grade"] == "C" and old["scan"]["scan_id"] == db.scan1

    fridge = client.get(f"/devices/{FRIDGE}?site=home").text
    assert "Default password accepted over telnet for user &#39;root&#39;" in fridge
    assert "How to fix:" in fridge and "logged in as &#39;root&#39; with password a***" in fridge
    assert "1883/tcp" in fridge  # services table
    assert fridge.count('r="10"') == 3  # scans 1-3, the interrupted one included
    hist = api(client, f"/api/devices/{FRIDGE}")["history"]
    assert [p["status"] for p in hist] == ["complete", "complete", "interrupted"]
    assert [p["current"] for p in hist] == [False, True, False]  # complete beats newer partial


def test_unknown_things_are_404(client: TestClient, db: WebDb) -> None:
    for url in (
        "/devices/aa:aa:aa:aa:aa:aa",
        f"/devices/{CAMERA}?site=nowhere",
        f"/devices/{CAMERA}?scan=11111111",  # scan 1 did not see the camera
        "/scans/99999999",
        "/devices?scan=nope",
        "/diff?a=nope&b=11111111",
        "/no/such/page",
        "/static/nope.css",
    ):
        r = client.get(url)
        assert r.status_code == 404, url
        assert "text/html" in r.headers["content-type"]
        assert "Traceback" not in r.text
    assert "error" in api(client, "/api/scans/99999999", 404)
    assert "error" in api(client, "/api/devices/nope", 404)
    assert client.post("/devices").status_code == 405  # read-only


def test_scans_and_scan_page(client: TestClient, db: WebDb) -> None:
    rows = api(client, "/api/scans")["scans"]
    assert [r["scan_id"] for r in rows] == [db.scan3, db.scan4, db.scan2, db.scan1]
    assert len(api(client, "/api/scans?site=home")["scans"]) == 3
    detail = api(client, f"/api/scans/{db.scan2[:8]}")
    assert detail["previous"] == db.scan1 and len(detail["devices"]) == 6
    page = client.get(f"/scans/{db.scan2}").text
    assert f"/diff?a={db.scan1}&amp;b={db.scan2}" in page
    shop = client.get(f"/scans/{db.scan4}").text
    assert "probe crashed: &lt;script&gt;" in shop and "\x1b" not in shop
    stored = client.get(f"/api/scans/{db.scan2}/result")
    assert stored.status_code == 200
    assert len(json.loads(stored.text)["devices"]) == 6


def test_diff_default_and_chosen(client: TestClient, db: WebDb) -> None:
    # The newest complete scan (shop) has no predecessor; the dashboard pairs within a site.
    d = api(client, "/api/diff")
    assert (d["before"]["scan_id"], d["after"]["scan_id"]) == (db.scan1, db.scan2)
    assert [n["key"] for n in d["new_devices"]] == [CAMERA]
    plug = next(c for c in d["changed"] if c["device"]["key"] == PLUG)
    assert (plug["grade_before"], plug["grade_after"], plug["direction"]) == ("C", "A", "better")
    assert {f["check"] for f in plug["fixed"]} >= {"decl.support-period.missing"}
    back = api(client, f"/api/diff?a={db.scan2}&b={db.scan1}")
    assert [n["key"] for n in back["gone_devices"]] == [CAMERA]
    assert any("newer" in n for n in back["notes"])
    page = client.get(f"/diff?a={db.scan1}&b={db.scan2}").text
    assert f'<option value="{db.scan1}" selected>' in page and "better" in page
    assert "Choose two scans" in client.get(f"/diff?a={db.scan1}").text


def test_unrated_device_and_empty_database(client: TestClient, tmp_path: Path) -> None:
    page = client.get("/devices/f4:f5:d8:00:00:14")
    assert page.status_code == 200 and "has not been rated yet" in page.text
    assert 'class="chip big g-none"' in page.text
    empty = tmp_path / "empty.db"
    Store(empty).close()
    with TestClient(make_app(WebDb(empty, "", "", "", "", "", "")), base_url=BASE) as c:
        assert "No scans stored yet" in c.get("/").text
        assert api(c, "/api/devices")["devices"] == []
        assert "No two complete scans" in api(c, "/api/diff")["message"]
        assert c.get("/scans").status_code == 200


def test_a_large_list_comes_a_page_at_a_time(tmp_path: Path) -> None:
    """A fleet's thousands of devices: 500 rows a page, links keep the filters, the counts and
    the grade scale stay those of the whole list, and any other change starts at page 1."""
    lab = support.web.lab_result()
    base = lab.devices[0]
    many = [
        base.model_copy(
            update={
                "id": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                "address": f"10.9.{i // 250}.{i % 250 + 1}",
                "addresses": [f"10.9.{i // 250}.{i % 250 + 1}"],
                "mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            }
        )
        for i in range(1101)
    ]
    path = tmp_path / "big.db"
    with Store(path) as s:
        s.finish_scan(lab.model_copy(update={"devices": many}))
    with TestClient(make_app(WebDb(path, "", "", "", "", "", "")), base_url=BASE) as c:
        first = api(c, "/api/devices")
        assert (first["matched"], first["pages"], first["first"]) == (1101, 3, 1)
        assert len(first["devices"]) == 500
        assert sum(n for _, n in first["grades"]) == 1101
        third = api(c, "/api/devices?page=3")
        assert len(third["devices"]) == 101 and third["first"] == 1001
        keys = {d["key"] for p in (1, 2, 3) for d in api(c, f"/api/devices?page={p}")["devices"]}
        assert len(keys) == 1101  # every device on exactly one page
        html = c.get("/devices?page=2&sort=address").text
        assert "1101 devices. Showing 501–1000." in html and "page 2 of 3" in html
        assert '<a href="/devices?sort=address" rel="prev">' in html  # the sort stays
        assert '<a href="/devices?sort=address&amp;page=3" rel="next">' in html
        # Sorting or filtering again goes back to the first page.
        assert 'href="/devices?sort=name"' in html
        assert c.get("/devices?page=4").status_code == 404
        assert c.get("/devices?page=0").status_code == 400
        assert c.get("/devices?page=x").status_code == 400


# --- hostile strings --------------------------------------------------------------------------

RAW = (SCRIPT, '<i>"east"</i>', "<b>bold</b>", "\x1b", "\x07", "\u202e", "\x00")


def test_hostile_strings_are_escaped_everywhere(client: TestClient, db: WebDb) -> None:
    listing = api(client, "/api/devices?site=" + SHOP)["devices"]
    hrefs = {d["key"]: d["href"] for d in listing}
    pages = [
        "/",
        "/devices",
        "/devices?q=%3Cscript",
        hrefs[db.hostile_key],
        hrefs[db.huge_key],
        "/scans",
        f"/scans/{db.scan4}",
        f"/diff?a={db.scan4}&b={db.scan2}",
        "/devices/%3Cscript%3Ealert(1)%3C%2Fscript%3E",  # 404 page echoing nothing raw
    ]
    for url in pages:
        r = client.get(url)
        assert r.status_code in (200, 404), url
        for raw in RAW:
            assert raw not in r.text, (url, raw)
        assert len(r.text) < 600_000, url  # a 10 kB name is cut, not repeated in full
    hostile = client.get(hrefs[db.hostile_key]).text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in hostile
    huge = client.get(hrefs[db.huge_key]).text
    assert HUGE not in huge and HUGE[:40] not in huge  # the raw form never appears
    title = re.search(r'<h1 id="device-name">(.*?)</h1>', huge, re.S)
    assert title is not None and len(title.group(1)) < 1200

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    for url in ("/api/devices", f"/api/scans/{db.scan4}", "/api/devices/02:00:00:00:00:99"):
        for s in strings(api(client, url)):
            assert not any(ord(c) < 0x20 or c == "\u202e" for c in s), (url, s[:80])
            assert len(s) <= 2000, (url, len(s))


def test_a_key_with_slashes_and_markup_still_routes(client: TestClient, db: WebDb) -> None:
    href = next(
        d["href"] for d in api(client, "/api/devices")["devices"] if d["key"] == db.hostile_key
    )
    assert "<" not in href and " " not in href
    data = api(client, href.replace("/devices/", "/api/devices/", 1))
    assert data["key"] == db.hostile_key


# --- headers, host, static --------------------------------------------------------------------


def test_security_headers_and_no_script(client: TestClient, db: WebDb) -> None:
    for url in ("/", "/devices", f"/devices/{PLUG}", "/scans", "/diff", "/nope", "/api/sites"):
        r = client.get(url)
        h = r.headers
        assert h["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src" not in CSP
        assert "unsafe-inline" not in CSP
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
        assert "server" not in h
        if "html" in h["content-type"]:
            assert "<script" not in r.text.lower()
            assert " style=" not in r.text  # the CSP would block inline styles
            assert "http://" not in r.text.replace("http://www.w3.org", "")  # nothing remote
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for grade, colour in GRADE_COLOURS.items():
        assert f"--g{grade}: {colour};" in css.text  # the label's palette
    assert client.get("/static/favicon.svg").status_code == 200


@pytest.mark.parametrize(
    ("host", "ok"),
    [("127.0.0.1:8765", True), ("localhost", True), ("[::1]:8765", True),
     ("evil.example", False), ("127.0.0.1.evil.example:8765", False), ("", False)],
)  # fmt: skip
def test_host_header_pinned_without_login(client: TestClient, host: str, ok: bool) -> None:
    r = client.get("/api/sites", headers={"host": host})
    assert (r.status_code == 200) is ok, r.status_code
    if not ok:
        assert r.status_code == 421


def test_host_of() -> None:
    assert host_of("[::1]:80") == "::1" and host_of("Example.ORG:8080") == "example.org"
    assert host_of("::1") == "::1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/devices?grade=G", "/devices?grade=G"), ("//evil.example/", "/"),
     ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("devices", "/"),
     ("/x\r\nSet-Cookie: a=b", "/")],
)  # fmt: skip
def test_login_redirects_stay_on_site(value: str, expected: str) -> None:
    assert safe_next(value) == expected


# --- login --------------------------------------------------------------------------------------


def login_client(db: WebDb, throttle: LoginThrottle | None = None) -> TestClient:
    users = {"alice": hash_password(PASSWORD, n=16)}
    return TestClient(make_app(db, users=users, throttle=throttle), base_url=BASE)


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def sign_in(c: TestClient, password: str = PASSWORD, next_: str = "/", **kw: str) -> Any:
    token = csrf_of(c.get("/login").text)
    form = {"username": "alice", "password": password, "csrf": token, "next": next_, **kw}
    return c.post("/login", data=form, follow_redirects=False)


def test_login_required_and_session(db: WebDb) -> None:
    with login_client(db) as c:
        r = c.get("/devices?grade=G", follow_redirects=False)
        assert r.status_code == 303
        assert parse_qs(urlsplit(r.headers["location"]).query)["next"] == ["/devices?grade=G"]
        assert c.get("/api/sites").status_code == 401
        assert c.get("/static/dashboard.css").status_code == 200
        assert sign_in(c, "wrong password!").status_code == 401
        r = sign_in(c, next_="/devices?grade=G")
        assert r.status_code == 303 and r.headers["location"] == "/devices?grade=G"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = c.get("/devices?grade=G")
        assert page.status_code == 200 and "alice" in page.text
        assert c.get("/api/sites").status_code == 200
        # Sign out needs the form's token too.
        assert c.post("/logout", data={"csrf": "forged"}).status_code == 400
        out = c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        assert c.get("/api/sites").status_code == 401


def test_login_needs_the_forms_csrf_token(db: WebDb) -> None:
    with login_client(db) as c:
        c.get("/login")
        form = {"username": "alice", "password": PASSWORD, "next": "/"}
        assert c.post("/login", data={**form, "csrf": "guess"}).status_code == 403
        assert c.post("/login", data=form).status_code == 403
    with login_client(db) as fresh:  # no session at all (a cross-site post)
        r = fresh.post("/login", data={**form, "csrf": "x"}, follow_redirects=False)
        assert r.status_code == 403


def test_oversized_login_form_is_refused(db: WebDb) -> None:
    with login_client(db) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": "alice", "password": "x" * 100_000, "csrf": token})
        assert r.status_code == 400 and "Traceback" not in r.text
        fields = {f"f{i}": "1" for i in range(50)}
        assert c.post("/login", data=fields).status_code == 400


def test_a_tampered_session_cookie_is_logged_out(db: WebDb) -> None:
    with login_client(db) as c:
        sign_in(c)
        value = c.cookies["iotrate_session"]
        c.cookies.set("iotrate_session", value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"))
        assert c.get("/api/sites").status_code == 401


def test_failed_logins_are_throttled(db: WebDb) -> None:
    with login_client(db, LoginThrottle(limit=3, window=60)) as c:
        for _ in range(3):
            assert sign_in(c, "not the password").status_code == 401
        r = sign_in(c)  # even the right password waits now
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in r.text


def test_throttle_window_and_keys() -> None:
    now = [0.0]
    t = LoginThrottle(limit=2, window=10, clock=lambda: now[0], max_keys=4)
    t.failed("addr:a", "user:x")
    t.failed("addr:a", "user:y")
    assert t.wait("addr:a") == 10 and t.wait("user:x") == 0
    now[0] = 10.5
    assert t.wait("addr:a") == 0
    t.failed("addr:b", "user:x")
    t.failed("addr:c", "user:x")
    assert t.wait("addr:d", "user:x") > 0  # many addresses, one name
    t.succeeded("user:x")
    assert t.wait("user:x") == 0 and t.wait("addr:c") == 0
    for i in range(20):
        t.failed(f"addr:{i}")
    assert len(t._fails) <= 5  # bounded


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "users"
    assert add_user(path, "alice", PASSWORD) is True
    assert add_user(path, "bob@lab", "another long one") is True
    assert add_user(path, "alice", "changed password") is False
    assert path.stat().st_mode & 0o777 == 0o600
    users = load_users(path)
    assert set(users) == {"alice", "bob@lab"}
    assert verify_password("changed password", users["alice"])
    assert not verify_password(PASSWORD, users["alice"])
    assert not verify_password(PASSWORD, None)  # unknown user: same work, never true
    assert users["alice"] != users["bob@lab"] and users["alice"].startswith("scrypt$131072$8$1$")
    with pytest.raises(UsageError, match="user name"):
        add_user(path, "<script>", PASSWORD)
    with pytest.raises(UsageError, match="10 to 1024"):
        add_user(path, "carol", "short")
    path.write_text(path.read_text() + "mallory:plaintext\n")
    with pytest.raises(UsageError, match="line 4"):
        load_users(path)


# --- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--host", "10.0.0.1", "--allow-remote"], "needs a users file"),
        (["--db", "/nonexistent/x.db"], "no history database"),
        (["--db", "sqlite:////nonexistent/x.db"], "no history database"),
        (["--db", "mysql://h/db"], "unsupported database"),
        (["--users", "/nonexistent/users"], "no users file"),
        (["--tls-cert", __file__], "go together"),
    ],
)
def test_serve_refuses_with_exit_2(
    db: WebDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no default users file
    full = ["serve", "--db", str(db.path), "--port", "0", *args]
    r = runner.invoke(cli_app, full)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_add_user_prompts_twice(tmp_path: Path) -> None:
    users = tmp_path / "users"
    r = runner.invoke(
        cli_app,
        ["serve", "--add-user", "alice", "--users", str(users)],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output and "added user alice" in r.output
    assert verify_password(PASSWORD, load_users(users)["alice"])
    r = runner.invoke(
        cli_app, ["serve", "--add-user", "bob", "--users", str(users)], input="short\nshort\n"
    )
    assert r.exit_code == 2 and "10 to 1024" in r.output


def test_busy_port_is_exit_3(db: WebDb) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = runner.invoke(cli_app, ["serve", "--db", str(db.path), "--port", str(port)])
    assert r.exit_code == 3 and "cannot listen" in r.output


# --- the real server process --------------------------------------------------------------------


def start_serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [IOTRATE, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(https?://\S+/) ", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.communicate()[1][-2000:]}")
    return proc, m.group(1)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_real_server_over_http(db: WebDb, serve_env: dict[str, str]) -> None:
    proc, url = start_serve(["--db", f"sqlite:///{db.path}"], serve_env)
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as h:
            r = h.get("/")
            assert r.status_code == 200 and "shop-2 &lt;i&gt;" in r.text
            assert r.headers["content-security-policy"] == CSP and "server" not in r.headers
            assert len(h.get("/api/devices?grade=G").json()["devices"]) == 4
            assert h.get("/", headers={"host": "rebind.example"}).status_code == 421
    finally:
        stop(proc)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_real_server_https_with_login(db: WebDb, tmp_path: Path, serve_env: dict[str, str]) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password(PASSWORD, n=16)}\n")
    cert, key = _self_signed(tmp_path)
    args = ["--db", str(db.path), "--users", str(users), "--tls-cert", str(cert)]
    proc, url = start_serve([*args, "--tls-key", str(key)], serve_env)
    try:
        assert url.startswith("https://127.0.0.1:")
        tls = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=url, timeout=10, verify=tls) as h:
            assert h.get("/api/sites").status_code == 401
            login = h.get("/login")
            assert login.headers["strict-transport-security"].startswith("max-age=")
            r = h.post(
                "/login",
                data={"username": "alice", "password": PASSWORD, "csrf": csrf_of(login.text)},
            )
            assert r.status_code == 303
            assert "secure" in r.headers["set-cookie"].lower()
            assert h.get("/api/sites").json()["devices"] == 12
    finally:
        stop(proc)


def test_real_server_reads_postgresql(
    db: WebDb,
    client: TestClient,
    postgres: Any,  # noqa: F811
    serve_env: dict[str, str],
) -> None:
    """The same history in PostgreSQL (as a fleet collector keeps it), served by the real
    command from its URL, reads exactly as from SQLite."""
    pg = support.web.build(postgres.new_database("web"))
    proc, url = start_serve(["--db", str(pg.path)], serve_env)
    try:
        with httpx.Client(base_url=url, timeout=10) as h:
            for path in (
                "/api/sites",
                "/api/devices?severity=high",
                f"/api/devices/{FRIDGE}",
                "/api/scans",
                "/api/diff",
            ):
                got, want = h.get(path).json(), api(client, path)
                assert got == want, path
            page = h.get(f"/devices/{PLUG}?site=home")
            assert page.status_code == 200 and '<img src="data:image/svg+xml;base64,' in page.text
    finally:
        stop(proc)
