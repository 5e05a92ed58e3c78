"""What the dashboard shows, as plain data built from the stored scans.

Each page has a view model here, and its JSON endpoint returns exactly that model: the page and
the API cannot disagree, and the wording is testable without parsing HTML. Everything a device
said reaches a view model only through :func:`text` (control, bidi and escape characters
dropped, length capped) — the templates then escape it for HTML on top.

"A site's devices" means what the latest scan of each of its networks saw: per site and set of
targets, the latest complete scan (an unfinished newer one would make devices look gone), or the
latest at all when none finished. Devices are told apart by their stable key (the MAC when
known, else the address), as :mod:`iotrate.history` does.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from iotrate.errors import UsageError
from iotrate.history import DeviceRef, FindingRef, diff_results, scan_scope_line
from iotrate.models import GRADES, ScanResult
from iotrate.naming import display_name_of
from iotrate.reports import html as html_report
from iotrate.reports.textfit import clean
from iotrate.signing import result_digest
from iotrate.storage import DeviceBrief, DeviceRecord, ScanSummary, Store

SEVERITIES = ("critical", "high", "medium", "low", "info")
UNRATED = "unrated"
GRADE_KEYS = (*GRADES, UNRATED)
SORTS = ("grade", "name", "site", "address", "findings")
# Query values longer than this are refused rather than searched: no real name is this long,
# and a filter is echoed into the page.
MAX_QUERY = 200
CACHE_SIZE = 64
#: Device list rows kept (a few hundred bytes each).
ROW_CACHE_ROWS = 200_000
#: Devices on one page of the device list.
PAGE_ROWS = 500


class NotFound(Exception):
    """The page names a scan or device the database does not hold (HTTP 404)."""


def text(value: object, limit: int = 200) -> str:
    """A device string made safe to show: printable, one line, at most ``limit`` characters
    (cut with an ellipsis, so a 10 kB name cannot stretch a table)."""
    s = str(clean(value, limit=limit + 1))
    return s if len(s) <= limit else s[: limit - 1] + "…"


def when(dt: datetime | None) -> str:
    """Times are shown in UTC with the zone named: agents on several sites may sit in
    different zones, and the server's own zone means nothing to a remote reader."""
    if dt is None:
        return ""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") if dt else None


def device_href(key: str, site: str | None = None, scan: str | None = None) -> str:
    """Device keys are MACs or addresses but may be anything a device made them; quoting
    everything but ':' keeps them inside one path segment and out of the query."""
    params = {k: v for k, v in (("site", site), ("scan", scan)) if v}
    query = f"?{urlencode(params)}" if params else ""
    return f"/devices/{quote(key, safe=':')}{query}"


def scan_href(scan_id: str) -> str:
    return f"/scans/{quote(scan_id, safe='')}"


def _grade_counts(grades: Iterable[str | None]) -> list[tuple[str, int]]:
    counts = dict.fromkeys(GRADE_KEYS, 0)
    for g in grades:
        counts[g if g in counts else UNRATED] += 1
    return list(counts.items())


def _worst_severity(device: DeviceBrief) -> str | None:
    found = {severity for _, severity in device.findings}
    return next((s for s in SEVERITIES if s in found), None)


# --- reading the store ------------------------------------------------------------------------


class ResultCache:
    """Loaded results, newest-used last. A finished scan never changes, so its result is kept
    while its row says the same status, end time and device count; a running scan is always
    read again. The rows of the device lists are kept the same way, by scan, up to
    ``max_rows`` rows. Used from one thread only (the dashboard's database thread)."""

    def __init__(self, size: int = CACHE_SIZE, max_rows: int = ROW_CACHE_ROWS) -> None:
        self.size = size
        self.max_rows = max_rows
        self._items: OrderedDict[str, tuple[tuple[object, ...], ScanResult]] = OrderedDict()
        self._rows: OrderedDict[str, tuple[tuple[object, ...], list[DeviceRow]]] = OrderedDict()
        self._row_count = 0

    @staticmethod
    def _stamp(summary: ScanSummary) -> tuple[object, ...]:
        return (summary.status, summary.finished_at, summary.devices)

    def get(self, summary: ScanSummary, load: Any) -> ScanResult:
        stamp = self._stamp(summary)
        hit = self._items.get(summary.scan_id)
        if hit is not None and hit[0] == stamp and summary.status != "running":
            self._items.move_to_end(summary.scan_id)
            return hit[1]
        result: ScanResult = load(summary.scan_id)
        if summary.status != "running":
            self._items[summary.scan_id] = (stamp, result)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return result

    def device_rows(
        self,
        summaries: Sequence[ScanSummary],
        make: Callable[[list[ScanSummary]], dict[str, list[DeviceRow]]],
    ) -> dict[str, list[DeviceRow]]:
        """Each scan's list rows; ``make`` builds those not kept, all in one go."""
        out: dict[str, list[DeviceRow]] = {}
        missing: list[ScanSummary] = []
        for s in summaries:
            hit = self._rows.get(s.scan_id)
            if hit is not None and hit[0] == self._stamp(s) and s.status != "running":
                self._rows.move_to_end(s.scan_id)
                out[s.scan_id] = hit[1]
            else:
                missing.append(s)
        made = make(missing) if missing else {}
        for s in missing:
            rows = out[s.scan_id] = made.get(s.scan_id, [])
            if s.status == "running":
                continue
            old = self._rows.pop(s.scan_id, None)
            self._row_count += len(rows) - (len(old[1]) if old else 0)
            self._rows[s.scan_id] = (self._stamp(s), rows)
            while self._row_count > self.max_rows and len(self._rows) > 1:
                _, (_, dropped) = self._rows.popitem(last=False)
                self._row_count -= len(dropped)
        return out


class Reader:
    """One request's reading of the store, through its public read methods only."""

    def __init__(self, store: Store, cache: ResultCache) -> None:
        self.store = store
        self.cache = cache
        self._scans: list[ScanSummary] | None = None

    def scans(self) -> list[ScanSummary]:
        if self._scans is None:
            self._scans = self.store.scans()
        return self._scans

    def summary(self, ref: str) -> ScanSummary:
        """The scan a page names, by id or unique prefix; an unknown one is a 404."""
        try:
            scan_id = self.store.resolve(ref)
        except UsageError as exc:
            raise NotFound(str(exc)) from exc
        for s in self.scans():
            if s.scan_id == scan_id:
                return s
        raise NotFound(f"no stored scan {ref!r}")

    def result(self, summary: ScanSummary) -> ScanResult:
        return self.cache.get(summary, self.store.load_scan)

    def site_of(self) -> dict[str, str]:
        """Scan id -> its site's name as shown (and as filters compare it)."""
        return {s.scan_id: site_name(s) for s in self.scans()}

    def sites(self) -> list[str]:
        return sorted({site_name(s) for s in self.scans()})


def site_name(scan: ScanSummary) -> str:
    """A site's name as shown, linked and filtered on: agents name their sites, so the name is
    cleaned like any other outside string, and compared in that form everywhere."""
    return text(scan.site, 80)


def current_scans(scans: Iterable[ScanSummary]) -> list[ScanSummary]:
    """Per site and set of targets, the scan whose devices count as "now" (module docstring)."""
    latest: dict[tuple[str, tuple[str, ...]], ScanSummary] = {}
    for s in sorted(scans, key=lambda s: (s.started_at, s.scan_id)):
        k = (s.site, tuple(sorted(s.targets)))
        held = latest.get(k)
        if held is None or s.status == "complete" or held.status != "complete":
            latest[k] = s
    return sorted(latest.values(), key=lambda s: (s.started_at, s.scan_id))


# --- devices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    key: str
    site: str
    scan_id: str
    scanned: str | None
    scanned_text: str
    name: str
    vendor: str
    model: str
    category: str
    address: str
    mac: str
    grade: str | None
    score: float | None
    findings: int
    worst: str | None
    checks: list[str]
    href: str


@lru_cache(maxsize=4096)
def _check_text(check: str) -> str:
    """A check id as shown; a few dozen ids recur on thousands of rows."""
    return text(check, 80)


def device_row(device: DeviceBrief, scan: ScanSummary, link_scan: bool = False) -> DeviceRow:
    """A list's row, from the device's columns (:meth:`Store.device_briefs`), not its JSON."""
    name = display_name_of(
        device.vendor, device.model, device.names, device.category, device.address
    )
    return DeviceRow(
        key=device.device_key,
        site=site_name(scan),
        scan_id=scan.scan_id,
        scanned=iso(scan.started_at),
        scanned_text=when(scan.started_at),
        name=text(name, 120),
        vendor=text(device.vendor, 80),
        model=text(device.model, 80),
        category=text(device.category, 40) or "unknown",
        address=text(device.address, 64),
        mac=text(device.mac, 40),
        grade=device.grade,
        score=device.score,
        findings=len(device.findings),
        worst=_worst_severity(device),
        checks=sorted({_check_text(check) for check, _ in device.findings}),
        href=device_href(device.device_key, site_name(scan), scan.scan_id if link_scan else None),
    )


def _grade_rank(grade: str | None) -> int:
    # Worst first: G before A, unrated after all graded devices.
    return -GRADES.index(grade) if grade in GRADES else 1


def _address_key(address: str) -> tuple[int, ...] | tuple[str]:
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    return (address,)


def _sort_rows(rows: list[DeviceRow], sort: str) -> list[DeviceRow]:
    if sort == "name":
        return sorted(rows, key=lambda r: (r.name.lower(), r.site, r.key))
    if sort == "site":
        return sorted(rows, key=lambda r: (r.site, _grade_rank(r.grade), r.name.lower()))
    if sort == "address":
        return sorted(rows, key=lambda r: (r.site, str(_address_key(r.address)), r.address))
    if sort == "findings":
        return sorted(rows, key=lambda r: (-r.findings, _grade_rank(r.grade), r.name.lower()))
    return sorted(rows, key=lambda r: (_grade_rank(r.grade), r.site, r.name.lower(), r.key))


@dataclass(frozen=True)
class DeviceFilter:
    """The device list's filters, all plain query parameters so a filtered list is a link
    and works without JavaScript."""

    site: str = ""
    grade: str = ""
    category: str = ""
    q: str = ""
    finding: str = ""
    severity: str = ""
    scan: str = ""
    sort: str = "grade"
    page: str = ""  # 1-based; "" is the first

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> DeviceFilter:
        values: dict[str, str] = {}
        for f in dataclasses.fields(cls):
            raw = params.get(f.name, "")
            if len(raw) > MAX_QUERY:
                raise UsageError(f"the {f.name} filter is longer than {MAX_QUERY} characters")
            values[f.name] = " ".join(raw.split())
        grade = values["grade"]
        if grade and grade.upper() in GRADES:
            values["grade"] = grade.upper()
        elif grade and grade.lower() != UNRATED:
            raise UsageError(f"grade must be one of A-G or {UNRATED}, not {text(grade, 20)!r}")
        elif grade:
            values["grade"] = UNRATED
        sev = values["severity"].lower()
        if sev and sev not in SEVERITIES:
            raise UsageError(f"severity must be one of {', '.join(SEVERITIES)}")
        values["severity"] = sev
        sort = values["sort"] or "grade"
        if sort not in SORTS:
            raise UsageError(f"sort must be one of {', '.join(SORTS)}")
        values["sort"] = sort
        page = values["page"]
        if page and not (page.isdigit() and 0 < int(page) < 10**6):
            raise UsageError(f"page must be a number from 1, not {text(page, 20)!r}")
        values["page"] = "" if page in ("", "1") else str(int(page))
        return cls(**values)

    @property
    def page_number(self) -> int:
        return int(self.page or 1)

    def matches(self, row: DeviceRow) -> bool:
        if self.site and row.site != self.site:
            return False
        if self.grade and (row.grade or UNRATED) != self.grade:
            return False
        if self.category and row.category != self.category:
            return False
        if self.q:
            hay = " ".join((row.name, row.vendor, row.model, row.address, row.mac, row.key))
            if self.q.lower() not in hay.lower():
                return False
        if self.finding and not any(
            c == self.finding or c.startswith(self.finding.rstrip(".") + ".") for c in row.checks
        ):
            return False
        if self.severity:
            limit = SEVERITIES.index(self.severity)
            if row.worst is None or SEVERITIES.index(row.worst) > limit:
                return False
        return True

    def params(self, **changes: str) -> dict[str, str]:
        """The query parameters; any other change than the page starts again at page 1."""
        if set(changes) - {"page"}:
            changes = {"page": "", **changes}
        values = {**dataclasses.asdict(self), **changes}
        return {
            k: v
            for k, v in values.items()
            if v and not (k == "sort" and v == "grade") and not (k == "page" and v == "1")
        }

    def query(self, **changes: str) -> str:
        """This filter as a query string (with some values changed), for links."""
        params = self.params(**changes)
        return f"?{urlencode(params)}" if params else ""

    @property
    def active(self) -> bool:
        return bool(self.params(sort="grade"))


@dataclass(frozen=True)
class DeviceList:
    filters: DeviceFilter
    devices: list[DeviceRow]  # this page's
    total: int  # devices in the list before the filters
    matched: int  # devices the filters let through, on all pages
    grades: list[tuple[str, int]]
    sites: list[str]
    categories: list[str]
    checks: list[str]
    scan: ScanRow | None = None
    page: int = 1
    pages: int = 1
    first: int = 0  # 1-based number of this page's first device; 0 when none

    @property
    def last(self) -> int:
        return self.first + len(self.devices) - 1 if self.devices else 0

    @property
    def previous_href(self) -> str | None:
        if self.page <= 1:
            return None
        return "/devices" + self.filters.query(page=str(self.page - 1))

    @property
    def next_href(self) -> str | None:
        if self.page >= self.pages:
            return None
        return "/devices" + self.filters.query(page=str(self.page + 1))

    @property
    def grade_links(self) -> list[tuple[str, int, str]]:
        """(grade, count, link to this list narrowed to that grade) for the grade scale."""
        return [(g, n, "/devices" + self.filters.query(grade=g)) for g, n in self.grades]


def devices_page(reader: Reader, filters: DeviceFilter) -> DeviceList:
    if filters.scan:
        s = reader.summary(filters.scan)
        rows = [device_row(d, s, link_scan=True) for d in reader.store.device_briefs([s.scan_id])]
        scan_row: ScanRow | None = scan_row_of(s)
    else:
        rows = current_devices(reader)
        scan_row = None
    shown = _sort_rows([r for r in rows if filters.matches(r)], filters.sort)
    # A page at a time: a browser renders a few hundred rows at once comfortably, not the
    # tens of thousands a fleet has.
    pages = max(1, -(-len(shown) // PAGE_ROWS))
    page = filters.page_number
    if page > pages:
        raise NotFound(f"there is no page {page}: this list has {pages}")
    start = (page - 1) * PAGE_ROWS
    return DeviceList(
        filters=filters,
        devices=shown[start : start + PAGE_ROWS],
        total=len(rows),
        matched=len(shown),
        grades=_grade_counts(r.grade for r in shown),
        sites=reader.sites(),
        categories=sorted({r.category for r in rows}),
        checks=sorted({c for r in rows for c in r.checks}),
        scan=scan_row,
        page=page,
        pages=pages,
        first=start + 1 if shown else 0,
    )


def current_devices(reader: Reader) -> list[DeviceRow]:
    current = current_scans(reader.scans())

    def make(missing: list[ScanSummary]) -> dict[str, list[DeviceRow]]:
        by_id = {s.scan_id: s for s in missing}
        out: dict[str, list[DeviceRow]] = {s.scan_id: [] for s in missing}
        for d in reader.store.device_briefs(list(by_id)):
            out[d.scan_id].append(device_row(d, by_id[d.scan_id]))
        return out

    per_scan = reader.cache.device_rows(current, make)
    rows: dict[tuple[str, str], DeviceRow] = {}
    for s in current:  # oldest first: a newer scan's record of the same device wins
        for row in per_scan[s.scan_id]:
            rows[(s.site, row.key.lower())] = row
    return list(rows.values())


# --- sites ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRow:
    site: str
    devices: int
    grades: list[tuple[str, int]]
    attention: int
    scans: int
    last_scan: str | None
    last_scan_text: str
    last_scan_id: str
    last_status: str
    devices_href: str
    scans_href: str


@dataclass(frozen=True)
class Overview:
    sites: list[SiteRow]
    devices: int
    attention: int
    scans: int
    grades: list[tuple[str, int]]
    last_scan: str | None
    last_scan_text: str

    @property
    def grade_links(self) -> list[tuple[str, int, str]]:
        return [(g, n, "/devices" + DeviceFilter(grade=g).query()) for g, n in self.grades]


def overview_page(reader: Reader) -> Overview:
    scans = reader.scans()
    rows = current_devices(reader)
    by_site: dict[str, list[DeviceRow]] = {}
    for r in rows:
        by_site.setdefault(r.site, []).append(r)
    sites = []
    for name in reader.sites():
        site_scans = [s for s in scans if site_name(s) == name]
        last = max(site_scans, key=lambda s: (s.started_at, s.scan_id))
        devs = by_site.get(name, [])
        sites.append(
            SiteRow(
                site=name,
                devices=len(devs),
                grades=_grade_counts(r.grade for r in devs),
                attention=sum(1 for r in devs if r.grade in ("E", "F", "G")),
                scans=len(site_scans),
                last_scan=iso(last.started_at),
                last_scan_text=when(last.started_at),
                last_scan_id=last.scan_id,
                last_status=last.status,
                devices_href="/devices" + DeviceFilter(site=name).query(),
                scans_href="/scans?" + urlencode({"site": name}),
            )
        )
    newest = max(scans, key=lambda s: s.started_at) if scans else None
    return Overview(
        sites=sites,
        devices=len(rows),
        attention=sum(1 for r in rows if r.grade in ("E", "F", "G")),
        scans=len(scans),
        grades=_grade_counts(r.grade for r in rows),
        last_scan=iso(newest.started_at) if newest else None,
        last_scan_text=when(newest.started_at) if newest else "",
    )


# --- scans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRow:
    scan_id: str
    short: str
    site: str
    started: str | None
    started_text: str
    finished: str | None
    duration: str
    status: str
    policy: str
    targets: str
    devices: int
    grades: list[tuple[str, int]]
    href: str


def _duration(s: ScanSummary) -> str:
    if s.finished_at is None:
        return ""
    secs = max(0, round((s.finished_at - s.started_at).total_seconds()))
    return f"{secs // 60} min {secs % 60} s" if secs >= 60 else f"{secs} s"


def scan_row_of(s: ScanSummary) -> ScanRow:
    grades = dict.fromkeys(GRADE_KEYS, 0)
    for g, n in s.grades.items():
        grades[g if g in GRADES else UNRATED] += n
    return ScanRow(
        scan_id=s.scan_id,
        short=text(s.scan_id, 80)[:8],
        site=site_name(s),
        started=iso(s.started_at),
        started_text=when(s.started_at),
        finished=iso(s.finished_at),
        duration=_duration(s),
        status=s.status,
        policy=text(s.policy, 40),
        targets=text(" ".join(s.targets), 300),
        devices=s.devices,
        grades=list(grades.items()),
        href=scan_href(s.scan_id),
    )


@dataclass(frozen=True)
class ScanList:
    site: str
    scans: list[ScanRow]
    sites: list[str]
    choices: list[ScanRow]


def scans_page(reader: Reader, site: str = "") -> ScanList:
    if len(site) > MAX_QUERY:
        raise UsageError(f"the site filter is longer than {MAX_QUERY} characters")
    every = sorted(reader.scans(), key=lambda s: (s.started_at, s.scan_id), reverse=True)
    rows = [scan_row_of(s) for s in every if not site or site_name(s) == site]
    return ScanList(
        site=site,
        scans=rows,
        sites=reader.sites(),
        choices=[scan_row_of(s) for s in every],
    )


@dataclass(frozen=True)
class ScanDetail:
    scan: ScanRow
    discovery_mode: str
    tool: str
    errors: list[str]
    devices: list[DeviceRow]
    previous: str | None
    diff_href: str | None


def scan_page(reader: Reader, ref: str) -> ScanDetail:
    s = reader.summary(ref)
    result = reader.result(s)
    earlier = [
        o
        for o in reader.scans()
        if o.site == s.site
        and sorted(o.targets) == sorted(s.targets)
        and (o.started_at, o.scan_id) < (s.started_at, s.scan_id)
        and o.status == "complete"
    ]
    previous = max(earlier, key=lambda o: (o.started_at, o.scan_id)).scan_id if earlier else None
    return ScanDetail(
        scan=scan_row_of(s),
        discovery_mode=text(result.discovery_mode, 40),
        tool=text(f"{result.tool.name} {result.tool.version}", 60),
        errors=[text(e, 300) for e in result.errors[:100]],
        devices=_sort_rows(
            [device_row(DeviceBrief.of(d, s.scan_id), s, link_scan=True) for d in result.devices],
            "grade",
        ),
        previous=previous,
        diff_href=(f"/diff?{urlencode({'a': previous, 'b': s.scan_id})}" if previous else None),
    )


# --- one device -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPoint:
    scan_id: str
    short: str
    started: str | None
    started_text: str
    status: str
    address: str
    grade: str | None
    score: float | None
    findings: int
    href: str
    scan_href: str
    current: bool


@dataclass(frozen=True)
class DeviceDetail:
    key: str
    site: str
    scan: ScanRow
    view: html_report.DeviceView
    history: list[HistoryPoint]
    other_sites: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)


def device_page(reader: Reader, key: str, site: str = "", scan: str = "") -> DeviceDetail:
    if not key or len(key) > 512:
        raise NotFound("no such device")
    sites = reader.site_of()
    records: list[DeviceRecord] = [
        r for r in reader.store.device_history(key) if r.device_key.lower() == key.lower()
    ]
    if site:
        records = [r for r in records if sites.get(r.scan_id) == site]
    if not records:
        raise NotFound(f"no stored scan saw device {text(key, 80)!r}" + (" here" if site else ""))
    if scan:
        wanted = reader.summary(scan).scan_id
        chosen = [r for r in records if r.scan_id == wanted]
        if not chosen:
            raise NotFound(f"scan {text(scan, 40)!r} did not see device {text(key, 80)!r}")
        record = chosen[0]
    else:
        complete = [r for r in records if r.status == "complete"]
        record = (complete or records)[-1]
    here = sites.get(record.scan_id, "local")
    summary = reader.summary(record.scan_id)
    result = reader.result(summary)
    matches = [d for d in result.devices if d.id.lower() == key.lower()]
    device = next((d for d in matches if d.address == record.address), None) or (
        matches[0] if matches else None
    )
    if device is None:
        raise NotFound(f"scan {summary.scan_id[:8]} holds no device {text(key, 80)!r}")
    single = result.model_copy(update={"devices": [device]})
    view = html_report.view(single, digest=result_digest(result)).devices[0]
    # The report allows long names (it has room); a page header and a facts grid do not.
    view = dataclasses.replace(
        view,
        name=text(view.name, 160),
        vendor=text(view.vendor, 120),
        model=text(view.model, 120),
        firmware=text(view.firmware, 120),
        plain=text(view.plain, 700),
        services=[{**s, "protocol": text(s["protocol"], 40)} for s in view.services],
    )
    mine = [r for r in records if sites.get(r.scan_id) == here]
    history = [
        HistoryPoint(
            scan_id=r.scan_id,
            short=r.scan_id[:8],
            started=iso(r.started_at),
            started_text=when(r.started_at),
            status=r.status,
            address=text(r.address, 64),
            grade=r.grade,
            score=r.score,
            findings=r.findings,
            href=device_href(key, here, r.scan_id),
            scan_href=scan_href(r.scan_id),
            current=r.scan_id == record.scan_id,
        )
        for r in mine
    ]
    others = sorted({sites.get(r.scan_id, "local") for r in records} - {here})
    notes = []
    if summary.status != "complete":
        notes.append(f"This scan is {summary.status}: what it shows may be incomplete.")
    return DeviceDetail(
        key=device.id,
        site=text(here, 80),
        scan=scan_row_of(summary),
        view=view,
        history=history,
        other_sites=[(text(o, 80), device_href(key, o)) for o in others],
        notes=notes,
    )


# --- diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffDevice:
    key: str
    name: str
    address: str
    grade: str | None
    href: str


@dataclass(frozen=True)
class DiffFinding:
    check: str
    port: int | None
    severity: str
    title: str


@dataclass(frozen=True)
class DiffChange:
    device: DiffDevice
    grade_before: str | None
    grade_after: str | None
    direction: str
    fixed: list[DiffFinding]
    new: list[DiffFinding]
    opened: list[str]
    closed: list[str]
    address_before: str | None
    not_compared: list[DiffFinding] = dataclasses.field(default_factory=list)
    coverage: str = ""


@dataclass(frozen=True)
class DiffView:
    before: ScanRow | None
    after: ScanRow | None
    new_devices: list[DiffDevice]
    gone_devices: list[DiffDevice]
    changed: list[DiffChange]
    unchanged: int
    notes: list[str]
    choices: list[ScanRow]
    message: str = ""


def _diff_device(ref: DeviceRef, site: str, scan_id: str) -> DiffDevice:
    # history keys a MAC seen at two addresses in one scan as "MAC@address"; the link wants
    # the MAC (the device page tells the two apart by the scan's record).
    suffix = f"@{ref.address}"
    key = ref.key.removesuffix(suffix) if ref.key.endswith(suffix) else ref.key
    return DiffDevice(
        key=ref.key,
        name=text(ref.name, 120),
        address=text(ref.address, 64),
        grade=ref.grade,
        href=device_href(key, site, scan_id),
    )


def _diff_finding(f: FindingRef) -> DiffFinding:
    return DiffFinding(
        check=text(f.check, 80), port=f.port, severity=f.severity, title=text(f.title, 200)
    )


def default_pair(reader: Reader) -> tuple[str, str] | None:
    """What "compare" starts with: the store's own choice (the latest complete scan and the
    one before it of the same targets) when both are of one site; else, because many sites may
    scan the same private range, the newest such pair within one site."""
    site = reader.site_of()
    try:
        a, b = reader.store.previous_pair()
        if site.get(a) == site.get(b):
            return a, b
    except UsageError:
        pass
    done = sorted(
        (s for s in reader.scans() if s.status == "complete"),
        key=lambda s: (s.started_at, s.scan_id),
        reverse=True,
    )
    for i, later in enumerate(done):
        for earlier in done[i + 1 :]:
            if earlier.site == later.site and sorted(earlier.targets) == sorted(later.targets):
                return earlier.scan_id, later.scan_id
    return None


def diff_page(reader: Reader, a: str = "", b: str = "") -> DiffView:
    choices = [scan_row_of(s) for s in sorted(reader.scans(), key=lambda s: s.started_at)][::-1]
    empty = DiffView(None, None, [], [], [], 0, [], choices)
    if bool(a) != bool(b):
        return dataclasses.replace(empty, message="Choose two scans to compare.")
    if not a:
        pair = default_pair(reader)
        if pair is None:
            return dataclasses.replace(
                empty, message="No two complete scans of the same network are stored yet."
            )
        a, b = pair
    before_s, after_s = reader.summary(a), reader.summary(b)
    d = diff_results(reader.result(before_s), reader.result(after_s))
    notes = [
        f"The {which} scan is {s.status}: devices it did not finish show as new or gone."
        for which, s in (("first", before_s), ("second", after_s))
        if s.status != "complete"
    ]
    if before_s.site != after_s.site:
        notes.append("The two scans are of different sites.")
    for which, res in (("First", reader.result(before_s)), ("Second", reader.result(after_s))):
        notes.append(f"{which} scan: {text(scan_scope_line(res), 300)}.")
    if before_s.started_at > after_s.started_at:
        notes.append("The first scan is the newer one: read 'new' as 'gone' and 'fixed' as 'new'.")
    return DiffView(
        before=scan_row_of(before_s),
        after=scan_row_of(after_s),
        new_devices=[_diff_device(r, site_name(after_s), after_s.scan_id) for r in d.new_devices],
        gone_devices=[
            _diff_device(r, site_name(before_s), before_s.scan_id) for r in d.gone_devices
        ],
        changed=[
            DiffChange(
                device=_diff_device(c.device, site_name(after_s), after_s.scan_id),
                grade_before=c.grade_before,
                grade_after=c.grade_after,
                direction=c.direction,
                fixed=[_diff_finding(f) for f in c.findings_fixed],
                new=[_diff_finding(f) for f in c.findings_new],
                opened=list(c.services_opened),
                closed=list(c.services_closed),
                address_before=text(c.address_before, 64) if c.address_before else None,
                not_compared=[_diff_finding(f) for f in c.not_compared],
                coverage=f"{c.coverage_before or '-'} → {c.coverage_after or '-'} checks",
            )
            for c in d.changed
        ],
        unchanged=d.unchanged,
        notes=notes,
        choices=choices,
    )


# --- JSON -------------------------------------------------------------------------------------


def jsonable(view: Any) -> Any:
    """A view model as JSON data. The device page's label travels as a data URI in the page
    only; the API leaves it out (``iotrate label`` makes label files)."""
    data = dataclasses.asdict(view)
    return _strip(data)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "label_uri"}
    if isinstance(value, list | tuple):
        return [_strip(v) for v in value]
    return value
