"""Who may see the dashboard when it listens beyond localhost: a users file, password hashes,
a throttle on failed logins, the sessions and the sign-in pages themselves.

The users file is one ``name:hash`` line per user, written by ``iotrate serve --add-user``.
Hashes are scrypt from the standard library with a per-user random salt and the parameters
stored in the hash, so they can be raised later without breaking old entries. scrypt is memory
hard, which is what slows an offline guesser down on GPUs; n=2**17, r=8 (OWASP's figure) costs
128 MiB and a few hundred milliseconds per check. An entry of a lower cost (n=2**15 before
issue 17) still signs in, and is rewritten at the new cost when it does.

Each check holding 128 MiB, at most :data:`MAX_CHECKS` run at once (the others queue), and a
sign-in counts as a failure *before* its check (the count is taken back if it succeeds), so
forty wrong passwords sent at once get five answers and thirty-five 429s, not forty answers
and five gigabytes.

The session cookie is signed, but a signature alone cannot be taken back: the cookie also
names a session record kept by the server (:class:`Sessions`), and signing out, changing the
password (``--add-user`` again; the running dashboard sees the users file change) or removing
the user ends it, whatever copies of the cookie exist.

The sign-in pages are module-level handlers like the others (:mod:`.handlers`): the users and
the throttle come from :class:`SignIn` on ``app.state.sign_in``, the rest from
:func:`.state.dashboard`. The only POSTs the dashboard accepts are sign-in and sign-out, both
with a CSRF token from the session.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import tempfile
import threading
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
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
#: The most memory one check may take (scrypt needs 128 * r * n bytes): twice today's cost.
_MAXMEM = 256 * 2**20
#: Password checks running at once; each holds 128 MiB while it runs.
MAX_CHECKS = 2
MAX_SESSIONS = 10_000
_SCHEME = "scrypt"
SESSION_COOKIE = "iotrate_session"
SESSION_HOURS = 12
OPEN_PATHS = ("/login", "/favicon.ico")

log = logging.getLogger("iotrate.web")


def default_users_path() -> Path:
    """Next to the user's other iotrate settings, never inside the history database: whoever
    can read scan results should not also get the password hashes."""
    from platformdirs import user_config_path

    return user_config_path("iotrate") / "dashboard-users"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM + 2**20, dklen=32
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
    if 128 * ri * ni > _MAXMEM:
        # Refused when the file is read, not as a failed check (a 500) at every sign-in.
        raise ValueError(f"scrypt parameters need more than {_MAXMEM // 2**20} MiB")
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


def needs_upgrade(encoded: str) -> bool:
    """Whether an entry was hashed at a lower cost than today's, to be rehashed at the next
    sign-in (the password is only known then)."""
    n, r, p, _, _ = _parse_hash(encoded)
    return n < SCRYPT_N or r < SCRYPT_R or p < SCRYPT_P


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
    _write_users(path, users)
    return new


def upgrade_user(path: Path, name: str, old: str, new: str) -> bool:
    """Replace ``name``'s entry ``old`` by ``new`` (the same password at today's cost), unless
    the file changed it meanwhile (a password change wins over an upgrade)."""
    users = load_users(path)
    if users.get(name) != old:
        return False
    users[name] = new
    _write_users(path, users)
    return True


def _write_users(path: Path, users: Mapping[str, str]) -> None:
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


class Users:
    """The users a running dashboard knows: the file's entries, read again whenever the file
    changes (so a password changed with ``--add-user`` ends that user's sessions at once), or
    a fixed mapping when there is no file (tests)."""

    def __init__(self, fixed: Mapping[str, str], path: Path | None = None) -> None:
        self.path = path
        self._users = dict(fixed)
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._refresh()

    def _refresh(self) -> None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            # Gone: nobody may sign in, and every session ends (fail closed).
            self._users, self._seen = {}, None
            return
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return
        try:
            self._users = load_users(self.path)
        except (UsageError, RuntimeFailure) as exc:
            log.error("dashboard: keeping the users read before: %s", exc)
            return
        self._seen = seen

    def get(self, name: str) -> str | None:
        if self.path is not None:
            with self._lock:
                self._refresh()
        return self._users.get(name)

    def upgrade(self, name: str, old: str, new: str) -> bool:
        """Store ``new`` for ``name`` if the entry is still ``old``; True if it was."""
        with self._lock:
            if self.path is None:
                return False
            if not upgrade_user(self.path, name, old, new):
                return False
            self._seen = None
            self._refresh()
            return True


def _fingerprint(encoded: str) -> bytes:
    return hashlib.sha256(encoded.encode("utf-8")).digest()


@dataclass
class _Session:
    user: str
    password: bytes  # fingerprint of the user's entry when the session began
    expires: float


class Sessions:
    """The server's record of each signed-in session: the cookie only names one. A session
    is valid while its record exists, has not expired and its user's entry in the users file
    is the one it signed in with."""

    def __init__(
        self,
        hours: float = SESSION_HOURS,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = hours * 3600
        self.limit = limit
        self.clock = clock
        self._records: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def start(self, user: str, encoded: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            if len(self._records) >= self.limit:
                for key in [k for k, r in self._records.items() if r.expires <= now]:
                    del self._records[key]
            while len(self._records) >= self.limit:  # still full: the oldest goes
                del self._records[next(iter(self._records))]
            self._records[sid] = _Session(user, _fingerprint(encoded), now + self.lifetime)
        return sid

    def valid(self, sid: object, user: object, encoded: str | None) -> bool:
        if not isinstance(sid, str) or not isinstance(user, str) or encoded is None:
            return False
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return False
            if record.expires <= self.clock():
                del self._records[sid]
                return False
            return record.user == user and hmac.compare_digest(
                record.password, _fingerprint(encoded)
            )

    def end(self, sid: object) -> None:
        if isinstance(sid, str):
            with self._lock:
                self._records.pop(sid, None)

    def rehashed(self, user: str, old: str, new: str) -> None:
        """The user's entry was upgraded, the password unchanged: their sessions stay."""
        before, after = _fingerprint(old), _fingerprint(new)
        with self._lock:
            for record in self._records.values():
                if record.user == user and record.password == before:
                    record.password = after

    def __len__(self) -> int:
        return len(self._records)


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
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._fails.get(key, ()) if now - t < self.window]
        if times:
            self._fails[key] = times
        else:
            self._fails.pop(key, None)
        return times

    def wait(self, *keys: str) -> float:
        """Seconds until these keys may try again (0: now)."""
        with self._lock:
            return self._wait(keys)

    def _wait(self, keys: tuple[str, ...]) -> float:
        now = self.clock()
        worst = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                worst = max(worst, times[-self.limit] + self.window - now)
        return worst

    def reserve(self, *keys: str) -> float:
        """Atomically: the wait for these keys if they must wait, else 0 and the attempt is
        counted as a failure already, before its password check. A check that succeeds is
        taken back (:meth:`forgive`); without the reservation, any number of attempts sent
        at once would all pass the wait before the first of them failed."""
        with self._lock:
            wait = self._wait(keys)
            if wait <= 0:
                self._failed(keys)
            return wait

    def forgive(self, key: str) -> None:
        """Take back the newest counted attempt of ``key`` (a reservation that succeeded)."""
        with self._lock:
            times = self._fails.get(key)
            if times:
                times.pop()
                if not times:
                    del self._fails[key]

    def failed(self, *keys: str) -> None:
        with self._lock:
            self._failed(keys)

    def _failed(self, keys: tuple[str, ...]) -> None:
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
        with self._lock:
            self._fails.pop(key, None)


# --- the session --------------------------------------------------------------------------------


class LoginRequired:
    """Without a signed-in session, pages redirect to the login form and the API answers 401."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        session = scope.get("session", {})
        signed_in = False
        if session.get("user"):
            gate: SignIn = scope["app"].state.sign_in
            user = session["user"]
            encoded = gate.users.get(user) if isinstance(user, str) else None
            signed_in = gate.sessions.valid(session.get("sid"), user, encoded)
            if not signed_in:
                # Signed out, password changed, user removed, expired or from a dashboard
                # run before: the cookie is emptied (and replaced on the way out).
                session.clear()
        if signed_in or path in OPEN_PATHS or path.startswith("/static/"):
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
    """Whether a form's token is the session's, compared in constant time, as bytes:
    ``compare_digest`` raises on a str with anything but ASCII, and the form is the
    client's to fill."""
    expected = session.get("csrf", "")
    if not isinstance(token, str) or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(
        token.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


# --- the sign-in pages --------------------------------------------------------------------------


class CheckSlots:
    """The semaphore that bounds concurrent password checks, made for the running event loop
    (an asyncio semaphore belongs to one loop; the test client runs one per ``with``)."""

    def __init__(self, limit: int = MAX_CHECKS) -> None:
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def __call__(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.limit)
        return self._semaphore


@dataclass(frozen=True)
class SignIn:
    """Who may sign in, the throttle on failures, the sessions and the bound on password
    checks, kept on ``app.state.sign_in``."""

    users: Users = field(default_factory=lambda: Users({}))
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sessions: Sessions = field(default_factory=Sessions)
    slots: CheckSlots = field(default_factory=CheckSlots)


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
    wait = gate.throttle.reserve(*keys)  # counted as failed until the check says otherwise
    if wait > 0:
        return _login_page(
            request,
            nxt,
            f"Too many failed sign-ins. Try again in {math.ceil(wait)} seconds.",
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    encoded = gate.users.get(name)
    async with gate.slots():
        ok = await run_in_threadpool(verify_password, password, encoded)
    if not ok or encoded is None:
        return _login_page(request, nxt, "Wrong user name or password.", status=401)
    gate.throttle.succeeded(keys[1])
    gate.throttle.forgive(keys[0])
    encoded = await _upgraded(gate, name, password, encoded)
    request.session.clear()  # a fresh session: nothing chosen before login carries over
    request.session["user"] = name
    request.session["sid"] = gate.sessions.start(name, encoded)
    request.session["csrf"] = secrets.token_urlsafe(32)
    return RedirectResponse(nxt, status_code=303)


async def _upgraded(gate: SignIn, name: str, password: str, encoded: str) -> str:
    """The user's entry, rehashed at today's cost if it was hashed at a lower one and the
    users file can be written; the entry as it was otherwise."""
    if gate.users.path is None or not needs_upgrade(encoded):
        return encoded
    async with gate.slots():
        new = await run_in_threadpool(hash_password, password)
    try:
        done = await run_in_threadpool(gate.users.upgrade, name, encoded, new)
    except (UsageError, RuntimeFailure) as exc:
        log.warning("dashboard: could not upgrade the password hash of %s: %s", name, exc)
        return encoded
    if not done:
        return encoded
    gate.sessions.rehashed(name, encoded, new)
    log.info("dashboard: upgraded the password hash of %s to scrypt n=%d", name, SCRYPT_N)
    return new


async def logout(request: Request) -> Response:
    login = dashboard(request).login
    if login:
        async with request.form(max_files=0, max_fields=4, max_part_size=1024) as form:
            token = form.get("csrf")
        if not csrf_ok(request.session, token):
            return error(request, 400, "the sign-out form had expired; reload and try again")
        sign_in(request).sessions.end(request.session.get("sid"))
        request.session.clear()
    return RedirectResponse("/login" if login else "/", status_code=303)
