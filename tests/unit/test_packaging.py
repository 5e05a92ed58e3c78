"""The wheel installs probes/, reports/ and rating_schema/ inside the iotrate package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_no_top_level_probes_or_reports(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("iotrate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"iotrate", *{t for t in tops if t.endswith((".dist-info", ".data"))}}, tops
    assert "iotrate/probes/__init__.py" in names
    assert "iotrate/reports/__init__.py" in names
    assert "iotrate/rating_schema/__init__.py" in names
    assert "iotrate/schemas/scan-result.schema.json" in names
    assert "iotrate/data/ports.yaml" in names
    assert "iotrate/lab/devices.yaml" in names
    assert not any(n.startswith(("probes/", "reports/", "rating_schema/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "iotrate = iotrate.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
