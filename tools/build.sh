#!/usr/bin/env bash
# Bootstrap (install what is missing), then configure and build with
# warnings as errors.  Usage: tools/build.sh [BUILDDIR [meson setup args...]]
# (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
dir=${1:-build}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" -Dwerror=true "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
