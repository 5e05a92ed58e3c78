"""mDNS / DNS-SD discovery with python-zeroconf.

First the DNS-SD meta-query (``_services._dns-sd._udp.local.``) lists the service types present;
those, plus the types IoT devices commonly announce (some responders ignore the meta-query),
are browsed and each instance resolved to its addresses, port and TXT record. Only instances
whose address is a scan target become observations: an answer about another host is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from iotrate.identify.observations import MdnsObservation
from iotrate.net import printable

log = logging.getLogger(__name__)

META = "_services._dns-sd._udp.local."
#: Types IoT devices announce, browsed even when the meta-query gets no answer. Sources: the
#: DNS-SD service type registry (dns-sd.org / IANA), Home Assistant's zeroconf matchers.
COMMON_TYPES = (
    "_googlecast._tcp.local.",
    "_airplay._tcp.local.",
    "_raop._tcp.local.",
    "_hap._tcp.local.",
    "_homekit._tcp.local.",
    "_http._tcp.local.",
    "_https._tcp.local.",
    "_ipp._tcp.local.",
    "_ipps._tcp.local.",
    "_printer._tcp.local.",
    "_pdl-datastream._tcp.local.",
    "_spotify-connect._tcp.local.",
    "_sonos._tcp.local.",
    "_matter._tcp.local.",
    "_matterc._udp.local.",
    "_hue._tcp.local.",
    "_esphomelib._tcp.local.",
    "_amzn-wplay._tcp.local.",
    "_androidtvremote2._tcp.local.",
    "_companion-link._tcp.local.",
    "_device-info._tcp.local.",
    "_workstation._tcp.local.",
    "_smb._tcp.local.",
    "_rtsp._tcp.local.",
    "_mqtt._tcp.local.",
    "_coap._udp.local.",
    "_miio._udp.local.",
    "_shelly._tcp.local.",
    "_elg._tcp.local.",
    "_nanoleafapi._tcp.local.",
    "_viziocast._tcp.local.",
    "_dlna._tcp.local.",
    "_daap._tcp.local.",
    "_ssh._tcp.local.",
    "_sftp-ssh._tcp.local.",
)
MAX_TYPES = 64
MAX_INSTANCES = 512
MAX_PROPS = 64


def _decode_props(raw: dict[bytes, bytes | None]) -> dict[str, str]:
    props: dict[str, str] = {}
    for k, v in list(raw.items())[:MAX_PROPS]:
        key = printable(k, 64)
        props[key] = "" if v is None else printable(v, 512)
    return props


async def discover(
    allowed: Collection[str], *, listen: float = 2.0, interfaces: list[str] | None = None
) -> list[MdnsObservation]:
    """Browse for ``listen`` seconds and return one observation per resolved instance."""
    try:
        azc = AsyncZeroconf(
            interfaces=interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only
        )
    except (OSError, ValueError) as exc:
        log.info("mDNS unavailable: %s", exc)
        return []
    types: set[str] = set(COMMON_TYPES)
    instances: set[tuple[str, str]] = set()

    def on_type(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if service_type == META and len(types) < MAX_TYPES + len(COMMON_TYPES):
            if name.endswith("._tcp.local.") or name.endswith("._udp.local."):
                if name not in types:
                    types.add(name)
                    with contextlib.suppress(Exception):
                        browsers.append(AsyncServiceBrowser(zeroconf, name, handlers=[on_instance]))

    def on_instance(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed and len(instances) < MAX_INSTANCES:
            instances.add((service_type, name))

    browsers: list[AsyncServiceBrowser] = []
    observations: list[MdnsObservation] = []
    try:
        browsers.append(AsyncServiceBrowser(azc.zeroconf, META, handlers=[on_type]))
        browsers.extend(
            AsyncServiceBrowser(azc.zeroconf, t, handlers=[on_instance]) for t in COMMON_TYPES
        )
        await asyncio.sleep(listen)
        infos = [AsyncServiceInfo(t, n) for t, n in sorted(instances)]
        await asyncio.gather(
            *(i.async_request(azc.zeroconf, 1500) for i in infos), return_exceptions=True
        )
        for info in infos:
            addresses = [a for a in info.parsed_addresses() if a in allowed or not allowed]
            for address in addresses:
                observations.append(
                    MdnsObservation(
                        device=address,
                        kind="mdns",
                        service_type=info.type.removesuffix(".local.").removesuffix("."),
                        name=printable(info.name, 255),
                        port=info.port,
                        properties=_decode_props(info.properties),
                    )
                )
    finally:
        for b in browsers:
            with contextlib.suppress(Exception):
                await b.async_cancel()
        await azc.async_close()
    return observations
