#!/usr/bin/env bash
# Records flows whose originator only the payload can tell (issue 15, class 8), from real
# peers, then cuts what a capture started late would miss:
#   http-midstream-reversed.pcap  nginx on 50080/tcp, curl from local port 40080 (both
#       ephemeral; the lower port looks like the server): POST /EWS/Exchange.asmx and
#       GET /owa/ on one connection, without the SYN and SYN-ACK.
#   dns-answer-only-53.pcap  dnsmasq on 53/udp, dig from local port 53 (both well-known, as
#       between DNS servers): A mail.contoso.test, only the answers (the queries cut).
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init reversed

apt_need nginx-light curl xxd openssl tcpdump tshark iproute2 ethtool dnsmasq-base bind9-dnsutils
. "$(dirname "$0")/http-lib.sh"

netns_up
# The LISTEN6 slot of the shared configuration takes the extra listen line.
nginx_start "listen $SRV4:50080;"
wait_port "$EXA_SRV_NS" tcp 50080
cat >"$W/dnsmasq.conf" <<CONF
no-resolv
no-hosts
listen-address=$SRV4
bind-interfaces
address=/mail.contoso.test/$SRV4
CONF
srv dnsmasq --keep-in-foreground --conf-file="$W/dnsmasq.conf" --pid-file="$W/dnsmasq.pid" \
    >"$W/dnsmasq.out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" udp 53

cap_start "$W/http.pcap" tcp port 50080
cr --local-port 40080 -A "$UA" -H "Authorization: $BASIC" -X POST -H "Content-Type: text/xml; charset=utf-8" \
    --data-binary '<soap:Envelope/>' http://mail.contoso.test:50080/EWS/Exchange.asmx \
    --next -A "$UA" http://mail.contoso.test:50080/owa/
cap_stop
tcpdump -r "$W/http.pcap" -w "$PCAP_DIR/http-midstream-reversed.pcap" \
    'tcp[tcpflags] & tcp-syn == 0' 2>/dev/null
cap_done "$PCAP_DIR/http-midstream-reversed.pcap"

cap_start "$W/dns.pcap" udp port 53
for i in 1 2; do
    cli dig +short +tries=1 -b "$CLI4#53" @"$SRV4" mail.contoso.test A >>"$W/dig.log" 2>&1 || true
    sleep 0.2
done
cap_stop
tcpdump -r "$W/dns.pcap" -w "$PCAP_DIR/dns-answer-only-53.pcap" "src host $SRV4" 2>/dev/null
cap_done "$PCAP_DIR/dns-answer-only-53.pcap"
kill_bg; kill_ns_procs
pkgver nginx-light curl dnsmasq-base bind9-dnsutils >&2
