"""The default-credential list: loading ``iotrate/data/credentials.csv``, ordering it for one
device and protocol, and redacting what worked.

Why an order matters more than a list: a login probe may only make a handful of attempts per
service (the attempt budget, so that a device with a lockout is never locked out), so the few
pairs it tries must be the likeliest. The order, for a device whose vendor and category may be
known or not:

1. pairs listed for the device's own vendor *and* for a login protocol or the device's
   category (identification told us who made it); a vendor's pair listed for another login
   protocol (telnet, say) is tried on this one too, since vendors reuse one factory account
   on every surface;
2. then, for shell logins (telnet, SSH), Mirai's weights: Mirai's authors weighted each pair by
   how often it opened a device, which is the best public evidence of what embedded Linux
   accounts really use; ties go to other pairs of the vendor, to pairs listed for the device's
   category, then to pairs that more vendors list;
3. for the web account and other services (HTTP, RTSP, FTP, MQTT), how many vendors' lists carry
   the pair (admin/admin first), then other pairs of the vendor, category, Mirai's weight.

A pair is *universal* when it is on the Mirai list: a hard-coded default shared by whole
product lines, which the rating scheme treats as the gravest finding (its G cap).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

SHELL_PROTOCOLS = frozenset({"telnet", "ssh"})
LOGIN_PROTOCOLS = frozenset({"telnet", "ssh", "http", "rtsp", "ftp", "mqtt"})


@dataclass(frozen=True)
class CredEntry:
    """One row of credentials.csv."""

    id: str
    protocols: frozenset[str]  # empty: any login protocol (not SNMP)
    username: str
    password: str
    vendor: str
    product: str
    category: str
    universal: bool
    weight: int
    sources: tuple[str, ...]

    def applies_to(self, protocol: str) -> bool:
        if self.protocols:
            return protocol in self.protocols
        return protocol != "snmp"


@dataclass(frozen=True)
class Candidate:
    """One pair to try, with what the list says about it."""

    username: str
    password: str
    universal: bool
    sources: tuple[str, ...]
    entry_ids: tuple[str, ...]
    vendor_match: bool


def norm(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


# Words in company names that say nothing about who made a device.
_COMPANY_WORDS = frozenset(
    "co corp corporation company inc ltd limited llc gmbh ag sa group holdings international "
    "technology technologies tech digital electronics electronic electric electrical systems "
    "system communications communication networks network smart home industrial industries "
    "appliances appliance king huizhou hangzhou shenzhen guangzhou".split()
)


def vendor_keys(vendor: str | None) -> frozenset[str]:
    """Keys a device's vendor name can match a list row by: the whole name and each telling
    word ("Hangzhou Hikvision Digital Technology" matches rows for "hikvision")."""
    if not vendor:
        return frozenset()
    words = {norm(w) for w in re.split(r"[\s,/]+", vendor)}
    telling = {w for w in words if len(w) >= 3 and w not in _COMPANY_WORDS}
    return frozenset({norm(vendor), *telling} - {""})


def parse(text: str) -> tuple[CredEntry, ...]:
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    entries = []
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        entries.append(
            CredEntry(
                id=row["id"],
                protocols=frozenset(row["protocols"].split()),
                username=row["username"],
                password=row["password"],
                vendor=row["vendor"],
                product=row["product"],
                category=row["category"],
                universal=row["universal"] == "true",
                weight=int(row["weight"] or 0),
                sources=tuple(row["sources"].split()),
            )
        )
    return tuple(entries)


@cache
def load() -> tuple[CredEntry, ...]:
    """The bundled list (read once per process)."""
    text = resources.files("iotrate").joinpath("data/credentials.csv").read_text("utf-8")
    return parse(text)


def candidates(
    protocol: str,
    vendor: str | None = None,
    category: str | None = None,
    *,
    entries: Iterable[CredEntry] | None = None,
    exclude: Iterable[tuple[str, str]] = (),
) -> list[Candidate]:
    """Distinct (username, password) pairs for ``protocol``, likeliest first (module doc)."""
    keys = vendor_keys(vendor)
    rows = [
        e
        for e in (load() if entries is None else entries)
        if e.applies_to(protocol) or _vendor_elsewhere(e, keys, protocol)
    ]
    cat = (category or "").lower()
    skip = set(exclude)
    by_pair: dict[tuple[str, str], list[CredEntry]] = defaultdict(list)
    for e in rows:
        if (e.username, e.password) not in skip:
            by_pair[(e.username, e.password)].append(e)

    def facts(pair: tuple[str, str]) -> tuple[int, int, int, int, int]:
        es = by_pair[pair]
        mine = [e for e in es if keys and e.vendor in keys]
        # A vendor row is strong evidence when it also names this protocol or the device's
        # category; a bare "LG admin/epicrouter" may be any of a conglomerate's products.
        strong = int(any(e.protocols or (cat and e.category == cat) for e in mine))
        weak = int(bool(mine))
        weight = max((e.weight for e in es), default=0)
        in_category = sum(1 for e in es if cat and e.category == cat)
        prevalence = len({(e.vendor, e.product) for e in es})
        return strong, weak, weight, in_category, prevalence

    def key(pair: tuple[str, str]) -> tuple[int, int, int, int, int, str, str]:
        strong, weak, weight, in_category, prevalence = facts(pair)
        if protocol in SHELL_PROTOCOLS:
            return (-strong, -weight, -weak, -in_category, -prevalence, pair[0], pair[1])
        return (-strong, -prevalence, -weak, -in_category, -weight, pair[0], pair[1])

    out = []
    for pair in sorted(by_pair, key=key):
        es = by_pair[pair]
        out.append(
            Candidate(
                username=pair[0],
                password=pair[1],
                universal=any(e.universal for e in es),
                sources=tuple(sorted({s for e in es for s in e.sources})),
                entry_ids=tuple(e.id for e in es[:3]),
                vendor_match=facts(pair)[1] == 1,
            )
        )
    return out


def _vendor_elsewhere(e: CredEntry, keys: frozenset[str], protocol: str) -> bool:
    """A row of the device's own vendor listed for another login protocol: vendors reuse one
    factory account on every surface (a Hikvision's admin/12345 opens its web UI as well as
    its telnet), and the lists record where their sources saw it, not where it works. SNMP
    communities are not passwords, so they never cross to or from a login."""
    if not keys or e.vendor not in keys or protocol not in LOGIN_PROTOCOLS:
        return False
    return bool(e.protocols) and e.protocols <= LOGIN_PROTOCOLS


def redact(password: str) -> str:
    """What reports show of a password that worked: its first character and a fixed mask.

    The pair is public (it is on a published list), but a report saying "this device's root
    password is xc3511" is a ready-made attack note for whoever reads it. The first character
    plus the list name and entry id let a lab confirm which entry matched; the mask has a
    fixed length so it does not leak the password's length. An empty password is shown as
    such: "no password" is the finding itself.
    """
    if password == "":
        return "(empty)"
    return password[0] + "***"


def evidence_data(
    protocol: str, port: int, cand: Candidate, extra: dict[str, object] | None = None
) -> dict[str, object]:
    """Evidence fields every default-password finding carries (rating scheme evidence_data)."""
    data: dict[str, object] = {
        "protocol": protocol,
        "port": port,
        "username": cand.username,
        "password": redact(cand.password),
        "universal": cand.universal,
        "lists": list(cand.sources),
        "entries": list(cand.entry_ids),
        "vendor_specific": cand.vendor_match,
    }
    if extra:
        data.update(extra)
    return data
