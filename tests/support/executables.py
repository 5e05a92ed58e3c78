"""Where the ``iotrate`` program is, for tests and benchmarks that run it as a user would.

One place, so running the suite against another installation means changing one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The console script installed with the interpreter running the tests, not the first
#: ``iotrate`` on PATH: under ``sudo`` or ``ip netns exec`` PATH may lead to another one.
IOTRATE = str(Path(sys.executable).with_name("iotrate"))
