# shellcheck shell=bash
# lib-b.sh - common helpers for the "part B" real-peer capture scripts.
#
# Sourced by ldap.sh, kerberos.sh, dns.sh, dcerpc.sh, misc.sh.  Every recording
# runs between two private network namespaces joined by a veth pair:
#
#   exb-cli (client)  exb-c0 198.51.100.20/24 2001:db8:b::20/64
#        <-- veth -->
#   exb-srv (server)  exb-s0 198.51.100.10/24 2001:db8:b::10/64
#
# tcpdump runs inside exb-srv on exb-s0, so nothing is recorded on the host's
# loopback and no packet ever leaves this machine.  (Part A uses the exa-
# prefix; nothing here touches exa-* objects.)

EXB_SRV_NS=exb-srv
EXB_CLI_NS=exb-cli
EXB_SRV_IF=exb-s0
EXB_CLI_IF=exb-c0
EXB_SRV_IP=198.51.100.10
EXB_CLI_IP=198.51.100.20
EXB_SRV_IP6=2001:db8:b::10
EXB_CLI_IP6=2001:db8:b::20

EXB_RECORD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXB_PCAP_DIR=$(cd "$EXB_RECORD_DIR/.." && pwd)
# Scratch space (configs, databases, temporary pcaps); removed by exb_cleanup.
EXB_TMP=${EXB_TMP:-}
EXB_TCPDUMP_PID=
EXB_PIDS=()
EXB_APT_UPDATED=${EXB_APT_UPDATED:-0}

exb_log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
exb_die() { exb_log "ERROR: $*"; exit 1; }

# exb_apt_install PKG... - install missing Debian packages, never start services.
exb_apt_install() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    exb_log "installing: ${missing[*]}"
    if [ "$EXB_APT_UPDATED" != 1 ]; then
        apt-get -o DPkg::Lock::Timeout=900 update -qq
        EXB_APT_UPDATED=1
    fi
    # policy-rc.d (exit 101) keeps maintainer scripts from starting daemons on
    # the host; only create it if it is not already there, and only remove ours.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y \
        --no-install-recommends "${missing[@]}" || { [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; return 1; }
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

# exb_pkg_version PKG - "PKG VERSION" from dpkg.
exb_pkg_version() { dpkg-query -W -f='${Package} ${Version}\n' "$1"; }

# exb_stop_host_service NAME... - stop daemons a postinst may have started on
# the host (no systemd here; fall back to the init script), quietly.
exb_stop_host_service() {
    local s
    for s in "$@"; do
        if [ -x "/etc/init.d/$s" ]; then
            /etc/init.d/"$s" stop >/dev/null 2>&1 || true
        fi
    done
}

# Kill every process still running inside our namespaces (by pid), then delete them.
exb_netns_down() {
    local ns pid
    for ns in "$EXB_SRV_NS" "$EXB_CLI_NS"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -TERM "$pid" 2>/dev/null || true
            done
        fi
    done
    local i left
    for ((i = 0; i < 30; i++)); do
        left=0
        for ns in "$EXB_SRV_NS" "$EXB_CLI_NS"; do
            ip netns list 2>/dev/null | grep -qw "$ns" && [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && left=1
        done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for ns in "$EXB_SRV_NS" "$EXB_CLI_NS"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    ip link del "$EXB_SRV_IF" 2>/dev/null || true
    ip link del "$EXB_CLI_IF" 2>/dev/null || true
}

exb_cleanup() {
    local rc=$?
    local pid
    if [ -n "$EXB_TCPDUMP_PID" ]; then
        kill -INT "$EXB_TCPDUMP_PID" 2>/dev/null || true
        wait "$EXB_TCPDUMP_PID" 2>/dev/null || true
        EXB_TCPDUMP_PID=
    fi
    for pid in "${EXB_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    EXB_PIDS=()
    exb_netns_down
    if [ -n "$EXB_TMP" ] && [ -d "$EXB_TMP" ] && [ -z "${EXB_KEEP_TMP:-}" ]; then
        rm -rf "$EXB_TMP"
    fi
    return $rc
}

# exb_setup - clean leftovers, make scratch dir, build the namespace pair.
exb_setup() {
    command -v tcpdump >/dev/null || exb_apt_install tcpdump
    command -v ip >/dev/null || exb_apt_install iproute2
    exb_netns_down
    # scratch dirs of earlier runs that were killed before their trap ran
    # (part-B scripts run one at a time, see all-b.sh)
    rm -rf /tmp/exb-rec.??????
    EXB_TMP=$(mktemp -d /tmp/exb-rec.XXXXXX)
    chmod 755 "$EXB_TMP"
    trap exb_cleanup EXIT
    trap 'exit 130' INT TERM

    ip netns add "$EXB_SRV_NS"
    ip netns add "$EXB_CLI_NS"
    ip link add "$EXB_SRV_IF" type veth peer name "$EXB_CLI_IF"
    ip link set "$EXB_SRV_IF" netns "$EXB_SRV_NS"
    ip link set "$EXB_CLI_IF" netns "$EXB_CLI_NS"
    local ns ifc ip4 ip6
    for ns in "$EXB_SRV_NS" "$EXB_CLI_NS"; do
        if [ "$ns" = "$EXB_SRV_NS" ]; then ifc=$EXB_SRV_IF ip4=$EXB_SRV_IP ip6=$EXB_SRV_IP6
        else ifc=$EXB_CLI_IF ip4=$EXB_CLI_IP ip6=$EXB_CLI_IP6; fi
        ip -n "$ns" link set lo up
        # no router solicitations / MLD noise beyond what the kernel insists on
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 || true
        ip -n "$ns" addr add "$ip4/24" dev "$ifc"
        ip -n "$ns" addr add "$ip6/64" dev "$ifc" nodad
        ip -n "$ns" link set "$ifc" up
    done
    # resolve ARP/ND now so captures start with the protocol itself
    ip netns exec "$EXB_CLI_NS" ping -c1 -W2 "$EXB_SRV_IP" >/dev/null 2>&1 || true
    ip netns exec "$EXB_CLI_NS" ping -6 -c1 -W2 "$EXB_SRV_IP6" >/dev/null 2>&1 || true
}

exb_srv() { ip netns exec "$EXB_SRV_NS" "$@"; }
exb_cli() { ip netns exec "$EXB_CLI_NS" "$@"; }

# exb_srv_bg LOGFILE CMD... - start a daemon in the server namespace in the background.
exb_srv_bg() {
    local log=$1; shift
    ip netns exec "$EXB_SRV_NS" "$@" >"$log" 2>&1 &
    EXB_PIDS+=($!)
    disown $!   # killed by exb_cleanup; no "Killed" job notices
}

# exb_wait_listen PROTO PORT [TIMEOUT] - wait until something in exb-srv listens.
exb_wait_listen() {
    local proto=$1 port=$2 t=${3:-30} i opt
    [ "$proto" = udp ] && opt=-lnu || opt=-lnt
    for ((i = 0; i < t * 10; i++)); do
        if ip netns exec "$EXB_SRV_NS" ss -H "$opt" "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    exb_die "nothing listening on $proto/$port in $EXB_SRV_NS after ${t}s"
}

# exb_cap_start NAME.pcap BPF-FILTER - start tcpdump on the server veth.
# The file is written in scratch space and moved to pcaps/ by exb_cap_stop.
exb_cap_start() {
    local name=$1 filter=$2
    EXB_CAP_NAME=$name
    EXB_CAP_TMP=$EXB_TMP/$name
    : >"$EXB_TMP/tcpdump.err"
    # shellcheck disable=SC2086
    ip netns exec "$EXB_SRV_NS" tcpdump -i "$EXB_SRV_IF" -n -U -s 0 -Z root \
        -w "$EXB_CAP_TMP" $filter 2>"$EXB_TMP/tcpdump.err" &
    EXB_TCPDUMP_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q 'listening on' "$EXB_TMP/tcpdump.err" && { sleep 0.2; return 0; }
        kill -0 "$EXB_TCPDUMP_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$EXB_TMP/tcpdump.err" >&2
    exb_die "tcpdump did not start"
}

exb_cap_stop() {
    sleep 1
    kill -INT "$EXB_TCPDUMP_PID"
    wait "$EXB_TCPDUMP_PID" || true
    EXB_TCPDUMP_PID=
    local n
    n=$(grep -Eo '[0-9]+ packets? captured' "$EXB_TMP/tcpdump.err" || true)
    install -m 644 "$EXB_CAP_TMP" "$EXB_PCAP_DIR/$EXB_CAP_NAME"
    exb_log "wrote $EXB_PCAP_DIR/$EXB_CAP_NAME ($n, $(stat -c %s "$EXB_PCAP_DIR/$EXB_CAP_NAME") bytes)"
}

# exb_self_signed DIR CN - self-signed RSA cert+key (DIR/cert.pem, DIR/key.pem).
exb_self_signed() {
    local dir=$1 cn=$2
    command -v openssl >/dev/null || exb_apt_install openssl
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$cn" \
        -addext "subjectAltName=DNS:$cn,IP:$EXB_SRV_IP,IP:$EXB_SRV_IP6" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
}

# exb_venv - python venv with pinned impacket (for dcerpc.sh); prints its python.
EXB_VENV=${EXB_VENV:-/opt/exwatch-rec-venv}
EXB_IMPACKET_VERSION=${EXB_IMPACKET_VERSION:-0.13.1}
exb_venv() {
    if [ ! -x "$EXB_VENV/bin/python" ]; then
        python3 -m venv "$EXB_VENV" >&2 || { exb_apt_install python3-venv; /usr/bin/python3 -m venv "$EXB_VENV" >&2; }
    fi
    if ! "$EXB_VENV/bin/python" -c 'import impacket' 2>/dev/null; then
        "$EXB_VENV/bin/pip" install -q "impacket==$EXB_IMPACKET_VERSION" >&2
    fi
    echo "$EXB_VENV/bin/python"
}
