"""Rapid7 Recog fingerprints, loaded from the XML files bundled unchanged in ``data/recog``.

Recog is maintained by people who see millions of banners; shipping its files as they are (with
their BSD-2 licence) lets a refresh be a plain copy. Recog's semantics are kept: within one
database the first matching fingerprint wins, ``param pos="0"`` is a constant, ``pos="N"`` the
N-th capture group, and ``{name}`` in a value interpolates another param. Recog writes Ruby
regexes; the few differences that matter are translated (``^``/``$`` are line anchors in Ruby,
``REG_MULTILINE`` means "dot matches newline", ``\\z``/``\\Z``, inline flags mid-pattern).

Which database reads which record field, and how Recog's ``hw.device`` words map onto our
categories, is data too: ``data/identify/recog.yaml``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

from iotrate.identify.claims import CATEGORIES, Claim
from iotrate.identify.datafiles import (
    data_bytes,
    load_yaml,
    require_float,
    require_list,
    require_mapping,
    require_str,
)
from iotrate.identify.errors import FingerprintDataError
from iotrate.identify.facts import Record

MAX_INPUT = 4096
_INTERPOLATE = re.compile(r"\{([a-z0-9_.]+)\}")


def ruby_to_python(pattern: str, flags_attr: str | None) -> tuple[str, int]:
    """Translate a Recog (Ruby) regex and its ``flags`` attribute to Python."""
    flags = re.MULTILINE  # Ruby's ^ and $ always match at line boundaries
    for f in (flags_attr or "").split(","):
        f = f.strip()
        if f == "REG_ICASE":
            flags |= re.IGNORECASE
        elif f in {"REG_MULTILINE", "REG_DOT_NEWLINE"}:
            flags |= re.DOTALL
    # A global inline flag anywhere applies to the whole pattern in Ruby; Python wants it first.
    for m in re.finditer(r"\(\?([imx]+)\)", pattern):
        for ch in m.group(1):
            flags |= {"i": re.IGNORECASE, "m": re.DOTALL, "x": re.VERBOSE}[ch]
    pattern = re.sub(r"\(\?[imx]+\)", "", pattern)
    pattern = pattern.replace(r"\h", "[0-9a-fA-F]")
    pattern = re.sub(r"(?<!\\)\\Z", r"(?=\\n?\\Z)", pattern)
    pattern = re.sub(r"(?<!\\)\\z", r"\\Z", pattern)
    pattern = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    return pattern, flags


@dataclass(frozen=True)
class Param:
    name: str
    pos: int
    value: str | None


@dataclass
class Fingerprint:
    """One Recog ``<fingerprint>``: a pattern, its params, its own examples."""

    pattern: str
    regex: re.Pattern[str]
    description: str
    params: tuple[Param, ...]
    certainty: float
    examples: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def match(self, text: str) -> dict[str, str] | None:
        m = self.regex.search(text[:MAX_INPUT])
        if m is None:
            return None
        out: dict[str, str] = {}
        for p in self.params:
            if p.pos == 0:
                if p.value is not None:
                    out[p.name] = p.value
            else:
                try:
                    captured = m.group(p.pos)
                except (IndexError, re.error):
                    captured = None
                if captured:
                    out[p.name] = captured
        # Interpolate {other.param} references (used for CPEs and "{hw.product} Firmware").
        for k, v in list(out.items()):
            if "{" in v:
                filled = _INTERPOLATE.sub(lambda mm: out.get(mm.group(1), mm.group(0)), v)
                out[k] = filled
        return out


@dataclass
class Database:
    name: str
    fingerprints: list[Fingerprint]

    def match(self, text: str) -> tuple[Fingerprint, dict[str, str]] | None:
        """Recog's rule: the first fingerprint of the file that matches."""
        for fp in self.fingerprints:
            params = fp.match(text)
            if params is not None:
                return fp, params
        return None


def _example(el: Element) -> tuple[str, dict[str, str]]:
    text = el.text or ""
    if el.get("_encoding") == "base64":
        try:
            text = base64.b64decode(text).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = ""
    attrs = {k: v for k, v in el.attrib.items() if not k.startswith("_")}
    return text, attrs


def parse_database(raw: bytes, name: str) -> Database:
    try:
        root = SafeET.fromstring(raw)
    except Exception as exc:
        raise FingerprintDataError(f"data/recog/{name}: {exc}") from exc
    fps: list[Fingerprint] = []
    for el in root.iter("fingerprint"):
        raw_pattern = el.get("pattern") or ""
        pattern, flags = ruby_to_python(raw_pattern, el.get("flags"))
        try:
            regex = re.compile(pattern, flags)
        except re.error:
            continue  # a Ruby-only construct; skipping one fingerprint beats failing all
        params = []
        certainty = float(el.get("certainty") or 1.0)
        for p in el.iter("param"):
            pname = p.get("name") or ""
            try:
                pos = int(p.get("pos") or 0)
            except ValueError:
                continue
            params.append(Param(pname, pos, p.get("value")))
            if pname.endswith(".certainty") and p.get("value"):
                try:
                    certainty = min(certainty, float(p.get("value") or 1.0))
                except ValueError:
                    pass
        desc_el = el.find("description")
        fps.append(
            Fingerprint(
                pattern=raw_pattern,
                regex=regex,
                description=" ".join((desc_el.text or "").split()) if desc_el is not None else "",
                params=tuple(params),
                certainty=certainty,
                examples=[_example(x) for x in el.iter("example")],
            )
        )
    return Database(name, fps)


@lru_cache(maxsize=32)
def load_database(filename: str) -> Database:
    return parse_database(data_bytes("recog", filename), filename)


@dataclass(frozen=True)
class Binding:
    """Which record fields one Recog database reads."""

    file: str
    fields: tuple[str, ...]
    require: tuple[tuple[str, re.Pattern[str]], ...]
    txt_of: str | None
    weight: float


@dataclass
class RecogMatcher:
    """Runs the bound Recog databases over records and turns params into claims."""

    bindings: list[Binding]
    devices: dict[str, str]
    weights: dict[str, float]
    generic_os_vendors: re.Pattern[str]

    def texts(self, binding: Binding, record: Record) -> Iterable[tuple[str, str]]:
        for fname, pattern in binding.require:
            if not any(pattern.search(v) for v in record.fields.get(fname, ())):
                return
        if binding.txt_of is not None:
            if binding.txt_of not in record.fields.get("mdns.service_type", ()):
                return
            for name, values in record.fields.items():
                if name.startswith("mdns.txt."):
                    key = name[len("mdns.txt.") :]
                    for v in values:
                        yield name, f"{key}={v}"
            return
        for fname in binding.fields:
            for v in record.fields.get(fname, ()):
                yield fname, v

    def claims(self, records: Iterable[Record]) -> list[Claim]:
        out: list[Claim] = []
        for record in records:
            for binding in self.bindings:
                for fname, text in self.texts(binding, record):
                    found = load_database(binding.file).match(text)
                    if found is None:
                        continue
                    fp, params = found
                    out.extend(self._to_claims(binding, fp, params, record, fname, text))
        return out

    def _to_claims(
        self,
        binding: Binding,
        fp: Fingerprint,
        params: dict[str, str],
        record: Record,
        fname: str,
        text: str,
    ) -> list[Claim]:
        scale = binding.weight * fp.certainty
        if scale <= 0:
            return []
        rule = f"recog:{binding.file.removesuffix('.xml')}:{fp.description[:60]}"
        out: list[Claim] = []

        def add(attribute: Any, value: str, weight: float) -> None:
            value = " ".join(value.split())
            if value:
                w = round(weight * scale, 3)
                out.append(Claim(attribute, value, w, rule, record.kind, fname, text, record.uid))

        device_word = params.get("hw.device") or params.get("os.device")
        category = self.devices.get(device_word or "")
        if category:
            add("category", category, self.weights["category"])
        hw_vendor = params.get("hw.vendor")
        os_vendor = params.get("os.vendor")
        if hw_vendor:
            add("vendor", hw_vendor, self.weights["vendor"])
        elif os_vendor and device_word and not self.generic_os_vendors.search(os_vendor):
            # A device OS (FRITZ!OS, DSM, RouterOS) is written by the device's maker.
            add("vendor", os_vendor, self.weights["vendor"] * 0.8)
        model = params.get("hw.product") or params.get("hw.model")
        if model and hw_vendor:
            add("model", model, self.weights["model"])
        if (hw_vendor or device_word) and params.get("os.version"):
            add("firmware", params["os.version"], self.weights["firmware"])
        return out


def _bindings(doc: dict[str, Any]) -> list[Binding]:
    out = []
    for i, item in enumerate(require_list(doc, "databases", "recog.yaml")):
        entry = require_mapping(item, f"recog.yaml databases #{i + 1}")
        file = require_str(entry, "file", "recog.yaml")
        req = require_mapping(entry.get("require") or {}, f"recog.yaml {file}")
        out.append(
            Binding(
                file=file,
                fields=tuple(str(f) for f in entry.get("fields") or ()),
                require=tuple((k, re.compile(str(v), re.IGNORECASE)) for k, v in req.items()),
                txt_of=str(entry["txt_of"]) if entry.get("txt_of") else None,
                weight=require_float(entry.get("weight"), f"recog.yaml {file}", 1.0),
            )
        )
    return out


@lru_cache(maxsize=1)
def recog_matcher() -> RecogMatcher:
    doc = require_mapping(load_yaml("recog.yaml"), "recog.yaml")
    devices = require_mapping(doc.get("devices"), "recog.yaml devices")
    for word, cat in devices.items():
        if cat not in CATEGORIES:
            raise FingerprintDataError(f"recog.yaml devices: {word!r} -> unknown {cat!r}")
    weights = require_mapping(doc.get("weights"), "recog.yaml weights")
    return RecogMatcher(
        bindings=_bindings(doc),
        devices={str(k): str(v) for k, v in devices.items()},
        weights={
            k: require_float(weights.get(k), "recog.yaml weights", 0.5)
            for k in ("category", "vendor", "model", "firmware")
        },
        generic_os_vendors=re.compile(str(doc.get("generic_os_vendors") or "^$"), re.IGNORECASE),
    )
