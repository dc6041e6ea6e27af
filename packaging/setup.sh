#!/usr/bin/env bash
# Set up IRPlan on this machine: system libraries (Debian, as root) and a venv in .venv.
# Idempotent: a second run only checks. Usage: bash packaging/setup.sh [--test]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Libraries Qt's xcb plugin and VTK load, Xvfb for machines without a display,
# poppler-utils to look at PDF reports, orthanc as the real PACS for tests.
DEB_PKGS="xvfb xauth libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 \
libxcb-cursor0 libxcb-render-util0 libxcb-image0 libxcb-icccm4 libxcb-keysyms1 \
libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libdbus-1-3 libfontconfig1 iproute2"
if [[ "${1:-}" == "--test" ]]; then DEB_PKGS="$DEB_PKGS poppler-utils orthanc"; fi

missing=""
for p in $DEB_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [[ -n "$missing" ]]; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "[setup] please install these system packages (Debian/Ubuntu names):$missing" >&2
    echo "[setup]   sudo apt-get install$missing" >&2
  fi
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.irplan-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  echo "[setup] installing IRPlan and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
