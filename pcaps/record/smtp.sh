#!/usr/bin/env bash
# Records SMTP captures.
#   Real MTA: Exim 4 (Debian exim4-daemon-light) with its own config file, client swaks.
#     smtp-plain-25.pcap       25/tcp, anonymous mail, no TLS
#     smtp-auth-plain-25.pcap  25/tcp, AUTH PLAIN in clear text (alice / exwatch-secret-pw-1), mail
#     smtp-starttls-587.pcap   587/tcp, STARTTLS then AUTH LOGIN and mail inside TLS
#     smtps-465.pcap           465/tcp, implicit TLS (tls_on_connect_ports), AUTH PLAIN inside TLS
#   Exchange-flavoured server: exchange_smtpd.py (aiosmtpd), client swaks.
#     smtp-exchange-25.pcap    25/tcp, "Microsoft ESMTP MAIL Service" banner, Exchange EHLO keywords, mail
#     smtp-exchange-587.pcap   587/tcp, same banner, STARTTLS (X-ANONYMOUSTLS advertised), AUTH LOGIN inside TLS
#     smtp-exchange-2525.pcap  2525/tcp, same banner, AUTH LOGIN in clear text, mail
set -euo pipefail
. "$(dirname "$0")/lib-a.sh"
exa_init smtp

apt_need exim4-daemon-light swaks libnet-ssleay-perl openssl tcpdump tshark iproute2 ethtool
venv_need aiosmtpd==1.4.6

W="$EXA_WORK"
PW=exwatch-secret-pw-1
make_cert "$W/tls" mail.contoso.test smtp.contoso.test

mkdir -p "$W/spool" "$W/log"
chown -R Debian-exim:Debian-exim "$W/spool" "$W/log"
cat >"$W/exim.conf" <<CONF
primary_hostname = mail.contoso.test
local_interfaces = $SRV4
daemon_smtp_ports = 25 : 465 : 587
tls_on_connect_ports = 465
tls_advertise_hosts = *
tls_certificate = $W/tls/server.crt
tls_privatekey = $W/tls/server.key
auth_advertise_hosts = *
spool_directory = $W/spool
log_file_path = $W/log/%slog
pid_file_path = $W/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
host_lookup =
rfc1413_hosts =
keep_environment =
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept

begin routers
blackhole:
  driver = redirect
  data = :blackhole:

begin transports

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{alice}}{eq{\$auth3}{$PW}}}}
  server_set_id = \$auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and {{eq{\$auth1}{alice}}{eq{\$auth2}{$PW}}}}
  server_set_id = \$auth1
CONF

# swaks with fixed headers/body so the message content is the same on every recording
swaks_run() {
    cli swaks --server "$SRV4" --ehlo client.fabrikam.test \
        --from alice@fabrikam.test --to bob@contoso.test \
        --header "Date: Mon, 24 Nov 2025 10:00:00 +0000" \
        --header "Message-Id: <exwatch-test-1@fabrikam.test>" \
        --header "Subject: exwatch test message" \
        --body "Hello Bob, this is an exwatch capture test." \
        --timeout 10 "$@" >>"$W/swaks.log" 2>&1 \
        || { log "swaks failed: $*"; tail -30 "$W/swaks.log" >&2; exit 1; }
}

# ------------------------------------------------ Exim
exim_start() {
    netns_up
    srv /usr/sbin/exim4 -C "$W/exim.conf" -bdf >"$W/exim.out" 2>&1 &
    EXA_PIDS+=($!)
    wait_port "$EXA_SRV_NS" tcp 25; wait_port "$EXA_SRV_NS" tcp 465; wait_port "$EXA_SRV_NS" tcp 587
}
exim_start
cap_start "$PCAP_DIR/smtp-plain-25.pcap" tcp port 25
swaks_run --port 25
cap_stop; cap_done "$PCAP_DIR/smtp-plain-25.pcap"

cap_start "$PCAP_DIR/smtp-auth-plain-25.pcap" tcp port 25
swaks_run --port 25 --auth PLAIN --auth-user alice --auth-password "$PW"
cap_stop; cap_done "$PCAP_DIR/smtp-auth-plain-25.pcap"

cap_start "$PCAP_DIR/smtp-starttls-587.pcap" tcp port 587
swaks_run --port 587 --tls --tls-sni mail.contoso.test --auth LOGIN --auth-user alice --auth-password "$PW"
cap_stop; cap_done "$PCAP_DIR/smtp-starttls-587.pcap"

cap_start "$PCAP_DIR/smtps-465.pcap" tcp port 465
swaks_run --port 465 --tls-on-connect --tls-sni mail.contoso.test --auth PLAIN --auth-user alice --auth-password "$PW"
cap_stop; cap_done "$PCAP_DIR/smtps-465.pcap"
kill_bg; kill_ns_procs

# ------------------------------------------------ Exchange-flavoured aiosmtpd
netns_up
srv "$EXA_VENV/bin/python" "$EXA_RECORD_DIR/exchange_smtpd.py" --listen "$SRV4" \
    --port 25 --port 587 --port 2525 --cert "$W/tls/chain.crt" --key "$W/tls/server.key" \
    --user alice --password "$PW" >"$W/exsmtpd.out" 2>&1 &
EXA_PIDS+=($!)
wait_port "$EXA_SRV_NS" tcp 25; wait_port "$EXA_SRV_NS" tcp 587; wait_port "$EXA_SRV_NS" tcp 2525

cap_start "$PCAP_DIR/smtp-exchange-25.pcap" tcp port 25
swaks_run --port 25
cap_stop; cap_done "$PCAP_DIR/smtp-exchange-25.pcap"

cap_start "$PCAP_DIR/smtp-exchange-587.pcap" tcp port 587
swaks_run --port 587 --tls --tls-sni mail.contoso.test --auth LOGIN --auth-user alice --auth-password "$PW"
cap_stop; cap_done "$PCAP_DIR/smtp-exchange-587.pcap"

cap_start "$PCAP_DIR/smtp-exchange-2525.pcap" tcp port 2525
swaks_run --port 2525 --auth LOGIN --auth-user alice --auth-password "$PW"
cap_stop; cap_done "$PCAP_DIR/smtp-exchange-2525.pcap"

# sanity checks
tshark -r "$PCAP_DIR/smtp-exchange-25.pcap" -Y 'frame contains "Microsoft ESMTP MAIL Service"' 2>/dev/null | grep -q . \
    || { log "Exchange banner missing"; exit 1; }
tshark -r "$PCAP_DIR/smtp-starttls-587.pcap" -Y tls.handshake.type==1 2>/dev/null | grep -q . || { log "no TLS in 587"; exit 1; }
tshark -r "$PCAP_DIR/smtps-465.pcap" -d tcp.port==465,tls -Y tls.handshake.type==1 2>/dev/null | grep -q . || { log "no TLS in 465"; exit 1; }
pkgver exim4-daemon-light swaks
pipver aiosmtpd
log done
