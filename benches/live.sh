#!/usr/bin/env bash
# Live capture benchmark (not a test): tcpreplay of the large benchmark capture onto a veth
# between two namespaces made here, at increasing packet rates, with `exwatch live` and, in
# separate runs, `tcpdump -w /dev/null` on the receiving end. A rate passes when the tool read
# every packet tcpreplay sent (exwatch with several sockets: every packet the kernel delivered,
# fragments reassembled) and reported no drop of any kind (kernel, interface, exwatch's own). Prints a Markdown table; the highest passing rate of each tool is the figure.
#
# Both tools get the same kernel buffer, small enough (BUF_MIB, default 8 MiB: some 35,000
# packets of this capture) that a step measures a sustained rate, not the buffer's size.
#
# Usage (root): benches/live.sh [PACKETS] [RATES...]   (make bench-live)
#   PACKETS: packets replayed per step (default 1000000, from bench-out/bench.pcap)
#   RATES:   packets/s steps (default 50000 100000 200000 300000 topspeed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "benches/live.sh: needs root (network namespaces)" >&2; exit 1; }
PACKETS=${1:-1000000}
BUF_MIB=${BUF_MIB:-8}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(50000 100000 200000 300000 topspeed)
BIN=target/release/exwatch
BENCH=bench-out/bench.pcap
mkdir -p bench-out
if [ ! -f "$BENCH" ]; then
    echo "building $BENCH ..." >&2
    python3 -c 'import sys; sys.path.insert(0, "benches"); import throughput as t; t.build_bench("bench-out/bench.pcap", "bench-out/bench.json")'
fi
W=$(mktemp -d)
SRV=exlb$$s; CLI=exlb$$c
cleanup() {
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$SRV"; ip netns add "$CLI"
ip link add "${SRV}0" netns "$SRV" type veth peer name "${CLI}0" netns "$CLI"
for ns in "$SRV" "$CLI"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    # Large enough for every frame of the capture (some public captures have jumbo frames).
    ip -n "$ns" link set "${ns}0" mtu 9000 up
done
# The replayed slice, cut once so that every step sends exactly the same packets.
tcpdump -r "$BENCH" -c "$PACKETS" -w "$W/slice.pcap" 2>/dev/null

# replay RATE: tcpreplay from the client side; prints "sent rate" (packets sent, packets/s)
replay() {
    local speed=(--pps="$1")
    [ "$1" = topspeed ] && speed=(--topspeed)
    ip netns exec "$CLI" tcpreplay -i "${CLI}0" "${speed[@]}" "$W/slice.pcap" >"$W/replay.out" 2>&1 || true
    local sent rate
    sent=$(sed -n 's/.*Successful packets: *\([0-9]*\).*/\1/p' "$W/replay.out")
    rate=$(sed -n 's/.*Rated: .*, \([0-9.]*\) pps.*/\1/p' "$W/replay.out" | head -1)
    echo "${sent:-0} ${rate:-0}"
}

run_exwatch() {
    ip netns exec "$SRV" "$BIN" live -i "${SRV}0" --buffer-size "$BUF_MIB" --stats-interval 0 -q \
        --summary-json "$W/sum.json" 2>"$W/ex.err" &
    local pid=$!
    until grep -qs "capturing on" "$W/ex.err"; do sleep 0.05; done
    read -r sent rate < <(replay "$1")
    sleep 1
    kill -TERM "$pid"; wait "$pid" || true
    python3 - "$W/sum.json" "$sent" "$rate" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1])); c = s["capture"]
sent = int(sys.argv[2]); drops = c["kernel_drops"] + c["interface_drops"] + sum(c["own_drops"].values())
# With more than one socket (a fanout group) the kernel reassembles IPv4 fragments before the
# sockets see them, so a fragmented datagram arrives as one packet: `read` is then compared with
# what the kernel delivered (`received`, drops included), not with what tcpreplay sent.
expected = c["received"] if len(c.get("sockets", [])) > 1 else sent
ok = drops == 0 and s["packets_read"] == expected
print(f'{sys.argv[3]} {sent} {s["packets_read"]} {c["kernel_drops"]}+{c["interface_drops"]}+{sum(c["own_drops"].values())} {"yes" if ok else "no"}')
EOF
}

run_tcpdump() {
    ip netns exec "$SRV" tcpdump -i "${SRV}0" -B $((BUF_MIB * 1024)) -w /dev/null -n 2>"$W/td.err" &
    local pid=$!
    until grep -qs "listening on" "$W/td.err"; do sleep 0.05; done
    read -r sent rate < <(replay "$1")
    sleep 1
    kill -INT "$pid"; wait "$pid" || true
    local got drop ifdrop
    got=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$W/td.err")
    drop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$W/td.err")
    ifdrop=$(sed -n 's/^\([0-9]*\) packets dropped by interface.*/\1/p' "$W/td.err")
    local ok=no
    [ "${drop:-0}" = 0 ] && [ "${ifdrop:-0}" = 0 ] && [ "$got" = "$sent" ] && ok=yes
    echo "$rate $sent $got ${drop:-0}+${ifdrop:-0}+0 $ok"
}

echo "| tool | asked pps | achieved pps | sent | read | drops kernel+interface+own | no drop |"
echo "|---|---:|---:|---:|---:|---:|---|"
for rate in "${RATES[@]}"; do
    for tool in exwatch tcpdump; do
        read -r achieved sent got drops ok < <("run_$tool" "$rate")
        echo "| $tool | $rate | $achieved | $sent | $got | $drops | $ok |"
    done
done
echo
echo "$PACKETS packets per step, kernel buffer $BUF_MIB MiB for both tools, exwatch with $(nproc) workers"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "exwatch $(git rev-parse --short HEAD), $(tcpdump --version 2>&1 | head -2 | tr '\n' ' ')"
