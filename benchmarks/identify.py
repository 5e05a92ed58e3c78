"""Identification accuracy on recorded observations of real devices.

Usage::

    python -m benchmarks.identify [OBSERVATIONS TRUTH] [--split SEED] [--half first|second]
        [--threshold 0.7] [--details] [--json]

Without files it scores two sets separately: the network devices of
``../shared/fixtures/observations.jsonl`` / ``truth.jsonl`` and the Bluetooth LE devices of
``../shared/fixtures/ble/`` (when present). Prints category and vendor accuracy and the number
of confident (confidence >= threshold) wrong answers for each. Scoring: tv~streamer,
plug~switch, nas~media-server and thermometer~sensor count as the same answer; vendors are
compared after the product's own normalisation, case- and punctuation-insensitively; a device
whose truth has no vendor, or names none ("generic (iTAG)"), is not counted for vendor
accuracy. An answer is "confidently wrong" when
its confidence is at or above the threshold and its category, or its named vendor, is wrong.

``--eval`` also scores the evaluation corpus of ``benchmarks/data/identify-eval/`` (public test
captures of real devices that no rule was written from; ``SOURCES.md`` there), one line per
source, and every run prints the reliability table: how often the answer is right in each
confidence bin (right = category and, where the truth names one, vendor).

``--split SEED --half first|second`` scores one half of a seeded random split of the devices,
for checking rules written while looking at one half against the other.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from iotrate.identify import identify, read_observations
from iotrate.identify.claims import family
from iotrate.identify.vendors import vendor_key, vendor_table
from iotrate.models import Identity

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OBS = ROOT.parent / "shared" / "fixtures" / "observations.jsonl"
DEFAULT_TRUTH = ROOT.parent / "shared" / "fixtures" / "truth.jsonl"
BLE_OBS = ROOT.parent / "shared" / "fixtures" / "ble" / "observations.jsonl"
BLE_TRUTH = ROOT.parent / "shared" / "fixtures" / "ble" / "truth.jsonl"
EVAL_DIR = ROOT / "benchmarks" / "data" / "identify-eval"
BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 1.01))  # the last bin is ">= 0.8"
CONFIDENT = 0.7
TARGET_CATEGORY = 0.95
TARGET_VENDOR = 0.90
TARGET_BLE_CATEGORY = 0.90  # issue 8: >= 90 % category and vendor, no confident wrong answer
NO_VENDOR = {"generic", "unknown", "none", ""}


@dataclass
class Score:
    devices: int = 0
    category_right: int = 0
    vendor_total: int = 0
    vendor_right: int = 0
    confident_wrong: int = 0
    threshold: float = CONFIDENT
    target_category: float = TARGET_CATEGORY
    seconds: float = 0.0
    rows: list[dict[str, object]] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)

    @property
    def category_accuracy(self) -> float:
        return self.category_right / self.devices if self.devices else 0.0

    @property
    def vendor_accuracy(self) -> float:
        return self.vendor_right / self.vendor_total if self.vendor_total else 0.0

    def meets_targets(self) -> bool:
        return (
            not self.read_errors
            and self.category_accuracy >= self.target_category
            and self.vendor_accuracy >= TARGET_VENDOR
            and self.confident_wrong == 0
        )


def same_category(predicted: str, truth: str) -> bool:
    return family(predicted) == family(truth)


def same_vendor(predicted: str | None, truth: str) -> bool:
    if predicted is None:
        return False
    table = vendor_table()
    return vendor_key(table.normalise(predicted) or predicted) == vendor_key(
        table.normalise(truth) or truth
    )


def names_no_vendor(truth: str) -> bool:
    """A truth vendor such as "generic (iTAG)" says the product has no maker to name."""
    return vendor_key(vendor_table().normalise(truth) or truth) in NO_VENDOR


def load_truth(path: Path) -> dict[str, dict[str, str]]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["device"])] = row
    return out


def select(devices: list[str], seed: int | None, half: str | None) -> set[str]:
    if seed is None or half is None:
        return set(devices)
    order = sorted(devices)
    random.Random(seed).shuffle(order)
    cut = len(order) // 2
    return set(order[:cut] if half == "first" else order[cut:])


def score(
    obs_path: Path,
    truth_path: Path,
    threshold: float = CONFIDENT,
    seed: int | None = None,
    half: str | None = None,
) -> Score:
    truth = load_truth(truth_path)
    with obs_path.open(encoding="utf-8") as fh:
        read = read_observations(fh)
    keep = select(list(truth), seed, half)
    started = time.perf_counter()
    results: dict[str, Identity] = dict(identify(o for o in read.observations if o.device in keep))
    s = Score(threshold=threshold, seconds=time.perf_counter() - started)
    s.read_errors = [str(e) for e in read.errors]
    for device in sorted(keep):
        t = truth[device]
        ident = results.get(device)
        category = ident.category if ident else "other"
        vendor = ident.vendor if ident else None
        confidence = ident.confidence if ident else 0.0
        cat_ok = same_category(category, t["category"])
        s.devices += 1
        s.category_right += cat_ok
        vendor_ok = None
        if t.get("vendor") and not names_no_vendor(t["vendor"]):
            s.vendor_total += 1
            vendor_ok = same_vendor(vendor, t["vendor"])
            s.vendor_right += vendor_ok
        wrong = not cat_ok or (vendor is not None and vendor_ok is False)
        if wrong and confidence >= threshold:
            s.confident_wrong += 1
        s.rows.append(
            {
                "device": device,
                "category": category,
                "truth_category": t["category"],
                "vendor": vendor,
                "truth_vendor": t.get("vendor"),
                "confidence": confidence,
                "category_ok": cat_ok,
                "vendor_ok": vendor_ok,
            }
        )
    return s


def eval_sets() -> list[tuple[str, Path, Path, float]]:
    """The evaluation corpus, one set per source; ``ble-*`` sources are Bluetooth LE."""
    out = []
    for obs in sorted(EVAL_DIR.glob("*.observations.jsonl")):
        name = obs.name.removesuffix(".observations.jsonl")
        truth = obs.with_name(f"{name}.truth.jsonl")
        target = TARGET_BLE_CATEGORY if name.startswith("ble-") else TARGET_CATEGORY
        out.append((f"eval:{name}", obs, truth, target))
    return out


def right(row: dict[str, object]) -> bool:
    return bool(row["category_ok"]) and row["vendor_ok"] is not False


def reliability(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Accuracy per confidence bin: what a confidence of 0.8 is worth in practice."""
    table = []
    for low, high in BINS:
        inside = [r for r in rows if low <= float(str(r["confidence"])) < high]
        ok = sum(right(r) for r in inside)
        table.append(
            {
                "bin": f">= {low:g}" if high > 1 else f"{low:g}-{high:g}",
                "devices": len(inside),
                "right": ok,
                "accuracy": round(ok / len(inside), 4) if inside else None,
            }
        )
    return table


def print_reliability(rows: list[dict[str, object]], heading: str) -> None:
    print(heading)
    print(f"  {'confidence':>10}  {'devices':>7}  {'right':>5}  accuracy")
    for b in reliability(rows):
        acc = "-" if b["accuracy"] is None else f"{100 * float(str(b['accuracy'])):.1f}%"
        print(f"  {b['bin']:>10}  {b['devices']:>7}  {b['right']:>5}  {acc}")


def print_sources(scores: dict[str, Score]) -> None:
    print(f"{'source':28} {'devices':>7} {'category':>9} {'vendor':>8} {'conf. wrong':>11}")
    for name, s in scores.items():
        print(
            f"{name:28} {s.devices:>7} {100 * s.category_accuracy:>8.1f}% "
            f"{100 * s.vendor_accuracy:>7.1f}% {s.confident_wrong:>11}"
        )


def figures(s: Score) -> dict[str, object]:
    return {
        "devices": s.devices,
        "category_accuracy": round(s.category_accuracy, 4),
        "vendor_accuracy": round(s.vendor_accuracy, 4),
        "vendor_scored": s.vendor_total,
        "confident_wrong": s.confident_wrong,
        "confidence_threshold": s.threshold,
        "seconds": round(s.seconds, 3),
        "input_errors": len(s.read_errors),
        "meets_targets": s.meets_targets(),
    }


def print_score(s: Score, details: bool, heading: str | None = None) -> None:
    if heading:
        print(heading)
    if details:
        for r in s.rows:
            mark = "ok " if r["category_ok"] and r["vendor_ok"] is not False else "BAD"
            print(
                f"{mark} {r['device'][:48]:48} {r['category']:>12} ({r['truth_category']:>12})"
                f"  {str(r['vendor'])[:18]:>18} ({str(r['truth_vendor'])[:18]:>18})"
                f"  {r['confidence']:.2f}"
            )
    for e in s.read_errors:
        print(f"input error: {e}")
    print(f"devices:           {s.devices}")
    print(
        f"category accuracy: {100 * s.category_accuracy:.1f}%  "
        f"(target >= {100 * s.target_category:.0f}%)"
    )
    print(
        f"vendor accuracy:   {100 * s.vendor_accuracy:.1f}%  (target >= 90%, "
        f"{s.vendor_total} devices with a known vendor)"
    )
    print(
        f"confident wrong:   {s.confident_wrong}  (confidence >= {s.threshold:g} and category "
        "or vendor wrong; target 0)"
    )
    print(f"identify time:     {s.seconds:.2f} s")
    print("targets:           " + ("met" if s.meets_targets() else "NOT met"))


def report(scores: dict[str, Score], evals: dict[str, Score], as_json: bool, details: bool) -> None:
    if as_json:
        first = next(iter(scores.values()))
        out = figures(first)
        if "ble" in scores and len(scores) > 1:
            out["ble"] = figures(scores["ble"])
        out["reliability"] = reliability([r for s in scores.values() for r in s.rows])
        if evals:
            out["eval"] = {name: figures(s) for name, s in evals.items()}
            out["eval_reliability"] = reliability([r for s in evals.values() for r in s.rows])
        print(json.dumps(out))
    else:
        headings = {"ip": "Network devices", "ble": "Bluetooth LE devices"}
        for i, (name, s) in enumerate(scores.items()):
            if i:
                print()
            print_score(s, details, headings[name] if len(scores) > 1 else None)
        print()
        print_reliability([r for s in scores.values() for r in s.rows], "Reliability (fixtures)")
        if evals:
            print()
            print_sources(evals)
            if details:
                for s in evals.values():
                    print_score(s, True)
            print()
            rows = [r for s in evals.values() for r in s.rows]
            print_reliability(rows, "Reliability (evaluation corpus)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.identify", description=__doc__)
    ap.add_argument("observations", nargs="?", type=Path, default=None)
    ap.add_argument("truth", nargs="?", type=Path, default=None)
    ap.add_argument("--threshold", type=float, default=CONFIDENT)
    ap.add_argument("--split", type=int, default=None, metavar="SEED")
    ap.add_argument("--half", choices=("first", "second"), default=None)
    ap.add_argument("--details", action="store_true", help="List every device's answer.")
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    ap.add_argument(
        "--eval", action="store_true", help="Also score the evaluation corpus, per source."
    )
    ap.add_argument(
        "--ble", action="store_true", help="Score FILES as Bluetooth LE (90 % category target)."
    )
    args = ap.parse_args(argv)
    sets: list[tuple[str, Path, Path, float]] = []
    if args.observations is not None:
        truth = args.truth or args.observations.with_name("truth.jsonl")
        target = TARGET_BLE_CATEGORY if args.ble else TARGET_CATEGORY
        sets.append(("ble" if args.ble else "ip", args.observations, truth, target))
    else:
        sets.append(("ip", DEFAULT_OBS, DEFAULT_TRUTH, TARGET_CATEGORY))
        if BLE_OBS.is_file() and BLE_TRUTH.is_file():
            sets.append(("ble", BLE_OBS, BLE_TRUTH, TARGET_BLE_CATEGORY))
    scores: dict[str, Score] = {}
    for name, obs, truth, target in sets:
        s = score(obs, truth, args.threshold, args.split, args.half)
        s.target_category = target
        scores[name] = s
    evals: dict[str, Score] = {}
    for name, obs, truth, target in eval_sets() if args.eval else []:
        s = score(obs, truth, args.threshold, args.split, args.half)
        s.target_category = target
        evals[name] = s
    report(scores, evals, args.json, args.details)
    # The evaluation corpus is reported, not a gate: it measures, the fixtures' targets guard.
    return 0 if all(s.meets_targets() for s in scores.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
