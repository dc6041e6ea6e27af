#!/bin/sh
# IRPlan launcher (installed as <bundle>/irplan; /usr/bin/irplan links to it in the .deb).
# IRPlan is research software, not a certified medical device.
#
# The bundle carries Python, Qt, VTK and every Python package, but not the libraries that
# must match the host's X server and graphics driver (OpenGL/EGL, X11/xcb, xkbcommon,
# fontconfig, freetype, D-Bus): they come from the host. Before starting the program this
# script checks that they are installed; when one is missing it prints ONE line naming the
# Debian package(s) to install and exits 2. Subcommands (irplan info, zone, ...) only need
# the libraries of the headless part, the GUI needs all of them.
#
# Environment:
#   IRPLAN_REQUIRE_LIBS="soname=package ..."  more host libraries to require (checked for
#                                             every command; used by the smoke test)
#   IRPLAN_SKIP_LIBCHECK=1                    do not check (start the program directly)
set -eu

here=$(dirname "$(readlink -f "$0")")
bin="$here/irplan-bin"

# Subcommands of `irplan` (app/cli.py COMMANDS); bundle.sh writes the list of this build.
SUBCOMMANDS="@SUBCOMMANDS@"

# soname=Debian package; libraries every command loads (none at the moment: numpy, VTK
# filters, SimpleITK and pydicom are inside the bundle)
CORE_LIBS=""
# the GUI: Qt's xcb platform plugin and VTK's OpenGL render window
GUI_LIBS="libGL.so.1=libgl1 libEGL.so.1=libegl1 libGLX.so.0=libglx0
libX11.so.6=libx11-6 libX11-xcb.so.1=libx11-xcb1 libxcb.so.1=libxcb1
libxcb-cursor.so.0=libxcb-cursor0 libxcb-icccm.so.4=libxcb-icccm4
libxcb-image.so.0=libxcb-image0 libxcb-keysyms.so.1=libxcb-keysyms1
libxcb-randr.so.0=libxcb-randr0 libxcb-render-util.so.0=libxcb-render-util0
libxcb-render.so.0=libxcb-render0 libxcb-shape.so.0=libxcb-shape0
libxcb-shm.so.0=libxcb-shm0 libxcb-sync.so.1=libxcb-sync1 libxcb-util.so.1=libxcb-util1
libxcb-xfixes.so.0=libxcb-xfixes0 libxcb-xkb.so.1=libxcb-xkb1
libxkbcommon.so.0=libxkbcommon0 libxkbcommon-x11.so.0=libxkbcommon-x11-0
libfontconfig.so.1=libfontconfig1 libfreetype.so.6=libfreetype6 libdbus-1.so.3=libdbus-1-3"

is_subcommand() {
    for c in $SUBCOMMANDS; do [ "$c" = "${1:-}" ] && return 0; done
    return 1
}

# the host's shared-library cache (ldconfig -p), else the library folders
known_libs=""
for ldc in /sbin/ldconfig /usr/sbin/ldconfig ldconfig; do
    if known_libs=$("$ldc" -p 2>/dev/null) && [ -n "$known_libs" ]; then break; fi
    known_libs=""
done

have_lib() {
    if [ -n "$known_libs" ]; then
        printf '%s\n' "$known_libs" | grep -q "^[[:space:]]*$1 (.*x86-64" && return 0
    fi
    for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib; do
        [ -e "$d/$1" ] && return 0
    done
    return 1
}

if [ "${IRPLAN_SKIP_LIBCHECK:-}" != "1" ]; then
    required="$CORE_LIBS ${IRPLAN_REQUIRE_LIBS:-}"
    is_subcommand "${1:-}" || required="$required $GUI_LIBS"
    missing_libs=""
    missing_pkgs=""
    for pair in $required; do
        lib=${pair%%=*}
        pkg=${pair#*=}
        if ! have_lib "$lib"; then
            missing_libs="$missing_libs $lib"
            case " $missing_pkgs " in *" $pkg "*) ;; *) missing_pkgs="$missing_pkgs $pkg" ;; esac
        fi
    done
    if [ -n "$missing_pkgs" ]; then
        echo "irplan: error: missing host libraries:$missing_libs; install them with: sudo apt-get install$missing_pkgs" >&2
        exit 2
    fi
fi

# Qt wants a UTF-8 locale; a bare environment (no LANG) gets C.UTF-8 instead of a warning
if [ -z "${LC_ALL:-}${LC_CTYPE:-}${LANG:-}" ]; then
    export LANG=C.UTF-8
fi
exec "$bin" "$@"
