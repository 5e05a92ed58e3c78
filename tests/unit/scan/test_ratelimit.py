"""The per-host rate limit: its arithmetic on a fake clock (no timing assertion), that every
connection path asks it (that a real device sees no more than the limit:
tests/lab/test_ratelimit_lab.py)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotrate import ratelimit
from iotrate.ratelimit import HostRateLimiter, limiting


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reservations_are_spaced_one_interval_apart_per_host() -> None:
    clock = Clock()
    lim = HostRateLimiter(10, clock)
    assert [round(lim.reserve("a"), 9) for _ in range(5)] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert lim.reserve("b") == 0.0  # another host has its own schedule
    clock.now = 5.0  # long idle: the next connection goes at once
    assert lim.reserve("a") == 0.0


def test_no_limit_and_bad_rates() -> None:
    lim = HostRateLimiter(0, Clock())
    assert all(lim.reserve("a") == 0.0 and lim.grant("a") == 0.0 for _ in range(100))
    with pytest.raises(ValueError):
        HostRateLimiter(-1)


def test_a_late_waiter_does_not_bunch_with_the_next() -> None:
    clock = Clock()
    lim = HostRateLimiter(10, clock)
    assert lim.reserve("a") == 0.0  # A goes at 0
    b, c = lim.reserve("a"), lim.reserve("a")
    assert (round(b, 9), round(c, 9)) == (0.1, 0.2)
    clock.now = 0.25  # the loop was busy: B and C both wake now, late
    assert lim.grant("a") == 0.0  # B goes at 0.25
    assert round(lim.grant("a"), 9) == 0.1  # C must wait until 0.35, not go along with B
    clock.now = 0.35
    assert lim.grant("a") == 0.0
    assert round(lim.reserve("a"), 9) == 0.1  # and the schedule continues from there


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1.0, 7.0, 20.0, 100.0]),
    lateness=st.lists(st.floats(min_value=0, max_value=0.5), min_size=2, max_size=40),
    arrivals=st.lists(st.floats(min_value=0, max_value=2.0), min_size=2, max_size=40),
)
def test_granted_connections_are_never_closer_than_the_interval(
    rate: float, lateness: list[float], arrivals: list[float]
) -> None:
    """Simulated waiters arrive at random times and wake late by random amounts; whatever
    happens, the moments they are let through are at least 1/rate apart, and all get through."""
    clock = Clock()
    lim = HostRateLimiter(rate, clock)
    events: list[tuple[float, int, str]] = [(t, i, "arrive") for i, t in enumerate(arrivals)]
    heapq.heapify(events)
    granted: list[float] = []
    while events:
        t, i, kind = heapq.heappop(events)
        clock.now = max(clock.now, t)
        delay = lim.reserve("h") if kind == "arrive" else lim.grant("h")
        if delay == 0:
            granted.append(clock.now)
        else:
            late = lateness[i % len(lateness)] if kind == "arrive" else 0.0
            heapq.heappush(events, (clock.now + delay + late, i, "wake"))
    assert len(granted) == len(arrivals)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert all(g >= 1 / rate - 1e-9 for g in gaps), (rate, gaps)


def test_threads_and_coroutines_share_one_schedule() -> None:
    lim = HostRateLimiter(10, Clock())
    delays: list[float] = []
    lock = threading.Lock()

    def book() -> None:
        d = lim.reserve("a")
        with lock:
            delays.append(round(d, 9))

    threads = [threading.Thread(target=book) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delays) == [round(i / 10, 9) for i in range(20)]  # 20 distinct slots


def test_limiting_installs_and_restores() -> None:
    assert ratelimit.active() is None
    with limiting(5) as outer:
        assert ratelimit.active() is outer
        with limiting(0) as inner:
            assert ratelimit.active() is inner
        assert ratelimit.active() is outer
    assert ratelimit.active() is None


# -- every connection path asks the limiter -----------------------------------------------------


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """The hosts the active limiter was asked about (a fast limit, so nothing waits long)."""
    seen: Counter[str] = Counter()
    with limiting(10_000) as lim:
        real = lim.reserve

        def spy(host: str) -> float:
            seen[host] += 1
            return real(host)

        monkeypatch.setattr(lim, "reserve", spy)
        yield seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_tls_udp_and_probe_helpers_ask(asked: Counter[str]) -> None:
    from iotrate.probes._clients import io as _io

    from iotrate import net

    closed = _free_port()

    async def main() -> None:
        assert (await net.tcp_connect("127.0.0.1", closed, 1.0))[0] is net.PortState.CLOSED
        assert await net.tls_connect("127.0.0.2", closed, 1.0) == (None, None)
        assert await net.udp_exchange("127.0.0.3", closed, b"x", 0.05) is None
        assert await _io.udp_collect("127.0.0.4", closed, b"x", 0.05) == []

    asyncio.run(main())
    assert asked == Counter({"127.0.0.1": 1, "127.0.0.2": 1, "127.0.0.3": 1, "127.0.0.4": 1})


def test_http_clients_ask_once_per_request(asked: Counter[str]) -> None:
    from iotrate.probes._clients import io as _io

    from iotrate.discovery import http as discovery_http

    calls: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, stream=httpx.ByteStream(b"<title>t</title>"))

    async def main() -> None:
        async with _io.http_client(2.0) as client:
            # The transport under the throttle is swapped for a mock: no socket, same path.
            client._transport._inner = httpx.MockTransport(app)  # type: ignore[attr-defined]
            for _ in range(3):
                await _io.http_request(client, "GET", "http://192.0.2.10:80/")
        async with discovery_http.new_client(2.0) as client:
            client._transport._inner = httpx.MockTransport(app)  # type: ignore[attr-defined]
            await discovery_http.fetch(client, "192.0.2.11", 80, False)

    asyncio.run(main())
    assert len(calls) == 4
    assert asked == Counter({"192.0.2.10": 3, "192.0.2.11": 1})


def test_sslyze_ftp_and_snmp_ask(asked: Counter[str]) -> None:
    from iotrate.probes import ftp
    from iotrate.probes._clients import snmp
    from iotrate.probes.tls import engine as tls_engine
    from sslyze.connection_helpers import tls_connection
    from sslyze.server_setting import ServerNetworkLocation

    closed = _free_port()
    tls_engine._pace_sslyze()
    tls_engine._pace_sslyze()  # idempotent: wrapped once
    location = ServerNetworkLocation(hostname="127.0.0.5", port=closed, ip_address="127.0.0.5")
    with pytest.raises(OSError):
        tls_connection._open_socket(location, 1)
    status, _ = ftp._ftp_login("127.0.0.6", closed, "a", "b", 1.0)
    assert status == "error"
    assert asyncio.run(snmp.get("127.0.0.7", closed, "public", [snmp.SYS_DESCR], 0.2)) is None
    assert asked == Counter({"127.0.0.5": 1, "127.0.0.6": 1, "127.0.0.7": 1})
