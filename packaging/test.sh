#!/usr/bin/env bash
# Set up and run the whole IRPlan test suite (lint, unit, GUI under Xvfb, PACS with Orthanc).
# As root the tests run in a private network namespace with only loopback, so the Orthanc
# server they start is reachable from nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/packaging/setup.sh" --test
cd "$ROOT"
export QT_QPA_PLATFORM=xcb
PYTEST=(.venv/bin/python -m pytest "$@")
if [[ "$(id -u)" == "0" ]] && unshare --net true 2>/dev/null; then
  exec unshare --net bash -c 'ip link set lo up && exec "$@"' _ "${PYTEST[@]}"
fi
exec "${PYTEST[@]}"
