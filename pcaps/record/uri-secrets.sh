#!/usr/bin/env bash
# Records uri-secrets.pcap: requests whose URIs carry credentials, for the privacy test (issue 13).
# nginx (Debian nginx-light) answers HTTP on 80, curl sends the request targets as written
# (--request-target), SIPp sends SIP OPTIONS whose URIs carry a password to a SIPp UAS on 5060/udp.
#   HTTP  absolute URI with userinfo (`GET http://alice:PW@mail.contoso.test/owa/?x=1`), with port,
#         `;params`, query and `#fragment`; upper-case scheme; https scheme; user without password;
#         percent-encoded user; path parameter `/owa/;jsessionid=TOKEN`; query `?password=`,
#         `access_token=`; fragment `#access_token=`; `Host: alice:PW@mail.contoso.test`;
#         `CONNECT alice:PW@mail.contoso.test:443`
#   SIP   `OPTIONS sip:alice:PW@192.0.2.10:5060`, the same URI in To and From
# Every secret is `exwatch-secret-uri-N` (tests/privacy.rs looks for that prefix).
# The namespaces are x13-srv / x13-cli unless EXA_SRV_NS... are set (see lib-a.sh).
set -euo pipefail
export EXA_SRV_NS=${EXA_SRV_NS:-x13-srv} EXA_CLI_NS=${EXA_CLI_NS:-x13-cli}
export EXA_SRV_IF=${EXA_SRV_IF:-x13-s0} EXA_CLI_IF=${EXA_CLI_IF:-x13-c0}
. "$(dirname "$0")/lib-a.sh"
exa_init uri-secrets

apt_need nginx-light curl sip-tester tcpdump tshark iproute2 ethtool

W="$EXA_WORK"
OUT="$PCAP_DIR/uri-secrets.pcap"
mkdir -p "$W/ngx/logs" "$W/ngx/tmp"

# nginx_any CONF: a minimal nginx on $SRV4:80 answering every path with 200 and an Exchange-like
# header (the point is the requests, not the answers).
nginx_any() {
    nginx_head "$W" >"$1"
    cat >>"$1" <<CONF
    keepalive_timeout 2;
    server {
        listen $SRV4:80 default_server;
        server_name mail.contoso.test;
        default_type text/html;
        location / { add_header X-FEServer MAIL01 always; return 200 "ok\n"; }
    }
}
CONF
    srv /usr/sbin/nginx -c "$1" -p "$W/ngx" -g 'daemon off;' >"$W/nginx.out" 2>&1 &
    EXA_PIDS+=($!)
    wait_port "$EXA_SRV_NS" tcp 80
}

# SIP OPTIONS, answered 200 by the UAS; [user] carries the password into the URIs.
cat >"$W/uac.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="exwatch OPTIONS with password">
  <send retrans="500">
    <![CDATA[
OPTIONS sip:[user]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[user]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[user]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
User-Agent: exwatch-uac (SIPp)
Content-Length: 0

]]>
  </send>
  <recv response="200"/>
</scenario>
EOF
cat >"$W/uas.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="exwatch OPTIONS UAS">
  <recv request="OPTIONS"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE
Server: exwatch-uas (SIPp)
Content-Length: 0

]]>
  </send>
</scenario>
EOF

netns_up
nginx_any "$W/nginx.conf"
cap_start "$OUT" tcp port 80 or udp port 5060

B=http://mail.contoso.test
UA="Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
rq() { cli curl -sS --http1.1 --max-time 3 -o /dev/null -A "$UA" "$@" >>"$W/curl.log" 2>&1 || true; }

rq --request-target 'http://alice:exwatch-secret-uri-1@mail.contoso.test/owa/?x=1' "$B/"
rq -X POST -H 'Content-Type: application/mapi-http' -H 'X-RequestType: Connect' --data-binary 'x' \
    --request-target 'http://alice:exwatch-secret-uri-2@mail.contoso.test:80/mapi/emsmdb/;sid=exwatch-secret-uri-3?MailboxId=exwatch-secret-uri-4#exwatch-secret-uri-5' "$B/"
rq --request-target 'HTTP://alice:exwatch-secret-uri-6@MAIL.contoso.test/EWS/Exchange.asmx' "$B/"
rq --request-target 'https://alice:exwatch-secret-uri-7@mail.contoso.test/owa/' "$B/"
rq --request-target 'http://alice@mail.contoso.test/ecp/' "$B/"
rq --request-target 'http://alice%40contoso.test:exwatch-secret-uri-8@mail.contoso.test/owa/' "$B/"
rq --request-target '/owa/;jsessionid=exwatch-secret-uri-9' "$B/"
rq --request-target '/EWS/Exchange.asmx?password=exwatch-secret-uri-10&access_token=exwatch-secret-uri-11' "$B/"
rq --request-target '/owa/#access_token=exwatch-secret-uri-12' "$B/"
rq -H 'Host: alice:exwatch-secret-uri-13@mail.contoso.test' "$B/owa/"
rq -X CONNECT --max-time 2 --request-target 'alice:exwatch-secret-uri-14@mail.contoso.test:443' "$B/"

srv sipp -sf "$W/uas.xml" -t u1 -i "$SRV4" -p 5060 -m 1 -nostdin -nd -timeout 10s \
    >"$W/uas.out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" udp 5060
cli sipp -sf "$W/uac.xml" -t u1 -i "$CLI4" -p 5062 -key user 'alice:exwatch-secret-uri-15' \
    -m 1 -nostdin -nd -timeout 10s "$SRV4:5060" >"$W/uac.out" 2>&1 \
    || { log "UAC failed"; cat "$W/uac.out" >&2; exit 1; }

cap_stop
cap_done "$OUT"

# sanity checks: every secret is on the wire in clear
for i in $(seq 1 15); do
    grep -qa "exwatch-secret-uri-$i\b" "$OUT" || { log "exwatch-secret-uri-$i missing from $OUT"; exit 1; }
done
tshark -r "$OUT" -Y 'sip.Method == "OPTIONS"' 2>/dev/null | grep -q . || { log "no SIP OPTIONS"; exit 1; }
tshark -r "$OUT" -Y 'sip.Status-Code == 200' 2>/dev/null | grep -q . || { log "no SIP 200"; exit 1; }
cat "$W/ngx/logs/access.log" >&2
pkgver nginx-light nginx-common curl sip-tester
log done
