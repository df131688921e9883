#!/usr/bin/env bash
# Packaging test: install a mailroom build into a temporary prefix, check what was
# installed, then build tests/packaging/consumer_app.c against that installation the
# two ways README.md promises (pkg-config, and CMake's find_package(mailroom) ->
# mailroom::mailroom), and run the programs. The private namespace too: nm of the
# installed libraries (check_exports.sh), and tests/packaging/namespace_app.c, which
# defines buf_append, job_decode, keys_init, ... as an application might, built against
# the installed static and shared libraries both ways. No Redis needed.
#
#   MAILROOM_SOURCE_DIR=<repo> MAILROOM_BUILD_DIR=<build> bash tests/packaging/test_install.sh
#
# Prints one "ok"/"FAIL" line per check and "N passed, M failed" at the end; exits 1
# when anything failed, 2 when it cannot run at all. MAILROOM_KEEP_TMP=1 keeps the
# temporary directory for a look afterwards.
set -uo pipefail

die() { echo "test_install: $*" >&2; exit 2; }

[ -n "${MAILROOM_SOURCE_DIR:-}" ] || die "set MAILROOM_SOURCE_DIR to the repository root"
[ -n "${MAILROOM_BUILD_DIR:-}" ] || die "set MAILROOM_BUILD_DIR to a configured and built build tree"
SRC=$(cd "$MAILROOM_SOURCE_DIR" && pwd) || die "no directory $MAILROOM_SOURCE_DIR"
BUILD=$(cd "$MAILROOM_BUILD_DIR" && pwd) || die "no directory $MAILROOM_BUILD_DIR"
[ -f "$BUILD/cmake_install.cmake" ] || die "$BUILD is not a configured CMake build tree"
[ -f "$SRC/tests/packaging/consumer_app.c" ] || die "$SRC is not the mailroom repository"
for tool in cmake pkg-config "${CC:-cc}" nm ldd; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
CC=${CC:-cc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailroom-pkgtest.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ "${MAILROOM_KEEP_TMP:-0}" = 1 ]; then echo "test_install: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
PREFIX=$TMP/prefix
LOG=$TMP/log

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; if [ -s "$LOG" ]; then sed 's/^/       | /' "$LOG" | tail -n 40; fi; }
# step DESCRIPTION COMMAND...: runs the command with its output in $LOG.
step() {
  local what=$1; shift
  if "$@" >"$LOG" 2>&1; then ok "$what"; return 0; fi
  fail "$what"; return 1
}
finish() {
  echo
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# The install layout this build tree was configured with (GNUInstallDirs).
cache_var() {
  sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt" | head -n 1
}
LIBDIR=$(cache_var CMAKE_INSTALL_LIBDIR); LIBDIR=${LIBDIR:-lib}
INCDIR=$(cache_var CMAKE_INSTALL_INCLUDEDIR); INCDIR=${INCDIR:-include}
BINDIR=$(cache_var CMAKE_INSTALL_BINDIR); BINDIR=${BINDIR:-bin}

# ---------------------------------------------------------------------------
# 1. cmake --install into the temporary prefix
if ! step "cmake --install $BUILD --prefix <tmp>" cmake --install "$BUILD" --prefix "$PREFIX"; then
  echo "test_install: nothing to check without an installation" >&2
  finish
fi

# 2. what was installed
check_file() {  # check_file DESCRIPTION TEST-FLAG PATH
  : >"$LOG"
  local found=0
  case $2 in
    -f) [ -f "$3" ] && found=1 ;;
    -e) [ -e "$3" ] && found=1 ;;
    -x) [ -x "$3" ] && found=1 ;;
  esac
  if [ "$found" = 1 ]; then ok "$1"; else echo "missing: $3" >"$LOG"; fail "$1"; fi
}
check_file "header $INCDIR/mailroom.h"          -f "$PREFIX/$INCDIR/mailroom.h"
check_file "header $INCDIR/mailroom_admin.h"    -f "$PREFIX/$INCDIR/mailroom_admin.h"
check_file "header $INCDIR/mailroom_version.h"  -f "$PREFIX/$INCDIR/mailroom_version.h"
check_file "shared library $LIBDIR/libmailroom.so (dev link)" -e "$PREFIX/$LIBDIR/libmailroom.so"
check_file "static library $LIBDIR/libmailroom.a" -f "$PREFIX/$LIBDIR/libmailroom.a"
check_file "program $BINDIR/mailroom"            -x "$PREFIX/$BINDIR/mailroom"
check_file "program $BINDIR/mailroom-consumer"   -x "$PREFIX/$BINDIR/mailroom-consumer"
check_file "program $BINDIR/mailroom-web"        -x "$PREFIX/$BINDIR/mailroom-web"
check_file "pkg-config file $LIBDIR/pkgconfig/mailroom.pc" -f "$PREFIX/$LIBDIR/pkgconfig/mailroom.pc"
check_file "CMake package $LIBDIR/cmake/mailroom/mailroomConfig.cmake" \
  -f "$PREFIX/$LIBDIR/cmake/mailroom/mailroomConfig.cmake"
check_file "CMake package $LIBDIR/cmake/mailroom/mailroomConfigVersion.cmake" \
  -f "$PREFIX/$LIBDIR/cmake/mailroom/mailroomConfigVersion.cmake"
check_file "CMake package $LIBDIR/cmake/mailroom/mailroomTargets.cmake" \
  -f "$PREFIX/$LIBDIR/cmake/mailroom/mailroomTargets.cmake"

# The version every consumer of the package should agree on.
VERSION=$(sed -n 's/^#define MAILROOM_VERSION_STRING "\(.*\)"$/\1/p' "$PREFIX/$INCDIR/mailroom_version.h" 2>/dev/null)
if [ -n "$VERSION" ]; then ok "mailroom_version.h says version $VERSION"; else : >"$LOG"; fail "mailroom_version.h defines MAILROOM_VERSION_STRING"; fi

# The shared library's soname, and that the soname link exists.
soname=$(objdump -p "$PREFIX/$LIBDIR/libmailroom.so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
: >"$LOG"
if [ -n "$soname" ] && [ -e "$PREFIX/$LIBDIR/$soname" ]; then ok "libmailroom.so has SONAME $soname, installed"
else echo "SONAME '${soname}' not found under $PREFIX/$LIBDIR" >"$LOG"; fail "libmailroom.so SONAME link"; fi

# Only the public API leaves the shared library: anything else (buf_*, sig_*, ...)
# could collide with, or be interposed by, an application's own symbols.
nm -D --defined-only "$PREFIX/$LIBDIR/libmailroom.so" 2>/dev/null | awk 'NF >= 3 {print $3}' \
  | grep -v '^mailroom_' | grep -v '^_' >"$TMP/extra-symbols" || true
: >"$LOG"
if [ ! -s "$TMP/extra-symbols" ]; then ok "libmailroom.so exports only mailroom_* symbols"
else
  { echo "exported besides mailroom_*: $(wc -l <"$TMP/extra-symbols") symbols:"; tr '\n' ' ' <"$TMP/extra-symbols"; echo; } >"$LOG"
  fail "libmailroom.so exports only mailroom_* symbols"
fi

# The static archive exports exactly what the shared library does (its other symbols
# are local), so an application's own buf_append or job_decode never collides with one
# of ours: nm of the installed libraries.
step "libmailroom.a exports exactly libmailroom.so's symbols, all mailroom_* (nm)" \
  bash "$SRC/tests/packaging/check_exports.sh" "$PREFIX/$LIBDIR/libmailroom.a" "$PREFIX/$LIBDIR/libmailroom.so"

# The installed programs start (they link libmailroom statically: no LD_LIBRARY_PATH).
step "installed mailroom --version" "$PREFIX/$BINDIR/mailroom" --version
step "installed mailroom-consumer --version" "$PREFIX/$BINDIR/mailroom-consumer" --version
step "installed mailroom-web --version" "$PREFIX/$BINDIR/mailroom-web" --version

# ---------------------------------------------------------------------------
# 3. pkg-config
export PKG_CONFIG_PATH="$PREFIX/$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
APP_SRC=$SRC/tests/packaging/consumer_app.c
NS_SRC=$SRC/tests/packaging/namespace_app.c
same_dir() { [ -d "$1" ] && [ -d "$2" ] && [ "$(cd "$1" && pwd -P)" = "$(cd "$2" && pwd -P)" ]; }

step "pkg-config finds mailroom" pkg-config --exists --print-errors mailroom
pc_version=$(pkg-config --modversion mailroom 2>/dev/null)
: >"$LOG"
if [ -n "$VERSION" ] && [ "$pc_version" = "$VERSION" ]; then ok "pkg-config --modversion is $VERSION"
else echo "pkg-config says '$pc_version', mailroom_version.h says '$VERSION'" >"$LOG"; fail "pkg-config version"; fi

# The .pc file must describe where it was installed, not where the build was
# configured to go: -I and -L have to point into the temporary prefix.
pc_incdir=$(pkg-config --variable=includedir mailroom 2>/dev/null)
pc_libdir=$(pkg-config --variable=libdir mailroom 2>/dev/null)
: >"$LOG"
if same_dir "$pc_incdir" "$PREFIX/$INCDIR" && same_dir "$pc_libdir" "$PREFIX/$LIBDIR"; then
  ok "mailroom.pc points into the install prefix"
else
  { echo "mailroom.pc: includedir=$pc_incdir libdir=$pc_libdir"
    echo "installed at: $PREFIX/$INCDIR and $PREFIX/$LIBDIR"
    echo "(the .pc file carries the configure-time prefix; 'cmake --install --prefix' elsewhere breaks it)"; } >"$LOG"
  fail "mailroom.pc points into the install prefix"
fi

read -r -a pc_flags <<<"$(pkg-config --cflags --libs mailroom 2>/dev/null)"
if step "cc consumer_app.c \$(pkg-config --cflags --libs mailroom)" \
    "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/app_pc" "$APP_SRC" "${pc_flags[@]}"; then
  step "run the pkg-config build (shared libmailroom)" \
    env LD_LIBRARY_PATH="$PREFIX/$LIBDIR" "$TMP/app_pc"
  if step "cc namespace_app.c \$(pkg-config --cflags --libs mailroom) (the app defines buf_append, ...)" \
      "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/ns_pc" "$NS_SRC" "${pc_flags[@]}"; then
    step "run namespace_app (shared libmailroom)" env LD_LIBRARY_PATH="$PREFIX/$LIBDIR" "$TMP/ns_pc"
  fi
  resolved=$(LD_LIBRARY_PATH="$PREFIX/$LIBDIR" ldd "$TMP/app_pc" | awk '/libmailroom\.so/ {print $3}')
  : >"$LOG"
  if [ -n "$resolved" ] && same_dir "$(dirname "$resolved")" "$PREFIX/$LIBDIR"; then
    ok "the pkg-config build loads libmailroom from the install prefix"
  else echo "libmailroom resolves to '$resolved'" >"$LOG"; fail "the pkg-config build loads the installed libmailroom"; fi
fi

# Static linking: pkg-config --static adds the private dependencies (hiredis, json-c,
# libcrypto, pthread); -lmailroom is replaced by the archive so the .so is not taken.
pc_static=$(pkg-config --static --cflags --libs mailroom 2>/dev/null)
static_flags=()
for f in $pc_static; do
  if [ "$f" = -lmailroom ]; then static_flags+=("$PREFIX/$LIBDIR/libmailroom.a"); else static_flags+=("$f"); fi
done
if step "cc consumer_app.c libmailroom.a \$(pkg-config --static --libs mailroom)" \
    "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/app_pc_static" "$APP_SRC" "${static_flags[@]}"; then
  step "run the pkg-config static build" "$TMP/app_pc_static"
fi
if step "cc namespace_app.c libmailroom.a \$(pkg-config --static --libs mailroom) (the app defines buf_append, ...)" \
    "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/ns_pc_static" "$NS_SRC" "${static_flags[@]}"; then
  step "run namespace_app (static libmailroom)" "$TMP/ns_pc_static"
fi

# ---------------------------------------------------------------------------
# 4. CMake: find_package(mailroom) -> mailroom::mailroom / mailroom::mailroom_static
if step "cmake configure tests/packaging (find_package(mailroom), CMAKE_PREFIX_PATH=<tmp>)" \
    cmake -S "$SRC/tests/packaging" -B "$TMP/cmake-build" \
      -DCMAKE_PREFIX_PATH="$PREFIX" -DMAILROOM_EXPECT_PREFIX="$PREFIX" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$(command -v "$CC")"; then
  if step "cmake --build (app, namespace_app: mailroom::mailroom; app_static, namespace_app_static: mailroom::mailroom_static)" \
      cmake --build "$TMP/cmake-build"; then
    step "run the CMake build (shared libmailroom)" env LD_LIBRARY_PATH="$PREFIX/$LIBDIR" "$TMP/cmake-build/app"
    step "run the CMake static build" "$TMP/cmake-build/app_static"
    step "run the CMake namespace_app (shared)" env LD_LIBRARY_PATH="$PREFIX/$LIBDIR" "$TMP/cmake-build/namespace_app"
    step "run the CMake namespace_app_static" "$TMP/cmake-build/namespace_app_static"
  fi
fi

finish
