#!/usr/bin/env bash
# Records SIP + RTP captures with SIPp (Debian package sip-tester) as both UAC and UAS.
#   sip-udp-call.pcap        5060/udp call, RTP both ways (UAC plays G.711 A-law, UAS echoes)
#   sip-tcp-call.pcap        5060/tcp call (-t t1), RTP both ways
#   sip-udp-fragmented.pcap  5060/udp call whose INVITE (big SDP) is > MTU -> IPv4 fragments
#   sip-um-5065.pcap         5065/tcp call with Exchange UM flavoured headers (RTCC/... MSExchangeUM)
#   sip-udp-call-rtcp.pcap   5060/udp call between two baresip user agents: RTP (PCMU, 440 Hz sine,
#                            ptime 40) both ways plus real RTCP (APP, SR+SDES after 5 s, BYE) on RTP+1
# Media: the UAC replays the first second of /usr/share/sip-tester/g711a.pcap (play_pcap_audio)
# to the port announced in the UAS's SDP; the UAS runs with -rtp_echo on the port it announced.
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init sip

apt_need sip-tester baresip-core tcpdump tshark iproute2 ethtool wireshark-common

W="$EXA_WORK"
# 1 s of the shipped A-law stream (50 packets of 20 ms) keeps the captures small.
editcap -r /usr/share/sip-tester/g711a.pcap "$W/audio.pcap" 1-50

# ---------------------------------------------------------------- scenarios
# UAS: 100 Trying, 180 Ringing, 200 OK with SDP, waits for ACK and BYE.
cat >"$W/uas.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="exwatch UAS">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Server: [server]
Content-Length: 0

]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Server: [server]
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=[server_session]
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:17001
a=sendrecv

]]>
  </send>
  <recv request="ACK" rtd="true" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Server: [server]
Content-Length: 0

]]>
  </send>
</scenario>
EOF

# UAC: INVITE with SDP (+ optional extra SDP lines [sdp_extra]), ACK, 1 s of RTP, BYE.
uac_xml() {   # $1 = file, $2 = extra SDP attribute lines (may be empty)
    cat >"$1" <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="exwatch UAC">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port];transport=[transport] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Alice" <sip:alice@contoso.test>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@contoso.test>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
User-Agent: [ua]
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO
Subject: exwatch test call
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=exwatch
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:16001
$2a=sendrecv

]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Alice" <sip:alice@contoso.test>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
User-Agent: [ua]
Content-Length: 0

]]>
  </send>
  <nop>
    <action>
      <exec play_pcap_audio="$W/audio.pcap"/>
    </action>
  </nop>
  <pause milliseconds="1500"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Alice" <sip:alice@contoso.test>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
User-Agent: [ua]
Content-Length: 0

]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
EOF
}
uac_xml "$W/uac.xml" ""
# Large SDP (ICE candidates and crypto offers as Lync/Skype-for-Business style gateways send)
# makes the INVITE about 2.5 kB, which needs two IPv4 fragments on a 1500-byte MTU.
big=""
for i in $(seq 1 24); do
    big+="a=candidate:$i 1 UDP $((2130706431 - i)) 192.0.2.20 $((16000 + 2 * i)) typ host\n"
done
for i in 1 2 3; do
    big+="a=crypto:$i AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|$i:1\n"
done
uac_xml "$W/uac-big.xml" "$(printf '%b' "$big")
"

# ---------------------------------------------------------------- one call
# call PCAP PORT TRANSPORT(u1|t1) UA SERVER SERVICE UAC_XML
call() {
    local pcap="$PCAP_DIR/$1" port="$2" t="$3" ua="$4" server="$5" service="$6" xml="$7"
    local proto=udp; [ "$t" = t1 ] && proto=tcp
    netns_up
    cap_start "$pcap"
    srv sipp -sf "$W/uas.xml" -t "$t" -i "$SRV4" -p "$port" -mi "$SRV4" -mp 17000 -rtp_echo \
        -key server "$server" -key server_session "$server" \
        -m 1 -nostdin -nd -timeout 20s -trace_err -error_file "$W/uas-err.log" >"$W/uas.out" 2>&1 &
    local uas=$!
    EXA_PIDS+=("$uas")
    wait_port "$EXA_SRV_NS" "$proto" "$port"
    cli sipp -sf "$xml" -t "$t" -i "$CLI4" -p 5062 -mi "$CLI4" -mp 16000 \
        -s "$service" -key ua "$ua" -m 1 -nostdin -nd -timeout 20s \
        -trace_err -error_file "$W/uac-err.log" "$SRV4:$port" >"$W/uac.out" 2>&1 \
        || { log "UAC failed"; cat "$W/uac.out" "$W/uac-err.log" >&2 2>/dev/null; exit 1; }
    # the UAS may count the call as failed when the UAC closes TCP first; the capture is checked below
    wait "$uas" || log "UAS exit status $? (ignored)"
    cap_stop
    cap_done "$pcap"
    kill_ns_procs
}

UA_GW="AudioCodes-Sip-Gateway-MP-114 FXS/v.6.60A.361.001"
call sip-udp-call.pcap 5060 u1 "$UA_GW" "exwatch-uas (SIPp)" "5000" "$W/uac.xml"
call sip-tcp-call.pcap 5060 t1 "$UA_GW" "exwatch-uas (SIPp)" "5000" "$W/uac.xml"
call sip-udp-fragmented.pcap 5060 u1 "$UA_GW" "exwatch-uas (SIPp)" "5000" "$W/uac-big.xml"
# Exchange UM worker process port (UM Call Router redirects calls to 5065/5067 over TCP).
call sip-um-5065.pcap 5065 t1 "$UA_GW" "RTCC/5.0.0.0 MSExchangeUM/15.01.2507.006" "5000" "$W/uac.xml"

# ---------------------------------------------------------------- baresip <-> baresip (RTCP)
bs_conf() {   # bs_conf DIR IP RTP_PORT ACCOUNT
    mkdir -p "$1"
    cat >"$1/config" <<CONF
poll_method epoll
sip_listen $2:5060
audio_source ausine,440
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
audio_player aubridge,null
audio_alert aubridge,null
rtp_ports $3-$(($3 + 9))
rtcp_mux no
module_path /usr/lib/baresip/modules
module stdio.so
module g711.so
module ausine.so
module aubridge.so
module_app account.so
module_app menu.so
CONF
    echo "$4" >"$1/accounts"
}
bs_conf "$W/bs-srv" "$SRV4" 17000 "<sip:bob@$SRV4>;regint=0;answermode=auto;ptime=40;audio_codecs=PCMU"
bs_conf "$W/bs-cli" "$CLI4" 16000 "<sip:alice@$CLI4>;regint=0;ptime=40;audio_codecs=PCMU"
netns_up
f="$PCAP_DIR/sip-udp-call-rtcp.pcap"
cap_start "$f"
srv timeout 15 baresip -f "$W/bs-srv" </dev/null >"$W/bs-srv.out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" udp 5060
# the call lasts about 6 s so that each side sends an RTCP sender report (first one after 5 s)
cli timeout 12 baresip -f "$W/bs-cli" -e "/dial sip:bob@$SRV4" -t 6 </dev/null >"$W/bs-cli.out" 2>&1 || true
cap_stop; cap_done "$f"
kill_bg; kill_ns_procs
r=$(tshark -r "$f" -d udp.port==16001,rtcp -d udp.port==17001,rtcp -Y 'rtcp.pt == 200' 2>/dev/null | wc -l)
[ "$r" -ge 2 ] || { log "no RTCP sender reports in $f"; tail -5 "$W/bs-srv.out" "$W/bs-cli.out" >&2; exit 1; }

# sanity checks
n=$(tshark -r "$PCAP_DIR/sip-udp-fragmented.pcap" -Y 'ip.flags.mf == 1' 2>/dev/null | wc -l)
[ "$n" -ge 1 ] || { log "no IPv4 fragments in sip-udp-fragmented.pcap"; exit 1; }
for f in sip-udp-call sip-tcp-call sip-udp-fragmented sip-um-5065 sip-udp-call-rtcp; do
    r=$(tshark -r "$PCAP_DIR/$f.pcap" -d udp.port==16000,rtp -d udp.port==17000,rtp -Y rtp 2>/dev/null | wc -l)
    [ "$r" -ge 20 ] || { log "too little RTP in $f.pcap ($r)"; exit 1; }
done
pkgver sip-tester baresip-core
log "done"
