"""Recog fingerprints: every bundled example matches its own fingerprint with its own params.

That is Recog's own test discipline (each `<example>` must match the fingerprint it sits in,
and its attributes are the params that match must extract); running it here proves the Ruby
to Python regex translation and the param/capture handling on ~2,500 real banners.
"""

from __future__ import annotations

import re

import pytest
from support.identify import identify_lines

from iotrate.identify.datafiles import load_yaml
from iotrate.identify.recog import load_database, recog_matcher, ruby_to_python

BOUND = [b["file"] for b in load_yaml("recog.yaml")["databases"]]


@pytest.mark.parametrize("filename", BOUND)
def test_recog_examples_match_their_fingerprint(filename: str) -> None:
    db = load_database(filename)
    assert len(db.fingerprints) > 5
    failures = []
    checked = 0
    for fp in db.fingerprints:
        for text, expected in fp.examples:
            checked += 1
            got = fp.match(text)
            if got is None:
                failures.append(f"no match: {fp.pattern!r} on {text[:60]!r}")
                continue
            for key, value in expected.items():
                if got.get(key) != value:
                    failures.append(f"{fp.description}: {key}={got.get(key)!r}, want {value!r}")
    assert checked > 5
    assert not failures, failures[:10]


@pytest.mark.parametrize(
    ("pattern", "flags", "text", "matches"),
    [
        ("^foo$", None, "bar\nfoo\nbaz", True),  # Ruby anchors are per line
        ("a.b", "REG_MULTILINE", "a\nb", True),  # REG_MULTILINE: dot matches newline
        ("a.b", None, "a\nb", False),
        ("^(?i)cisco", None, "CISCO IOS", True),  # a mid-pattern inline flag
        (r"end\z", None, "the end", True),
        (r"end\Z", None, "the end\n", True),
        (r"^\h+$", None, "deadBEEF", True),
        ("^ABC", "REG_ICASE", "abc", True),
    ],
)
def test_ruby_regex_translation(pattern: str, flags: str | None, text: str, matches: bool) -> None:
    py, f = ruby_to_python(pattern, flags)
    assert bool(re.compile(py, f).search(text)) is matches


def test_first_fingerprint_wins_and_params_use_captures() -> None:
    db = load_database("ssh_banners.xml")
    found = db.match("dropbear_2019.78")
    assert found is not None
    _, params = found
    assert params.get("service.product") == "Dropbear SSH"
    assert params.get("service.version") == "2019.78"


@pytest.mark.parametrize(
    ("observation", "category", "vendor"),
    [
        # Recog http_servers / html_title / dhcp examples of consumer devices.
        (
            {"kind": "http", "port": 80, "headers": {"Server": "Hikvision-Webs"}},
            "camera",
            "Hikvision",
        ),
        ({"kind": "dhcp", "vendor_class": "MSFT 5.0"}, "computer", None),
    ],
)
def test_recog_matches_become_claims(
    observation: dict[str, object], category: str, vendor: str | None
) -> None:
    ident = identify_lines(observation)
    assert any(e.rule.startswith("recog:") or e.rule.startswith("generic.") for e in ident.evidence)
    assert ident.category == category
    if vendor:
        assert ident.vendor == vendor


def test_mdns_device_info_txt_is_matched_as_key_value() -> None:
    ident = identify_lines(
        {
            "kind": "mdns",
            "service_type": "_device-info._tcp.local.",
            "name": "mac",
            "properties": {"model": "MacBookPro16,1", "osxvers": "19"},
        }
    )
    assert ident.vendor == "Apple"
    assert ident.category == "computer"
    assert any(e.rule.startswith("recog:mdns") for e in ident.evidence)


def test_recog_bindings_point_at_bundled_files() -> None:
    m = recog_matcher()
    assert {b.file for b in m.bindings} == set(BOUND)
    assert set(m.devices.values()) <= {
        "printer", "router", "camera", "nas", "media-server", "streamer", "tv", "speaker",
        "bulb", "sensor", "thermostat", "hub", "switch", "phone", "computer",
    }  # fmt: skip
