#!/usr/bin/env bash
# kerberos.sh - record Kerberos 5 (88/udp and 88/tcp) against MIT krb5kdc.
#
# Realm CONTOSO.TEST, user jdoe (password exwatch-secret-pw-5, requires
# pre-authentication), service principal HTTP/mail.contoso.test.
# Each capture: kinit (AS-REQ -> KRB-ERROR PREAUTH_REQUIRED -> AS-REQ with
# PA-ENC-TIMESTAMP -> AS-REP) then kvno (TGS-REQ -> TGS-REP).
#
# Writes: kerberos-udp.pcap kerberos-tcp.pcap
set -euo pipefail
. "$(dirname "$0")/lib-b.sh"

exb_apt_install krb5-kdc krb5-admin-server krb5-user iproute2 tcpdump
exb_stop_host_service krb5-kdc krb5-admin-server
exb_setup

T=$EXB_TMP
REALM=CONTOSO.TEST
USER_PW=exwatch-secret-pw-5

cat >"$T/kdc.conf" <<EOF
[kdcdefaults]
    kdc_ports = 88
    kdc_tcp_ports = 88
[realms]
    $REALM = {
        database_name = $T/principal
        key_stash_file = $T/stash
        acl_file = $T/kadm5.acl
        max_life = 10h 0m 0s
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$T/kdc.log
EOF
: >"$T/kadm5.acl"

client_conf() { # FILE UDP_PREFERENCE_LIMIT
    cat >"$1" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = $2
[realms]
    $REALM = {
        kdc = $EXB_SRV_IP
    }
[domain_realm]
    .contoso.test = $REALM
EOF
}
client_conf "$T/krb5-udp.conf" 1465    # MIT default: UDP first
client_conf "$T/krb5-tcp.conf" 1       # always TCP

export KRB5_KDC_PROFILE=$T/kdc.conf KRB5_CONFIG=$T/krb5-udp.conf
kdb5_util create -s -r "$REALM" -P exwatch-master-not-secret >/dev/null 2>&1
kadmin.local -r "$REALM" -q "addprinc +requires_preauth -pw $USER_PW jdoe" >/dev/null 2>&1
kadmin.local -r "$REALM" -q "addprinc -randkey HTTP/mail.contoso.test" >/dev/null 2>&1

exb_srv_bg "$T/krb5kdc.out" env KRB5_KDC_PROFILE="$T/kdc.conf" KRB5_CONFIG="$T/krb5-udp.conf" \
    krb5kdc -n -r "$REALM"
exb_wait_listen udp 88
exb_wait_listen tcp 88

run_client() { # CONF CCACHE
    printf '%s\n' "$USER_PW" | exb_cli env KRB5_CONFIG="$1" KRB5CCNAME="FILE:$2" kinit jdoe@$REALM >/dev/null
    exb_cli env KRB5_CONFIG="$1" KRB5CCNAME="FILE:$2" kvno HTTP/mail.contoso.test@$REALM
}

exb_cap_start kerberos-udp.pcap "port 88"
run_client "$T/krb5-udp.conf" "$T/cc-udp"
exb_cap_stop

exb_cap_start kerberos-tcp.pcap "port 88"
run_client "$T/krb5-tcp.conf" "$T/cc-tcp"
exb_cap_stop

exb_log "krb5kdc: $(exb_pkg_version krb5-kdc); client: $(exb_pkg_version krb5-user)"
