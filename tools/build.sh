#!/usr/bin/env bash
# Bootstrap (install what is missing), then configure and build into build/
# with warnings as errors.  Extra arguments go to `meson setup` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
if [ ! -f build/build.ninja ]; then
	meson setup build -Dwerror=true "$@" >/dev/null
fi
ninja -C build >/dev/null
