#!/usr/bin/env python3
"""Peak memory of `exwatch audit` under a SYN flood, with and without `--max-flows`.

Run by `make bench-flood` (stdlib only, Python >= 3.9; needs /usr/bin/time).  It

1. builds `bench-out/flood-2m-443.pcap` and `bench-out/flood-2m-high.pcap` (cached; `--rebuild`
   forces them): 2,000,000 distinct TCP flows, one 54-byte SYN each (Ethernet/IPv4/TCP, both
   checksums right), 1 us apart, so 2 s of capture time.  Flow k goes from 10.0.0.0 + k,
   port 1024 + k % 50000, to 192.0.2.10 port 443 (`443`), or to port 1024 + k % 64000 on the
   same server (`high`: a server port above 1023, where a flow could still be labelled by a
   later fact, so its record has to wait for the cross-flow watermark).
2. runs `/usr/bin/time -v exwatch audit -q --json /dev/null [--max-flows N] FILE` for each
   capture, with the default flow limit and with each `--max-flows` asked for (100000 unless
   `--max-flows` says otherwise), and reads "Maximum resident set size" and the wall time.
   The run's summary (`--summary-json`) gives the evictions and the records released before
   the watermark to bound the wait (`flows_released_early`).
3. prints a Markdown table (also written to bench-out/flood.md).

It exits 0 whatever the figures: it is a report, not a test.
"""

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench-out")
FLOWS = 2_000_000
GAP_US = 1


def csum_fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def build_flood(path, n, high):
    """n SYNs, GAP_US apart, each its own flow (see the module docstring)."""
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    dst_ip = 0xC000020A
    ip_base = csum_fold(0x4500 + 40 + 0x4000 + 0x4006 + (dst_ip >> 16) + (dst_ip & 0xFFFF))
    seq = 0x12345678
    tcp_base = csum_fold((seq >> 16) + (seq & 0xFFFF) + 0x5002 + 64240
                         + (dst_ip >> 16) + (dst_ip & 0xFFFF) + 6 + 20)
    rec = bytearray(16 + 54)
    struct.pack_into("<IIII", rec, 0, 0, 0, 54, 54)
    rec[16:30] = eth
    struct.pack_into(">BBHHHBBHII", rec, 30, 0x45, 0, 40, 0, 0x4000, 64, 6, 0, 0, dst_ip)
    struct.pack_into(">HHIIBBHHH", rec, 50, 0, 443, seq, 0, 0x50, 0x02, 64240, 0, 0)
    start = 1_700_000_000_000_000
    hdr = struct.Struct("<II")
    ipf = struct.Struct(">HI")
    ports = struct.Struct(">HH")
    tcpf = struct.Struct(">H")
    tmp = path + ".tmp"
    chunk = 65536
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        k = 0
        while k < n:
            m = min(chunk, n - k)
            out = bytearray(rec * m)
            for j in range(m):
                idx = k + j
                o = j * 70
                src = 0x0A000000 + idx
                sport = 1024 + idx % 50000
                dport = 1024 + idx % 64000 if high else 443
                ts = start + idx * GAP_US
                hdr.pack_into(out, o, ts // 1_000_000, ts % 1_000_000)
                sw = (src >> 16) + (src & 0xFFFF)
                ipf.pack_into(out, o + 40, ~csum_fold(ip_base + sw) & 0xFFFF, src)
                ports.pack_into(out, o + 50, sport, dport)
                tsum = tcp_base + sw + sport + dport
                tcpf.pack_into(out, o + 66, ~csum_fold(tsum) & 0xFFFF)
            f.write(out)
            k += m
    os.replace(tmp, path)


def run(exe, pcap, extra):
    with tempfile.TemporaryDirectory() as d:
        summary = os.path.join(d, "summary.json")
        cmd = ["/usr/bin/time", "-v", exe, "audit", "-q", "--json", "/dev/null",
               "--summary-json", summary] + extra + [pcap]
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"flood.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr)
        secs = 0.0
        for part in wall.group(1).split(":"):
            secs = secs * 60 + float(part)
        with open(summary) as f:
            s = json.load(f)
    return rss / 1024, secs, s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "exwatch"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--max-flows", type=int, action="append",
                    help="--max-flows values to run besides the default (repeatable)")
    ap.add_argument("--threads", default="2", help="--threads for every run (default 2)")
    ap.add_argument("--only", choices=["443", "high"], help="run one of the two floods")
    a = ap.parse_args()
    limits = a.max_flows or [100_000]
    os.makedirs(OUT, exist_ok=True)
    rows = []
    kinds = [a.only] if a.only else ["443", "high"]
    for kind in kinds:
        pcap = os.path.join(OUT, f"flood-2m-{kind}.pcap")
        if a.rebuild or not os.path.exists(pcap):
            print(f"building {pcap}", file=sys.stderr)
            build_flood(pcap, FLOWS, kind == "high")
        for limit in [None] + limits:
            extra = ["--threads", a.threads]
            if limit is not None:
                extra += ["--max-flows", str(limit)]
            rss, secs, s = run(a.exe, pcap, extra)
            link = s.get("expectations", {})
            rows.append((kind, limit, rss, secs, s.get("evictions", 0),
                         s.get("flows_released_early", 0), s.get("flows", 0), link))
            print(f"{kind} max-flows {limit or 'default'}: {rss:.1f} MiB, {secs:.2f} s",
                  file=sys.stderr)
    lines = [
        f"SYN flood, {FLOWS:,} flows {GAP_US} us apart, `exwatch audit -q --json /dev/null "
        f"--threads {a.threads}`, peak RSS from `/usr/bin/time -v`:",
        "",
        "| flood | --max-flows | peak RSS MiB | wall s | evictions | released early |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, limit, rss, secs, ev, early, _, _ in rows:
        port = "443" if kind == "443" else "1024-65023"
        lim = f"{limit:,}" if limit else "default (2,000,000)"
        lines.append(f"| to port {port} | {lim} | {rss:.1f} | {secs:.2f} | {ev:,} | {early:,} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "flood.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
