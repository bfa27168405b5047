#!/usr/bin/env bash
# ldap.sh - record LDAP / LDAPS captures against a real OpenLDAP slapd.
#
# slapd listens on 389 (LDAP + StartTLS), 636 (LDAPS) and, standing in for the
# AD Global Catalog, Edge EdgeSync and AD LDS, on 3268, 3269 (LDAPS), 50636
# (LDAPS) and 50389.  The client is OpenLDAP's ldapsearch with a simple bind
# (password exwatch-secret-pw-4, visible in clear in the 389/3268/50389 captures).
#
# Writes: ldap-389.pcap ldaps-636.pcap ldap-gc-3268.pcap ldaps-gc-3269.pcap
#         edgesync-50636.pcap adlds-50389.pcap
# CLDAP (389/udp) is recorded by dcerpc.sh against Samba's AD DC (slapd has no
# connectionless LDAP and ldapsearch cannot send it).
set -euo pipefail
. "$(dirname "$0")/lib-b.sh"

exb_apt_install slapd ldap-utils openssl iproute2 tcpdump
exb_stop_host_service slapd
exb_setup

T=$EXB_TMP
BASE="dc=contoso,dc=test"
USER_DN="uid=jdoe,ou=people,$BASE"
USER_PW="exwatch-secret-pw-4"
mkdir -p "$T/db"
exb_self_signed "$T" dc01.contoso.test

cat >"$T/slapd.conf" <<EOF
include  /etc/ldap/schema/core.schema
include  /etc/ldap/schema/cosine.schema
include  /etc/ldap/schema/inetorgperson.schema
include  /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile  $T/slapd.pid
argsfile $T/slapd.args
TLSCertificateFile    $T/cert.pem
TLSCertificateKeyFile $T/key.pem
database mdb
maxsize  16777216
suffix   "$BASE"
rootdn   "cn=admin,$BASE"
rootpw   exwatch-admin-not-used
directory $T/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
EOF

cat >"$T/data.ldif" <<EOF
dn: $BASE
objectClass: top
objectClass: dcObject
objectClass: organization
o: Contoso Test
dc: contoso

dn: ou=people,$BASE
objectClass: organizationalUnit
ou: people

dn: $USER_DN
objectClass: inetOrgPerson
uid: jdoe
cn: John Doe
sn: Doe
mail: jdoe@contoso.test
userPassword: $USER_PW

dn: cn=EXCH01,ou=people,$BASE
objectClass: device
cn: EXCH01
description: Exchange 2016 Mailbox server (test entry)
EOF

slapadd -f "$T/slapd.conf" -l "$T/data.ldif" >/dev/null 2>&1
URLS="ldap://:389/ ldaps://:636/ ldap://:3268/ ldaps://:3269/ ldaps://:50636/ ldap://:50389/"
# -d 0: stay in the foreground (no fork) so the namespace cleanup finds it
exb_srv_bg "$T/slapd.log" slapd -f "$T/slapd.conf" -h "$URLS" -u root -g root -d 0
for p in 389 636 3268 3269 50636 50389; do exb_wait_listen tcp $p; done

export LDAPTLS_CACERT=$T/cert.pem LDAPTLS_REQCERT=demand
search() { # URL [extra ldapsearch args]
    local url=$1; shift
    exb_cli ldapsearch -LLL -x -H "$url" -D "$USER_DN" -w "$USER_PW" \
        -b "$BASE" "$@" '(|(uid=jdoe)(cn=EXCH01))' cn mail description
}

# 389: simple bind + search in clear, then a second connection with StartTLS.
exb_cap_start ldap-389.pcap "tcp port 389"
search "ldap://$EXB_SRV_IP:389"
search "ldap://$EXB_SRV_IP:389" -ZZ
exb_cap_stop

exb_cap_start ldaps-636.pcap "tcp port 636"
search "ldaps://$EXB_SRV_IP:636"
exb_cap_stop

exb_cap_start ldap-gc-3268.pcap "tcp port 3268"
search "ldap://$EXB_SRV_IP:3268"
exb_cap_stop

exb_cap_start ldaps-gc-3269.pcap "tcp port 3269"
search "ldaps://$EXB_SRV_IP:3269"
exb_cap_stop

exb_cap_start edgesync-50636.pcap "tcp port 50636"
search "ldaps://$EXB_SRV_IP:50636"
exb_cap_stop

# AD LDS plain LDAP over IPv6 as well as IPv4
exb_cap_start adlds-50389.pcap "tcp port 50389"
search "ldap://$EXB_SRV_IP:50389"
search "ldap://[$EXB_SRV_IP6]:50389"
exb_cap_stop

exb_log "slapd: $(exb_pkg_version slapd); ldapsearch: $(exb_pkg_version ldap-utils)"
