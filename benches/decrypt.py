#!/usr/bin/env python3
"""Cost of `--tls-keylog`: exwatch audit with and without the key log on many decrypted flows.

Run by `make bench-decrypt` (stdlib only).  It

1. builds `bench-out/keylog.pcap` (cached; `--rebuild` forces it): the two recorded captures
   `pcaps/https-keylog-tls12.pcap` and `-tls13.pcap` (every Exchange web request over TLS 1.2
   and TLS 1.3, AES-GCM and ChaCha20-Poly1305), concatenated COPIES times with the addresses
   of each copy moved as `benches/throughput.py` does for its capture (so each copy's flows
   are distinct flows), and `bench-out/keylog.keys`, the two key logs joined.  The client
   randoms are the same in every copy, so every copy's sessions find their secrets: what is
   measured is the decryption of COPIES x 34 sessions, each with its own key schedule work
   except where a worker's cache of its last 32 sessions holds it (it does not across copies:
   34 sessions lie between two uses of the same random);
2. runs, in R rounds with the order rotated every round, `exwatch audit --json /dev/null` with
   one worker, without and with `--tls-keylog`, and with the key log on all cores, taking wall
   time, CPU time (user + sys) and peak RSS from os.wait4;
3. checks, once, that the run with the key log names the Exchange services it should (counts
   `exwatch.tls.decrypted` records) and prints a Markdown report (also written to
   `bench-out/decrypt.md`): medians, and the decryption cost per decrypted flow and per MB of
   the capture (CPU with the key log minus CPU without, over the flows decrypted or the MB
   read).  Decryption stops with a flow's inspection budget (8 KiB of application data per
   direction), so the cost per MB falls as flows grow: the per-flow figure is the one to plan
   with.

It exits 0 whether or not the figures please: it is a report, not a test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput as tp  # noqa: E402  (the capture builder and the machine description)

ROOT = tp.ROOT
OUT = tp.OUT
SOURCES = [os.path.join(ROOT, "pcaps", f"https-keylog-tls{v}.pcap") for v in (12, 13)]
COPIES = 300


def build(pcap, keys, meta_path, copies):
    # throughput.build_bench copies whatever source_captures() names until the capture holds
    # MIN_PACKETS packets and MIN_FLOWS flows: point it at the two key log captures.
    tp.source_captures = lambda: SOURCES
    probe = tp.build_template()
    per_copy = tp.distinct_flows(probe, 1)
    tp.MIN_PACKETS = 1
    tp.MIN_FLOWS = per_copy * copies
    meta = tp.build_bench(pcap, meta_path)
    with open(keys + ".tmp", "wb") as out:
        for src in SOURCES:
            with open(src[: -len(".pcap")] + ".keys", "rb") as f:
                out.write(f.read())
    os.replace(keys + ".tmp", keys)
    return meta


def run(cmd):
    """Run cmd; return (wall s, CPU s, max RSS MiB, exit code)."""
    with open(os.path.join(OUT, "last-stderr.txt"), "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=COPIES)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--exwatch", default=os.path.join(ROOT, "target", "release", "exwatch"))
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    pcap = os.path.join(OUT, "keylog.pcap")
    keys = os.path.join(OUT, "keylog.keys")
    meta_path = os.path.join(OUT, "keylog.json")
    meta = tp.load_json(meta_path)
    if args.rebuild or not os.path.exists(pcap) or meta.get("copies") != args.copies:
        print(f"building {pcap} ({args.copies} copies)", file=sys.stderr)
        meta = build(pcap, keys, meta_path, args.copies)

    # What the key log decides: records decrypted, and services named inside TLS.
    rec = os.path.join(OUT, "keylog-records.ndjson")
    base = [args.exwatch, "audit", "--threads", "1", "--json"]
    if subprocess.run(base + [rec, "--tls-keylog", keys, pcap], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode:
        sys.exit(f"exwatch failed on {pcap}")
    decrypted, services = 0, {}
    with open(rec) as f:
        for line in f:
            r = json.loads(line)
            if r.get("exwatch", {}).get("tls", {}).get("decrypted"):
                decrypted += 1
                s = r.get("exwatch", {}).get("service", "?")
                services[s] = services.get(s, 0) + 1
    os.remove(rec)

    cmds = {
        "1 worker, no key log": base + ["/dev/null", pcap],
        "1 worker, --tls-keylog": base + ["/dev/null", "--tls-keylog", keys, pcap],
        f"{args.threads} workers, no key log": [args.exwatch, "audit", "--threads",
                                                str(args.threads), "--json", "/dev/null", pcap],
        f"{args.threads} workers, --tls-keylog": [args.exwatch, "audit", "--threads",
                                                  str(args.threads), "--json", "/dev/null",
                                                  "--tls-keylog", keys, pcap],
    }
    names = list(cmds)
    res = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            wall, cpu, rss, code = run(cmds[n])
            if code != 0:
                sys.exit(f"{n}: exit {code} (see {OUT}/last-stderr.txt)")
            res[n].append((wall, cpu, rss))
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(n, i):
        return statistics.median(x[i] for x in res[n])

    # Per-round differences, then their median: the machine is noisy.
    deltas = [k[1] - p[1] for k, p in zip(res[names[1]], res[names[0]])]
    d_cpu = statistics.median(deltas)
    mb = meta["bytes"] / 1e6
    m = tp.machine()
    L = [f"# exwatch --tls-keylog benchmark ({m['date']})", "",
         f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']:.1f} GiB RAM, "
         f"Linux {m['kernel']}; exwatch {m['commit']}",
         f"- Capture: bench-out/keylog.pcap, {meta['packets']:,} packets, {mb:.1f} MB, "
         f"{meta['flows']:,} flows ({args.copies} copies of the two recorded key log captures); "
         f"{decrypted:,} flows decrypted",
         f"- Services named inside TLS: "
         + ", ".join(f"{s} {c:,}" for s, c in sorted(services.items(), key=lambda x: -x[1])),
         f"- {args.rounds} alternated rounds, medians", "",
         "| | wall s | CPU s (user + sys) | peak RSS MiB |", "|---|---:|---:|---:|"]
    for n in names:
        L.append(f"| exwatch, {n} | {med(n, 0):.2f} | {med(n, 1):.2f} | {med(n, 2):.1f} |")
    L += ["",
          f"Decryption cost (CPU with the key log minus without, median of per-round "
          f"differences): {d_cpu:.2f} s, {d_cpu / max(decrypted, 1) * 1e6:.0f} us per decrypted "
          f"flow, {d_cpu / mb * 1e3:.1f} ms per MB of capture.", ""]
    text = "\n".join(L)
    print(text)
    with open(os.path.join(OUT, "decrypt.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
