"""The Starlette application: routes, the database thread, login and the security headers.

Every page works without JavaScript and none is allowed to run (the Content-Security-Policy
has no script source at all), so a device string that slipped past escaping still could not
execute. The app is read-only: the only POSTs are login and logout.

The store is used from one dedicated thread. A history store holds one connection, which may
not be shared between threads, and reads are short; one thread serialises them without locks,
and keeps slow reads off the event loop. Results are cached there too (:class:`ResultCache`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotrate import __version__
from iotrate.errors import IotrateError, UsageError
from iotrate.models import GRADES
from iotrate.reports.html import GRADE_MEANING
from iotrate.storage import Store

from . import charts, views
from .auth import LoginThrottle, verify_password

log = logging.getLogger("iotrate.web")
T = TypeVar("T")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SESSION_COOKIE = "iotrate_session"
SESSION_HOURS = 12
OPEN_PATHS = ("/login", "/favicon.ico")


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


class Database:
    """The store, opened lazily in its own thread, and the result cache that goes with it."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iotrate-web-db")
        self._store: Store | None = None
        self._cache = views.ResultCache()

    def _run(self, fn: Callable[[views.Reader], T]) -> T:
        if self._store is None:
            self._store = self._open()
        return fn(views.Reader(self._store, self._cache))

    async def read(self, fn: Callable[[views.Reader], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already shut down
            self._executor.submit(self._close).result(timeout=10)
        self._executor.shutdown(wait=False)


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
    db = Database(config.open_store)
    templates = Jinja2Templates(env=_environment())
    login = config.users is not None
    users: Mapping[str, str] = config.users or {}
    throttle = config.throttle or LoginThrottle()

    def render(
        request: Request,
        name: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> Response:
        session = request.session if login else {}
        if login and "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        base = {"user": session.get("user"), "csrf": session.get("csrf", ""), "login": login}
        return templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status, headers=headers
        )

    def error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        titles = {400: "Bad request", 404: "Not found", 405: "Not allowed", 503: "Unavailable"}
        return render(
            request,
            "error.html.j2",
            status=status,
            nav="",
            title=titles.get(status, "Error"),
            message=message,
        )

    async def guarded(request: Request, make: Callable[[], Awaitable[Response]]) -> Response:
        """Errors become pages with one clear sentence; a traceback only reaches the log."""
        try:
            return await make()
        except views.NotFound as exc:
            return error(request, 404, str(exc))
        except UsageError as exc:
            return error(request, 400, str(exc))
        except IotrateError as exc:
            log.warning("dashboard: %s", exc)
            return error(request, 503, str(exc))
        except Exception:
            log.exception("dashboard: internal error on %s", request.url.path)
            return error(request, 500, "internal error (the server log has the details)")

    def page(
        template: str, nav: str, build: Callable[[Request], Callable[[views.Reader], Any]]
    ) -> tuple[Callable[[Request], Awaitable[Response]], Callable[[Request], Awaitable[Response]]]:
        async def html(request: Request) -> Response:
            async def make() -> Response:
                view = await db.read(build(request))
                return render(request, template, nav=nav, v=view)

            return await guarded(request, make)

        async def api(request: Request) -> Response:
            async def make() -> Response:
                view = await db.read(build(request))
                return JSONResponse(views.jsonable(view))

            return await guarded(request, make)

        return html, api

    def q(request: Request, name: str) -> str:
        return request.query_params.get(name, "")

    overview = page("overview.html.j2", "overview", lambda r: views.overview_page)
    devices = page(
        "devices.html.j2",
        "devices",
        lambda r: lambda rd: views.devices_page(rd, views.DeviceFilter.parse(r.query_params)),
    )
    device = page(
        "device.html.j2",
        "devices",
        lambda r: (
            lambda rd: views.device_page(
                rd, r.path_params["key"], q(r, "site")[: views.MAX_QUERY], q(r, "scan")[:80]
            )
        ),
    )
    scans = page("scans.html.j2", "scans", lambda r: lambda rd: views.scans_page(rd, q(r, "site")))
    scan = page(
        "scan.html.j2", "scans", lambda r: lambda rd: views.scan_page(rd, r.path_params["scan_id"])
    )
    diff = page(
        "diff.html.j2",
        "diff",
        lambda r: lambda rd: views.diff_page(rd, q(r, "a")[:80], q(r, "b")[:80]),
    )

    async def scan_result(request: Request) -> Response:
        async def make() -> Response:
            def load(rd: views.Reader) -> str:
                return rd.result(rd.summary(request.path_params["scan_id"])).model_dump_json()

            return Response(await db.read(load), media_type="application/json")

        return await guarded(request, make)

    async def login_form(request: Request) -> Response:
        if not login:
            return RedirectResponse("/", status_code=303)
        return render(
            request, "login.html.j2", nav="", next=safe_next(q(request, "next")), message=""
        )

    async def login_post(request: Request) -> Response:
        if not login:
            return RedirectResponse("/", status_code=303)
        async with request.form(max_files=0, max_fields=8, max_part_size=4096) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        nxt = safe_next(fields.get("next", "/"))
        name = fields.get("username", "")[:64]
        password = fields.get("password", "")
        expected = request.session.get("csrf", "")
        if not expected or not hmac.compare_digest(fields.get("csrf", ""), expected):
            request.session["csrf"] = secrets.token_urlsafe(32)
            return render(
                request,
                "login.html.j2",
                status=403,
                nav="",
                next=nxt,
                message="The form had expired. Please sign in again.",
            )
        client = request.client.host if request.client else "unknown"
        keys = (f"addr:{client}", f"user:{name.lower()}")
        wait = throttle.wait(*keys)
        if wait > 0:
            return render(
                request,
                "login.html.j2",
                status=429,
                headers={"Retry-After": str(math.ceil(wait))},
                nav="",
                next=nxt,
                message=f"Too many failed sign-ins. Try again in {math.ceil(wait)} seconds.",
            )
        ok = await run_in_threadpool(verify_password, password, users.get(name))
        if not ok:
            throttle.failed(*keys)
            return render(
                request,
                "login.html.j2",
                status=401,
                nav="",
                next=nxt,
                message="Wrong user name or password.",
            )
        throttle.succeeded(keys[1])
        request.session.clear()  # a fresh session: nothing chosen before login carries over
        request.session["user"] = name
        request.session["csrf"] = secrets.token_urlsafe(32)
        return RedirectResponse(nxt, status_code=303)

    async def logout(request: Request) -> Response:
        if login:
            async with request.form(max_files=0, max_fields=4, max_part_size=1024) as form:
                token = form.get("csrf")
            expected = request.session.get("csrf", "")
            if (
                not isinstance(token, str)
                or not expected
                or not hmac.compare_digest(token, expected)
            ):
                return error(request, 400, "the sign-out form had expired; reload and try again")
            request.session.clear()
        return RedirectResponse("/login" if login else "/", status_code=303)

    async def favicon(request: Request) -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        messages = {404: "There is no such page.", 405: "This page cannot be changed."}
        return error(request, status, messages.get(status, "request refused"))

    routes = [
        Route("/", overview[0]),
        Route("/devices", devices[0]),
        Route("/devices/{key:path}", device[0]),
        Route("/scans", scans[0]),
        Route("/scans/{scan_id}", scan[0]),
        Route("/diff", diff[0]),
        Route("/api/sites", overview[1]),
        Route("/api/devices", devices[1]),
        Route("/api/devices/{key:path}", device[1]),
        Route("/api/scans", scans[1]),
        Route("/api/scans/{scan_id}/result", scan_result),
        Route("/api/scans/{scan_id}", scan[1]),
        Route("/api/diff", diff[1]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(packages=[("iotrate.web", "static")]), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders, https=config.https)]
    if config.allowed_hosts is not None:
        middleware.append(Middleware(HostCheck, allowed=config.allowed_hosts))
    if login:
        middleware += [
            Middleware(
                SessionMiddleware,
                secret_key=config.session_secret or secrets.token_urlsafe(32),
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_HOURS * 3600,
                same_site="strict",
                https_only=config.https,
            ),
            Middleware(LoginRequired),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            db.close()

    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
