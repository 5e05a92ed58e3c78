"""YAML that users hand iotrate (declarations, schemes, the agent's config, a vulnerability
dataset folder): aliases refused, a size cap, short error messages (issue 17, finding 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from iotrate.rating_schema.loader import SchemeError, load_scheme
from iotrate.reports import json as json_report
from support.labels import fridge, result
from typer.testing import CliRunner

from iotrate import yamlfiles
from iotrate.cli import app
from iotrate.declarations import DeclarationError, load_declaration

runner = CliRunner()


def alias_bomb() -> str:
    """The shape of the finding's 457-byte declaration (16 s and 1 GB before the fix): nine
    levels of nine aliases, 9**9 strings once expanded, in under 400 bytes."""
    lines = ['model: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_declaration_is_refused_naming_aliases(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    with pytest.raises(DeclarationError, match="aliases"):
        load_declaration(bomb)
    res_file = tmp_path / "r.json"
    res_file.write_text(json_report.render(result([fridge()])))
    res = runner.invoke(app, ["rate", str(res_file), "--declaration", str(bomb)])
    assert res.exit_code == 2
    assert "aliases" in res.stderr and res.stderr.count("\n") == 1
    assert len(res.stderr) < 300


def test_alias_bomb_scheme_and_agent_config_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    with pytest.raises(SchemeError, match="aliases"):
        load_scheme(bomb)
    res = runner.invoke(app, ["agent", "--config", str(bomb)])
    assert res.exit_code == 2 and "aliases" in res.stderr


def test_alias_bomb_in_a_vulnerability_dataset_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iotrate.vulndb.lookup import VulnDataError, load

    data = tmp_path / "vulns"
    data.mkdir()
    (data / "components.yaml").write_text(alias_bomb())
    (data / "annotations.yaml").write_text("{}\n")
    with pytest.raises(VulnDataError, match="aliases"):
        load(data)


def test_one_alias_is_enough_and_anchors_alone_are_fine() -> None:
    with pytest.raises(yamlfiles.YamlRefused, match="aliases"):
        yamlfiles.loads("a: &x [1]\nb: *x\n")
    assert yamlfiles.loads("a: &x [1]\nb: [1]\n") == {"a": [1], "b": [1]}


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (yamlfiles.MAX_BYTES // 10 + 10))
    with pytest.raises(DeclarationError, match="larger than"):
        load_declaration(big)
    with pytest.raises(yamlfiles.YamlRefused):
        yamlfiles.loads("a: 1\n" + " " * yamlfiles.MAX_BYTES)


def test_errors_quote_a_short_excerpt(tmp_path: Path) -> None:
    """A value the schema refuses, and a line YAML cannot parse, each 200 kB long: the
    message names the problem without repeating the file."""
    long_value = "x" * 200_000
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text(json.dumps({"model": "M", "support_period_end": [long_value]}))
    with pytest.raises(DeclarationError) as info:
        load_declaration(wrong_type)
    assert len(str(info.value)) < 1000
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [" + long_value + "\n: : :\n")
    with pytest.raises(DeclarationError) as info:
        load_declaration(broken)
    assert "not valid YAML" in str(info.value) and len(str(info.value)) < 600


def test_duplicate_keys_still_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key"):
        yamlfiles.loads("a: 1\na: 2\n")
