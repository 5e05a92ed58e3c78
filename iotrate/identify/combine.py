"""From claims to one conclusion per attribute, with an honest confidence.

The voting, in words:

* The same observed datum counts once per conclusion, however many rules read it (a UPnP
  manufacturer string matched by our rule, by Home Assistant's and by the brand lexicon is one
  piece of evidence, not three). Within one datum the strongest rule speaks.
* Independent data supporting one value combine like independent witnesses
  (``1 - prod(1 - w)``), so two weak sources agreeing beat one, but never reach certainty.
* Near-synonym categories (tv/streamer, plug/switch, nas/media-server) support each other.
* The runner-up's support lowers the winner's confidence: conflicting evidence means we are
  less sure, not that the loudest source is right.
* Too little support for any category gives ``other`` with a low confidence; too little for a
  vendor gives no vendor. Saying "don't know" is always better than a confident wrong answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from iotrate.identify.claims import Attribute, Claim, family
from iotrate.identify.vendors import vendor_key

CATEGORY_MIN = 0.35  # below this the category is "other"
VENDOR_MIN = 0.3  # below this no vendor is named
MODEL_MIN = 0.2
FIRMWARE_MIN = 0.2
CONFLICT = 0.75  # how much the runner-up's support takes off the winner's confidence
OTHER_CONFIDENCE = 0.2
DOMINANCE = 0.3  # in one record, a claim this much weaker than the record's best is dropped
EPSILON = 1e-9


@dataclass(frozen=True)
class Conclusion:
    value: str | None
    confidence: float
    support: tuple[Claim, ...]  # the claims that voted for the value


def _noisy_or(weights: list[float]) -> float:
    p = 1.0
    for w in weights:
        p *= 1.0 - max(0.0, min(1.0, w))
    return 1.0 - p


def _scores(claims: list[Claim], key: str) -> dict[str, float]:
    """Support per value: each record is one witness (its strongest claim for the value)."""
    best: dict[tuple[str, str], float] = {}
    for c in claims:
        k = (key_of(c, key), c.record or f"{c.source}:{c.field}:{c.observed}")
        best[k] = max(best.get(k, 0.0), c.weight)
    per_value: dict[str, list[float]] = defaultdict(list)
    for (value, _), w in best.items():
        per_value[value].append(w)
    return {v: _noisy_or(ws) for v, ws in per_value.items()}


def _undominated(claims: list[Claim]) -> list[Claim]:
    """Within one record, a specific claim silences a much weaker one for another category.

    An AirPlay record whose model is "AppleTV11,1" does not also testify that the device is a
    speaker because AirPlay receivers often are: the record has spoken more precisely.
    """
    top: dict[str, float] = {}
    for c in claims:
        top[c.record] = max(top.get(c.record, 0.0), c.weight)
    leaders: dict[str, set[str]] = defaultdict(set)
    for c in claims:
        if c.weight >= top[c.record]:
            leaders[c.record].add(family(c.value))
    return [
        c
        for c in claims
        if not c.record
        or family(c.value) in leaders[c.record]
        or c.weight > top[c.record] - DOMINANCE
    ]


def key_of(claim: Claim, mode: str) -> str:
    if mode == "family":
        return family(claim.value)
    if mode == "vendor":
        return vendor_key(claim.value)
    if mode == "exact":
        return claim.value
    return claim.value.casefold()


def _round(x: float) -> float:
    return round(max(0.0, min(1.0, x)), 2)


def conclude_category(claims: list[Claim]) -> Conclusion:
    claims = _undominated(claims)
    if not claims:
        return Conclusion("other", 0.05, ())
    fam = _scores(claims, "family")
    ranked = sorted(fam.items(), key=lambda kv: (-kv[1], kv[0]))
    top_family, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if top < CATEGORY_MIN - EPSILON:
        return Conclusion("other", _round(min(OTHER_CONFIDENCE, 1 - top)), ())
    members = [c for c in claims if family(c.value) == top_family]
    exact = _scores(members, "exact")
    value = sorted(exact.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    confidence = top * (1.0 - CONFLICT * second)
    return Conclusion(value, _round(confidence), tuple(members))


def _conclude_simple(claims: list[Claim], minimum: float, mode: str) -> Conclusion:
    if not claims:
        return Conclusion(None, 0.0, ())
    scores = _scores(claims, mode)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    top_key, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if top < minimum - EPSILON:
        return Conclusion(None, 0.0, ())
    members = [c for c in claims if key_of(c, mode) == top_key]
    # Display the spelling the strongest supporter used.
    shown = max(members, key=lambda c: (c.weight, -len(c.value))).value
    return Conclusion(shown, _round(top * (1.0 - CONFLICT * second)), tuple(members))


def conclude(claims: list[Claim]) -> dict[Attribute, Conclusion]:
    by_attr: dict[Attribute, list[Claim]] = defaultdict(list)
    for c in claims:
        by_attr[c.attribute].append(c)
    out: dict[Attribute, Conclusion] = {}
    out["vendor"] = _conclude_simple(by_attr["vendor"], VENDOR_MIN, "vendor")
    out["category"] = conclude_category(by_attr["category"])
    out["model"] = _conclude_simple(by_attr["model"], MODEL_MIN, "casefold")
    out["firmware"] = _conclude_simple(by_attr["firmware"], FIRMWARE_MIN, "casefold")
    return out


def overall_confidence(result: dict[Attribute, Conclusion]) -> float:
    """How sure the answer as a whole is: as sure as its least sure named part."""
    category = result["category"]
    vendor = result["vendor"]
    if vendor.value is None:
        return category.confidence
    return _round(min(category.confidence, vendor.confidence))
