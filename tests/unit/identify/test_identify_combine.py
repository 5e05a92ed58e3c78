"""The vote: independent witnesses add up, conflicts cost confidence, thin evidence says "other"."""

from __future__ import annotations

from iotrate.identify.claims import Attribute, Claim
from iotrate.identify.combine import (
    CATEGORY_MIN,
    conclude,
    conclude_category,
    overall_confidence,
)


def claim(
    value: str,
    weight: float,
    record: str,
    attribute: Attribute = "category",
    rule: str = "r",
) -> Claim:
    return Claim(attribute, value, weight, f"{rule}:{record}:{value}", "ssdp", "f", value, record)


def test_no_evidence_is_other_with_almost_no_confidence() -> None:
    c = conclude_category([])
    assert c.value == "other" and c.confidence <= 0.1


def test_thin_evidence_is_other() -> None:
    c = conclude_category([claim("tv", CATEGORY_MIN - 0.05, "a")])
    assert c.value == "other" and c.confidence <= 0.2


def test_independent_witnesses_combine() -> None:
    one = conclude_category([claim("camera", 0.6, "a")])
    two = conclude_category([claim("camera", 0.6, "a"), claim("camera", 0.6, "b")])
    assert one.value == two.value == "camera"
    assert two.confidence > one.confidence
    assert abs(two.confidence - 0.84) < 0.01


def test_one_record_is_one_witness() -> None:
    """Three fields of one UPnP device saying "media server" are one piece of evidence."""
    c = conclude_category(
        [claim("media-server", 0.6, "a", rule=x) for x in ("type", "name", "description")]
    )
    assert c.confidence == 0.6


def test_conflict_lowers_confidence() -> None:
    clean = conclude_category([claim("router", 0.85, "a")])
    contested = conclude_category([claim("router", 0.85, "a"), claim("nas", 0.6, "b")])
    assert contested.value == "router"
    assert contested.confidence < clean.confidence - 0.3


def test_near_synonyms_support_each_other() -> None:
    c = conclude_category([claim("tv", 0.5, "a"), claim("streamer", 0.5, "b")])
    assert c.value in {"tv", "streamer"}
    assert c.confidence == 0.75  # no conflict penalty, 1 - 0.5 * 0.5


def test_specific_claim_silences_a_much_weaker_one_in_the_same_record() -> None:
    c = conclude_category([claim("streamer", 0.85, "airplay"), claim("speaker", 0.25, "airplay")])
    assert c.value == "streamer" and c.confidence == 0.85
    d = conclude_category([claim("streamer", 0.85, "airplay"), claim("speaker", 0.25, "raop")])
    assert d.confidence < 0.85


def test_strongest_specific_evidence_wins_over_many_vague_words() -> None:
    c = conclude_category(
        [claim("router", 0.85, "igd")] + [claim("bulb", 0.35, f"name{i}") for i in range(2)]
    )
    assert c.value == "router"


def test_vendor_threshold_and_normalised_voting() -> None:
    out = conclude(
        [
            claim("Samsung", 0.6, "a", "vendor"),
            claim("Samsung", 0.5, "b", "vendor"),
            claim("LG", 0.2, "c", "vendor"),
        ]
    )
    assert out["vendor"].value == "Samsung"
    assert out["category"].value == "other"
    weak = conclude([claim("Nobody", 0.2, "a", "vendor")])
    assert weak["vendor"].value is None


def test_overall_confidence_is_the_weaker_named_part() -> None:
    out = conclude([claim("router", 0.9, "a"), claim("AVM", 0.5, "b", "vendor")])
    assert overall_confidence(out) == out["vendor"].confidence == 0.5
    no_vendor = conclude([claim("router", 0.9, "a")])
    assert overall_confidence(no_vendor) == 0.9
