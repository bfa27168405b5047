#!/usr/bin/env bash
# dcerpc.sh - record DCE/RPC, SMB and CLDAP against a real Samba AD DC.
#
# Samba is provisioned as an Active Directory DC (realm CONTOSO.TEST, domain
# CONTOSO, host DC01, Administrator password exwatch-secret-pw-6) in a scratch
# directory and run in the foreground (`samba -i`) inside the server namespace.
# Clients: impacket (pinned, in a venv) for DCE/RPC over TCP/UDP, smbclient for
# SMB, `net ads lookup` for CLDAP.
#
# Writes:
#   dcerpc-epm-dynamic.pcap   135/tcp ept_lookup (rpcdump-style) + ept_map(SAMR)
#                             -> dynamic port; NTLM-authenticated bind + SAMR calls there
#   dcerpc-exchange-binds.pcap ept_map for EMSMDB and NSPI (ept_s_not_registered),
#                             binds to EMSMDB/NSPI/RFR/AsyncEMSMDB on 135 and on a
#                             dynamic port (rejected: abstract syntax not supported)
#   smb-445.pcap              smbclient -L over SMB3 on 445 (NTLMSSP, srvsvc
#                             NetShareEnumAll over \PIPE\srvsvc)
#   smb-netbios-139.pcap      the same over NetBIOS session service on 139
#   cldap-389-udp.pcap        CLDAP netlogon ping (net ads lookup)
#
# Not recorded: connectionless DCE/RPC (ncadg_ip_udp).  Samba 4.17 has no
# ncadg server (nothing listens on 135/udp) and impacket's DCERPC_v4 class is
# an empty stub: its ncadg_ip_udp transport sends a connection-oriented (v5)
# bind PDU inside UDP, which is not what a real CL client sends.
set -euo pipefail
. "$(dirname "$0")/lib-b.sh"

exb_apt_install samba samba-ad-dc samba-ad-provision samba-common-bin smbclient winbind krb5-config \
    python3-venv iproute2 tcpdump
exb_stop_host_service samba-ad-dc smbd nmbd winbind samba
exb_setup
PY=$(exb_venv)

T=$EXB_TMP
PW=exwatch-secret-pw-6
SD=$T/samba
: >"$T/empty.conf"
samba-tool domain provision --configfile="$T/empty.conf" \
    --use-rfc2307 --realm=CONTOSO.TEST --domain=CONTOSO --server-role=dc \
    --dns-backend=SAMBA_INTERNAL --adminpass="$PW" --host-name=DC01 \
    --host-ip="$EXB_SRV_IP" --host-ip6="$EXB_SRV_IP6" --targetdir="$SD" \
    --option="interfaces=lo $EXB_SRV_IF" --option="bind interfaces only=yes" \
    --option="log file=$SD/log.%m" --option="dns forwarder=$EXB_SRV_IP" \
    >"$T/provision.log" 2>&1 || { tail -20 "$T/provision.log" >&2; exb_die "samba provision failed"; }
mkdir -p "$SD/run"
# no DNS server (dnsmasq covers DNS), no dynamic DNS updates (samba_dnsupdate
# would only try the host's resolver, unreachable from the namespace).
# ncalrpc/winbindd socket dirs stay at their compiled-in defaults: smbd finds
# winbindd through libwbclient's default path, and moving it breaks SMB logons
# with NT_STATUS_INTERNAL_ERROR.
sed -i "s|^\[global\]|[global]\n\tserver services = -dns\n\tdns update command = /bin/true\n\tsmb ports = 445 139\n\tpid directory = $SD/run|" "$SD/etc/smb.conf"

exb_srv_bg "$T/samba.out" samba -i -s "$SD/etc/smb.conf"
for p in 135 445 139; do exb_wait_listen tcp $p 90; done
exb_wait_listen udp 389 90
exb_wait_listen tcp 49152 90
sleep 2

cat >"$T/rpc.py" <<'EOF'
"""impacket clients for the exwatch DCE/RPC captures."""
import sys
from impacket.dcerpc.v5 import transport, epm, samr
from impacket.dcerpc.v5.rpcrt import DCERPCException, RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
from impacket.uuid import uuidtup_to_bin
from impacket.dcerpc.v5.dtypes import NULL

mode, HOST, PW = sys.argv[1], sys.argv[2], sys.argv[3]
USER, DOMAIN = 'Administrator', 'CONTOSO'

EXCHANGE = [
    ('EMSMDB', ('a4f1db00-ca47-1067-b31f-00dd010662da', '0.81')),
    ('NSPI', ('f5cc5a18-4264-101a-8c59-08002b2f8426', '56.0')),
    ('RFR', ('1544f5e0-613c-11d1-93df-00c04fd7bd09', '1.0')),
    ('AsyncEMSMDB', ('5261574a-4572-206e-b268-6b199213b4e4', '1.0')),
]


def bind_only(binding, name, uuidtup):
    t = transport.DCERPCTransportFactory(binding)
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        dce.bind(uuidtup_to_bin(uuidtup))
        print(name, binding, 'bind accepted')
    except DCERPCException as e:
        print(name, binding, 'rejected:', e)
    finally:
        dce.disconnect()


if mode == 'epm':
    # rpcdump-style enumeration of every registered endpoint: ept_lookup until
    # the server says ept_s_not_registered (Samba's end-of-list answer)
    dce = transport.DCERPCTransportFactory('ncacn_ip_tcp:%s[135]' % HOST).get_dce_rpc()
    dce.connect()
    dce.bind(epm.MSRPC_UUID_PORTMAP)
    handle, total = epm.ept_lookup_handle_t(), 0
    for _ in range(10):
        req = epm.ept_lookup()
        req['inquiry_type'] = epm.RPC_C_EP_ALL_ELTS
        req['object'] = NULL
        req['Ifid'] = NULL
        req['vers_option'] = epm.RPC_C_VERS_ALL
        req['entry_handle'] = handle
        req['max_ents'] = 500
        try:
            resp = dce.request(req)
        except DCERPCException as e:
            print('ept_lookup end:', e)
            break
        total += resp['num_ents']
        handle = resp['entry_handle']
    print('ept_lookup: %d entries' % total)
    dce.disconnect()
    # resolve SAMR's dynamic TCP endpoint, then use it
    binding = epm.hept_map(HOST, samr.MSRPC_UUID_SAMR, protocol='ncacn_ip_tcp')
    print('ept_map samr ->', binding)
    t = transport.DCERPCTransportFactory(binding)
    t.set_credentials(USER, PW, DOMAIN)
    dce = t.get_dce_rpc()
    dce.set_auth_level(RPC_C_AUTHN_LEVEL_PKT_INTEGRITY)
    dce.connect()
    dce.bind(samr.MSRPC_UUID_SAMR)
    h = samr.hSamrConnect2(dce)['ServerHandle']
    r = samr.hSamrEnumerateDomainsInSamServer(dce, h)
    print('domains:', [d['Name'] for d in r['Buffer']['Buffer']])
    samr.hSamrCloseHandle(dce, h)
    dce.disconnect()
elif mode == 'exchange':
    dyn = sys.argv[4]
    # what Outlook does first: ask the endpoint mapper where EMSMDB / NSPI live
    for name, tup in EXCHANGE[:2]:
        try:
            print('ept_map', name, '->', epm.hept_map(HOST, uuidtup_to_bin(tup), protocol='ncacn_ip_tcp'))
        except DCERPCException as e:
            print('ept_map', name, 'failed:', e)
    for name, tup in EXCHANGE:
        bind_only('ncacn_ip_tcp:%s[135]' % HOST, name, tup)
    for name, tup in EXCHANGE[:2]:
        bind_only('ncacn_ip_tcp:%s[%s]' % (HOST, dyn), name, tup)
elif mode == 'samrport':
    b = epm.hept_map(HOST, samr.MSRPC_UUID_SAMR, protocol='ncacn_ip_tcp')
    print(b.split('[')[1].rstrip(']'))
EOF

# the dynamic port SAMR was given (looked up before recording starts)
DYN=$(exb_cli "$PY" "$T/rpc.py" samrport "$EXB_SRV_IP" "$PW")
exb_log "SAMR dynamic endpoint: $DYN"

exb_cap_start dcerpc-epm-dynamic.pcap "tcp"
exb_cli "$PY" "$T/rpc.py" epm "$EXB_SRV_IP" "$PW"
exb_cap_stop

exb_cap_start dcerpc-exchange-binds.pcap "tcp"
exb_cli "$PY" "$T/rpc.py" exchange "$EXB_SRV_IP" "$PW" "$DYN"
exb_cap_stop

printf '[global]\n\tnetbios name = EXCH01\n\tworkgroup = CONTOSO\n\trealm = CONTOSO.TEST\n\tclient min protocol = SMB2_02\n\tlog file = %s/client.log\n' "$T" >"$T/client.conf"

exb_cap_start smb-445.pcap "tcp port 445"
exb_cli smbclient -s "$T/client.conf" -p 445 -m SMB3 -L "//$EXB_SRV_IP" -U "Administrator%$PW"
exb_cap_stop

exb_cap_start smb-netbios-139.pcap "tcp port 139"
exb_cli smbclient -s "$T/client.conf" -p 139 -m SMB3 -L "//$EXB_SRV_IP" -U "Administrator%$PW"
exb_cap_stop

exb_cap_start cldap-389-udp.pcap "udp port 389"
exb_cli net -s "$T/client.conf" ads lookup -S "$EXB_SRV_IP"
exb_cap_stop


exb_log "samba: $(exb_pkg_version samba); smbclient: $(exb_pkg_version smbclient); impacket: $("$PY" -c 'import impacket.version as v; print(v.version)' 2>/dev/null || echo "$EXB_IMPACKET_VERSION")"
