"""Signed results and labels that can be checked against them: the round trip works, and every
kind of tampering (result, envelope, key, label) is caught."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from iotrate.reports import json as json_report
from iotrate.reports import label as lbl
from iotrate.reports.labelcheck import label_problems
from support.labels import fridge, hostile_device, rating, result
from typer.testing import CliRunner

from iotrate import signing
from iotrate.cli import app
from iotrate.errors import UsageError

runner = CliRunner()


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    path = tmp_path / "scan.json"
    r = result([fridge(), fridge(id="x1", vendor="TP-Link", model="Tapo P110", rating=rating("B"))])
    path.write_text(json_report.render(r) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return signing.new_keypair(tmp_path / "keys")


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert signing.canonical_json({"b": 1, "a": [1.5, "é"], "c": None}) == (
        '{"a":[1.5,"é"],"b":1,"c":null}'.encode()
    )
    with pytest.raises(ValueError):
        signing.canonical_json({"x": float("nan")})


def test_digest_of_model_equals_digest_of_written_file(result_file: Path) -> None:
    loaded = signing.load_result(result_file)
    assert signing.result_digest(loaded.result) == loaded.digest
    reindented = json.dumps(json.loads(result_file.read_text()), indent=7)
    result_file.write_text(reindented)
    assert signing.load_result(result_file).digest == loaded.digest


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "dup.json"
    p.write_text('{"a": 1, "a": 2}')
    with pytest.raises(UsageError, match="duplicate"):
        signing.load_json(p)


def test_new_keypair_is_private_and_not_overwritten(tmp_path: Path) -> None:
    priv, pub = signing.new_keypair(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(UsageError, match="exists"):
        signing.new_keypair(tmp_path / "k")
    signing.new_keypair(tmp_path / "k", force=True)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600


def test_group_readable_private_key_is_refused(keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    os.chmod(priv, 0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        signing.load_private_key(priv)


def test_sign_verify_round_trip(result_file: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    value = signing.load_result(result_file).value
    env = signing.sign_value(value, signing.load_private_key(priv))
    assert env["result_sha256"] == signing.digest(value)
    assert signing.verify_envelope(value, env) == []
    assert signing.verify_envelope(value, env, trusted=signing.load_public_key(pub)) == []


def test_tampered_result_fails(result_file: Path, keys: tuple[Path, Path]) -> None:
    value = signing.load_result(result_file).value
    env = signing.sign_value(value, signing.load_private_key(keys[0]))
    value["devices"][0]["rating"]["grade"] = "A"
    problems = signing.verify_envelope(value, env)
    assert any("changed" in p for p in problems)


def test_tampered_envelope_fails(result_file: Path, keys: tuple[Path, Path]) -> None:
    value = signing.load_result(result_file).value
    env = signing.sign_value(value, signing.load_private_key(keys[0]))
    env["signed_at"] = "2020-01-01T00:00:00+00:00"
    assert signing.verify_envelope(value, env) == ["the signature does not match the envelope"]


def test_other_key_fails(result_file: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    value = signing.load_result(result_file).value
    env = signing.sign_value(value, signing.load_private_key(keys[0]))
    _, other_pub = signing.new_keypair(tmp_path / "other")
    problems = signing.verify_envelope(value, env, trusted=signing.load_public_key(other_pub))
    assert any("not by the trusted key" in p for p in problems)


def test_label_matches_its_result_only(result_file: Path, tmp_path: Path) -> None:
    loaded = signing.load_result(result_file)
    dev = loaded.result.devices[0]
    svg = lbl.device_label(dev, loaded.result, digest=loaded.digest)
    assert label_problems(svg, loaded.result, loaded.digest) == []
    sticker = lbl.device_label(dev, loaded.result, digest=loaded.digest, size="sticker")
    assert label_problems(sticker, loaded.result, loaded.digest) == []

    other = result([fridge(rating=rating("F"))])
    wrong = lbl.device_label(other.devices[0], other)
    problems = label_problems(wrong, loaded.result, loaded.digest)
    assert any("different result" in p for p in problems)
    assert any("grade F" in p for p in problems)

    forged_qr = svg.replace('class="qr"', 'class="qr" data-x="1"').replace("M0 0h7", "M0 0h6")
    assert any("QR" in p for p in label_problems(forged_qr, loaded.result, loaded.digest))


def test_hostile_device_id_round_trips_through_label_metadata(tmp_path: Path) -> None:
    r = result([hostile_device()])
    digest = signing.result_digest(r)
    svg = lbl.device_label(r.devices[0], r, digest=digest)
    assert label_problems(svg, r, digest) == []


# --- the commands -----------------------------------------------------------------------------


def test_cli_keys_sign_verify(result_file: Path, tmp_path: Path) -> None:
    kdir = tmp_path / "lab-keys"
    res = runner.invoke(app, ["keys", "new", "--dir", str(kdir)])
    assert res.exit_code == 0, res.output
    key = kdir / signing.PRIVATE_KEY_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert runner.invoke(app, ["keys", "new", "--dir", str(kdir)]).exit_code == 2

    res = runner.invoke(app, ["sign", str(result_file), "--key", str(key)])
    assert res.exit_code == 0, res.output
    sig = signing.signature_path(result_file)
    assert json.loads(sig.read_text())["type"] == "iotrate-signature"

    labels = tmp_path / "labels"
    res = runner.invoke(app, ["label", str(result_file), "--out", str(labels), "--format", "svg"])
    assert res.exit_code == 0, res.output
    svgs = sorted(labels.glob("*.svg"))
    assert len(svgs) == 2

    pub = kdir / signing.PUBLIC_KEY_NAME
    args = ["verify", str(result_file), "--pubkey", str(pub)]
    res = runner.invoke(app, [*args, *(x for s in svgs for x in ("--label", str(s)))])
    assert res.exit_code == 0, res.output
    assert "signature valid" in res.output

    # A label from another result does not verify against this one.
    other = tmp_path / "other.json"
    other.write_text(json_report.render(result([fridge(rating=rating("A"))])))
    runner.invoke(app, ["label", str(other), "--out", str(tmp_path / "o"), "--format", "svg"])
    (wrong,) = (tmp_path / "o").glob("*.svg")
    res = runner.invoke(app, [*args, "--label", str(wrong)])
    assert res.exit_code == 1
    assert "different result" in res.output

    # Something that is not an iotrate label is invalid, not a usage error.
    junk = tmp_path / "junk.svg"
    junk.write_text("<svg><script>alert(1)</script>")
    res = runner.invoke(app, [*args, "--label", str(junk)])
    assert res.exit_code == 1 and "well-formed" in res.output

    # A changed result fails; so does a missing signature.
    text = result_file.read_text().replace('"grade": "G"', '"grade": "A"', 1)
    result_file.write_text(text)
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "changed" in res.output
    sig.unlink()
    assert runner.invoke(app, ["verify", str(result_file)]).exit_code == 1


def test_cli_verify_usage_errors(tmp_path: Path) -> None:
    assert runner.invoke(app, ["verify", str(tmp_path / "missing.json")]).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert runner.invoke(app, ["verify", str(bad)]).exit_code == 2
    assert runner.invoke(app, ["verify"]).exit_code == 2
