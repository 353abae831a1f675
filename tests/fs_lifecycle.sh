#!/usr/bin/env bash
# Rules 9 and 11: import of existing files, one daemon per store, clean
# shutdown on SIGTERM/SIGINT/fusermount3 -u, restart serves the same state,
# fstab-style arguments, option errors.
. "$(dirname "$0")/lib.sh"

# Files already in MOUNTPOINT are imported into a new store, modes and owners kept.
mkdir -p "$MNT/sub"
printf '{"old": true}\n' > "$MNT/app.json"
printf 'broken' > "$MNT/legacy.json"
printf 'x' > "$MNT/sub/inner.conf"
chmod 640 "$MNT/app.json"; chown 12:34 "$MNT/sub/inner.conf"
ln -s app.json "$MNT/current"
mount_fs
expect_eq "$(cat "$MNT/app.json")" '{"old": true}' "imported content"
expect_eq "$(stat -c '%a' "$MNT/app.json")" "640" "imported mode"
expect_eq "$(stat -c '%u:%g' "$MNT/sub/inner.conf")" "12:34" "imported owner"
expect_eq "$(readlink "$MNT/current")" "app.json" "imported symlink"
expect_eq "$(cat "$MNT/legacy.json")" "broken" "an invalid JSON file already live stays live"
sqlite3 "$STORE" "select count(*) from versions where op='import'" | grep -qx 5 || fail "import ops: $(sqlite3 "$STORE" "select op, count(*) from versions group by op")"
ok "import"

# A second daemon on the same store refuses with a clear message.
mkdir "$T/mnt2"
if "$VERCONFD" "$STORE" "$T/mnt2" -f >"$T/second.log" 2>&1; then fail "second daemon started"; fi
grep -qi "another\|busy\|locked\|in use" "$T/second.log" || fail "unclear refusal: $(cat "$T/second.log")"
mountpoint -q "$T/mnt2" && fail "second daemon mounted"
ok "one daemon per store"

# Clean shutdown on SIGTERM; restart serves the same state (no import again).
printf 'after\n' > "$MNT/new.conf"
kill -TERM "$DAEMON_PID"
for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$DAEMON_PID" 2>/dev/null && fail "SIGTERM did not stop the daemon"
wait "$DAEMON_PID" || fail "daemon exit status after SIGTERM"
DAEMON_PID=
mountpoint -q "$MNT" && fail "still mounted after SIGTERM"
expect_eq "$(cat "$MNT/app.json")" '{"old": true}' "the original files are still on disk below the mount"
mount_fs
expect_eq "$(cat "$MNT/new.conf")" "after" "state after restart"
sqlite3 "$STORE" "select count(*) from versions where op='import'" | grep -qx 5 || fail "imported twice"
ok "SIGTERM and restart"

# SIGTERM while a writer is half way through a file: the half does not go
# live; it is kept in history as a rejected version.
printf 'whole\n' > "$MNT/half.conf"
python3 - "$MNT" "$DAEMON_PID" <<'EOF'
import os, signal, sys, time
mnt, pid = sys.argv[1], int(sys.argv[2])
fd = os.open(mnt + '/half.conf', os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'half of a ')
os.kill(pid, signal.SIGTERM)
for _ in range(200):
    if not os.path.ismount(mnt):
        break
    time.sleep(0.05)
try:
    os.close(fd)
except OSError:
    pass
EOF
wait "$DAEMON_PID" || fail "daemon exit status after SIGTERM with a writer open"
DAEMON_PID=
mount_fs
expect_eq "$(cat "$MNT/half.conf")" "whole" "live file after SIGTERM during its write"
"$VERCONF" --store "$STORE" log --all --json half.conf | py "
import json, sys
v = json.load(sys.stdin)['versions'][0]
assert v['status'] == 'rejected' and v['size'] == 10 and 'stopped' in v['reason'], v" ||
	fail "the half-written bytes are not a rejected version"
ok "SIGTERM during a write: the half is history, not live"

# SIGTERM while several processes create and rewrite files: an entry
# invalidation then waiting for a directory lock that a create holds must
# not keep the daemon from exiting (it once hung for good, unkillable).
mkdir -p "$MNT/busy"
busy=()
for k in 1 2 3 4 5 6; do
	timeout -s KILL 30 python3 -c "
import os, sys
p = sys.argv[1]
while True:
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b'x' * 100); os.write(fd, b'y' * 350); os.close(fd)
    except OSError:
        break" "$MNT/busy/s$k.txt" 2>/dev/null &
	busy+=($!)
done
sleep 1
kill -TERM "$DAEMON_PID"
for _ in $(seq 200); do process_gone "$DAEMON_PID" && break; sleep 0.05; done
hung=0; process_gone "$DAEMON_PID" || { hung=1; abort_connection "$MNT"; }
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
# SIGTERM to timeout(1) reaches its python too (SIGKILL would orphan it).
for b in "${busy[@]}"; do kill -TERM "$b" 2>/dev/null || true; wait "$b" 2>/dev/null || true; done
[ "$hung" = 0 ] || fail "verconfd did not exit within 10 s of SIGTERM with busy writers"
mountpoint -q "$MNT" && fail "still mounted after SIGTERM with busy writers"
rm -rf "$MNT/busy"   # what the writers wrote into the bare directory after the unmount
mount_fs
"$VERCONF" --store "$STORE" fsck >/dev/null || fail "fsck after SIGTERM with busy writers"
ok "SIGTERM with busy writers: the daemon exits"

# (SIGINT is not tried here: a shell starts background jobs with SIGINT
# ignored, and libfuse, rightly, leaves an ignored signal ignored.)
umount_fs
ok "fusermount3 -u"

# kill -9: the mount reports it, fusermount3 -u and a restart bring it back.
mount_fs
printf 'durable\n' > "$MNT/d.conf"
kill -9 "$DAEMON_PID"; reap_killed_daemon
expect_fail "Transport endpoint is not connected" cat "$MNT/d.conf"
fusermount3 -u "$MNT"
mount_fs
expect_eq "$(cat "$MNT/d.conf")" "durable" "committed before kill -9"
umount_fs
ok "kill -9 recovery"

# noimport: a new store over a full directory starts empty.
rm -f "$STORE"*
mount_fs -o noimport
expect_eq "$(ls "$MNT" | wc -l)" 0 "noimport mounts an empty tree"
umount_fs
ok "noimport"

# max_file_size: exactly the limit works; one byte over is EFBIG and commits nothing.
mount_fs -o max_file_size=4K
head -c 4096 /dev/zero > "$MNT/big.bin" || fail "a file of exactly max_file_size"
py "
import os, errno
fd=os.open('$MNT/big.bin', os.O_WRONLY|os.O_APPEND)
try:
    os.write(fd, b'x'); raise SystemExit('write past max_file_size accepted')
except OSError as e:
    assert e.errno == errno.EFBIG, e
os.close(fd)
try:
    os.truncate('$MNT/big.bin', 4097); raise SystemExit('truncate past max_file_size accepted')
except OSError as e:
    assert e.errno == errno.EFBIG, e
"
expect_eq "$(stat -c %s "$MNT/big.bin")" 4096 "nothing committed past the limit"
expect_eq "$(ls "$MNT/.versions/big.bin" | wc -l)" 1 "one version"
# A copy that fails with EFBIG part way leaves the live file as it was,
# and a new file does not appear.
printf 'good\n' > "$MNT/cfg.conf"
head -c 4097 /dev/zero > "$T/toobig"
expect_fail "File too large" cp "$T/toobig" "$MNT/cfg.conf"
expect_eq "$(cat "$MNT/cfg.conf")" "good" "live file after a failed cp"
expect_fail "File too large" cp "$T/toobig" "$MNT/fresh.conf"
wait_gone "$MNT/fresh.conf" || fail "a file whose only write failed with EFBIG appeared: $(stat -c %s "$MNT/fresh.conf")"
umount_fs
ok "max_file_size and EFBIG"

# Options: bad values are refused with a message; -h and -V work; -o ro is read-only.
for bad in validate=maybe sync=sometimes max_file_size=lots max_file_size=0; do
	if "$VERCONFD" "$STORE" "$MNT" -f -o $bad >"$T/bad.log" 2>&1; then fail "-o $bad accepted"; fi
	grep -q "verconfd:" "$T/bad.log" || fail "no message for -o $bad"
done
"$VERCONFD" -h | grep -q "validate=strict" || fail "-h"
"$VERCONFD" -V | grep -q "verconfd" || fail "-V"
if "$VERCONFD" >/dev/null 2>&1; then fail "no arguments accepted"; fi
mount_fs -o ro
expect_fail "Read-only file system" bash -c "echo x > $MNT/ro.conf"
umount_fs
ok "options"

# fstab: mount(8) hands a fuse.verconfd line to mount.fuse3, which runs
# `verconfd STORE MOUNTPOINT -o opts` and lets it daemonize.  The TYPE#SOURCE
# form runs the binary by its path, so no install is needed here.
mount.fuse3 "$VERCONFD#$STORE" "$MNT" -o allow_other,validate=warn || fail "mount.fuse3"
mountpoint -q "$MNT" || fail "not mounted by mount.fuse3"
grep " $MNT " /proc/mounts | grep -q "fuse.verconfd" || fail "fstype: $(grep " $MNT " /proc/mounts)"
grep -q "^validate: warn" "$MNT/.control" || fail "-o options from mount.fuse3"
# The daemonized verconfd (no -f) commits, replies and switches like the foreground one.
timeout 10 bash -c "printf 'daemon 1\n' > '$MNT/bg.conf'" || fail "a write to the daemonized mount hung or failed"
timeout 10 bash -c "printf 'daemon 2\n' > '$MNT/bg.conf'" || fail "second write to the daemonized mount"
first=$(ls "$MNT/.versions/bg.conf" | sort -n | head -1)
timeout 10 bash -c "echo $first > '$MNT/.control'" || fail ".control write to the daemonized mount"
expect_eq "$(cat "$MNT/bg.conf")" "daemon 1" "rollback on the daemonized mount"
fusermount3 -u "$MNT"
ok "mount.fuse3 (fstab)"
