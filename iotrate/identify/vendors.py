"""Vendor names: one spelling per maker, whichever source named it.

"SAMSUNG ELECTRONICS CO.,LTD" (the OUI registry), "Samsung Electronics" (UPnP) and
"samsung" (a TXT record) must vote for the same answer, so every vendor string goes through
:meth:`VendorTable.normalise` before it counts. The alias table, the corporate suffixes that
carry no identity, the manufacturer strings that are known to lie (software stacks, Wi-Fi
module makers) and the brand lexicon are data (``iotrate/data/identify/vendors.yaml``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from iotrate.identify.datafiles import load_yaml, require_list, require_mapping, require_str

_SPACES = re.compile(r"\s+")
_PAREN = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*")
_PUNCT = ".,;:'\"()[]"


def vendor_key(name: str) -> str:
    """Comparison key: case and punctuation do not make a different vendor (TP-Link, TPLINK)."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


@dataclass(frozen=True)
class Brand:
    name: str
    pattern: re.Pattern[str]
    category: str | None


class VendorTable:
    """Normalisation, trust and brand lexicon for vendor names, loaded from data once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._aliases: list[tuple[re.Pattern[str], str]] = []
        for item in require_list(data, "aliases", "vendors.yaml"):
            m = require_mapping(item, "vendors.yaml alias")
            self._aliases.append(
                (
                    re.compile(require_str(m, "match", "vendors.yaml alias"), re.IGNORECASE),
                    require_str(m, "name", "vendors.yaml alias"),
                )
            )
        self._suffixes = {
            s.casefold().replace(".", "") for s in require_list(data, "suffixes", "vendors.yaml")
        }
        self._places = [p.casefold() for p in require_list(data, "place_prefixes", "vendors.yaml")]
        self._keep_upper = {
            vendor_key(s) for s in require_list(data, "keep_upper_case", "vendors.yaml")
        }
        self._weak = [
            re.compile(str(p), re.IGNORECASE)
            for p in require_list(data, "weak_manufacturers", "vendors.yaml")
        ]
        self._modules = [
            re.compile(str(p), re.IGNORECASE)
            for p in require_list(data, "module_makers", "vendors.yaml")
        ]
        self.brands: list[Brand] = []
        for item in require_list(data, "brands", "vendors.yaml"):
            m = require_mapping(item, "vendors.yaml brand")
            name = require_str(m, "name", "vendors.yaml brand")
            spellings = [name, *(str(s) for s in m.get("aka", []) or [])]
            parts = []
            for s in spellings:
                body = re.escape(s).replace(r"\ ", r"[\s_-]?")
                # Short all-capital brands (LG, HP, TCL) match case-sensitively: "lg" or "hp"
                # inside ordinary words or hostnames would otherwise name a vendor.
                parts.append(body if len(s) <= 4 and s.isupper() else f"(?i:{body})")
            pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(parts) + r")(?![A-Za-z])")
            category = m.get("category")
            self.brands.append(Brand(name, pattern, str(category) if category else None))
        self._brand_by_key = {vendor_key(b.name): b for b in self.brands}

    # -- normalisation ------------------------------------------------------------------------

    def normalise(self, raw: str | None) -> str | None:
        """The canonical display name for a vendor string, or ``None`` if it names nobody."""
        if raw is None:
            return None
        s = _SPACES.sub(" ", raw).strip()
        if not s or len(s) > 200:
            return None
        without_paren = _PAREN.sub(" ", s).strip()
        s = (without_paren or s).strip(_PUNCT + " ")
        if not s:
            return None
        if re.match(r"^(?:https?://|www\.)", s, re.IGNORECASE):
            label = _site_label(s)
            name = self._alias(label)
            return name if name is not None else (label or None)
        if (name := self._alias(s)) is not None:
            return name
        text = self._without_place(self._without_suffixes(s))
        if (name := self._alias(text)) is not None:
            return name
        if not text:
            return None
        return self._cased(text)

    def _alias(self, text: str) -> str | None:
        for pattern, name in self._aliases:
            if pattern.search(text):
                return name
        return None

    def _without_suffixes(self, s: str) -> str:
        """Drop corporate suffixes, which carry no identity ("Acme Co., Ltd." -> "Acme")."""
        tokens = [t for t in re.split(r"[\s,]+", s) if t.strip(_PUNCT)]
        while len(tokens) > 1 and tokens[-1].strip(_PUNCT).casefold().replace(".", "").replace(
            "&", ""
        ) in self._suffixes | {""}:
            tokens.pop()
        # "Co.,Ltd", "Co.,LTD." arrive glued together.
        while len(tokens) > 1 and re.fullmatch(
            r"(?i)co\.?,?\s*ltd\.?|inc\.?|corp\.?", tokens[-1].strip(_PUNCT + " ")
        ):
            tokens.pop()
        return " ".join(t.strip(",;") for t in tokens).strip(_PUNCT + " -")

    def _without_place(self, text: str) -> str:
        lowered = text.casefold()
        for place in self._places:
            if lowered.startswith(place + " ") and len(text) > len(place) + 2:
                text = text[len(place) + 1 :].strip()
                lowered = text.casefold()
        return text

    def _cased(self, text: str) -> str:
        """An all-capitals name shouted by a registry is written as a name, unless the data
        says the maker writes itself in capitals."""
        if (
            text.isupper()
            and len(text) > 4
            and not any(c.isdigit() for c in text)
            and vendor_key(text) not in self._keep_upper
        ):
            text = " ".join(w.capitalize() if len(w) > 3 else w for w in text.split())
        return text

    def is_weak(self, raw: str) -> bool:
        """Manufacturer strings that name a software stack or a default, not the maker."""
        s = raw.strip()
        return not s or any(p.search(s) for p in self._weak)

    def is_module_maker(self, organisation: str) -> bool:
        """OUI owners that build Wi-Fi modules or boards for other brands' products."""
        return any(p.search(organisation) for p in self._modules)

    # -- brand lexicon ------------------------------------------------------------------------

    def brand_mentions(self, text: str) -> list[Brand]:
        """Brands named in free text (a friendly name, a banner, a model string)."""
        found: list[Brand] = []
        for b in self.brands:
            if b.pattern.search(text) and b not in found:
                found.append(b)
        return found

    def category_prior(self, vendor: str) -> str | None:
        brand = self._brand_by_key.get(vendor_key(vendor))
        return brand.category if brand else None

    def is_curated(self, vendor: str) -> bool:
        """A brand the table lists: its category (or its lack of one) was decided by hand."""
        return vendor_key(vendor) in self._brand_by_key


def _site_label(url: str) -> str:
    """The name part of a web address: "https://www.example.co/x" -> "example"."""
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    labels = [x for x in host.split(".") if x and x != "www"]
    return labels[-2] if len(labels) >= 2 else (labels[0] if labels else "")


@lru_cache(maxsize=1)
def vendor_table() -> VendorTable:
    return VendorTable(require_mapping(load_yaml("vendors.yaml"), "vendors.yaml"))
