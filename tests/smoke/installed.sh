#!/usr/bin/env bash
# Build a wheel, install it into a fresh venv outside the checkout, and run installed.py against
# that install: what a user gets from `pip install maillist-*.whl`, with no source tree in sight.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/maillist-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-python3}"
"$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/dist" "$repo"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/maillist-*.whl
cp "$repo/tests/smoke/installed.py" "$repo/tests/smoke/nxdns.py" "$repo/tests/pgserver.py" "$work/"
cd "$work"
"$work/venv/bin/python" "$work/installed.py" "$work"
