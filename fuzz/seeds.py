#!/usr/bin/env python3
"""Seed corpora for every fuzz target, from the captures of pcaps/ and ../shared/pcaps/.

Each target gets inputs in its own format (fuzz_targets/*.rs): whole capture files for
`capture_file`; link-type selector + frame for `frame`; mode byte + client bytes + server bytes
for the detector targets; 3-byte segment headers for `inspect`; SIP and endpoint-mapper payloads
for `announce`; fragments for `reassembly`; the project's policy, rule-set, signature and key-log
files for theirs. Standard library only (the captures are read by a small pcap/pcapng reader
here, not by exwatch, so that a framing bug in exwatch does not shape its own corpus).

usage: fuzz/seeds.py OUT_DIR
"""
import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE_DIRS = [os.path.join(ROOT, "pcaps"), os.path.join(ROOT, "..", "shared", "pcaps")]
FRAME_LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
MAX_SEEDS = 400  # per target
MAX_FILE = 512 * 1024


def frames(path):
    """(linktype, frame bytes) of a classic pcap or pcapng file; stops quietly at damage."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        lt = struct.unpack(e + "I", data[20:24])[0] & 0x03FFFFFF
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            if incl > 262144 or off + 16 + incl > len(data):
                return
            yield lt, data[off + 16:off + 16 + incl]
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        off, e, ifaces = 0, "<", []
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                ifaces = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8:off + blen - 4]
            if btype == 1 and len(body) >= 2:
                ifaces.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                iface, cap = struct.unpack(e + "I", body[:4])[0], struct.unpack(e + "I", body[12:16])[0]
                if iface < len(ifaces):
                    yield ifaces[iface], body[20:20 + cap]
            elif btype == 3 and len(body) >= 4 and ifaces:
                yield ifaces[0], body[4:]
            off += blen


def ip_of(lt, fr):
    """The IP packet inside a frame, or None."""
    if lt == 1:
        off, et = 12, None
        while off + 2 <= len(fr):
            et = struct.unpack(">H", fr[off:off + 2])[0]
            if et in (0x8100, 0x88A8):
                off += 4
                continue
            break
        return fr[off + 2:] if et in (0x0800, 0x86DD) else None
    if lt == 0 or lt == 108:
        return fr[4:]
    if lt in (12, 14, 101, 228, 229):
        return fr
    if lt == 113:
        return fr[16:]
    if lt == 276:
        return fr[20:]
    return None


def l4(ip):
    """(proto, src, dst, sport, dport, payload) of an unfragmented IPv4/IPv6 TCP or UDP packet."""
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        if struct.unpack(">H", ip[6:8])[0] & 0x3FFF:
            return None
        proto, src, dst, rest = ip[9], ip[12:16], ip[16:20], ip[ihl:]
    elif v == 6 and len(ip) >= 40:
        proto, src, dst, rest = ip[6], ip[8:24], ip[24:40], ip[40:]
    else:
        return None
    if proto == 6 and len(rest) >= 20:
        doff = (rest[12] >> 4) * 4
        sp, dp = struct.unpack(">HH", rest[:4])
        return 6, src, dst, sp, dp, rest[doff:]
    if proto == 17 and len(rest) >= 8:
        sp, dp = struct.unpack(">HH", rest[:4])
        return 17, src, dst, sp, dp, rest[8:]
    return None


class Seeds:
    def __init__(self, out):
        self.out, self.count = out, {}

    def add(self, target, data):
        n = self.count.get(target, 0)
        if n >= MAX_SEEDS or not data:
            return
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()
        p = os.path.join(d, name)
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
            self.count[target] = n + 1


def detector_targets():
    d = os.path.join(ROOT, "fuzz", "fuzz_targets")
    return sorted(f[:-3] for f in os.listdir(d) if f.startswith("detector_") and f.endswith(".rs"))


def main():
    out = sys.argv[1]
    seeds = Seeds(out)
    detectors = detector_targets()
    captures = []
    for d in CAPTURE_DIRS:
        if os.path.isdir(d):
            captures += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith((".pcap", ".pcapng"))]
    for path in captures:
        if os.path.getsize(path) <= MAX_FILE:
            with open(path, "rb") as f:
                seeds.add("capture_file", f.read())
        flows = {}
        for i, (lt, fr) in enumerate(frames(path)):
            if lt in FRAME_LINKTYPES and i < 200:
                seeds.add("frame", bytes([FRAME_LINKTYPES.index(lt)]) + fr)
            p = l4(ip_of(lt, fr))
            if not p:
                continue
            proto, src, dst, sp, dp, pay = p
            key = (proto,) + tuple(sorted([(src, sp), (dst, dp)]))
            fl = flows.setdefault(key, {"client": (src, sp), "segs": []})
            if pay:
                fl["segs"].append((0 if (src, sp) == fl["client"] else 1, pay))
        for (proto, *_), fl in flows.items():
            segs = fl["segs"]
            if not segs:
                continue
            c = b"".join(s for d, s in segs if d == 0)
            s = b"".join(s for d, s in segs if d == 1)
            cut = min(len(c), 255 * 7) // 7 * 7
            udp = 1 if proto == 17 else 0
            mode = (cut // 7) & 0xFE | udp if cut // 7 > 1 else udp
            det = bytes([mode]) + c[: mode * 7] + s[:2048]
            for t in detectors:
                seeds.add(t, det)
            # inspect: [dir | flags, len/4, jump] then the segment, in capture order.
            body = bytearray([udp])
            for d, seg in segs[:16]:
                seg = seg[: min(len(seg), 1020) // 4 * 4]
                body += bytes([d, len(seg) // 4, 0]) + seg
            seeds.add("inspect", bytes(body))
            first = segs[0][1]
            if b"SIP/2.0" in first[:200] or b"INVITE" in first[:10]:
                seeds.add("announce", bytes([1 if proto == 6 else 0]) + first)
            seeds.add("tls_decrypt", bytes([len(c) % 7]) + c[:4096] + s[:4096])
            # reassembly: the payload cut into 5-byte-headed fragments.
            frag, off = bytearray(), 0
            for chunk in [first[i:i + 200] for i in range(0, min(len(first), 800), 200)]:
                more = 0x80 if off + len(chunk) < min(len(first), 800) else 0
                o = off // 8
                frag += bytes([0, more | (o >> 8) & 0x1F, o & 0xFF, 0, len(chunk)]) + chunk
                off += len(chunk)
            seeds.add("reassembly", bytes(frag))
    for sub, target, mode in [
        ("examples", "policy_files", 0),
        ("tests/policy", "policy_files", None),
        ("signatures", "signatures", None),
        ("pcaps", "keylog", None),
    ]:
        d = os.path.join(ROOT, sub)
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            if not os.path.isfile(p) or os.path.getsize(p) > MAX_FILE:
                continue
            if target == "keylog" and not f.endswith(".keys"):
                continue
            if target == "signatures" and not f.endswith(".toml"):
                continue
            with open(p, "rb") as fh:
                text = fh.read()
            if target == "policy_files":
                m = mode if mode is not None else (1 if f.endswith(".csv") else 2 if f.endswith(".iptables") else 0)
                text = bytes([m]) + text
            seeds.add(target, text)
    for t in sorted(seeds.count):
        print(f"{t}: {seeds.count[t]} seeds")


if __name__ == "__main__":
    main()
