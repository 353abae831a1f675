#!/usr/bin/env bash
# The deployment story from the issue, replayed on a verconf mount:
#   configs are rotated with hard links (ln config.vN.json config.json); a
#   broken v2 is refused, v2 is rebuilt from v1 and fixed, deployed, rolled
#   back with ln and with a version id, and config.v1.json never changes.
# Builds first (tools/build.sh), uses build/fs/verconfd and build/tools/verconf,
# works in a mktemp -d directory and always unmounts.  Exit status 0 only if
# the story came out right.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

echo "==> build: tools/build.sh (bootstrap, meson, ninja into build/)"
tools/build.sh
VERCONFD=$ROOT/build/fs/verconfd
VERCONF=$ROOT/build/tools/verconf
[ -x "$VERCONFD" ] && [ -x "$VERCONF" ] || { echo "demo: build/ lacks verconfd or verconf" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/verconf-demo.XXXXXX")
chmod 755 "$T"
STORE=$T/store.db
MNT=$T/mnt
LOG=$T/daemon.log
mkdir "$MNT"
DAEMON_PID=

cleanup() {
	local rc=$?
	cd /
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
	fi
	if [ -n "$DAEMON_PID" ]; then
		for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
		kill "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -s "$LOG" ]; then
		echo "--- daemon log:" >&2
		tail -20 "$LOG" >&2
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BAD=0
die() { echo "demo: FAILED: $*" >&2; exit 1; }
check() { # ACTUAL EXPECTED WHAT: note a wrong outcome, keep telling the story
	if [ "$1" == "$2" ]; then
		echo "   ok: $3"
	else
		echo "   WRONG: $3: expected '$2', got '$1'"
		BAD=1
	fi
}
# run 'COMMAND LINE': show it, run it in the mount, show its output and exit code.
RC=0
run() {
	echo "   \$ $1"
	local out
	RC=0
	out=$(cd "$MNT" && eval "$1" 2>&1) || RC=$?
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/     /'
	echo "     [exit $RC]"
}
show() { # FILE...: the live content of each name, with its inode number
	local f
	for f in "$@"; do
		printf '     %-15s inode %-3s %s\n' "$f" "$(stat -c %i "$MNT/$f" 2>/dev/null || echo -)" \
			"$(cat "$MNT/$f" 2>/dev/null || echo '(no live version)')"
	done
}
live() { cat "$MNT/$1" 2>/dev/null || echo '(no live version)'; }

V1='{"name": "app", "version": 1}'
V2_BROKEN='{"name": "app" "version": 2}'
V2='{"name": "app", "version": 2}'
mkdir "$T/release"
printf '%s\n' "$V1" >"$T/release/v1.json"
printf '%s\n' "$V2_BROKEN" >"$T/release/v2.json"

echo "==> mount: verconfd $STORE $MNT -f"
"$VERCONFD" "$STORE" "$MNT" -f >"$LOG" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do
	mountpoint -q "$MNT" && break
	kill -0 "$DAEMON_PID" 2>/dev/null || { wait "$DAEMON_PID" || true; DAEMON_PID=; die "verconfd exited before mounting"; }
	sleep 0.05
done
mountpoint -q "$MNT" || die "the mount did not appear within 10 s"
grep "$MNT" /proc/mounts | sed 's/^/     /'

echo "==> release v1 as config.v1.json"
run "cp $T/release/v1.json config.v1.json"
check "$RC" 0 "cp exit status"
echo "==> deploy v1 the habitual way: ln config.v1.json config.json (a copy-on-write clone here, not a shared inode)"
run "ln config.v1.json config.json"
show config.v1.json config.json
check "$(live config.json)" "$V1" "config.json is v1"
[ "$(stat -c %i "$MNT/config.v1.json")" != "$(stat -c %i "$MNT/config.json")" ] &&
	echo "   ok: the two names have different inode numbers" || { echo "   WRONG: one inode"; BAD=1; }

echo "==> release v2, broken (missing comma): cp refuses it at close() with EINVAL"
run "cat $T/release/v2.json; cp $T/release/v2.json config.v2.json"
check "$RC" 1 "cp exit status"
run "ls .versions/config.v2.json; cat .versions/config.v2.json/*; grep last-rejection .control"
show config.v2.json
check "$(live config.v2.json)" "(no live version)" "the rejected v2 never became live, its bytes are in .versions"

echo "==> deploy v2 anyway: ln -f config.v2.json config.json fails with ENOENT (v2 has no live version), config.json stays v1"
run "ln -f config.v2.json config.json"
check "$RC" 1 "ln exit status"
show config.json
check "$(live config.json)" "$V1" "config.json is still v1"

echo "==> rebuild v2 from v1 the habitual way (ln -f config.v1.json config.v2.json), then edit it in place to fix it"
run "ln -f config.v1.json config.v2.json"
run "python3 -c 'import sys; f=open(\"config.v2.json\", \"r+\"); s=f.read().replace(\"\\\"version\\\": 1\", \"\\\"version\\\": 2\"); f.seek(0); f.truncate(); f.write(s); f.close()'"
check "$RC" 0 "in-place edit exit status"
show config.v1.json config.v2.json config.json
check "$(live config.v2.json)" "$V2" "config.v2.json is the fixed v2"
check "$(live config.v1.json)" "$V1" "the edit of v2 did not reach config.v1.json (on plain ext4 it would have)"

echo "==> deploy the fixed v2: ln -f config.v2.json config.json"
run "ln -f config.v2.json config.json"
show config.json
check "$(live config.json)" "$V2" "config.json is v2"

echo "==> roll back with ln: ln -f config.v1.json config.json"
run "ln -f config.v1.json config.json"
show config.json
check "$(live config.json)" "$V1" "config.json is v1 again"

echo "==> deploy v2 again, then roll back by writing a version id to .control"
run "ln -f config.v2.json config.json"
check "$(live config.json)" "$V2" "config.json is v2"
ID=
for id in $(ls "$MNT/.versions/config.json" | sort -n); do
	[ "$(cat "$MNT/.versions/config.json/$id")" == "$V1" ] && { ID=$id; break; }
done
[ -n "$ID" ] || die "no version of config.json holds v1"
echo "   config.json's first version holding v1 is $ID"
run "echo $ID > .control"
check "$RC" 0 "write to .control"
show config.json
check "$(live config.json)" "$V1" "config.json is v1 (version $ID)"

echo "==> the end: config.v1.json still holds exactly v1, three names, three inodes"
show config.v1.json config.v2.json config.json
check "$(live config.v1.json)" "$V1" "config.v1.json is v1"
cmp -s "$T/release/v1.json" "$MNT/config.v1.json" && echo "   ok: byte for byte the released v1" ||
	{ echo "   WRONG: config.v1.json differs from the release"; BAD=1; }
check "$(stat -c %i "$MNT"/config{.v1,.v2,}.json | sort -u | wc -l)" 3 "distinct inode numbers"
check "$(ls "$MNT/.versions/config.v1.json" | wc -l)" 1 "config.v1.json has a single version: it never changed"

# History: through the query tool if it is ready, else through .versions.
if "$VERCONF" --help 2>/dev/null | grep -q '^  log ' &&
	"$VERCONF" -C "$MNT" log config.json >/dev/null 2>&1; then
	echo "==> history of every config, with who did it: verconf -C MNT log"
	run "$VERCONF -C $MNT --color=never log config.v1.json config.v2.json config.json"
	[ "$RC" -eq 0 ] || run "$VERCONF -C $MNT --color=never log"
	echo "==> every move of a live file, with who did it: verconf -C MNT journal (ln -f links to a temporary name, then renames it over)"
	run "$VERCONF -C $MNT --color=never journal"
	echo "==> the live tree and rejections: verconf -C MNT status"
	run "$VERCONF -C $MNT --color=never status"
else
	echo "==> history (verconf log is not ready: listing .versions and the daemon log)"
	for f in config.v1.json config.v2.json config.json; do
		for id in $(ls "$MNT/.versions/$f" | sort -n); do
			printf '     %-15s %-3s %s\n' "$f" "$id" "$(cat "$MNT/.versions/$f/$id")"
		done
	done
	sed 's/^/     /' "$LOG"
fi

echo "==> unmount"
cd /
fusermount3 -u "$MNT" || die "fusermount3 -u failed"
rc=0
for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
check "$rc" 0 "verconfd exit status"
grep -q "$MNT" /proc/mounts && { echo "   WRONG: still mounted"; BAD=1; } || echo "   ok: no mount left"

if [ "$BAD" -ne 0 ]; then
	echo "==> the story did NOT come out right (see WRONG above)"
	exit 1
fi
echo "==> the story came out right: config.v1.json survived, every step is in the history"
