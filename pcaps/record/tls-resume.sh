#!/usr/bin/env bash
# Records TLS session resumption against openssl s_server (Debian openssl), for tls.resumed:
#   tls-resume-443.pcap  443/tcp, four connections from openssl s_client, SNI mail.contoso.test:
#     1. TLS 1.2 full handshake (-no_ticket: a session ID), session saved (-sess_out)
#     2. TLS 1.2 resumed: the saved session offered (-sess_in), the server echoes its ID
#     3. TLS 1.3 full handshake, ticket saved
#     4. TLS 1.3 resumed: the ticket offered as a pre-shared key, which the server accepts
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init tls-resume

apt_need openssl tcpdump tshark iproute2 ethtool

W="$EXA_WORK"
make_cert "$W/tls" mail.contoso.test autodiscover.contoso.test
netns_up

srv_start() {   # $1 = extra s_server options
    # shellcheck disable=SC2086
    bg srv openssl s_server -accept "$SRV4:443" -cert "$W/tls/server.crt" -key "$W/tls/server.key" \
        -cert_chain "$W/tls/ca.crt" -www -quiet $1
    wait_port "$EXA_SRV_NS" tcp 443
}

srv_stop() {   # the server runs under `ip netns exec` in a subshell: kill openssl itself
    local p
    for p in $(ip netns pids "$EXA_SRV_NS"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = openssl ] && kill "$p" 2>/dev/null || true
    done
    sleep 0.5
}

hello() {   # $1 = version option, $2 = session option and file
    # shellcheck disable=SC2086
    printf 'GET / HTTP/1.0\r\n\r\n' | cli timeout 5 openssl s_client -connect "$SRV4:443" \
        -servername mail.contoso.test -CAfile "$W/tls/ca.crt" "$1" $2 -ign_eof >"$W/client.log" 2>&1 || true
    grep -E "^(New|Reused)," "$W/client.log" | head -1 >&2 || true
}

OUT="$PCAP_DIR/tls-resume-443.pcap"
cap_start "$OUT" tcp port 443
srv_start "-no_ticket"
hello -tls1_2 "-sess_out $W/s12"
hello -tls1_2 "-sess_in $W/s12"
srv_stop
srv_start ""
hello -tls1_3 "-sess_out $W/s13"
hello -tls1_3 "-sess_in $W/s13"
cap_stop
srv_stop
cap_done "$OUT"
pkgver openssl >&2
