#!/usr/bin/env bash
# misc.sh - record the remaining real-peer captures: NNTP, IRC, NTP, SNMP, SSH, RDP.
#
#   nntp.pcap  INN 2 (innd + nnrpd) on 119, python nntplib client: CAPABILITIES,
#              LIST, POST, GROUP, ARTICLE, QUIT (INN advertises READER, so
#              nntplib sends no MODE READER)
#   nntps-563.pcap  INN 2 nnrpd -D -S (implicit TLS) on 563, nntplib NNTP_SSL:
#              GROUP, ARTICLE, QUIT inside TLS
#   irc.pcap   ngIRCd on 6667, a python socket client speaking real IRC commands
#   ntp.pcap   chronyd serving local time on 123/udp, ntpdate -q (ntpsec) client
#   snmp.pcap  net-snmp snmpd on 161/udp, snmpget + snmpwalk v2c (community public)
#   ssh.pcap   OpenSSH sshd on 22, ssh with an ed25519 key running one command
#   rdp.pcap   xrdp on 3389, xfreerdp +auth-only (X.224 + TLS handshake)
#
# Usage: misc.sh [nntp|irc|ntp|snmp|ssh|rdp]...   (default: all, in that order)
set -euo pipefail
. "$(dirname "$0")/lib-b.sh"

WHAT=("$@")
[ ${#WHAT[@]} -eq 0 ] && WHAT=(nntp irc ntp snmp ssh rdp)

# Python with nntplib (removed from the stdlib in 3.13; present in Debian 12's 3.11).
pick_python() {
    local p
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null && "$p" -W ignore -c 'import nntplib' 2>/dev/null; then
            command -v "$p"; return 0
        fi
    done
    exb_apt_install python3
    echo /usr/bin/python3
}

install_inn2() {
    # inn2's postinst fails (and leaves the package half-configured, breaking
    # every later apt-get run) when the host name has no domain: set one first.
    if ! dpkg-query -W -f='${Status}' inn2 2>/dev/null | grep -q 'install ok installed'; then
        exb_apt_install inn2 || true
        if [ -f /etc/news/inn.conf ] && ! grep -q '^domain:' /etc/news/inn.conf; then
            sed -i 's/^#domain:.*/domain:                      contoso.test/' /etc/news/inn.conf
        fi
        DEBIAN_FRONTEND=noninteractive dpkg --configure inn2
    fi
}

record_nntp() {
    install_inn2
    exb_stop_host_service inn2
    local py; py=$(pick_python)
    local N=$EXB_TMP/inn
    mkdir -p "$N"/{etc,run,log,db,spool,tmp,overview,outgoing,incoming,archive,articles}
    cp -a /etc/news/. "$N/etc/"
    # inn.conf: Debian's, with every path moved into the scratch tree
    grep -vE '^(path[a-z]+|domain|pathhost|organization|port|nnrpdpostport):' /etc/news/inn.conf >"$N/etc/inn.conf"
    cat >>"$N/etc/inn.conf" <<EOF
domain:          contoso.test
pathhost:        news.contoso.test
organization:    "Contoso test (exwatch capture)"
port:            119
nnrpdpostport:   119
pathnews:        /usr/lib/news
pathbin:         /usr/lib/news/bin
pathcontrol:     /usr/lib/news/bin/control
pathfilter:      /usr/lib/news/bin/filter
pathetc:         $N/etc
pathrun:         $N/run
pathlog:         $N/log
pathhttp:        $N/log
pathtmp:         $N/tmp
pathdb:          $N/db
pathspool:       $N/spool
pathoverview:    $N/overview
pathoutgoing:    $N/outgoing
pathincoming:    $N/incoming
patharchive:     $N/archive
patharticles:    $N/articles
tlscertfile:     $N/etc/cert.pem
tlskeyfile:      $N/etc/key.pem
EOF
    exb_self_signed "$N/etc" news.contoso.test
    cat >"$N/etc/readers.conf" <<EOF
auth "testnet" {
    hosts: "$EXB_CLI_IP/24, localhost, 127.0.0.1, ::1, stdin"
    default: "<testnet>"
}
access "testnet" {
    users: "<testnet>"
    newsgroups: "*"
    access: RPA
}
EOF
    printf 'peer ME {\n  hostname: "localhost, 127.0.0.1, ::1"\n}\n' >"$N/etc/incoming.conf"
    cat >"$N/db/active" <<EOF
control 0000000000 0000000001 n
control.cancel 0000000000 0000000001 n
junk 0000000000 0000000001 n
contoso.public.folders 0000000000 0000000001 y
EOF
    printf 'contoso.public.folders\tExchange public folders as newsgroups (test)\n' >"$N/db/newsgroups"
    : >"$N/db/active.times"
    : >"$N/db/history"
    chown -R news:news "$N"
    ( cd "$N/db" && INNCONF=$N/etc/inn.conf runuser -u news -- /usr/lib/news/bin/makedbz -i -o )
    # own UTS namespace with host name "news": INN puts the host name into
    # Message-IDs it proposes, and the recording machine's name must not leak
    exb_srv_bg "$EXB_TMP/innd.out" unshare --uts env INNCONF="$N/etc/inn.conf" \
        sh -c 'hostname news && exec /usr/lib/news/bin/innd -f'
    exb_wait_listen tcp 119
    # NNTP over implicit TLS (563): a standalone nnrpd, as INN's docs describe
    exb_srv_bg "$EXB_TMP/nnrpd.out" unshare --uts env INNCONF="$N/etc/inn.conf" \
        sh -c 'hostname news && exec /usr/lib/news/bin/nnrpd -D -f -S -p 563'
    exb_wait_listen tcp 563
    sleep 1

    cat >"$EXB_TMP/nntp.py" <<'EOF'
import sys, warnings
warnings.simplefilter('ignore')
import nntplib, ssl
host, port = sys.argv[1], int(sys.argv[2])
if port == 563:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = nntplib.NNTP_SSL(host, 563, ssl_context=ctx, readermode=True, timeout=10)
    print(s.getwelcome())
    print(s.group('contoso.public.folders'))
    resp, info = s.article('<exwatch-1@contoso.test>')
    print(resp, len(info.lines))
    s.quit()
    sys.exit(0)
s = nntplib.NNTP(host, 119, readermode=True, timeout=10)
print(s.getwelcome())
print(sorted(s.getcapabilities()))
print(s.list())
art = (b"From: John Doe <jdoe@contoso.test>\r\n"
       b"Newsgroups: contoso.public.folders\r\n"
       b"Subject: Public folder test post\r\n"
       b"Message-ID: <exwatch-1@contoso.test>\r\n"
       b"\r\n"
       b"Public folders exposed as newsgroups, Exchange 2000 style.\r\n")
print(s.post(art.split(b"\r\n")))
print(s.group('contoso.public.folders'))
resp, info = s.article('<exwatch-1@contoso.test>')
print(resp, len(info.lines))
s.quit()
EOF
    exb_cap_start nntp.pcap "tcp port 119"
    exb_cli "$py" -W ignore "$EXB_TMP/nntp.py" "$EXB_SRV_IP" 119
    exb_cap_stop
    exb_cap_start nntps-563.pcap "tcp port 563"
    exb_cli "$py" -W ignore "$EXB_TMP/nntp.py" "$EXB_SRV_IP" 563
    exb_cap_stop
    exb_log "inn2: $(exb_pkg_version inn2); client: python $("$py" -c 'import platform; print(platform.python_version())') nntplib"
}

record_irc() {
    exb_apt_install ngircd
    exb_stop_host_service ngircd
    local py; py=$(pick_python)
    cat >"$EXB_TMP/ngircd.conf" <<EOF
[Global]
    Name = irc.contoso.test
    Info = exwatch capture IRC server
    Listen = $EXB_SRV_IP
    Ports = 6667
    MotdPhrase = "Contoso chat (Exchange 2000 Chat Service stand-in)"
    PidFile = $EXB_TMP/ngircd.pid
    ServerUID = 0
    ServerGID = 0
[Limits]
    PingTimeout = 120
[Options]
    DNS = no
    Ident = no
    PAM = no
EOF
    exb_srv_bg "$EXB_TMP/ngircd.out" ngircd -n -f "$EXB_TMP/ngircd.conf"
    exb_wait_listen tcp 6667

    cat >"$EXB_TMP/irc.py" <<'EOF'
import socket, sys, time
host = sys.argv[1]
s = socket.create_connection((host, 6667), timeout=5)
buf = b""
def send(line):
    s.sendall(line.encode() + b"\r\n")
def wait_for(token):
    global buf
    end = time.time() + 5
    while token.encode() not in buf and time.time() < end:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    print(buf.decode(errors="replace"))
    buf = b""
send("NICK jdoe")
send("USER jdoe 0 * :John Doe")
wait_for(" 376 ")            # end of MOTD
send("JOIN #exchange")
wait_for(" 366 ")            # end of NAMES
send("PRIVMSG #exchange :hello from exwatch")
send("TOPIC #exchange :Exchange chat test")
wait_for("TOPIC")
send("PING :irc.contoso.test")
wait_for("PONG")
send("PART #exchange :bye")
send("QUIT :done")
wait_for("ERROR")
s.close()
EOF
    exb_cap_start irc.pcap "tcp port 6667"
    exb_cli "$py" "$EXB_TMP/irc.py" "$EXB_SRV_IP"
    exb_cap_stop
    exb_log "ngircd: $(exb_pkg_version ngircd)"
}

record_ntp() {
    exb_apt_install chrony ntpsec-ntpdate
    exb_stop_host_service chrony
    cat >"$EXB_TMP/chrony.conf" <<EOF
bindaddress $EXB_SRV_IP
port 123
cmdport 0
allow 198.51.100.0/24
local stratum 8
driftfile $EXB_TMP/chrony.drift
pidfile $EXB_TMP/chronyd.pid
EOF
    # -x: never touch the clock; -d: foreground
    exb_srv_bg "$EXB_TMP/chronyd.out" chronyd -x -d -u root -f "$EXB_TMP/chrony.conf"
    exb_wait_listen udp 123
    sleep 2
    exb_cap_start ntp.pcap "udp port 123"
    exb_cli ntpdate -q "$EXB_SRV_IP"
    exb_cap_stop
    exb_log "chrony: $(exb_pkg_version chrony); ntpdate: $(exb_pkg_version ntpsec-ntpdate)"
}

record_snmp() {
    exb_apt_install snmpd snmp
    exb_stop_host_service snmpd
    mkdir -p "$EXB_TMP/snmp"
    cat >"$EXB_TMP/snmpd.conf" <<EOF
agentaddress udp:$EXB_SRV_IP:161
rocommunity public 198.51.100.0/24
sysLocation Contoso test lab
sysContact admin@contoso.test
sysName EXCH01
sysDescr Contoso EXCH01 (net-snmp test agent for exwatch captures)
EOF
    exb_srv_bg "$EXB_TMP/snmpd.out" env SNMP_PERSISTENT_DIR="$EXB_TMP/snmp" MIBS= \
        snmpd -f -Lo -C -c "$EXB_TMP/snmpd.conf" -p "$EXB_TMP/snmpd.pid"
    exb_wait_listen udp 161
    exb_cap_start snmp.pcap "udp port 161"
    exb_cli env SNMP_PERSISTENT_DIR="$EXB_TMP/snmp" MIBS= snmpget -v2c -c public -On "$EXB_SRV_IP" \
        1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.1.5.0
    exb_cli env SNMP_PERSISTENT_DIR="$EXB_TMP/snmp" MIBS= snmpwalk -v2c -c public -On "$EXB_SRV_IP" 1.3.6.1.2.1.1
    exb_cap_stop
    exb_log "snmpd: $(exb_pkg_version snmpd); client: $(exb_pkg_version snmp)"
}

record_ssh() {
    exb_apt_install openssh-server openssh-client
    exb_stop_host_service ssh
    local S=$EXB_TMP/ssh
    mkdir -p "$S" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$S/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C exwatch-client -f "$S/id_ed25519"
    cp "$S/id_ed25519.pub" "$S/authorized_keys"
    cat >"$S/sshd_config" <<EOF
Port 22
ListenAddress $EXB_SRV_IP
HostKey $S/host_ed25519
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
EOF
    exb_srv_bg "$EXB_TMP/sshd.out" /usr/sbin/sshd -D -e -f "$S/sshd_config"
    exb_wait_listen tcp 22
    exb_cap_start ssh.pcap "tcp port 22"
    exb_cli ssh -F /dev/null -i "$S/id_ed25519" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \
        root@"$EXB_SRV_IP" 'echo hello from exwatch'
    exb_cap_stop
    exb_log "sshd: $(exb_pkg_version openssh-server); ssh: $(exb_pkg_version openssh-client)"
}

record_rdp() {
    exb_apt_install xrdp freerdp2-x11 xvfb xauth openssl
    exb_stop_host_service xrdp
    local R=$EXB_TMP/xrdp
    mkdir -p "$R"
    exb_self_signed "$R" exch01.contoso.test
    # Debian's xrdp.ini with our port, certificate and log file
    sed -e "s|^port=.*|port=tcp://$EXB_SRV_IP:3389|" \
        -e "s|^certificate=.*|certificate=$R/cert.pem|" \
        -e "s|^key_file=.*|key_file=$R/key.pem|" \
        -e "s|^LogFile=.*|LogFile=$R/xrdp.log|" \
        -e "s|^security_layer=.*|security_layer=negotiate|" \
        /etc/xrdp/xrdp.ini >"$R/xrdp.ini"
    exb_srv_bg "$EXB_TMP/xrdp.out" xrdp --nodaemon --config "$R/xrdp.ini"
    exb_wait_listen tcp 3389
    exb_cap_start rdp.pcap "tcp port 3389"
    # xfreerdp insists on an X display even with +auth-only: give it a virtual one
    exb_cli timeout 30 xvfb-run -a -s "-nolisten tcp" xfreerdp /v:"$EXB_SRV_IP":3389 /u:jdoe /p:exwatch-rdp-pw /d:CONTOSO \
        /cert:ignore +auth-only /log-level:ERROR || true
    exb_cap_stop
    exb_log "xrdp: $(exb_pkg_version xrdp); xfreerdp: $(exb_pkg_version freerdp2-x11)"
}

exb_setup
for w in "${WHAT[@]}"; do
    case $w in
        nntp|irc|ntp|snmp|ssh|rdp) "record_$w" ;;
        *) exb_die "unknown capture: $w" ;;
    esac
done
