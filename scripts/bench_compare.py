#!/usr/bin/env python3
"""Side-by-side table of sipcti and its peer (scripts/bench.sh --peer).

Reads OUT/runs.tsv (one line per run, tab-separated `key=value` fields, some
holding several space-separated `key=value`) and OUT/findmax.tsv (proxy, best
rate, first failing rate), prints one table:

  CPU per call (whole run, and its steady part from --steady-from) and
      RSS: the runs at the measured rate (the --repeat runs,
      named *-measure-*, passed or not: how many passed is shown; without
      them the --find-max runs at that rate that passed), median [min-max, n];
  INVITE delay: the capture passes (sipcti with Zammad, or proxy only with
      --no-zammad; the peer's pass);
  max calls/s: --find-max;
  the rest of the machine: the double's and SIPp's CPU per call in the same
      runs, the call rate SIPp alone could drive on all CPUs, and (with
      --find-max) the CPU per call that 1.5 x the peer's highest rate would
      leave for the proxy and the double together (the issue 11 target).

Usage: bench_compare.py OUT MEASURE_RATE ZAMMAD(0|1) PEER
"""
import os
import statistics
import sys


def load_runs(path):
    runs = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 2:
            continue
        d = {"name": f[1]}
        for x in f[2:]:
            for y in x.split(" "):
                if "=" in y:
                    k, v = y.split("=", 1)
                    d.setdefault(k.split(":")[-1], v)
        runs.append(d)
    return runs


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def spread(vals, fmt="%.0f"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt % m
    return (fmt + " [" + fmt + "-" + fmt + ", n=%d]") % (m, min(vals), max(vals), len(vals))


def main():
    out, rate, zammad, peer = sys.argv[1:5]
    runs = load_runs(os.path.join(out, "runs.tsv"))
    fm = {}
    p = os.path.join(out, "findmax.tsv")
    if os.path.exists(p):
        for line in open(p):
            k, good, bad = line.split()
            fm[k] = good
    procs = ["sipcti", peer]

    def measured(proxy):
        rs = [r for r in runs if r.get("proxy") == proxy and "-measure-" in r["name"]]
        if not rs:
            rs = [r for r in runs if r.get("proxy") == proxy and r.get("rate") == rate
                  and r.get("pass") == "1" and "-latency-" not in r["name"]]
        return rs

    m = {p: measured(p) for p in procs}
    lat_name = {"sipcti": "-latency-zammad-" if zammad == "1" else "-latency-proxyonly-",
                peer: "-latency-%s-" % peer}
    lat = {p: [r for r in runs if r.get("proxy") == p and lat_name[p] in r["name"]] for p in procs}

    rows = [
        ("proxy CPU per call, us", [spread([num(r.get("cpu_us_call")) for r in m[p]]) for p in procs]),
        ("  ratio sipcti / %s (medians)" % peer, ["", ""]),
        ("proxy CPU per call, steady part of the run, us",
         [spread([num(r.get("cpu_us_call_steady")) for r in m[p]]) for p in procs]),
        ("  ratio sipcti / %s (medians)" % peer, ["", ""]),
        ("  load average at the runs' start", [spread([num(r.get("load")) for r in m[p]], "%.1f") for p in procs]),
        ("  calls/s reached (SIPp CallRate)", [spread([num(r.get("cps")) for r in m[p]]) for p in procs]),
        ("  runs that passed / runs", ["%d/%d" % (sum(r.get("pass") == "1" for r in m[p]), len(m[p])) for p in procs]),
        ("  failed calls per run", [",".join(r.get("failed", "?") for r in m[p]) or "-" for p in procs]),
    ]
    a = [num(r.get("cpu_us_call")) for r in m["sipcti"]]
    b = [num(r.get("cpu_us_call")) for r in m[peer]]
    a, b = [x for x in a if x], [x for x in b if x]
    if a and b:
        rows[1] = (rows[1][0], ["%.2f" % (statistics.median(a) / statistics.median(b)), ""])
    a = [num(r.get("cpu_us_call_steady")) for r in m["sipcti"]]
    b = [num(r.get("cpu_us_call_steady")) for r in m[peer]]
    a, b = [x for x in a if x], [x for x in b if x]
    if a and b:
        rows[3] = (rows[3][0], ["%.2f" % (statistics.median(a) / statistics.median(b)), ""])
    for key, label in (("p50_ms", "INVITE delay p50, ms"),
                       ("p99_ms", "INVITE delay p99 (whole run), ms"),
                       ("max_ms", "INVITE delay max, ms"),
                       ("first1s_p99_ms", "  p99 in the first second of load, ms"),
                       ("first1s_max_ms", "  max in the first second of load, ms"),
                       ("after1s_p99_ms", "  p99 after the first second, ms"),
                       ("over10ms", "  calls delayed > 10 ms")):
        rows.append((label, [", ".join(r.get(key, "-") for r in lat[p]) or "-" for p in procs]))
    if fm:
        rows.append(("max calls/s with zero failed calls (--find-max)", [fm.get(p, "-") for p in procs]))
    # what the rest of the machine costs per call: the load generator
    # (SIPp as phone and trunk) and, for sipcti, the Zammad double
    def per_call(r, key):
        c, ok = num(r.get(key)), num(r.get("ok"))
        return c * 1e6 / ok if c is not None and ok else None

    def sipp(r):
        u, s = per_call(r, "sipp_uac"), per_call(r, "sipp_uas")
        return u + s if u is not None and s is not None else None

    rows.append(("the Zammad double's CPU per call, us",
                 [spread([per_call(r, "double") for r in m["sipcti"]]) if zammad == "1" else "-", "-"]))
    rows.append(("load generator (SIPp phone + trunk) CPU per call, us",
                 [spread([sipp(r) for r in m[p]]) for p in procs]))
    gen = [x for x in (sipp(r) for r in m[peer]) if x]
    cpus = os.cpu_count() or 1
    if gen:
        g = statistics.median(gen)
        rows.append(("  %d CPUs / that: calls/s SIPp alone could drive" % cpus,
                     ["", "%.0f" % (cpus * 1e6 / g)]))
        if peer in fm and num(fm[peer]):
            target = 1.5 * num(fm[peer])
            left = cpus * 1e6 / target - g
            rows.append(("  at 1.5 x the peer's max (%.0f calls/s): CPU left per call for proxy + double, us" % target,
                         ["%.0f" % left, ""]))
    rows.append(("peak RSS, MB (%s: sum of VmHWM)" % peer, [spread([num(r.get("rss_mb")) for r in m[p]], "%.1f") for p in procs]))
    rows.append(("PSS at the end of a run, MB", [spread([num(r.get("pss_mb")) for r in m[p]], "%.1f") for p in procs]))

    heads = ["sipcti (%s)" % ("Zammad double" if zammad == "1" else "events on stdout"), peer]
    w = max(len(r[0]) for r in rows)
    cw = [max(len(heads[i]), *(len(r[1][i]) for r in rows)) for i in range(2)]
    print("side by side at %s calls/s (CPU, RSS: runs at that rate; delay: the capture passes):" % rate)
    print("  %-*s  %-*s  %s" % (w, "", cw[0], heads[0], heads[1]))
    for label, vals in rows:
        print("  %-*s  %-*s  %s" % (w, label, cw[0], vals[0], vals[1]))


if __name__ == "__main__":
    main()
