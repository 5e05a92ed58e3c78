"""Reading YAML that users hand us: declarations, schemes, the agent's config, lab tables.

YAML aliases let a few hundred bytes stand for gigabytes once expanded (the "billion laughs"):
PyYAML builds the shared structure cheaply, but everything after it (schema validation, error
messages quoting the value) walks the expansion. No iotrate file needs an alias, so a document
that uses one is refused outright, before anything is built from it; so is a file over a size
cap. Errors quote at most a short excerpt of what the file holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser: the scheme is read on every run and the pure-Python one is slow
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

MAX_BYTES = 2 * 1024 * 1024  # the largest shipped scheme is 55 kB; declarations a few hundred B
EXCERPT = 160


class YamlRefused(yaml.YAMLError):
    """A document iotrate will not build: it uses aliases, or the file is too large."""


def excerpt(text: object, limit: int = EXCERPT) -> str:
    """At most ``limit`` characters of ``text`` on one line, for error messages: a message
    must not become the megabyte (or the expansion) it complains about."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _refuse_aliases(root: yaml.Node) -> None:
    """An alias makes the composed graph share a node; an iotrate file is a plain tree."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            mark = node.start_mark
            where = f" (the value anchored on line {mark.line + 1} is reused)" if mark else ""
            raise YamlRefused(f"YAML aliases (*name) are not accepted{where}")
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += (k, v)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


class SafeYamlLoader(_SafeLoader):
    """PyYAML's safe loader (libyaml when available) that refuses aliases and duplicate keys.

    Duplicate keys: YAML would silently keep the last one, and a second ``weight:`` or
    ``support_period_end:`` must not pass unnoticed in a rating input."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _refuse_aliases(node)
        return self.construct_document(node)


def _construct_mapping(loader: SafeYamlLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key (a list): construct_mapping says so below
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {excerpt(repr(key), 60)}", key_node.start_mark
            )
    return dict(loader.construct_mapping(node, deep=True))


SafeYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_capped(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """The file's text, refusing one over ``max_bytes`` before reading it (OSError and
    UnicodeDecodeError pass to the caller, which knows what the file is)."""
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlRefused(f"larger than {max_bytes // 1024} KiB; not read")
    return data.decode("utf-8")


def loads(text: str, loader: type[SafeYamlLoader] = SafeYamlLoader) -> Any:
    """One YAML document as plain data. Raises :class:`yaml.YAMLError` (its subclass
    :class:`YamlRefused` for aliases and size); messages are cut with :func:`load_error`."""
    if len(text) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1024} KiB; not read")
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def load_error(exc: yaml.YAMLError) -> str:
    """A YAML error as a short message: the problem and where, with no long snippet."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return excerpt(f"{where}{exc.problem or exc.context or 'malformed'}")
    return excerpt(exc)


def load_file(path: Path, loader: type[SafeYamlLoader] = SafeYamlLoader) -> Any:
    """``loads`` of a file, with the size cap applied before reading."""
    return loads(read_capped(path), loader)
