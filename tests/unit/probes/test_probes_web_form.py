"""Web form logins against the lab's web UI server (iotrate/lab/web_ui.py, Python's real
http.server) run on 127.0.0.1: the form and its CSRF token found, a default account found, a
vendor default listed for another protocol found, a lockout stopped before it locks the owner
out (the lab's own devices: tests/lab/test_probes_web_form_lab.py)."""

from __future__ import annotations

import argparse
import asyncio
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from http.server import ThreadingHTTPServer

from iotrate.probes import http
from iotrate.probes._login import TIERS
from iotrate.probes.base import AttemptBudget
from support.probes import device

from iotrate.lab import web_ui
from iotrate.models import Device, OutcomeStatus, ProbeOutcome
from iotrate.probing import ProbeRunner


class Form(http.HttpFormLogin):
    budget = AttemptBudget(max_attempts=24, delay_s=0.0)


@contextmanager
def web_ui_server(user: str, password: str, lockout: int = 0) -> Iterator[ThreadingHTTPServer]:
    args = argparse.Namespace(
        user=user, password=password, lockout=lockout, lock_seconds=60.0,
        title="Web Configurator", server="httpd", firmware="1.0", window=600.0,
    )  # fmt: skip
    handler = type("H", (web_ui.Handler,), {"state": web_ui.State(args)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def probe(server: ThreadingHTTPServer, vendor: str | None = None) -> tuple[Device, ProbeOutcome]:
    dev = device((server.server_address[1], "tcp", "http"))
    if vendor:
        dev = dev.model_copy(update={"vendor": vendor})
    (d,) = asyncio.run(ProbeRunner([Form]).run([dev]))
    (o,) = [o for o in d.outcomes if o.port]
    return d, o


def browser_login(server: ThreadingHTTPServer, user: str, password: str) -> bool:
    """The owner logging in as a browser would: fetch the form, post it with its token."""
    base = f"http://127.0.0.1:{server.server_address[1]}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(base + "/", timeout=5).read().decode()
    form = http.find_login_form(page, base + "/")
    assert form is not None
    body = urllib.parse.urlencode(form.data(user, password)).encode()
    landed = opener.open(form.action, data=body, timeout=5).read().decode()
    return "Status" in landed and 'type="password"' not in landed


def test_the_form_its_fields_and_csrf_token_are_found() -> None:
    page = """<html><form action="/login.cgi" method="POST"><input type=hidden name=tok
    value=abc><input name=lang value=en type=hidden><input name=username><input type=password
    name=pass></form><form action=/search><input name=q></form></html>"""
    form = http.find_login_form(page, "http://10.0.0.5:8080/index.html")
    assert form is not None
    assert (form.action, form.method) == ("http://10.0.0.5:8080/login.cgi", "post")
    assert (form.user, form.password, form.hidden) == ("username", "pass",
                                                       {"tok": "abc", "lang": "en"})  # fmt: skip
    assert form.data("admin", "x") == {"tok": "abc", "lang": "en", "username": "admin",
                                       "pass": "x"}  # fmt: skip
    assert http.find_login_form("<form><input name=q></form>", "http://h/") is None


def test_a_default_account_on_a_form_login_is_found() -> None:
    with web_ui_server("admin", "admin") as server:
        d, o = probe(server)
    (f,) = d.findings
    data = f.evidence[0].data
    assert (data["protocol"], data["username"], data["password"]) == ("http-form", "admin", "a***")
    assert data["hidden_fields"] == ["csrf_token"] and data["user_field"] == "user"
    assert o.status is OutcomeStatus.RAN and o.attempts == 1


def test_a_vendor_default_listed_only_for_telnet_opens_the_vendors_web_ui() -> None:
    with web_ui_server("admin", "Zyxel*2012*") as server:
        d, _ = probe(server, vendor="Zyxel Communications Corporation")
        plain, o = probe(server)  # no vendor known: not a pair the web list holds
    (f,) = d.findings
    assert f.evidence[0].data["vendor_specific"] is True
    assert plain.findings == [] and o.status is OutcomeStatus.RAN
    assert (o.reason or "").startswith(f"no known default among {TIERS['http-form']} tried")


def test_a_lockout_after_n_attempts_is_not_tested_and_the_owner_is_not_locked_out() -> None:
    with web_ui_server("admin", "Str0ng-Owner-Pass", lockout=5) as server:
        d, o = probe(server)
        # a second scan reads the counter on the page and posts nothing
        _, again = probe(server)
        assert again.status is OutcomeStatus.FAILED and "before posting" in (again.reason or "")
        assert browser_login(server, "admin", "Str0ng-Owner-Pass")  # still the owner's
    assert d.findings == [] and o.status is OutcomeStatus.FAILED
    assert o.attempts == 3  # 5 - SPARE_ATTEMPTS: it stopped with two failures to spare
    assert "not tested" in (o.reason or "") and "2 attempt(s) remain" in (o.reason or "")


def test_a_locked_account_answering_423_stops_at_once() -> None:
    with web_ui_server("admin", "Str0ng-Owner-Pass", lockout=1) as server:
        assert not browser_login(server, "admin", "typo")  # someone else locked it already
        _, o = probe(server)
    assert o.status is OutcomeStatus.FAILED and o.attempts == 1
    assert "HTTP 423 with Retry-After" in (o.reason or "")
