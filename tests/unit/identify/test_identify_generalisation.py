"""Identification on devices no rule was written from: library defaults are not makers, the
evaluation corpus is scored per source, and a confident answer is a right one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support.identify import ROOT, benchmark_module, identify_lines, rules_fired

from iotrate.naming import category_phrase, display_name_of

bench = benchmark_module()

# A TV whose UPnP renderer is gmrender-resurrect on libupnp, as the reference lab's TCL TV:
# libupnp sends "X-User-Agent: redsonic" by default, gmrender names its authors as manufacturer.
GMRENDER_XML = (
    '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
    "<deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>"
    "<friendlyName>TCL 55P8</friendlyName><manufacturer>Ivo Clarysse, Henner Zeller</manufacturer>"
    "<manufacturerURL>http://github.com/hzeller/gmrender-resurrect</manufacturerURL>"
    "<modelName>gmediarender</modelName><serviceList><service><serviceType>"
    "urn:schemas-upnp-org:service:AVTransport:1</serviceType></service></serviceList>"
    "</device></root>"
)
LIBUPNP = {
    "SERVER": "Linux/6.1 UPnP/1.0 Portable SDK for UPnP devices/1.8.4",
    "X-User-Agent": "redsonic",
}


def test_a_library_default_header_is_no_vendor_proof() -> None:
    ident = identify_lines({"kind": "ssdp", "headers": LIBUPNP, "description_xml": GMRENDER_XML})
    assert ident.vendor != "Belkin"
    assert not any(e.claims.get("vendor") == "Belkin" for e in ident.evidence)
    assert ident.model != "gmediarender"  # the software's name, not the model


def test_the_devices_own_claims_win_over_the_renderer_software() -> None:
    ident = identify_lines(
        {"kind": "ssdp", "headers": LIBUPNP, "description_xml": GMRENDER_XML},
        {"kind": "banner", "port": 5555, "protocol": "adb",
         "banner": "device::ro.product.name=P8M;ro.product.model=55P8;ro.product.device=mt5660"},
        {"kind": "mac", "mac": "3c:59:1e:4a:10:0a"},
    )  # fmt: skip
    assert (ident.category, ident.vendor, ident.model) == ("tv", "TCL", "55P8")
    assert "upnp.manufacturer_url" not in rules_fired(ident)  # github.com is no maker


def test_reliability_bins_count_right_answers() -> None:
    rows = [
        {"confidence": 0.9, "category_ok": True, "vendor_ok": True},
        {"confidence": 0.85, "category_ok": True, "vendor_ok": False},
        {"confidence": 0.3, "category_ok": False, "vendor_ok": None},
        {"confidence": 0.6, "category_ok": True, "vendor_ok": None},
    ]
    table = {b["bin"]: b for b in bench.reliability(rows)}
    assert table[">= 0.8"] == {"bin": ">= 0.8", "devices": 2, "right": 1, "accuracy": 0.5}
    assert table["0-0.5"]["right"] == 0 and table["0.5-0.7"]["accuracy"] == 1.0


def test_evaluation_corpus_has_no_confident_wrong_answer() -> None:
    """At confidence >= 0.8 the answer is right on every source of the evaluation corpus."""
    sets = bench.eval_sets()
    assert {name.split(":")[1].split("-")[0] for name, *_ in sets} == {"net", "ble"}
    rows = []
    for _, obs, truth, _target in sets:
        s = bench.score(obs, truth)
        assert not s.read_errors and s.devices > 0
        rows.extend(s.rows)
    confident = [r for r in rows if float(r["confidence"]) >= 0.8]
    assert confident and all(bench.right(r) for r in confident)


def test_low_confidence_is_shown_as_a_guess() -> None:
    assert category_phrase("camera", 0.3) == "camera (probably)"
    assert category_phrase("camera", 0.9) == "camera"
    assert category_phrase("other", 0.9) == "device"
    assert display_name_of(None, None, [], "other", "10.0.0.9", 0.1) == (
        "Unidentified device at 10.0.0.9"
    )
    assert display_name_of("LG", None, [], "appliance", "10.0.0.11", 0.35) == (
        "LG appliance (probably) at 10.0.0.11"
    )
    assert display_name_of("LG", None, [], "appliance", "10.0.0.11", 0.8) == (
        "LG appliance at 10.0.0.11"
    )


def test_vendor_priors_are_counted_from_the_known_products() -> None:
    from iotrate.identify.engine import Database, derive_priors
    from iotrate.identify.rules import load_rules
    from iotrate.identify.vendors import vendor_table

    doc = {
        "rules": [
            {"id": f"t.{i}", "match": {"x.y": "a"}, "then": then, "weight": 0.5}
            for i, then in enumerate(
                [{"vendor": "Acmecam", "category": "camera"}] * 3
                + [{"vendor": "Mixco", "category": "camera"}] * 2
                + [{"vendor": "Mixco", "category": "bulb"}] * 2
                + [{"vendor": "Sonos", "category": "camera"}] * 3  # curated: speaker stays
            )
        ]
    }
    priors = derive_priors(load_rules(doc, "test.yaml"), vendor_table())
    assert priors == {"acmecam": ("camera", 1.0)}  # Mixco makes many kinds: no prior
    shipped = Database.load().derived_priors
    assert shipped.get("blink") == ("camera", 1.0)
    assert "lg" not in shipped and "samsung" not in shipped


def test_a_derived_prior_is_shown_as_such_and_is_weaker_than_a_curated_one() -> None:
    from iotrate.identify.claims import Claim
    from iotrate.identify.engine import Identifier

    ident = Identifier()
    seen = [
        Claim("vendor", "Lutron", 0.6, "r", "ssdp", "ssdp.manufacturer", "Lutron", "rec1"),
        Claim("vendor", "Sonos", 0.6, "r", "ssdp", "ssdp.manufacturer", "Sonos", "rec2"),
    ]
    priors = {c.rule: c for c in ident._priors(seen)}
    assert priors["prior.derived:Lutron"].value == "hub"
    assert priors["prior:Sonos"].value == "speaker"
    assert priors["prior.derived:Lutron"].weight < priors["prior:Sonos"].weight < 0.35


def _apple(hexdata: str) -> dict[str, object]:
    return {"kind": "ble", "address": None, "address_type": "unknown", "name": None,
            "rssi": None, "manufacturer_data": {"76": hexdata}, "service_data": {},
            "service_uuids": [], "tx_power": None, "time": 0.0}  # fmt: skip


def test_a_stated_apple_device_class_outranks_the_nearby_info_length() -> None:
    # An iPad sending the 5-byte Nearby Info a watch also sends, and a Hey Siri message whose
    # device class (0x0003) says what it is (furiousMAC/continuity's dissector).
    ipad = identify_lines(_apple("10050b1820aabb"), _apple("0807aabb43000003ca"))
    assert ipad.category == "tablet" and ipad.vendor == "Apple" and ipad.model == "iPad"
    # Nearby Action "iOS Setup" (type 0x09) with the class nibble 0xE: a watch.
    watch = identify_lines(_apple("0f050009e1010a"))
    assert watch.category == "watch"
    # With the auth-tag flag (0x80) the class byte comes 3 bytes later.
    phone = identify_lines(_apple("0f088009aabbcc21010a"))
    assert phone.category == "phone" and phone.model == "iPhone"


def test_a_nearby_info_length_alone_is_only_a_guess() -> None:
    guess = identify_lines(_apple("10050b1820aabb"))
    assert guess.category == "watch" and guess.confidences["category"] < 0.7


def test_home_assistant_bluetooth_matchers_are_evidence() -> None:
    # Home Assistant 2024.3.3's inkbird matcher "iBBQ*" and govee_ble's company 0x4C32 with
    # service 0x1801, as an advertisement's facts.
    adv = {**_apple(""), "manufacturer_data": {"19506": "00010203"},
           "service_uuids": ["00001801-0000-1000-8000-00805f9b34fb"]}  # fmt: skip
    ident = identify_lines(adv)
    assert any(r.startswith("hass:bluetooth:govee_ble:") for r in rules_fired(ident))
    assert (ident.vendor, ident.category) == ("Govee", "sensor")
    named = identify_lines({**_apple(""), "manufacturer_data": {}, "name": "iBBQ-4"})
    assert any(r.startswith("hass:bluetooth:inkbird:") for r in rules_fired(named))


def test_refresh_hass_refuses_a_broken_source(tmp_path: Path) -> None:
    refresh = _script("refresh_hass")
    gen = tmp_path / "homeassistant" / "generated"
    gen.mkdir(parents=True)
    for name, body in {
        "zeroconf": "ZEROCONF = {'_x._tcp.local.': [{'domain': 'x'}]}\nHOMEKIT = {}",
        "ssdp": "SSDP = {}",
        "dhcp": "DHCP = []",
        "bluetooth": "BLUETOOTH = [{'domain': 'a', 'local_name': 'A*'}] * 20",
    }.items():
        (gen / f"{name}.py").write_text(body, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    assert refresh.main([str(tmp_path), "--version", "0", "--out", str(out)]) == 1
    assert not list(out.iterdir())  # nothing written
    with pytest.raises(refresh.BrokenSource, match="duplicate"):
        refresh.validate("BLUETOOTH", [{"domain": "a", "local_name": "A*"}] * 20)
    with pytest.raises(refresh.BrokenSource, match="unknown matcher keys"):
        refresh.validate("DHCP", [{"domain": f"d{i}", "evil": 1} for i in range(60)])
    shipped = json.loads((ROOT / "iotrate/data/hass/ha_bluetooth.json").read_text("utf-8"))
    refresh.validate("BLUETOOTH", shipped["BLUETOOTH"])  # the shipped copy passes


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _upnp(device_type: str, *services: str) -> dict[str, object]:
    svc = "".join(f"<service><serviceType>{s}</serviceType></service>" for s in services)
    xml = (
        '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
        f"<deviceType>{device_type}</deviceType><friendlyName>x</friendlyName>"
        f"<serviceList>{svc}</serviceList></device></root>"
    )
    return {"kind": "ssdp", "headers": {}, "description_xml": xml}


@pytest.mark.parametrize(
    ("service", "category"),
    [
        ("urn:schemas-upnp-org:service:PrintBasic:1", "printer"),
        ("urn:schemas-upnp-org:service:DigitalSecurityCameraSettings:1", "camera"),
        ("urn:schemas-upnp-org:service:TemperatureSetpoint:1", "thermostat"),
        ("urn:schemas-upnp-org:service:Dimming:1", "bulb"),
    ],
)
def test_standard_upnp_services_are_category_evidence(service: str, category: str) -> None:
    ident = identify_lines(_upnp("urn:schemas-upnp-org:device:Basic:1", service))
    assert ident.category == category


def test_the_basic_placeholder_type_says_nothing() -> None:
    ident = identify_lines(_upnp("urn:schemas-upnp-org:device:Basic:1"))
    assert ident.category == "other"


def _described(manufacturer: str, friendly: str) -> dict[str, object]:
    xml = (
        '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
        "<deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>"
        f"<friendlyName>{friendly}</friendlyName><manufacturer>{manufacturer}</manufacturer>"
        "<modelName>XR-1</modelName></device></root>"
    )
    return {"kind": "ssdp", "headers": {}, "description_xml": xml}


def test_a_devices_structured_claim_outranks_free_text_and_the_conflict_shows() -> None:
    plain = identify_lines(_described("LG Electronics", "Living room"))
    mixed = identify_lines(_described("LG Electronics", "Samsung TV in the living room"))
    assert plain.vendor == mixed.vendor == "LG"
    # The free-text brand lost the vote: it is listed, supporting nothing, and it costs
    # confidence.
    outvoted = [e for e in mixed.evidence if e.claims.get("vendor") == "Samsung"]
    assert outvoted and all(not e.supports for e in outvoted)
    assert mixed.confidences["vendor"] < plain.confidences["vendor"]


def test_an_ibbq_probe_is_known_by_its_layout() -> None:
    # Theengs Decoder's iBBQ condition: company 0x0000, payload 00 00 + the probe's MAC + data.
    probe = {**_apple(""), "address": "49:42:08:00:12:34", "address_type": "public",
             "manufacturer_data": {"0": "0000494208001234" + "d200fa00"}}  # fmt: skip
    ident = identify_lines(probe)
    assert (ident.vendor, ident.category) == ("Inkbird", "sensor")
    stranger = {**probe, "address": "11:22:33:44:55:66"}  # the MAC is not in its payload
    assert identify_lines(stranger).vendor != "Inkbird"


def test_a_confident_answer_is_right_on_the_fixtures() -> None:
    """Calibration: at confidence >= 0.8 at least 98 % of the shared fixtures' answers are right."""
    from support.identify import OBSERVATIONS, TRUTH, shared_or_skip

    shared_or_skip()
    rows = bench.score(OBSERVATIONS, TRUTH).rows
    ble = OBSERVATIONS.parent / "ble"
    if (ble / "observations.jsonl").is_file():
        rows += bench.score(ble / "observations.jsonl", ble / "truth.jsonl").rows
    top = {b["bin"]: b for b in bench.reliability(rows)}[">= 0.8"]
    assert top["devices"] >= 20 and float(top["accuracy"]) >= 0.98
