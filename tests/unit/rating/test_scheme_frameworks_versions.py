"""A scheme reads its framework mapping from ``frameworks/<its version>/`` when a frozen copy is
there, else from ``frameworks/``: freezing a mapping for a new version is a copy, and the
published scheme that lists ``frameworks/<file>`` is never edited."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from iotrate.rating_schema import SCHEME_DIR
from iotrate.rating_schema.loader import (
    DEFAULT_SCHEME,
    SchemeError,
    framework_path,
    load_scheme,
)

from iotrate.declarations import load_yaml

CURRENT = load_scheme()
PUBLISHED = load_scheme(SCHEME_DIR / "iotrate-2026.2.yaml")
OWASP = "owasp-iot-top10"


def scheme_copy(tmp_path: Path) -> Path:
    root = tmp_path / "rating_schema"
    shutil.copytree(SCHEME_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


def freeze(root: Path, version: str) -> Path:
    frozen = root / "frameworks" / version
    frozen.mkdir()
    for fw in (root / "frameworks").glob("*.yaml"):
        shutil.copy(fw, frozen / fw.name)
    return frozen


def retitle(path: Path, title: str) -> None:
    doc = load_yaml(path, "framework", SchemeError)
    doc["title"] = title
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML


def add_check(path: Path, requirement: str, check: str) -> None:
    doc = load_yaml(path, "framework", SchemeError)
    for req in doc["requirements"]:
        if req["id"] == requirement:
            req["checks"].append(check)
    path.write_text(json.dumps(doc), encoding="utf-8")


def owasp_title(path: Path) -> str:
    return str(next(fw.title for fw in load_scheme(path).frameworks if fw.id == OWASP))


def test_a_version_reads_its_frozen_copy(tmp_path: Path) -> None:
    root = scheme_copy(tmp_path)
    retitle(freeze(root, CURRENT.version) / f"{OWASP}.yaml", "frozen for this version")
    assert owasp_title(root / DEFAULT_SCHEME.name) == "frozen for this version"


def test_without_a_frozen_copy_the_unversioned_file_is_read(tmp_path: Path) -> None:
    root = scheme_copy(tmp_path)
    retitle(root / "frameworks" / f"{OWASP}.yaml", "unversioned")
    assert owasp_title(root / DEFAULT_SCHEME.name) == "unversioned"


def test_another_versions_copy_is_not_read(tmp_path: Path) -> None:
    root = scheme_copy(tmp_path)
    retitle(freeze(root, "1999.1") / f"{OWASP}.yaml", "someone else's")
    assert owasp_title(root / DEFAULT_SCHEME.name) != "someone else's"


def test_freezing_keeps_the_published_clauses_when_the_mapping_moves_on(tmp_path: Path) -> None:
    """The next version's mapping edits the unversioned files; with the frozen copy the
    published scheme (2026.2, the last to carry its clauses inline) still loads with its own
    clauses, without it the loader refuses it (its inline clauses no longer match), so a
    forgotten freeze cannot pass unnoticed."""
    unfrozen, frozen = scheme_copy(tmp_path / "a"), scheme_copy(tmp_path / "b")
    shutil.rmtree(unfrozen / "frameworks" / PUBLISHED.version)
    for root in (unfrozen, frozen):  # the next version maps FTP to OWASP I10 as well
        add_check(root / "frameworks" / f"{OWASP}.yaml", "I10", "svc.ftp")
    name = f"{PUBLISHED.id}-{PUBLISHED.version}.yaml"
    with pytest.raises(SchemeError, match="inline standards"):
        load_scheme(unfrozen / name)
    kept = load_scheme(frozen / name)
    assert [c.standards for c in kept.checks] == [c.standards for c in PUBLISHED.checks]


def test_an_entry_already_naming_a_version_folder_stays_as_written(tmp_path: Path) -> None:
    scheme = tmp_path / "iotrate-2026.1.yaml"
    entry = "frameworks/2026.1/uk-psti.yaml"
    assert framework_path(scheme, "2026.1", entry) == tmp_path / entry
    published = load_scheme(SCHEME_DIR / "iotrate-2026.1.yaml")
    assert published.version == "2026.1" and published.frameworks


def test_frozen_copies_are_packaged_without_a_pyproject_edit() -> None:
    pyproject = tomllib.loads((SCHEME_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["iotrate.rating_schema"]
    assert "frameworks/*/*.yaml" in globs
