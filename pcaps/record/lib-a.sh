# shellcheck shell=bash
# Common helpers for the part-A recording scripts (sip.sh, smtp.sh, imap-pop.sh, http.sh).
# Source this file; it does not run anything by itself.
#
# Topology made by netns_up:
#   exa-srv (veth exa-s0: 192.0.2.10/24, 2001:db8::10/64)  <-->  exa-cli (veth exa-c0: 192.0.2.20/24, 2001:db8::20/64)
# Only these two private namespaces carry traffic; nothing leaves the machine.

# The names may be set beforehand (two recordings on one machine must not share namespaces).
EXA_SRV_NS=${EXA_SRV_NS:-exa-srv}
EXA_CLI_NS=${EXA_CLI_NS:-exa-cli}
EXA_SRV_IF=${EXA_SRV_IF:-exa-s0}
EXA_CLI_IF=${EXA_CLI_IF:-exa-c0}
SRV4=192.0.2.10
CLI4=192.0.2.20
SRV6=2001:db8::10
CLI6=2001:db8::20

EXA_RECORD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PCAP_DIR="$(cd "$EXA_RECORD_DIR/.." && pwd)"

EXA_PIDS=()          # background processes started by the scripts (killed by exa_cleanup)
EXA_TCPDUMP_PID=""

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then echo "must run as root" >&2; exit 1; fi
}

# apt_need PKG...: install packages that are not installed yet.
apt_need() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        if [ -z "${EXA_APT_UPDATED:-}" ]; then apt-get update -qq; export EXA_APT_UPDATED=1; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
}

pkgver() { dpkg-query -W -f='${Package} ${Version}\n' "$@"; }

srv() { ip netns exec "$EXA_SRV_NS" "$@"; }
cli() { ip netns exec "$EXA_CLI_NS" "$@"; }

netns_down() {
    ip netns del "$EXA_SRV_NS" 2>/dev/null || true
    ip netns del "$EXA_CLI_NS" 2>/dev/null || true
    ip link del "$EXA_SRV_IF" 2>/dev/null || true
    rm -rf "/etc/netns/$EXA_CLI_NS"
}

# netns_up [MTU]: fresh pair of namespaces joined by a veth pair.
netns_up() {
    local mtu="${1:-1500}"
    netns_down
    # names the clients resolve (ip netns exec bind-mounts /etc/netns/NS/hosts over /etc/hosts)
    mkdir -p "/etc/netns/$EXA_CLI_NS"
    printf '127.0.0.1 localhost\n%s mail.contoso.test autodiscover.contoso.test contoso.test\n%s mail6.contoso.test\n' \
        "$SRV4" "$SRV6" >"/etc/netns/$EXA_CLI_NS/hosts"
    # any DNS query a client makes goes to the server namespace (nothing answers there) and never
    # to the host's resolver; the namespaces have no default route either
    printf 'nameserver %s\n' "$SRV4" >"/etc/netns/$EXA_CLI_NS/resolv.conf"
    ip netns add "$EXA_SRV_NS"
    ip netns add "$EXA_CLI_NS"
    ip link add "$EXA_SRV_IF" netns "$EXA_SRV_NS" type veth peer name "$EXA_CLI_IF" netns "$EXA_CLI_NS"
    # fixed MAC addresses so that captures are stable across recordings
    srv ip link set "$EXA_SRV_IF" address 02:00:00:00:00:10 mtu "$mtu"
    cli ip link set "$EXA_CLI_IF" address 02:00:00:00:00:20 mtu "$mtu"
    # no offloads: tcpdump then sees segments as they are on the wire (<= MTU), UDP checksums filled in
    srv ethtool -K "$EXA_SRV_IF" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    cli ethtool -K "$EXA_CLI_IF" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    srv ip addr add "$SRV4/24" dev "$EXA_SRV_IF"
    cli ip addr add "$CLI4/24" dev "$EXA_CLI_IF"
    if [ -n "${EXA_IPV6:-}" ]; then
        # no link-local address (no DAD / router solicitation chatter); global test addresses only
        srv sysctl -qw net.ipv6.conf."$EXA_SRV_IF".addr_gen_mode=1
        cli sysctl -qw net.ipv6.conf."$EXA_CLI_IF".addr_gen_mode=1
        srv ip -6 addr add "$SRV6/64" dev "$EXA_SRV_IF" nodad
        cli ip -6 addr add "$CLI6/64" dev "$EXA_CLI_IF" nodad
    else
        # IPv4-only recording: keep IPv6 link-local/MLD packets out of the capture
        srv sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf."$EXA_SRV_IF".disable_ipv6=1
        cli sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf."$EXA_CLI_IF".disable_ipv6=1
    fi
    srv ip link set lo up
    cli ip link set lo up
    srv ip link set "$EXA_SRV_IF" up
    cli ip link set "$EXA_CLI_IF" up
    # no router solicitations / IPv6 chatter beyond what the test needs
    srv sysctl -qw net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf."$EXA_SRV_IF".router_solicitations=0 || true
    cli sysctl -qw net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf."$EXA_CLI_IF".router_solicitations=0 || true
    # pre-populate neighbour tables so captures do not start with ARP/NDP noise
    srv ip neigh replace "$CLI4" lladdr 02:00:00:00:00:20 dev "$EXA_SRV_IF" nud permanent
    cli ip neigh replace "$SRV4" lladdr 02:00:00:00:00:10 dev "$EXA_CLI_IF" nud permanent
    if [ -n "${EXA_IPV6:-}" ]; then
        srv ip -6 neigh replace "$CLI6" lladdr 02:00:00:00:00:20 dev "$EXA_SRV_IF" nud permanent
        cli ip -6 neigh replace "$SRV6" lladdr 02:00:00:00:00:10 dev "$EXA_CLI_IF" nud permanent
        sleep 2   # let the MLD reports for the new addresses pass before a capture starts
    fi
}

# wait_port NS PROTO PORT: wait until something listens on PORT (tcp/udp) inside namespace NS.
wait_port() {
    local ns="$1" proto="$2" port="$3" i flag
    if [ "$proto" = tcp ]; then flag=-ltn; else flag=-lun; fi
    for i in $(seq 1 100); do
        if ip netns exec "$ns" ss -H "$flag" "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    log "nothing listens on $proto/$port in $ns"; return 1
}

# cap_start FILE [FILTER...]: start tcpdump inside the server namespace on its veth.
cap_start() {
    local file="$1"; shift
    rm -f "$file"
    ip netns exec "$EXA_SRV_NS" tcpdump -i "$EXA_SRV_IF" -w "$file" -U -s 0 -Z root -n "$@" \
        >"$EXA_WORK/tcpdump.log" 2>&1 &
    EXA_TCPDUMP_PID=$!
    local i
    for i in $(seq 1 100); do
        grep -q "listening on" "$EXA_WORK/tcpdump.log" 2>/dev/null && { sleep 0.2; return 0; }
        sleep 0.1
    done
    log "tcpdump did not start"; cat "$EXA_WORK/tcpdump.log" >&2; return 1
}

cap_stop() {
    sleep 1
    if [ -n "$EXA_TCPDUMP_PID" ]; then
        kill -INT "$EXA_TCPDUMP_PID" 2>/dev/null || true
        wait "$EXA_TCPDUMP_PID" 2>/dev/null || true
        EXA_TCPDUMP_PID=""
    fi
}

# bg CMD...: start a background process and remember its pid for cleanup.
bg() { "$@" & EXA_PIDS+=($!); }

kill_bg() {
    local p
    for p in "${EXA_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        kill "$p" 2>/dev/null || true
    done
    for p in "${EXA_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        wait "$p" 2>/dev/null || true
    done
    EXA_PIDS=()
}

# kill every process still running inside our namespaces (only ours: they are our namespaces)
kill_ns_procs() {
    local ns p
    for ns in "$EXA_SRV_NS" "$EXA_CLI_NS"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    done
    sleep 0.3
    for ns in "$EXA_SRV_NS" "$EXA_CLI_NS"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    done
}

exa_cleanup() {
    set +e
    if [ -n "$EXA_TCPDUMP_PID" ]; then kill -INT "$EXA_TCPDUMP_PID" 2>/dev/null; wait "$EXA_TCPDUMP_PID" 2>/dev/null; fi
    kill_bg
    kill_ns_procs
    netns_down
    [ -n "${EXA_WORK:-}" ] && [ -z "${EXA_KEEP_WORK:-}" ] && rm -rf "$EXA_WORK"
}

# exa_init NAME: work dir + trap; call at the top of each script.
exa_init() {
    need_root
    EXA_WORK="$(mktemp -d "/tmp/exa-$1.XXXXXX")"
    chmod 755 "$EXA_WORK"
    trap exa_cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$PCAP_DIR"
}

# record NAME: start a capture into $PCAP_DIR/NAME; finish with cap_stop + cap_done.
cap_done() {
    local f="$1"
    chmod 644 "$f"
    log "wrote $f ($(stat -c %s "$f") bytes, $(tshark -r "$f" 2>/dev/null | wc -l) packets)"
}

# make_cert DIR CN SAN...: self-signed CA + server certificate (RSA 2048, 10 years).
make_cert() {
    local dir="$1" cn="$2"; shift 2
    local san="" n
    for n in "$cn" "$@"; do san="${san:+$san,}DNS:$n"; done
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=exwatch test CA/CN=exwatch test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=Contoso test/CN=$cn" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null
    cat "$dir/server.crt" "$dir/ca.crt" >"$dir/chain.crt"
    chmod 644 "$dir"/*.crt "$dir"/*.key
}

# venv_need PKG==VER...: a Python venv (Debian's python3) under /tmp with pinned PyPI packages.
EXA_VENV=/tmp/exa-venv
venv_need() {
    apt_need python3-venv
    [ -x "$EXA_VENV/bin/python" ] || /usr/bin/python3 -m venv "$EXA_VENV"
    "$EXA_VENV/bin/pip" install -q --disable-pip-version-check "$@" >&2
}
pipver() { "$EXA_VENV/bin/pip" show "$1" 2>/dev/null | awk -v n="$1" '/^Version:/{print n, $2}'; }

# nginx_head DIR: the head of an nginx configuration whose pid, logs and temporary files live
# under DIR/ngx (make DIR/ngx/logs and DIR/ngx/tmp first); the caller writes the rest of the
# `http {` block, its own settings and servers, and closes it.
nginx_head() {
    cat <<CONF
worker_processes 1;
pid $1/ngx/nginx.pid;
error_log $1/ngx/logs/error.log;
user www-data;
events { worker_connections 64; }
http {
    access_log $1/ngx/logs/access.log;
    client_body_temp_path $1/ngx/tmp/body;
    proxy_temp_path $1/ngx/tmp/proxy;
    fastcgi_temp_path $1/ngx/tmp/fastcgi;
    uwsgi_temp_path $1/ngx/tmp/uwsgi;
    scgi_temp_path $1/ngx/tmp/scgi;
    server_tokens off;
CONF
}
