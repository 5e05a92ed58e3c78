"""``python -m iotrate`` is the same program as the ``iotrate`` console script.

Every other test runs the console script (``support.executables.IOTRATE``); this one keeps
``iotrate/__main__.py`` covered.
"""

from __future__ import annotations

import subprocess
import sys

from support.executables import IOTRATE


def test_python_dash_m_runs_the_same_cli_as_the_console_script() -> None:
    as_module = subprocess.run(
        [sys.executable, "-m", "iotrate", "--version"], capture_output=True, text=True, timeout=60
    )
    as_script = subprocess.run([IOTRATE, "--version"], capture_output=True, text=True, timeout=60)
    assert as_module.returncode == 0, as_module.stderr
    assert as_module.stdout == as_script.stdout and as_module.stdout.strip()
