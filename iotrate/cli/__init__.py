"""The ``iotrate`` command line: :mod:`iotrate.cli.main` builds the application from one module
per command group; :mod:`iotrate.cli.console` holds what they share (exit codes, errors)."""

from iotrate.cli.main import app, main

__all__ = ["app", "main"]
