"""Vendor names: one spelling per maker, from the registry, UPnP and TXT spellings alike."""

from __future__ import annotations

import pytest

from iotrate.identify import oui
from iotrate.identify.vendors import vendor_key, vendor_table


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("SAMSUNG ELECTRONICS CO.,LTD", "Samsung"),
        ("Samsung Electronics", "Samsung"),
        ("Samsung-Electronics", "Samsung"),
        ("Royal Philips Electronics", "Philips"),
        ("Signify B.V.", "Philips"),
        ("Belkin International Inc.", "Belkin"),
        ("Hewlett-Packard", "HP"),
        ("Hewlett Packard", "HP"),
        ("AVM Berlin", "AVM"),
        ("AVM Audiovisuelles Marketing und Computersysteme GmbH", "AVM"),
        ("LINKSYS", "Linksys"),
        ("Roku, Inc.", "Roku"),
        ("Ceton Corporation", "Ceton"),
        ("GeeXboX Team", "GeeXboX"),
        ("Universal Electronics, Inc.", "Universal Electronics"),
        ("TP-Link Corporation Limited", "TP-Link"),
        ("TP-LINK TECHNOLOGIES CO.,LTD.", "TP-Link"),
        ("Hui Zhou Gaoshengda Technology Co.,LTD", "Gaoshengda"),
        ("http://www.makemkv.com", "makemkv"),
        ("http://www.philips-hue.com", "Philips"),
        ("WiZ IoT Company Limited", "WiZ"),
        ("Rakoit (LinkPlay A31 module)", "Rakoit"),
        ("Apple, Inc.", "Apple"),
        ("Sonos, Inc.", "Sonos"),
        ("XEROX CORPORATION", "Xerox"),
    ],
)
def test_normalise(raw: str, name: str) -> None:
    assert vendor_table().normalise(raw) == name


def test_normalise_rejects_nothing_strings() -> None:
    t = vendor_table()
    assert t.normalise("") is None
    assert t.normalise("   ") is None
    assert t.normalise(None) is None


def test_vendor_key_ignores_case_and_punctuation() -> None:
    assert vendor_key("TP-Link") == vendor_key("TPLINK") == vendor_key("tp link")
    assert vendor_key("PS Audio") == vendor_key("PSAudio")


def test_weak_manufacturers_and_module_makers() -> None:
    t = vendor_table()
    assert t.is_weak("Microsoft Corporation")
    assert t.is_weak("Unspecified")
    assert not t.is_weak("Sonos, Inc.")
    assert t.is_module_maker("Espressif Inc.")
    assert t.is_module_maker("Arcadyan Corporation")
    assert not t.is_module_maker("Roku, Inc.")


@pytest.mark.parametrize(
    ("text", "brands"),
    [
        ("HP Color LaserJet Pro M252dw", {"HP"}),
        ("Platinum upnpd (LG TV model: 32LH570B-SC; Neptune 1.1.3)", {"LG"}),
        ("TCL•Roku TV - X000008YG08J", {"TCL", "Roku"}),
        ("help desk", set()),  # short capitals match case-sensitively, whole words only
        ("hplc-analyser", set()),
        ("BRAVIA 4K UR2", {"Sony"}),
    ],
)
def test_brand_mentions(text: str, brands: set[str]) -> None:
    assert {b.name for b in vendor_table().brand_mentions(text)} == brands


@pytest.mark.parametrize(
    ("mac", "organisation"),
    [
        ("a8:bb:50:06:03:3d", "WiZ IoT Company Limited"),
        ("c4:29:96:00:00:00", "Signify B.V."),
        ("b8:27:eb:00:00:01", "Raspberry Pi Foundation"),
        ("70:b3:d5:f2:f0:00", "TELEPLATFORMS"),  # an MA-S block inside an IEEE MA-L
    ],
)
def test_oui_lookup_longest_prefix(mac: str, organisation: str) -> None:
    entry = oui.lookup(mac)
    assert entry is not None and entry.organisation == organisation


@pytest.mark.parametrize("mac", ["da:a1:19:00:00:01", "01:00:5e:00:00:01", "00:00:00:00:00:00"])
def test_oui_never_names_random_multicast_or_zero_addresses(mac: str) -> None:
    assert oui.lookup(mac) is None
