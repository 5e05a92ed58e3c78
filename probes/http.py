"""HTTP: admin pages without a password or with a password posted in clear (PASSIVE), local
device-control APIs that answer without authentication (PASSIVE: documented, read-only
endpoints), and factory passwords on HTTP basic/digest logins (LOGIN, on the device's shared
"web" account budget)."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from typing import Any

import httpx

from iotrate.models import Confidence, Finding
from iotrate.net import printable

from ._clients.credlist import Candidate
from ._clients.io import (
    HttpReply,
    base_url,
    http_client,
    http_get_following,
    http_request,
    parse_xml,
    same_host,
)
from ._login import (
    CHECK,
    WEB_BUDGET,
    Attempt,
    candidates_for,
    cred_finding,
    walk,
)
from .base import (
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

# ------------------------------------------------------------------------ device-control APIs

# Port -> (path, what answers there). Both are documented, unauthenticated by design, and read
# only: Google Cast's setup API and Roku's External Control Protocol.
LOCAL_APIS: dict[int, tuple[str, str]] = {
    8008: ("/setup/eureka_info", "Google Cast setup API"),
    8060: ("/query/device-info", "Roku External Control Protocol"),
}
# Fields whose disclosure helps an attacker (svc.info-disclosure): exact builds, hardware ids.
_SENSITIVE = re.compile(
    r"(?i)(build|version|firmware|software|mac|serial|udn|uuid|device[-_]id|ip[-_]address|"
    r"wifi|ssid|location)"
)


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> dict[str, str]:
    out: dict[str, str] = {}
    if depth > 3:
        return out
    if isinstance(value, dict):
        for k, v in list(value.items())[:100]:
            out.update(_flatten(v, f"{prefix}{k}.", depth + 1))
    elif not isinstance(value, list):
        out[prefix.rstrip(".")] = printable(str(value), 80)
    return out


class LocalApiUnauthenticated(Probe):
    id = "svc.api"
    title = "Device-control API without authentication"
    ports = frozenset(LOCAL_APIS)
    timeout = 10.0
    checks = ("svc.api.unauthenticated", "svc.info-disclosure")

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        path, what = LOCAL_APIS[port]
        url = base_url("http", ctx.address, port) + path
        async with http_client(min(5.0, ctx.timeout / 2)) as client:
            reply = await http_get_following(client, url, ctx.allowed_hosts, max_hops=0)
        if reply.status in (401, 403):
            return []
        if reply.status != 200:
            raise NotApplicable(f"{url} answered {reply.status}: not the {what}")
        fields: dict[str, str]
        try:
            if path.endswith("eureka_info"):
                fields = _flatten(json.loads(reply.body))
            else:
                root = parse_xml(reply.body)
                fields = {
                    child.tag.rsplit("}", 1)[-1]: printable(child.text or "", 80)
                    for child in list(root)[:100]
                }
        except (ValueError, ProbeFailed) as exc:
            raise NotApplicable(f"{url} answered 200 but not with the {what}: {exc}") from exc
        if not fields:
            raise NotApplicable(f"{url} answered an empty document")
        name = fields.get("name") or fields.get("friendly-device-name") or ""
        findings = [
            make_finding(
                "svc.api.unauthenticated",
                f"GET {path} on port {port} returned the device's {what} data "
                f"({len(fields)} fields{', name ' + repr(name) if name else ''}) with no login",
                port,
                {"path": path, "api": what, "fields": sorted(fields)[:40], "name": name},
            )
        ]
        sensitive = sorted(k for k in fields if _SENSITIVE.search(k))
        if sensitive:
            findings.append(
                make_finding(
                    "svc.info-disclosure",
                    f"{path} on port {port} tells anyone {', '.join(sensitive[:8])}",
                    port,
                    {"path": path, "fields": sensitive[:40]},
                )
            )
        return findings


# ----------------------------------------------------------------------------- admin web UI

_LOGIN_WORDS = re.compile(
    r"(?i)\b(log\s?in|sign\s?in|logon|anmelden|connexion|iniciar sesi[oó]n|accedi)\b|登录|ログイン"
)
_SETTING_WORDS = re.compile(
    r"(?i)\b(ssid|wpa2?|wireless|wi-?fi|dhcp|dns|gateway|subnet|netmask|ntp|firmware|"
    r"factory\s?reset|reboot|port\s?forward\w*|upnp|admin\s?password|change\s?password)\b"
)
_SAVE_WORDS = re.compile(r"(?i)\b(save|apply|submit|update)\b")


class _PageParser(HTMLParser):
    """Collects what tells a login page from a settings page: the title, headings, form
    actions, input types and names, and button labels."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.headings: list[str] = []
        self.actions: list[str] = []
        self.inputs: list[tuple[str, str]] = []  # (type, name)
        self.words: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("title", "h1", "h2", "label", "button", "a", "option", "td", "th"):
            self._in = tag
        if tag == "form":
            self.actions.append(a.get("action", ""))
        elif tag in ("input", "select", "textarea"):
            kind = a.get("type", "text" if tag == "input" else tag).lower()
            self.inputs.append((kind, a.get("name", "") or a.get("id", "")))
            if kind in ("submit", "button"):
                self.words.append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in in ("h1", "h2"):
            self.headings.append(data.strip())
        if self._in and len(self.words) < 400:
            self.words.append(data.strip())


def classify_page(html: str) -> tuple[str, dict[str, Any]]:
    """('login-form' | 'login-page' | 'settings' | 'other', details) for an HTML page."""
    parser = _PageParser()
    try:
        parser.feed(html[:200_000])
        parser.close()
    except Exception:  # a broken page is "other", not a crash
        return "other", {}
    title = printable(parser.title, 80)
    details: dict[str, Any] = {"title": title}
    if any(kind == "password" for kind, _ in parser.inputs):
        actions = [a for a in parser.actions if a]
        details["form_actions"] = [printable(a, 80) for a in actions[:5]]
        if actions and all(a.lower().startswith("https://") for a in actions):
            return "other", details  # the password is posted over TLS
        return "login-form", details
    heading_text = " ".join([parser.title, *parser.headings])
    if _LOGIN_WORDS.search(heading_text):
        details["headings"] = [printable(h, 80) for h in parser.headings[:3]]
        return "login-page", details
    text = " ".join([*parser.words, *(n for _, n in parser.inputs)])
    markers = sorted({m.lower() for m in _SETTING_WORDS.findall(text)})
    editable = [k for k, _ in parser.inputs if k not in ("hidden", "submit", "button")]
    if len(markers) >= 3 and editable and _SAVE_WORDS.search(text):
        details["markers"] = markers[:10]
        return "settings", details
    return "other", details


class HttpAdmin(Probe):
    id = "svc.http"
    title = "Admin web UI over plain HTTP"
    protocols = frozenset({"http"})
    timeout = 15.0
    checks = ("svc.http.admin-cleartext", "auth.none.admin")

    def applies(self, device: Any, service: Any) -> bool:
        return super().applies(device, service) and not (service and service.tls)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        url = base_url("http", ctx.address, port) + "/"
        async with http_client(min(6.0, ctx.timeout / 2)) as client:
            reply = await http_get_following(client, url, ctx.allowed_hosts, into_tls=False)
        if reply.redirects and reply.redirects[-1].startswith("https://"):
            return []  # plain HTTP only sends the browser to HTTPS
        challenge = reply.header("www-authenticate")
        if reply.status == 401 and re.search(r"(?i)\b(basic|digest)\b", challenge):
            auth = "digest" if "digest" in challenge.lower() else "basic"
            return [
                self._cleartext(
                    port,
                    auth,
                    f"{reply.url} asks for a password with HTTP {auth} auth "
                    f"({printable(challenge, 100)}) over plain HTTP",
                    {"auth": auth, "url": reply.url, "challenge": printable(challenge, 120)},
                )
            ]
        kind_header = reply.header("content-type").lower()
        if reply.status != 200 or ("html" not in kind_header and b"<" not in reply.body[:200]):
            return []
        kind, details = classify_page(reply.text())
        if kind == "login-form":
            return [
                self._cleartext(
                    port,
                    "form",
                    f"{reply.url} serves a login form with a password field over plain HTTP",
                    {"auth": "form", "url": reply.url, **details},
                )
            ]
        if kind == "login-page":
            return [
                self._cleartext(
                    port,
                    "form",
                    f"{reply.url} serves a login page (title {details.get('title')!r}) over "
                    "plain HTTP; its form is built by script, so the password field was not seen",
                    {"auth": "form", "url": reply.url, **details},
                    confidence=Confidence.PROBABLE,
                )
            ]
        if kind == "settings":
            return [
                make_finding(
                    "auth.none.admin",
                    f"{reply.url} serves an editable settings page "
                    f"({', '.join(details.get('markers', []))}) without asking for a password",
                    port,
                    {"protocol": "http", "shell": False, "url": reply.url, **details},
                    confidence=Confidence.PROBABLE,
                )
            ]
        return []

    def _cleartext(
        self,
        port: int,
        auth: str,
        summary: str,
        data: dict[str, Any],
        confidence: Confidence = Confidence.CONFIRMED,
    ) -> Finding:
        return make_finding("svc.http.admin-cleartext", summary, port, data, confidence=confidence)


# ----------------------------------------------------------------------------------- HTTP


def _challenge(header: str) -> str | None:
    low = header.lower()
    if "digest" in low:
        return "digest"
    if "basic" in low:
        return "basic"
    return None


class HttpDefaultPassword(Probe):
    id = "cred.http"
    title = "Default passwords for HTTP basic/digest logins"
    protocols = frozenset({"http", "https"})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 45.0
    checks = (CHECK,)
    budget = WEB_BUDGET
    budget_group = "web"

    @staticmethod
    def _url(ctx: ProbeContext) -> tuple[str, bool]:
        service = ctx.service
        tls = bool(service and (service.tls or service.protocol == "https"))
        return base_url("https" if tls else "http", ctx.address, service_port(ctx)) + "/", tls

    async def _challenge(
        self, ctx: ProbeContext, client: httpx.AsyncClient
    ) -> tuple[HttpReply, str]:
        url, _tls = self._url(ctx)
        first = await http_get_following(client, url, ctx.allowed_hosts)
        scheme = _challenge(first.header("www-authenticate"))
        if first.status != 401 or scheme is None:
            raise NotApplicable(f"no HTTP basic or digest login at {url} (status {first.status})")
        return first, scheme

    async def precheck(self, ctx: ProbeContext) -> None:
        async with http_client(min(8.0, ctx.timeout / 4)) as client:
            await self._challenge(ctx, client)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        _url, tls = self._url(ctx)
        step = min(8.0, ctx.timeout / 4)
        async with http_client(step) as client:
            first, scheme = await self._challenge(ctx, client)
            target = first.url
            realm = printable(first.header("www-authenticate"), 120)
            status_seen = 0

            async def attempt(c: Candidate) -> Attempt:
                nonlocal status_seen
                auth: httpx.Auth = (
                    httpx.DigestAuth(c.username, c.password)
                    if scheme == "digest"
                    else httpx.BasicAuth(c.username, c.password)
                )
                reply = await http_request(client, "GET", target, auth=auth, cap=4096)
                status_seen = reply.status
                if reply.status in (429, 423, 403, 503):
                    return Attempt.STOP  # throttled, locked or banned: stop before a lockout
                return Attempt.OK if 200 <= reply.status < 400 else Attempt.REJECTED

            found, _why = await walk(ctx.login_gate(), candidates_for(ctx, "http"), attempt)
        if found is None:
            return []
        return [
            cred_finding(
                f"http-{scheme}",
                port,
                found,
                f"{target} answered {status_seen} instead of 401",
                {"auth": scheme, "url": target, "challenge": realm, "tls": tls},
            )
        ]


# ------------------------------------------------------------------------ web form logins

# Where an embedded web UI's login form usually is when "/" does not show it.
FORM_PATHS = ("/", "/login.html", "/login.htm", "/login", "/index.html")
_USER_FIELD = re.compile(r"(?i)user|login|name|account|email|uid")
_FAILED = re.compile(
    r"(?i)invalid|incorrect|wrong|failed|denied|error|not match|try again|bad (user|pass)"
)
_LOCKED = re.compile(r"(?i)locked|too many|temporarily (blocked|disabled)|try again (later|in)")
_REMAINING = re.compile(
    r"(?i)(\d+)\s+(?:login\s+)?(?:attempts?|tries|chances?)\s+(?:remaining|left)"
)
# Stop while the account still has this many failures to spare, so its owner is never locked out.
SPARE_ATTEMPTS = 2


class _FormParser(HTMLParser):
    """Forms of a page: action, method and inputs (name, type, value), nothing else."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "form" and len(self.forms) < 16:
            self._current = {"action": a.get("action", ""), "method": a.get("method", "get"),
                             "inputs": []}  # fmt: skip
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and len(self._current["inputs"]) < 64:
            self._current["inputs"].append(
                (a.get("name", ""), a.get("type", "text").lower(), a.get("value", ""))
            )

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


class LoginForm:
    """A page's login form: where it posts, the user and password fields, and the hidden
    fields (CSRF tokens, language...) a browser would send back unchanged."""

    def __init__(self, page: str, action: str, method: str, user: str | None, password: str,
                 hidden: dict[str, str]) -> None:  # fmt: skip
        self.page, self.action, self.method = page, action, method
        self.user, self.password, self.hidden = user, password, hidden

    def data(self, username: str, password: str) -> dict[str, str]:
        out = dict(self.hidden)
        if self.user:
            out[self.user] = username
        out[self.password] = password
        return out


def find_login_form(html_text: str, page_url: str) -> LoginForm | None:
    """The first form with a password input, or None. The user field is the text-like input
    whose name says so (else the first text-like one); a form without one is password-only."""
    parser = _FormParser()
    try:
        parser.feed(html_text[:200_000])
    except Exception:  # a broken page has no form we can use
        return None
    for form in parser.forms:
        inputs = [(n, t, v) for n, t, v in form["inputs"] if n]
        passwords = [n for n, t, _ in inputs if t == "password"]
        if not passwords:
            continue
        texts = [n for n, t, _ in inputs if t in ("text", "email", "")]
        user = next((n for n in texts if _USER_FIELD.search(n)), texts[0] if texts else None)
        hidden = {n: v for n, t, v in inputs if t == "hidden"}
        action = str(httpx.URL(page_url).join(form["action"] or page_url))
        method = "post" if str(form["method"]).lower() != "get" else "get"
        return LoginForm(page_url, action, method, user, passwords[0], hidden)
    return None


def _lockout_signal(reply: HttpReply) -> str | None:
    """Why to stop now (the device is throttling or about to lock the account), or None."""
    if reply.status in (423, 429, 503) or reply.header("retry-after"):
        return f"HTTP {reply.status}" + (" with Retry-After" if reply.header("retry-after") else "")
    text = reply.text()[:20000]
    if _LOCKED.search(text):
        return "the page says the account is locked or throttled"
    left = _REMAINING.search(text)
    if left and int(left.group(1)) <= SPARE_ATTEMPTS:
        return f"the page says {left.group(1)} attempt(s) remain before a lockout"
    return None


class HttpFormLogin(Probe):
    """Factory passwords on a web UI's login form: find the form (its fields, hidden CSRF
    token), post each candidate from a fresh session as a browser would, and judge success
    from the failure signal: the form (or an error) comes back, or a redirect leads back to
    it, versus a redirect to a page without the form. Shares the device's "web" budget with
    basic/digest and RTSP, and stops at the first lockout sign."""

    id = "cred.http-form"
    title = "Default passwords for web form logins"
    protocols = frozenset({"http", "https"})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 90.0
    checks = (CHECK,)
    budget = WEB_BUDGET
    budget_group = "web"

    async def _form(self, ctx: ProbeContext, client: httpx.AsyncClient) -> LoginForm:
        service = ctx.service
        tls = bool(service and (service.tls or service.protocol == "https"))
        base = base_url("https" if tls else "http", ctx.address, service_port(ctx))
        for path in FORM_PATHS:
            page = await http_get_following(client, base + path, ctx.allowed_hosts)
            if page.status == 401:
                raise NotApplicable(f"{base}{path} asks for HTTP authentication, not a form")
            if page.status != 200:
                continue
            form = find_login_form(page.text(), page.url)
            if form is not None and same_host(form.action, ctx.allowed_hosts):
                return form
        raise NotApplicable(f"no login form on {base} ({', '.join(FORM_PATHS)})")

    async def precheck(self, ctx: ProbeContext) -> None:
        async with http_client(min(8.0, ctx.timeout / 6)) as client:
            await self._form(ctx, client)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(8.0, ctx.timeout / 8)
        async with http_client(step) as client:
            form = await self._form(ctx, client)
        seen: dict[str, Any] = {}
        first_delay: list[float] = []

        async def attempt(c: Candidate) -> Attempt:
            async with http_client(step) as session:  # a fresh session: its own token, cookies
                page = await http_get_following(session, form.page, ctx.allowed_hosts)
                warned = _lockout_signal(page)
                if warned is not None:  # the page itself says the account is close to a lock
                    seen["stop"] = f"before posting: {warned}"
                    return Attempt.STOP
                fresh = find_login_form(page.text(), page.url) or form
                started = time.monotonic()
                reply = await self._post(session, fresh, c)
                took = time.monotonic() - started
                verdict = await self._judge(ctx, session, fresh, reply)
            if verdict is Attempt.OK:
                seen.update(status=reply.status, hidden=sorted(fresh.hidden))
                return verdict
            why = _lockout_signal(reply)
            if why is None and first_delay and took > max(2.0, 3 * first_delay[0]):
                why = f"answers slowed from {first_delay[0]:.1f} s to {took:.1f} s"
            first_delay.append(took)
            if why is not None:
                seen["stop"] = why
                return Attempt.STOP
            return verdict

        try:
            found, _why = await walk(ctx.login_gate(), candidates_for(ctx, "http-form"), attempt)
        except ProbeFailed as exc:
            if "stop" in seen:
                raise ProbeFailed(f"{exc} ({seen['stop']}, at {form.action})") from None
            raise
        if found is None:
            return []
        return [
            cred_finding(
                "http-form",
                port,
                found,
                f"the login form at {form.page} let us in (posted to {form.action}, "
                f"answer {seen['status']})",
                {
                    "url": form.action,
                    "form_page": form.page,
                    "user_field": form.user,
                    "password_field": form.password,
                    "hidden_fields": seen["hidden"],
                    "tls": form.action.startswith("https:"),
                },
            )
        ]

    @staticmethod
    async def _post(session: httpx.AsyncClient, form: LoginForm, c: Candidate) -> HttpReply:
        data = form.data(c.username, c.password)
        if form.method == "get":
            url = str(httpx.URL(form.action).copy_merge_params(data))
            return await http_request(session, "GET", url, cap=65536)
        body = httpx.QueryParams(data).__str__().encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": form.page}
        return await http_request(session, "POST", form.action, content=body, headers=headers,
                                  cap=65536)  # fmt: skip

    @staticmethod
    async def _judge(
        ctx: ProbeContext, session: httpx.AsyncClient, form: LoginForm, reply: HttpReply
    ) -> Attempt:
        """Logged in only when the answer leads to a page without the login form."""
        if reply.status in (301, 302, 303, 307, 308):
            target = str(httpx.URL(reply.url).join(reply.header("location")))
            if not same_host(target, ctx.allowed_hosts) or re.search(r"(?i)login|signin", target):
                return Attempt.REJECTED
            landed = await http_get_following(session, target, ctx.allowed_hosts)
            if landed.status != 200 or find_login_form(landed.text(), landed.url) is not None:
                return Attempt.REJECTED
            return Attempt.OK
        if reply.status != 200:
            return Attempt.REJECTED
        text = reply.text()
        if find_login_form(text, reply.url) is not None or _FAILED.search(text):
            return Attempt.REJECTED
        # A 200 without the form and without an error: only a new session cookie says so.
        return Attempt.OK if reply.header("set-cookie") else Attempt.REJECTED
