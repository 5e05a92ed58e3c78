"""The dashboard's pages and their JSON twins, as module-level handlers.

Each page is a template plus a function from the request to a read of the store; the same read
serves the page and its ``/api/`` route, so the two cannot drift apart. Everything else a
handler needs comes from :func:`.state.dashboard`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from iotrate.errors import IotrateError, UsageError

from . import views
from .state import dashboard, error, render

log = logging.getLogger("iotrate.web")

Build = Callable[[Request], Callable[[views.Reader], Any]]


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


@dataclass(frozen=True)
class Page:
    """A page (:meth:`html`) and its JSON (:meth:`api`) from one read of the store."""

    template: str
    nav: str
    build: Build

    async def html(self, request: Request) -> Response:
        async def make() -> Response:
            view = await dashboard(request).db.read(self.build(request))
            return render(request, self.template, nav=self.nav, v=view)

        return await guarded(request, make)

    async def api(self, request: Request) -> Response:
        async def make() -> Response:
            view = await dashboard(request).db.read(self.build(request))
            return JSONResponse(views.jsonable(view))

        return await guarded(request, make)


def q(request: Request, name: str) -> str:
    return request.query_params.get(name, "")


OVERVIEW = Page("overview.html.j2", "overview", lambda r: views.overview_page)
DEVICES = Page(
    "devices.html.j2",
    "devices",
    lambda r: lambda rd: views.devices_page(rd, views.DeviceFilter.parse(r.query_params)),
)
DEVICE = Page(
    "device.html.j2",
    "devices",
    lambda r: (
        lambda rd: views.device_page(
            rd, r.path_params["key"], q(r, "site")[: views.MAX_QUERY], q(r, "scan")[:80]
        )
    ),
)
SCANS = Page("scans.html.j2", "scans", lambda r: lambda rd: views.scans_page(rd, q(r, "site")))
SCAN = Page(
    "scan.html.j2", "scans", lambda r: lambda rd: views.scan_page(rd, r.path_params["scan_id"])
)
DIFF = Page(
    "diff.html.j2",
    "diff",
    lambda r: lambda rd: views.diff_page(rd, q(r, "a")[:80], q(r, "b")[:80]),
)


async def scan_result(request: Request) -> Response:
    """A stored scan's result, exactly as the scan wrote it."""

    async def make() -> Response:
        def load(rd: views.Reader) -> str:
            return rd.result(rd.summary(request.path_params["scan_id"])).model_dump_json()

        return Response(await dashboard(request).db.read(load), media_type="application/json")

    return await guarded(request, make)


async def favicon(request: Request) -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    messages = {404: "There is no such page.", 405: "This page cannot be changed."}
    return error(request, status, messages.get(status, "request refused"))
