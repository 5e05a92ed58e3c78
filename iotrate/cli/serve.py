"""``iotrate serve``: the dashboard over the history database, in a browser.

Registered in :mod:`iotrate.cli.main`. It listens on 127.0.0.1 unless told otherwise, and refuses
any address other hosts can reach unless ``--allow-remote`` is given *and* a users file exists,
so a dashboard of every weakness on a network is never handed out by accident. Exit codes as
for every command: 2 for a usage error or a refused address, 3 when the database or the port
cannot be opened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iotrate.cli.console import fail
from iotrate.errors import IotrateError, RuntimeFailure, UsageError

# Heavy modules (uvicorn, starlette, SQLAlchemy) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.

if TYPE_CHECKING:
    from iotrate.storage import Store

DEFAULT_PORT = 8765


def store_opener(db: str | None) -> tuple[Callable[[], Store], str]:
    """How to open the database ``--db`` names, and how to name it in messages (a URL
    without its password).

    A path or ``sqlite:///`` file must exist: the dashboard only reads, and an empty database
    made by a typo would show as "no scans" instead of an error. Server URLs
    (``postgresql+psycopg://…``) go to the store as given.
    """
    from iotrate import storage

    location: str | Path = (
        db if db is not None and storage.is_url(db) else Path(db or storage.default_path())
    )
    url = storage.database_url(location)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise UsageError(
                f"no history database at {path} (run 'iotrate scan' first, or give --db)"
            )
        where = str(path)
    else:
        where = url.render_as_string(hide_password=True)
    return (lambda: storage.Store(location)), where


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc}") from exc
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, opened here so a busy port is one clear error (exit 3)."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc}") from exc
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from exc
    return sock


def _add_user(name: str, users: Path) -> None:
    from iotrate.web.auth import add_user, check_password, check_username

    check_username(name)
    password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    check_password(password)
    new = add_user(users, name, password)
    typer.echo(f"{'added' if new else 'changed the password of'} user {name} in {users}")
    if not new:
        typer.echo(f"a running dashboard ends {name}'s sessions at their next request")


def serve_cmd(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL_OR_PATH",
            help="History database: a path or a database URL (default: $IOTRATE_DB, else "
            "iotrate.db in the user data dir).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
    ] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a non-loopback --host; needs a users file (login is then required).",
        ),
    ] = False,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            metavar="FILE",
            dir_okay=False,
            help="Users file (default: dashboard-users in the user config dir). When it "
            "exists, everyone signs in.",
        ),
    ] = None,
    add_user: Annotated[
        str | None,
        typer.Option(
            "--add-user",
            metavar="NAME",
            help="Add a user to the users file (or change their password), prompting for the "
            "password, and exit.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Serve HTTPS with this certificate chain (PEM); needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="The certificate's private key (PEM).",
        ),
    ] = None,
) -> None:
    """Serve the dashboard: sites, devices and grades with filters, each device's label,
    findings and grade over time, and the difference between two scans. Read-only."""
    from iotrate.web.auth import default_users_path, load_users

    users_path = users or default_users_path()
    try:
        if add_user is not None:
            _add_user(add_user, users_path)
            return
        if (tls_cert is None) != (tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together")
        if users is not None and not users.exists():
            raise UsageError(f"no users file {users} (create it with 'iotrate serve --add-user')")
        accounts = load_users(users_path) if users_path.exists() else None
        if accounts is not None and not accounts:
            raise UsageError(f"the users file {users_path} lists no user")
        loopback = is_loopback(host)
        if not loopback and not allow_remote:
            raise UsageError(
                f"{host} is reachable from other machines; the dashboard shows every weakness "
                "found, so pass --allow-remote (with a users file) to share it"
            )
        if not loopback and accounts is None:
            raise UsageError(
                f"--allow-remote needs a users file ({users_path} does not exist): add a user "
                "with 'iotrate serve --add-user NAME'"
            )
        opener, where = store_opener(db)
        opener().close()  # fails here, with exit 3, rather than on the first page
        sock = listen(host, port)
    except IotrateError as exc:
        fail(exc)
    run(sock, host, opener, accounts, loopback, tls_cert, tls_key, where, users_path)


def run(
    sock: socket.socket,
    host: str,
    opener: Callable[[], Store],
    accounts: dict[str, str] | None,
    loopback: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    where: str,
    users_path: Path | None = None,
) -> None:
    import uvicorn

    from iotrate.web import DashboardConfig, create_app

    bound_port = sock.getsockname()[1]
    allowed = None
    if accounts is None:
        # Loopback without login: only requests that name this machine (DNS rebinding).
        allowed = frozenset({"127.0.0.1", "localhost", "::1", host.strip("[]").lower()})
    app = create_app(
        DashboardConfig(
            open_store=opener,
            users=accounts,
            allowed_hosts=allowed,
            https=tls_cert is not None,
            users_file=users_path if accounts is not None else None,
        )
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        limit_concurrency=64,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    scheme = "https" if tls_cert else "http"
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    login = "sign-in required" if accounts is not None else "no sign-in (loopback only)"
    # The one line a user (and the tests) read to find the address.
    print(
        f"iotrate dashboard on {scheme}://{shown}:{bound_port}/ reading {where}; {login}; "
        "Ctrl-C to stop",
        flush=True,
    )
    if not loopback and tls_cert is None:
        print(
            "iotrate: warning: passwords cross the network unencrypted; use --tls-cert/"
            "--tls-key or a TLS reverse proxy",
            file=sys.stderr,
            flush=True,
        )
    try:
        # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again; stopping the
        # dashboard that way is the normal end, not an interruption.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    print("iotrate dashboard stopped", flush=True)
