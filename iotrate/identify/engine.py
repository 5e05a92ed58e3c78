"""Identification: every observation of a device -> one answer with confidence and evidence.

The pipeline for one device: observations -> records (named facts) -> claims from every
matcher (our rule files, Recog, Home Assistant's matchers, the OUI registry, the keyword and
brand lexicons, brand category priors) -> vendor names normalised -> weighted vote
(:mod:`iotrate.identify.combine`). All data is loaded once per process (``Database.load``),
so identifying a whole network costs one load and then microseconds of matching per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from iotrate.identify.claims import Attribute, Claim, family
from iotrate.identify.combine import Conclusion, conclude, overall_confidence
from iotrate.identify.datafiles import data_names, load_yaml
from iotrate.identify.errors import FingerprintDataError, IdentifyError
from iotrate.identify.facts import Record, embedded_macs, records_for
from iotrate.identify.hass import hass_rules
from iotrate.identify.lexicon import Lexicon, lexicon
from iotrate.identify.observations import Observation
from iotrate.identify.oui import lookup as oui_lookup
from iotrate.identify.recog import RecogMatcher, recog_matcher
from iotrate.identify.rules import Rule, load_rules
from iotrate.identify.vendors import VendorTable, vendor_key, vendor_table
from iotrate.models import Identity, IdentityEvidence
from iotrate.net import printable

RULE_FILES_SKIP = {"vendors.yaml", "recog.yaml", "hass.yaml", "keywords.yaml", "ble_uuids.yaml"}
OUI_WEIGHT = 0.45  # the MAC's registered owner: usually the maker, sometimes a module maker
OUI_EMBEDDED_WEIGHT = 0.3  # a MAC the device reports inside an answer (may be anonymised)
OUI_MODULE_WEIGHT = 0.1
BRAND_PRIOR_WEIGHT = 0.3  # "Sonos makes speakers": never enough on its own
DERIVED_PRIOR_WEIGHT = 0.2  # a prior counted from the rules, weaker than a curated one
DERIVED_PRIOR_MIN_SHARE = 0.9  # a maker of many kinds gets no derived prior
DERIVED_PRIOR_MIN_PRODUCTS = 3
MAX_EVIDENCE = 40
VALUE_CHARS = 200  # evidence values as shown; what the device sent is capped and made printable
NAME_CHARS = 128


@dataclass
class Database:
    """Everything identification needs, loaded and validated once."""

    rules: list[Rule]
    recog: RecogMatcher
    lexicon: Lexicon
    vendors: VendorTable
    by_field: dict[str, list[Rule]] = field(default_factory=dict)
    unindexed: list[Rule] = field(default_factory=list)
    derived_priors: dict[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.derived_priors = derive_priors(self.rules, self.vendors)
        # Index rules by a field they cannot match without, so a record only meets the rules
        # that could apply to it (a few dozen of the thousand-odd).
        for rule in self.rules:
            need = rule.required_fields()
            if need:
                for f in need:
                    self.by_field.setdefault(f, []).append(rule)
            else:
                self.unindexed.append(rule)

    def rules_for(self, record: Record) -> list[Rule]:
        seen: set[int] = set()
        out: list[Rule] = []
        for name in record.fields:
            for rule in self.by_field.get(name, ()):
                if id(rule) not in seen:
                    seen.add(id(rule))
                    out.append(rule)
        out.extend(self.unindexed)
        return out

    @staticmethod
    @lru_cache(maxsize=1)
    def load() -> Database:
        rules: list[Rule] = []
        for name in data_names("identify"):
            if name.endswith(".yaml") and name not in RULE_FILES_SKIP:
                rules.extend(load_rules(load_yaml(name), name))
        rules.extend(hass_rules())
        counts = Counter(r.id for r in rules)
        dupes = sorted(i for i, n in counts.items() if n > 1)
        if dupes:
            raise FingerprintDataError(f"duplicate rule ids across files: {dupes[:10]}")
        return Database(rules, recog_matcher(), lexicon(), vendor_table())


def derive_priors(rules: Sequence[Rule], vendors: VendorTable) -> dict[str, tuple[str, float]]:
    """Vendor -> (usual category, share) counted from the products the rules know.

    Every rule or Home Assistant matcher that names both a maker and a category is one known
    product of that maker. A maker whose known products are nearly all of one kind ("Blink":
    cameras, "Lutron": hubs) gets that kind as a weak prior; one that makes several kinds gets
    none. Brands in ``vendors.yaml`` keep their hand-decided prior (or deliberate lack of one:
    LG makes TVs and fridges, whatever the rules happen to cover).
    """
    counts: dict[str, Counter[str]] = {}
    for rule in rules:
        then = dict(rule.then)
        vendor, category = then.get("vendor"), then.get("category")
        if not vendor or not category or "{" in vendor or "{" in category:
            continue
        name = vendors.normalise(vendor) or vendor
        counts.setdefault(name, Counter())[family(category)] += 1
    out: dict[str, tuple[str, float]] = {}
    for name, per_family in counts.items():
        total = sum(per_family.values())
        top, n = per_family.most_common(1)[0]
        share = n / total
        if (
            total >= DERIVED_PRIOR_MIN_PRODUCTS
            and share >= DERIVED_PRIOR_MIN_SHARE
            and not vendors.is_curated(name)
        ):
            out[vendor_key(name)] = (top, round(share, 3))
    return out


def _software_model(claim: Claim, vendors: VendorTable) -> bool:
    return claim.field.endswith("model_name") and vendors.is_weak(claim.value)


def _mac_records(records: list[Record]) -> tuple[list[Record], str | None]:
    """OUI facts for the device's own MAC and for MACs it reports about itself."""
    own = [v for r in records if r.kind == "mac" for v in r.fields.get("mac.address", ())]
    extra: list[Record] = []
    for mac in own:
        entry = oui_lookup(mac)
        rec = Record("mac", "mac registry")
        rec.add("mac.address", mac)
        if entry is not None:
            rec.add("mac.oui_organisation", entry.organisation)
            rec.add("mac.oui_prefix", entry.prefix)
        extra.append(rec)
    if not own:
        for mac, where in embedded_macs(records)[:4]:
            entry = oui_lookup(mac)
            if entry is not None:
                rec = Record("mac", f"mac reported in {where}")
                rec.add("mac.embedded_organisation", entry.organisation)
                extra.append(rec)
    primary = own[0] if own else None
    return extra, primary


class Identifier:
    """Identifies devices from observations using one loaded :class:`Database`."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or Database.load()

    def _claims(self, records: list[Record]) -> list[Claim]:
        db = self.db
        claims: list[Claim] = []
        for rec in records:
            for rule in db.rules_for(rec):
                claims.extend(rule.apply(rec))
        claims.extend(db.recog.claims(records))
        claims.extend(db.lexicon.claims(records))
        for rec in records:
            for fname, weight in (
                ("mac.oui_organisation", OUI_WEIGHT),
                ("mac.embedded_organisation", OUI_EMBEDDED_WEIGHT),
            ):
                for org in rec.fields.get(fname, ()):
                    w = OUI_MODULE_WEIGHT if db.vendors.is_module_maker(org) else weight
                    claims.append(Claim("vendor", org, w, "oui", "mac", fname, org, rec.uid))
        return claims

    def _normalise(self, claims: list[Claim]) -> list[Claim]:
        out: list[Claim] = []
        vendors = self.db.vendors
        for c in claims:
            if c.attribute == "model" and _software_model(c, vendors):
                # "gmediarender", "MiniDLNA": the software's name, not the device's model.
                c = Claim(c.attribute, c.value, min(c.weight, 0.25) * 0.5, c.rule, c.source,
                          c.field, c.observed, c.record)  # fmt: skip
            if c.attribute != "vendor":
                out.append(c)
                continue
            name = vendors.normalise(c.value)
            if not name:
                continue
            weight = c.weight
            if c.field.endswith("manufacturer") and vendors.is_weak(c.value):
                weight = min(weight, 0.25) * 0.5
            out.append(
                Claim(c.attribute, name, weight, c.rule, c.source, c.field, c.observed, c.record)
            )
        return out

    def _priors(self, claims: list[Claim]) -> list[Claim]:
        best: dict[str, Claim] = {}
        for c in claims:
            if c.attribute == "vendor" and c.weight >= 0.3:
                if c.value not in best or c.weight > best[c.value].weight:
                    best[c.value] = c
        out = []
        for vendor, c in best.items():
            category = self.db.vendors.category_prior(vendor)
            rule, scale = f"prior:{vendor}", BRAND_PRIOR_WEIGHT
            if not category and vendor_key(vendor) in self.db.derived_priors:
                category, share = self.db.derived_priors[vendor_key(vendor)]
                rule, scale = f"prior.derived:{vendor}", DERIVED_PRIOR_WEIGHT * share
            if category:
                weight = round(scale * min(1.0, c.weight + 0.2), 3)
                claim = Claim(
                    "category", category, weight, rule, c.source, c.field, c.observed, rule
                )
                out.append(claim)
        return out

    def identify_device(self, device: str, observations: Sequence[Observation]) -> Identity:
        try:
            records = records_for(observations)
            extra, mac = _mac_records(records)
            for i, rec in enumerate(extra):
                rec.uid = f"mac{i}:{rec.label}"
            records.extend(extra)
            if mac:
                # One record carries the device's MAC, so a MAC-prefix matcher is one witness;
                # DHCP requests carry it too, for matchers that pair it with the hostname.
                hexes = mac.replace(":", "").upper()
                own = Record("mac", "device", uid="device")
                own.add("device.mac_hex", hexes)
                records.append(own)
                for r in records:
                    if r.kind == "dhcp":
                        r.add("dhcp.mac_hex", hexes)
            claims = self._normalise(self._claims(records))
            claims.extend(self._priors(claims))
            result = conclude(claims)
        except IdentifyError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            # Device-supplied data must never crash a scan; report it as ours to handle.
            raise IdentifyError(f"device {device!r}: could not identify: {exc}") from exc
        return _identity(result, claims)


def _evidence(claims: list[Claim], result: dict[Attribute, Conclusion]) -> list[IdentityEvidence]:
    """Each observed datum once per rule, with what it claimed and what of the answer it backs."""
    grouped: dict[tuple[str, str, str, str], tuple[dict[str, str], float]] = {}
    for c in claims:
        key = (c.source, c.field, c.observed[: VALUE_CHARS * 2], c.rule)
        claimed, weight = grouped.get(key, ({}, 0.0))
        claimed.setdefault(c.attribute, c.value)
        grouped[key] = (claimed, max(weight, c.weight))
    supported = {
        (attribute, s.rule, s.value)
        for attribute, conclusion in result.items()
        if conclusion.value is not None
        for s in conclusion.support
    }
    items = [
        IdentityEvidence(
            source=source,
            field=fname,
            value=printable(observed, VALUE_CHARS),
            rule=rule,
            claims={a: printable(v, NAME_CHARS) for a, v in sorted(claimed.items())},
            weight=round(weight, 3),
            supports=sorted(a for a, v in claimed.items() if (a, rule, v) in supported),
        )
        for (source, fname, observed, rule), (claimed, weight) in grouped.items()
    ]
    items.sort(key=lambda e: (not e.supports, -e.weight, e.rule, e.field, e.value))
    return items[:MAX_EVIDENCE]


def _shown(value: str | None) -> str | None:
    """Device-supplied names go out printable and bounded, like every banner iotrate stores."""
    return printable(value, NAME_CHARS) or None if value is not None else None


def _identity(result: dict[Attribute, Conclusion], claims: list[Claim]) -> Identity:
    return Identity(
        category=result["category"].value or "other",
        vendor=_shown(result["vendor"].value),
        model=_shown(result["model"].value),
        firmware=_shown(result["firmware"].value),
        confidence=overall_confidence(result),
        confidences={a: c.confidence for a, c in result.items()},
        evidence=_evidence(claims, result),
    )


def group_by_device(observations: Iterable[Observation]) -> dict[str, list[Observation]]:
    """Observations per device id, devices in order of first appearance."""
    out: dict[str, list[Observation]] = {}
    for obs in observations:
        out.setdefault(obs.device, []).append(obs)
    return out


def identify(
    observations: Iterable[Observation], identifier: Identifier | None = None
) -> list[tuple[str, Identity]]:
    """Identify every device in ``observations``; (device id, identity) in first-seen order."""
    ident = identifier or Identifier()
    return [
        (device, ident.identify_device(device, obs))
        for device, obs in group_by_device(observations).items()
    ]
