"""Update status: which software versions a device gives away, and what is known about them.

Nothing is sent to the device. The probe reads what discovery and the other probes already
recorded (service banners, evidence such as the SSH identification, the MQTT broker's
``$SYS/broker/version``, identification evidence such as mDNS TXT values) and matches the
versions against the embedded-component dataset (:mod:`iotrate.vulndb`).

False positives cost more trust than misses, so the findings are graded: a version that carries
a distribution patch level becomes ``update.version-uncertain`` (never a CVE claim); a CVE whose
flaw sits in a client tool or needs a non-default configuration is only "possible"; a CVE that a
probe measured as absent on the same port (Terrapin against strict key exchange, Heartbleed
against sslyze's test) is ruled out; and version matches are never better than "probable".

The judging happens in :meth:`UpdateProbe.correlate`, which the runner calls once every probe
has run on every device: the runner probes a device's services concurrently, so when ``run()``
is called the MQTT broker version or the SSH strict-key-exchange measurement may not exist yet,
and ``update.version-unknown`` can only be said once everything has been read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from iotrate import vulndb
from iotrate.models import Confidence, Device, Finding

from .base import Probe, ProbeContext, ProbeFailed, make_finding

PROBE_ID = "update"
MAX_TEXT = 4000  # characters of evidence text read per finding
MAX_CVES_LISTED = 25
# Evidence data keys whose value is a firmware or software version of the device itself.
_VERSION_KEYS = frozenset(
    {
        "firmware",
        "firmware_version",
        "fw_version",
        "software_version",
        "sw_version",
        "build_version",
        "os_version",
        "srcvers",
    }
)
# Measurements that can rule a CVE out (see annotations.yaml `refuted_by`).
_MEASURED_KEYS = frozenset({"strict_kex", "heartbleed", "ccs_injection"})


@dataclass(frozen=True)
class Observation:
    """A piece of text the device gave away, and where."""

    text: str
    source: str
    port: int | None


def observations(device: Device) -> Iterator[Observation]:
    """Every banner, description and evidence string recorded for the device."""
    for svc in device.services:
        if svc.banner:
            where = f"{svc.port}/{svc.transport.value}"
            yield Observation(
                svc.banner, f"{svc.protocol or 'service'} banner on {where}", svc.port
            )
        for extra in (svc.product, svc.version):
            if extra:
                yield Observation(extra, f"service description on {svc.port}", svc.port)
    for f in device.findings:
        if f.check.startswith("update."):
            continue
        for ev in f.evidence:
            text = " | ".join([ev.summary, *_strings(ev.data)])[:MAX_TEXT]
            yield Observation(text, f"{f.probe or f.check} evidence", ev.port or f.port)
    identity = device.identity
    if identity is not None:
        for ie in identity.evidence:
            yield Observation(ie.value, f"identification: {ie.field}", None)


def _strings(data: Any, depth: int = 0) -> Iterator[str]:
    if depth > 3:
        return
    if isinstance(data, str):
        yield data
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from _strings(value, depth + 1)
    elif isinstance(data, list | tuple):
        for value in data[:50]:
            yield from _strings(value, depth + 1)


def disclosed_versions(device: Device) -> list[str]:
    """Versions of the device's own firmware or software found in structured evidence."""
    out: list[str] = []
    if device.firmware:
        out.append(f"firmware {device.firmware}")
    if device.identity is not None and device.identity.firmware:
        out.append(f"firmware {device.identity.firmware}")
    for f in device.findings:
        for ev in f.evidence:
            for key, value in ev.data.items():
                if (
                    key in _VERSION_KEYS
                    and isinstance(value, str)
                    and any(c.isdigit() for c in value)
                ):
                    out.append(f"{key} {value}")
                if key == "version_topics" and isinstance(value, Mapping):
                    out += [f"{t} {v}" for t, v in value.items() if isinstance(v, str)]
    return list(dict.fromkeys(out))


def measurements(device: Device) -> dict[int | None, dict[str, Any]]:
    """Per port, the probe measurements that can rule a CVE out."""
    out: dict[int | None, dict[str, Any]] = {}
    for f in device.findings:
        for ev in f.evidence:
            port = ev.port or f.port
            for key in _MEASURED_KEYS & ev.data.keys():
                value = ev.data[key]
                if value is not None:
                    out.setdefault(port, {})[key] = value
    return out


@dataclass
class _Group:
    """One component version, seen possibly in several places."""

    sighting: vulndb.Sighting
    sources: list[str]


def sightings(db: vulndb.VulnDB, device: Device) -> list[_Group]:
    groups: dict[tuple[str | None, str, str | None, str | None], _Group] = {}
    for obs in observations(device):
        for s in db.find(obs.text, obs.source, obs.port):
            key = (s.product, s.name if s.product is None else "", s.version, s.patch)
            group = groups.get(key)
            if group is None:
                groups[key] = _Group(s, [obs.source])
            elif obs.source not in group.sources:
                group.sources.append(obs.source)
    return sorted(
        groups.values(),
        key=lambda g: (g.sighting.product or "~", g.sighting.name, g.sighting.version or ""),
    )


def _cve_item(m: vulndb.CveMatch) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": m.cve.cve_id,
        "cvss": m.cve.cvss,
        "affected": m.cve.describe(),
        "scope": m.annotation.scope,
        "confidence": m.confidence.value,
        "why": m.why,
        "summary": m.cve.summary,
    }
    if m.kev is not None:
        item["kev_date_added"] = m.kev.date_added
        item["kev_ransomware"] = m.kev.ransomware
    if m.refuted:
        item["ruled_out"] = m.refuted
    return item


def _max_cvss(matches: Iterable[vulndb.CveMatch]) -> float | None:
    scores = [m.cve.cvss for m in matches if m.cve.cvss is not None]
    return max(scores) if scores else None


def assess_device(db: vulndb.VulnDB, device: Device, today: date) -> list[Finding]:
    """Component findings for everything visible on the device (no version-unknown)."""
    measured = measurements(device)
    out: list[Finding] = []
    for group in sightings(db, device):
        s = group.sighting
        comp = db.components.get(s.product or "")
        if comp is None or not comp.tracked or not s.version:
            continue
        same_port = measured.get(s.port, {}) if s.port is not None else {}
        if s.port is None:
            for values in measured.values():
                same_port = {**values, **same_port}
        a = db.assess(s, today, same_port)
        label = s.label
        base: dict[str, Any] = {
            "component": label,
            "product": comp.id,
            "version": s.version,
            "sources": group.sources,
            "raw": s.raw,
            "dataset": {
                "kev_catalog_version": db.meta.get("kev_catalog_version"),
                "updated": db.meta.get("updated"),
            },
        }
        where = f"{group.sources[0]}" + (
            f" (+{len(group.sources) - 1} more)" if len(group.sources) > 1 else ""
        )
        if a.uncertain:
            live = a.live
            out.append(
                make_finding(
                    "update.version-uncertain",
                    f"{label} from {where}: {a.uncertain}; not matched against CVEs",
                    s.port,
                    {
                        **base,
                        "patch_level": (s.patch or "").strip(),
                        "reason": a.uncertain,
                        "upstream_cves": [m.cve.cve_id for m in live][:MAX_CVES_LISTED],
                        "note": "CVE ids that would apply to the unpatched upstream version; "
                        "not a claim about this device",
                    },
                    probe=PROBE_ID,
                    confidence=Confidence.PROBABLE,
                )
            )
            continue
        live = a.live
        ruled_out = [_cve_item(m) for m in a.matches if m.refuted]
        kev = [m for m in live if m.kev is not None]
        probable = [m for m in live if m.kev is None and m.confidence is Confidence.PROBABLE]
        possible = [m for m in live if m.kev is None and m.confidence is Confidence.POSSIBLE]
        if kev:
            sure = any(m.confidence is Confidence.PROBABLE for m in kev)
            out.append(
                make_finding(
                    "update.known-exploited",
                    f"{label} ({where}) has {len(kev)} vulnerabilities on CISA's known "
                    f"exploited list: {', '.join(m.cve.cve_id for m in kev)}",
                    s.port,
                    {
                        **base,
                        "cve": [m.cve.cve_id for m in kev],
                        "cvss": _max_cvss(kev),
                        "cves": [_cve_item(m) for m in kev],
                    },
                    probe=PROBE_ID,
                    confidence=Confidence.PROBABLE if sure else Confidence.POSSIBLE,
                )
            )
        for matches, confidence in (
            (probable, Confidence.PROBABLE),
            (possible, Confidence.POSSIBLE),
        ):
            if not matches:
                continue
            ids = [m.cve.cve_id for m in matches]
            cvss = _max_cvss(matches)
            qualifier = (
                ""
                if confidence is Confidence.PROBABLE
                else " (possible: " + "; ".join(sorted({m.why for m in matches})) + ")"
            )
            out.append(
                make_finding(
                    "update.cve",
                    f"{label} ({where}) is in the affected range of {len(ids)} CVEs"
                    + (f", highest CVSS {cvss:g}" if cvss is not None else "")
                    + f": {', '.join(ids[:8])}{'…' if len(ids) > 8 else ''}{qualifier}",
                    s.port,
                    {
                        **base,
                        "cve": ids,
                        "cvss": cvss,
                        "cves": [_cve_item(m) for m in matches][:MAX_CVES_LISTED],
                        "ruled_out": ruled_out,
                    },
                    probe=PROBE_ID,
                    confidence=confidence,
                )
            )
        if a.outdated_latest and not kev and not probable:
            out.append(
                make_finding(
                    "update.outdated",
                    f"{label} ({where}) is older than {comp.name} {a.outdated_latest}, the newest "
                    "release iotrate knows of",
                    s.port,
                    {
                        **base,
                        "latest": a.outdated_latest,
                        "latest_source": comp.latest_source,
                        "possible_cves": [m.cve.cve_id for m in possible],
                        "ruled_out": ruled_out,
                    },
                    probe=PROBE_ID,
                    confidence=Confidence.PROBABLE,
                )
            )
        if a.eol is not None:
            out.append(
                make_finding(
                    "update.eol",
                    f"{label} ({where}) gets no security fixes since "
                    f"{a.eol.date.isoformat()}: {a.eol.source}",
                    s.port,
                    {
                        **base,
                        "branch": a.eol.branch,
                        "eol_date": a.eol.date.isoformat(),
                        "eol_source": a.eol.source,
                    },
                    probe=PROBE_ID,
                    confidence=Confidence.PROBABLE,
                )
            )
    return out


def version_unknown(db: vulndb.VulnDB, device: Device) -> Finding | None:
    """The device-level "we could not tell" finding, when nothing disclosed a version."""
    groups = sightings(db, device)
    if any(g.sighting.version for g in groups) or disclosed_versions(device):
        return None
    nameless = sorted({g.sighting.name for g in groups})
    checked = sorted({o.source for o in observations(device)})
    return make_finding(
        "update.version-unknown",
        "no banner, description or evidence disclosed a software or firmware version"
        + (f" ({', '.join(nameless)} seen without a version)" if nameless else ""),
        None,
        {"components_without_version": nameless, "sources_checked": checked[:30]},
        probe=PROBE_ID,
        confidence=Confidence.PROBABLE,
    )


def _key(f: Finding) -> tuple[str, str]:
    data = f.evidence[0].data if f.evidence else {}
    return f.check, str(data.get("component", ""))


class UpdateProbe(Probe):
    """Software versions from banners and evidence, matched against the vulnerability
    dataset."""

    id: ClassVar[str] = PROBE_ID
    title: ClassVar[str] = "Update status (software versions and known vulnerabilities)"
    device_level: ClassVar[bool] = True
    timeout: ClassVar[float] = 10.0
    checks: ClassVar[tuple[str, ...]] = (
        "update.known-exploited",
        "update.cve",
        "update.outdated",
        "update.eol",
        "update.version-unknown",
        "update.version-uncertain",
    )

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        """Only checks that the dataset loads: every judgement waits for :meth:`correlate`,
        because the runner probes a device's services concurrently and a measurement that
        rules a CVE out (strict key exchange, Heartbleed test) may not exist yet."""
        try:
            vulndb.load()
        except vulndb.VulnDataError as exc:
            raise ProbeFailed(str(exc)) from None
        return []

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> dict[str, list[Finding]]:
        """The update findings of every device, from everything its probes recorded."""
        db = vulndb.load()
        today = datetime.now(UTC).date()
        out: dict[str, list[Finding]] = {}
        for dev in devices:
            have = {_key(f) for f in dev.findings if f.check.startswith("update.")}
            found = [f for f in assess_device(db, dev, today) if _key(f) not in have]
            unknown = version_unknown(db, dev)
            if unknown is not None and _key(unknown) not in have:
                found.append(unknown)
            if found:
                out[dev.id] = found
        return out
