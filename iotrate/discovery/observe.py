"""Gather what every discovery source saw of a host as observations, and identify it.

The observations are exactly the records ``iotrate identify`` reads, so a live scan can be
replayed offline (``--save-observations``) and identification improved without rescanning.
SSDP and mDNS listen for a couple of seconds for the whole network at once; each host's
pipeline waits for those shared answers only when it reaches identification, so the port scan
and banner grabbing of every host overlap with the listening.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from iotrate.discovery import http as http_fetch
from iotrate.discovery import mdns, ssdp
from iotrate.discovery.portscan import HostScan
from iotrate.identify.engine import Identifier
from iotrate.identify.observations import (
    BannerObservation,
    MacObservation,
    MdnsObservation,
    Observation,
    SsdpObservation,
)
from iotrate.models import Device, Service

log = logging.getLogger(__name__)

HTTP_PROTOCOLS = frozenset({"http", "https", "upnp", "airplay", "ipp", "wsd", "daap"})


@dataclass
class SharedDiscovery:
    """SSDP and mDNS listeners started once per scan; hosts collect their share later."""

    allowed: frozenset[str]
    listen: float = 2.0
    _task: asyncio.Task[tuple[list[SsdpObservation], list[MdnsObservation]]] | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        async def both() -> tuple[list[SsdpObservation], list[MdnsObservation]]:
            results = await asyncio.gather(
                ssdp.discover(self.allowed, listen=self.listen),
                mdns.discover(self.allowed, listen=self.listen),
                return_exceptions=True,
            )
            found: list[list[SsdpObservation] | list[MdnsObservation]] = []
            for name, res in zip(("ssdp", "mdns"), results, strict=True):
                if isinstance(res, BaseException):
                    self.errors.append(f"{name} discovery failed: {type(res).__name__}: {res}")
                    found.append([])
                else:
                    found.append(res)
            return found[0], found[1]  # type: ignore[return-value]

        self._task = asyncio.create_task(both())

    async def results(self) -> tuple[list[SsdpObservation], list[MdnsObservation]]:
        if self._task is None:
            return [], []
        return await self._task

    async def for_host(self, address: str) -> list[Observation]:
        ssdp_obs, mdns_obs = await self.results()
        out: list[Observation] = [o for o in ssdp_obs if o.device == address]
        out.extend(o for o in mdns_obs if o.device == address)
        return out

    async def addresses(self) -> set[str]:
        ssdp_obs, mdns_obs = await self.results()
        return {o.device for o in (*ssdp_obs, *mdns_obs)}

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


_URL_PORT = re.compile(r"(?i)\bhttps?://[^/\s<>\"']*?:(\d{1,5})[/<\s\"']")


def announced_ports(observations: Iterable[Observation]) -> set[int]:
    """TCP ports a device names itself: mDNS SRV ports, the port of an SSDP LOCATION, and
    explicit ports in its UPnP description (presentationURL, URLBase, control URLs)."""
    ports: set[int] = set()
    for o in observations:
        if isinstance(o, MdnsObservation) and o.port:
            ports.add(int(o.port))
        elif isinstance(o, SsdpObservation):
            loc = str((o.headers or {}).get("LOCATION") or (o.headers or {}).get("location") or "")
            try:
                parts = urlsplit(loc)
                if parts.scheme in ("http", "https"):
                    ports.add(parts.port or (443 if parts.scheme == "https" else 80))
            except ValueError:
                pass
            ports.update(int(m) for m in _URL_PORT.findall(str(o.description_xml or "")[:262144]))
    return {n for n in ports if 0 < n < 65536}


def service_observations(address: str, services: Iterable[Service]) -> list[Observation]:
    return [
        BannerObservation(
            device=address, kind="banner", port=s.port, protocol=s.protocol, banner=s.banner
        )
        for s in services
        if s.banner
    ]


async def http_observations(
    address: str, services: Collection[Service], timeout: float = 4.0
) -> list[Observation]:
    targets = [
        s
        for s in services
        if s.transport.value == "tcp" and (s.protocol in HTTP_PROTOCOLS or s.port in (80, 443))
    ][:8]
    if not targets:
        return []
    async with http_fetch.new_client(timeout) as client:
        got = await asyncio.gather(
            *(http_fetch.fetch(client, address, s.port, bool(s.tls), timeout) for s in targets)
        )
    return [o for o in got if o is not None]


async def host_observations(h: HostScan, mac: str | None) -> list[Observation]:
    """What this host itself told us: its MAC, its banners and its web servers' answers."""
    obs: list[Observation] = []
    if mac:
        obs.append(MacObservation(device=h.address, kind="mac", mac=mac))
    obs.extend(service_observations(h.address, h.services))
    obs.extend(await http_observations(h.address, h.services))
    return obs


def _cert_subject(value: object) -> str | None:
    if isinstance(value, dict):
        subject = value.get("subject")
        return subject if isinstance(subject, str) else None
    return None


def probe_observations(device: Device) -> list[Observation]:
    """What the probes learnt that also says what the device is: an SNMP sysDescr, an ADB
    banner, a TLS certificate's subject. Devices that announce nothing over SSDP or mDNS often
    name themselves there, so the final identification weighs these too."""
    obs: list[Observation] = []
    for f in device.findings:
        for e in f.evidence:
            data = e.data
            if f.check == "svc.snmp.readable" and isinstance(data.get("sysDescr"), str):
                obs.append(
                    BannerObservation(
                        device=device.address,
                        kind="banner",
                        port=e.port or 161,
                        protocol="snmp",
                        banner=data["sysDescr"],
                    )
                )
            elif f.check == "svc.adb.unauthenticated" and isinstance(data.get("banner"), str):
                obs.append(
                    BannerObservation(
                        device=device.address,
                        kind="banner",
                        port=e.port or 5555,
                        protocol="adb",
                        banner=data["banner"],
                    )
                )
            elif f.check == "tls.summary" and (subject := _cert_subject(data.get("certificate"))):
                obs.append(
                    BannerObservation(
                        device=device.address,
                        kind="banner",
                        port=e.port,
                        protocol="x509",
                        banner=subject,
                    )
                )
    return obs


_IDENTIFIER: Identifier | None = None


def identifier() -> Identifier:
    """One fingerprint database per process: loading it costs a few hundred milliseconds."""
    global _IDENTIFIER
    if _IDENTIFIER is None:
        _IDENTIFIER = Identifier()
    return _IDENTIFIER


def identify_device(device: Device, observations: list[Observation]) -> Device:
    """The device with its identity, names and discovery sources filled in."""
    if not observations:
        return device
    identity = identifier().identify_device(device.address, observations)
    names: list[str] = list(device.names)
    for o in observations:
        name = None
        if isinstance(o, SsdpObservation) and o.description_xml:
            name = _friendly_name(o.description_xml)
        elif isinstance(o, MdnsObservation):
            name = (o.properties or {}).get("fn") or (o.name or "").split("._", 1)[0] or None
        if name and name not in names and len(names) < 8:
            names.append(name[:128])
    sources = list(device.sources)
    for kind in sorted({o.kind for o in observations}):
        if kind not in sources:
            sources.append(kind)
    return device.model_copy(
        update={
            "identity": identity,
            "category": identity.category,
            "vendor": identity.vendor,
            "model": identity.model,
            "firmware": identity.firmware,
            "names": names,
            "sources": sources,
        }
    )


def _friendly_name(xml: str) -> str | None:
    from iotrate.identify.facts import parse_xml

    root = parse_xml(xml)
    if root is None:
        return None
    for el in root.iter():
        if str(el.tag).rsplit("}", 1)[-1] == "friendlyName" and el.text:
            return el.text.strip()[:128] or None
    return None
