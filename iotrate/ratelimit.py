"""Per-host politeness: at most N new connections (or UDP probes) per second to any one host.

A cheap camera or plug runs a TCP stack sized for one app and one cloud connection; a burst of
SYNs from a port sweep followed by a TLS scanner's hundreds of handshakes can hang or reboot
it. Concurrency limits bound how many connections are open at once, not how fast new ones
arrive, so every place that opens a connection to a device asks this module first:
``iotrate.net`` (port scan, banners, probes' TCP/TLS/UDP), ``probes._io`` (HTTP, UDP), the
discovery HTTP client, the FTP and SNMP probes and sslyze's sockets.

The limiter spaces each host's connections at least ``1/rate`` apart (a token bucket of depth
one), which keeps every one-second window at or below ``rate`` — the property a device sees.
Slots are booked and granted under a lock, so threads (sslyze, ftplib, paho) and coroutines
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

#: The default rate. A curated port sweep (about 60 ports) takes under a second per host and
#: the TLS scanner's ~600 handshakes per port about 6 s, while an unpaced scan reaches about 300
#: new connections a second on one device. Fragile devices deserve less: ``--rate-limit 10``.
DEFAULT_RATE = 100.0
#: The window a fast paced host's connections are counted in (HostRateLimiter._slotted).
SLOT = 0.01


class HostRateLimiter:
    """Per-host connection grants at least ``1/rate`` seconds apart; ``rate`` 0: no limit.

    Two steps, because a waiter can wake late (a busy event loop, a descheduled thread) and a
    schedule booked in advance would then let it go right before the next one, two
    connections at once. :meth:`reserve` books a tentative slot, which spreads the waiters out;
    :meth:`grant`, called when the wait is over, lets the caller go only if the last
    connection actually made to that host is at least an interval ago, and otherwise says how
    much longer to wait. The grant is what the device sees, so its spacing is the guarantee.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0:
            raise ValueError("rate must be 0 (unlimited) or positive")
        self.rate = rate
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._next: dict[str, float] = {}  # the next free tentative slot per host
        self._last: dict[str, float] = {}  # when the last connection was granted per host
        self._host_interval: dict[str, float] = {}  # a host paced apart (the lab sweep's pacer)
        self._slots: dict[str, tuple[int, int]] = {}  # fast paced host: (slot number, used)
        self._lock = threading.Lock()

    def set_host_rate(self, host: str, rate: float | None) -> None:
        """Pace ``host`` at ``rate`` rather than the scan's rate (the lab profile's sweep adapts
        it to what the device tolerates); None goes back to the scan's rate."""
        with self._lock:
            self._slots.pop(host, None)
            if rate is None:
                self._host_interval.pop(host, None)
            else:
                self._host_interval[host] = 1.0 / rate

    def _slotted(self, host: str, interval: float) -> float:
        """A fast paced host: a sleep cannot space connections a fraction of a millisecond
        apart (each wake-up is late by about that much), so it gets ``SLOT * rate`` of them per
        ``SLOT`` instead, which keeps every second at or below its rate. Lock held."""
        now = self._clock()
        number = int(now / SLOT)
        quota = max(1, round(SLOT / interval))
        current, used = self._slots.get(host, (number, 0))
        if current != number:
            used = 0
        if used < quota:
            self._slots[host] = (number, used + 1)
            self._last[host] = now
            return 0.0
        return (number + 1) * SLOT - now + 1e-6

    def reserve(self, host: str) -> float:
        """Book ``host``'s next slot: 0 means go now (granted), else wait that long, then ask
        :meth:`grant`."""
        with self._lock:
            interval = self._host_interval.get(host, self._interval)
            if interval == 0:
                return 0.0
            if host in self._host_interval and interval < SLOT / 2:
                return self._slotted(host, interval)
            now = self._clock()
            last = self._last.get(host)
            slot = max(now, self._next.get(host, now))
            if last is not None:
                slot = max(slot, last + interval)
            self._next[host] = slot + interval
            if slot <= now:
                self._last[host] = now
                return 0.0
            return slot - now

    def grant(self, host: str) -> float:
        """After a reserved wait: 0 if the caller may connect now (recorded), else how much
        longer to wait before asking again."""
        with self._lock:
            interval = self._host_interval.get(host, self._interval)
            if interval == 0:
                return 0.0
            if host in self._host_interval and interval < SLOT / 2:
                return self._slotted(host, interval)
            now = self._clock()
            last = self._last.get(host)
            if last is not None and now < last + interval:
                return last + interval - now
            self._last[host] = now
            self._next[host] = max(self._next.get(host, now), now + interval)
            return 0.0


_active: HostRateLimiter | None = None


@contextmanager
def limiting(rate: float, clock: Callable[[], float] = time.monotonic) -> Iterator[HostRateLimiter]:
    """Make a limiter of ``rate`` the active one for the duration (one scan)."""
    global _active
    previous, limiter = _active, HostRateLimiter(rate, clock)
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
        while delay > 0:
            await asyncio.sleep(delay)
            delay = limiter.grant(host)


def throttle_sync(host: str) -> None:
    """Wait for the active limiter's next slot to ``host`` (worker threads)."""
    limiter = _active
    if limiter is not None:
        delay = limiter.reserve(host)
        while delay > 0:
            time.sleep(delay)
            delay = limiter.grant(host)


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
