#!/usr/bin/env bash
# Records HTTPS captures of every Exchange web request together with curl's TLS key log
# (SSLKEYLOGFILE, NSS format), for decryption (exwatch --tls-keylog) checked against tshark's:
#   https-keylog-tls12.pcap + .keys  443/tcp TLS 1.2 (CLIENT_RANDOM lines): the requests of
#       exchange_requests (Autodiscover, EWS, MAPI emsmdb/nspi, RPC over HTTP :6001/:6004,
#       ActiveSync, OWA, ECP, OAB, PowerShell) with ECDHE-RSA-AES256-GCM-SHA384, then one EWS
#       request each with ECDHE-RSA-AES128-GCM-SHA256 and ECDHE-RSA-CHACHA20-POLY1305
#   https-keylog-tls13.pcap + .keys  443/tcp TLS 1.3 (the four traffic secrets per session): the
#       same requests with TLS_AES_256_GCM_SHA384, then EWS with TLS_AES_128_GCM_SHA256 and
#       TLS_CHACHA20_POLY1305_SHA256
# Basic auth with exwatch-secret-pw-3 and the cookie X-BackEndCookie=secretcookie123 travel inside
# TLS: the privacy test checks that decryption never puts them in a record.
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init https-keylog

apt_need nginx-light curl xxd openssl tcpdump tshark iproute2 ethtool
. "$(dirname "$0")/http-lib.sh"

netns_up
nginx_start ""
for v in 12 13; do
    OUT="$PCAP_DIR/https-keylog-tls$v.pcap"
    export EXA_KEYLOG="$W/keys-$v"
    rm -f "$EXA_KEYLOG"
    if [ "$v" = 12 ]; then
        T=(--cacert "$W/tls/ca.crt" --tlsv1.2 --tls-max 1.2)
        ALT=(--ciphers ECDHE-RSA-AES128-GCM-SHA256 --ciphers ECDHE-RSA-CHACHA20-POLY1305)
    else
        T=(--cacert "$W/tls/ca.crt" --tlsv1.3)
        ALT=(--tls13-ciphers TLS_AES_128_GCM_SHA256 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256)
    fi
    cap_start "$OUT" tcp port 443
    exchange_requests "https://mail.contoso.test" "${T[@]}"
    for c in "${ALT[1]}" "${ALT[3]}"; do
        cr "${T[@]}" "${ALT[0]}" "$c" -X POST -H "Content-Type: text/xml; charset=utf-8" -A "$UA" \
            -H "Authorization: $BASIC" --data-binary '<soap:Envelope/>' https://mail.contoso.test/EWS/Exchange.asmx
    done
    cap_stop; cap_done "$OUT"
    cp "$EXA_KEYLOG" "${OUT%.pcap}.keys"
    chmod 644 "${OUT%.pcap}.keys"
    log "$(wc -l <"${OUT%.pcap}.keys") key log lines"
done
unset EXA_KEYLOG
kill_bg; kill_ns_procs
pkgver nginx-light curl libssl3 >&2
