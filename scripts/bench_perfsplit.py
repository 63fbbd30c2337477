#!/usr/bin/env python3
"""Where sipcti's CPU goes, by kind of work, from a `perf record -g` file
(scripts/bench.sh --profile perf writes OUT/NN-profile-perf-*/perf.data).

Each sample is put in the first category whose pattern matches a frame of
its call chain, walking from the leaf (the running function) to the root
(a kernel function with no category of its own counts for the syscall or
fault it runs under),
so an allocation made while parsing counts as "allocator" and a page fault
inside a table insert as "page faults". Also prints the share of samples
below a few entry points (inclusive).

Usage: bench_perfsplit.py perf.data [TIME]
TIME is passed to `perf script --time` (e.g. `0%-25%`: the first quarter of
the recording, to look at the cold start alone).
"""
import collections
import re
import subprocess
import sys

# (category, regex on a frame's symbol), tried in order for each frame
CATEGORIES = [
    ("page faults (first touch, zeroing)", r"exc_page_fault|clear_page|folio_zero"),
    ("UDP send (sendto + loopback delivery)", r"__libc_sendto|__sys_sendto|udp_sendmsg"),
    ("UDP receive (recvfrom)", r"__libc_recvfrom|__sys_recvfrom|udp_recvmsg|recvmsg"),
    ("TCP to Zammad (writev/read, kernel)", r"__GI___writev|do_writev|tcp_sendmsg|tcp_recvmsg|__libc_read\b|ksys_read"),
    ("scheduler wakeups, futex, epoll", r"epoll_wait|futex|__schedule|finish_task_switch|try_to_wake_up|eventfd|__x64_sys_write\b"),
    ("allocator (mimalloc)", r"^_?mi_|mi_malloc|mi_free|mi_page|mi_theap|mi_heap|__rust_alloc|__rust_dealloc|__rust_realloc"),
    ("memcpy/memmove/memcmp", r"__memmove|__memcpy|__memcmp|__memset|memchr"),
    ("HTTP client (hyper, reqwest, http, url)", r"hyper::|reqwest::|http::|url::|h2::|httparse"),
    ("JSON (serde_json)", r"serde_json|serde::"),
    ("SIP parsing (sipcti_wire)", r"sipcti_wire::"),
    ("call tracker (sipcti_dialog)", r"sipcti_dialog::"),
    ("CTI client (sipcti_cti)", r"sipcti_cti::"),
    ("proxy core (sipcti_core)", r"sipcti_core::"),
    ("edge (sipcti_proxy, sipcti_transport)", r"sipcti_proxy::|sipcti_transport::"),
    ("hashing (SipHash)", r"core::hash::sip|Hasher|hashbrown"),
    ("formatting, strings", r"core::fmt|alloc::fmt|alloc::string|from_utf8"),
    ("tokio runtime", r"tokio::|mio::"),
]
# last resort for a chain no category matched
FALLBACK = [("kernel, other", re.compile(r"^[a-z_0-9.]+$"))]
ENTRIES = [
    ("run_loop (the core task)", r"sipcti_proxy::runtime::run_loop"),
    ("  ProxyCore::handle_received", r"ProxyCore::handle_received"),
    ("    ProxyCore::on_request", r"ProxyCore::on_request"),
    ("    ProxyCore::on_response", r"ProxyCore::on_response"),
    ("  ProxyCore::handle_cti_answer", r"ProxyCore.*::handle_cti_answer"),
    ("  drain_outputs (UDP sends inline)", r"runtime::drain_outputs"),
    ("  CallTracker::on_message", r"CallTracker::on_message"),
    ("  create_server_tx", r"create_server_tx"),
    ("  start_client_tx", r"start_client_tx"),
    ("  SipMessage parse/index", r"SipMessage::(parse|index_head)"),
    ("udp_loop (socket task)", r"sipcti_transport::net::udp_loop"),
    ("CTI client (deliver_head + hyper)", r"sipcti_cti::client::deliver_head|hyper::proto::h1::dispatch"),
    ("newCall waiter tasks (runtime spawn)", r"runtime::drain_outputs::\{\{closure\}\}::\{\{closure\}\}"),
]


def main():
    extra = ["--time", sys.argv[2]] if len(sys.argv) > 2 else []
    p = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "comm,tid,ip,sym"] + extra,
                       capture_output=True, text=True, check=True)
    cats = [(n, re.compile(r)) for n, r in CATEGORIES]
    ents = [(n, re.compile(r)) for n, r in ENTRIES]
    count = collections.Counter()
    incl = collections.Counter()
    threads = collections.Counter()
    total = 0
    for block in p.stdout.split("\n\n"):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if not lines:
            continue
        total += 1
        threads[lines[0].split()[0]] += 1
        frames = []
        for l in lines[1:]:
            parts = l.split(None, 1)
            sym = parts[1] if len(parts) > 1 else "?"
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            sym = re.sub(r" \(.*\)$", "", sym)
            frames.append(sym)
        cat = "other (no symbol)"
        for table in (cats, FALLBACK):
            hit = None
            for f in frames:
                hit = next((n for n, r in table if r.search(f)), None)
                if hit:
                    break
            if hit:
                cat = hit
                break
        count[cat] += 1
        for n, r in ents:
            if any(r.search(f) for f in frames):
                incl[n] += 1
    print("%d samples" % total)
    print("by thread name: " + ", ".join("%s %.1f%%" % (k, 100.0 * v / total) for k, v in threads.most_common()))
    print("\nby kind of work (self, first matching frame from the leaf):")
    for k, v in count.most_common():
        print("  %5.1f%%  %s" % (100.0 * v / total, k))
    print("\nbelow these entry points (inclusive):")
    for n, _ in ENTRIES:
        print("  %5.1f%%  %s" % (100.0 * incl[n] / total, n))


if __name__ == "__main__":
    main()
