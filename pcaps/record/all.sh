#!/usr/bin/env bash
# Re-record the whole corpus from real peers, then rebuild the demo and cut captures from it.
# Run as root on Debian 12: the scripts install their peers (apt-get, pip) and use network
# namespaces joined by veth pairs, so no traffic leaves the machine.
set -euo pipefail
cd "$(dirname "$0")"
bash ./all-a.sh
bash ./all-b.sh
bash ../make-demo.sh
bash ../make-cuts.sh
