"""Who may see the dashboard when it listens beyond localhost: a users file, password hashes,
a throttle on failed logins, the signed session and the sign-in pages themselves.

The users file is one ``name:hash`` line per user, written by ``iotrate serve --add-user``.
Hashes are scrypt from the standard library with a per-user random salt and the parameters
stored in the hash, so they can be raised later without breaking old entries. scrypt is memory
hard, which is what slows an offline guesser down on GPUs; n=2**15, r=8 costs ~32 MB and a few
tens of milliseconds per check here.

The sign-in pages are module-level handlers like the others (:mod:`.handlers`): the users and
the throttle come from :class:`SignIn` on ``app.state.sign_in``, the rest from
:func:`.state.dashboard`. The only POSTs the dashboard accepts are sign-in and sign-out, both
with a CSRF token from the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from iotrate.errors import RuntimeFailure, UsageError

from .state import dashboard, error, render

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD, MAX_PASSWORD = 10, 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SCHEME = "scrypt"
SESSION_COOKIE = "iotrate_session"
SESSION_HOURS = 12
OPEN_PATHS = ("/login", "/favicon.ico")


def default_users_path() -> Path:
    """Next to the user's other iotrate settings, never inside the history database: whoever
    can read scan results should not also get the password hashes."""
    from platformdirs import user_config_path

    return user_config_path("iotrate") / "dashboard-users"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def hash_password(password: str, n: int = SCRYPT_N) -> str:
    """``n`` is for tests, which hash with a cheap cost; every real entry uses the default."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return f"{_SCHEME}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = encoded.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown hash scheme {scheme!r}")
    ni, ri, pi = int(n), int(r), int(p)
    if not (2 <= ni <= 2**20 and ni & (ni - 1) == 0 and 1 <= ri <= 32 and 1 <= pi <= 16):
        raise ValueError("scrypt parameters out of range")
    return (
        ni,
        ri,
        pi,
        base64.b64decode(salt, validate=True),
        base64.b64decode(digest, validate=True),
    )


@cache
def _dummy() -> str:
    """Checked against when the user name is unknown, so a wrong name costs as long as a
    wrong password and timing does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, encoded: str | None) -> bool:
    n, r, p, salt, digest = _parse_hash(encoded or _dummy())
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD]
    ok = hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)
    return ok and encoded is not None


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise UsageError(
            "a user name is 1-64 letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return password


def load_users(path: Path) -> dict[str, str]:
    """User name -> hash. A malformed line is an error naming the line, never a user quietly
    dropped (or, worse, let in)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no users file {path} (create it with 'iotrate serve --add-user')"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(f"cannot read the users file {path}: {exc}") from exc
    users: dict[str, str] = {}
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        try:
            if not sep or not USERNAME.fullmatch(name):
                raise ValueError("expected NAME:HASH")
            _parse_hash(encoded)
        except ValueError as exc:
            raise UsageError(f"{path}, line {no}: not a valid user entry ({exc})") from exc
        users[name] = encoded
    return users


def add_user(path: Path, name: str, password: str) -> bool:
    """Write (or replace) one user's entry; returns whether the user is new. The file is
    replaced atomically and readable by its owner only."""
    check_username(name)
    check_password(password)
    users = load_users(path) if path.exists() else {}
    new = name not in users
    users[name] = hash_password(password)
    body = "# iotrate dashboard users: name:scrypt$N$r$p$salt$hash (iotrate serve --add-user)\n"
    body += "".join(f"{n}:{h}\n" for n, h in sorted(users.items()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise RuntimeFailure(f"cannot write the users file {path}: {exc}") from exc
    return new


class LoginThrottle:
    """At most ``limit`` failed logins per ``window`` seconds, counted per client address and
    per user name: the address limit stops one guesser, the name limit stops many guessers
    sharing one target. A success clears the name's count, never the address's, or a guesser
    holding one account could reset its own limit."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._fails: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._fails.get(key, ()) if now - t < self.window]
        if times:
            self._fails[key] = times
        else:
            self._fails.pop(key, None)
        return times

    def wait(self, *keys: str) -> float:
        """Seconds until these keys may try again (0: now)."""
        now = self.clock()
        worst = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                worst = max(worst, times[-self.limit] + self.window - now)
        return worst

    def failed(self, *keys: str) -> None:
        now = self.clock()
        if len(self._fails) >= self.max_keys:
            for key in list(self._fails):
                self._recent(key, now)
        if len(self._fails) >= self.max_keys:
            # Still full of live entries: forget the oldest rather than grow without bound.
            oldest = min(self._fails, key=lambda k: self._fails[k][-1])
            del self._fails[oldest]
        for key in keys:
            self._fails.setdefault(key, []).append(now)

    def succeeded(self, key: str) -> None:
        self._fails.pop(key, None)


# --- the session --------------------------------------------------------------------------------


class LoginRequired:
    """Without a signed-in session, pages redirect to the login form and the API answers 401."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or path in OPEN_PATHS
            or path.startswith("/static/")
            or scope.get("session", {}).get("user")
        ):
            await self.app(scope, receive, send)
            return
        response: Response
        if path.startswith("/api/"):
            response = JSONResponse({"error": "login required"}, status_code=401)
        else:
            query = bytes(scope.get("query_string") or b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            response = RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        await response(scope, receive, send)


def session_middleware(secret: str | None, https: bool) -> list[Middleware]:
    """Signed session cookies (a random key when none is given: sessions then end with the
    process), and behind them the door for anyone not signed in."""
    return [
        Middleware(
            SessionMiddleware,
            secret_key=secret or secrets.token_urlsafe(32),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_HOURS * 3600,
            same_site="strict",
            https_only=https,
        ),
        Middleware(LoginRequired),
    ]


def safe_next(value: str) -> str:
    """Where to go after login: a path on this site only, never another host."""
    parts = urlsplit(value)
    if (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 for c in value)
    ):
        return "/"
    return value


def csrf_ok(session: Mapping[str, Any], token: object) -> bool:
    """Whether a form's token is the session's, compared in constant time."""
    expected = session.get("csrf", "")
    return isinstance(token, str) and bool(expected) and hmac.compare_digest(token, expected)


# --- the sign-in pages --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """Who may sign in and the throttle on failures, kept on ``app.state.sign_in``."""

    users: Mapping[str, str] = field(default_factory=dict)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def sign_in(request: Request) -> SignIn:
    state: SignIn = request.app.state.sign_in
    return state


def _login_page(
    request: Request,
    nxt: str,
    message: str = "",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return render(
        request, "login.html.j2", status=status, headers=headers, nav="", next=nxt, message=message
    )


async def login_form(request: Request) -> Response:
    if not dashboard(request).login:
        return RedirectResponse("/", status_code=303)
    return _login_page(request, safe_next(request.query_params.get("next", "")))


async def login_post(request: Request) -> Response:
    if not dashboard(request).login:
        return RedirectResponse("/", status_code=303)
    async with request.form(max_files=0, max_fields=8, max_part_size=4096) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    nxt = safe_next(fields.get("next", "/"))
    name = fields.get("username", "")[:64]
    password = fields.get("password", "")
    if not csrf_ok(request.session, fields.get("csrf", "")):
        request.session["csrf"] = secrets.token_urlsafe(32)
        return _login_page(request, nxt, "The form had expired. Please sign in again.", status=403)
    gate = sign_in(request)
    client = request.client.host if request.client else "unknown"
    keys = (f"addr:{client}", f"user:{name.lower()}")
    wait = gate.throttle.wait(*keys)
    if wait > 0:
        return _login_page(
            request,
            nxt,
            f"Too many failed sign-ins. Try again in {math.ceil(wait)} seconds.",
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    ok = await run_in_threadpool(verify_password, password, gate.users.get(name))
    if not ok:
        gate.throttle.failed(*keys)
        return _login_page(request, nxt, "Wrong user name or password.", status=401)
    gate.throttle.succeeded(keys[1])
    request.session.clear()  # a fresh session: nothing chosen before login carries over
    request.session["user"] = name
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    login = dashboard(request).login
    if login:
        async with request.form(max_files=0, max_fields=4, max_part_size=1024) as form:
            token = form.get("csrf")
        if not csrf_ok(request.session, token):
            return error(request, 400, "the sign-out form had expired; reload and try again")
        request.session.clear()
    return RedirectResponse("/login" if login else "/", status_code=303)
