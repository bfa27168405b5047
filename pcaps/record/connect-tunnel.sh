#!/usr/bin/env bash
# Records HTTP CONNECT tunnels through a real proxy (Debian's squid) to the nginx of http-lib.sh:
#   connect-tunnel.pcap  3128/tcp, client <-> proxy only (squid reaches nginx over the server
#       namespace's loopback, outside the capture):
#     1. curl -x: CONNECT mail.contoso.test:443, TLS 1.3 inside (GET /owa/)
#     2. curl -x -U: CONNECT mail.contoso.test:443 carrying Proxy-Authorization: Basic (user
#        alice, password exwatch-proxy-pw-5; squid asks for none and passes it), TLS 1.2 inside
#        (POST /EWS/Exchange.asmx)
#     3. curl -p -x: CONNECT mail.contoso.test:80, plain HTTP inside (GET /owa/ -> 302)
#     4. curl -p -x: CONNECT mail.contoso.test:25, refused by squid (403 and its error page)
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init connect-tunnel

apt_need nginx-light curl xxd openssl tcpdump tshark iproute2 ethtool squid
. "$(dirname "$0")/http-lib.sh"

netns_up
nginx_start ""
mkdir -p "$W/squid"
chmod 777 "$W/squid"
printf '%s mail.contoso.test\n' "$SRV4" >"$W/squid/hosts"
cat >"$W/squid/squid.conf" <<CONF
http_port $SRV4:3128
pid_filename $W/squid/squid.pid
cache_log $W/squid/cache.log
access_log stdio:$W/squid/access.log
coredump_dir $W/squid
hosts_file $W/squid/hosts
dns_nameservers 127.0.0.1
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
acl tunnel_ports port 80 443
http_access deny CONNECT !tunnel_ports
http_access allow all
CONF
srv /usr/sbin/squid -N -f "$W/squid/squid.conf" >"$W/squid/out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" tcp 3128

OUT="$PCAP_DIR/connect-tunnel.pcap"
P="http://$SRV4:3128"
cap_start "$OUT" tcp port 3128
cr -x "$P" --cacert "$W/tls/ca.crt" --tlsv1.3 -A "$UA" https://mail.contoso.test/owa/
cr -x "$P" -U alice:exwatch-proxy-pw-5 --cacert "$W/tls/ca.crt" --tlsv1.2 --tls-max 1.2 \
    -X POST -H "Content-Type: text/xml; charset=utf-8" -A "$UA" -H "Authorization: $BASIC" \
    --data-binary '<soap:Envelope/>' https://mail.contoso.test/EWS/Exchange.asmx
cr -p -x "$P" -A "$UA" http://mail.contoso.test/owa/
cr -p -x "$P" -A "$UA" http://mail.contoso.test:25/ || true
cap_stop; cap_done "$OUT"
kill_bg; kill_ns_procs
pkgver squid nginx-light curl libssl3 >&2
