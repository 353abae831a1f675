#!/usr/bin/env bash
# Rule 7: .control — hidden, 0600, commands with ioctl-like return codes, status.
. "$(dirname "$0")/lib.sh"
mount_fs
cd "$MNT"

expect_eq "$(stat -c '%a %u' .control)" "600 0" ".control mode and owner"
ls -a | grep -q '^\.control$' && fail ".control listed by readdir"
ls -a | grep -q '^\.versions$' && fail ".versions listed by readdir"
ok "hidden, 0600"

printf '{"v": 1}\n' > config.json; v1=$(ls .versions/config.json)
printf '{"v": 2}\n' > config.json; v2=$(ls .versions/config.json | sort -n | tail -1)
echo "$v1" > .control
expect_eq "$(cat config.json)" '{"v": 1}' "bare id rolls back"
echo "activate $v2" > .control
expect_eq "$(cat config.json)" '{"v": 2}' "activate rolls forward"
echo "rollback config.json" > .control
expect_eq "$(cat config.json)" '{"v": 1}' "rollback PATH"
echo "rollback /config.json" > .control
expect_eq "$(cat config.json)" '{"v": 2}' "rollback with leading slash"
ok "activate, bare id, rollback"

# restore @SEQ and restore TIME: a multi-file deploy back in one step
printf 'a1' > a.conf; printf 'b1' > b.conf
seq=$(sed -n 's/^seq: //p' .control)
sleep 1.1; t=$(date -u +%Y-%m-%dT%H:%M:%SZ); sleep 1.1
printf 'a2' > a.conf; printf 'b2' > b.conf; printf 'c2' > c.conf
ls >/dev/null   # let the kernel cache the listing that holds c.conf
echo "restore @$seq" > .control
expect_eq "$(cat a.conf)$(cat b.conf)" "a1b1" "restore @SEQ"
[ ! -e c.conf ] || fail "a path created after SEQ survived the restore"
ls | grep -qx c.conf && fail "the cached listing still shows c.conf after the restore"
echo "restore @$((seq + 3))" > .control
ls | grep -qx c.conf || fail "the cached listing does not show c.conf brought back by a restore"
echo "restore @$seq" > .control
printf 'a3' > a.conf
echo "restore $t" > .control
expect_eq "$(cat a.conf)$(cat b.conf)" "a1b1" "restore TIME"
ok "restore @SEQ and TIME"

# A restore that removes a path while a writer holds it open, then a new
# file at that name: the create works (the old handle's bytes, if any, go
# to history only).
printf 'one\n' > keep.conf
seq0=$(sed -n 's/^seq: //p' .control)
printf 'two\n' > gone.conf
exec 3>>gone.conf; echo more >&3
echo "restore @$seq0" > .control
[ ! -e gone.conf ] || fail "restore left gone.conf"
timeout 10 bash -c "echo new > '$MNT/gone.conf'" || fail "create after a restore removed an open file"
exec 3>&-
sleep 0.2
expect_eq "$(cat gone.conf)" "new" "the new file, not the old handle's bytes"
ok "restore under an open writer"

# A rollback under open writers is not undone by them: a new writer starts
# from the version switched to; the old writer's bytes go to history as a
# rejected version, with the mode of the file it opened, and its close
# fails with ESTALE.
py "
import errno, os, stat
d = '$MNT'; p = d + '/rb.conf'
open(p, 'w').write('good\\n')
good = max(int(x) for x in os.listdir(d + '/.versions/rb.conf'))
os.chmod(p, 0o600)
open(p, 'w').write('secret broken\\n')
w = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(w, b'late\\n')
with open(d + '/.control', 'w') as c:
    c.write('activate %d\\n' % good)
assert open(p).read() == 'good\\n', open(p).read()
a = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(a, b'appended\\n')
os.close(a)
assert open(p).read() == 'good\\nappended\\n', 'an append after the rollback: %r' % open(p).read()
os.write(w, b'later\\n')
try:
    os.close(w)
    raise SystemExit('the close of a writer opened before the rollback succeeded')
except OSError as e:
    assert e.errno == errno.ESTALE, e
assert open(p).read() == 'good\\nappended\\n', 'the old writer undid the rollback: %r' % open(p).read()
last = max(int(x) for x in os.listdir(d + '/.versions/rb.conf'))
v = d + '/.versions/rb.conf/%d' % last
assert open(v).read() == 'secret broken\\nlate\\nlater\\n', open(v).read()
# .versions shows each version's mode without its write bits.
assert stat.S_IMODE(os.stat(v).st_mode) == 0o400, oct(os.stat(v).st_mode)
" || fail "rollback under open writers"
grep -q "last-rejection:.*rb.conf.*opened before a .control switch" .control ||
	fail "no rejection in .control: $(cat .control)"
ok "a rollback is not undone by writers open before it"

# Every old writer hears of the switch, not only the first to close; an
# old writer's fchmod or futimens (from any of its threads: they carry no
# handle) changes its own bytes' version, never the live file.
py "
import errno, os, stat, threading
d = '$MNT'; p = d + '/rb2.conf'
open(p, 'w').write('v1\\n'); open(p, 'w').write('v2\\n')
a = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(a, b'A\\n')
b = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(b, b'B\\n')
t = os.open(p, os.O_WRONLY | os.O_TRUNC); os.write(t, b'SECRET\\n')
with open(d + '/.control', 'w') as c:
    c.write('rollback rb2.conf')
mtime = os.stat(p).st_mtime_ns
for call in (lambda: os.fchmod(t, 0o600), lambda: os.utime(t, (1, 1))):
    th = threading.Thread(target=call); th.start(); th.join()
assert os.stat(p).st_mtime_ns == mtime, 'an old writer changed the live mtime'
for what, call, fd in (('close a', os.close, a), ('fsync b', os.fsync, b), ('close t', os.close, t)):
    try:
        call(fd)
        raise SystemExit(what + ' succeeded')
    except OSError as e:
        assert e.errno == errno.ESTALE, (what, e)
os.close(b)
assert open(p).read() == 'v1\\n', open(p).read()
assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, oct(os.stat(p).st_mode)
last = max(int(x) for x in os.listdir(d + '/.versions/rb2.conf'))
v = d + '/.versions/rb2.conf/%d' % last
assert open(v).read() == 'SECRET\\n', open(v).read()
assert stat.S_IMODE(os.stat(v).st_mode) == 0o400, oct(os.stat(v).st_mode)
" || fail "several writers and an fchmod under a rollback"
ok "every writer open across a rollback gets ESTALE; its fchmod stays its own"

# A restore takes the whole tree back: files still being created lose to
# it too, and writers whose directory it removed keep their bytes in
# history (a rejected version needs no live parent).
mkdir -p rs; echo x > rs/keep.conf
seq1=$(sed -n 's/^seq: //p' .control)
mkdir rs/sub; echo old > rs/sub/f.conf
py "
import errno, os, sys
d = '$MNT'
w = os.open(d + '/rs/sub/f.conf', os.O_WRONLY | os.O_APPEND); os.write(w, b'edit\\n')
n = os.open(d + '/rs/sub/new.conf', os.O_WRONLY | os.O_CREAT, 0o644); os.write(n, b'new\\n')
c = os.open(d + '/rs/fresh.conf', os.O_WRONLY | os.O_CREAT, 0o644); os.write(c, b'fresh\\n')
with open(d + '/.control', 'w') as ctl:
    ctl.write('restore @$seq1')
assert sorted(os.listdir(d + '/rs')) == ['keep.conf'], os.listdir(d + '/rs')
# Their descriptors are on files that lost their names, as after unlink.
for fd in (w, n, c):
    assert os.fstat(fd).st_nlink == 0, os.fstat(fd)
    os.fchmod(fd, 0o640)
for fd in (w, n, c):
    try:
        os.close(fd)
        raise SystemExit('a close after the restore succeeded')
    except OSError as e:
        assert e.errno == errno.ESTALE, e
assert sorted(os.listdir(d + '/rs')) == ['keep.conf'], os.listdir(d + '/rs')
" || fail "writers under a restore"
for f in rs/sub/f.conf rs/sub/new.conf rs/fresh.conf; do
	"$VERCONF" --store "$STORE" log --all --json "$f" | py "
import json, sys
v = json.load(sys.stdin)['versions'][0]
assert v['status'] == 'rejected' and 'switch' in v['reason'], v" || fail "$f: no rejected version after the restore"
done
[ "$(stat -c %a "$MNT/.versions/rs/fresh.conf/$(ls "$MNT/.versions/rs/fresh.conf")")" = 440 ] ||
	fail "fchmod of a superseded new file did not reach its version"
# The kernel forgot the names of files being created: they can be made again.
echo again > rs/fresh.conf || fail "create after a restore dropped a file being created"
expect_eq "$(cat rs/fresh.conf)" "again" "a file created again after the restore"
ok "a restore wins over files being written or created, and keeps their bytes"

# A name renamed away and revived by .control shows in the directory's
# listing at once (the kernel had no entry for it, but a cached listing).
echo 1 > rv.conf; mv rv.conf rv2.conf; ls >/dev/null
echo "rollback rv.conf" > .control
ls | grep -qx rv.conf || fail "revived rv.conf missing from the listing: $(ls | tr '\n' ' ')"
ok "a name revived by .control is listed at once"

# Errors: errno, no change, a clear last-error.
before=$(cat config.json)
w() { py "
import os, sys
fd=os.open('$MNT/.control', os.O_WRONLY)
try:
    os.write(fd, os.fsencode(sys.argv[1]))
    print('ok')
except OSError as e:
    print(os.strerror(e.errno))
" "$1"; }
expect_eq "$(w '999999')" "No such file or directory" "unknown id"
expect_eq "$(w 'activate 0')" "Invalid argument" "zero id"
expect_eq "$(w 'activate -5')" "Invalid argument" "negative id"
expect_eq "$(w 'activate 99999999999999999999999')" "Invalid argument" "huge id"
expect_eq "$(w 'activate x1')" "Invalid argument" "non-numeric id"
expect_eq "$(w $'\n')" "Invalid argument" "empty command"
expect_eq "$(w '')" "ok" "a zero-length write is no command (the kernel never sends it)"
expect_eq "$(w $'\x01\x02\xff')" "Invalid argument" "binary garbage"
expect_eq "$(w "$(printf 'x%.0s' $(seq 9000))")" "Invalid argument" "very long line"
expect_eq "$(w $'activate 1\nactivate 2\n')" "Invalid argument" "several commands in one write"
expect_eq "$(w 'frobnicate 3')" "Invalid argument" "unknown command"
expect_eq "$(w 'rollback ../etc/passwd')" "Invalid argument" "path with .."
expect_eq "$(w 'rollback nosuch.conf')" "No such file or directory" "rollback of unknown path"
expect_eq "$(w 'restore @99999999')" "No such file or directory" "restore beyond the journal"
expect_eq "$(w 'restore yesterday')" "Invalid argument" "restore with a bad time"
expect_eq "$(cat config.json)" "$before" "nothing changed"
grep -q '^last-error: ' .control || fail "no last-error line"
ok "errors"

# Status lists live paths with id, size and sha256 prefix.
grep -qP "^\d+\t9\t[0-9a-f]{12}\tconfig.json$" .control || fail "status line for config.json: $(cat .control)"
grep -q "^store: $STORE$" .control || fail "status names the store"
cd /
umount_fs
mount_fs -o showmeta
ls -a "$MNT" | grep -q '^\.control$' || fail "showmeta does not list .control"
umount_fs
ok "status, showmeta"
