#!/usr/bin/env python3
"""Per-call counts from a `perf stat -x ';'` file (scripts/bench.sh --profile
syscalls|allocs): every non-zero counter divided by the successful calls,
most frequent first (task-clock stays in ms over the run).

Usage: bench_perfstat.py PERF_STAT_FILE SUCCESSFUL_CALLS
"""
import sys


def main():
    path, calls = sys.argv[1], max(1, int(sys.argv[2]))
    rows = []
    for line in open(path):
        f = line.strip().split(";")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            v = float(f[0])
        except ValueError:
            continue
        if v > 0:
            rows.append((v, f[2]))
    rows.sort(key=lambda r: (r[1] != "task-clock", -r[0]))
    print("%d successful calls; per call, then the total (task-clock: ms over the run)" % calls)
    for v, name in rows:
        print("%12.2f  %-44s %d" % (v if name == "task-clock" else v / calls, name, v))


if __name__ == "__main__":
    main()
