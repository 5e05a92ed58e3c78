"""The rating scheme as versioned data, installed as ``iotrate.rating_schema``."""

from pathlib import Path

SCHEME_DIR = Path(__file__).resolve().parent
