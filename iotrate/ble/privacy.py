"""The scheme's Bluetooth privacy checks, run over a capture (live or replayed) of one device.

Four questions, each answered from advertisements alone (nothing is sent to the device):

``ble.address.stable``
    Can the device be followed? A public address is the IEEE MAC and never changes; a random
    address or a payload identifier (a Tile id, a Find My key, the device's MAC repeated in its
    data) kept for longer than :data:`ROTATION_S` is as good as one. The Bluetooth Core
    Specification recommends changing a private address every 15 minutes (Vol 3, Part C,
    Appendix A, ``TGAP(private_addr_int)``); iOS and Android do.
``ble.name.personal``
    Does the local name carry a person's name ("Anna's AirPods"), an e-mail address or a
    phone number?
``ble.data.unprotected``
    Can anyone in range read health or identity data (heart rate, weight, temperature, blood
    pressure, steps, an e-mail address) from the advertisements, without pairing?
``ble.tracker.following``
    The anti-stalking check: an item tracker that says it is away from its owner (Find My
    separated, SmartTag offline, Google FMDN protection mode) or cannot say (Tile), heard for at
    least :data:`TRACKER_MIN_S` and through most of the capture, whatever its signal strength:
    it is travelling with whoever holds the scanner.

Time-based checks need a capture spanning time; when it is too short they are *not
evaluated* (an outcome with status ``failed`` and the reason), never passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from iotrate.ble.adv import Decoded, Exposure, advert_from_observation, decode
from iotrate.identify.facts import ble_content_key
from iotrate.identify.observations import BleObservation
from iotrate.models import (
    Confidence,
    Finding,
    OutcomeStatus,
    ProbeOutcome,
)
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import Scheme

PROBE = "ble.passive"
ROTATION_S = 15 * 60
TRACKER_MIN_S = 20 * 60
TRACKER_PRESENCE = 0.75  # share of the capture's 5-minute windows the tracker was heard in
WINDOW_S = 5 * 60
TRACKER_MIN_SIGHTINGS = 3

CHECK_STABLE = "ble.address.stable"
CHECK_NAME = "ble.name.personal"
CHECK_DATA = "ble.data.unprotected"
CHECK_TRACKER = "ble.tracker.following"
CHECKS = (CHECK_STABLE, CHECK_NAME, CHECK_DATA, CHECK_TRACKER)


class CheckInfo:
    """Findings of the privacy checks, with everything the scheme says about them (title,
    severity, remediation, clauses); the current scheme when none is given."""

    def __init__(self, scheme: Scheme | None = None) -> None:
        self.scheme = scheme if scheme is not None else load_scheme()

    def finding(
        self,
        check: str,
        summary: str,
        data: dict[str, Any],
        confidence: Confidence = Confidence.CONFIRMED,
    ) -> Finding:
        found: Finding = self.scheme.finding(
            check, summary, None, data, probe=PROBE, transport=None, confidence=confidence
        )
        return found


@dataclass(frozen=True)
class Capture:
    """When the scanner was listening (seconds on the recording's clock)."""

    start: float | None
    end: float | None

    @property
    def span(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start

    @staticmethod
    def of(observations: Iterable[BleObservation]) -> Capture:
        times = [o.time for o in observations if o.time is not None]
        return Capture(min(times), max(times)) if times else Capture(None, None)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def decoded_of(observations: Sequence[BleObservation]) -> list[Decoded]:
    """Each distinct advertisement decoded once (a capture repeats them thousands of times)."""
    seen: set[str] = set()
    out: list[Decoded] = []
    for obs in observations:
        key = ble_content_key(obs)
        if key in seen:
            continue
        seen.add(key)
        out.append(decode(advert_from_observation(obs)))
    return out


# --- the checks -------------------------------------------------------------------------------

Result = tuple[OutcomeStatus, str | None, list[Finding]]


def _spans(pairs: Iterable[tuple[str, float]]) -> dict[str, tuple[float, float]]:
    spans: dict[str, tuple[float, float]] = {}
    for key, t in pairs:
        lo, hi = spans.get(key, (t, t))
        spans[key] = (min(lo, t), max(hi, t))
    return spans


def check_stable(
    observations: Sequence[BleObservation], info: CheckInfo, decoded: dict[str, Decoded]
) -> Result:
    addressed = [o for o in observations if o.address]
    public = next(
        (o for o in addressed if o.address_type == "public" and ":" in (o.address or "")), None
    )
    if public is not None:
        summary = (
            f"advertises its public address {public.address}: the IEEE address of the device, "
            "the same everywhere and for ever, so anyone with a Bluetooth receiver can "
            "recognise it again"
        )
        found: dict[str, Any] = {
            "address": public.address,
            "address_type": "public",
            "identifier": "address",
        }
        return OutcomeStatus.RAN, None, [info.finding(CHECK_STABLE, summary, found)]
    timed = [(o.address or "", o.time) for o in addressed if o.time is not None]
    by_address = _spans((a, t) for a, t in timed)
    ids: list[tuple[str, float]] = []
    for obs in observations:
        if obs.time is None:
            continue
        for what, value in decoded[ble_content_key(obs)].identifiers:
            ids.append((f"{what}|{value}", obs.time))
    by_identifier = _spans(ids)
    candidates = [
        (hi - lo, "address", key) for key, (lo, hi) in by_address.items() if hi - lo >= ROTATION_S
    ] + [
        (hi - lo, "identifier", key)
        for key, (lo, hi) in by_identifier.items()
        if hi - lo >= ROTATION_S
    ]
    if candidates:
        seconds, kind, key = max(candidates, key=lambda c: (c[0], c[1] == "address", c[2]))
        if kind == "address":
            atype = next((o.address_type for o in addressed if o.address == key), "unknown")
            summary = (
                f"kept the address {key} ({atype.replace('_', ' ')}) for {_minutes(seconds)}; "
                f"a private address should change at least every {ROTATION_S // 60} minutes"
            )
            data: dict[str, Any] = {
                "address": key,
                "address_type": atype,
                "minutes": round(seconds / 60, 1),
                "identifier": "address",
            }
        else:
            what, value = key.split("|", 1)
            summary = (
                f"broadcast the same {what} ({value[:24]}) for {_minutes(seconds)}, so it can "
                "be recognised even when its address changes"
            )
            data = {"identifier": what, "value": value[:64], "minutes": round(seconds / 60, 1)}
        return OutcomeStatus.RAN, None, [info.finding(CHECK_STABLE, summary, data)]
    if not addressed and not by_identifier:
        return OutcomeStatus.FAILED, "no address or time was recorded", []
    times = [o.time for o in observations if o.time is not None]
    seen_for = (max(times) - min(times)) if times else 0.0
    if seen_for < ROTATION_S:
        return (
            OutcomeStatus.FAILED,
            f"heard for {_minutes(seen_for)}: too short to tell whether its address changes "
            f"every {ROTATION_S // 60} minutes (scan longer: iotrate ble scan --follow 20)",
            [],
        )
    return OutcomeStatus.RAN, None, []


# Possessives and "<device> de/von/di <Name>"; e-mail addresses; phone numbers written with a
# country code or in groups. Bare digit runs are serial numbers far more often than phones.
_POSSESSIVE = re.compile(r"(?<![\w])(?P<who>[A-Z][a-z\u00c0-\u017f]{1,30})[\u2019']s\b")
_OF_NAME = re.compile(
    r"\b(?:iphone|ipad|airpods|watch|macbook|galaxy|pixel|buds|phone|tablet|headphones)\b"
    r"(?:\s+\w+)?\s+(?:de|di|da|von|van|du)\s+(?P<who>[A-Z][a-z\u00c0-\u017f]{1,30})\b",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)(?:\d[\s.-]?){6,13}\d|\b\d{2,4}(?:[\s.-]\d{2,4}){3,5}\b"
)
_NOT_NAMES = frozenset({"Apple", "Samsung", "Google", "Sony", "Bose", "Galaxy", "Mi", "Tile"})


def personal_details(name: str) -> list[tuple[str, str]]:
    """(what, matched text) for each personal detail a device name carries."""
    found: list[tuple[str, str]] = []
    for pattern in (_POSSESSIVE, _OF_NAME):
        for m in pattern.finditer(name):
            who = m.group("who")
            if who not in _NOT_NAMES:
                found.append(("a person's name", who))
    found += [("an e-mail address", m.group(0)) for m in _EMAIL.finditer(name)]
    for m in _PHONE.finditer(name):
        if sum(c.isdigit() for c in m.group(0)) >= 8:
            found.append(("a phone number", m.group(0)))
    return found


def check_name(observations: Sequence[BleObservation], info: CheckInfo) -> Result:
    names = sorted({o.name for o in observations if o.name})
    for name in names:
        details = personal_details(name)
        if details:
            kinds = sorted({k for k, _ in details})
            summary = f"calls itself {name[:64]!r}, which tells everyone nearby " + " and ".join(
                kinds
            )
            data = {"name": name[:128], "details": kinds}
            return OutcomeStatus.RAN, None, [info.finding(CHECK_NAME, summary, data)]
    return OutcomeStatus.RAN, None, []


def check_data(decoded: Iterable[Decoded], info: CheckInfo) -> Result:
    exposures = []
    for d in decoded:
        for e in d.exposures:
            if e not in exposures:
                exposures.append(e)
        for field_name, value in d.facts:
            if field_name in ("ble.text", "ble.eddystone.url"):
                for what, text in personal_details(value):
                    if what != "a person's name":
                        exposures.append(Exposure("identity", what, text, field_name))
    if not exposures:
        return OutcomeStatus.RAN, None, []
    kinds = sorted({e.what for e in exposures})
    first = exposures[0]
    summary = (
        f"broadcasts {', '.join(kinds)} to anyone in range, without pairing "
        f"(e.g. {first.what} {first.detail} in {first.source})"
    )
    data = {
        "data": kinds,
        "kind": sorted({e.kind for e in exposures}),
        "source": sorted({e.source for e in exposures}),
    }
    return OutcomeStatus.RAN, None, [info.finding(CHECK_DATA, summary, data)]


def check_tracker(
    observations: Sequence[BleObservation],
    decoded: Sequence[Decoded],
    capture: Capture,
    info: CheckInfo,
    category: str | None,
) -> Result:
    signals = [s for d in decoded for s in d.trackers]
    if not signals and category != "tracker":
        return OutcomeStatus.NOT_APPLICABLE, "not an item tracker", []
    states = {s.separated for s in signals} or {None}
    if True in states:
        separated: bool | None = True
    elif None in states:
        separated = None
    else:
        return OutcomeStatus.RAN, None, []  # only near-owner frames: its owner is with it
    if capture.span < TRACKER_MIN_S:
        return (
            OutcomeStatus.FAILED,
            f"the capture lasted {_minutes(capture.span)}; telling whether a tracker travels "
            f"with you takes at least {TRACKER_MIN_S // 60} minutes "
            "(iotrate ble scan --follow 20, or replay a longer recording)",
            [],
        )
    times = sorted(o.time for o in observations if o.time is not None)
    if len(times) < TRACKER_MIN_SIGHTINGS or capture.start is None:
        return OutcomeStatus.RAN, None, []
    seen_for = times[-1] - times[0]
    windows = max(1, int(capture.span // WINDOW_S) + (1 if capture.span % WINDOW_S else 0))
    heard = {min(windows - 1, int((t - capture.start) // WINDOW_S)) for t in times}
    presence = len(heard) / windows
    if seen_for < TRACKER_MIN_S or presence < TRACKER_PRESENCE:
        return OutcomeStatus.RAN, None, []
    network = next((s.network for s in signals), "unknown network")
    state = (
        "which says it is away from its owner"
        if separated
        else "whose signal does not say whether its owner is near"
    )
    summary = (
        f"An item tracker ({network}), {state}, was near you for {_minutes(seen_for)}, "
        f"through {presence:.0%} of this scan. If nobody with you owns it, it may be following "
        "you."
    )
    data = {
        "network": network,
        "separated": separated,
        "minutes": round(seen_for / 60, 1),
        "presence": round(presence, 2),
        "sightings": len(times),
    }
    confidence = Confidence.CONFIRMED if separated else Confidence.PROBABLE
    return OutcomeStatus.RAN, None, [info.finding(CHECK_TRACKER, summary, data, confidence)]


def assess(
    observations: Sequence[BleObservation],
    capture: Capture,
    *,
    category: str | None = None,
    scheme: Scheme | None = None,
) -> tuple[list[Finding], list[ProbeOutcome]]:
    """Findings and one outcome per check for one device's observations within ``capture``."""
    info = CheckInfo(scheme)
    by_key: dict[str, Decoded] = {}
    for obs, d in zip(_distinct(observations), decoded_of(observations), strict=True):
        by_key[ble_content_key(obs)] = d
    decoded = list(by_key.values())
    results = {
        CHECK_STABLE: check_stable(observations, info, by_key),
        CHECK_NAME: check_name(observations, info),
        CHECK_DATA: check_data(decoded, info),
        CHECK_TRACKER: check_tracker(observations, decoded, capture, info, category),
    }
    findings: list[Finding] = []
    outcomes: list[ProbeOutcome] = []
    for check, (status, reason, found) in results.items():
        findings.extend(found)
        outcomes.append(ProbeOutcome(probe=PROBE, status=status, reason=reason, checks=[check]))
    return findings, outcomes


def _distinct(observations: Sequence[BleObservation]) -> list[BleObservation]:
    seen: set[str] = set()
    out = []
    for obs in observations:
        key = ble_content_key(obs)
        if key not in seen:
            seen.add(key)
            out.append(obs)
    return out
