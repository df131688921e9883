#!/usr/bin/env bash
# check_exports.sh LIBMAILROOM.a LIBMAILROOM.so: libmailroom's private namespace, by nm.
#
# The static archive must define as global exactly the symbols the shared library
# exports (lib/CMakeLists.txt localizes the rest), and those must all be public API:
# mailroom_ followed by a lower-case letter (mailroom__ would be an internal prefix).
# An application's own buf_append or job_decode then never meets one of ours.
# Prints what differs; exits 0 when all holds, 1 when not, 2 when it cannot run.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: $0 libmailroom.a libmailroom.so" >&2; exit 2; }
command -v nm >/dev/null 2>&1 || { echo "check_exports: nm not found" >&2; exit 2; }
archive=$1 shared=$2
if [ ! -f "$archive" ] || [ ! -f "$shared" ]; then
  echo "check_exports: missing $archive or $shared" >&2
  exit 2
fi

# Global defined symbols, one per line, sorted; the linker's own (_init, _end, ...)
# left out.
a_syms=$(nm -g --defined-only "$archive" | awk 'NF >= 3 {print $3}' | grep -v '^_' | sort -u)
so_syms=$(nm -D --defined-only "$shared" | awk 'NF >= 3 {print $3}' | grep -v '^_' | sort -u)

status=0
not_public=$(printf '%s\n' "$a_syms" | grep -v '^mailroom_[a-z]' || true)
if [ -n "$not_public" ]; then
  echo "FAIL: $archive defines non-public global symbols:"
  printf '%s\n' "$not_public" | sed 's/^/  /'
  status=1
fi
if [ "$a_syms" != "$so_syms" ]; then
  echo "FAIL: $archive and $shared export different symbols (< archive only, > shared only):"
  diff <(printf '%s\n' "$a_syms") <(printf '%s\n' "$so_syms") | grep '^[<>]' | sed 's/^/  /'
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "ok: $(printf '%s\n' "$a_syms" | wc -l) symbols, all mailroom_*, the same in both libraries"
fi
exit "$status"
