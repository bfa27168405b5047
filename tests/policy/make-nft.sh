#!/usr/bin/env bash
# Writes forgets-um-media.nft.json: loads forgets-um-media.nft into a fresh network namespace
# with Debian's nft and exports it as `nft -j list ruleset` does on a real host (root).
set -euo pipefail
cd "$(dirname "$0")"
command -v nft >/dev/null || apt-get install -y -qq nftables
ns=exwatch-nft-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" nft -f forgets-um-media.nft
ip netns exec "$ns" nft -j list ruleset > forgets-um-media.nft.json
nft --version >&2
