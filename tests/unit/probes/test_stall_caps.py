"""Stalling peers cost one short deadline, on 127.0.0.1: a TLS port that takes the ClientHello
and says nothing fails the handshake pre-check before sslyze starts; an HTTP server that
drips a byte a second trips the total deadline of the shared HTTP helper. The hostile lab
(tests/lab/test_hostile.py) checks the same against its tarpit and drip devices."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from iotrate.probes._clients import io as _io
from iotrate.probes.base import Policy, ProbeContext, ProbeFailed
from iotrate.probes.tls import engine as tls_engine
from iotrate.probes.tls import probes as tls_probes

from iotrate.models import Device, Service


def _listener() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv, int(srv.getsockname()[1])


@pytest.fixture
def tarpit() -> Iterator[tuple[int, list[bytes]]]:
    """Accepts, reads what the client sends, answers nothing, closes nothing."""
    srv, port = _listener()
    got: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)
            conn.settimeout(2)
            try:
                got.append(conn.recv(4096))
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, got
    finally:
        stop.set()
        thread.join(2)
        for c in held:
            c.close()
        srv.close()


def test_tls_tarpit_fails_the_precheck_before_sslyze(
    tarpit: tuple[int, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, got = tarpit
    monkeypatch.setattr(tls_engine, "HANDSHAKE_PRECHECK_S", 0.5)

    def no_sslyze(*args: object) -> None:
        raise AssertionError("sslyze must not run on a port that never answered")

    monkeypatch.setattr(tls_engine, "_run_sslyze", no_sslyze)
    svc = Service(port=port, protocol="https", tls=True)
    dev = Device(id="127.0.0.1", address="127.0.0.1", services=[svc])
    ctx = ProbeContext(address="127.0.0.1", device=dev, service=svc, policy=Policy.SAFE, timeout=30)
    with pytest.raises(ProbeFailed, match=r"no TLS handshake within 0\.5 s"):
        asyncio.run(tls_probes.TlsProbe().run(ctx))
    # What the tarpit read was a real ClientHello: a TLS handshake record (0x16).
    assert got and got[0][:1] == b"\x16" and len(got[0]) > 40


def test_precheck_passes_a_real_tls_server(tmp_path: Path) -> None:
    """openssl s_server answers the ClientHello: the pre-check lets sslyze have the port."""
    srv, port = _listener()
    srv.close()
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=t", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-key", str(key),
         "-cert", str(cert), "-www", "-quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(tls_engine.handshake_precheck("127.0.0.1", port, 5.0))  # no exception
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def drip() -> Iterator[int]:
    """An HTTP server that sends its answer one byte every 0.2 s, forever."""
    srv, port = _listener()
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        try:
            conn.recv(4096)
            for b in b"HTTP/1.1 200 OK\r\nServer: drip\r\n" + b"X" * 10_000:
                if stop.is_set():
                    break
                conn.sendall(bytes([b]))
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        srv.close()


def test_dripping_http_trips_the_total_deadline(drip: int) -> None:
    """Every byte arrives well within httpx's per-read timeout (2 s), so only a deadline on
    the whole exchange ends it."""

    async def main() -> None:
        async with _io.http_client(2.0) as client:
            await _io.http_request(client, "GET", f"http://127.0.0.1:{drip}/", deadline=1.0)

    with pytest.raises(ProbeFailed, match=r"no complete answer within 1 s"):
        asyncio.run(main())
