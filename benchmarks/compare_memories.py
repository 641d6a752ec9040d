"""Two `owl eval shapes --out` reports side by side, with Fisher's exact test on each count.

    python benchmarks/compare_memories.py outputs/shapes/eval-full.json outputs/shapes/eval-last.json

Prints, for re-entry identity, dynamics following and (when both reports have it) the memory probe on the
rollout's states: correct / total in each report and the two-sided p-value of Fisher's exact test on the 2 x 2 table
(cases counted as independent). Pure Python: the p-value sums the hypergeometric probabilities no larger than the
observed table's.
"""

from __future__ import annotations

import json
import sys
from math import comb


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[a, b], [c, d]]."""
    row, col, n = a + b, a + c, a + b + c + d
    total = comb(n, col)
    p = lambda x: comb(row, x) * comb(n - row, col - x) / total
    observed = p(a)
    return min(1.0, sum(p(x) for x in range(max(0, col - (n - row)), min(row, col) + 1)
                        if p(x) <= observed * (1 + 1e-9)))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    reports = [json.load(open(path))["aggregate"] for path in argv]
    for name in ("reentry", "following", "probe"):
        if not all(name in r for r in reports):
            continue
        (x1, n1), (x2, n2) = [(r[name]["correct"], r[name]["total"]) for r in reports]
        p = fisher_exact(x1, n1 - x1, x2, n2 - x2)
        print(f"{name:10s} {x1}/{n1} ({x1 / n1:.1%})  vs  {x2}/{n2} ({x2 / n2:.1%})   Fisher's exact p = {p:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
