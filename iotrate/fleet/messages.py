"""The fleet's messages: topic layout, the versioned envelope, and how a message is checked.

Topics (``<site>`` and ``<scan-id>`` are restricted to letters, digits and ``._-``)::

    iotrate/v1/<site>/<scan-id>/start              the scan begins: targets, policy, options
    iotrate/v1/<site>/<scan-id>/device/<device-id> one device, as soon as its probes are done,
                                                   and again if the scan's end changed it
    iotrate/v1/<site>/<scan-id>/end                the result without devices, and which stand
    iotrate/v1/<site>/command                      signed commands to the site's agent

Every payload is JSON with an envelope (``schema``, ``kind``, ``site``, ``scan_id``,
``agent_id``, ``sent_at``, ``seq``) around the scan result's own models, so the device inside a
device message is exactly a ``devices[]`` item of ``iotrate scan --json``. Devices travel one
per message and only once unless the end of the scan (correlation across devices, the final
rating) changed them, so no message grows with the size of the network. The collector takes
nothing on trust: size first, then the whole message against the models in strict mode (JSON
and models in one pass), then the topic against the envelope. The models are what
:func:`json_schema` and ``scan-result.schema.json`` are generated from, and pydantic's
compiled validator checks the same constraints many times faster than walking the schema,
which is what lets one collector take a thousand devices a second; a refused message is then
checked the slow way (JSON, the envelope against the JSON Schema) to say why
(``tests/unit/fleet/test_fleet_messages.py`` checks both judge alike).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from iotrate.models import SCHEMA_VERSION, Device, ScanResult, Target, Timestamp, ToolInfo

#: Version of the envelope; the scan result inside carries its own ``schema_version``.
FLEET_SCHEMA = "iotrate.fleet/1"
TOPIC_ROOT = "iotrate/v1"
#: The collector drops anything larger; a device result is typically 5-50 kB.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_DEVICE_SEGMENT = re.compile(r"[^A-Za-z0-9._:-]")


class MessageRejected(ValueError):
    """A message that is not ours, not well formed or not consistent: logged and dropped."""


def check_name(value: str, what: str = "site") -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"{what} must be 1-64 letters, digits, '.', '_' or '-', got {value!r}")
    return value


def device_segment(device_id: str) -> str:
    """A device id as a topic level: MQTT wildcards, separators and odd bytes become ``_``."""
    return _DEVICE_SEGMENT.sub("_", device_id)[:128] or "_"


def start_topic(site: str, scan_id: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{scan_id}/start"


def end_topic(site: str, scan_id: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{scan_id}/end"


def device_topic(site: str, scan_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{scan_id}/device/{device_segment(device_id)}"


def command_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/command"


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["iotrate.fleet/1"] = Field(
        default="iotrate.fleet/1", alias="schema", description="Envelope version."
    )
    site: str = Field(pattern=NAME_PATTERN, description="The agent's site (--site).")
    scan_id: str = Field(pattern=ID_PATTERN)
    agent_id: str = Field(pattern=NAME_PATTERN, description="The agent, stable across runs.")
    sent_at: Timestamp = Field(description="When the agent queued the message.")
    seq: int = Field(
        ge=0, le=2**63 - 1, description="The agent's spool sequence number (diagnostics)."
    )


class StartMessage(_Envelope):
    kind: Literal["start"] = "start"
    started_at: Timestamp
    policy: str = Field(pattern=r"^(safe|default|intrusive)$")
    targets: list[Target] = Field(max_length=4096)
    tool: ToolInfo
    result_schema: str = Field(default=SCHEMA_VERSION, description="The scan result's version.")
    options: dict[str, Any] = Field(default_factory=dict, description="Ports, limits, exclusions.")


class DeviceMessage(_Envelope):
    kind: Literal["device"] = "device"
    device: Device


class EndMessage(_Envelope):
    kind: Literal["end"] = "end"
    status: Literal["complete", "interrupted"]
    result: ScanResult = Field(
        description="The scan result without its devices (they came as device messages)."
    )
    addresses: list[str] | None = Field(
        max_length=65536,
        description="The addresses of the result's devices: stored devices of the scan not "
        "listed are dropped. Null when the agent does not know (it stopped mid-scan): every "
        "device received stands.",
    )


FleetMessage = Annotated[StartMessage | DeviceMessage | EndMessage, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[StartMessage | DeviceMessage | EndMessage] = TypeAdapter(FleetMessage)


@cache
def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a fleet message (``iotrate collector --schema``)."""
    schema = _ADAPTER.json_schema(mode="serialization", by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://iotrate.invalid/schemas/fleet-message-1.json"
    schema["title"] = "iotrate fleet message"
    return schema


def _without_payload(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _without_payload(v) for k, v in node.items()}
        props = out.get("properties")
        if isinstance(props, dict):
            for name in ("device", "result"):
                if name in props:
                    props[name] = {"type": "object"}
        return out
    if isinstance(node, list):
        return [_without_payload(v) for v in node]
    return node


_KINDS = {"start": "StartMessage", "device": "DeviceMessage", "end": "EndMessage"}


@cache
def validator(kind: str | None = None) -> jsonschema.protocols.Validator:
    """A JSON Schema validator: the whole message (``kind`` None), or the envelope of one
    kind with the device or result inside reduced to "an object" — the collector's check,
    which skips the three-way ``oneOf`` and the deep walk the models do faster."""
    schema = json_schema()
    if kind is not None:
        defs = _without_payload(schema["$defs"])
        schema = {**defs[_KINDS[kind]], "$defs": defs, "$schema": schema["$schema"]}
    cls = jsonschema.validators.validator_for(schema)
    checker: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return checker


def encode(message: StartMessage | DeviceMessage | EndMessage) -> bytes:
    return message.model_dump_json(by_alias=True).encode("utf-8")


def topic_for(message: StartMessage | DeviceMessage | EndMessage) -> str:
    if isinstance(message, DeviceMessage):
        return device_topic(message.site, message.scan_id, message.device.id)
    if isinstance(message, StartMessage):
        return start_topic(message.site, message.scan_id)
    return end_topic(message.site, message.scan_id)


def decode(
    topic: str, payload: bytes, max_bytes: int = MAX_MESSAGE_BYTES
) -> StartMessage | DeviceMessage | EndMessage:
    """Check a received message all the way; raise :class:`MessageRejected` saying why.

    A well-formed message goes through one pass of pydantic's strict JSON validator, which
    parses and checks envelope and payload at once and is stricter than the JSON Schema
    (no "5" for 5, no number for a date). Only a message it refuses takes the slow path —
    JSON, envelope against the JSON Schema, then the models — which exists to say why."""
    if len(payload) > max_bytes:
        raise MessageRejected(f"{len(payload)} bytes is more than the limit of {max_bytes}")
    parts = topic.split("/")
    if parts[:2] != TOPIC_ROOT.split("/") or len(parts) not in (5, 6):
        raise MessageRejected("not an iotrate/v1 result topic")
    try:
        message = _ADAPTER.validate_json(payload, strict=True)
    except ValidationError as exc:
        _diagnose(payload)
        raise MessageRejected(f"invalid: {_first_error(exc)}") from None
    except RecursionError:
        raise MessageRejected("not JSON: nested too deeply") from None
    if topic != topic_for(message):
        raise MessageRejected("the topic does not match the message's site, scan or device")
    if isinstance(message, EndMessage):
        if message.result.scan_id != message.scan_id:
            raise MessageRejected("the result's scan id differs from the envelope's")
        if message.result.devices:
            raise MessageRejected("an end message carries no devices")
    return message


def _first_error(exc: ValidationError) -> str:
    """Where and what, for the log: ``at device.findings.0.port: Input should be less than
    or equal to 65535`` (the union's own name, pydantic's first line, says nothing)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return str(exc).splitlines()[0][:200]
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "(top)"  # [0] is the union's tag
    return f"at {where[:120]}: {first['msg'][:200]}"


def _diagnose(payload: bytes) -> None:
    """Why a message the strict validator refused is wrong, in the terms of the published
    schema: raises :class:`MessageRejected` for the first fault found, returns if the JSON
    and the envelope are fine (the fault is then inside the device or result)."""
    try:
        data = from_json(payload)
    except (ValueError, RecursionError) as exc:
        raise MessageRejected(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict) or data.get("schema") != FLEET_SCHEMA:
        raise MessageRejected(f"not a {FLEET_SCHEMA} message")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise MessageRejected("unknown message kind")
    error = jsonschema.exceptions.best_match(validator(kind).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise MessageRejected(f"schema: at {where[:120]}: {error.message[:200]}")


if __name__ == "__main__":  # pragma: no cover - a convenience for the docs
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
