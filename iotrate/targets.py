"""Turn what the user typed into addresses, and refuse what iotrate must not scan.

The refusals happen here, before any socket exists, so a refused target provably sends no
packet. Globally routable addresses are somebody else's network and ranges larger than a /22
are almost always a typo (``10.0.0.0/8`` for ``10.0.0.0/24``); both need an explicit opt-in.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotrate.errors import TargetRefused, UsageError
from iotrate.models import Target, TargetKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Addresses a /22 holds; more than this needs ``--max-hosts``.
DEFAULT_MAX_HOSTS = 1024

Resolver = Callable[[str], list[str]]

#: Where ``iotrate scan`` looks for a lab's allow-list when ``--allow-list`` is not given.
ALLOW_LIST_ENV = "IOTRATE_ALLOW_LIST"
#: An allow-list file larger than this is not a list a person wrote.
ALLOW_LIST_MAX_BYTES = 1024 * 1024
#: Widest allow-list entries: a lab pre-approves its own networks, not the Internet.
ALLOW_LIST_MIN_PREFIX = {4: 8, 6: 32}


def system_resolver(name: str) -> list[str]:
    """Resolve a hostname to its addresses (IPv4 first), as the OS does."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {name!r}: {exc.strerror}") from exc
    seen: list[str] = []
    for family, _type, _proto, _canon, sockaddr in sorted(
        infos, key=lambda i: i[0] != socket.AF_INET
    ):
        addr = str(sockaddr[0])
        if family in (socket.AF_INET, socket.AF_INET6) and addr not in seen:
            seen.append(addr)
    return seen


@dataclass(frozen=True)
class _Parsed:
    target: Target
    addresses: tuple[IPAddress, ...] | None  # None for networks/ranges: expanded lazily
    network: IPNetwork | None = None
    first: IPAddress | None = None
    last: IPAddress | None = None

    def hosts(self) -> Iterator[IPAddress]:
        if self.addresses is not None:
            yield from self.addresses
        elif self.network is not None:
            if self.network.num_addresses == 1:
                yield self.network.network_address
            else:
                yield from self.network.hosts()
        elif self.first is not None and self.last is not None:
            for n in range(int(self.first), int(self.last) + 1):
                yield ipaddress.ip_address(n)


@dataclass(frozen=True)
class TargetSet:
    """The validated targets of one scan and the host addresses they cover, in order."""

    targets: tuple[Target, ...]
    _parsed: tuple[_Parsed, ...]
    excluded: tuple[IPNetwork, ...] = ()

    @property
    def size(self) -> int:
        return sum(t.size for t in self.targets)

    def hosts(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self._parsed:
            for a in p.hosts():
                if not any(a.version == n.version and a in n for n in self.excluded):
                    seen.setdefault(str(a), None)
        return list(seen)


@dataclass(frozen=True)
class AllowList:
    """The networks a lab operator pre-approved for scanning, and the file that says so."""

    source: str
    networks: tuple[IPNetwork, ...]

    def covers(self, first: IPAddress, last: IPAddress) -> bool:
        """Whether every address from ``first`` to ``last`` lies in the allowed networks."""
        nets = sorted(
            (n for n in self.networks if n.version == first.version),
            key=lambda n: int(n.network_address),
        )
        need = int(first)
        for n in nets:
            lo, hi = int(n.network_address), int(n.broadcast_address)
            if lo > need:
                break
            if hi >= need:
                need = hi + 1
                if need > int(last):
                    return True
        return need > int(last)


def load_allow_list(path: Path) -> AllowList:
    """Read an allow-list: one address or CIDR a line, ``#`` starts a comment.

    A malformed line, an entry wider than /8 (IPv4) or /32 (IPv6), or a list with no entry is a
    usage error: a lab's safety file that does not say what its operator meant must stop the
    scan, not be half applied."""
    try:
        with path.open("rb") as fh:
            data = fh.read(ALLOW_LIST_MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the allow-list {path}: {exc.strerror or exc}") from exc
    if len(data) > ALLOW_LIST_MAX_BYTES:
        raise UsageError(f"the allow-list {path} is larger than {ALLOW_LIST_MAX_BYTES} bytes")
    networks: list[IPNetwork] = []
    for n, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            net = ipaddress.ip_network(line, strict=False)
        except ValueError:
            raise UsageError(f"allow-list {path} line {n}: not an address or CIDR") from None
        if net.prefixlen < ALLOW_LIST_MIN_PREFIX[net.version]:
            raise UsageError(
                f"allow-list {path} line {n}: {net} is wider than "
                f"/{ALLOW_LIST_MIN_PREFIX[net.version]}; list the lab's own networks"
            )
        networks.append(net)
    if not networks:
        raise UsageError(f"the allow-list {path} lists no address")
    return AllowList(str(path), tuple(networks))


def allow_list_from_env() -> AllowList | None:
    """The allow-list named by ``$IOTRATE_ALLOW_LIST``, if set (a lab machine's standing rule)."""
    value = os.environ.get(ALLOW_LIST_ENV)
    return load_allow_list(Path(value)) if value else None


def _refusal_reason(addr: IPAddress) -> str | None:
    if addr.is_multicast:
        return "is a multicast address"
    if addr.is_unspecified:
        return "is the unspecified address"
    if isinstance(addr, ipaddress.IPv4Address) and addr == ipaddress.IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    return None


def _refuse_special(p: _Parsed, broadcasts: Mapping[IPAddress, str]) -> None:
    """Addresses named one by one (or a range of a few) that are multicast, unspecified or
    a broadcast address, the plain one or a local subnet's; wider ranges skip the latter."""
    if p.addresses is None and p.target.size > 4:
        return
    for a in p.hosts():
        reason = _refusal_reason(a)
        if reason is None and a in broadcasts:
            reason = f"is {broadcasts[a]}"
        if reason:
            raise TargetRefused(f"refusing {p.target.spec}: {a} {reason}")


def _parse_one(spec: str, resolver: Resolver) -> _Parsed:
    text = spec.strip()
    if not text:
        raise UsageError("empty target")
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise UsageError(f"invalid network {spec!r}: {exc}") from exc
        hosts = net.num_addresses if net.num_addresses <= 2 else net.num_addresses - 2
        if isinstance(net, ipaddress.IPv6Network):
            hosts = net.num_addresses
        target = Target(
            spec=spec,
            kind=TargetKind.NETWORK,
            first=str(net.network_address),
            last=str(net.broadcast_address),
            size=max(1, hosts),
        )
        return _Parsed(target, None, network=net)
    if "-" in text and not _looks_like_hostname(text):
        left, right = text.split("-", 1)
        try:
            first = ipaddress.ip_address(left)
            if "." in right or ":" in right:
                last = ipaddress.ip_address(right)
            else:
                # 10.0.0.1-20: the right side replaces the last octet
                if not isinstance(first, ipaddress.IPv4Address):
                    raise ValueError("short ranges are IPv4 only")
                octets = str(first).split(".")
                last = ipaddress.ip_address(".".join([*octets[:3], str(int(right))]))
        except ValueError as exc:
            raise UsageError(f"invalid range {spec!r}: {exc}") from exc
        if first.version != last.version or int(last) < int(first):
            raise UsageError(f"invalid range {spec!r}: the end comes before the start")
        size = int(last) - int(first) + 1
        target = Target(
            spec=spec, kind=TargetKind.RANGE, first=str(first), last=str(last), size=size
        )
        return _Parsed(target, None, first=first, last=last)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if not _looks_like_hostname(text):
            raise UsageError(f"not an address, network, range or hostname: {spec!r}") from None
        resolved = [ipaddress.ip_address(a) for a in resolver(text)]
        if not resolved:
            raise UsageError(f"cannot resolve {spec!r}") from None
        target = Target(
            spec=spec,
            kind=TargetKind.HOSTNAME,
            first=str(resolved[0]),
            last=str(resolved[-1]),
            size=len(resolved),
        )
        return _Parsed(target, tuple(resolved))
    target = Target(spec=spec, kind=TargetKind.ADDRESS, first=str(addr), last=str(addr), size=1)
    return _Parsed(target, (addr,))


def _looks_like_hostname(text: str) -> bool:
    if len(text) > 253 or text.replace(".", "").replace("-", "").isdigit():
        return False
    labels = text.rstrip(".").split(".")
    return all(
        0 < len(lab) <= 63
        and lab[0] != "-"
        and lab[-1] != "-"
        and all(c.isalnum() or c == "-" for c in lab)
        for lab in labels
    ) and not all(lab.isdigit() for lab in labels)


def _check_public(p: _Parsed) -> str | None:
    """Return why this target touches a globally routable address, or None."""
    if p.network is not None:
        net = p.network
        if net.is_global or net.network_address.is_global or net.broadcast_address.is_global:
            return f"{p.target.spec} is a public (globally routable) network"
        # A network can straddle private and public space; check every address when small.
        if net.num_addresses <= 65536:
            for a in net:
                if a.is_global:
                    return f"{p.target.spec} contains public address {a}"
        return None
    for a in p.hosts():
        if a.is_global:
            return f"{p.target.spec} is a public (globally routable) address ({a})"
    return None


def _check_allowed(p: _Parsed, allow: AllowList) -> None:
    if p.network is not None:
        spans = [(p.network.network_address, p.network.broadcast_address)]
    elif p.first is not None and p.last is not None:
        spans = [(p.first, p.last)]
    else:
        spans = [(a, a) for a in p.hosts()]
    for first, last in spans:
        if not allow.covers(first, last):
            detail = f" ({first} is not)" if p.target.kind is TargetKind.HOSTNAME else ""
            raise TargetRefused(
                f"refusing {p.target.spec}: not inside the allow-list {allow.source}{detail}"
            )


def resolve_targets(
    specs: Sequence[str],
    *,
    allow_public: bool = False,
    max_hosts: int | None = None,
    resolver: Resolver = system_resolver,
    exclude: Sequence[str] = (),
    allow_list: AllowList | None = None,
    broadcasts: Mapping[IPAddress, str] | None = None,
) -> TargetSet:
    """Parse and vet the targets; raise :class:`TargetRefused` before any packet is sent.

    ``exclude`` (addresses or CIDRs) are never contacted, e.g. a fragile medical device or the
    router of a network one may scan only in part. With an ``allow_list`` every target must lie
    inside it, and public addresses inside it need no ``allow_public``: the lab operator who
    wrote the list has already said these networks are theirs.

    ``broadcasts``: the broadcast and network addresses of the subnets this machine is on, and
    why each is refused (default: read from the interface table, see
    :func:`iotrate.netinfo.local_broadcasts`)."""
    if not specs:
        raise UsageError("no targets given")
    limit = DEFAULT_MAX_HOSTS if max_hosts is None else max_hosts
    parsed = [_parse_one(s, resolver) for s in specs]
    for p in parsed:
        if p.target.size > limit:
            raise TargetRefused(
                f"refusing {p.target.spec}: {p.target.size} addresses is more than {limit} "
                f"(a /22); narrow the range or pass --max-hosts {p.target.size}"
            )
    total = sum(p.target.size for p in parsed)
    if total > limit:
        raise TargetRefused(
            f"refusing {total} addresses in all, more than {limit}; pass --max-hosts {total}"
        )
    if broadcasts is None:
        from iotrate.netinfo import local_broadcasts

        found: dict[IPAddress, str] = {}
        for a, reason in local_broadcasts().items():
            found[a] = reason
        broadcasts = found
    for p in parsed:
        _refuse_special(p, broadcasts)
        if allow_list is not None:
            _check_allowed(p, allow_list)
        elif not allow_public:
            why = _check_public(p)
            if why:
                raise TargetRefused(
                    f"refusing {why}; iotrate scans only networks you own — "
                    "pass --allow-public if this one is yours"
                )
    # A wider range that spans a local subnet's broadcast or network address skips it, as a
    # network's own broadcast address is never among its hosts.
    excluded: list[IPNetwork] = [ipaddress.ip_network(a) for a in broadcasts]
    for e in exclude:
        try:
            excluded.append(ipaddress.ip_network(e.strip(), strict=False))
        except ValueError as exc:
            raise UsageError(f"invalid --exclude {e!r}: {exc}") from exc
    return TargetSet(tuple(p.target for p in parsed), tuple(parsed), tuple(excluded))
