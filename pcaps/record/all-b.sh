#!/usr/bin/env bash
# all-b.sh - re-record every part-B real-peer capture into pcaps/.
# Needs root (network namespaces, apt-get).  About 3-5 minutes on a warm machine.
set -euo pipefail
cd "$(dirname "$0")"
for s in ldap.sh kerberos.sh dns.sh dcerpc.sh misc.sh; do
    echo "=== $s" >&2
    bash "./$s"
done
echo "=== part B captures:" >&2
ls -l ../ldap-389.pcap ../ldaps-636.pcap ../ldap-gc-3268.pcap ../ldaps-gc-3269.pcap \
    ../edgesync-50636.pcap ../adlds-50389.pcap ../kerberos-udp.pcap ../kerberos-tcp.pcap \
    ../dns-udp.pcap ../dns-tcp.pcap ../dcerpc-epm-dynamic.pcap ../dcerpc-exchange-binds.pcap \
    ../smb-445.pcap ../smb-netbios-139.pcap ../cldap-389-udp.pcap ../nntp.pcap ../nntps-563.pcap \
    ../irc.pcap ../ntp.pcap ../snmp.pcap ../ssh.pcap ../rdp.pcap >&2
