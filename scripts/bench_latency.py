#!/usr/bin/env python3
"""Per-call INVITE forwarding latency of the proxy, from a loopback capture.

Input (stdin): tshark fields `frame.time_epoch|ip.src|ip.dst|sip.Method|sip.Call-ID`
(one line per frame; a TCP frame may carry several SIP messages, tshark then
joins the values with ',').

For every Call-ID: first INVITE to the trunk minus first INVITE phone->proxy.
Prints one line: `n=.. missing=.. p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..`
(`missing`: calls seen phone->proxy with no forwarded INVITE in the capture),
then the same split at one second after the first INVITE (the cold start):
`first1s_n first1s_p50_ms first1s_p99_ms first1s_max_ms after1s_p99_ms
after1s_max_ms`, and `over10ms` (calls delayed more than 10 ms).
With `--zammad-port PORT` and `--pcap`, the capture also holds the HTTP
traffic to Zammad (the double) on that TCP port: each call's INVITE delay is
then split at its newCall request (POST sent) and the answer (first response
segment on that connection): `zammad_n`, `own_p50_ms`, `own_p99_ms`,
`own_max_ms` (the proxy's own share: INVITE in -> POST sent, plus answer
received -> INVITE out; each part alone as `to_post_*` and `from_answer_*`) and `zammad_p50_ms`, `zammad_p99_ms` (POST -> answer
as seen on the wire: the double, the kernel and the scheduler).
With `--csv FILE`: one line per call, `t_s,delay_ms` (t_s: seconds from the
first INVITE phone->proxy to this call's), sorted by t_s.

Usage: tshark ... | bench_latency.py PHONE_IP PROXY_IP TRUNK_IP [--csv FILE]
       bench_latency.py PHONE_IP PROXY_IP TRUNK_IP [--csv FILE] --pcap FILE
The second form reads a classic pcap of UDP/IPv4 on an Ethernet-framed
loopback directly (much faster than tshark; TCP needs tshark).
"""
import re
import struct
import sys
import urllib.parse

CALL_ID = re.compile(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)", re.I)


NEWCALL = re.compile(rb"(?:event=newCall|\"event\"\s*:\s*\"newCall\")")
ZAMMAD_CALL_ID = re.compile(rb'(?:callId=([^&\s]+)|"callId"\s*:\s*"([^"]*)")')


def pcap_lines(path, zammad_port=None, http=None):
    """Yield tshark-like lines from a classic pcap (UDP over IPv4, Ethernet).
    With `zammad_port`, TCP segments to and from that port are matched up
    instead: `http[call_id] = [t_post, t_answer]` for each newCall."""
    pending = {}  # client port -> [call id or None per request awaiting its answer]
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = struct.unpack("<I", gh[:4])[0]
        if magic == 0xA1B2C3D4:
            endian, scale = "<", 1e-6
        elif magic == 0xA1B23C4D:
            endian, scale = "<", 1e-9
        elif magic == 0xD4C3B2A1:
            endian, scale = ">", 1e-6
        elif magic == 0x4D3CB2A1:
            endian, scale = ">", 1e-9
        else:
            raise SystemExit("not a classic pcap file (use tshark)")
        linktype = struct.unpack(endian + "I", gh[20:24])[0]
        if linktype != 1:
            raise SystemExit("link type %d: only Ethernet framing is supported" % linktype)
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                return
            sec, frac, incl, _ = struct.unpack(endian + "IIII", rh)
            pkt = f.read(incl)
            if len(pkt) < 14 + 20 + 8 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] == 6 and zammad_port is not None:
                tcp = ip[ihl:]
                if len(tcp) < 20:
                    continue
                sport, dport = struct.unpack(">HH", tcp[:4])
                data = tcp[(tcp[12] >> 4) * 4:]
                t = sec + frac * scale
                if dport == zammad_port and data.startswith(b"POST "):
                    cid = None
                    if NEWCALL.search(data):
                        m = ZAMMAD_CALL_ID.search(data)
                        if m:
                            raw = (m.group(1) or m.group(2)).decode("latin-1")
                            cid = urllib.parse.unquote_plus(raw) if m.group(1) else raw
                            http.setdefault(cid, [t, None])
                    pending.setdefault(sport, []).append(cid)
                elif sport == zammad_port and data.startswith(b"HTTP/"):
                    q = pending.get(dport)
                    if q:
                        cid = q.pop(0)
                        if cid is not None and http.get(cid, [0, 0])[1] is None:
                            http[cid][1] = t
                continue
            if ip[9] != 17:
                continue
            src = "%d.%d.%d.%d" % tuple(ip[12:16])
            dst = "%d.%d.%d.%d" % tuple(ip[16:20])
            payload = ip[ihl + 8:]
            if not payload.startswith(b"INVITE "):
                continue
            m = CALL_ID.search(payload)
            if not m:
                continue
            yield "%.9f|%s|%s|INVITE|%s" % (sec + frac * scale, src, dst, m.group(1).strip().decode("latin-1"))


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    # nearest-rank percentile
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    phone, proxy, trunk = sys.argv[1:4]
    rest = sys.argv[4:]
    csv_path = pcap_path = zammad_port = None
    while rest:
        if rest[0] == "--csv" and len(rest) > 1:
            csv_path, rest = rest[1], rest[2:]
        elif rest[0] == "--pcap" and len(rest) > 1:
            pcap_path, rest = rest[1], rest[2:]
        elif rest[0] == "--zammad-port" and len(rest) > 1:
            zammad_port, rest = int(rest[1]), rest[2:]
        else:
            raise SystemExit("unknown argument %s" % rest[0])
    http = {}
    source = pcap_lines(pcap_path, zammad_port, http) if pcap_path else sys.stdin
    t_in, t_out = {}, {}
    for line in source:
        parts = line.rstrip("\n").split("|")
        if len(parts) < 5:
            continue
        ts, src, dst, methods, cids = parts[:5]
        try:
            t = float(ts)
        except ValueError:
            continue
        ms = methods.split(",")
        cs = cids.split(",")
        for m, c in zip(ms, cs):
            if m != "INVITE" or not c:
                continue
            if src == phone and dst == proxy:
                t_in.setdefault(c, t)
            elif dst == trunk:
                # only the proxy sends to the trunk here; its TCP connections
                # may leave from another loopback address (not bound to
                # sip.listen), so the source is not checked
                t_out.setdefault(c, t)
    per_call = sorted((t_in[c], (t_out[c] - t_in[c]) * 1000.0) for c in t_in if c in t_out)
    lat = sorted(v for _, v in per_call)
    missing = sum(1 for c in t_in if c not in t_out)
    t0 = min(t_in.values()) if t_in else 0.0
    first = sorted(v for t, v in per_call if t - t0 < 1.0)
    after = sorted(v for t, v in per_call if t - t0 >= 1.0)
    nan = float("nan")
    print(
        "n=%d missing=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
        "first1s_n=%d first1s_p50_ms=%.3f first1s_p99_ms=%.3f first1s_max_ms=%.3f "
        "after1s_p99_ms=%.3f after1s_max_ms=%.3f over10ms=%d"
        % (len(lat), missing, pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[-1] if lat else nan,
           len(first), pct(first, 50), pct(first, 99), first[-1] if first else nan,
           pct(after, 99), after[-1] if after else nan, sum(1 for v in lat if v > 10.0)),
        end=" " if zammad_port is not None else "\n",
    )
    if zammad_port is not None:
        own, zam, before, after_ = [], [], [], []
        for c in t_in:
            h = http.get(c)
            if c in t_out and h and h[1] is not None:
                before.append((h[0] - t_in[c]) * 1000.0)
                after_.append((t_out[c] - h[1]) * 1000.0)
                own.append(before[-1] + after_[-1])
                zam.append((h[1] - h[0]) * 1000.0)
        for v in (own, zam, before, after_):
            v.sort()
        print(
            "zammad_n=%d own_p50_ms=%.3f own_p99_ms=%.3f own_max_ms=%.3f "
            "to_post_p50_ms=%.3f to_post_p99_ms=%.3f from_answer_p50_ms=%.3f from_answer_p99_ms=%.3f "
            "zammad_p50_ms=%.3f zammad_p99_ms=%.3f"
            % (len(own), pct(own, 50), pct(own, 99), own[-1] if own else nan,
               pct(before, 50), pct(before, 99), pct(after_, 50), pct(after_, 99),
               pct(zam, 50), pct(zam, 99)),
            end=" ",
        )
    if csv_path:
        with open(csv_path, "w") as f:
            f.write("t_s,delay_ms\n")
            for t, v in per_call:
                f.write("%.6f,%.3f\n" % (t - t0, v))


if __name__ == "__main__":
    main()
