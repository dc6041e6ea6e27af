#!/usr/bin/env bash
# Set up and start IRPlan on the built-in demo case (or on the arguments given).
# Without a display, renders the demo case under Xvfb to a screenshot and prints its path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/packaging/setup.sh"
IRPLAN="$ROOT/.venv/bin/irplan"
if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]]; then
  exec "$IRPLAN" "$@"
fi
OUT="${IRPLAN_SCREENSHOT:-$ROOT/demo-screenshot.png}"
echo "[run] no display on this machine: rendering the demo case under Xvfb instead"
xvfb-run -a -s "-screen 0 1600x1000x24" "$IRPLAN" "$@" --screenshot "$OUT"
echo "[run] the app started, rendered every view and exited; screenshot: $OUT"
