"""MAC address -> registered organisation, from the IEEE registry shipped with iotrate.

The registry is bundled (``iotrate/data/oui.tsv.gz``, derived from Debian's ``ieee-data``) so
lookup works offline on a fresh install; ``python -m iotrate.identify.refresh_oui`` rebuilds it.
Large blocks (MA-L, 24 bits) are subdivided into MA-M (28) and MA-S/IAB (36) blocks owned by
other organisations, so the longest registered prefix wins.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from iotrate.identify.errors import FingerprintDataError

DATA_FILE = "oui.tsv.gz"
PREFIX_LENGTHS = (9, 7, 6)  # hex digits: MA-S/IAB, MA-M, MA-L


@dataclass(frozen=True)
class OuiEntry:
    prefix: str  # upper-case hex, 6, 7 or 9 digits
    organisation: str


def is_locally_administered(mac: str) -> bool:
    """Randomised (private) addresses set this bit; their prefix names nobody."""
    return bool(int(mac.replace(":", "")[:2], 16) & 0x02)


def is_multicast(mac: str) -> bool:
    return bool(int(mac.replace(":", "")[:2], 16) & 0x01)


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    try:
        raw = resources.files("iotrate").joinpath("data", DATA_FILE).read_bytes()
        text = gzip.decompress(raw).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FingerprintDataError(f"cannot read the bundled OUI registry: {exc}") from exc
    table: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        prefix, _, org = line.partition("\t")
        if prefix and org:
            table[prefix] = org
    return table


def lookup(mac: str) -> OuiEntry | None:
    """The organisation registered for ``mac`` (``aa:bb:cc:dd:ee:ff``), or ``None``.

    Locally administered and multicast addresses are never looked up: their first bytes are
    not an assignment, and answering would name a random company.
    """
    hexes = mac.replace(":", "").replace("-", "").upper()
    if len(hexes) != 12 or is_locally_administered(mac) or is_multicast(mac):
        return None
    if hexes in {"000000000000", "FFFFFFFFFFFF"}:
        return None
    table = _table()
    for n in PREFIX_LENGTHS:
        org = table.get(hexes[:n])
        if org is not None:
            return OuiEntry(hexes[:n], org)
    return None
