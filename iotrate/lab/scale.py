"""The scale profile: N emulated hosts in one namespace, served by one asyncio program.

Why emulated and not N sets of real daemons: a thousand lighttpd + busybox + mosquitto trios
would need a thousand namespaces and several thousand processes, and the neighbour table every
namespace shares holds at most 1,024 entries (``gc_thresh3``, machine-wide; see
``../shared/LAB-NOTES.md``). The point of this profile is the *scanner's* cost at scale, so the
hosts answer in the protocols' own bytes (HTTP basic auth, a BusyBox-style telnet login, MQTT
3.1.1, TLS from Python's ``ssl``, ADB's CNXN, RTSP) from ``iotrate.lab.scale_emulator``.

Two ways to wire them (``link``):

* ``macvlan`` (on-link, with MACs; the default up to ``MACVLAN_MAX`` hosts): one macvlan
  interface per host on the emulator's veth, each with its own MAC and a ``/32`` address,
  ``arp_ignore=1`` so each answers ARP only for its own address. The scanner sees a flat LAN
  and its ARP sweep finds every host.
* ``routed`` (no ARP at all, so no neighbour-table limit; the default above ``MACVLAN_MAX``):
  every host address sits on the emulator namespace's ``lo`` and the scanner routes the subnet
  to the emulator. Like devices behind a router: no MACs, TCP connect discovery.

Both keep the lab's rules: no namespace has a default route, every process is tracked by PID
and start time, ``lab down`` removes it all. The host mix is fixed by the host's index (host
*i* is the same kind in a lab of 100 or 1,000), so benchmark sizes compare like with like.
"""

from __future__ import annotations

import ipaddress
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iotrate.errors import LabError
from iotrate.lab import certs, netns, procs
from iotrate.lab.table import BRIDGE_NS, NS_PREFIX, SCANNER_NS

EMULATOR_NS = f"{NS_PREFIX}emu"
MAX_HOSTS = 4000
MACVLAN_MAX = 400
DEFAULT_HOSTS = 250
FIRST_HOST = 16  # offset of host 0 in the subnet; .1 is the scanner, .2 the emulator's link
SCANNER_OFFSET, EMULATOR_OFFSET = 1, 2
SCANNER_MAC = "02:1a:b1:00:00:01"
EMULATOR_MAC = "02:1a:b1:00:00:02"
LINKS = ("auto", "macvlan", "routed")
SEED = 2026

# Telnet pairs from the head of Mirai's list (the probe's first tries), and the web pair every
# vendor list starts with: planted default logins the probes' budgets reach.
TELNET_DEFAULTS = (("root", "xc3511"), ("root", "vizxv"), ("admin", "admin"))
WEB_DEFAULT = ("admin", "admin")


@dataclass(frozen=True)
class Kind:
    """One kind of emulated host, its share of the mix and the maker its MAC names."""

    name: str
    weight: int
    category: str
    vendor: str
    oui: str


# The mix: roughly what a busy home or small office shows to a scanner (cameras and DVRs with
# web and RTSP logins, plugs and hubs with MQTT, a few TLS admin UIs, Android TVs, plain web
# UIs, silent hosts and tarpits).
KINDS = (
    Kind("camera", 18, "camera", "Hikvision", "44:47:cc"),
    Kind("dvr", 14, "camera", "Xiongmai", "00:12:41"),
    Kind("plug", 16, "plug", "Tuya", "d4:a6:51"),
    Kind("hub", 10, "hub", "TP-Link", "54:a7:03"),
    Kind("tv", 5, "tv", "TCL", "3c:59:1e"),
    Kind("bulb", 17, "light", "Espressif", "24:0a:c4"),
    Kind("telnet", 5, "router", "ZTE", "00:19:c6"),
    Kind("tarpit", 5, "unknown", "Unknown", "02:1a:b2"),
    Kind("closed", 10, "unknown", "Unknown", "02:1a:b3"),
)


@dataclass(frozen=True)
class ScaleHost:
    """One emulated host: where it is, what it serves (``services``: port -> settings) and
    what a scanner should find (``weaknesses``)."""

    index: int
    name: str
    address: str
    mac: str | None
    kind: str
    category: str
    vendor: str
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    weaknesses: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = [
            {"port": int(k.split("/")[1]), "transport": "tcp", "service": v["service"]}
            for k, v in sorted(self.services.items(), key=lambda kv: int(kv[0].split("/")[1]))
        ]
        return data


def choose_link(hosts: int, link: str) -> str:
    if link not in LINKS:
        raise LabError(f"unknown link {link!r}; known: {', '.join(LINKS)}")
    if link == "auto":
        return "macvlan" if hosts <= MACVLAN_MAX else "routed"
    if link == "macvlan" and hosts > MACVLAN_MAX:
        raise LabError(
            f"macvlan holds at most {MACVLAN_MAX} hosts (the shared neighbour table); "
            "use --link routed"
        )
    return link


def check_size(net: ipaddress.IPv4Network, hosts: int) -> None:
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"the scale profile takes 1 to {MAX_HOSTS} hosts, not {hosts}")
    room = net.num_addresses - FIRST_HOST - 1
    if hosts > room:
        raise LabError(
            f"{hosts} hosts do not fit in {net} (room for {room}); give a larger --subnet, "
            "e.g. a /20"
        )


def _mac(kind: Kind, index: int) -> str:
    tail = (index + 1).to_bytes(3, "big")
    return kind.oui + ":" + ":".join(f"{b:02x}" for b in tail)


def _secret(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(14))


def _http(title: str, page: str, **extra: Any) -> dict[str, Any]:
    return {"service": "http", "title": title, "page": page, **extra}


def _host(index: int, kind: Kind, address: str, mac: str | None, rng: random.Random) -> ScaleHost:
    """Host ``index`` of ``kind``; ``rng`` decides which weaknesses it has."""
    services: dict[str, dict[str, Any]] = {}
    weak: list[str] = []
    name = f"{kind.name}{index:04d}"
    if kind.name == "camera":
        default = rng.random() < 0.5
        user, password = WEB_DEFAULT if default else ("admin", _secret(rng))
        services["tcp/80"] = _http(
            "IP Camera", "status", auth=[user, password], server="Boa/0.94.14rc21"
        )
        services["tcp/554"] = {"service": "rtsp", "auth": [user, password]}
        weak += ["web-basic-auth-cleartext"] + (["web-default-password"] if default else [])
    elif kind.name == "dvr":
        user, password = rng.choice(TELNET_DEFAULTS)
        if rng.random() < 0.3:
            password = _secret(rng)
        else:
            weak.append("telnet-default-password")
        services["tcp/23"] = {"service": "telnet", "user": user, "password": password}
        services["tcp/80"] = _http("NETSurveillance WEB", "login-form", server="uc-httpd 1.0.0")
        weak += ["telnet", "web-login-cleartext"]
    elif kind.name == "plug":
        anonymous = rng.random() < 0.5
        services["tcp/1883"] = {
            "service": "mqtt",
            "anonymous": anonymous,
            "user": "device",
            "password": _secret(rng),
            "version": "mosquitto version 1.6.9",
        }
        settings = rng.random() < 0.3
        services["tcp/80"] = _http("Smart Plug", "settings" if settings else "status")
        weak += ["mqtt-cleartext"] + (["mqtt-anonymous"] if anonymous else [])
        weak += ["web-settings-without-login"] if settings else []
    elif kind.name == "hub":
        legacy = rng.random() < 0.5
        services["tcp/443"] = {
            "service": "https",
            "tls": "legacy" if legacy else "modern",
            "title": "Hub",
            "page": "status",
        }
        weak += ["tls-obsolete", "tls-expired-1024-bit-shared-cert"] if legacy else []
    elif kind.name == "tv":
        services["tcp/5555"] = {
            "service": "adb",
            "banner": "device::ro.product.name=scale_tv;ro.product.model=Smart TV;"
            "ro.product.manufacturer=TCL;features=shell_v2",
        }
        services["tcp/8080"] = _http("Smart TV", "status")
        weak.append("adb-unauthenticated")
    elif kind.name == "bulb":
        services["tcp/80"] = _http("Smart Bulb", "status", server="lighttpd/1.4.35")
    elif kind.name == "telnet":
        services["tcp/23"] = {"service": "telnet", "user": "admin", "password": _secret(rng)}
        weak.append("telnet")
    elif kind.name == "tarpit":
        services["tcp/23"] = {"service": "tarpit"}
        services["tcp/80"] = {"service": "tarpit"}
    return ScaleHost(
        index, name, address, mac, kind.name, kind.category, kind.vendor, services, weak
    )


def plan(net: ipaddress.IPv4Network, hosts: int, link: str) -> list[ScaleHost]:
    """The emulated hosts, the same for the same (subnet, size, link) every time."""
    check_size(net, hosts)
    rng = random.Random(SEED)  # noqa: S311 - a reproducible mix, not a secret
    weights = [k.weight for k in KINDS]
    out = []
    for i in range(hosts):
        kind = rng.choices(KINDS, weights)[0]
        address = str(net.network_address + FIRST_HOST + i)
        mac = _mac(kind, i) if link == "macvlan" else None
        out.append(_host(i, kind, address, mac, random.Random(SEED * 7919 + i)))  # noqa: S311
    return out


def target_range(net: ipaddress.IPv4Network, hosts: int) -> str:
    """The scan target that covers exactly the emulated hosts."""
    first = net.network_address + FIRST_HOST
    return f"{first}-{first + hosts - 1}"


def scanner_address(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address + SCANNER_OFFSET)


# --- building it -------------------------------------------------------------------------------


def _batch(namespace: str | None, lines: list[str]) -> None:
    argv = ["ip", "-batch", "-"] if namespace is None else ["ip", "-n", namespace, "-batch", "-"]
    for i in range(0, len(lines), 2000):
        netns.run(argv, "\n".join(lines[i : i + 2000]) + "\n")


def _sysctl(namespace: str, *settings: str) -> None:
    netns.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", *settings])


def build_network(net: ipaddress.IPv4Network, hosts: list[ScaleHost], link: str) -> None:
    """Bridge, scanner and emulator namespaces, then one address (and macvlan) per host."""
    scanner = scanner_address(net)
    gateway = str(net.network_address + EMULATOR_OFFSET)
    namespaces = [BRIDGE_NS, SCANNER_NS, EMULATOR_NS]
    _batch(None, [f"netns add {ns}" for ns in namespaces])
    for ns in namespaces:
        _sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    _batch(
        None,
        [
            f"link add br0 netns {BRIDGE_NS} type bridge mcast_snooping 0",
            f"link add v-scan netns {BRIDGE_NS} type veth peer name eth0 address {SCANNER_MAC} "
            f"netns {SCANNER_NS}",
            f"link add v-emu netns {BRIDGE_NS} type veth peer name eth0 address {EMULATOR_MAC} "
            f"netns {EMULATOR_NS}",
        ],
    )
    _batch(
        BRIDGE_NS,
        ["link set lo up", "link set br0 up"]
        + [f"link set {p} master br0\nlink set {p} up" for p in ("v-scan", "v-emu")],
    )
    scan = ["link set lo up", "link set eth0 up", "route add 224.0.0.0/4 dev eth0"]
    emu = ["link set lo up", "link set eth0 up"]
    # The emulator answers the scanner only: a permanent neighbour entry means it never ARPs.
    emu += [
        f"route add {scanner}/32 dev eth0",
        f"neigh replace {scanner} lladdr {SCANNER_MAC} dev eth0 nud permanent",
    ]
    if link == "routed":
        scan[1:1] = [f"addr add {scanner}/32 dev eth0"]
        scan += [
            f"route add {gateway}/32 dev eth0",
            f"neigh replace {gateway} lladdr {EMULATOR_MAC} dev eth0 nud permanent",
            f"route add {net} via {gateway} dev eth0",
        ]
        emu += [f"addr add {gateway}/32 dev eth0"]
        emu += [f"addr add {h.address}/32 dev lo" for h in hosts]
    else:
        scan[1:1] = [f"addr add {scanner}/{net.prefixlen} dev eth0"]
        # Each macvlan answers ARP for its own address only, and takes packets that come back
        # on another interface of the namespace (rp_filter off).
        _sysctl(
            EMULATOR_NS,
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        )
        for h in hosts:
            dev = f"mv{h.index}"
            emu += [
                f"link add {dev} link eth0 address {h.mac} type macvlan mode bridge",
                f"addr add {h.address}/32 dev {dev}",
                f"link set {dev} up",
            ]
    _batch(SCANNER_NS, scan)
    _batch(EMULATOR_NS, emu)


@dataclass(frozen=True)
class TlsFiles:
    modern: certs.KeyPair
    legacy: certs.KeyPair


def make_certificates(directory: Path, hosts: list[ScaleHost]) -> TlsFiles | None:
    """One current lab-CA certificate and one expired 1024-bit self-signed one, each shared by
    every host of its profile, as one firmware image ships one key to every unit."""
    tls = [h for h in hosts if any("tls" in s for s in h.services.values())]
    if not tls:
        return None
    ca = certs.make_ca(directory / "ca")
    modern = certs.make_leaf(
        directory, "scale-modern", "/CN=hub.scale.lab/O=TP-Link", tls[0].address, ca
    )
    legacy = certs.make_expired(
        directory, "scale-legacy", "/CN=hub/O=Tuya", 1024, "20150101000000Z", "20200101000000Z"
    )
    return TlsFiles(modern, legacy)


def write_plan(path: Path, hosts: list[ScaleHost], tls: TlsFiles | None) -> None:
    data: dict[str, Any] = {"hosts": [asdict(h) for h in hosts]}
    if tls is not None:
        data["tls"] = {
            "modern": [str(tls.modern.cert), str(tls.modern.key)],
            "legacy": [str(tls.legacy.cert), str(tls.legacy.key)],
        }
    path.write_text(json.dumps(data), encoding="utf-8")


def emulator_argv(plan_file: Path, ready_file: Path) -> list[str]:
    return [
        "ip", "netns", "exec", EMULATOR_NS,
        sys.executable, "-m", "iotrate.lab.scale_emulator",
        "--plan", str(plan_file), "--ready", str(ready_file),
    ]  # fmt: skip


def status_fields(net: ipaddress.IPv4Network, hosts: int, link: str) -> dict[str, Any]:
    """What ``lab status`` adds for this profile: size, wiring, the target range and rows."""
    return {
        "hosts": hosts,
        "link": link,
        "targets": target_range(net, hosts),
        "emulator_namespace": EMULATOR_NS,
        "scanner": {"namespace": SCANNER_NS, "address": scanner_address(net), "mac": SCANNER_MAC},
        "devices": [h.row() for h in plan(net, hosts, link)],
    }


def build(
    net: ipaddress.IPv4Network,
    hosts: int,
    link: str,
    temp_dir: Path,
    state: dict[str, Any],
    write_state: Callable[[dict[str, Any]], None],
    ready_timeout: float,
) -> dict[str, Any]:
    """Build the whole profile, recording every namespace and PID in ``state`` before it
    exists, so ``lab down`` cleans up after a crash at any point."""
    link = choose_link(hosts, link)
    rows = plan(net, hosts, link)
    state.update(
        {
            "namespaces": [BRIDGE_NS, SCANNER_NS, EMULATOR_NS],
            "scale": {"hosts": hosts, "link": link},
        }
    )
    write_state(state)
    build_network(net, rows, link)
    tls = make_certificates(temp_dir / "certs", rows)
    plan_file, ready = temp_dir / "plan.json", temp_dir / "emulator.ready"
    write_plan(plan_file, rows, tls)
    logs = temp_dir / "logs"
    logs.mkdir()
    log = logs / "emulator.log"
    tracked, proc = procs.spawn("emulator", "scale_emulator", emulator_argv(plan_file, ready), log)
    state["processes"].append(tracked.to_json())
    write_state(state)
    deadline = time.monotonic() + ready_timeout
    while not ready.exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise LabError(f"the scale emulator exited with {proc.returncode}: {' | '.join(tail)}")
        if time.monotonic() > deadline:
            raise LabError(f"the scale emulator was not ready in {ready_timeout:.0f}s; see {log}")
        time.sleep(0.05)
    state["complete"] = True
    state["ready_at"] = time.time()
    write_state(state)
    return state
