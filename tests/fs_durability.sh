#!/usr/bin/env bash
# sync=full: every change is on disk when its call returns, and the disk is
# waited for outside the daemon's lock (the store commits with its log
# unsynced, then one fdatasync of the -wal file makes it durable before the
# reply).  Seen from outside with strace on the daemon: each durable commit,
# switch and directory change costs a fdatasync of the store's -wal file;
# reads, stats and listings cost none; sync=normal costs none.  A disk that
# loses the log's writes (EIO from fdatasync, injected by tests/fail_sync.c)
# fails the change's call, and every later change, until a remount.
. "$(dirname "$0")/lib.sh"
FAIL_SYNC_SO=${FAIL_SYNC_SO:?FAIL_SYNC_SO must name the fail_sync shim}
command -v strace >/dev/null || fail "strace missing (tools/bootstrap.sh installs it)"

TRACE=$T/strace.out STRACE_PID=
stop_trace() {
	[ -n "$STRACE_PID" ] || return 0
	kill "$STRACE_PID" 2>/dev/null || true
	wait "$STRACE_PID" 2>/dev/null || true
	STRACE_PID=
}
trap 'stop_trace; cleanup' EXIT

# Trace the daemon's fdatasync calls, with the file each one names (-y).
start_trace() {
	: >"$TRACE"
	strace -f -y -e trace=fdatasync -p "$DAEMON_PID" -o "$TRACE" 2>"$T/strace.err" &
	STRACE_PID=$!
	# "Process N attached" once every thread of the daemon is traced.
	for _ in $(seq 100); do
		grep -q "attached" "$T/strace.err" 2>/dev/null && break
		kill -0 "$STRACE_PID" 2>/dev/null || fail "strace could not attach: $(cat "$T/strace.err")"
		sleep 0.05
	done
	sleep 0.3
}
wal_syncs() { grep -c 'store.db-wal>' "$TRACE" || true; }

commit_durably() { # path count
	python3 - "$MNT/$1" "$2" <<'EOF'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b'{"round": %d}\n' % i)
    os.fsync(fd)
    os.close(fd)
EOF
}

# rewrite PATH TEXT [fsync]: O_TRUNC rewrite, then (fsync and) close; prints
# "ok" or the errno name of the call that failed (a shell would ignore
# close's error).
rewrite() {
	python3 - "$@" <<'EOF'
import errno, os, sys
path, text, sync = sys.argv[1], sys.argv[2].encode(), sys.argv[3:] == ['fsync']
try:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}

mount_fs
printf '{"warm": 1}\n' >"$MNT/app.json"
mkdir "$MNT/d"
start_trace
[ "$(wal_syncs)" -eq 0 ] || fail "fdatasync before anything changed: $(cat "$TRACE")"

commit_durably app.json 5
sleep 0.2
n=$(wal_syncs)
[ "$n" -ge 5 ] || fail "5 durable commits made $n fdatasyncs of the -wal file: $(cat "$TRACE")"
ok "each durable commit syncs the store's log ($n fdatasyncs for 5)"

before=$(wal_syncs)
for _ in $(seq 20); do
	cat "$MNT/app.json" >/dev/null
	stat "$MNT/app.json" >/dev/null
	ls "$MNT" "$MNT/.versions/app.json" >/dev/null
done
cat "$MNT/.control" >/dev/null
sleep 0.2
expect_eq "$(( $(wal_syncs) - before ))" 0 "fdatasyncs for 20 reads, stats and listings"
ok "reading changes nothing and waits for no disk"

for step in "mkdir $MNT/d/e" "mv $MNT/d/e $MNT/d/f" "rmdir $MNT/d/f" "chmod 600 $MNT/app.json" \
	    "ln -s app.json $MNT/link" "rm $MNT/link"; do
	before=$(wal_syncs)
	$step || fail "$step failed"
	sleep 0.1
	[ $(( $(wal_syncs) - before )) -ge 1 ] || fail "$step: no fdatasync of the -wal file"
done
ok "directory changes, chmod and symlinks are durable at return"

# A new file's first version waits for its last release, which the kernel
# sends after close(2) returns; fsync(2) of its directory commits it (the
# usual way to make a created name durable).  A dup keeps it open here, so
# only the fsync can have committed it.
python3 - "$MNT/d" "$VERCONF" "$STORE" <<'EOF' || fail "fsync of a directory did not commit its new file"
import json, os, subprocess, sys
d, verconf, store = sys.argv[1:]
fd = os.open(os.path.join(d, 'lock'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
keep = os.dup(fd)
os.close(fd)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
log = lambda: json.loads(subprocess.run([verconf, '--store', store, 'log', 'd/lock', '--json'],
                                        capture_output=True, check=True).stdout)['versions']
assert len(log()) == 1, log()
os.close(keep)
assert len(log()) == 1, log()
EOF
# ... but not one still being written (another process's fsync of the
# directory must not commit half a file, nor sign it).
python3 - "$MNT/d/half" "$T/half.ready" "$T/half.go" <<'EOF' &
import os, sys, time
path, ready, go = sys.argv[1:]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b'part1\n')
open(ready, 'w').close()
deadline = time.time() + 10
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.01)
os.write(fd, b'part2\n')
os.close(fd)
EOF
HALF=$!
for _ in $(seq 500); do [ -e "$T/half.ready" ] && break; sleep 0.01; done
py "import os; fd = os.open('$MNT/d', os.O_RDONLY); os.fsync(fd)"
expect_eq "$("$VERCONF" --store "$STORE" log d/half | grep -c ' d/half')" 0 "versions of a half-written file after fsync(dir)"
touch "$T/half.go"
wait "$HALF" || fail "the writer of d/half failed"
"$VERCONF" --store "$STORE" log d/half --json | python3 -c "import json, sys
v = json.load(sys.stdin)['versions']
assert len(v) == 1 and v[0]['size'] == 12 and v[0]['actor']['pid'] == $HALF, v" ||
	fail "d/half: one version of 12 bytes by its writer"
ok "fsync of a directory commits (and syncs) its new, closed files, not ones being written"

first=$(ls "$MNT/.versions/app.json" | head -1)
before=$(wal_syncs)
printf 'activate %s\n' "$first" >"$MNT/.control" || fail "activate failed"
sleep 0.1
[ $(( $(wal_syncs) - before )) -ge 1 ] || fail ".control switch: no fdatasync of the -wal file"
ok ".control switches are durable at return"
stop_trace
umount_fs

# sync=normal: SQLite's NORMAL alone, no sync per change.
mount_fs -o sync=normal
commit_durably app.json 1
start_trace
commit_durably app.json 5
sleep 0.2
expect_eq "$(wal_syncs)" 0 "fdatasyncs of the -wal file for 5 commits with sync=normal"
ok "sync=normal leaves syncing to SQLite's checkpoints"
stop_trace
umount_fs

# ---- EIO from the log's fdatasync.
FLAG=$T/fail-sync
# The sanitizer build's runtime wants to come first; the shim must too.
LD_PRELOAD=$FAIL_SYNC_SO VERCONF_FAIL_SYNC=$FLAG \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 mount_fs
commit_durably app.json 1
printf '{broken\n' >"$MNT/bad.txt"
touch "$FLAG"
expect_eq "$(rewrite "$MNT/app.json" '{"lost": true}' fsync)" EIO \
	"fsync of a commit whose log sync failed"
rm "$FLAG"
expect_eq "$(rewrite "$MNT/app.json" '{"after": 1}')" EIO "a commit once changes are refused"
expect_fail "Input/output error" mkdir "$MNT/after"
# Not even the rejected bytes of a bad rename are kept now.
expect_fail "Input/output error" mv "$MNT/bad.txt" "$MNT/bad.json"
[ ! -e "$MNT/.versions/bad.json" ] || fail "a rejected version was stored after changes were refused"
grep -q '"lost": true' "$MNT/app.json" || fail "after the failed sync the content changed or cannot be read"
grep -q "sync of the store failed: Input/output error" "$MNT/.control" ||
	fail ".control does not say why changes are refused: $(cat "$MNT/.control")"
grep -q "sync of the store failed: Input/output error; changes refused" "$LOG" || fail "no log line"
umount_fs
mount_fs
commit_durably app.json 1
grep -q '"round": 0' "$MNT/app.json" || fail "commit after remount"
"$VERCONF" --store "$STORE" fsck >/dev/null || fail "store not intact after the failed sync"
ok "EIO from the log's sync fails the change and refuses the next ones until a remount"
umount_fs

# A rename, mkdir or chmod the store made but could not sync fails, and the
# kernel then forgets what it cached of those names and attributes: it shows
# what the store has.
for op in rename mkdir chmod; do
	LD_PRELOAD=$FAIL_SYNC_SO VERCONF_FAIL_SYNC=$FLAG \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 mount_fs
	echo one >"$MNT/$op-a"
	cat "$MNT/$op-a" >/dev/null; stat "$MNT/$op-b" 2>/dev/null || true
	touch "$FLAG"
	# The call itself, not mv(1) or mkdir(1): what those print after a
	# failure depends on what they look at next.
	r=$(python3 -c '
import errno, os, sys
op, a, b = sys.argv[1:]
try:
    if op == "rename":
        os.rename(a, b)
    elif op == "mkdir":
        os.mkdir(b)
    else:
        os.stat(a); os.chmod(a, 0o600)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$op" "$MNT/$op-a" "$MNT/$op-b")
	expect_eq "$r" EIO "$op whose sync fails"
	rm "$FLAG"
	sleep 0.2
	if [ "$op" = chmod ]; then
		expect_eq "$(stat -c %a "$MNT/$op-a")" 600 "chmod: the mode the store has"
		umount_fs
		continue
	fi
	[ -e "$MNT/$op-b" ] || fail "$op: the store has $op-b, the kernel says it does not exist"
	if [ "$op" = rename ] && [ -e "$MNT/$op-a" ]; then
		fail "rename: the store moved $op-a, the kernel still shows it"
	fi
	expect_eq "$(cd "$MNT" && ls -d "$op"-* | tr '\n' ' ')" \
		"$([ "$op" = rename ] && echo "$op-b " || echo "$op-a $op-b ")" "$op: listing"
	umount_fs
done
ok "a change that could not be synced leaves no stale names in the kernel's cache"

# ---- the store's -wal file removed under the daemon: what it held is gone,
# so the next change fails with EIO and changes are refused from then on.
mount_fs
commit_durably app.json 1
rm "$STORE-wal"
expect_eq "$(rewrite "$MNT/app.json" '{"gone": 1}' fsync)" EIO "a commit after the log was removed"
expect_fail "Input/output error" mkdir "$MNT/later"
grep -q "sync of the store failed" "$MNT/.control" || fail ".control does not say why"
ok "a removed -wal file fails the next change with EIO, not silently"
umount_fs
