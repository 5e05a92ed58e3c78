"""Signed commands to agents, over the broker.

Anyone who may publish on the broker could otherwise make every agent scan at will, so a
command carries an HMAC-SHA256 over its canonical JSON with a key shared between the sender and
the site's agent (``--command-key FILE``), a timestamp (accepted within :data:`WINDOW` seconds)
and a random nonce (accepted once; the agent keeps seen nonces in its spool, so a restart does
not reopen the window). The only command there is, is ``scan-now``: it takes no argument, and
an agent never runs anything but its own configured scan.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iotrate.errors import UsageError

COMMAND_SCHEMA = "iotrate.command/1"
COMMANDS = ("scan-now",)
WINDOW = 300.0  # seconds a command stays valid either side of the agent's clock
MAX_COMMAND_BYTES = 4096
MIN_KEY_BYTES = 16
_NONCE = re.compile(r"[0-9a-f]{16,64}")


class CommandRejected(ValueError):
    """A command that is not accepted: bad signature, stale, replayed, unknown, malformed."""


def load_key(path: Path) -> bytes:
    """The shared secret: the file's content (e.g. ``head -c 32 /dev/urandom | base64``)."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the command key {path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(f"the command key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _mac(key: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()


def sign(key: bytes, site: str, command: str, *, now: float | None = None) -> bytes:
    """The payload of a command for the agent of ``site``."""
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    fields: dict[str, Any] = {
        "schema": COMMAND_SCHEMA,
        "site": site,
        "command": command,
        "issued_at": round(time.time() if now is None else now, 3),
        "nonce": secrets.token_hex(16),
    }
    return _canonical({**fields, "mac": _mac(key, fields)})


def _seconds(value: object) -> float | None:
    """A JSON number as a finite float, or None: JSON brings ints too large for a float,
    NaN and Infinity, and True (which Python counts as an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        value = max(min(value, 10**18), -(10**18))
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


def verify(
    key: bytes,
    site: str,
    payload: bytes,
    first_use: Callable[[str, float, float], bool],
    *,
    now: float | None = None,
) -> str:
    """The command in ``payload`` if it is authentic, fresh, new and known; else raises
    :class:`CommandRejected`. ``first_use(nonce, now, window)`` records the nonce and says
    whether it is new. The signature is checked before anything in the payload is believed."""
    now = time.time() if now is None else now
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected("too large")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise CommandRejected("not JSON") from None
    if not isinstance(data, dict) or set(data) != {
        "schema",
        "site",
        "command",
        "issued_at",
        "nonce",
        "mac",
    }:
        raise CommandRejected("not a command")
    mac = data.pop("mac")
    # Compared as bytes: compare_digest refuses str holding anything but ASCII (TypeError),
    # and a publisher without the key chooses this field. surrogatepass: JSON can carry
    # lone surrogates, which plain UTF-8 cannot encode.
    given = mac.encode("utf-8", "surrogatepass") if isinstance(mac, str) else b""
    if not hmac.compare_digest(given, _mac(key, data).encode("ascii")):
        raise CommandRejected("bad signature")
    if data["schema"] != COMMAND_SCHEMA or data["site"] != site:
        raise CommandRejected("for another site or version")
    issued = _seconds(data["issued_at"])
    if issued is None or abs(now - issued) > WINDOW:
        raise CommandRejected("expired or from the future (check the clocks)")
    nonce = data["nonce"]
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise CommandRejected("bad nonce")
    if data["command"] not in COMMANDS:
        raise CommandRejected(f"unknown command {str(data['command'])[:40]!r}")
    if not first_use(nonce, now, WINDOW):
        raise CommandRejected("replayed")
    return str(data["command"])
