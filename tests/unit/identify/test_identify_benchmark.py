"""The accuracy targets on the shared real-device fixtures, measured by the benchmark itself."""

from __future__ import annotations

import time

from support.identify import OBSERVATIONS, TRUTH, benchmark_module, shared_or_skip

bench = benchmark_module()
CONFIDENT = bench.CONFIDENT
same_category, same_vendor, score, select = (
    bench.same_category,
    bench.same_vendor,
    bench.score,
    bench.select,
)


def test_benchmark_meets_the_targets() -> None:
    shared_or_skip()
    started = time.perf_counter()
    s = score(OBSERVATIONS, TRUTH)
    assert not s.read_errors
    assert s.devices >= 50
    assert s.category_accuracy >= 0.95, [r for r in s.rows if not r["category_ok"]]
    assert s.vendor_accuracy >= 0.90, [r for r in s.rows if r["vendor_ok"] is False]
    assert s.confident_wrong == 0
    assert s.threshold == CONFIDENT == 0.7
    assert time.perf_counter() - started < 20  # "a few seconds", with room for slow CI


def test_each_half_of_a_random_split_scores_alike() -> None:
    """Rules written while looking at one half must hold on the other."""
    shared_or_skip()
    for half in ("first", "second"):
        s = score(OBSERVATIONS, TRUTH, seed=7, half=half)
        assert s.category_accuracy >= 0.9 and s.vendor_accuracy >= 0.85
        assert s.confident_wrong == 0


def test_scoring_rules() -> None:
    assert same_category("streamer", "tv") and same_category("switch", "plug")
    assert same_category("media-server", "nas") and not same_category("hub", "router")
    assert same_vendor("Samsung", "SAMSUNG ELECTRONICS CO.,LTD")
    assert same_vendor("TP-LINK", "TP-Link") and not same_vendor(None, "x")
    assert select(["a", "b", "c", "d"], 1, "first") | select(["a", "b", "c", "d"], 1, "second") == {
        "a", "b", "c", "d",
    }  # fmt: skip
