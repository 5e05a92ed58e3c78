"""Reading a label back: its metadata, and whether it belongs to a given result (``iotrate
verify``).

A label's ``<metadata>`` carries the result digest, the device and the QR payload; the QR code
is redrawn from that payload and compared with the printed path, so a label whose picture and
metadata disagree is caught as well as one made from another result.
"""

from __future__ import annotations

from dataclasses import dataclass

from defusedxml import ElementTree

from iotrate.errors import UsageError
from iotrate.models import ScanResult

from .label import NS, qr_path
from .textfit import clean


@dataclass(frozen=True)
class LabelMetadata:
    digest: str
    device_id: str
    grade: str
    qr_payload: str
    qr_d: str | None


def read_label(svg: str) -> LabelMetadata:
    try:
        root = ElementTree.fromstring(svg)
    except Exception as exc:  # defusedxml raises several types for hostile or broken XML
        raise UsageError(f"the label is not well-formed SVG: {exc}") from exc
    meta = root.find(f".//{{{NS}}}label")
    if meta is None:
        raise UsageError("not an iotrate label (no label metadata)")
    qr = next(
        (e for e in root.iter("{http://www.w3.org/2000/svg}path") if e.get("class") == "qr"),
        None,
    )
    return LabelMetadata(
        digest=meta.get("result-sha256", ""),
        device_id=meta.get("device-id", ""),
        grade=meta.get("grade", ""),
        qr_payload=meta.get("qr-payload", ""),
        qr_d=qr.get("d") if qr is not None else None,
    )


def label_problems(svg: str, result: ScanResult, digest: str) -> list[str]:
    """Why this label does not belong to this result; empty when it does."""
    meta = read_label(svg)
    problems: list[str] = []
    if meta.digest.lower() != digest.lower():
        problems.append(
            f"the label was made from a different result (label sha256 {meta.digest[:16]}…, "
            f"result sha256 {digest[:16]}…)"
        )
    if digest.upper() not in meta.qr_payload.upper():
        problems.append("the QR payload does not carry the result's digest")
    if meta.qr_d is None or meta.qr_d != qr_path(meta.qr_payload)[0]:
        problems.append("the printed QR code does not encode the label's payload")
    device = next((d for d in result.devices if clean(d.id) == meta.device_id), None)
    if device is None:
        problems.append(f"the result has no device {meta.device_id!r}")
    else:
        grade = (device.rating.grade if device.rating else None) or ""
        if grade != meta.grade:
            problems.append(f"the label shows grade {meta.grade or '-'}, the result {grade or '-'}")
    return problems
