#!/usr/bin/env python3
"""The proxy's CPU per call in the steady part of a bench run (scripts/bench.sh).

Usage: bench_steady.py CPU_TXT UAC_CSV T0 FROM_S CPU_END OK_END HZ

CPU_TXT: lines "epoch_seconds cpu_ticks" sampled (every ~0.25 s) while SIPp
ran; UAC_CSV: SIPp's per-second statistics (-trace_stat -fd 1, ';'
separated, CurrentTime "date<TAB>time<TAB>epoch", SuccessfulCall(C));
T0: SIPp's start (epoch seconds); FROM_S: where the window starts, seconds
after T0; CPU_END: the proxy's ticks after SIPp ended; OK_END: SIPp's
successful calls at the end; HZ: clock ticks per second.

Prints microseconds of proxy CPU per call completed in the window from the
first CPU sample at or after T0 + FROM_S to the end (successful calls at
the window's start interpolated from SIPp's per-second lines), or "nan"
when the run is too short or the files are missing.
"""
import sys


def main():
    cpu_txt, csv, t0, from_s, cpu_end, ok_end, hz = sys.argv[1:8]
    t0, from_s, cpu_end, ok_end, hz = float(t0), float(from_s), float(cpu_end), float(ok_end), float(hz)
    try:
        samples = [tuple(map(float, l.split())) for l in open(cpu_txt) if len(l.split()) == 2]
        rows = [l.rstrip("\n").split(";") for l in open(csv) if l.strip()]
    except OSError:
        print("nan")
        return
    start = next(((t, c) for t, c in samples if t >= t0 + from_s), None)
    if start is None or len(rows) < 3:
        print("nan")
        return
    h = rows[0]
    try:
        ti, oi = h.index("CurrentTime"), h.index("SuccessfulCall(C)")
        pts = [(float(r[ti].split("\t")[-1]), float(r[oi])) for r in rows[1:]]
    except (ValueError, IndexError):
        print("nan")
        return
    # successful calls at the window's start, linearly between SIPp's lines
    ok_start = None
    for (ta, oa), (tb, ob) in zip(pts, pts[1:]):
        if ta <= start[0] <= tb and tb > ta:
            ok_start = oa + (ob - oa) * (start[0] - ta) / (tb - ta)
            break
    calls = ok_end - ok_start if ok_start is not None else 0
    if calls <= 0:
        print("nan")
        return
    print("%.1f" % ((cpu_end - start[1]) / hz / calls * 1e6))


if __name__ == "__main__":
    main()
