#!/usr/bin/env python3
"""Where sipcti allocates: call sites of sampled allocator hits, from a
`perf record -e probe_sipcti:mi_malloc_aligned --call-graph dwarf` file
(scripts/bench.sh --profile allocs writes perf.allocs.data, one sample per
allocation).

For each sample the first frame above the allocator and the standard
library's allocating helpers (Vec/String/Box/format!/clone/collect ...) is
its call site (a generic helper such as `to_vec` or a `fmt` impl is shown
with the first sipcti, hyper, reqwest, tokio or serde_json frame above it).
Prints the share of samples per call site, and per crate.

Usage: bench_allocsites.py perf.allocs.data [TOP]
"""
import collections
import re
import subprocess
import sys

SKIP = re.compile(
    r"^(_?mi_|mi_malloc|__rust_|alloc::|core::|std::|<alloc::|<core::|<std::|hashbrown::raw|"
    r"<hashbrown::raw|bytes::bytes_mut|<bytes::|\[unknown\]|<T as alloc|<str as alloc|<\[T\] as alloc)")


OURS = re.compile(r"(sipcti_|hyper|reqwest|tokio|serde_json)")


def crate_of(sym):
    s = sym.lstrip("<")
    m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)::", s)
    return m.group(1) if m else "?"


def main():
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    p = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "ip,sym"],
                       capture_output=True, text=True, check=True)
    sites = collections.Counter()
    crates = collections.Counter()
    total = 0
    for block in p.stdout.split("\n\n"):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if not lines:
            continue
        total += 1
        site = "?"
        syms = []
        for l in lines:
            parts = l.split(None, 1)
            sym = parts[1] if len(parts) > 1 else "?"
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            sym = re.sub(r" \(.*\)$", "", sym)
            syms.append(sym)
        i = next((k for k, sym in enumerate(syms) if not SKIP.match(sym)), None)
        if i is not None:
            site = syms[i]
            if not OURS.match(site.lstrip("<")):
                # a generic helper (to_vec, fmt, to_string ...): name its caller too
                j = next((k for k in range(i + 1, len(syms)) if OURS.match(syms[k].lstrip("<"))), None)
                if j is not None:
                    site = "%s  <-  %s" % (site, syms[j])
        sites[site] += 1
        crates[crate_of(syms[i] if i is not None else "?")] += 1
    print("%d samples" % total)
    print("\nby crate of the call site:")
    for k, v in crates.most_common():
        print("  %5.1f%%  %s" % (100.0 * v / total, k))
    print("\ntop call sites:")
    for k, v in sites.most_common(top):
        print("  %5.1f%%  %s" % (100.0 * v / total, k[:160]))


if __name__ == "__main__":
    main()
