#!/usr/bin/env bash
# make-policy-cases.sh - build pcaps/policy-cases.pcap: flows that a policy or a firewall rule
# set must flag, on the address plan of demo-exchange-day.pcap (DEMO.md), for the policy tests
# (tests/policy.rs). Every packet comes from a recording in this folder; the script only cuts
# one connection out of it, rewrites addresses (and a port where the case needs it) with
# tcprewrite --pnat/--portmap --fixcsum, and moves it to its time on the demo day with editcap.
# Ethernet addresses and the address text inside payloads (SMTP EHLO replies) keep the
# recording's values: nothing in the tests reads them.
#
# Deterministic: no random input, no wall-clock time, parts merged in a fixed order.
# Usage: pcaps/make-policy-cases.sh [OUTPUT]     (default pcaps/policy-cases.pcap)
# Needs: tcpdump, tcprewrite (tcpreplay), editcap, mergecap, capinfos.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/policy-cases.pcap}
DAY=2026-11-23
for t in tcpdump tcprewrite editcap mergecap capinfos; do
    command -v "$t" >/dev/null || { echo "make-policy-cases.sh: $t not found" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/make-policy-cases.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# recorded addresses: part A server/client, part B server/client
A_S=192.0.2.10 A_C=192.0.2.20 B_S=198.51.100.10 B_C=198.51.100.20
# demo address plan (DEMO.md)
EDGE=172.16.10.5 MBX1=10.1.1.10 CL1=10.1.10.21 GW=10.1.3.20 ADMIN=10.1.4.5

N=0
# case TIME RECORDING FILTER CLIENT SERVER (recorded client/server -> plan) [PORTMAP]
case_() {
    local t=$1 rec=$2 filt=$3 pnat=$4 pmap=${5:-}
    N=$((N + 1))
    local w=$TMP/$N
    tcpdump -r "$HERE/$rec" -w "$w.a" "$filt" 2>/dev/null
    [ "$(capinfos -c -M -T -r "$w.a" | cut -f2)" -gt 0 ] || { echo "case $N: no packets" >&2; exit 1; }
    local rw=(--pnat="$pnat" --fixcsum)
    [ -z "$pmap" ] || rw+=(--portmap="$pmap")
    tcprewrite -i "$w.a" -o "$w.b" "${rw[@]}" >/dev/null
    local first target
    first=$(capinfos -a -S -T -r -M "$w.b" | cut -f2)
    target=$(date -u -d "$DAY $t" +%s)
    editcap -F pcap -t "$(awk -v a="$first" -v b="$target" 'BEGIN { printf "%.6f", b - a }')" "$w.b" "$TMP/part-$(printf %02d $N).pcap"
    printf '  case %d  %s  %-24s %s\n' "$N" "$t" "$rec" "$pnat${pmap:+ ports $pmap}" >&2
}

# 1. EdgeSync the wrong way round: the Edge opens LDAPS 50636 to a Mailbox server.
case_ 18:00:00 edgesync-50636.pcap "tcp port 50636" "$B_C/32:$EDGE/32,$B_S/32:$MBX1/32"
# 2. RDP from the admin workstation into the Edge.
case_ 18:01:00 rdp.pcap "tcp port 3389" "$B_C/32:$ADMIN/32,$B_S/32:$EDGE/32"
# 3. HTTP on the SIP port, from the UM IP gateway (the port is allowed from there).
case_ 18:02:00 http-exchange-plain.pcap "tcp port 56822" "$A_C/32:$GW/32,$A_S/32:$MBX1/32" 80:5060
# 4. SMTP on an odd port: clear-text SMTP from a client to the Mailbox server's 443.
case_ 18:03:00 smtp-plain-25.pcap "tcp port 25" "$A_C/32:$CL1/32,$A_S/32:$MBX1/32" 25:443
# 5. EdgeSync the right way round (Mailbox -> Edge), for contrast.
case_ 18:04:00 edgesync-50636.pcap "tcp port 50636" "$B_C/32:$MBX1/32,$B_S/32:$EDGE/32"
# 6. EdgeSync (Mailbox -> Edge) seen mid-stream: the handshake is cut off, and the client's
#    port is remapped to 3268 (a service port), so the port heuristic takes the Mailbox server
#    for the responder; a policy must judge it the way the rules allow and say so.
case_ 18:05:00 edgesync-50636.pcap "tcp port 50636 and tcp[tcpflags] & tcp-syn == 0" \
    "$B_C/32:$MBX1/32,$B_S/32:$EDGE/32" 41658:3268

mergecap -F pcap -w "$TMP/out.pcap" "$TMP"/part-*.pcap
mv "$TMP/out.pcap" "$OUT"
echo "make-policy-cases.sh: wrote $OUT ($(capinfos -c -M -T -r "$OUT" | cut -f2) packets)" >&2
