"""Fixtures and helpers for the tests, one module per area (``support.probes``, ``support.web``…).

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml, and the benchmarks add it), so
a test anywhere under ``tests/`` imports them as ``from support.probes import …``.
"""
