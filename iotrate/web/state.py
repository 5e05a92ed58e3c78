"""What every request handler reaches through ``request.app.state``: the store's reading
thread, the templates, whether sign-in is on, and the two ways of answering with a page.

:func:`iotrate.web.app.create_app` puts one :class:`DashboardState` there; the handlers
(:mod:`.handlers`, and the sign-in pages in :mod:`.auth`) are module-level functions that take
everything from it, so none of them closes over the app being built.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from iotrate.storage.store import Store

from . import views

T = TypeVar("T")


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


@dataclass(frozen=True)
class DashboardState:
    """One dashboard's shared parts, kept on ``app.state.dashboard``."""

    db: Database
    templates: Jinja2Templates
    login: bool  # sign-in required (sessions and CSRF tokens in use)


def dashboard(request: Request) -> DashboardState:
    """The state of the app serving this request."""
    state: DashboardState = request.app.state.dashboard
    return state


def render(
    request: Request,
    name: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """A template, with the signed-in user and the session's CSRF token (made on first use)."""
    d = dashboard(request)
    session = request.session if d.login else {}
    if d.login and "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    base = {"user": session.get("user"), "csrf": session.get("csrf", ""), "login": d.login}
    return d.templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status, headers=headers
    )


def error(request: Request, status: int, message: str) -> Response:
    """An error as a page with one clear sentence, or as JSON under ``/api/``."""
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
