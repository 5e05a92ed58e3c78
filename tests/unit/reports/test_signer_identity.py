"""Who signed a result: the key id ``verify`` shows is computed from the key that verified,
trusted signers are named, an unknown signer fails unless ``--any-signer`` (issue 17,
finding 1), and odd result files end in one line (finding 8: NaN)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from iotrate.reports import json as json_report
from support.labels import fridge, result
from typer.testing import CliRunner

from iotrate import signing
from iotrate.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trusted-keys file lives in the user's config folder: a throwaway one per test."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def lab(tmp_path: Path) -> tuple[Path, Path]:
    return signing.new_keypair(tmp_path / "lab")


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    path = tmp_path / "scan.json"
    path.write_text(json_report.render(result([fridge()])) + "\n", encoding="utf-8")
    return path


def _forge(result_file: Path, lab_pub: Path, *, claim_lab_id: bool) -> str:
    """What an attacker does: change the grade G -> A, sign with a key of their own and (if
    ``claim_lab_id``) put the lab's key id in the envelope, signed like the rest."""
    text = result_file.read_text().replace('"grade": "G"', '"grade": "A"', 1)
    result_file.write_text(text)
    attacker = Ed25519PrivateKey.generate()
    envelope = signing.sign_value(json.loads(text), attacker)
    if claim_lab_id:
        envelope["key_id"] = signing.key_id(signing.load_public_key(lab_pub))
        body = {k: v for k, v in envelope.items() if k != "signature"}
        sig = attacker.sign(signing.canonical_json(body))
        envelope["signature"] = base64.b64encode(sig).decode()
    signing.signature_path(result_file).write_text(json.dumps(envelope))
    return signing.key_id(attacker.public_key())


def _sign(result_file: Path, key: Path) -> None:
    res = runner.invoke(app, ["sign", str(result_file), "--key", str(key)])
    assert res.exit_code == 0, res.output


def test_forged_key_id_is_never_shown_and_fails(result_file: Path, lab: tuple[Path, Path]) -> None:
    _priv, pub = lab
    lab_id = signing.key_id(signing.load_public_key(pub))
    assert runner.invoke(app, ["keys", "trust", "Test Lab", str(pub)]).exit_code == 0
    attacker_id = _forge(result_file, pub, claim_lab_id=True)
    for extra in ([], ["--any-signer"]):
        res = runner.invoke(app, ["verify", str(result_file), *extra])
        assert res.exit_code == 1, res.output
        assert "ok: signature valid" not in res.stdout
        assert "key_id is not the id of its public key" in res.stderr
        assert f"key {lab_id}" not in res.stdout
    # With the lab's public key given, the attacker's key is named by its real id.
    res = runner.invoke(app, ["verify", str(result_file), "--pubkey", str(pub)])
    assert res.exit_code == 1 and f"signed by key {attacker_id}" in res.stderr


def test_unknown_signer_fails_loudly_unless_any_signer(
    result_file: Path, lab: tuple[Path, Path]
) -> None:
    _priv, pub = lab
    attacker_id = _forge(result_file, pub, claim_lab_id=False)
    res = runner.invoke(app, ["verify", str(result_file)])
    assert res.exit_code == 1
    assert f"UNKNOWN key {attacker_id}" in res.stderr
    res = runner.invoke(app, ["verify", str(result_file), "--any-signer"])
    assert res.exit_code == 0, res.output
    assert f"key {attacker_id}" in res.stdout and "not trusted" in res.stdout
    assert "WARNING" in res.stderr and attacker_id in res.stderr


def test_trusted_signer_is_named(result_file: Path, lab: tuple[Path, Path]) -> None:
    priv, pub = lab
    _sign(result_file, priv)
    res = runner.invoke(app, ["keys", "trust", "Test Lab", str(pub)])
    assert res.exit_code == 0, res.output
    kid = signing.key_id(signing.load_public_key(pub))
    res = runner.invoke(app, ["verify", str(result_file)])
    assert res.exit_code == 0, res.output
    assert f"key {kid}" in res.stdout and "signed by Test Lab" in res.stdout
    listed = runner.invoke(app, ["keys", "list"])
    assert f"{kid}  Test Lab" in listed.stdout
    # --pubkey keeps working and needs no trusted-keys file.
    signing.trusted_keys_path().unlink()
    res = runner.invoke(app, ["verify", str(result_file), "--pubkey", str(pub)])
    assert res.exit_code == 0 and f"key {kid}" in res.stdout


def test_trusted_keys_file_is_private(lab: tuple[Path, Path], config_home: Path) -> None:
    _priv, pub = lab
    assert runner.invoke(app, ["keys", "trust", "lab", str(pub)]).exit_code == 0
    path = signing.trusted_keys_path()
    assert path.is_relative_to(config_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    bad = runner.invoke(app, ["keys", "trust", "\x1b]0;evil\x07", str(pub)])
    assert bad.exit_code == 2 and "\x1b" not in bad.output


def test_keys_new_folder_is_private(tmp_path: Path) -> None:
    where = tmp_path / "fresh" / "keys"
    signing.new_keypair(where)
    assert stat.S_IMODE(where.stat().st_mode) == 0o700


def test_shared_private_key_is_refused_in_one_line(
    result_file: Path, lab: tuple[Path, Path]
) -> None:
    priv, _pub = lab
    os.chmod(priv, 0o640)
    res = runner.invoke(app, ["sign", str(result_file), "--key", str(priv)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "chmod 600" in res.stderr


def test_nan_in_a_result_is_one_line_not_a_traceback(
    result_file: Path, lab: tuple[Path, Path]
) -> None:
    priv, _pub = lab
    _sign(result_file, priv)
    value = json.loads(result_file.read_text())
    value["devices"][0]["rating"]["score"] = "NAN_HERE"
    result_file.write_text(json.dumps(value).replace('"NAN_HERE"', "NaN"))
    for args in (["verify", str(result_file)], ["sign", str(result_file), "--key", str(priv)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert res.stderr.count("\n") == 1 and "NaN is not a JSON number" in res.stderr
