#!/usr/bin/env bash
# Re-records all part-A captures (real peers installed from Debian / PyPI) into pcaps/.
# Run as root on a Debian 12 machine; each script installs what it needs and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")"
for s in sip.sh smtp.sh imap-pop.sh http.sh tls-resume.sh uri-secrets.sh connect-tunnel.sh; do
    echo "=== $s" >&2
    bash "./$s"
done
