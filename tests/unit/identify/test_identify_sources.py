"""Each evidence source on real examples: UPnP descriptions, DNS-SD, HTTP APIs, banners, MAC, DHCP.

The examples are real answers of real devices (shared fixtures where noted, otherwise shapes
documented by the vendors' local APIs and the projects that implement them).
"""

from __future__ import annotations

import json

import pytest
from support.identify import OBSERVATIONS, identify_lines, rules_fired, shared_or_skip

from iotrate.identify.facts import records_for, upnp_records
from iotrate.identify.observations import read_observations


def shared_device(device: str) -> list[dict[str, object]]:
    shared_or_skip()
    rows = [json.loads(x) for x in OBSERVATIONS.read_text(encoding="utf-8").splitlines() if x]
    return [{k: v for k, v in r.items() if k != "device"} for r in rows if r["device"] == device]


# --- UPnP / SSDP ---------------------------------------------------------------------------


def test_upnp_records_root_first_and_embedded_marked() -> None:
    xml = (
        '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
        "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
        "<manufacturer>AVM Berlin</manufacturer><modelName>FRITZ!Box 7590</modelName>"
        "<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>"
        "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
        "</serviceType></service></serviceList></device></deviceList></device></root>"
    )
    root, wan = upnp_records(xml, "ssdp")
    assert root.fields["ssdp.root_device_type"] == [
        "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    ]
    assert "ssdp.embedded" in wan.fields
    assert "urn:schemas-upnp-org:service:WANIPConnection:1" in root.fields["ssdp.any_service_type"]


def test_broken_upnp_xml_is_read_leniently() -> None:
    xml = (
        "<root><device><deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>"
        "<friendlyName>R&N:box</friendlyName><manufacturer>NETGEAR</manufacturer>"
    )
    (rec,) = upnp_records(xml, "ssdp")
    assert rec.fields["ssdp.manufacturer"] == ["NETGEAR"]
    assert rec.fields["ssdp.root_device_type"] == ["urn:schemas-upnp-org:device:MediaServer:1"]


@pytest.mark.parametrize(
    ("device", "category", "vendor", "rule"),
    [
        ("fx-fritz_igddesc", "router", "AVM", "upnp.device.igd"),
        ("fx-miniupnp_linksys_WAG200G_desc", "router", "Linksys", "upnp.device.igd"),
        ("fx-pywemo_WeMo_WW_2_00_11420_PVT-OWRT-SNSV2", "plug", "Belkin", "upnp.belkin:"),
        ("fx-jupnp_perfectwave", "speaker", "PS Audio", "upnp.service.openhome"),
        ("fx-jupnp_samsung", "streamer", "Samsung", "upnp.device.ocap"),
    ],
)
def test_upnp_on_shared_fixtures(device: str, category: str, vendor: str, rule: str) -> None:
    ident = identify_lines(*shared_device(device))
    assert (ident.category, ident.vendor) == (category, vendor)
    assert any(r.startswith(rule) for r in rules_fired(ident))


def test_upnp_mediarenderer_alone_is_not_enough() -> None:
    """A renderer could be a TV, a speaker or a phone app: say "other", not a guess."""
    ident = identify_lines(*shared_device("fx-jupnp_eyecon"))
    assert ident.category == "other"
    assert ident.confidence < 0.5


def test_upnp_sonos_description() -> None:
    ident = identify_lines(
        {
            "kind": "ssdp",
            "headers": {"SERVER": "Linux UPnP/1.0 Sonos/63.2-88230 (ZPS18)"},
            "description_xml": (
                '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
                "<deviceType>urn:schemas-upnp-org:device:ZonePlayer:1</deviceType>"
                "<manufacturer>Sonos, Inc.</manufacturer><modelName>Sonos One</modelName>"
                "<softwareVersion>63.2-88230</softwareVersion></device></root>"
            ),
        }
    )
    assert (ident.category, ident.vendor, ident.model) == ("speaker", "Sonos", "Sonos One")
    assert ident.firmware == "63.2-88230"
    assert ident.confidence >= 0.7


# --- DNS-SD --------------------------------------------------------------------------------


def test_mdns_printer_from_shared_fixture() -> None:
    ident = identify_lines(*shared_device("fx-npic9167e-local"))
    assert (ident.category, ident.vendor) == ("printer", "HP")
    assert ident.model == "HP Color LaserJet Pro M252dw"


def test_mdns_apple_model_identifiers() -> None:
    ident = identify_lines(*shared_device("fx-living-room-local"))
    assert (ident.category, ident.vendor, ident.model) == ("streamer", "Apple", "AppleTV11,1")


@pytest.mark.parametrize(
    ("service", "txt", "category"),
    [
        ("_hap._tcp", {"md": "Eve Energy", "ci": "7"}, "plug"),
        ("_hap._tcp", {"md": "ecobee3 lite", "ci": "9"}, "thermostat"),
        ("_hap._udp", {"md": "Nanoleaf", "ci": "5"}, "bulb"),
        ("_matterc._udp", {"DT": "266", "VP": "4874+77"}, "plug"),
        ("_matterc._udp", {"DT": "116"}, "vacuum"),
        ("_googlecast._tcp", {"md": "Chromecast Ultra", "fn": "TV"}, "streamer"),
        ("_googlecast._tcp", {"md": "Google Home Mini", "fn": "Kitchen"}, "speaker"),
        ("_sonos._tcp", {}, "speaker"),
        ("_ipp._tcp", {"ty": "Brother HL-L2350DW series", "usb_MFG": "Brother"}, "printer"),
    ],
)
def test_mdns_service_types_and_txt_keys(service: str, txt: dict[str, str], category: str) -> None:
    ident = identify_lines(
        {"kind": "mdns", "service_type": f"{service}.local.", "name": "x", "properties": txt}
    )
    assert ident.category == category


def test_avahi_default_xserve_is_not_an_apple_server() -> None:
    ident = identify_lines(
        {
            "kind": "mdns",
            "service_type": "_device-info._tcp.local.",
            "properties": {"model": "Xserve"},
        }
    )
    assert ident.vendor != "Apple"
    assert ident.category == "other"


# --- HTTP local APIs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "category", "vendor"),
    [
        ("fx-roku_device-info-c147x", "tv", "TCL"),
        ("x2-philips-55pfl6007t", "tv", "Philips"),
        ("x2-shelly-presence-g4", "sensor", "Shelly"),
        ("x2-homewizard-skt", "plug", "HomeWizard"),
        ("x2-doorbird-d2101v", "doorbell", "DoorBird"),
        ("x2-denon-dran4", "speaker", "Denon"),  # a truncated XML body, read leniently
        ("x2-marantz-nr1609", "speaker", "Marantz"),
    ],
)
def test_http_apis_on_shared_fixtures(device: str, category: str, vendor: str) -> None:
    ident = identify_lines(*shared_device(device))
    assert (ident.category, ident.vendor) == (category, vendor)


def test_http_shelly_gen1_relay() -> None:
    ident = identify_lines(
        {
            "kind": "http",
            "port": 80,
            "path": "/shelly",
            "body": '{"type":"SHSW-1","mac":"AABBCCDDEEFF","auth":false,'
            '"fw":"20210115-103659/v1.9.4"}',
        }
    )
    assert (ident.category, ident.vendor, ident.model) == ("switch", "Shelly", "SHSW-1")


def test_http_xml_and_json_fields_are_named() -> None:
    (rec,) = records_for(
        read_observations(
            [
                json.dumps(
                    {
                        "device": "d",
                        "kind": "http",
                        "body": '{"Device": {"Model": "X1", "list": [{"fw": "1.2"}]}}',
                    }
                )
            ]
        ).observations
    )
    assert rec.fields["http.json.device.model"] == ["X1"]
    assert rec.fields["http.json.device.list.fw"] == ["1.2"]


# --- banners -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "category", "vendor"),
    [
        ("x2-wiz-esp10-socket06", "plug", "WiZ"),
        ("x2-wiz-esp01-shrgb03", "bulb", "WiZ"),
        ("x2-tapo-c100", "camera", "TP-Link"),
        ("x2-kasa-hs200-us", "switch", "TP-Link"),
        ("x2-irobot-roomba980", "vacuum", "iRobot"),
        ("x2-lg-32lh570b", "tv", "LG"),
    ],
)
def test_banners_on_shared_fixtures(device: str, category: str, vendor: str) -> None:
    ident = identify_lines(*shared_device(device))
    assert (ident.category, ident.vendor) == (category, vendor)


def test_ssh_banner_names_software_not_a_device() -> None:
    ident = identify_lines(
        {"kind": "banner", "port": 22, "protocol": "ssh", "banner": "SSH-2.0-OpenSSH_8.4"}
    )
    assert ident.category == "other" and ident.vendor is None


def test_json_banner_keys_are_not_read_as_words() -> None:
    """A Tapo camera's answer mentions "motion" as a key value; it is not a motion sensor."""
    ident = identify_lines(*shared_device("x2-tapo-c520ws-us"))
    assert ident.category == "camera"
    assert not any(e.rule.startswith("keyword:sensor") for e in ident.evidence)


# --- MAC -----------------------------------------------------------------------------------


def test_mac_alone_names_a_vendor_but_not_a_category() -> None:
    ident = identify_lines({"kind": "mac", "mac": "a8:bb:50:06:03:3d"})
    assert ident.vendor == "WiZ"
    assert ident.category == "other"
    assert ident.confidence < 0.5


def test_module_maker_oui_is_discounted() -> None:
    ident = identify_lines({"kind": "mac", "mac": "d0:05:2a:23:55:b3"})  # Arcadyan
    assert ident.vendor is None


def test_randomised_mac_names_nobody() -> None:
    ident = identify_lines({"kind": "mac", "mac": "da:a1:19:00:00:01"})
    assert ident.vendor is None and ident.category == "other"


# --- DHCP ----------------------------------------------------------------------------------


def test_dhcp_hostname_and_mac_home_assistant_matcher() -> None:
    ident = identify_lines(
        {"kind": "dhcp", "hostname": "iRobot-3158", "vendor_class": ""},
        {"kind": "mac", "mac": "50:14:79:00:00:01"},
    )
    assert (ident.category, ident.vendor) == ("vacuum", "iRobot")
    assert any(e.rule.startswith("hass:dhcp:roomba") for e in ident.evidence)


def test_dhcp_vendor_class_via_recog() -> None:
    ident = identify_lines({"kind": "dhcp", "hostname": "DESKTOP-1", "vendor_class": "MSFT 5.0"})
    assert ident.category == "computer"


def test_device_strings_come_out_printable_and_bounded() -> None:
    """A manufacturer field with terminal escapes must not recolour the user's terminal."""
    ident = identify_lines(
        {
            "kind": "ssdp",
            "description_xml": (
                '<root xmlns="urn:schemas-upnp-org:device-1-0"><device>'
                "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
                "<manufacturer>Evil\x1b[31mCorp</manufacturer>"
                f"<modelName>{'M' * 1500}</modelName></device></root>"
            ),
        }
    )
    assert ident.vendor is not None and "\x1b" not in ident.vendor
    assert ident.model is not None and len(ident.model) <= 130
    assert all("\x1b" not in e.value and len(e.value) <= 210 for e in ident.evidence)
