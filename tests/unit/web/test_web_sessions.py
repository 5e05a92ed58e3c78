"""Dashboard sign-in under attack (issue 17, findings 3, 5, 7 and the scrypt cost of 8): wrong
passwords sent at once are throttled as if sent one by one, password checks run a bounded
number at a time, sign-out and a password change end a session whatever copies of its cookie
exist, an entry hashed at the old cost signs in and is upgraded, and a CSRF field of non-ASCII
text is refused with 4xx, not a 500."""

from __future__ import annotations

import asyncio
import re
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotrate.storage import Store
from iotrate.web import DashboardConfig, auth, create_app
from iotrate.web.auth import (
    MAX_CHECKS,
    SCRYPT_N,
    LoginThrottle,
    add_user,
    hash_password,
    load_users,
    verify_password,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8765"
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    Store(path).close()
    return path


def make_app(db: Path, users: dict[str, str], **kw: Any) -> Any:
    return create_app(DashboardConfig(open_store=lambda: Store(db), users=users, **kw))


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def sign_in(c: TestClient, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(c.get("/login").text)
    form = {"username": "alice", "password": password, "csrf": token, "next": "/"}
    return c.post("/login", data=form, follow_redirects=False)


async def concurrent_sign_ins(app: Any, n: int, password: str) -> Counter[int]:
    """``n`` sign-ins with one session's form token, all sent before any is answered."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as h:
        token = csrf_of((await h.get("/login")).text)
        form = {"username": "alice", "password": password, "csrf": token}
        answers = await asyncio.gather(*(h.post("/login", data=form) for _ in range(n)))
    return Counter(r.status_code for r in answers)


def test_forty_wrong_passwords_at_once_get_five_answers(db: Path) -> None:
    app = make_app(db, {"alice": hash_password(PASSWORD, n=2**12)})
    statuses = asyncio.run(concurrent_sign_ins(app, 40, "not the password"))
    assert statuses == Counter({401: 5, 429: 35})


def test_password_checks_run_a_bounded_number_at_a_time(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = peak = 0
    lock = threading.Lock()

    def counted(password: str, encoded: str | None) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return verify_password(password, encoded)  # the real check, ~100 ms at 2**15
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(auth, "verify_password", counted)
    app = make_app(
        db, {"alice": hash_password(PASSWORD, n=2**15)}, throttle=LoginThrottle(limit=100)
    )
    statuses = asyncio.run(concurrent_sign_ins(app, 12, "not the password"))
    assert statuses == Counter({401: 12})
    assert 1 <= peak <= MAX_CHECKS


def test_a_cookie_captured_before_sign_out_is_refused_after(db: Path) -> None:
    users = {"alice": hash_password(PASSWORD, n=16)}
    app = make_app(db, users)
    with TestClient(app, base_url=BASE) as c, TestClient(app, base_url=BASE) as other:
        assert sign_in(c).status_code == 303 and sign_in(other).status_code == 303
        captured = c.cookies["iotrate_session"]
        page = c.get("/")
        assert page.status_code == 200
        out = c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        c.cookies.set("iotrate_session", captured)  # the copy an attacker kept
        assert c.get("/api/sites").status_code == 401
        assert c.get("/", follow_redirects=False).status_code == 303
        assert other.get("/api/sites").status_code == 200  # only that session ended


def test_a_password_change_ends_the_users_sessions(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(path, "alice", PASSWORD)
    app = make_app(db, load_users(path), users_file=path)
    with TestClient(app, base_url=BASE) as c:
        assert sign_in(c).status_code == 303
        assert c.get("/api/sites").status_code == 200
        add_user(path, "alice", "a new long password")  # iotrate serve --add-user alice
        assert c.get("/api/sites").status_code == 401
        assert sign_in(c).status_code == 401  # the old password is gone too
        assert sign_in(c, "a new long password").status_code == 303
        assert c.get("/api/sites").status_code == 200


def test_an_old_cost_hash_signs_in_and_is_upgraded(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "users"
    old = hash_password(PASSWORD, n=2**15)  # what iotrate wrote before issue 17
    path.write_text(f"# users\nalice:{old}\nbob:{hash_password('bobs password', n=2**15)}\n")
    assert load_users(path)["alice"] == old  # the format still reads
    app = make_app(db, load_users(path), users_file=path)
    with TestClient(app, base_url=BASE) as c:
        assert sign_in(c).status_code == 303
        upgraded = load_users(path)
        assert upgraded["alice"].startswith(f"scrypt${SCRYPT_N}$8$1$")
        assert verify_password(PASSWORD, upgraded["alice"])
        assert upgraded["bob"].startswith("scrypt$32768$")  # not signed in: left as it was
        assert c.get("/api/sites").status_code == 200  # the upgrade kept the session
    with TestClient(app, base_url=BASE) as again:
        assert sign_in(again).status_code == 303
        assert load_users(path)["alice"] == upgraded["alice"]  # upgraded once


@pytest.mark.parametrize("token", ["é" * 43, "\u202e" + "a" * 42, "日本語"])
def test_a_non_ascii_csrf_field_is_4xx(db: Path, token: str) -> None:
    app = make_app(db, {"alice": hash_password(PASSWORD, n=16)})
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        c.get("/login")
        form = {"username": "alice", "password": PASSWORD, "csrf": token}
        assert c.post("/login", data=form).status_code == 403
        assert sign_in(c).status_code == 303
        r = c.post("/logout", data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 400
        assert c.get("/api/sites").status_code == 200  # still signed in
