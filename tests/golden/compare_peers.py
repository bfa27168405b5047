#!/usr/bin/env python3
"""Compare exwatch's per-flow protocol verdicts with two peers: tshark and ndpiReader.

For every capture in pcaps/*.pcap and ../shared/pcaps/* this runs

  (a) exwatch:    target/release/exwatch audit -q --json - FILE   (one JSON record per flow)
  (b) tshark:     tshark -r FILE -T fields ... -e frame.protocols  (per frame, aggregated per flow)
  (c) ndpiReader: ndpiReader -i FILE -v 2                          (one line per flow)

and matches the flows across the three tools by the unordered 5-tuple (transport plus the two
address:port endpoints; for transports without ports, the two addresses). VLAN ids are ignored.

Verdicts are mapped to exwatch's vocabulary (signatures/services.toml: smtp, imap, pop3, http,
tls, dns, kerberos, ldap, dcerpc, smb, netbios, sip, rtp, rtcp, nntp, irc, ssh, ntp, snmp, syslog,
rdp, ftp, mgcp, quic, stun ...):

* exwatch: network.protocol; "+tls" when the record carries tls.* (implicit TLS or STARTTLS).
  network.protocol is the protocol *inside* TLS (443 -> http, 636 -> ldap), so a peer that only
  sees "tls" agrees with any exwatch verdict that has TLS.
* tshark: every frame's frame.protocols above the transport is mapped (smtp/imf -> smtp,
  pop -> pop3, ldap/cldap -> ldap, smb/smb2 -> smb, nbss/nbns/nbdgm -> netbios, tpkt/cotp/rdp
  -> rdp, ...; sub-dissectors such as x509, spnego, ntlmssp, sdp, xml, data are ignored). The
  flow's stack is the union in order of appearance (outer first). Its verdict is the first
  protocol of the stack that is not a pure wrapper (tls, netbios), or the wrapper if nothing is
  inside it: "smtp" for smtp/tls (STARTTLS), "smb" for netbios/smb/dcerpc, "tls" for tls alone.
  The Markdown shows the whole stack ("netbios/smb/dcerpc").
* ndpiReader: "[proto: M.A/Master.App]": the app part when it names a protocol (NetBIOS.SMBv23
  -> smb), else the master (TLS.Google -> tls). SMTPS/IMAPS/POPS are smtp/imap/pop3 + tls.
  Guesses (nDPI confidence "Match by port" / "Match by IP") are marked "(guess)".

agree? column, per flow:
  yes      exwatch classified from payload, and every peer with a verdict agrees
  NO       exwatch classified from payload, and at least one peer says something else
  pending  exwatch has no payload verdict (protocol unknown, or confidence port/none): its
           detector for that protocol is not merged yet. The column says whether the port
           hint's protocol matches the peers.
  n/a      nothing to compare: exwatch has a payload verdict but no peer has one, or the flow
           has no application layer at all (ICMP, no port hint)
  only-X   the flow is seen by peer X only (not by exwatch)

Usage: python3 tests/golden/compare_peers.py [--write] [CAPTURE ...]
  default: print the Markdown report to stdout; --write: write it to tests/golden/peers.md.
Python 3.11+ standard library only (tomllib).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections import OrderedDict, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXWATCH = ROOT / "target" / "release" / "exwatch"
SHARED = ROOT.parent / "shared" / "pcaps"
OUT = ROOT / "tests" / "golden" / "peers.md"

# tshark protocol names (frame.protocols) -> exwatch vocabulary. Names not listed are ignored
# (link layers, sub-dissectors, payload formats).
TSHARK_MAP = {
    "smtp": "smtp",  # not imf: IMF is the message format, also inside IMAP FETCH / POP3 RETR
    "imap": "imap",
    "pop": "pop3",
    "http": "http", "http2": "http",
    "tls": "tls", "ssl": "tls", "dtls": "tls",
    "dns": "dns", "mdns": "dns",
    "kerberos": "kerberos", "spnego-krb5": "kerberos",
    "ldap": "ldap", "cldap": "ldap",
    "dcerpc": "dcerpc", "epm": "dcerpc",
    "smb": "smb", "smb2": "smb",
    "nbss": "netbios", "nbns": "netbios", "nbdgm": "netbios",
    "sip": "sip",
    "rtp": "rtp", "rtcp": "rtcp",
    "nntp": "nntp",
    "irc": "irc",
    "ssh": "ssh",
    "ntp": "ntp",
    "snmp": "snmp",
    "syslog": "syslog",
    "rdp": "rdp", "tpkt": "rdp", "cotp": "rdp",
    "ftp": "ftp", "ftp-data": "ftp",
    "mgcp": "mgcp",
    "quic": "quic",
    "stun": "stun",
    "socks": "socks", "telnet": "telnet",
}
# Layers that only carry another protocol: not a verdict when something is inside them.
WRAPPERS = {"tls", "netbios"}
# Layers that end the walk: the frame belongs to an ICMP "flow", not to the quoted datagram.
ICMP_LAYERS = {"icmp", "icmpv6"}
TRANSPORTS = {"tcp", "udp"}

# nDPI names (lowercased) -> (protocol, implicit tls)
NDPI_MAP = {
    "smtp": ("smtp", False), "smtps": ("smtp", True),
    "imap": ("imap", False), "imaps": ("imap", True),
    "pop3": ("pop3", False), "pops": ("pop3", True), "pop3s": ("pop3", True),
    "http": ("http", False), "http_proxy": ("http", False), "http_connect": ("http", False),
    "tls": ("tls", False), "ssl": ("tls", False), "dtls": ("tls", False),
    "dns": ("dns", False), "mdns": ("dns", False), "llmnr": ("dns", False),
    "kerberos": ("kerberos", False),
    "ldap": ("ldap", False), "cldap": ("ldap", False),
    "dce_rpc": ("dcerpc", False),
    "smbv1": ("smb", False), "smbv23": ("smb", False), "smb": ("smb", False),
    "netbios": ("netbios", False),
    "sip": ("sip", False), "rtp": ("rtp", False), "rtcp": ("rtcp", False),
    "nntp": ("nntp", False), "irc": ("irc", False), "ssh": ("ssh", False),
    "ntp": ("ntp", False), "snmp": ("snmp", False), "syslog": ("syslog", False),
    "rdp": ("rdp", False), "ftp_control": ("ftp", False), "ftp_data": ("ftp", False),
    "ftps": ("ftp", True), "mgcp": ("mgcp", False), "quic": ("quic", False),
    "stun": ("stun", False), "telnet": ("telnet", False),
    "mqtt": ("mqtt", False),
}
# nDPI names that are not application protocols (no verdict).
NDPI_NONE = {"unknown", "icmp", "icmpv6", "ip_in_ip", "ipsec", "gre"}

NDPI_LINE = re.compile(
    r"^\t\d+\t(?P<l4>\S+) (?P<a>\S+) <?-> (?P<b>\S+) (?:\[VLAN: \d+\])?"
    r"\[proto: [\d.]+/(?P<name>[^\]]+)\].*?\[Confidence: (?P<conf>[^\]]+)\]"
)


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.stdout.decode("utf-8", "replace")


def endpoint(ip: str, port) -> tuple:
    return (ip, None if port in (None, "", 0, "0") else int(port))


def fkey(transport: str, a: tuple, b: tuple) -> tuple:
    return (transport, frozenset((a, b)))


def fmt_ep(ep: tuple) -> str:
    ip, port = ep
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_protocols() -> dict[str, str]:
    with open(ROOT / "signatures" / "services.toml", "rb") as f:
        return {s["name"]: s["protocol"] for s in tomllib.load(f)["service"]}


# ---------------------------------------------------------------------------------------------
# exwatch


def exwatch_flows(cap: Path) -> list[dict]:
    for _ in range(60):  # the binary is rebuilt by others from time to time
        if EXWATCH.exists():
            p = subprocess.run([str(EXWATCH), "audit", "-q", "--json", "-", str(cap)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode == 0 or p.stdout:
                break
        time.sleep(5)
    else:
        sys.exit(f"exwatch binary missing or failing: {EXWATCH}")
    flows = []
    for line in p.stdout.decode().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        src, dst = r.get("source", {}), r.get("destination", {})
        net, ex = r.get("network", {}), r.get("exwatch", {})
        transport = str(net.get("transport", "?"))
        a = endpoint(src.get("ip", "?"), src.get("port"))
        b = endpoint(dst.get("ip", "?"), dst.get("port"))
        flows.append({
            "key": fkey(transport, a, b), "src": a, "dst": b, "transport": transport,
            "protocol": net.get("protocol", "unknown"), "service": ex.get("service", "?"),
            "confidence": ex.get("confidence", "?"), "tls": "tls" in r,
            "evidence": ex.get("evidence", ""), "port_mismatch": ex.get("port_mismatch"),
        })
    return flows


# ---------------------------------------------------------------------------------------------
# tshark

TSHARK_FIELDS = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport",
                 "ip.dst", "ipv6.dst", "tcp.dstport", "udp.dstport", "frame.protocols"]


def tshark_flows(cap: Path) -> dict:
    cmd = ["tshark", "-n", "-r", str(cap), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    flows: dict = OrderedDict()
    for line in run(cmd).splitlines():
        cols = line.split("\t")
        if len(cols) != len(TSHARK_FIELDS):
            continue
        _, ip4s, ip6s, tsp, usp, ip4d, ip6d, tdp, udp_, protos = cols
        layers = protos.split(":")
        ip4s, ip6s, ip4d, ip6d = (c.split(",") if c else [] for c in (ip4s, ip6s, ip4d, ip6d))
        n4 = n6 = 0
        last = None  # (src, dst) of the innermost IP header before the transport
        transport = None
        above = []
        for i, layer in enumerate(layers):
            if layer == "ip" and n4 < len(ip4s):
                last = (ip4s[n4], ip4d[n4] if n4 < len(ip4d) else "?")
                n4 += 1
            elif layer == "ipv6" and n6 < len(ip6s):
                last = (ip6s[n6], ip6d[n6] if n6 < len(ip6d) else "?")
                n6 += 1
            elif layer in TRANSPORTS and last:
                transport = layer
                above = layers[i + 1:]
                break
            elif layer in ICMP_LAYERS and last:
                transport = "icmp"
                break
        if not transport:
            continue
        if transport == "tcp":
            sp, dp = tsp.split(",")[0], tdp.split(",")[0]
        elif transport == "udp":
            sp, dp = usp.split(",")[0], udp_.split(",")[0]
        else:
            sp = dp = None
        a, b = endpoint(last[0], sp), endpoint(last[1], dp)
        k = fkey(transport, a, b)
        fl = flows.setdefault(k, {"src": a, "dst": b, "stack": []})
        for layer in above:
            m = TSHARK_MAP.get(layer)
            if m and m not in fl["stack"]:
                fl["stack"].append(m)
    for fl in flows.values():
        inner = [p for p in fl["stack"] if p not in WRAPPERS]
        fl["verdict"] = inner[0] if inner else (fl["stack"][0] if fl["stack"] else None)
        fl["has_tls"] = "tls" in fl["stack"]
        fl["text"] = "/".join(fl["stack"]) if fl["stack"] else "—"
    return flows


# ---------------------------------------------------------------------------------------------
# ndpiReader


def split_ep(s: str) -> tuple:
    if s.startswith("["):
        ip, _, port = s[1:].rpartition("]:")
    else:
        ip, _, port = s.rpartition(":")
    return endpoint(ip, port)


def ndpi_flows(cap: Path) -> dict:
    flows: dict = OrderedDict()
    for line in run(["ndpiReader", "-i", str(cap), "-v", "2"]).splitlines():
        m = NDPI_LINE.match(line)
        if not m:
            continue
        l4 = m["l4"].lower()
        transport = l4 if l4 in ("tcp", "udp") else ("icmp" if l4.startswith("icmp") else l4)
        a, b = split_ep(m["a"]), split_ep(m["b"])
        if transport not in ("tcp", "udp"):
            a, b = (a[0], None), (b[0], None)
        name = m["name"]
        master, _, app = name.partition(".")
        if app.lower() in NDPI_MAP:
            verdict, tls = NDPI_MAP[app.lower()]
            if master.lower() in NDPI_MAP and NDPI_MAP[master.lower()][0] == "tls":
                tls = True
        elif master.lower() in NDPI_MAP:
            verdict, tls = NDPI_MAP[master.lower()]
        elif master.lower() in NDPI_NONE:
            verdict, tls = None, False
        else:
            verdict, tls = master.lower(), False
        guess = m["conf"] not in ("DPI", "DPI (partial)", "DPI (cache)")
        text = name + (f" (guess: {m['conf'].replace('Match by ', '')})" if guess and verdict else "")
        k = fkey(transport, a, b)
        if k in flows:  # same 5-tuple twice (idle timeout, VLANs): keep the first verdict
            if flows[k]["verdict"] is None and verdict:
                flows[k].update(verdict=verdict, has_tls=tls, text=text, guess=guess)
            continue
        flows[k] = {"src": a, "dst": b, "verdict": verdict, "has_tls": tls or verdict == "tls",
                    "text": text if verdict or name != "Unknown" else "Unknown", "guess": guess}
    return flows


# ---------------------------------------------------------------------------------------------
# comparison


def peer_agrees(ex_proto: str, ex_tls: bool, peer: dict | None):
    """True / False, or None when the peer has no verdict."""
    if not peer or not peer.get("verdict"):
        return None
    v = peer["verdict"]
    if v == ex_proto:
        return True
    if v == "tls" and ex_tls:
        return True  # the peer sees only the TLS around exwatch's inner protocol
    return False


def compare(cap: Path, svc_proto: dict) -> tuple[list[dict], dict]:
    ex = exwatch_flows(cap)
    ts = tshark_flows(cap)
    nd = ndpi_flows(cap)
    rows = []
    seen = set()
    for f in ex:
        k = f["key"]
        seen.add(k)
        t, n = ts.get(k), nd.get(k)
        # Labels from other flows (issue 5) are verdicts to compare, like payload ones.
        payload = (f["confidence"] in ("payload", "expectation", "endpoint")
                   and f["protocol"] != "unknown")
        no_ports = f["transport"] not in ("tcp", "udp")
        verdicts = {"tshark": peer_agrees(f["protocol"], f["tls"], t),
                    "ndpi": peer_agrees(f["protocol"], f["tls"], n)}
        if payload:
            if all(v is None for v in verdicts.values()):
                status = "n/a"
            elif any(v is False for v in verdicts.values()):
                status = "NO (" + ", ".join(p for p, v in verdicts.items() if v is False) + ")"
            else:
                status = "yes"
        else:
            hint = svc_proto.get(f["service"], "unknown")
            hv = {p: peer_agrees(hint, False, x) for p, x in (("tshark", t), ("ndpi", n))}
            if no_ports and f["service"] in ("unknown", "none", "?"):
                status = "n/a"  # ICMP and other transports without an application protocol
            elif f["service"] in ("unknown", "none", "?"):
                status = "pending (no port hint)"
            elif all(v is None for v in hv.values()):
                status = f"pending (port hint {hint}; no peer verdict)"
            elif any(v is False for v in hv.values()):
                status = f"pending (port hint {hint} ≠ " + ", ".join(
                    p for p, v in hv.items() if v is False) + ")"
            else:
                status = f"pending (port hint {hint} = peers)"
        ex_text = f["protocol"] + ("+tls" if f["tls"] else "")
        rows.append({
            "flow": f"{fmt_ep(f['src'])} -> {fmt_ep(f['dst'])}/{f['transport']}",
            "exwatch": f"{ex_text} / {f['service']} / {f['confidence']}",
            "tshark": t["text"] if t else "(no flow)",
            "ndpi": n["text"] if n else "(no flow)",
            "status": status,
        })
    for name, peer, other in (("tshark", ts, nd), ("ndpi", nd, ts)):
        for k, fl in peer.items():
            if k in seen:
                continue
            seen.add(k)
            o = other.get(k)
            rows.append({
                "flow": f"{fmt_ep(fl['src'])} -> {fmt_ep(fl['dst'])}/{k[0]}",
                "exwatch": "(no flow)",
                "tshark": (fl if name == "tshark" else o or {}).get("text", "(no flow)"),
                "ndpi": (fl if name == "ndpi" else o or {}).get("text", "(no flow)"),
                "status": "only-peers" if o else f"only-{name}",
            })
    counts = defaultdict(int)
    for r in rows:
        counts[category(r["status"])] += 1
    return rows, counts


def category(status: str) -> str:
    if status.startswith("NO"):
        return "disagree"
    if status.startswith("pending"):
        return "pending-differs" if "≠" in status else "pending"
    if status.startswith("only"):
        return "unmatched"
    return {"yes": "agree", "n/a": "no-peer-verdict"}[status]


CATS = [("agree", "agree"), ("disagree", "disagree"),
        ("pending", "pending, port hint consistent or unverifiable"),
        ("pending-differs", "pending, port hint ≠ a peer"),
        ("no-peer-verdict", "n/a: no peer verdict, or no application layer (ICMP)"),
        ("unmatched", "flow not seen by exwatch")]


def esc(s: str) -> str:
    return s.replace("|", "\\|")


def captures(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    caps = sorted((ROOT / "pcaps").glob("*.pcap"))
    caps += sorted(p for p in SHARED.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    return caps


def label(cap: Path) -> str:
    try:
        return str(cap.relative_to(ROOT))
    except ValueError:
        return os.path.relpath(cap, ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write tests/golden/peers.md")
    ap.add_argument("captures", nargs="*", help="captures (default: the whole corpus)")
    opts = ap.parse_args()
    svc = service_protocols()
    total = defaultdict(int)
    sections = []
    per_cap = []
    for cap in captures(opts.captures):
        rows, counts = compare(cap, svc)
        for c, n in counts.items():
            total[c] += n
        per_cap.append((label(cap), counts))
        out = [f"## `{label(cap)}`", "",
               "| flow | exwatch (protocol / service / confidence) | tshark | ndpiReader | agree? |",
               "|---|---|---|---|---|"]
        for r in rows:
            out.append("| " + " | ".join(esc(r[c]) for c in
                                         ("flow", "exwatch", "tshark", "ndpi", "status")) + " |")
        sections.append("\n".join(out))
    ver = run(["tshark", "--version"]).splitlines()[:1]
    m = re.search(r"nDPI \(?([\d.]+)", run(["ndpiReader", "-h"]))
    ndpi_ver = m[1] if m else "?"
    head = [
        "# exwatch vs. tshark vs. ndpiReader",
        "",
        "Generated by `python3 tests/golden/compare_peers.py --write`; do not edit by hand. "
        "See `tests/golden/NOTES.md` for the investigation of every disagreement.",
        f"Peers: {ver[0].rstrip('.') if ver else 'tshark'}; ndpiReader (nDPI {ndpi_ver}).",
        "",
        "tshark shows the flow's stack in the vocabulary (outer/inner); its verdict is the first "
        "protocol that is not a wrapper (tls, netbios). \"(guess: port)\" marks nDPI verdicts "
        "that are not from payload. `pending`: exwatch has no payload verdict yet.",
        "",
        "## Summary",
        "",
        "| | flows |",
        "|---|---:|",
    ]
    for c, text in CATS:
        head.append(f"| {text} | {total.get(c, 0)} |")
    head.append(f"| **total** | {sum(total.values())} |")
    head += ["", "| capture | " + " | ".join(c for c, _ in CATS) + " |",
             "|---|" + "---:|" * len(CATS)]
    for name, counts in per_cap:
        head.append(f"| `{name}` | " + " | ".join(str(counts.get(c, 0)) for c, _ in CATS) + " |")
    text = "\n".join(head) + "\n\n" + "\n\n".join(sections) + "\n"
    if opts.write:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}: " + ", ".join(
            f"{c} {total.get(c, 0)}" for c, _ in CATS))
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
