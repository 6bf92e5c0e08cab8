#!/usr/bin/env python3
"""Sum the per-test costs that `MOORAGE_TEST_COST_LOG=FILE make test` wrote, per module:
wall seconds, pytest's own CPU, the CPU of the processes the tests started and reaped, and
the CPU of the servers they stopped (read just before the signal; overlaps the previous
figure for servers stopped with SIGTERM, whose workers the server reaps). Usage:
scripts/test-costs.py FILE [N] (the N costliest modules by wall time, 40 by default)."""

from __future__ import annotations

import collections
import sys


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    sums: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
    for line in open(path):
        nodeid, *costs = line.rstrip("\n").split("\t")
        module = nodeid.split("::", 1)[0]
        for i, value in enumerate(costs[:4]):  # logs written before the fourth had three
            sums[module][i] += float(value)
        sums[module][4] += 1
    total = [sum(v[i] for v in sums.values()) for i in range(4)]
    print(f"{'module':60} {'tests':>5} {'wall s':>8} {'cpu s':>7} {'child s':>8} {'server s':>8}")
    for module, (wall, own, children, servers, tests) in sorted(sums.items(),
                                                                key=lambda kv: -kv[1][0])[:count]:
        print(f"{module:60} {int(tests):5d} {wall:8.1f} {own:7.1f} {children:8.1f} {servers:8.1f}")
    print(f"{'all ' + str(len(sums)) + ' modules':60} {'':5} {total[0]:8.1f} {total[1]:7.1f} "
          f"{total[2]:8.1f} {total[3]:8.1f}")


if __name__ == "__main__":
    main()
