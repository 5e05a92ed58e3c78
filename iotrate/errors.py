"""One error tree for the whole tool, so the CLI can map each kind to its exit code.

Library code raises these and never calls ``sys.exit``; only ``iotrate.cli`` turns them into
exit codes (2 for a usage error or a refused target, 3 for a runtime failure).
"""


class IotrateError(Exception):
    """Base of every error iotrate raises on purpose."""


class UsageError(IotrateError):
    """The user asked for something malformed; exit code 2."""


class TargetRefused(UsageError):
    """A target is outside what iotrate scans without an explicit opt-in; exit code 2."""


class RuntimeFailure(IotrateError):
    """Something outside the user's input went wrong (no privileges, missing tool); exit 3."""


class LabError(RuntimeFailure):
    """The reference lab could not be built, inspected or torn down."""
