# shellcheck shell=bash
# What the HTTP(S) recording scripts share (http.sh, https-keylog.sh): the test certificate, the
# nginx configuration standing in for IIS with the Exchange paths, request bodies, and
# exchange_requests (every Exchange request, by curl). Source after lib-a.sh and exa_init.
# cr runs curl in the client namespace; with EXA_KEYLOG set, curl writes its TLS secrets there
# (SSLKEYLOGFILE, NSS key log format).

W="$EXA_WORK"
PW=exwatch-secret-pw-3
BASIC="Basic $(printf 'alice@contoso.test:%s' "$PW" | base64 -w0)"
make_cert "$W/tls" mail.contoso.test autodiscover.contoso.test contoso.test
mkdir -p "$W/ngx/logs" "$W/ngx/tmp"

# ------------------------------------------------ nginx configuration
cat >"$W/hdr.conf" <<'CONF'
add_header X-FEServer MAIL01 always;
add_header X-BEServer MAIL01 always;
add_header X-Powered-By ASP.NET always;
add_header X-AspNet-Version 4.0.30319 always;
CONF
cat >"$W/auth.conf" <<'CONF'
if ($noauth) {
    include HDR;
    add_header WWW-Authenticate "Negotiate" always;
    add_header WWW-Authenticate "NTLM" always;
    add_header WWW-Authenticate 'Basic realm="mail.contoso.test"' always;
    return 401 "401 - Unauthorized: Access is denied due to invalid credentials.\r\n";
}
CONF
sed -i "s#HDR#$W/hdr.conf#" "$W/auth.conf"

nginx_head "$W" >"$W/nginx.conf"
cat >>"$W/nginx.conf" <<CONF
    keepalive_timeout 5;
    client_max_body_size 2g;   # RPC_IN_DATA announces 1 GiB
    map \$http_authorization \$noauth { "" 1; default 0; }
    server {
        listen $SRV4:80;
        listen $SRV4:443 ssl;
        LISTEN6
        server_name mail.contoso.test autodiscover.contoso.test contoso.test;
        ssl_certificate $W/tls/chain.crt;
        ssl_certificate_key $W/tls/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        default_type text/html;

        location = / { include $W/hdr.conf; return 302 /owa/; }
        location ~* ^/autodiscover/autodiscover\.(xml|svc) {
            include $W/hdr.conf; include $W/auth.conf;
            default_type text/xml;
            return 200 '<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error Time="10:00:00" Id="1"><ErrorCode>600</ErrorCode><Message>Invalid Request</Message></Error></Response></Autodiscover>\n';
        }
        location ~* ^/ews/ {
            include $W/hdr.conf; include $W/auth.conf;
            add_header X-EwsPerformanceData "RpcC=0;RpcL=0" always;
            default_type text/xml;
            return 200 '<?xml version="1.0" encoding="utf-8"?>\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>exwatch test stand-in</s:Body></s:Envelope>\n';
        }
        location ~* ^/mapi/(emsmdb|nspi)/ {
            include $W/hdr.conf;
            add_header X-ResponseCode 0 always;
            add_header X-RequestType \$http_x_requesttype always;
            add_header X-RequestId \$http_x_requestid always;
            add_header X-ServerApplication Exchange/15.01.2507.006 always;
            add_header X-PendingPeriod 15000 always;
            add_header Set-Cookie "MapiContext=exwatchctx; path=/mapi/" always;
            default_type application/mapi-http;
            return 200 "PROCESSING\r\nDONE\r\nX-ResponseCode: 0\r\nX-ElapsedTime: 1\r\nX-StartTime: Mon, 24 Nov 2025 10:00:00 GMT\r\n\r\n";
        }
        location ~* ^/rpc/rpcproxy\.dll {
            include $W/hdr.conf;
            default_type application/rpc;
            return 200 "";
        }
        location ~* ^/microsoft-server-activesync {
            include $W/hdr.conf; include $W/auth.conf;
            add_header MS-Server-ActiveSync 15.1 always;
            add_header MS-ASProtocolVersions "2.0,2.1,2.5,12.0,12.1,14.0,14.1,16.0,16.1" always;
            add_header MS-ASProtocolCommands "Sync,SendMail,SmartForward,SmartReply,GetAttachment,FolderSync,FolderCreate,FolderDelete,FolderUpdate,MoveItems,GetItemEstimate,MeetingResponse,Search,Settings,Ping,ItemOperations,Provision,ResolveRecipients,ValidateCert,Find" always;
            default_type application/vnd.ms-sync.wbxml;
            return 200 "";
        }
        location ~* ^/owa/auth/ {
            include $W/hdr.conf;
            add_header X-OWA-Version 15.1.2507.6 always;
            return 200 '<!DOCTYPE html>\n<html><head><title>Outlook</title></head><body>Outlook Web App sign-in (exwatch stand-in)</body></html>\n';
        }
        location ~* ^/owa/ {
            include $W/hdr.conf;
            add_header X-OWA-Version 15.1.2507.6 always;
            return 302 https://mail.contoso.test/owa/auth/logon.aspx?url=https%3a%2f%2fmail.contoso.test%2fowa%2f&reason=0;
        }
        location ~* ^/ecp/ {
            include $W/hdr.conf;
            return 302 https://mail.contoso.test/owa/auth/logon.aspx?url=https%3a%2f%2fmail.contoso.test%2fecp%2f&reason=0;
        }
        location ~* ^/oab/ {
            include $W/hdr.conf; include $W/auth.conf;
            default_type text/xml;
            return 200 '<?xml version="1.0" encoding="utf-8"?>\n<OAB><OAL id="/o=Contoso/cn=addrlists/cn=oabs/cn=Default Offline Address Book" dn="/" name="\\\\Default Global Address List"></OAL></OAB>\n';
        }
        location ~* ^/powershell/ {
            include $W/hdr.conf; include $W/auth.conf;
            default_type "application/soap+xml;charset=UTF-8";
            return 200 "";
        }
        location / { include $W/hdr.conf; return 404; }
    }
}
CONF

nginx_start() {   # $1 = IPv6 listen line or empty
    sed "s#LISTEN6#$1#" "$W/nginx.conf" >"$W/nginx-run.conf"
    srv /usr/sbin/nginx -c "$W/nginx-run.conf" -p "$W/ngx" -g 'daemon off;' >"$W/nginx.out" 2>&1 &
    EXA_PIDS+=($!)
    wait_port "$EXA_SRV_NS" tcp 80; wait_port "$EXA_SRV_NS" tcp 443
}

# ------------------------------------------------ request bodies
# [MS-RPCH] RTS PDUs: CONN/A1 (OUT channel, 76 bytes) and CONN/B1 (IN channel, 104 bytes)
rts() {   # rts FILE HEX
    printf '%s' "$2" | xxd -r -p >"$1"
}
# sizes are fixed by [MS-RPCH] 2.2.4.3/2.2.4.6
VC=11111111222233334444555555555555   # virtual connection cookie (fixed)
rts "$W/conn-a1.bin" "05001403100000004c0000000000000000000400060000000100000003000000${VC}0300000066666666777788889999aaaaaaaaaaaa0000000000000100"
rts "$W/conn-b1.bin" "0500140310000000680000000000000000000600060000000100000003000000${VC}03000000bbbbbbbbccccddddeeeeffffffffffff040000000000004005000000e09304000c00000001010101020203030404050505050505"
# a small WBXML ActiveSync Sync request (SyncKey 0, CollectionId 1)
printf '\x03\x01\x6a\x00\x00\x00\x45\x5c\x4f\x4b\x03\x30\x00\x01\x52\x03\x31\x00\x01\x01\x01\x01' >"$W/sync.wbxml"
# opaque MAPI/HTTP request bodies (binary ROP buffers in real life)
printf '/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=alice\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$W/connect.bin"
printf '\x00\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$W/execute.bin"
printf '\x00\x00\x00\x00' >"$W/small.bin"

MBX="3a1e2f4b-5c6d-4e7f-8091-a2b3c4d5e6f7@contoso.test"
RQ="{6b7cc6d0-1f2e-4d3c-9b8a-7e6f5d4c3b2a}"
OL="Outlook/16.0.17928.20114"
UA="Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"

cr() { cli env ${EXA_KEYLOG:+SSLKEYLOGFILE="$EXA_KEYLOG"} curl -sS --http1.1 --max-time 5 -o /dev/null "$@" >>"$W/curl.log" 2>&1 || true; }

# all Exchange requests, against base URL $1 (http://host or https://host) with extra curl args $2...
exchange_requests() {
    local b="$1"; shift
    # Autodiscover (POX), first without then with credentials
    cr "$@" -X POST -H "Content-Type: text/xml" -A "$UA" --data-binary '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@contoso.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>' "$b/autodiscover/autodiscover.xml"
    cr "$@" -X POST -H "Content-Type: text/xml" -A "$UA" -H "Authorization: $BASIC" --data-binary '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@contoso.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>' "$b/autodiscover/autodiscover.xml"
    # EWS
    cr "$@" -X POST -H "Content-Type: text/xml; charset=utf-8" -A "$UA" -H "Authorization: $BASIC" --data-binary '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><soap:Header><t:RequestServerVersion Version="Exchange2016"/></soap:Header><soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>' "$b/EWS/Exchange.asmx"
    # MAPI over HTTP: one keep-alive connection with Connect, Execute, Disconnect (as Outlook does)
    cr "$@" -A "$OL" \
        -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Connect" -H "X-RequestId: $RQ:1" \
        -H "X-ClientInfo: {0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d}:1" -H "X-ClientApplication: $OL" \
        -H "Authorization: $BASIC" --data-binary @"$W/connect.bin" "$b/mapi/emsmdb/?MailboxId=$MBX" \
        --next "$@" -A "$OL" -o /dev/null \
        -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Execute" -H "X-RequestId: $RQ:2" \
        -H "X-ClientInfo: {0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d}:1" -H "X-ClientApplication: $OL" \
        -H "Authorization: $BASIC" -b "MapiContext=exwatchctx" --data-binary @"$W/execute.bin" "$b/mapi/emsmdb/?MailboxId=$MBX" \
        --next "$@" -A "$OL" -o /dev/null \
        -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Disconnect" -H "X-RequestId: $RQ:3" \
        -H "X-ClientInfo: {0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d}:1" -H "X-ClientApplication: $OL" \
        -H "Authorization: $BASIC" -b "MapiContext=exwatchctx" --data-binary @"$W/small.bin" "$b/mapi/emsmdb/?MailboxId=$MBX"
    cr "$@" -A "$OL" -X POST -H "Content-Type: application/mapi-http" -H "X-RequestType: Bind" -H "X-RequestId: $RQ:4" \
        -H "X-ClientInfo: {0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d}:1" -H "X-ClientApplication: $OL" \
        -H "Authorization: $BASIC" --data-binary @"$W/small.bin" "$b/mapi/nspi/?MailboxId=$MBX"
    # RPC over HTTP ([MS-RPCH]): IN channel with the 1 GiB Content-Length, OUT channel with CONN/A1
    cr "$@" --max-time 2 -A "MSRPC" -X RPC_IN_DATA -H "Content-Type: application/rpc" -H "Content-Length: 1073741824" \
        -H "Authorization: $BASIC" -H "Cache-Control: no-cache" -H "Pragma: no-cache" \
        --data-binary @"$W/conn-b1.bin" "$b/rpc/rpcproxy.dll?mail.contoso.test:6001"
    cr "$@" --max-time 2 -A "MSRPC" -X RPC_OUT_DATA -H "Content-Type: application/rpc" \
        -H "Authorization: $BASIC" -H "Cache-Control: no-cache" -H "Pragma: no-cache" \
        --data-binary @"$W/conn-a1.bin" "$b/rpc/rpcproxy.dll?mail.contoso.test:6001"
    cr "$@" --max-time 2 -A "MSRPC" -X RPC_IN_DATA -H "Content-Type: application/rpc" -H "Content-Length: 1073741824" \
        -H "Authorization: $BASIC" --data-binary @"$W/conn-b1.bin" "$b/rpc/rpcproxy.dll?mail.contoso.test:6004"
    cr "$@" --max-time 2 -A "MSRPC" -X RPC_OUT_DATA -H "Content-Type: application/rpc" \
        -H "Authorization: $BASIC" --data-binary @"$W/conn-a1.bin" "$b/rpc/rpcproxy.dll?mail.contoso.test:6004"
    # ActiveSync
    cr "$@" -X OPTIONS -A "Apple-iPhone9C1/1702.53" -H "Authorization: $BASIC" "$b/Microsoft-Server-ActiveSync?User=alice&DeviceId=ABC123&DeviceType=iPhone"
    cr "$@" -X POST -A "Apple-iPhone9C1/1702.53" -H "Content-Type: application/vnd.ms-sync.wbxml" -H "MS-ASProtocolVersion: 14.1" \
        -H "X-MS-PolicyKey: 0" -H "Authorization: $BASIC" --data-binary @"$W/sync.wbxml" \
        "$b/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=ABC123&DeviceType=iPhone"
    # OWA, ECP (with the back-end cookie), OAB, remote PowerShell
    cr "$@" -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" "$b/owa/"
    cr "$@" -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" \
        -H "Cookie: X-BackEndCookie=secretcookie123" "$b/ecp/"
    cr "$@" -A "$UA" -H "Authorization: $BASIC" "$b/OAB/5f2b3c4d-6e7f-4a8b-9c0d-1e2f3a4b5c6d/oab.xml"
    cr "$@" -X POST -A "Microsoft WinRM Client" -H "Content-Type: application/soap+xml;charset=UTF-8" -H "Authorization: $BASIC" \
        --data-binary '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action></s:Header><s:Body/></s:Envelope>' \
        "$b/PowerShell/?SerializationLevel=Full;ExchClientVer=15.1.2507.6;clientApplication=ManagementShell;TargetServer=;PSVersion=5.1.19041.1"
}

