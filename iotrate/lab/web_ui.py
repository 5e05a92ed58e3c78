"""A device's web admin UI with a form login, the way embedded routers, hubs and cameras build
theirs: a login page with a per-session CSRF token in a hidden field, a POST that answers with
the same form and an error on a wrong password, and a redirect to the admin page with a session
cookie on the right one. Optionally the account locks after ``--lockout`` failures within
``--window`` seconds; the login page says how many attempts are left before that once a
failure is counted (as many routers' UIs do), and while locked every POST gets 423 with
``Retry-After``.

Why this program and not lighttpd plus a CGI: the behaviour under test (token per session,
failure signal, lockout counter) is state a static server cannot keep, and Python's own
``http.server`` is a real HTTP/1.1 server, so the scanner talks to a real socket and a real
parser. Its ``Server`` header is the device's (``--server``).

Run it with the venv's interpreter: ``python -m iotrate.lab.web_ui --address A --port 80
--user admin --password P [--lockout N]``.
"""

from __future__ import annotations

import argparse
import html
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>{title}</title></head><body>
<h1>{title}</h1>{message}
<form method="post" action="/login.cgi" name="loginForm">
<input type="hidden" name="csrf_token" value="{token}">
<label>User name <input type="text" name="user"></label>
<label>Password <input type="password" name="pwd"></label>
<input type="submit" value="Login">
</form></body></html>
"""

ADMIN_PAGE = """<!DOCTYPE html>
<html><head><title>{title} - Status</title></head><body>
<h1>Status</h1><p>Firmware {firmware}</p><a href="/logout.cgi">Logout</a>
</body></html>
"""


class State:
    """The account and the sessions: one lock, since the server answers from threads."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.tokens: dict[str, str] = {}  # pre-login session id -> CSRF token
        self.sessions: set[str] = set()  # logged-in session ids
        self.failures = 0
        self.last_failure = 0.0
        self.locked_until = 0.0

    def remaining(self, now: float) -> int | None:
        """Failures left before the lock (None: no lockout); a quiet ``--window`` forgets
        earlier failures, as devices' counters do. Call with the lock held."""
        if not self.args.lockout:
            return None
        if now - self.last_failure > self.args.window:
            self.failures = 0
        return int(self.args.lockout - self.failures)


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return str(self.state.args.server)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)

    def _cookie(self, name: str) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _login_page(self, status: int = 200, message: str = "") -> None:
        sid = secrets.token_hex(16)
        token = secrets.token_hex(16)
        with self.state.lock:
            self.state.tokens[sid] = token
        title = html.escape(self.state.args.title)
        page = LOGIN_PAGE.format(title=title, message=message, token=token)
        self._send(status, page, {"Set-Cookie": f"SID={sid}; Path=/; HttpOnly"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in ("/", "/index.html") and self._cookie("SESSION") in self.state.sessions:
            page = ADMIN_PAGE.format(title=self.state.args.title, firmware=self.state.args.firmware)
            self._send(200, page)
        elif path in ("/", "/login.html", "/index.html"):
            with self.state.lock:  # the counter shows on the page itself once it has started
                left = self.state.remaining(time.monotonic())
            failed = left is not None and left < self.state.args.lockout
            self._login_page(message=f"<p>{left} attempts remaining.</p>" if failed else "")
        else:
            self._send(404, "<html><body>Not found</body></html>")

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.path.split("?")[0] != "/login.cgi":
            self._send(404, "<html><body>Not found</body></html>")
            return
        st, args = self.state, self.state.args
        with st.lock:
            now = time.monotonic()
            if now < st.locked_until:
                wait = int(st.locked_until - now) + 1
                self._send(
                    423, "<html><body>Account locked</body></html>", {"Retry-After": str(wait)}
                )
                return
            token = st.tokens.pop(self._cookie("SID") or "", None)
            if token is None or form.get("csrf_token", [""])[0] != token:
                self._send(403, "<html><body>Invalid session, reload the page</body></html>")
                return
            user, pwd = form.get("user", [""])[0], form.get("pwd", [""])[0]
            if secrets.compare_digest(f"{user}\0{pwd}", f"{args.user}\0{args.password}"):
                st.failures = 0
                sid = secrets.token_hex(16)
                st.sessions.add(sid)
                self._send(302, "", {"Location": "/", "Set-Cookie": f"SESSION={sid}; Path=/"})
                return
            st.remaining(now)
            st.failures += 1
            st.last_failure = now
            left = st.remaining(now)
            if left is not None and left <= 0:
                st.locked_until = now + args.lock_seconds
                st.failures = 0
        message = "<p class='error'>Invalid user name or password.</p>"
        if left is not None:
            message += f"<p class='error'>{max(left, 0)} attempts remaining.</p>"
        self._login_page(200, message)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--title", default="Web Configurator")
    p.add_argument("--server", default="httpd")
    p.add_argument("--firmware", default="")
    p.add_argument("--lockout", type=int, default=0, help="failures before the account locks")
    p.add_argument("--lock-seconds", type=float, default=300.0)
    p.add_argument("--window", type=float, default=600.0, help="seconds a failure is counted")
    args = p.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer((args.address, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
