"""One file per schema version (``NNNN_*.py``), applied in order."""
