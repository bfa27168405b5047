#!/usr/bin/env bash
# make-cuts.sh - build the cross-flow test captures (issue 5) by cutting real-peer recordings
# of this folder with tcpdump read filters and editcap, and merging with mergecap. No byte of
# payload is changed; README.md ("Cut captures") says what each shows.
#
# Deterministic: the same recordings give byte-identical outputs.
# Usage: pcaps/make-cuts.sh        Needs: tcpdump, editcap, mergecap.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
for t in tcpdump editcap mergecap; do
    command -v "$t" >/dev/null || { echo "make-cuts.sh: $t not found" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/make-cuts.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# A baresip call whose capture starts after the INVITE (frame 1 dropped): only the 200 OK's
# SDP answer announces the media; the answerer's RTCP starts 2.6 ms before that answer.
editcap -F pcap "$HERE/sip-udp-call-rtcp.pcap" "$HERE/sip-call-from-answer.pcap" 1

# The same call with the capture starting after the ACK (frames 1-6 dropped): no SDP is
# seen at all, so the media can only be named by their own payload.
editcap -F pcap "$HERE/sip-udp-call-rtcp.pcap" "$HERE/sip-call-mid-media.pcap" 1-6

# One direction of two SIPp calls (issue 13, item 4): only what the UAC 192.0.2.20 sent (the
# INVITE with its SDP offer, ACK, BYE, and its RTP 16000 -> 17000). No answer is seen, so the
# SIP detector decides each flow only at its end; the offer must still announce the RTP.
tcpdump -r "$HERE/sip-um-5065.pcap" -w "$HERE/sip-um-5065-one-way.pcap" 'src host 192.0.2.20' 2>/dev/null
tcpdump -r "$HERE/sip-udp-call.pcap" -w "$HERE/sip-udp-call-one-way.pcap" 'src host 192.0.2.20' 2>/dev/null

# The SAMR connection to the dynamic port 198.51.100.10:49154 whose bind was accepted
# (dcerpc-epm-dynamic.pcap without its endpoint-mapper look-ups, so no expectation names the
# port), beside a second connection to 198.51.100.10:49154 seen only mid-stream: the client
# 46922 connection of dcerpc-exchange-binds.pcap without its handshake and without any
# payload-carrying segment (only its bare ACKs and FINs remain), 1.5 s later.
tcpdump -r "$HERE/dcerpc-epm-dynamic.pcap" -w "$TMP/bound.pcap" 'tcp port 49154' 2>/dev/null
tcpdump -r "$HERE/dcerpc-exchange-binds.pcap" -w "$TMP/mid.pcap" \
    'tcp port 46922 and tcp[tcpflags] & tcp-syn == 0 and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) == 0' 2>/dev/null
mergecap -F pcap -w "$HERE/dcerpc-midstream-beside-bound.pcap" "$TMP/bound.pcap" "$TMP/mid.pcap"

# The same endpoint-mapper look-ups and SAMR connection as dcerpc-epm-dynamic.pcap, with the
# SAMR connection's handshake, bind, bind_ack and first request dropped (frames 30-37): the
# connection is seen mid-stream, its bind missed, on the port ept_map handed out (issue 15,
# class 7).
editcap -F pcap "$HERE/dcerpc-epm-dynamic.pcap" "$HERE/dcerpc-midstream-after-epm.pcap" 30-37

# The same mid-stream SAMR segments 400 s after the look-ups, past the 300 s an expectation
# waits: only the endpoint the ept_map reply taught names the connection (confidence endpoint).
editcap -F pcap -r "$HERE/dcerpc-epm-dynamic.pcap" "$TMP/epm.pcap" 1-29
editcap -F pcap -r -t 400 "$HERE/dcerpc-epm-dynamic.pcap" "$TMP/late.pcap" 38-48
mergecap -F pcap -w "$HERE/dcerpc-midstream-late-after-epm.pcap" "$TMP/epm.pcap" "$TMP/late.pcap"
