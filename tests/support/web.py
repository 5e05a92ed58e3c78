"""A history database for the dashboard tests, built from a real lab scan.

``tests/data/lab-scan.json`` is one ``iotrate scan`` of the reference lab (six devices, real
daemons, taken from the lab's scanner namespace; nothing in it points outside the lab). From it:

- site ``home``: scan 1 two days ago without the camera and with the plug unrated by its
  declaration (B); scan 2 yesterday, the whole lab, the plug rated with its manufacturer
  declaration (A); scan 3 an hour ago, interrupted after two devices.
- site ``shop-2 <i>"east"</i>`` (a hostile site name): scan 4, four lab devices at other
  addresses (one never rated) plus devices whose every string attacks the page — markup,
  quotes, terminal escape sequences, bidi overrides and a 10 kB name.

The database is written through the store's public write methods, as ``iotrate scan`` and the
collector write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from iotrate.rating_schema.loader import load_scheme

from iotrate.declarations import assign_declarations, load_declaration
from iotrate.models import (
    Device,
    Evidence,
    Finding,
    Policy,
    ScanResult,
    ScanScope,
    Service,
    Severity,
    Target,
    utcnow,
)
from iotrate.rating import rate_result
from iotrate.storage import Store
from support.labels import SCRIPT, hostile_device, rating

DATA = Path(__file__).resolve().parents[1] / "data"
LAB_SCAN = DATA / "lab-scan.json"
PLUG_DECLARATION = Path(__file__).parents[2] / "iotrate" / "lab" / "declarations" / "plug.yaml"

HOME = "home"
SHOP = 'shop-2 <i>"east"</i>'
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m"
HUGE = (f"{SCRIPT} \"quoted\" 'single' {ESCAPES} \u202eevil " * 200)[:10240]
FRIDGE = "20:17:42:6b:31:5c"
CAMERA = "44:47:cc:a2:07:93"
PLUG = "54:a7:03:9d:e6:21"
# One "now" per test session, so two databases built from the fixture hold the same times.
NOW = utcnow().replace(microsecond=0)


@dataclass(frozen=True)
class WebDb:
    path: Path | str  # an SQLite file, or a database URL
    scan1: str
    scan2: str
    scan3: str
    scan4: str
    hostile_key: str
    huge_key: str


def lab_result() -> ScanResult:
    return ScanResult.model_validate_json(LAB_SCAN.read_text(encoding="utf-8"))


def _copy(result: ScanResult, scan_id: str, hours_ago: float, devices: list[Device]) -> ScanResult:
    start = NOW - timedelta(hours=hours_ago)
    return result.model_copy(
        update={
            "scan_id": scan_id,
            "started_at": start,
            "finished_at": start + timedelta(seconds=12),
            "devices": devices,
        }
    )


def _moved(device: Device, address: str, mac: str) -> Device:
    return device.model_copy(update={"id": mac, "mac": mac, "address": address})


def hostile_devices() -> list[Device]:
    huge = hostile_device().model_copy(
        update={
            "id": "02:00:00:00:00:99",
            "mac": "02:00:00:00:00:99",
            "address": "192.168.50.99",
            "vendor": HUGE,
            "model": HUGE,
            "names": [HUGE],
            "category": f"camera {SCRIPT}",
            "services": [Service(port=8080, protocol=HUGE[:300], banner=HUGE)],
            "findings": [
                Finding(
                    check="svc.http.banner",
                    severity=Severity.HIGH,
                    title=HUGE,
                    evidence=[Evidence(summary=HUGE, data={HUGE[:200]: HUGE})],
                    remediation=HUGE,
                    standards=[HUGE[:100]],
                    port=8080,
                )
            ],
            "rating": rating("F", reasons=[HUGE]),
        }
    )
    return [hostile_device().model_copy(update={"address": "192.168.50.66"}), huge]


def build(path: Path | str) -> WebDb:
    lab = lab_result()
    # A lab-profile scan with current vulnerability data (scheme 2026.3 gives A only then).
    lab = lab.model_copy(
        update={
            "scope": ScanScope(
                profile="lab",
                tcp_ports="all",
                tcp_port_count=65535,
                udp=True,
                policy=Policy.DEFAULT,
            ),
            "vulndb_date": lab.started_at.date(),
        }
    )
    scheme = load_scheme()
    # The lab scan as taken: the plug is C without its declaration (no firmware version known).
    plain = rate_result(lab, scheme)
    decl = assign_declarations(lab, [load_declaration(PLUG_DECLARATION)], PLUG)
    declared = rate_result(lab, scheme, decl)
    s1 = _copy(
        plain,
        "11111111-aaaa-4000-8000-000000000001",
        48,
        [d for d in plain.devices if d.id != CAMERA],
    )
    s2 = _copy(declared, "22222222-bbbb-4000-8000-000000000002", 24, list(declared.devices))
    s3 = _copy(declared, "33333333-cccc-4000-8000-000000000003", 1, list(declared.devices[:2]))
    shop_devices = [
        _moved(plain.devices[0], "192.168.50.10", "3c:59:1e:00:00:10"),
        _moved(plain.devices[3], "192.168.50.13", "d4:a6:51:00:00:13"),
        _moved(declared.devices[5], "192.168.50.15", "54:a7:03:00:00:15"),
        # found but never rated (a scan stopped before rating, or an older iotrate)
        _moved(plain.devices[4], "192.168.50.14", "f4:f5:d8:00:00:14").model_copy(
            update={"rating": None}
        ),
        *hostile_devices(),
    ]
    s4 = _copy(plain, "44444444-dddd-4000-8000-000000000004", 3, shop_devices)
    s4 = s4.model_copy(
        update={
            "targets": [
                Target(
                    spec="192.168.50.0/24",
                    kind=s4.targets[0].kind,
                    first="192.168.50.0",
                    last="192.168.50.255",
                    size=254,
                )
            ],
            "errors": [f"probe crashed: {SCRIPT} {ESCAPES}"],
        }
    )
    with Store(path) as store:
        for result, site, status in (
            (s1, HOME, "complete"),
            (s2, HOME, "complete"),
            (s3, HOME, "interrupted"),
            (s4, SHOP, "complete"),
        ):
            store.begin_scan(
                result.scan_id, result.started_at, result.targets, result.policy, site=site
            )
            store.finish_scan(result, status)  # type: ignore[arg-type]
    return WebDb(
        path=path,
        scan1=s1.scan_id,
        scan2=s2.scan_id,
        scan3=s3.scan_id,
        scan4=s4.scan_id,
        hostile_key=shop_devices[4].id,
        huge_key=shop_devices[5].id,
    )
