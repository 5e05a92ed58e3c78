"""Free-text evidence: category words and brand names in the names a device gives itself.

Friendly names, model names, hostnames and banners are written for humans ("Living Room TV",
"HP Color LaserJet Pro M252dw", "Roomba-31B8"), so they say a lot but loosely. This is the
weakest kind of evidence we use: it decides only when nothing more specific speaks, and where
two category words overlap in one string ("Light Switch") the longer, more specific one wins.
The word lists and the fields they read are data: ``data/identify/keywords.yaml``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from iotrate.identify.claims import CATEGORIES, Claim
from iotrate.identify.datafiles import (
    load_yaml,
    require_float,
    require_list,
    require_mapping,
)
from iotrate.identify.errors import FingerprintDataError
from iotrate.identify.facts import Record
from iotrate.identify.vendors import VendorTable, vendor_table

MAX_TEXT = 512
EMBEDDED_SCALE = 0.4


@dataclass(frozen=True)
class FieldGroup:
    patterns: tuple[str, ...]
    category_weight: float
    vendor_weight: float

    def covers(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


@dataclass
class Lexicon:
    groups: list[FieldGroup]
    words: list[tuple[str, re.Pattern[str]]]
    neutral: list[re.Pattern[str]]
    vendors: VendorTable
    _memo: dict[str, FieldGroup | None] = field(default_factory=dict)

    def _group(self, name: str) -> FieldGroup | None:
        if name in self._memo:
            return self._memo[name]
        found = next((g for g in self.groups if g.covers(name)), None)
        self._memo[name] = found
        return found

    def categories_in(self, text: str) -> list[tuple[str, str]]:
        """(category, matched words); overlapping matches keep only the longest."""
        spans: list[tuple[int, int, str, str]] = []
        for pattern in self.neutral:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    spans.append((m.start(), m.end(), "", m.group(0)))
        for category, pattern in self.words:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    spans.append((m.start(), m.end(), category, m.group(0)))
        spans.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
        kept: list[tuple[int, int, str, str]] = []
        for s in spans:
            if all(s[1] <= k[0] or s[0] >= k[1] for k in kept):
                kept.append(s)
        out: list[tuple[str, str]] = []
        for _, _, category, words in sorted(kept):
            if category and all(c != category for c, _ in out):
                out.append((category, words))
        return out

    def claims(self, records: Iterable[Record]) -> list[Claim]:
        out: list[Claim] = []
        for rec in records:
            # An embedded UPnP device describes a function of the box (its media server), not
            # the box itself, so its names count for less.
            scale = EMBEDDED_SCALE if "ssdp.embedded" in rec.fields else 1.0
            for name, values in rec.fields.items():
                group = self._group(name)
                if group is None:
                    continue
                for value in values:
                    text = value[:MAX_TEXT]
                    for category, words in self.categories_in(text):
                        out.append(
                            Claim(
                                "category",
                                category,
                                round(group.category_weight * scale, 3),
                                f"keyword:{category}:{words.lower()}",
                                rec.kind,
                                name,
                                value,
                                rec.uid,
                            )
                        )
                    if group.vendor_weight > 0:
                        for brand in self.vendors.brand_mentions(text):
                            out.append(
                                Claim(
                                    "vendor",
                                    brand.name,
                                    round(group.vendor_weight * scale, 3),
                                    f"brand:{brand.name}",
                                    rec.kind,
                                    name,
                                    value,
                                    rec.uid,
                                )
                            )
        return out


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    doc = require_mapping(load_yaml("keywords.yaml"), "keywords.yaml")
    groups = []
    for i, item in enumerate(require_list(doc, "fields", "keywords.yaml")):
        g = require_mapping(item, f"keywords.yaml fields #{i + 1}")
        groups.append(
            FieldGroup(
                patterns=tuple(str(p) for p in require_list(g, "fields", "keywords.yaml")),
                category_weight=require_float(g.get("category_weight"), "keywords.yaml", 0.4),
                vendor_weight=float(g.get("vendor_weight") or 0.0),
            )
        )
    words: list[tuple[str, re.Pattern[str]]] = []
    for category, patterns in require_mapping(doc.get("categories"), "keywords.yaml").items():
        if category not in CATEGORIES:
            raise FingerprintDataError(f"keywords.yaml: unknown category {category!r}")
        if not isinstance(patterns, list):
            raise FingerprintDataError(f"keywords.yaml: {category} must list patterns")
        for p in patterns:
            try:
                words.append((category, re.compile(str(p), re.IGNORECASE)))
            except re.error as exc:
                raise FingerprintDataError(f"keywords.yaml {category}: {p!r}: {exc}") from exc
    neutral = [re.compile(str(p), re.IGNORECASE) for p in require_list(doc, "neutral", "kw")]
    return Lexicon(groups, words, neutral, vendor_table())
