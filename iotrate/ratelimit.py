"""Per-host politeness: at most N new connections (or UDP probes) per second to any one host.

A cheap camera or plug runs a TCP stack sized for one app and one cloud connection; a burst of
SYNs from a port sweep followed by a TLS scanner's hundreds of handshakes can hang or reboot
it. Concurrency limits bound how many connections are open at once, not how fast new ones
arrive, so every place that opens a connection to a device asks this module first:
``iotrate.net`` (port scan, banners, probes' TCP/TLS/UDP), ``probes._io`` (HTTP, UDP), the
discovery HTTP client, the FTP and SNMP probes and sslyze's sockets.

The limiter spaces each host's connections at least ``1/rate`` apart (a token bucket of depth
one), which keeps every one-second window at or below ``rate`` — the property a device sees.
A slot is booked before the wait, under a lock, so threads (sslyze, ftplib) and coroutines
share one schedule. One limiter is active per scan (:func:`limiting`), process-wide because
sslyze's worker threads see neither context variables nor arguments of ours.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

#: The default rate: a curated port sweep (about 60 ports) takes a second per host, and the
#: TLS scanner's few hundred handshakes a few seconds, yet no device sees a flood.
DEFAULT_RATE = 50.0


class HostRateLimiter:
    """Books per-host connection slots ``1/rate`` seconds apart; ``rate`` 0 means no limit."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0:
            raise ValueError("rate must be 0 (unlimited) or positive")
        self.rate = rate
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, host: str) -> float:
        """Book ``host``'s next slot; return how long to wait before using it (0: now)."""
        if self.rate == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + 1.0 / self.rate
            return slot - now


_active: HostRateLimiter | None = None


@contextmanager
def limiting(rate: float) -> Iterator[HostRateLimiter]:
    """Make a limiter of ``rate`` the active one for the duration (one scan)."""
    global _active
    previous, limiter = _active, HostRateLimiter(rate)
    _active = limiter
    try:
        yield limiter
    finally:
        _active = previous


def active() -> HostRateLimiter | None:
    return _active


async def throttle(host: str) -> None:
    """Wait for the active limiter's next slot to ``host`` (coroutines)."""
    limiter = _active
    if limiter is not None:
        delay = limiter.reserve(host)
        if delay > 0:
            await asyncio.sleep(delay)


def throttle_sync(host: str) -> None:
    """Wait for the active limiter's next slot to ``host`` (worker threads)."""
    limiter = _active
    if limiter is not None:
        delay = limiter.reserve(host)
        if delay > 0:
            time.sleep(delay)


class ThrottledTransport(httpx.AsyncBaseTransport):
    """An httpx transport that asks the limiter before each request. The clients that use it
    keep no connection alive, so each request is one new connection to the device."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await throttle(request.url.host)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
