"""The probe runner's heap trimmer, which the scale lab needs: cycles that hold native memory are
collected on its schedule, not only at the collector's own full collections."""

from __future__ import annotations

import pytest


class _Node:
    """A reference cycle's member (weakref-able), standing for a finished TLS scan's objects."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def test_the_heap_trimmer_collects_cycles_on_its_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why it matters at scale: cycles that hold native memory piled up between the
    collector's own full collections (benchmarks/README.md, "Scale")."""
    import gc
    import weakref

    from iotrate import probing

    def cycle() -> weakref.ref[_Node]:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    trimmer = probing._HeapTrimmer()
    gc.disable()  # only the trimmer may collect here
    try:
        ref = cycle()
        trimmer.maybe_trim()  # just made: within the first interval, nothing collected
        assert ref() is not None
        trimmer._last -= probing._TRIM_EVERY_S  # at most one look a second
        trimmer._last_collect -= probing._COLLECT_EVERY_S
        trimmer.maybe_trim()
        assert ref() is None
        # An expensive collection stretches the interval to keep its share of the time small.
        trimmer._collect_cost = 1.0
        trimmer._last = trimmer._last_collect = trimmer._last_collect - 10.0
        ref = cycle()
        trimmer.maybe_trim()
        assert ref() is not None  # 10 s < 1 s / 5 %
        trimmer._last = trimmer._last_collect = trimmer._last_collect - 15.0
        trimmer.maybe_trim()
        assert ref() is None
    finally:
        gc.enable()
