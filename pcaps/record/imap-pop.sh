#!/usr/bin/env bash
# Records IMAP4 and POP3 captures against Dovecot (Debian dovecot-imapd / dovecot-pop3d) configured
# with the Microsoft Exchange greetings, run from its own config file in a temp dir.
# User alice / exwatch-secret-pw-2 (passwd-file), Maildir with one small message.
#   imap-143.pcap           143/tcp  python imaplib: LOGIN (clear text), SELECT INBOX, FETCH 1, LOGOUT
#   imap-143-ipv6.pcap      143/tcp over IPv6 (2001:db8::20 -> 2001:db8::10), same dialogue
#   imap-starttls-143.pcap  143/tcp  curl --ssl-reqd: STARTTLS, then login and FETCH inside TLS
#   imaps-993.pcap          993/tcp  python imaplib IMAP4_SSL (SNI mail.contoso.test)
#   pop3-110.pcap           110/tcp  python poplib: USER/PASS (clear text), STAT, LIST, RETR 1, QUIT
#   pop3-stls-110.pcap      110/tcp  curl --ssl-reqd: STLS, then RETR inside TLS
#   pop3s-995.pcap          995/tcp  curl pop3s:// (implicit TLS)
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init imap-pop

apt_need dovecot-imapd dovecot-pop3d curl python3 openssl tcpdump tshark iproute2 ethtool

W="$EXA_WORK"
PW=exwatch-secret-pw-2
make_cert "$W/tls" mail.contoso.test imap.contoso.test pop.contoso.test

mkdir -p "$W/run" "$W/state" "$W/home/alice/Maildir/"{cur,new,tmp}
cat >"$W/home/alice/Maildir/cur/1764000000.M1P1.mail.contoso.test:2,S" <<'MSG'
Return-Path: <bob@fabrikam.test>
From: Bob <bob@fabrikam.test>
To: Alice <alice@contoso.test>
Subject: exwatch IMAP/POP test
Date: Mon, 24 Nov 2025 10:00:00 +0000
Message-ID: <exwatch-imap-1@fabrikam.test>
Content-Type: text/plain; charset=us-ascii

Hello Alice, this message lives in a test Maildir.
MSG
chown -R mail:mail "$W/home"
echo "alice:{PLAIN}$PW:::::" >"$W/users"

dovecot_conf() {   # $1 = file, $2 = listen addresses
    cat >"$1" <<CONF
base_dir = $W/run
state_dir = $W/state
log_path = $W/dovecot.log
info_log_path = $W/dovecot.log
protocols = imap pop3
listen = $2
ssl = yes
ssl_cert = <$W/tls/chain.crt
ssl_key = <$W/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
protocol imap {
  login_greeting = The Microsoft Exchange IMAP4 service is ready.
}
protocol pop3 {
  login_greeting = The Microsoft Exchange POP3 service is ready.
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $W/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$W/home/%u
}
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 995
    ssl = yes
  }
}
service anvil {
  chroot =
}
CONF
}

dovecot_start() {
    dovecot_conf "$W/dovecot.conf" "$1"
    srv /usr/sbin/dovecot -c "$W/dovecot.conf" -F >"$W/dovecot.out" 2>&1 &
    EXA_PIDS+=($!)
    local p; for p in 143 993 110 995; do wait_port "$EXA_SRV_NS" tcp "$p"; done
}
dovecot_stop() { kill_bg; kill_ns_procs; }

# Python stdlib clients (imaplib / poplib)
cat >"$W/client.py" <<'PY'
import imaplib, poplib, ssl, sys
kind, host, pw, cafile = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
if kind in ("imap", "imaps"):
    m = imaplib.IMAP4(host) if kind == "imap" else imaplib.IMAP4_SSL(host, ssl_context=ctx)
    m.login("alice", pw)
    m.select("INBOX")
    typ, data = m.fetch("1", "(FLAGS BODY[])")
    assert typ == "OK" and b"exwatch IMAP/POP test" in data[0][1], data
    m.close()
    m.logout()
else:
    p = poplib.POP3(host)
    p.user("alice")
    p.pass_(pw)
    p.stat()
    p.list()
    resp, lines, octets = p.retr(1)
    assert b"Subject: exwatch IMAP/POP test" in lines, lines
    p.quit()
print("ok")
PY
py() { cli /usr/bin/python3 "$W/client.py" "$@" "$PW" "$W/tls/ca.crt" >>"$W/client.log" 2>&1 \
        || { log "client failed: $*"; tail -20 "$W/client.log" >&2; exit 1; }; }
curl_run() { cli curl -sS --max-time 10 --cacert "$W/tls/ca.crt" -u "alice:$PW" "$@" >>"$W/client.log" 2>&1 \
        || { log "curl failed: $*"; tail -20 "$W/client.log" >&2; exit 1; }; }

# ------------------------------------------------ IPv4
netns_up
dovecot_start "$SRV4"
rec() { local f="$PCAP_DIR/$1" port="$2"; shift 2; cap_start "$f" tcp port "$port"; "$@"; cap_stop; cap_done "$f"; }
rec imap-143.pcap          143 py imap mail.contoso.test
rec imap-starttls-143.pcap 143 curl_run --ssl-reqd "imap://mail.contoso.test/INBOX;UID=1"
rec imaps-993.pcap         993 py imaps mail.contoso.test
rec pop3-110.pcap          110 py pop3 mail.contoso.test
rec pop3-stls-110.pcap     110 curl_run --ssl-reqd "pop3://mail.contoso.test/1"
rec pop3s-995.pcap         995 curl_run "pop3s://mail.contoso.test/1"
dovecot_stop

# ------------------------------------------------ IPv6
EXA_IPV6=1 netns_up
dovecot_start "$SRV6"
rec imap-143-ipv6.pcap 143 py imap mail6.contoso.test
dovecot_stop

# sanity checks
tshark -r "$PCAP_DIR/imap-143.pcap" -Y 'frame contains "The Microsoft Exchange IMAP4 service is ready."' 2>/dev/null | grep -q . \
    || { log "IMAP greeting missing"; exit 1; }
tshark -r "$PCAP_DIR/pop3-110.pcap" -Y 'frame contains "The Microsoft Exchange POP3 service is ready."' 2>/dev/null | grep -q . \
    || { log "POP3 greeting missing"; exit 1; }
tshark -r "$PCAP_DIR/imap-143-ipv6.pcap" -Y 'ipv6 && imap' 2>/dev/null | grep -q . || { log "no IPv6 IMAP"; exit 1; }
pkgver dovecot-core dovecot-imapd dovecot-pop3d curl python3
log done
