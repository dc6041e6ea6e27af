#!/usr/bin/env bash
# Build the IRPlan installers: a one-folder bundle, a .tar.gz and a .deb.
#   bash packaging/bundle.sh            -> dist/irplan/ (bundle; dist/irplan/irplan is the
#                                          command), dist/irplan-<v>-linux-x86_64.tar.gz,
#                                          dist/irplan_<v>_amd64.deb
# Environment: IRPLAN_DIST_DIR (default <repo>/dist), IRPLAN_BUILD_DIR (default
# <repo>/build: PyInstaller's work folder and the .deb staging tree), IRPLAN_NO_DEB=1
# (bundle and .tar.gz only), IRPLAN_DEB_COMPRESSION (zstd, xz or gzip; default zstd).
# How it works and what is left out: packaging/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST="$(mkdir -p "${IRPLAN_DIST_DIR:-$ROOT/dist}" && cd "${IRPLAN_DIST_DIR:-$ROOT/dist}" && pwd)"
WORK="$(mkdir -p "${IRPLAN_BUILD_DIR:-$ROOT/build}" && cd "${IRPLAN_BUILD_DIR:-$ROOT/build}" && pwd)"
start=$SECONDS
say() { echo "[bundle $((SECONDS - start)) s] $*"; }

# 1. the venv with PyInstaller (packaging/setup.sh installs the test extra)
bash packaging/setup.sh
PY=.venv/bin/python
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
NOTICE="IRPlan is research software, not a certified medical device. It must not be used to diagnose or treat patients."

# 2. the bundle: dist/irplan/irplan-bin + _internal/ (packaging/irplan.spec)
say "PyInstaller (irplan $VERSION)"
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
    --workpath "$WORK/pyinstaller" packaging/irplan.spec
APP="$DIST/irplan"

# 3. strip the symbol tables of VTK's libraries (not needed at run time; ~30 % of VTK)
find "$APP/_internal/vtkmodules" -name '*.so*' -type f -exec strip --strip-unneeded {} +

# 4. launcher, notice, readme, icon
SUBCOMMANDS=$("$PY" -c 'from irplan.app.cli import COMMANDS; print(" ".join(COMMANDS))')
sed "s/@SUBCOMMANDS@/$SUBCOMMANDS/" packaging/launcher.sh > "$APP/irplan"
chmod 755 "$APP/irplan"
cp LICENSE "$APP/LICENSE"
cp resources/icons/irplan.svg "$APP/irplan.svg"
cat > "$APP/NOTICE" <<EOF
IRPlan $VERSION
$NOTICE

Copyright the IRPlan authors, Apache License 2.0 (LICENSE). This bundle also contains
Python, Qt (LGPLv3, PySide6), VTK (BSD), SimpleITK/ITK (Apache 2.0), NumPy, SciPy,
scikit-image, pydicom, pynetdicom, highdicom, pylibjpeg and ReportLab under their own
licences (see _internal/*.dist-info).
EOF
cat > "$APP/README" <<EOF
IRPlan $VERSION - planning and evaluation of liver tumour ablation (IRE, MWA, RFA, cryo)

$NOTICE

Start:   ./irplan                 (GUI, the built-in demo case)
         ./irplan PATH            (DICOM folder, DICOMDIR or .irplan.json plan)
         ./irplan --help          (subcommands: $SUBCOMMANDS)
Host libraries (not bundled: they must match the host's X server and graphics driver):
  sudo apt-get install libgl1 libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 \\
       libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 \\
       libxcb-xkb1 libfontconfig1 libdbus-1-3
The launcher (./irplan) checks them and names the package to install when one is missing.
EOF

# 5. check: no host graphics/X libraries inside (a wheel's private copy with a hashed
#    soname, e.g. Pillow's libxcb-9065bb12.so, cannot clash and is allowed), no QML,
#    no translations
bad=$(find "$APP/_internal" \( -name 'libGL*' -o -name 'libEGL*' -o -name 'libdrm*' \
      -o -name 'libX11*' -o -name 'libxcb*' -o -name 'libgbm*' -o -name 'libglapi*' \
      -o -name 'libxkbcommon*' -o -name 'libfontconfig*' -o -name 'libdbus-1*' \
      -o -name 'libwayland*' -o -path '*/Qt/qml' -o -path '*/Qt/translations' \) \
      | grep -Ev -- '-[0-9a-f]{8}\.so' || true)
if [[ -n "$bad" ]]; then
    echo "[bundle] error: host libraries or unused Qt parts in the bundle:" >&2
    echo "$bad" >&2
    exit 1
fi
"$APP/irplan" --help >/dev/null
say "bundle $APP: $(du -sm "$APP" | cut -f1) MB"

# 6. the .tar.gz
TGZ="$DIST/irplan-$VERSION-linux-x86_64.tar.gz"
tar -C "$DIST" -cf - irplan | gzip -6 > "$TGZ.tmp" && mv "$TGZ.tmp" "$TGZ"
say "$(basename "$TGZ"): $(du -m "$TGZ" | cut -f1) MB"
[[ "${IRPLAN_NO_DEB:-}" == "1" ]] && exit 0

# 7. the .deb: /opt/irplan, /usr/bin/irplan -> /opt/irplan/irplan, desktop entry, icon
STAGE="$WORK/deb/irplan_${VERSION}_amd64"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
    "$STAGE/usr/share/icons/hicolor/scalable/apps" "$STAGE/usr/share/icons/hicolor/256x256/apps" \
    "$STAGE/usr/share/doc/irplan"
cp -al "$APP" "$STAGE/opt/irplan" 2>/dev/null || cp -a "$APP" "$STAGE/opt/irplan"
ln -s /opt/irplan/irplan "$STAGE/usr/bin/irplan"
cp packaging/irplan.desktop "$STAGE/usr/share/applications/irplan.desktop"
cp resources/icons/irplan.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/irplan.svg"
cp resources/icons/irplan-256.png "$STAGE/usr/share/icons/hicolor/256x256/apps/irplan.png"
cp "$APP/NOTICE" "$STAGE/usr/share/doc/irplan/copyright"
cp "$APP/README" "$STAGE/usr/share/doc/irplan/README"
INSTALLED_KB=$(du -sk "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@INSTALLED_KB@/$INSTALLED_KB/" \
    packaging/deb/control > "$STAGE/DEBIAN/control"
DEB="$DIST/irplan_${VERSION}_amd64.deb"
# zstd: xz -6 took > 25 min on a busy 2-core machine (> 8 CPU-minutes) for ~890 MB; zstd -10
# takes ~40 CPU-seconds. dpkg >= 1.21.18 (Debian 12, Ubuntu 21.10) reads it; set
# IRPLAN_DEB_COMPRESSION=xz (or gzip) for older hosts.
COMP="${IRPLAN_DEB_COMPRESSION:-zstd}"
LEVEL=6
[[ "$COMP" == "zstd" ]] && LEVEL=10
dpkg-deb --root-owner-group "-Z$COMP" "-z$LEVEL" --build "$STAGE" "$DEB" >/dev/null
rm -rf "$STAGE"
say "$(basename "$DEB"): $(du -m "$DEB" | cut -f1) MB"
