#!/usr/bin/env bash
# Benchmark verconf against native directories, in one run (README "Performance").
#
#   tools/bench.sh [--build DIR] [--quick] [--json FILE] [BENCH-ARGS...]
#
# Builds (tools/build.sh into build/, unless --build names a meson build dir),
# makes a mktemp -d workspace on the disk ($TMPDIR or /tmp) and one on tmpfs
# (/dev/shm), mounts a fresh store (sync=full) from the disk workspace, and
# runs every case on the mount, on tmpfs and on the disk, alternating; then
# the scale (10k, 100k, 1M versions) and store-growth figures: about three
# minutes.  --quick is the CI smoke (seconds; figures meaningless); --json
# FILE writes the figures too.  Other arguments go to the bench program (--rounds N, --ms N,
# --only cases|scale|growth, --case NAME).  The trap unmounts and ends only the daemons
# this script (and its bench program) started.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build= json= args=()
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done
if [ -z "$build" ]; then
	"$here/tools/build.sh"
	build=$here/build
fi
build=$(realpath "$build")
for b in fs/verconfd tools/verconf tools/bench; do
	[ -x "$build/$b" ] || { echo "bench.sh: $build/$b missing (ninja -C $build)" >&2; exit 1; }
done

WS=$(mktemp -d "${TMPDIR:-/tmp}/verconf-bench.XXXXXX")
SHM=$(mktemp -d /dev/shm/verconf-bench.XXXXXX)
chmod 755 "$WS" "$SHM"
MNT=$WS/mnt STORE=$WS/store.db LOG=$WS/daemon.log
mkdir -p "$MNT" "$WS/disk" "$WS/work"
DAEMON_PID=

# End a daemon we started: unmount, wait up to 5 s, then SIGKILL that pid only.
stop() { # mountpoint pid
	if mountpoint -q "$1" 2>/dev/null; then
		fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null || true
	fi
	[ -n "$2" ] || return 0
	for _ in $(seq 100); do kill -0 "$2" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$2" 2>/dev/null || true
}
cleanup() {
	# The bench program's own scale mount, if it was interrupted mid-way.
	local spid=
	if [ -f "$WS/work/scale.pid" ]; then
		spid=$(cat "$WS/work/scale.pid")
		case $(tr '\0' ' ' <"/proc/$spid/cmdline" 2>/dev/null) in
		*verconfd*"$WS"*) ;;
		*) spid= ;;
		esac
	fi
	stop "$WS/work/scale-mnt" "$spid"
	stop "$MNT" "$DAEMON_PID"
	[ -n "$DAEMON_PID" ] && wait "$DAEMON_PID" 2>/dev/null || true
	rm -rf "$WS" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build/fs/verconfd" "$STORE" "$MNT" -f -o sync=full >>"$LOG" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do
	mountpoint -q "$MNT" && break
	kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$LOG" >&2; echo "bench.sh: verconfd exited" >&2; exit 1; }
	sleep 0.05
done
mountpoint -q "$MNT" || { echo "bench.sh: mount did not appear within 10 s" >&2; exit 1; }

echo "disk: $(df --output=source "$WS" | tail -1) ($(stat -f -c %T "$WS")), tmpfs: $(stat -f -c %T "$SHM"), store on the disk"
"$build/tools/bench" --vc "$MNT" --tmpfs "$SHM" --disk "$WS/disk" --work "$WS/work" \
	--verconfd "$build/fs/verconfd" --verconf "$build/tools/verconf" \
	${json:+--json "$json"} ${args[@]+"${args[@]}"} | tee "$WS/out.txt"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || { echo "bench.sh: bench failed ($status); daemon log:" >&2; tail -20 "$LOG" >&2; exit 1; }
case " ${args[*]-} " in
*" --only "*) ;;
*) grep -q '^| read4k |' "$WS/out.txt" && grep -q '^| parallel |' "$WS/out.txt" ||
	{ echo "bench.sh: no table printed" >&2; exit 1; } ;;
esac
stop "$MNT" "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
