#!/usr/bin/env bash
# dns.sh - record DNS over 53/udp and 53/tcp (IPv4 and IPv6 transport)
# against dnsmasq, with dig as the client.
#
# dnsmasq is authoritative-ish (local=/contoso.test/, no upstream) for:
#   mail.contoso.test A/AAAA, autodiscover.contoso.test A,
#   _autodiscover._tcp.contoso.test SRV, contoso.test MX,
#   _ldap._tcp.dc._msdcs.contoso.test SRV, _kerberos._tcp.contoso.test SRV.
#
# Writes: dns-udp.pcap (UDP only) and dns-tcp.pcap (TCP only, dig +tcp).
set -euo pipefail
. "$(dirname "$0")/lib-b.sh"

exb_apt_install dnsmasq-base bind9-dnsutils iproute2 tcpdump
exb_setup

T=$EXB_TMP
cat >"$T/dnsmasq.conf" <<EOF
port=53
no-resolv
no-hosts
no-poll
bind-interfaces
listen-address=$EXB_SRV_IP
listen-address=$EXB_SRV_IP6
except-interface=lo
user=root
group=root
pid-file=$T/dnsmasq.pid
log-queries
log-facility=$T/dnsmasq.log
local=/contoso.test/
domain=contoso.test
host-record=mail.contoso.test,$EXB_SRV_IP,$EXB_SRV_IP6
host-record=autodiscover.contoso.test,$EXB_SRV_IP
host-record=dc01.contoso.test,$EXB_SRV_IP
mx-host=contoso.test,mail.contoso.test,10
srv-host=_autodiscover._tcp.contoso.test,mail.contoso.test,443,0,0
srv-host=_ldap._tcp.dc._msdcs.contoso.test,dc01.contoso.test,389,0,100
srv-host=_kerberos._tcp.contoso.test,dc01.contoso.test,88,0,100
EOF

exb_srv_bg "$T/dnsmasq.out" dnsmasq --keep-in-foreground --conf-file="$T/dnsmasq.conf"
exb_wait_listen udp 53
exb_wait_listen tcp 53

queries() { # extra dig args
    exb_cli dig +short "$@" @"$EXB_SRV_IP" mail.contoso.test A
    exb_cli dig +short "$@" @"$EXB_SRV_IP" autodiscover.contoso.test A
    exb_cli dig +short "$@" @"$EXB_SRV_IP" _autodiscover._tcp.contoso.test SRV
    exb_cli dig +short "$@" @"$EXB_SRV_IP" contoso.test MX
    exb_cli dig +short "$@" @"$EXB_SRV_IP" _ldap._tcp.dc._msdcs.contoso.test SRV
    exb_cli dig +short "$@" @"$EXB_SRV_IP6" mail.contoso.test AAAA
    exb_cli dig +short "$@" @"$EXB_SRV_IP6" _kerberos._tcp.contoso.test SRV
}

exb_cap_start dns-udp.pcap "udp port 53"
queries +notcp
exb_cap_stop

exb_cap_start dns-tcp.pcap "tcp port 53"
queries +tcp
exb_cap_stop

exb_log "dnsmasq: $(exb_pkg_version dnsmasq-base); dig: $(exb_pkg_version bind9-dnsutils)"
