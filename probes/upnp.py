"""UPnP control probes: is the device's UPnP control reachable, and (lab only) does its
Internet Gateway Device open firewall ports for anyone who asks?

Both start the same way: a unicast SSDP M-SEARCH to the device, the LOCATION of each answer
(only those on the device's own address — a device does not get to point us elsewhere), the
description XML (size-capped, parsed by defusedxml), then its service list. The PASSIVE probe
calls one read-only action per control service (``GetExternalIPAddress`` on an IGD,
``GetTransportInfo``/``GetVolume`` on a media renderer) to confirm that anyone on the LAN can
drive it. The WRITE probe adds a port mapping with a short lease and deletes it at once.
"""

from __future__ import annotations

import re
import secrets
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from iotrate.models import Finding, Transport
from iotrate.net import printable

from ._clients.io import (
    XML_CAP,
    find_text,
    http_client,
    http_request,
    local_name,
    parse_xml,
    same_host,
    udp_collect,
)
from .base import (
    AttemptBudget,
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
)

# Sent by unicast to the device, but with the multicast HOST line: libupnp (and other stacks)
# ignore an M-SEARCH whose HOST is not 239.255.255.250:1900.
MSEARCH = (
    "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
)
IGD_SERVICES = ("WANIPConnection", "WANPPPConnection")
# Read-only actions that prove a control service obeys anyone: service -> (action, arguments).
READ_ACTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "WANIPConnection": ("GetExternalIPAddress", {}),
    "WANPPPConnection": ("GetExternalIPAddress", {}),
    "AVTransport": ("GetTransportInfo", {"InstanceID": "0"}),
    "RenderingControl": ("GetVolume", {"InstanceID": "0", "Channel": "Master"}),
}
MAX_LOCATIONS = 4


@dataclass(frozen=True)
class UpnpService:
    service_type: str
    control_url: str
    location: str
    device: str

    @property
    def short(self) -> str:
        m = re.search(r":service:([^:]+):", self.service_type)
        return m.group(1) if m else self.service_type


def ssdp_locations(answers: list[bytes], allowed: frozenset[str]) -> list[str]:
    found: list[str] = []
    for data in answers:
        m = re.search(rb"(?im)^location:\s*(\S+)", data)
        if not m:
            continue
        url = m.group(1).decode("latin-1")
        if urlsplit(url).scheme in ("http", "https") and same_host(url, allowed):
            if url not in found:
                found.append(url)
    return found[:MAX_LOCATIONS]


def services_from_description(xml: bytes, location: str) -> list[UpnpService]:
    root = parse_xml(xml)
    base = find_text(root, "URLBase") or location
    out = []
    for device in root.iter():
        if local_name(device.tag) != "device":
            continue
        name = find_text(device, "friendlyName") or ""
        for child in device:
            if local_name(child.tag) != "serviceList":
                continue
            for svc in child:
                stype = find_text(svc, "serviceType") or ""
                control = find_text(svc, "controlURL") or ""
                if stype and control:
                    out.append(UpnpService(stype, urljoin(base, control), location, name))
    # One entry per control URL: nested devices repeat their parents' lists in iter().
    unique = {(s.service_type, s.control_url): s for s in out}
    return list(unique.values())


def soap_envelope(service_type: str, action: str, args: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in args.items())
    return (
        '<?xml version="1.0"?>\r\n'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:{action} xmlns:u="{service_type}">{inner}</u:{action}>'
        "</s:Body></s:Envelope>"
    ).encode()


async def soap_call(
    client: Any, svc: UpnpService, action: str, args: dict[str, str], allowed: frozenset[str]
) -> tuple[int, str]:
    """POST one SOAP action; (HTTP status, UPnP error code or '')."""
    if not same_host(svc.control_url, allowed):
        raise NotApplicable(f"control URL {svc.control_url} is not on the device")
    reply = await http_request(
        client,
        "POST",
        svc.control_url,
        cap=64 * 1024,
        headers={
            "Content-Type": 'text/xml; charset="utf-8"',
            "SOAPAction": f'"{svc.service_type}#{action}"',
        },
        content=soap_envelope(svc.service_type, action, args),
    )
    code = ""
    if reply.status >= 400:
        m = re.search(rb"<(?:\w+:)?errorCode>\s*(\d+)", reply.body)
        code = m.group(1).decode() if m else ""
    return reply.status, code


async def discover(ctx: ProbeContext, step: float) -> list[UpnpService]:
    """The device's UPnP control services, found from its own SSDP answer."""
    port = ctx.service.port if ctx.service else 1900
    answers = await udp_collect(ctx.address, port, MSEARCH.encode(), step)
    if not answers:
        raise ProbeFailed(f"SSDP {port}: no answer to a unicast M-SEARCH within {step:g}s")
    locations = ssdp_locations(answers, ctx.allowed_hosts)
    if not locations:
        raise NotApplicable("SSDP answers carry no LOCATION on the device's own address")
    services: list[UpnpService] = []
    async with http_client(step) as client:
        for loc in locations:
            reply = await http_request(client, "GET", loc, cap=XML_CAP)
            if reply.status != 200:
                continue
            services.extend(services_from_description(reply.body, loc))
    return services


class UpnpControl(Probe):
    id = "svc.upnp"
    title = "UPnP control reachable without authentication"
    protocols = frozenset({"ssdp"})
    ports = frozenset({1900})
    transport = Transport.UDP
    timeout = 20.0
    checks = ("svc.upnp.igd-control", "svc.api.unauthenticated")

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        step = min(3.0, ctx.timeout / 5)
        services = await discover(ctx, step)
        answered: list[tuple[UpnpService, str]] = []
        async with http_client(step) as client:
            for svc in services:
                read = READ_ACTIONS.get(svc.short)
                if read is None:
                    continue
                status, _code = await soap_call(client, svc, read[0], read[1], ctx.allowed_hosts)
                if status == 200:
                    answered.append((svc, read[0]))
        findings = []
        port = ctx.service.port if ctx.service else 1900
        igd = [(s, a) for s, a in answered if s.short in IGD_SERVICES]
        if igd:
            svc, action = igd[0]
            findings.append(
                make_finding(
                    "svc.upnp.igd-control",
                    f"{svc.short} at {svc.control_url} answered {action} without authentication",
                    port,
                    {
                        "service": svc.service_type,
                        "control_url": svc.control_url,
                        "location": svc.location,
                        "device": printable(svc.device, 80),
                    },
                    evidence_port=urlsplit(svc.control_url).port,
                )
            )
        media = [(s, a) for s, a in answered if s.short not in IGD_SERVICES]
        if media:
            names = sorted({s.short for s, _ in media})
            first = media[0][0]
            findings.append(
                make_finding(
                    "svc.api.unauthenticated",
                    f"UPnP media control: {', '.join(names)} at {first.control_url} answered "
                    f"{', '.join(sorted({a for _, a in media}))} without "
                    "authentication: anyone on the LAN can drive playback and volume",
                    port,
                    {
                        "path": urlsplit(first.control_url).path,
                        "services": names,
                        "location": first.location,
                        "device": printable(first.device, 80),
                    },
                    evidence_port=urlsplit(first.control_url).port,
                )
            )
        return findings


def _local_address(host: str) -> str:
    """The scanner's address as the device sees it (a UDP connect sends no packet)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return str(s.getsockname()[0])


class UpnpPortMapping(Probe):
    """Lab only: asks the IGD to forward an unused external port to the scanner, for 60 s, and
    deletes the mapping at once; a device that accepts lets any program open the firewall."""

    id = "svc.upnp.portmap"
    title = "UPnP IGD accepts port mappings"
    protocols = frozenset({"ssdp"})
    ports = frozenset({1900})
    transport = Transport.UDP
    intrusiveness = Intrusiveness.WRITE
    timeout = 20.0
    checks = ("svc.upnp.portmapping-accepted",)
    budget = AttemptBudget(max_attempts=2, delay_s=0.0)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        step = min(3.0, ctx.timeout / 5)
        igd = [s for s in await discover(ctx, step) if s.short in IGD_SERVICES]
        if not igd:
            raise NotApplicable("no UPnP Internet Gateway Device (WANIPConnection) here")
        svc = igd[0]
        external = 40000 + secrets.randbelow(20000)
        internal = _local_address(ctx.address)
        args = {
            "NewRemoteHost": "",
            "NewExternalPort": str(external),
            "NewProtocol": "TCP",
            "NewInternalPort": str(external),
            "NewInternalClient": internal,
            "NewEnabled": "1",
            "NewPortMappingDescription": "iotrate test (deleted at once)",
            "NewLeaseDuration": "60",
        }
        delete = {"NewRemoteHost": "", "NewExternalPort": str(external), "NewProtocol": "TCP"}
        async with http_client(step) as client:
            status, code = await soap_call(client, svc, "AddPortMapping", args, ctx.allowed_hosts)
            if status != 200 and code == "725":  # OnlyPermanentLeasesSupported
                args["NewLeaseDuration"] = "0"
                status, code = await soap_call(
                    client, svc, "AddPortMapping", args, ctx.allowed_hosts
                )
            if status != 200:
                return []
            removed, _ = await soap_call(
                client, svc, "DeletePortMapping", delete, ctx.allowed_hosts
            )
        return [
            make_finding(
                "svc.upnp.portmapping-accepted",
                f"{svc.control_url} accepted AddPortMapping TCP {external} -> "
                f"{internal}:{external}; "
                + ("deleted again" if removed == 200 else "DELETE FAILED (lease 60 s)"),
                ctx.service.port if ctx.service else 1900,
                {
                    "external_port": external,
                    "lease_s": int(args["NewLeaseDuration"]),
                    "deleted": removed == 200,
                    "control_url": svc.control_url,
                },
                evidence_port=urlsplit(svc.control_url).port,
            )
        ]
