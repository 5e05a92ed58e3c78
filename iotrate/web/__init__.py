"""The dashboard behind ``iotrate serve``: stored scans of one or many sites, read-only, in a
browser.

It reads only through :class:`iotrate.storage.Store`'s public read methods, so it shows the same
history the CLI does whatever database is behind it. :mod:`.views` turns stored results into
plain view models (the JSON API returns exactly those), :mod:`.handlers` serve them as pages,
:mod:`.app` puts the routes and middleware together, :mod:`.auth` keeps the door when it
listens beyond localhost.
"""

from __future__ import annotations

from .app import DashboardConfig, create_app

__all__ = ["DashboardConfig", "create_app"]
