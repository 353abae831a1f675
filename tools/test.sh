#!/usr/bin/env bash
# The whole test suite, twice: a normal build (build/) and one under
# AddressSanitizer + UBSan (build-sanitize/), both with warnings as errors.
# --fast runs the normal build only.  Ends with "N passed, N failed"
# computed from meson's test logs; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=("build")
[ "${1:-}" = "--fast" ] || runs+=("build-sanitize")

run_suite() { # builddir
	local dir=$1 extra=()
	[ "$dir" = build-sanitize ] && extra=(-Db_sanitize=address,undefined -Db_lundef=false)
	echo "== $dir"
	tools/build.sh "$dir" "${extra[@]}" || return 1
	# Sanitizer reports make the process fail; keep them readable.
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C "$dir" --print-errorlogs --num-processes 2 >"$dir/meson-test.out" 2>&1
	local rc=$?
	grep -E '^ *[0-9]+/[0-9]+ ' "$dir/meson-test.out" || cat "$dir/meson-test.out"
	[ $rc -eq 0 ] || show_failures "$dir/meson-logs/testlog.json"
	return 0
}

show_failures() { # testlog.json: the end of each failed test's output
	python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        continue
    print(f"---- {r['name']}: {r['result']}")
    out = (r.get("stdout") or "") + (r.get("stderr") or "")
    print("\n".join(out.splitlines()[-40:]))
PY
}

logs=()
for dir in "${runs[@]}"; do
	run_suite "$dir" || { echo "build of $dir failed"; echo "0 passed, 1 failed"; exit 1; }
	logs+=("$dir/meson-logs/testlog.json")
done

python3 - "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for log in sys.argv[1:]:
    for line in open(log):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
