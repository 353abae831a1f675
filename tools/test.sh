#!/usr/bin/env bash
# The whole test suite: bootstrap, build (warnings as errors), meson test.
# Prints a closing line "N passed, N failed" computed from meson's test log.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/build.sh "$@" || { echo "0 passed, 1 failed"; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 >build/meson-test.out 2>&1
rc=$?
grep -E '^ *[0-9]+/[0-9]+ ' build/meson-test.out || cat build/meson-test.out
[ $rc -eq 0 ] || grep -A40 -E '^=+ [0-9]+/[0-9]+ =+' build/meson-test.out | head -200
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
