#!/usr/bin/env python3
"""make-spec-captures.py - build the captures of protocols no peer here can speak, from their
specifications (issue 15, class 4). Python standard library only; deterministic: the same
script gives byte-identical files.

Usage: python3 pcaps/make-spec-captures.py      (writes into pcaps/)

Each datagram is laid out field by field as the specification cited beside it defines it;
nothing is copied from a recording. Addresses are part B's (198.51.100.10 server, .20 client).
"""

import os
import struct
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRV, CLI = "198.51.100.10", "198.51.100.20"
MAC_SRV, MAC_CLI = bytes.fromhex("020000000010"), bytes.fromhex("020000000020")
T0 = 1_764_000_000  # 2025-11-24 16:00:00 UTC


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src, sport, dst, dport, payload, ident):
    """Ethernet + IPv4 + UDP with real checksums."""
    ulen = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident, 0x4000, 64, 17, 0,
                      ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    (smac, dmac) = (MAC_SRV, MAC_CLI) if src == SRV else (MAC_CLI, MAC_SRV)
    return dmac + smac + b"\x08\x00" + hdr + udp


def write_pcap(name, packets):
    """packets: list of (seconds after T0, frame)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, frame in packets:
        sec, usec = T0 + int(t), round((t - int(t)) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    print(f"{path}: {len(packets)} packets")


# ----------------------------------------------------------------------------------------
# Connectionless DCE/RPC ([C706] 12.5.3.1 and chapter 12.6; [MS-RPCE] 2.2.2): the 80-byte
# header, little-endian data representation (drep 10 00 00), interface UUIDs in NDR order.
# ----------------------------------------------------------------------------------------

def cl_pdu(ptype, flags1, iface, if_vers, activity, seqnum, opnum, body, boot=0x5F3A1C00,
           obj=b"\0" * 16, fragnum=0):
    hdr = struct.pack(
        "<BBBB3sB16s16s16sIIIHHHHHBB",
        4,                 # rpc_vers
        ptype,             # 0 request, 2 response
        flags1,            # 0x20 idempotent; 0x02 last fragment... see C706 12.5.3.1
        0,                 # flags2
        b"\x10\x00\x00",   # drep: little-endian integers, ASCII, IEEE floats
        0,                 # serial_hi
        obj,               # object UUID (nil)
        uuid.UUID(iface).bytes_le,
        activity.bytes_le,
        boot,              # server_boot (0 in a first request, C706 12.5.3.1)
        if_vers,           # major in the low 16 bits, minor in the high 16
        seqnum,
        opnum,
        0xFFFF,            # interface hint: none
        0xFFFF,            # activity hint: none
        len(body),         # len of the body
        fragnum,
        0,                 # auth_proto: none
        0,                 # serial_lo
    )
    assert len(hdr) == 80
    return hdr + body


def dcerpc_cl():
    epm = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
    wkssvc = "6bffd098-a112-3610-9833-46c3f87e345a"
    act1 = uuid.UUID("6a1b0c2d-3e4f-4a5b-8c6d-7e8f90a1b2c3")
    act2 = uuid.UUID("0d9e8f7a-6b5c-4d3e-a2f1-0e1d2c3b4a59")
    # ept_lookup (opnum 2) to the endpoint mapper on 135/udp: inquiry_type 0 (all), no
    # object, no interface, vers_option 1, entry handle nil, max_ents 500 (C706 appendix O).
    lookup = struct.pack("<II", 0, 0) + struct.pack("<II", 0, 1) + b"\0" * 20 + \
        struct.pack("<I", 500)
    # Reply: entry handle nil, num_ents 0, an empty conformant array, status
    # ept_s_not_registered (0x16c9a0d6).
    reply = b"\0" * 20 + struct.pack("<IIII", 0, 500, 0, 0) + struct.pack("<I", 0x16C9A0D6)
    # NetrWkstaGetInfo (opnum 0, [MS-WKST] 3.2.4.1) on a dynamic port: a unique pointer to
    # an empty server name, level 100.
    getinfo = struct.pack("<III", 0x00020000, 1, 0) + struct.pack("<I", 1) + \
        b"\0\0\0\0" + struct.pack("<I", 100)
    # Its response: level 100, a null pointer, status ERROR_ACCESS_DENIED (5).
    getinfo_rep = struct.pack("<III", 100, 0, 5)
    pkts = [
        (0.000, udp_frame(CLI, 50611, SRV, 135,
                          cl_pdu(0, 0x20 | 0x08, epm, 3, act1, 0, 2, lookup, boot=0), 1)),
        (0.002, udp_frame(SRV, 135, CLI, 50611,
                          cl_pdu(2, 0x08, epm, 3, act1, 0, 2, reply), 2)),
        (1.000, udp_frame(CLI, 50612, SRV, 49711,
                          cl_pdu(0, 0x08, wkssvc, 1, act2, 0, 0, getinfo, boot=0), 3)),
        (1.003, udp_frame(SRV, 49711, CLI, 50612,
                          cl_pdu(2, 0x08, wkssvc, 1, act2, 0, 0, getinfo_rep), 4)),
    ]
    write_pcap("dcerpc-cl-udp.pcap", pkts)


# ----------------------------------------------------------------------------------------
# RDP over UDP ([MS-RDPEUDP] 2.2.2 and 3.1.5.1): SYN, SYN+ACK and the client's ACK; all
# integers big-endian; SYN and SYN+ACK zero-padded to 1232 bytes (3.1.5.1.1 step 5).
# ----------------------------------------------------------------------------------------

FLAG_SYN, FLAG_ACK, FLAG_SYNLOSSY = 0x0001, 0x0004, 0x0200
FLAG_CORRELATION_ID, FLAG_SYNEX = 0x0800, 0x1000


def rdpudp_syn(source_ack, flags, isn, version, correlation=None, cookie=None):
    if correlation is not None:
        flags |= FLAG_CORRELATION_ID
    flags |= FLAG_SYNEX
    b = struct.pack("!IHH", source_ack, 64, flags)           # RDPUDP_FEC_HEADER
    b += struct.pack("!IHH", isn, 1232, 1232)                # RDPUDP_SYNDATA_PAYLOAD
    if correlation is not None:
        b += correlation + b"\0" * 16                        # RDPUDP_CORRELATION_ID_PAYLOAD
    b += struct.pack("!HH", 0x0001, version)                 # RDPUDP_SYNDATAEX_PAYLOAD
    if version == 0x0101:
        b += cookie                                          # cookieHash (version 3)
    return b.ljust(1232, b"\0")


def rdpudp_ack(source_ack):
    # RDPUDP_FEC_HEADER with RDPUDP_FLAG_ACK, an empty RDPUDP_ACK_VECTOR_HEADER padded to a
    # DWORD (2.2.2.7).
    return struct.pack("!IHH", source_ack, 64, FLAG_ACK) + struct.pack("!H", 0) + b"\0\0"


def rdp_udp():
    corr = bytes.fromhex("5f1e2d3c4b5a69788796a5b4c3d2e1f0")
    cookie = bytes(range(0x40, 0x60))  # SHA-256 of the server's certificate, 2.2.2.9
    pkts = [
        # Reliable, version 2, to 3389/udp.
        (0.000, udp_frame(CLI, 50701, SRV, 3389,
                          rdpudp_syn(0xFFFFFFFF, FLAG_SYN, 0x3A2B1C0D, 0x0002, corr), 11)),
        (0.004, udp_frame(SRV, 3389, CLI, 50701,
                          rdpudp_syn(0x3A2B1C0D, FLAG_SYN | FLAG_ACK, 0x71625344, 0x0002), 12)),
        (0.005, udp_frame(CLI, 50701, SRV, 3389, rdpudp_ack(0x71625344), 13)),
        # Lossy, version 3 (RDP-UDP2), to a port the TCP connection's multitransport
        # request could name instead of 3389: 50123/udp.
        (1.000, udp_frame(CLI, 50702, SRV, 50123,
                          rdpudp_syn(0xFFFFFFFF, FLAG_SYN | FLAG_SYNLOSSY, 0x0C0FFEE0, 0x0101,
                                     cookie=cookie), 14)),
        (1.003, udp_frame(SRV, 50123, CLI, 50702,
                          rdpudp_syn(0x0C0FFEE0, FLAG_SYN | FLAG_ACK | FLAG_SYNLOSSY,
                                     0x5EED5EED, 0x0101, cookie=cookie), 15)),
        (1.004, udp_frame(CLI, 50702, SRV, 50123, rdpudp_ack(0x5EED5EED), 16)),
    ]
    write_pcap("rdp-udp.pcap", pkts)


# ----------------------------------------------------------------------------------------
# MS-TURN ([MS-TURN] 2.2): the older form (RFC 3489 header with a 128-bit transaction id,
# the MAGIC-COOKIE attribute 0x000F = 0x72C64BC6 first) and the RFC 5389 form carrying the
# Microsoft attributes, as Skype for Business and Teams clients send them.
# ----------------------------------------------------------------------------------------

def stun_msg(ty, attrs, txid, cookie=True):
    body = b""
    for t, v in attrs:
        body += struct.pack("!HH", t, len(v)) + v
        body += b"\0" * (-len(v) % 4)
    head = struct.pack("!HH", ty, len(body))
    head += (b"\x21\x12\xa4\x42" + txid[:12]) if cookie else txid
    return head + body


def ms_turn():
    ms_cookie = (0x000F, struct.pack("!I", 0x72C64BC6))
    tx1 = bytes.fromhex("8f1e2d3c4b5a69788796a5b4c3d2e1f0")
    tx2 = bytes.fromhex("0a1b2c3d4e5f60718293a4b5")
    pkts = [
        # Allocate request (0x0003) in the older form, MS-VERSION 6 (2.2.2.14).
        (0.000, udp_frame(CLI, 50801, SRV, 3478,
                          stun_msg(0x0003, [ms_cookie, (0x8008, struct.pack("!I", 6))],
                                   tx1, cookie=False), 21)),
        # The relay's Allocate error response (0x0113): ERROR-CODE 401 and MS-VERSION. (No
        # REALM and NONCE: their values are not multiples of 4 bytes, and whether the older
        # form pads attributes is where readers of the older drafts differ.)
        (0.030, udp_frame(SRV, 3478, CLI, 50801,
                          stun_msg(0x0113, [ms_cookie,
                                            (0x0009, b"\0\0\x04\x01Unauthorized"),
                                            (0x8008, struct.pack("!I", 6))],
                                   tx1, cookie=False), 22)),
        # A Binding request in the RFC 5389 form with MS-VERSION, MS-SEQUENCE-NUMBER (a
        # 20-byte connection id and a 32-bit number, 2.2.2.17) and MS-SERVICE-QUALITY
        # (stream type 1 audio, service quality 0, 2.2.2.18), to a Teams relay port.
        (1.000, udp_frame(CLI, 50802, SRV, 3479,
                          stun_msg(0x0001, [(0x8008, struct.pack("!I", 6)),
                                            (0x8050, bytes(range(20)) + struct.pack("!I", 1)),
                                            (0x8055, struct.pack("!HH", 1, 0))], tx2), 23)),
        (1.020, udp_frame(SRV, 3479, CLI, 50802,
                          stun_msg(0x0101, [(0x0020, struct.pack("!HH4s", 1, 50802 ^ 0x2112,
                                                                 bytes(a ^ b for a, b in zip(ip4(CLI), b"\x21\x12\xa4\x42"))))],
                                   tx2), 24)),
    ]
    write_pcap("ms-turn.pcap", pkts)


# ----------------------------------------------------------------------------------------
# SIP after keep-alives (RFC 3261 10.2 REGISTER; RFC 5626 4.4.1 CRLF keep-alives): a
# client that pings its registrar with a double CRLF before a bare REGISTER (Via, From, To,
# Call-ID, CSeq only), and one that opens with a few junk bytes on a port that is not SIP's.
# ----------------------------------------------------------------------------------------

def sip_keepalive():
    def register(port, branch, call_id):
        return ("REGISTER sip:contoso.test SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {CLI}:{port};branch=z9hG4bK{branch}\r\n"
                "From: <sip:alice@contoso.test>;tag=1\r\n"
                "To: <sip:alice@contoso.test>\r\n"
                f"Call-ID: {call_id}@{CLI}\r\n"
                "CSeq: 1 REGISTER\r\n"
                "Content-Length: 0\r\n\r\n").encode()
    pkts = [
        # Unanswered: a double CRLF, then the REGISTER (to 5060, the registrar's port).
        (0.000, udp_frame(CLI, 5062, SRV, 5060, b"\r\n\r\n", 31)),
        (0.500, udp_frame(CLI, 5062, SRV, 5060, register(5062, "a1", "k1"), 32)),
        # To 5080: three junk bytes first, then the REGISTER and the registrar's 401.
        (1.000, udp_frame(CLI, 5064, SRV, 5080, b"jaK", 33)),
        (1.200, udp_frame(CLI, 5064, SRV, 5080, register(5064, "b2", "k2"), 34)),
        (1.210, udp_frame(SRV, 5080, CLI, 5064,
                          ("SIP/2.0 401 Unauthorized\r\n"
                           f"Via: SIP/2.0/UDP {CLI}:5064;branch=z9hG4bKb2\r\n"
                           "From: <sip:alice@contoso.test>;tag=1\r\n"
                           "To: <sip:alice@contoso.test>;tag=9\r\n"
                           f"Call-ID: k2@{CLI}\r\n"
                           "CSeq: 1 REGISTER\r\n"
                           "Content-Length: 0\r\n\r\n").encode(), 35)),
    ]
    write_pcap("sip-keepalive-register.pcap", pkts)


# ----------------------------------------------------------------------------------------
# H.225.0 RAS (ITU-T H.225.0 clause 7 and Annex H, X.691 aligned PER): gatekeeper discovery
# from a terminal to 1719/udp and the gatekeeper's confirm. tshark decodes both without error.
# ----------------------------------------------------------------------------------------

def h225_ras():
    oid = bytes.fromhex("060008914a0004")  # 0.0.8.2250.0.4
    # RasMessage choice 0 (GRQ) with its extension bit and 4 optional-field bits (2 bytes);
    # requestSeqNum 1 (encoded as 0, the range starts at 1); protocolIdentifier; rasAddress
    # ipAddress (choice bits, then the aligned 4 octets and port); endpointType: terminal.
    grq = (b"\x00\x00" + struct.pack("!H", 0) + oid + b"\x00" + ip4(CLI)
           + struct.pack("!H", 1719) + b"\x02\x00")
    # GatekeeperConfirm: choice 1, no optional fields; the same sequence number and
    # identifier, and the gatekeeper's rasAddress.
    gcf = b"\x04\x00" + struct.pack("!H", 0) + oid + b"\x00" + ip4(SRV) + struct.pack("!H", 1719)
    pkts = [
        (0.000, udp_frame(CLI, 1719, SRV, 1719, grq, 41)),
        (0.010, udp_frame(SRV, 1719, CLI, 1719, gcf, 42)),
        # The same discovery to a gatekeeper on another port.
        (1.000, udp_frame(CLI, 50719, SRV, 41719, grq, 43)),
        (1.010, udp_frame(SRV, 41719, CLI, 50719, gcf, 44)),
    ]
    write_pcap("h225-ras.pcap", pkts)


# ----------------------------------------------------------------------------------------
# H.225.0 RAS admission and disengage (the same clause; X.691 aligned PER): a call's
# AdmissionRequest and the gatekeeper's AdmissionConfirm, a second ARQ refused with
# AdmissionReject, and the call's DisengageRequest and DisengageConfirm. These carry no
# protocol identifier; the request's and the answer's requestSeqNum agree. tshark decodes
# every message without error.
# ----------------------------------------------------------------------------------------

def bmp(s):
    return s.encode("utf-16-be")


def arq(seq, endpoint, alias, conf_id, crv):
    # Choice 9 (6 bits), ARQ's extension bit and 7 optional-field bits (none present): 14
    # bits, so requestSeqNum starts at octet 2 (value - 1, the range starts at 1).
    b = b"\x24\x00" + struct.pack("!H", seq - 1)
    # callType pointToPoint (extension bit, 2 index bits) and endpointIdentifier's length
    # (1..128, 7 bits), aligned; then its characters.
    bits = (0b000 << 7) | (len(endpoint) - 1)
    b += struct.pack("!H", bits << 6) + bmp(endpoint)
    # srcInfo: one AliasAddress, h323-ID (extension bit, index 1), length 1..256 in an octet.
    b += b"\x01" + b"\x40" + bytes([len(alias) - 1]) + bmp(alias)
    # bandWidth 640 (2 octets, length in 2 bits), callReferenceValue, conferenceID (16
    # octets), activeMC and answerCall false.
    b += b"\x40" + struct.pack("!H", 640) + struct.pack("!H", crv) + conf_id + b"\x00"
    return b


def acf(seq, ip, port):
    # Choice 10, extension bit, irrMaxNumber and nonStandardData absent: 9 bits.
    b = b"\x28\x00" + struct.pack("!H", seq - 1)
    # bandWidth 640; callModel direct (2 bits) and destCallSignalAddress ipAddress (4 bits),
    # aligned; the address and port.
    return b + b"\x40" + struct.pack("!H", 640) + b"\x00" + ip4(ip) + struct.pack("!H", port)


def arj(seq):
    # Choice 11, extension bit, nonStandardData absent: 8 bits; requestSeqNum at octet 1;
    # rejectReason requestDenied (extension bit, 3 index bits).
    return b"\x2c" + struct.pack("!H", seq - 1) + b"\x20"


def drq(seq, endpoint, conf_id, crv):
    # Choice 15, extension bit, nonStandardData absent: 8 bits; endpointIdentifier's
    # length (7 bits) aligned; conferenceID, callReferenceValue; disengageReason
    # normalDrop (extension bit, 2 index bits).
    b = b"\x3c" + struct.pack("!H", seq - 1) + bytes([(len(endpoint) - 1) << 1]) + bmp(endpoint)
    return b + conf_id + struct.pack("!H", crv) + b"\x20"


def dcf(seq):
    # Choice 16, extension bit, nonStandardData absent.
    return b"\x40" + struct.pack("!H", seq - 1)


def h225_ras_admission():
    conf = bytes.fromhex("6f1c3d2a8b4e4c1f9a0d5e6f7a8b9c0d")
    pkts = [
        (0.000, udp_frame(CLI, 1719, SRV, 1719, arq(7, "EP01", "alice", conf, 21), 51)),
        (0.012, udp_frame(SRV, 1719, CLI, 1719, acf(7, SRV, 1720), 52)),
        # A terminal on an ephemeral port asks a gatekeeper on another port and is refused.
        (1.000, udp_frame(CLI, 50720, SRV, 41719, arq(8, "EP01", "bob", conf, 22), 53)),
        (1.011, udp_frame(SRV, 41719, CLI, 50720, arj(8), 54)),
        # The first call ends, from another terminal port.
        (2.000, udp_frame(CLI, 50721, SRV, 1719, drq(9, "EP01", conf, 21), 55)),
        (2.010, udp_frame(SRV, 1719, CLI, 50721, dcf(9), 56)),
    ]
    write_pcap("h225-ras-admission.pcap", pkts)


if __name__ == "__main__":
    dcerpc_cl()
    rdp_udp()
    ms_turn()
    sip_keepalive()
    h225_ras()
    h225_ras_admission()
