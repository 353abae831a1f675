# Shared helpers for the tests that mount verconfd.  Source it from a test:
#   . "$(dirname "$0")/lib.sh"; mount_fs [-o ...]
# Every test gets its own mktemp -d directory; the trap unmounts, ends the
# daemon this test started (by its pid only) and removes the directory.
set -euo pipefail

VERCONFD=${VERCONFD:?VERCONFD must name the verconfd binary}
# The tests' Python helpers (writers.py) are importable by their scripts.
export PYTHONPATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${PYTHONPATH:+:$PYTHONPATH}
T=$(mktemp -d "${TMPDIR:-/tmp}/verconf-test.XXXXXX")
chmod 755 "$T"
MNT=$T/mnt
STORE=$T/store.db
LOG=$T/daemon.log
mkdir -p "$MNT"
DAEMON_PID=

fail() {
	echo "FAIL: $*" >&2
	[ -f "$LOG" ] && { echo "--- daemon log:" >&2; tail -30 "$LOG" >&2; }
	exit 1
}

# Abort the FUSE connection of mount point $1 (the remedy for a mount whose
# daemon was killed while one of its threads waited in the kernel: see
# README "Known limits").  Harmless on a dead connection.
abort_connection() {
	local minor
	# mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE ...
	minor=$(awk -v m="$1" '$5 == m { for (i = 7; i < NF; i++) if ($i == "-") {
		if ($(i + 1) ~ /^fuse/) { split($3, d, ":"); print d[2] } break } }' /proc/self/mountinfo)
	[ -n "$minor" ] || return 0
	mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
	[ -w "/sys/fs/fuse/connections/$minor/abort" ] && echo 1 > "/sys/fs/fuse/connections/$minor/abort"
	return 0
}

# After kill -9 of $DAEMON_PID: wait (bounded) until it is fully gone.  A
# daemon thread that was waiting in the kernel on a directory lock held by a
# request of this very mount never wakes up, and keeps the connection open:
# abort it then, as an administrator would.
reap_killed_daemon() {
	local pid=$DAEMON_PID
	for _ in $(seq 40); do
		process_gone "$pid" && break
		sleep 0.05
	done
	process_gone "$pid" || abort_connection "$MNT"
	wait "$pid" 2>/dev/null || true
	DAEMON_PID=
}

# Every thread of pid has exited (it is at most a zombie left to reap).
process_gone() {
	[ -r "/proc/$1/status" ] || return 0
	awk '/^State:/ { z = ($2 == "Z") } /^Threads:/ { t = $2 } END { exit !(z && t <= 1) }' \
		"/proc/$1/status"
}

stop_daemon() {
	if grep -q " $MNT fuse" /proc/mounts 2>/dev/null; then
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null ||
			{ abort_connection "$MNT"; timeout 10 fusermount3 -u "$MNT" 2>/dev/null; } ||
			fusermount3 -uz "$MNT" 2>/dev/null || true
	fi
	if [ -n "$DAEMON_PID" ]; then
		for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=
	fi
}

cleanup() {
	stop_daemon
	rm -rf "$T"
}
trap cleanup EXIT

# Mount STORE on MNT in the foreground (logs to $LOG); extra args go to verconfd.
mount_fs() {
	"$VERCONFD" "$STORE" "$MNT" -f "$@" >>"$LOG" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 200); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || { wait "$DAEMON_PID" || true; DAEMON_PID=; fail "verconfd exited before mounting"; }
		sleep 0.05
	done
	fail "mount did not appear within 10 s"
}

umount_fs() {
	fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
	for _ in $(seq 200); do
		kill -0 "$DAEMON_PID" 2>/dev/null || { wait "$DAEMON_PID" || fail "verconfd exited non-zero"; DAEMON_PID=; return 0; }
		sleep 0.05
	done
	fail "verconfd did not exit within 10 s of unmount"
}

expect_eq() { # actual expected what
	[ "$1" == "$2" ] || fail "$3: expected '$2', got '$1'"
}

expect_fail() { # errno-name command...: run command, expect failure mentioning the errno text
	local want=$1; shift
	local out
	if out=$("$@" 2>&1); then fail "expected failure ($want) from: $*"; fi
	case "$out" in *"$want"*) ;; *) fail "expected '$want' from: $* — got: $out" ;; esac
}

# Number of versions of PATH in history (rejected ones too), read through .versions.
# Wait, at most 10 s, until path $1 no longer exists; false if it still
# does.  A new file whose first commit failed goes away at its last
# release, which the kernel sends after close(2) has returned.
wait_gone() {
	for _ in $(seq 200); do
		[ -e "$1" ] || [ -L "$1" ] || return 0
		sleep 0.05
	done
	return 1
}

# Wait until the daemon's log ($LOG) has not grown for 0.2 s, at most
# 10 s: requests the kernel sends on its own after a call returns (RELEASE,
# FORGET, readahead) are logged before their effects are counted.
log_settles() {
	local before now
	before=$(stat -c %s "$LOG")
	for _ in $(seq 50); do
		sleep 0.2
		now=$(stat -c %s "$LOG")
		[ "$now" = "$before" ] && return 0
		before=$now
	done
}

nversions() { ls "$MNT/.versions/$1" 2>/dev/null | wc -l; }
# Wait, at most 10 s, until path $1 has $2 versions or more: a version made
# at the last release (create or O_TRUNC with no write) comes after close(2).
wait_versions() {
	for _ in $(seq 200); do
		[ "$(nversions "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# Python one-liners for syscalls the shell lacks.
py() { python3 -c "$@"; }

ok() { echo "ok - $*"; }
