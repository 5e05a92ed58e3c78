"""The Starlette application: routes, middleware and the security headers.

Every page works without JavaScript and none is allowed to run (the Content-Security-Policy
has no script source at all), so a device string that slipped past escaping still could not
execute. The app is read-only: the only POSTs are login and logout.

The handlers are module-level (:mod:`.handlers`, and the sign-in pages in :mod:`.auth`) and
find what they need on ``app.state`` (:mod:`.state`). The store is used from one dedicated
thread (:class:`.state.Database`): a history store holds one connection, which may not be
shared between threads, and reads are short; one thread serialises them without locks, and
keeps slow reads off the event loop. Results are cached there too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotrate import __version__
from iotrate.models import GRADES
from iotrate.reports.html import GRADE_MEANING
from iotrate.storage.store import Store

from . import auth, charts, handlers, views
from .auth import LoginThrottle, SignIn, Users
from .state import DashboardState, Database

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class DashboardConfig:
    """How one dashboard runs. ``users`` None means no login (loopback only, enforced by the
    CLI); ``allowed_hosts`` then pins the Host header so a web page elsewhere cannot read the
    dashboard through DNS rebinding."""

    open_store: Callable[[], Store]
    users: Mapping[str, str] | None = None
    allowed_hosts: frozenset[str] | None = None
    https: bool = False
    session_secret: str | None = None
    throttle: LoginThrottle | None = None
    #: The users file ``users`` came from: read again when it changes (a changed password
    #: ends that user's sessions), and where old-cost hashes are upgraded at sign-in.
    users_file: Path | None = None


# --- middleware -------------------------------------------------------------------------------


class SecurityHeaders:
    """Headers on every response, error pages and static files included."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h["Content-Security-Policy"] = CSP
                h["X-Content-Type-Options"] = "nosniff"
                h["X-Frame-Options"] = "DENY"
                h["Referrer-Policy"] = "no-referrer"
                h["Cross-Origin-Opener-Policy"] = "same-origin"
                h["Cross-Origin-Resource-Policy"] = "same-origin"
                h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not static:
                    h["Cache-Control"] = "no-store"
                if self.https:
                    h["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_of(header: str) -> str:
    """The host part of a Host header, lower case, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class HostCheck:
    """Refuses requests whose Host header is not one of ours (DNS rebinding defence)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = host_of(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                response = PlainTextResponse("unexpected Host header", status_code=421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- the app ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("iotrate.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        grades=GRADES,
        grade_keys=views.GRADE_KEYS,
        severities=views.SEVERITIES,
        sorts=views.SORTS,
        grade_meaning=GRADE_MEANING,
        grade_bar=charts.grade_bar,
        history_chart=charts.history_chart,
        version=__version__,
    )
    return env


def create_app(config: DashboardConfig) -> Starlette:
    login = config.users is not None
    h = handlers
    routes = [
        Route("/", h.OVERVIEW.html),
        Route("/devices", h.DEVICES.html),
        Route("/devices/{key:path}", h.DEVICE.html),
        Route("/scans", h.SCANS.html),
        Route("/scans/{scan_id}", h.SCAN.html),
        Route("/diff", h.DIFF.html),
        Route("/api/sites", h.OVERVIEW.api),
        Route("/api/devices", h.DEVICES.api),
        Route("/api/devices/{key:path}", h.DEVICE.api),
        Route("/api/scans", h.SCANS.api),
        Route("/api/scans/{scan_id}/result", h.scan_result),
        Route("/api/scans/{scan_id}", h.SCAN.api),
        Route("/api/diff", h.DIFF.api),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login_post, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/favicon.ico", h.favicon),
        Mount("/static", StaticFiles(packages=[("iotrate.web", "static")]), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders, https=config.https)]
    if config.allowed_hosts is not None:
        middleware.append(Middleware(HostCheck, allowed=config.allowed_hosts))
    if login:
        middleware += auth.session_middleware(config.session_secret, config.https)
    db = Database(config.open_store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            db.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: h.http_error},
        lifespan=lifespan,
    )
    app.state.dashboard = DashboardState(db, Jinja2Templates(env=_environment()), login)
    app.state.sign_in = SignIn(
        Users(config.users or {}, config.users_file if login else None),
        config.throttle or LoginThrottle(),
    )
    return app
