"""Files that hold secrets or findings: created readable by their owner only, and refused when
others can read them.

The history database lists every device's weaknesses, a signing key or command key lets its
holder speak for the lab, and the trusted-keys file decides whose signature counts. On a
shared machine the default umask (0022) would hand all of that to every local user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from iotrate.errors import RuntimeFailure, UsageError


def refuse_if_shared(path: Path, what: str = "secret file") -> None:
    """One-line refusal of a secret file that group or others can read or write: a secret
    others could read is no longer one, and the user should learn it now, not after a leak."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path}: {what} is readable by other users; run: chmod 600 {path}")


def read_secret(path: Path, what: str = "secret file") -> bytes:
    refuse_if_shared(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, readable by its owner only (0600, folder 0700 when
    iotrate creates it); written beside and renamed, so a reader never sees half a file."""
    try:
        make_private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc}") from exc


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) 0700; an existing folder is left as it is,
    since it may be shared on purpose."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 (its folder 0700) unless it exists, before a library
    (SQLite) creates it with the umask's 0644; SQLite gives its -wal and -shm files the
    database file's mode, so they stay private too. An existing file is left as it is."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
