"""Real servers for the storage and fleet tests: PostgreSQL 15 and mosquitto, started in the
foreground on loopback with free ports and torn down after.

Both are Debian packages (``postgresql-15``, ``mosquitto``). Where one is missing the tests
that need it skip, except under ``CI`` where a missing server is a failure: CI must run them.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system user from a
private folder it owns; durability is switched off (fsync) because the tests kill nothing but
the clients, and the benchmark starts its own server with the defaults.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.executables import IOTRATE
from support.hosts import missing

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on {port}: {log.read_text()[-2000:]}")


class PostgresServer:
    """A throwaway cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, *, fast: bool = True) -> None:
        if not (PG_BIN / "postgres").exists():
            missing("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
        self.root = Path(tempfile.mkdtemp(prefix="iotrate-pg-"))
        self.port = free_port()
        self.user = "iotrate"
        as_root = os.geteuid() == 0
        self._owner = "postgres" if as_root else None
        if as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o755)  # the socket folder must be reachable by clients
        data = self.root / "data"
        self.log = self.root / "postgres.log"
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust",
             "-E", "UTF8", "--locale=C.UTF-8", "-N"],
            check=True, capture_output=True, user=self._owner, env=env, timeout=120,
        )  # fmt: skip
        extra = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(data), "-k", str(self.root),
                 "-p", str(self.port), "-h", "127.0.0.1", *(extra if fast else [])],
                stdout=log, stderr=subprocess.STDOUT, user=self._owner, env=env,
            )  # fmt: skip
        self._names = itertools.count(1)
        try:
            wait_port(self.port, self.proc, self.log)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url().replace("+psycopg", ""), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def new_database(self, prefix: str = "t") -> str:
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


class Mosquitto:
    """mosquitto in the foreground with its own config, persistence file and log.

    ``stop()`` and ``start()`` again keep the persistence file, so queued QoS 1 messages and
    persistent sessions survive a broker restart the way they do in production."""

    def __init__(
        self,
        extra_config: str = "",
        unix_socket: bool = False,
        plain: bool = True,
        autosave: str = "autosave_on_changes true\nautosave_interval 1",
    ) -> None:
        """``plain``: an anonymous TCP listener on :attr:`port`; without it, ``extra_config``
        defines the listener on that port (``{port}`` and ``{folder}`` are filled in)."""
        if not Path(MOSQUITTO).exists():
            missing("mosquitto is not installed (apt-get install mosquitto)")
        # Started as root, mosquitto drops to its own user: its folder must be that user's.
        self.folder = folder = Path(tempfile.mkdtemp(prefix="iotrate-mqtt-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "mosquitto", "mosquitto")
        folder.chmod(0o755)
        self.port = free_port()
        self.socket = folder / "mqtt.sock" if unix_socket else None
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        lines = [
            "persistence true",
            f"persistence_location {folder}/",
            "persistence_file mosquitto.db",
            # Tests: save after every change (a crash, too, loses nothing acknowledged); at
            # volume that rewrites the whole file per message, so the benchmark saves by time.
            autosave,
            "max_queued_messages 100000",
            "log_type all",
        ]
        if plain:
            lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if self.socket is not None:
            lines += [f"listener 0 {self.socket}", "allow_anonymous true"]
        extra = extra_config.format(port=self.port, folder=folder)
        self.config.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.port, self.proc, self.log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits, as on a service restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_text(self, since: int = 0) -> str:
        return self.log.read_bytes()[since:].decode("utf-8", "replace")


def wait_for(check: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


#: Collectors a test started and has not stopped; conftest kills what a failed test left.
RUNNING: set[subprocess.Popen[bytes]] = set()


def kill_leftovers() -> None:
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class CollectorProcess:
    """``iotrate collector`` as a separate process, so the test can SIGKILL it."""

    def __init__(self, broker: Mosquitto, db: str, log: Path, client_id: str, *extra: str) -> None:
        self.broker, self.db, self.log, self.client_id = broker, db, log, client_id
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, own_group: bool = False) -> None:
        """``own_group``: in a process group of its own, which :meth:`signal_group` can
        signal as a terminal's Ctrl-C or a service manager would."""
        mark = len(self.broker.log_text())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [IOTRATE, "collector", "--broker", self.broker.url, "--db", self.db,
                 "--client-id", self.client_id, *self.extra],
                stderr=out, stdout=out, start_new_session=own_group,
            )  # fmt: skip
        RUNNING.add(self.proc)
        # Subscribed (or its session resumed): from here on the broker keeps its messages.
        wait_for(
            lambda: f"{self.client_id} 1 iotrate/v1/#" in self.broker.log_text(mark),
            "the collector's subscription",
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def signal_group(self, sig: int) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=30)

    def writer_pids(self) -> list[int]:
        """The collector's writer processes (spawned interpreters; not multiprocessing's
        resource tracker), once they are all up."""
        assert self.proc is not None
        pid = self.proc.pid

        def writers() -> list[int]:
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                return []
            out = []
            for kid in kids:
                try:
                    cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"spawn_main" in cmd:
                    out.append(int(kid))
            return out

        wait_for(lambda: len(writers()) >= 2, "the writer processes")
        return writers()


def gone(pid: int) -> bool:
    """The process has ended (or is a zombie waiting for whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
