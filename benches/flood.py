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
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput as tp  # noqa: E402  (the SYN capture builder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench-out")
FLOWS = 2_000_000
GAP_US = 1


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
            tp.build_syns(pcap, FLOWS, gap_us=GAP_US, high_ports=kind == "high")
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
