"""Rebuild ``iotrate/data/oui.tsv.gz`` from the IEEE registry CSV files.

Usage::

    python -m iotrate.identify.refresh_oui /usr/share/ieee-data/oui.csv [OUT]

Given ``oui.csv`` it also reads ``mam.csv``, ``oui36.csv`` and ``iab.csv`` from the same
directory when they exist (Debian's ``ieee-data`` ships all four; ``update-ieee-data`` or the
IEEE site at https://standards-oui.ieee.org/ refreshes them). The output keeps only what lookup
needs - the assignment prefix and the organisation name - sorted, so a refresh diffs cleanly.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterable
from pathlib import Path

COMPANIONS = ("mam.csv", "oui36.csv", "iab.csv")
HEADER = (
    "# IEEE MAC address registry (MA-L, MA-M, MA-S, IAB): prefix<TAB>organisation\n"
    "# Derived from the IEEE Registration Authority's public CSV files.\n"
)


def read_registry(paths: Iterable[Path]) -> dict[str, str]:
    """Prefix (upper-case hex) -> organisation; private and unnamed assignments are dropped."""
    table: dict[str, str] = {}
    for path in paths:
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            for row in csv.reader(fh):
                if len(row) < 3 or row[0] == "Registry":
                    continue
                prefix = row[1].strip().upper()
                org = " ".join(row[2].split())
                if not prefix or not org or org.lower() == "private":
                    continue
                if not all(c in "0123456789ABCDEF" for c in prefix) or len(prefix) not in (6, 7, 9):
                    continue
                table[prefix] = org.replace("\t", " ")
    return table


def render(table: dict[str, str], source: str) -> bytes:
    buf = io.StringIO()
    buf.write(HEADER)
    buf.write(f"# source: {source}\n")
    for prefix in sorted(table):
        buf.write(f"{prefix}\t{table[prefix]}\n")
    # mtime=0: the same registry always gives the same bytes.
    return gzip.compress(buf.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def default_output() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "oui.tsv.gz"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if args else 2
    oui = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else default_output()
    if not oui.is_file():
        print(f"refresh_oui: no such file: {oui}", file=sys.stderr)
        return 2
    paths = [oui, *(p for name in COMPANIONS if (p := oui.parent / name).is_file())]
    table = read_registry(paths)
    if len(table) < 1000:
        print(f"refresh_oui: only {len(table)} entries in {oui}; refusing", file=sys.stderr)
        return 3
    stamp = oui.parent / ".lastupdate"
    source = ", ".join(p.name for p in paths)
    if stamp.is_file():
        source += f" (ieee-data .lastupdate {stamp.read_text().strip()})"
    out.write_bytes(render(table, source))
    print(f"wrote {len(table)} prefixes to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
