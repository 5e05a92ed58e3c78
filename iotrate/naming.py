"""What a device is called and the one reason shown for its grade, the same in the terminal,
the reports, the labels, the dashboard and the fleet.

Every device string is hostile: what is shown here has been through :func:`clean` (control and
bidi characters removed), and the fallbacks never leave a device without a name.
"""

from __future__ import annotations

from collections.abc import Sequence

from iotrate.models import Device
from iotrate.reports.textfit import clean  # typed as Any here: mypy sees reports/ as top level

SURE = 0.5  # below this identification confidence a category is only "probably" right


def _confidence(device: Device) -> float | None:
    return device.identity.confidence if device.identity is not None else None


def _declared(device: Device) -> dict[str, object]:
    r = device.rating
    return dict(r.declared.content) if r is not None and r.declared is not None else {}


def _or_declared(seen: str | None, declared: object) -> str | None:
    """What the scan saw, else what the declaration states, marked as such: a declared fact
    is the maker's word, not a measurement."""
    if clean(seen):
        return seen
    if isinstance(declared, str) and clean(declared):
        return f"{declared} (declared)"
    return None


def device_names(device: Device) -> tuple[str, str]:
    """(vendor line, model line) for a device, falling back to the declaration it was rated
    with (marked "declared"), then to what discovery knew."""
    decl = _declared(device)
    vendor = _or_declared(device.vendor, decl.get("manufacturer"))
    model = _or_declared(device.model, decl.get("model"))
    return _names(vendor, model, device.names, device.category, device.address, _confidence(device))


def device_firmware(device: Device) -> str:
    """The firmware seen, else the declared one marked "declared", else "unknown"."""
    seen = device.firmware or (device.identity.firmware if device.identity else None)
    return str(clean(_or_declared(seen, _declared(device).get("firmware")) or "") or "unknown")


def category_phrase(category: str | None, confidence: float | None) -> str:
    """How a category is named for how sure identification is: a guess below 0.5 is marked as
    one ("camera (probably)"), and "other" says nothing, so it is not named."""
    cat = clean(category) or ""
    if not cat or cat == "other":
        return "device"
    if confidence is not None and confidence < SURE:
        return f"{cat} (probably)"
    return str(cat)


def _names(
    vendor: str | None,
    model: str | None,
    names: Sequence[str],
    category: str | None,
    address: str,
    confidence: float | None = None,
) -> tuple[str, str]:
    vendor_line = clean(vendor) or "Unknown manufacturer"
    model_line = clean(model) or (clean(names[0]) if names else "")
    if not model_line:
        phrase = category_phrase(category, confidence)
        model_line = f"Unidentified {phrase} at {clean(address)}"
    return vendor_line, model_line


def display_name(device: Device) -> str:
    """One line naming the device for tables and reports: "LG appliance at 10.0.0.11" rather
    than "Unidentified appliance…" when the maker is known, and "Google Home Mini" rather than
    "Google Google Home Mini" when the model already carries the maker's name."""
    d = device
    return display_name_of(d.vendor, d.model, d.names, d.category, d.address, _confidence(d))


def display_name_of(
    vendor: str | None,
    model: str | None,
    names: Sequence[str],
    category: str | None,
    address: str,
    confidence: float | None = None,
) -> str:
    """:func:`display_name` from the fields it reads, for lists built from stored columns."""
    vendor_line, model_line = _names(vendor, model, names, category, address, confidence)
    known_vendor = bool(clean(vendor))
    if model_line.startswith("Unidentified "):
        if not known_vendor:
            return model_line
        return f"{vendor_line} {model_line.removeprefix('Unidentified ')}"
    if known_vendor and model_line.lower().startswith(vendor_line.lower()):
        return model_line
    return f"{vendor_line} {model_line}" if known_vendor else model_line


_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def main_reason(device: Device) -> str:
    """The one reason a person should read first: the cap that set the grade, else the worst
    finding, in the scheme's plain words rather than the rater's audit trail."""
    r = device.rating
    if r is None or r.grade is None:
        return ""
    binding = [c for c in r.caps if c.grade == r.grade]
    if binding:
        return str(clean(binding[0].reason))
    worst = sorted(device.findings, key=lambda f: _SEVERITY_RANK.get(f.severity.value, 5))
    if worst:
        return str(clean(worst[0].title))
    if r.caps:
        return str(clean(r.caps[0].reason))
    return "No weakness found in what could be tested"
