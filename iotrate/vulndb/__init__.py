"""The embedded-component vulnerability dataset: :mod:`.lookup` reads it and judges a banner's
version against it, :mod:`.importer` refreshes it offline from CVE, NVD and KEV files, and
:mod:`.versions` orders version strings for both. The importer builds on the lookup, never
the reverse.

The names below are the ones the probes and the CLI use; new code imports from the module
that defines a name.
"""

from __future__ import annotations

from .importer import UpdateReport, seed_directory, update_dataset
from .lookup import (
    ENV_DIR,
    Assessment,
    CveMatch,
    Sighting,
    VulnDataError,
    VulnDB,
    data_dir,
    load,
    packaged_dir,
)
from .versions import compare_versions, version_key

__all__ = [
    "ENV_DIR",
    "Assessment",
    "CveMatch",
    "Sighting",
    "UpdateReport",
    "VulnDB",
    "VulnDataError",
    "compare_versions",
    "data_dir",
    "load",
    "packaged_dir",
    "seed_directory",
    "update_dataset",
    "version_key",
]
