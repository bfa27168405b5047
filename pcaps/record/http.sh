#!/usr/bin/env bash
# Records HTTP / HTTPS captures of Exchange web paths: nginx (Debian nginx-light) stands in for IIS,
# curl and Python exchangelib are the clients.
#   http-exchange-plain.pcap  80/tcp (SSL-offload segment): Autodiscover, EWS, MAPI over HTTP
#                             (emsmdb Connect/Execute/Disconnect, nspi Bind), RPC over HTTP
#                             (RPC_IN_DATA / RPC_OUT_DATA on :6001 and :6004), ActiveSync, OWA, ECP,
#                             OAB, PowerShell; Basic auth with exwatch-secret-pw-3 on several requests,
#                             Cookie X-BackEndCookie=secretcookie123 on one.
#   http-exchange-ipv6.pcap   80/tcp over IPv6: Autodiscover POST and MAPI Connect
#   https-exchange.pcap       443/tcp: SNI mail.contoso.test and autodiscover.contoso.test; TLS 1.2 flows
#                             (certificate in clear) and TLS 1.3 flows
#   https-exchangelib.pcap    443/tcp: exchangelib Autodiscover + EWS (TLS, verified with the test CA)
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init http

apt_need nginx-light dnsmasq-base curl xxd openssl tcpdump tshark iproute2 ethtool
venv_need exchangelib==5.6.0
. "$(dirname "$0")/http-lib.sh"

# ------------------------------------------------ plain HTTP on 80
netns_up
nginx_start ""
cap_start "$PCAP_DIR/http-exchange-plain.pcap" tcp port 80
exchange_requests "http://mail.contoso.test"
cap_stop; cap_done "$PCAP_DIR/http-exchange-plain.pcap"

# ------------------------------------------------ HTTPS on 443
cap_start "$PCAP_DIR/https-exchange.pcap" tcp port 443
T12=(--cacert "$W/tls/ca.crt" --tlsv1.2 --tls-max 1.2)
T13=(--cacert "$W/tls/ca.crt" --tlsv1.3)
# TLS 1.2 (certificate visible): Autodiscover by its own name, EWS, MAPI Connect, RPC_IN_DATA
cr "${T12[@]}" -X POST -H "Content-Type: text/xml" -A "$UA" -H "Authorization: $BASIC" --data-binary '<Autodiscover/>' https://autodiscover.contoso.test/autodiscover/autodiscover.xml
cr "${T12[@]}" -X POST -H "Content-Type: text/xml; charset=utf-8" -A "$UA" -H "Authorization: $BASIC" --data-binary '<soap:Envelope/>' https://mail.contoso.test/EWS/Exchange.asmx
cr "${T12[@]}" -A "$OL" -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Connect" -H "X-RequestId: $RQ:1" -H "X-ClientApplication: $OL" -H "Authorization: $BASIC" --data-binary @"$W/connect.bin" "https://mail.contoso.test/mapi/emsmdb/?MailboxId=$MBX"
cr "${T12[@]}" --max-time 2 -A MSRPC -X RPC_IN_DATA -H "Content-Type: application/rpc" -H "Content-Length: 1073741824" -H "Authorization: $BASIC" --data-binary @"$W/conn-b1.bin" "https://mail.contoso.test/rpc/rpcproxy.dll?mail.contoso.test:6001"
# TLS 1.3: Autodiscover, MAPI nspi Bind, ActiveSync, OWA
cr "${T13[@]}" -X POST -H "Content-Type: text/xml" -A "$UA" -H "Authorization: $BASIC" --data-binary '<Autodiscover/>' https://autodiscover.contoso.test/autodiscover/autodiscover.xml
cr "${T13[@]}" -A "$OL" -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Bind" -H "X-RequestId: $RQ:4" -H "X-ClientApplication: $OL" -H "Authorization: $BASIC" --data-binary @"$W/small.bin" "https://mail.contoso.test/mapi/nspi/?MailboxId=$MBX"
cr "${T13[@]}" -X POST -A "Apple-iPhone9C1/1702.53" -H "Content-Type: application/vnd.ms-sync.wbxml" -H "MS-ASProtocolVersion: 14.1" -H "Authorization: $BASIC" --data-binary @"$W/sync.wbxml" "https://mail.contoso.test/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=ABC123&DeviceType=iPhone"
cr "${T13[@]}" -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64)" https://mail.contoso.test/owa/
cap_stop; cap_done "$PCAP_DIR/https-exchange.pcap"

# ------------------------------------------------ exchangelib over HTTPS
# exchangelib resolves names with dnspython (not /etc/hosts): dnsmasq in the server namespace answers
# for contoso.test (A records and the _autodiscover._tcp SRV record) and nothing else.
srv dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --conf-file=/dev/null --user=root \
    --listen-address="$SRV4" --bind-interfaces --pid-file="$W/dnsmasq.pid" \
    --address=/contoso.test/"$SRV4" \
    --srv-host=_autodiscover._tcp.contoso.test,autodiscover.contoso.test,443,0,0 >"$W/dnsmasq.out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" udp 53
cap_start "$PCAP_DIR/https-exchangelib.pcap" tcp port 443 or port 80 or port 53
cli env REQUESTS_CA_BUNDLE="$W/tls/ca.crt" HOME="$W" "$EXA_VENV/bin/python" "$EXA_RECORD_DIR/ews_client.py" "$PW" \
    >"$W/ews.log" 2>&1 || true
cat "$W/ews.log" >&2
cap_stop; cap_done "$PCAP_DIR/https-exchangelib.pcap"
kill_bg; kill_ns_procs

# ------------------------------------------------ IPv6, plain HTTP
EXA_IPV6=1 netns_up
nginx_start "listen [$SRV6]:80;"
cap_start "$PCAP_DIR/http-exchange-ipv6.pcap" tcp port 80
cr -X POST -H "Content-Type: text/xml" -A "$UA" -H "Authorization: $BASIC" --data-binary '<Autodiscover/>' "http://mail6.contoso.test/autodiscover/autodiscover.xml"
cr -A "$OL" -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Connect" -H "X-RequestId: $RQ:1" -H "X-ClientApplication: $OL" -H "Authorization: $BASIC" --data-binary @"$W/connect.bin" "http://mail6.contoso.test/mapi/emsmdb/?MailboxId=$MBX"
cap_stop; cap_done "$PCAP_DIR/http-exchange-ipv6.pcap"
kill_bg; kill_ns_procs

# sanity checks
P="$PCAP_DIR/http-exchange-plain.pcap"
for m in RPC_IN_DATA RPC_OUT_DATA; do
    tshark -r "$P" -Y "http.request.method == \"$m\"" 2>/dev/null | grep -q . || { log "$m missing"; exit 1; }
done
for h in 'http.request.uri contains "/mapi/emsmdb/"' 'http.request.uri contains "/mapi/nspi/"' \
         'http.request.uri contains "Microsoft-Server-ActiveSync"' 'http.request.uri contains "/OAB/"' \
         'http.request.uri contains "/PowerShell/"' 'http.request.uri contains "/owa/"' 'http.request.uri contains "/ecp/"' \
         'http.cookie contains "secretcookie123"'; do
    tshark -r "$P" -Y "$h" 2>/dev/null | grep -q . || { log "missing in $P: $h"; exit 1; }
done
tshark -r "$PCAP_DIR/https-exchange.pcap" -Y 'tls.handshake.certificate' 2>/dev/null | grep -q . || { log "no clear certificate (TLS 1.2)"; exit 1; }
tshark -r "$PCAP_DIR/https-exchange.pcap" -Y 'tls.handshake.extensions_server_name == "autodiscover.contoso.test"' 2>/dev/null | grep -q . || { log "no autodiscover SNI"; exit 1; }
tshark -r "$PCAP_DIR/https-exchangelib.pcap" -Y 'tls.handshake.type == 1' 2>/dev/null | grep -q . || { log "no TLS from exchangelib"; exit 1; }
pkgver nginx-light nginx-common curl dnsmasq-base
pipver exchangelib
log done
