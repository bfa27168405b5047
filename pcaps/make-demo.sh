#!/usr/bin/env bash
# make-demo.sh - build pcaps/demo-exchange-day.pcap, "a day in a small Exchange 2016
# organisation", from the real-peer recordings in this folder (see PROVENANCE-a.md and
# PROVENANCE-b.md). The address plan and the list of flows are documented in DEMO.md;
# keep the two in step.
#
# For every flow (a "job" below) the script
#   1. cuts the packets it needs out of one recording (tcpdump read filter),
#   2. fixes payload bytes that name the recorded hosts (python helper written below):
#      IPv4 addresses in SIP/SDP and SMTP text (adjusting TCP sequence numbers, IP/UDP
#      lengths and the SIP Content-Length when the text changes length), A/AAAA records in
#      DNS answers (by owner name: mail/autodiscover/contoso.test -> Mailbox, else by host),
#   3. rewrites addresses and, where needed, ports with tcprewrite --pnat/--portmap --fixcsum,
#      then sets Ethernet addresses derived from the new IP addresses (02:00:a:b:c:d),
#   4. shifts its timestamps with editcap -t so that the recording starts at the job's time
#      on the demo day (2026-11-23, UTC);
# then merges all parts with mergecap into one classic (microsecond) Ethernet pcap.
#
# Deterministic: the same recordings give a byte-identical output (no random input, no
# wall-clock time; parts are merged in a fixed order). Re-runnable: scratch files live in a
# temporary directory that is removed on exit; the output is replaced atomically.
# Recordings that are optional (part B: DCE/RPC, SMB, RDP) are skipped with a warning when
# they are missing; a missing mandatory recording is an error.
#
# Usage: pcaps/make-demo.sh [OUTPUT]     (default pcaps/demo-exchange-day.pcap)
# Needs: tcpdump, tcprewrite (tcpreplay), editcap, mergecap, capinfos, tshark, python3.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/demo-exchange-day.pcap}
DAY=2026-11-23
MAX_BYTES=$((1536 * 1024))

for t in tcpdump tcprewrite editcap mergecap capinfos tshark python3; do
    command -v "$t" >/dev/null || { echo "make-demo.sh: $t not found" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/make-demo.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/parts"

# ---------------------------------------------------------------------------------------
# Address plan (DEMO.md, "Address plan")
# ---------------------------------------------------------------------------------------
# recorded addresses
A_S=192.0.2.10     A_C=192.0.2.20       # part A server / client
A6_S=2001:db8::10  A6_C=2001:db8::20    # part A IPv6
B_S=198.51.100.10  B_C=198.51.100.20    # part B server / client
# demo addresses
REMOTE1=203.0.113.50    # remote user (Outlook on a laptop at home)
REMOTE2=203.0.113.51    # remote user (phone / IMAP+POP client)
INET_MTA=198.51.100.25  # Internet MTA (fabrikam.test)
INET_MTA2=198.51.100.27 # another Internet host, talks SMTP to 8025
ATTACKER=203.0.113.66   # Internet attacker
EDGE=172.16.10.5        # Edge Transport (perimeter)
MBX1=10.1.1.10          # Mailbox server 1
MBX2=10.1.1.11          # Mailbox server 2
DC=10.1.2.10            # domain controller: AD, GC, Kerberos, DNS
CL1=10.1.10.21 CL2=10.1.10.22 CL3=10.1.10.23   # internal clients
GW=10.1.3.20            # UM IP gateway / PBX
ADMIN=10.1.4.5          # admin workstation
V6CL=fd00:1:10::21 V6MBX=fd00:1:1::10          # IPv6 client and Mailbox
# what names resolve to in the rewritten DNS answers
DNS_NAMES="mail.contoso.test=$MBX1,autodiscover.contoso.test=$MBX1,contoso.test=$MBX1"
DNS_NAMES+=",dc01.contoso.test=$DC,mail.contoso.test=$V6MBX,autodiscover.contoso.test=$V6MBX"

# ---------------------------------------------------------------------------------------
# Python helper: payload/MAC fix-up, first timestamp -> editcap delta
# ---------------------------------------------------------------------------------------
cat >"$TMP/fix.py" <<'PY'
"""make-demo.sh helper (classic pcap, Ethernet).

  fix.py delta REC DATE HH:MM:SS      print the editcap -t offset that moves REC's first
                                      packet to DATE HH:MM:SS UTC (exact, microseconds)
  fix.py macs IN OUT                  Ethernet source/destination = 02:00:<IPv4 bytes>
                                      (02:06:<last 4 IPv6 bytes>) of the packet's addresses
  fix.py fix IN OUT --map OLD=NEW,... [--text-ports P,...] [--dns NAME=ADDR,...]
      - --text-ports: in TCP/UDP payloads to or from those ports, replace the textual OLD
        IPv4 addresses by NEW (SIP messages: per message, with Content-Length recomputed);
        lengths and TCP sequence/acknowledgement numbers are adjusted;
      - --dns: in DNS messages on port 53, A/AAAA records whose owner is a listed name get
        that name's address; other A/AAAA records holding a mapped address get the new one.
      IP header addresses and checksums are left to tcprewrite (--pnat, --fixcsum).
"""
import ipaddress
import re
import struct
import sys
from datetime import datetime, timezone


def read_pcap(path):
    data = open(path, 'rb').read()
    magics = {b'\xd4\xc3\xb2\xa1': ('<', 1), b'\xa1\xb2\xc3\xd4': ('>', 1),
              b'\x4d\x3c\xb2\xa1': ('<', 1000), b'\xa1\xb2\x3c\x4d': ('>', 1000)}
    if data[:4] not in magics:
        sys.exit('%s: not a classic pcap file' % path)
    end, div = magics[data[:4]]
    linktype = struct.unpack(end + 'I', data[20:24])[0] & 0x0FFFFFFF
    pkts, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(end + 'IIII', data[off:off + 16])
        off += 16
        pkts.append([sec, frac, orig, bytearray(data[off:off + incl])])
        off += incl
    return data[:24], end, div, linktype, pkts


def cmd_delta(path, day, hms):
    _, _, div, _, pkts = read_pcap(path)
    if not pkts:
        sys.exit('%s: no packets' % path)
    first = pkts[0][0] * 1000000 + pkts[0][1] // div
    t = datetime.strptime(day + ' ' + hms, '%Y-%m-%d %H:%M:%S').replace(tzinfo=timezone.utc)
    d = int(t.timestamp()) * 1000000 - first
    sign = '-' if d < 0 else ''
    print('%s%d.%06d' % (sign, abs(d) // 1000000, abs(d) % 1000000))


def mac_for(addr):
    b = addr.packed
    return (b'\x02\x00' + b) if len(b) == 4 else (b'\x02\x06' + b[-4:])


def dns_name(msg, off):
    """(lower-case name, offset after the name in place)"""
    labels, end, hops = [], None, 0
    while True:
        if off >= len(msg):
            raise ValueError('name past end')
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            if hops > 32:
                raise ValueError('pointer loop')
            continue
        if n == 0:
            if end is None:
                end = off + 1
            return '.'.join(labels).lower(), end
        labels.append(msg[off + 1:off + 1 + n].decode('ascii', 'replace'))
        off += 1 + n


def fix_dns(msg, amap, names):
    """Rewrite A/AAAA rdata in place (same length). msg: bytearray of one DNS message."""
    if len(msg) < 12:
        return
    qd, an, ns, ar = struct.unpack('!HHHH', msg[4:12])
    off = 12
    for _ in range(qd):
        _, off = dns_name(msg, off)
        off += 4
    for _ in range(an + ns + ar):
        name, off = dns_name(msg, off)
        rtype, _, _, rdlen = struct.unpack('!HHIH', msg[off:off + 10])
        off += 10
        if (rtype, rdlen) in ((1, 4), (28, 16)):
            old = ipaddress.ip_address(bytes(msg[off:off + rdlen]))
            new = names.get((name, old.version)) or amap.get(old)
            if new is not None:
                msg[off:off + rdlen] = new.packed
        off += rdlen


SIP_START = re.compile(rb'^(SIP/2\.0 \d{3} |[A-Z]+ sips?:)')
CLEN = re.compile(rb'(?im)^(content-length|l)([ \t]*:[ \t]*)(\d+)')


def make_subst(amap):
    tmap = {str(o).encode(): str(n).encode() for o, n in amap.items() if o.version == 4}
    if not tmap:
        return lambda b: b
    pat = re.compile(rb'(?<![0-9.])(' + b'|'.join(re.escape(k) for k in
                     sorted(tmap, key=len, reverse=True)) + rb')(?![0-9])')
    return lambda b: pat.sub(lambda m: tmap[m.group(1)], b)


def fix_text(payload, subst):
    """Substitute addresses; SIP messages one by one with Content-Length recomputed."""
    if not SIP_START.match(payload):
        return subst(payload)
    out, pos = b'', 0
    while pos < len(payload):
        hend = payload.find(b'\r\n\r\n', pos)
        if hend < 0 or not SIP_START.match(payload[pos:]):
            return out + subst(payload[pos:])
        head = payload[pos:hend + 4]
        m = CLEN.search(head)
        clen = int(m.group(3)) if m else 0
        body = payload[hend + 4:hend + 4 + clen]
        nhead, nbody = subst(head), subst(body)
        m = CLEN.search(nhead)
        if m:
            width = len(m.group(3))
            if nhead[m.start(3) - 1:m.start(3)] == b' ':   # SIPp pads: keep the field width
                lead = len(m.group(2)) - len(m.group(2).rstrip(b' '))
                width += lead
                start = m.start(3) - lead
            else:
                start = m.start(3)
            val = str(len(nbody)).encode()
            val = val.rjust(width) if len(val) <= width else val
            nhead = nhead[:start] + val + nhead[m.end(3):]
        out += nhead + nbody
        pos = hend + 4 + clen
    return out


def cmd_macs(inp, outp):
    """Ethernet addresses derived from the IP addresses the packets carry."""
    hdr, end, _, linktype, pkts = read_pcap(inp)
    out = bytearray(hdr)
    for sec, frac, orig, f in pkts:
        et = struct.unpack('!H', f[12:14])[0] if len(f) >= 14 else 0
        if et == 0x0800 and len(f) >= 34:
            f[0:6], f[6:12] = mac_for(ipaddress.ip_address(bytes(f[30:34]))), \
                mac_for(ipaddress.ip_address(bytes(f[26:30])))
        elif et == 0x86DD and len(f) >= 54:
            f[0:6], f[6:12] = mac_for(ipaddress.ip_address(bytes(f[38:54]))), \
                mac_for(ipaddress.ip_address(bytes(f[22:38])))
        out += struct.pack(end + 'IIII', sec, frac, len(f), orig) + f
    open(outp, 'wb').write(out)


def cmd_fix(inp, outp, args):
    amap, ports, names = {}, set(), {}
    it = iter(args)
    for a in it:
        v = next(it)
        if a == '--map':
            for kv in v.split(','):
                o, n = kv.split('=')
                amap[ipaddress.ip_address(o)] = ipaddress.ip_address(n)
        elif a == '--text-ports':
            ports = {int(p) for p in v.split(',') if p}
        elif a == '--dns':
            for kv in v.split(','):
                name, addr = kv.split('=')
                addr = ipaddress.ip_address(addr)
                names[(name.lower().rstrip('.'), addr.version)] = addr
        else:
            sys.exit('fix.py: unknown option ' + a)
    subst = make_subst(amap)
    hdr, end, _, linktype, pkts = read_pcap(inp)
    if linktype != 1:
        sys.exit('%s: link type %d, expected Ethernet' % (inp, linktype))
    base, changes = {}, {}   # per direction: first seq; [(rel_seq, old_len, delta)]

    def shift(key, rel):
        return sum(d for s, l, d in changes.get(key, ()) if s + l <= rel)

    out = bytearray(hdr)
    for sec, frac, orig, f in pkts:
        incl = len(f)
        et = struct.unpack('!H', f[12:14])[0] if len(f) >= 14 else 0
        if et == 0x0800 and len(f) >= 34:
            ip, ihl = 14, (f[14] & 0x0F) * 4
            src, dst = ipaddress.ip_address(bytes(f[26:30])), ipaddress.ip_address(bytes(f[30:34]))
            proto, iplen = f[23], struct.unpack('!H', f[16:18])[0]
            frag = struct.unpack('!H', f[20:22])[0] & 0x3FFF
            l4, ipend = ip + ihl, ip + iplen
        elif et == 0x86DD and len(f) >= 54:
            ip = 14
            src, dst = ipaddress.ip_address(bytes(f[22:38])), ipaddress.ip_address(bytes(f[38:54]))
            proto, frag = f[20], 0
            l4, ipend = 54, 54 + struct.unpack('!H', f[18:20])[0]
        else:
            out += struct.pack(end + 'IIII', sec, frac, len(f), orig) + f
            continue
        if frag or ipend > len(f) or proto not in (6, 17):
            out += struct.pack(end + 'IIII', sec, frac, len(f), orig) + f
            continue
        sport, dport = struct.unpack('!HH', f[l4:l4 + 4])
        if proto == 6:
            doff = (f[l4 + 12] >> 4) * 4
            pay = l4 + doff
        else:
            pay = l4 + 8
        payload = bytes(f[pay:ipend])
        new = payload
        if payload and (sport == 53 or dport == 53) and names:
            buf = bytearray(payload)
            try:
                if proto == 6 and len(buf) >= 2 and struct.unpack('!H', buf[:2])[0] == len(buf) - 2:
                    msg = buf[2:]
                    fix_dns(msg, amap, names)
                    buf[2:] = msg
                elif proto == 17:
                    fix_dns(buf, amap, names)
            except (ValueError, struct.error, IndexError):
                pass
            new = bytes(buf)
        elif payload and (sport in ports or dport in ports):
            new = fix_text(payload, subst)
        delta = len(new) - len(payload)
        if proto == 6:
            key, rev = (src, sport, dst, dport), (dst, dport, src, sport)
            seq, ack = struct.unpack('!II', f[l4 + 4:l4 + 12])
            b = base.setdefault(key, seq)
            rel = (seq - b) & 0xFFFFFFFF
            nseq = (seq + shift(key, rel)) & 0xFFFFFFFF
            if delta and not any(s == rel for s, _, _ in changes.get(key, ())):
                changes.setdefault(key, []).append((rel, len(payload), delta))
            nack = ack
            if f[l4 + 13] & 0x10 and rev in base:
                nack = (ack + shift(rev, (ack - base[rev]) & 0xFFFFFFFF)) & 0xFFFFFFFF
            f[l4 + 4:l4 + 12] = struct.pack('!II', nseq, nack)
        if delta:
            f[pay:ipend] = new
            if et == 0x0800:
                f[16:18] = struct.pack('!H', iplen + delta)
            else:
                f[18:20] = struct.pack('!H', ipend - 54 + delta)
            if proto == 17:
                f[l4 + 4:l4 + 6] = struct.pack('!H', struct.unpack('!H', f[l4 + 4:l4 + 6])[0] + delta)
        elif new != payload:
            f[pay:ipend] = new
        norig = len(f) if orig == incl else orig + delta
        out += struct.pack(end + 'IIII', sec, frac, len(f), norig) + f
    open(outp, 'wb').write(out)


if __name__ == '__main__':
    if sys.argv[1:2] == ['delta'] and len(sys.argv) == 5:
        cmd_delta(*sys.argv[2:])
    elif sys.argv[1:2] == ['macs'] and len(sys.argv) == 4:
        cmd_macs(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ['fix'] and len(sys.argv) >= 4:
        cmd_fix(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
PY

# ---------------------------------------------------------------------------------------
# Job runner
# ---------------------------------------------------------------------------------------
NJOB=0
SKIPPED=()

# pnat_arg "OLD=NEW,OLD=NEW" -> tcprewrite --pnat value
pnat_arg() {
    local kv o n out=() IFS=,
    for kv in $1; do
        o=${kv%%=*} n=${kv#*=}
        if [[ $o == *:* ]]; then out+=("[$o]/128:[$n]/128"); else out+=("$o/32:$n/32"); fi
    done
    echo "${out[*]}"
}

# conn_filter REC DISPLAY_FILTER -> tcpdump filter selecting the TCP connections (by client
# port) that carry a packet matching DISPLAY_FILTER; empty when none matches
conn_filter() {
    local p out=()
    for p in $(tshark -r "$HERE/$1" -Y "$2" -T fields -e tcp.srcport 2>/dev/null | sort -un); do
        out+=("tcp port $p")
    done
    local IFS='|'
    local s="${out[*]}"
    [ -n "$s" ] && echo "(${s//|/ or })"
    return 0
}

# job TIME RECORDING FILTER MAP PORTMAP OPTS
#   TIME      HH:MM:SS on $DAY at which the recording's first packet is placed (every part
#             cut from one recording keeps its offset from that first packet)
#   FILTER    tcpdump read filter, "-" for all packets
#   MAP       OLD=NEW,... addresses (recorded -> demo)
#   PORTMAP   tcprewrite --portmap value, "-" for none
#   OPTS      comma list: text=P:P (payload text fix on these ports), dns, optional
job() {
    local t=$1 rec=$2 filt=$3 map=$4 pmap=$5 opts=${6:-}
    local id
    NJOB=$((NJOB + 1))
    id=$(printf '%02d' "$NJOB")
    if [ ! -s "$HERE/$rec" ]; then
        if [[ ,$opts, == *,optional,* ]]; then
            SKIPPED+=("job $id ($t $rec): recording missing, skipped")
            echo "make-demo.sh: warning: $rec missing, job $id skipped" >&2
            return 0
        fi
        echo "make-demo.sh: $rec missing (job $id)" >&2
        exit 1
    fi
    if [ -z "$filt" ]; then
        echo "make-demo.sh: job $id ($rec): empty filter (no matching connection?)" >&2
        exit 1
    fi
    local w=$TMP/$id
    if [ "$filt" = - ]; then
        cp "$HERE/$rec" "$w.a"
    else
        tcpdump -r "$HERE/$rec" -w "$w.a" "$filt" 2>/dev/null
    fi
    local n
    n=$(capinfos -c -M -T -r "$w.a" | cut -f2)
    [ "$n" -gt 0 ] || { echo "make-demo.sh: job $id ($rec, $filt): no packets" >&2; exit 1; }

    local fixargs=(--map "$map") o
    local IFS=,
    for o in $opts; do
        case $o in
            text=*) fixargs+=(--text-ports "$(echo "${o#text=}" | tr : ,)") ;;
            dns) fixargs+=(--dns "$DNS_NAMES") ;;
            optional) ;;
            *) echo "make-demo.sh: job $id: unknown option $o" >&2; exit 1 ;;
        esac
    done
    unset IFS
    python3 "$TMP/fix.py" fix "$w.a" "$w.b" "${fixargs[@]}"

    local rw=(--pnat="$(pnat_arg "$map")" --fixcsum)
    [ "$pmap" = - ] || rw+=(--portmap="$pmap")
    tcprewrite -i "$w.b" -o "$w.c" "${rw[@]}" >/dev/null
    # MACs last: tcprewrite 4.4.3 puts 33:33:... on every IPv6 frame (appneta/tcpreplay#793)
    python3 "$TMP/fix.py" macs "$w.c" "$w.d"

    local delta
    delta=$(python3 "$TMP/fix.py" delta "$HERE/$rec" "$DAY" "$t")
    editcap -F pcap -t "$delta" "$w.d" "$TMP/parts/$id.pcap"
    printf '  job %s  %s  %-26s %4d pkts  %s\n' "$id" "$t" "$rec" "$n" "$map" >&2
}

echo "make-demo.sh: building $OUT" >&2

# connections cut out of http-exchange-plain.pcap for the admin and for the odd-port flow
ADMIN_CONNS=$(conn_filter http-exchange-plain.pcap 'http.request.uri matches "^/(PowerShell|ecp)/"')
OWA_CONN=$(conn_filter http-exchange-plain.pcap 'http.request.uri == "/owa/"')
if [ -z "$ADMIN_CONNS" ] || [ -z "$OWA_CONN" ]; then
    echo "make-demo.sh: http-exchange-plain.pcap lacks the /PowerShell/, /ecp/ or /owa/ request" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------
# The day (DEMO.md, "Flows"); times are UTC on $DAY. Keep this list and DEMO.md in step.
# ---------------------------------------------------------------------------------------
# 08:00 Mailbox 1 starts its day against the domain controller
job 08:00:05 dns-udp.pcap        ip   "$B_C=$MBX1,$B_S=$DC" - dns
job 08:00:20 kerberos-udp.pcap   -    "$B_C=$MBX1,$B_S=$DC" -
job 08:00:35 kerberos-tcp.pcap   -    "$B_C=$MBX1,$B_S=$DC" -
job 08:00:50 ldap-389.pcap       -    "$B_C=$MBX1,$B_S=$DC" -
job 08:01:05 cldap-389-udp.pcap  -    "$B_C=$MBX1,$B_S=$DC" -
job 08:01:20 ldap-gc-3268.pcap   -    "$B_C=$MBX1,$B_S=$DC" -
job 08:01:35 dns-tcp.pcap        ip   "$B_C=$MBX1,$B_S=$DC" - dns
job 08:02:00 dcerpc-epm-dynamic.pcap - "$B_C=$MBX1,$B_S=$DC" - optional
job 08:02:30 smb-445.pcap        -    "$B_C=$MBX1,$B_S=$DC" - optional
# EdgeSync from the subscribed Mailbox server
job 08:05:00 edgesync-50636.pcap -    "$B_C=$MBX1,$B_S=$EDGE" -
# internal client: Outlook over HTTPS, then exchangelib (its DNS goes to the DC)
job 08:12:00 https-exchange.pcap -    "$A_C=$CL1,$A_S=$MBX1" -
job 08:20:00 https-exchangelib.pcap "udp port 53"     "$A_C=$CL1,$A_S=$DC" - dns
job 08:20:00 https-exchangelib.pcap "not udp port 53" "$A_C=$CL1,$A_S=$MBX1" -
# inbound Internet mail: Internet MTA -> Edge -> Mailbox
job 08:41:00 smtp-exchange-25.pcap - "$A_C=$INET_MTA,$A_S=$EDGE" - text=25
job 08:41:05 smtp-exchange-25.pcap - "$A_C=$EDGE,$A_S=$MBX1" - text=25
# internal client over plain HTTP behind SSL offload (all but the admin URLs)
job 09:02:00 http-exchange-plain.pcap "not $ADMIN_CONNS" "$A_C=$CL2,$A_S=$MBX2" -
# UM: call from the IP gateway to the UM Call Router (5060/tcp), RTP 16000 <-> 17000
job 09:30:00 sip-tcp-call.pcap   -    "$A_C=$GW,$A_S=$MBX1" - text=5060
job 09:47:00 imaps-993.pcap      -    "$A_C=$REMOTE2,$A_S=$MBX1" -
job 10:05:00 smtp-exchange-587.pcap - "$A_C=$CL3,$A_S=$MBX1" - text=587
# IPv6 client
job 10:30:00 http-exchange-ipv6.pcap - "$A6_C=$V6CL,$A6_S=$V6MBX" -
job 10:31:00 imap-143-ipv6.pcap  -    "$A6_C=$V6CL,$A6_S=$V6MBX" -
# admin workstation: ECP and remote PowerShell, file share, RDP
job 10:45:00 http-exchange-plain.pcap "$ADMIN_CONNS" "$A_C=$ADMIN,$A_S=$MBX1" -
job 10:46:00 smb-445.pcap        -    "$B_C=$ADMIN,$B_S=$MBX1" - optional
job 10:50:00 rdp.pcap            -    "$B_C=$ADMIN,$B_S=$MBX1" - optional
# Front End Transport on Mailbox 1 -> Transport service on Mailbox 2
job 11:20:00 smtp-exchange-2525.pcap - "$A_C=$MBX1,$A_S=$MBX2" - text=2525
job 11:45:00 pop3s-995.pcap      -    "$A_C=$REMOTE2,$A_S=$MBX2" -
# noon: Mailbox 2 against the domain controller, then its EdgeSync
job 12:00:00 ldap-389.pcap       -    "$B_C=$MBX2,$B_S=$DC" -
job 12:00:15 kerberos-udp.pcap   -    "$B_C=$MBX2,$B_S=$DC" -
job 12:00:30 dns-udp.pcap        ip   "$B_C=$MBX2,$B_S=$DC" - dns
job 12:03:00 edgesync-50636.pcap -    "$B_C=$MBX2,$B_S=$EDGE" -
job 12:30:00 https-exchange.pcap -    "$A_C=$REMOTE1,$A_S=$MBX1" -
# NOT expected: internal client sends mail straight to the Internet (AUTH PLAIN in clear)
job 13:13:00 smtp-auth-plain-25.pcap - "$A_C=$CL2,$A_S=$INET_MTA" - text=25
# NOT expected (Exchange 2016): Outlook trying MAPI/RPC over TCP (135 + dynamic port)
job 13:40:00 dcerpc-exchange-binds.pcap - "$B_C=$CL3,$B_S=$MBX2" - optional
# UM: call to the UM worker process port 5065 on Mailbox 2
job 14:10:00 sip-um-5065.pcap    -    "$A_C=$GW,$A_S=$MBX2" - text=5065
# NOT expected: HTTP (GET /owa/) on the SIP port 5060
job 14:52:00 http-exchange-plain.pcap "$OWA_CONN" "$A_C=$CL3,$A_S=$MBX1" 80:5060
# outbound Internet mail: Mailbox -> Edge -> Internet MTA
job 15:05:00 smtp-exchange-25.pcap - "$A_C=$MBX2,$A_S=$EDGE" - text=25
job 15:05:04 smtp-plain-25.pcap  -    "$A_C=$EDGE,$A_S=$INET_MTA" - text=25
# NOT expected: AD LDS plain LDAP from the Internet
job 15:58:00 adlds-50389.pcap    ip   "$B_C=$ATTACKER,$B_S=$EDGE" -
job 16:20:00 smtp-exchange-587.pcap - "$A_C=$REMOTE1,$A_S=$MBX1" - text=587
# NOT expected: SMTP on port 8025 to the Edge (an Exim, not Exchange, answers)
job 16:45:00 smtp-plain-25.pcap  -    "$A_C=$INET_MTA2,$A_S=$EDGE" 25:8025 text=25
# NOT expected: POP3 in clear text from the Internet
job 17:10:00 pop3-110.pcap       -    "$A_C=$REMOTE2,$A_S=$MBX1" -
# end of the day: Mailbox 2 renews its Kerberos tickets and queries the Global Catalog
job 17:55:00 kerberos-tcp.pcap   -    "$B_C=$MBX2,$B_S=$DC" -
job 17:55:15 ldap-gc-3268.pcap   -    "$B_C=$MBX2,$B_S=$DC" -

# ---------------------------------------------------------------------------------------
# Merge (fixed order of inputs; mergecap orders packets by time) and check
# ---------------------------------------------------------------------------------------
mergecap -F pcap -w "$TMP/demo.pcap" "$TMP"/parts/*.pcap

python3 - "$TMP/demo.pcap" "$DAY" <<'PY'
import struct, sys
from datetime import datetime, timezone
path, day = sys.argv[1], sys.argv[2]
data = open(path, 'rb').read()
assert data[:4] == b'\xd4\xc3\xb2\xa1', 'not a little-endian microsecond pcap'
assert struct.unpack('<I', data[20:24])[0] == 1, 'not Ethernet'
lo = int(datetime.strptime(day + ' 08:00', '%Y-%m-%d %H:%M').replace(tzinfo=timezone.utc).timestamp())
hi = lo + 10 * 3600
off, prev, n = 24, 0, 0
while off < len(data):
    s, us, incl, _ = struct.unpack('<IIII', data[off:off + 16])
    t = s * 1000000 + us
    assert lo * 1000000 <= t <= hi * 1000000, 'packet %d outside 08:00-18:00' % (n + 1)
    assert t >= prev, 'packet %d out of order' % (n + 1)
    prev, off, n = t, off + 16 + incl, n + 1
PY

# a 5-tuple used by two jobs would show up as one conversation lasting hours
long=$(tshark -r "$TMP/demo.pcap" -q -z conv,tcp -z conv,udp 2>/dev/null |
    awk '$2 == "<->" && $(NF) + 0 > 60 {print}')
if [ -n "$long" ]; then
    echo "make-demo.sh: conversations longer than 60 s (a 5-tuple reused by two jobs?):" >&2
    echo "$long" >&2
    exit 1
fi
bad=$(tshark -r "$TMP/demo.pcap" -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE \
    -o udp.check_checksum:TRUE -Y 'ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0' \
    2>/dev/null | wc -l)
[ "$bad" -eq 0 ] || { echo "make-demo.sh: $bad packets with bad checksums" >&2; exit 1; }
size=$(stat -c %s "$TMP/demo.pcap")
[ "$size" -le "$MAX_BYTES" ] || { echo "make-demo.sh: output is $size bytes (> $MAX_BYTES)" >&2; exit 1; }

mv -f "$TMP/demo.pcap" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do echo "make-demo.sh: $s" >&2; done
echo "make-demo.sh: wrote $OUT ($size bytes, $NJOB jobs, ${#SKIPPED[@]} skipped)" >&2
capinfos -c -u -a -e "$OUT" | sed 1d >&2
