#!/usr/bin/env bash
# Rule 6: the JSON gate, in strict, warn and off modes.
. "$(dirname "$0")/lib.sh"
mount_fs
cd "$MNT"

printf '{"port": 1}\n' > app.json
good=$(ls "$MNT/.versions/app.json")
# A broken release: close(2) fails with EINVAL, the live file stays.
py "
import os, errno
fd=os.open('$MNT/app.json', os.O_WRONLY|os.O_TRUNC)
os.write(fd, b'{\"port\": 1\n \"host\": \"x\"}\n')
try:
    os.close(fd); raise SystemExit('close accepted broken JSON')
except OSError as e:
    assert e.errno == errno.EINVAL, e
"
expect_eq "$(cat app.json)" '{"port": 1}' "live file kept its last good version"
expect_eq "$(nversions app.json)" 2 "the rejected version is kept in history"
bad=$(ls "$MNT/.versions/app.json" | sort -n | tail -1)
grep -q '"host"' "$MNT/.versions/app.json/$bad" || fail "rejected bytes not kept"
grep -q "rejected app.json version $bad: invalid JSON at line 2" "$LOG" || fail "no log line naming path, id and line"
grep -q "last-rejection: app.json version $bad" .control || fail ".control does not show the rejection"
ok "strict gate rejects, keeps, logs"

# fsync reports it too; activating a rejected version is refused.
py "
import os, errno
fd=os.open('$MNT/app.json', os.O_WRONLY|os.O_TRUNC)
os.write(fd, b'not json')
try:
    os.fsync(fd); raise SystemExit('fsync accepted broken JSON')
except OSError as e:
    assert e.errno == errno.EINVAL, e
os.close(fd)
"
expect_fail "Invalid argument" bash -c "echo $bad > .control"
expect_eq "$(cat app.json)" '{"port": 1}' "still the good version"
ok "fsync EINVAL, rejected id refused"

# Inputs the gate decides on (README "JSON gate").
# (A shell redirection cannot tell: the shell ignores close(2) errors.
# fsync reports the commit's result in every case, also for a truncation
# with no write, which commits at the last close.)
check() { # expect(ok|bad) bytes-in-printf-format
	printf "$2" > "$T/probe"
	r=$(py "
import os
fd=os.open('$MNT/probe.json', os.O_WRONLY|os.O_CREAT|os.O_TRUNC, 0o644)
os.write(fd, open('$T/probe','rb').read())
try:
    os.fsync(fd); print('ok')
except OSError:
    print('bad')
os.close(fd)")
	expect_eq "$r" "$1" "gate on $(printf %q "$2")"
}
check ok  '{"a": [1, 2, {"b": null}]}'
check ok  '{"a": 1, "a": 2}'
check ok  '1e999'
check bad '\xef\xbb\xbf{"a": 1}'
check bad '{"a": 1} trailing'
check bad '{"a": 1}\0'
check bad ''
check bad "$(python3 -c 'print("["*2000 + "]"*2000)')"
ok "gate decisions"

# Bytes that arrive by rename or link pass the same gate (sed -i, mv, ln -f).
printf '{"good": 1}\n' > s.json
n=$(nversions s.json)
if sed -i 's/1}/1,}/' s.json 2>/dev/null; then fail "sed -i made s.json invalid and succeeded"; fi
expect_eq "$(cat s.json)" '{"good": 1}' "live s.json after a rejected sed -i"
expect_eq "$(nversions s.json)" $((n + 1)) "the rejected bytes are in s.json's history"
printf '{"broken":' > t.tmp
# (mv words rename's EINVAL as "cannot move ... to a subdirectory of itself".)
if mv t.tmp g.json 2>/dev/null; then fail "mv of broken JSON onto g.json succeeded"; fi
py "
import os
try:
    os.rename('$MNT/t.tmp', '$MNT/g.json'); raise SystemExit('rename accepted')
except OSError as e:
    assert e.errno == 22, e
"
[ -e t.tmp ] && [ ! -e g.json ] || fail "a refused mv moved something"
expect_fail "Invalid argument" ln -f t.tmp g.json
[ ! -e g.json ] || fail "a refused ln made g.json"
py "
import os, tempfile
fd, tmp = tempfile.mkstemp(dir='$MNT')
os.write(fd, b'[1, 2'); os.close(fd)
try:
    os.replace(tmp, '$MNT/s.json'); raise SystemExit('os.replace of broken JSON accepted')
except OSError as e:
    assert e.errno == 22, e
os.unlink(tmp)
"
expect_eq "$(cat s.json)" '{"good": 1}' "live s.json after a refused os.replace"
grep -q "rejected g.json version [0-9]*: invalid JSON" "$LOG" || fail "no log line for the refused rename"
mv t.tmp ok.txt
ok "rename and link are gated"

# Files not ending in .json are never parsed.
printf '{broken' > notjson.txt
expect_eq "$(cat notjson.txt)" "{broken" "non-json path"
ok "only *.json is gated"
cd /
umount_fs

: > "$LOG"
mount_fs -o validate=warn
printf '{warn' > "$MNT/w.json" || fail "validate=warn refused"
expect_eq "$(cat "$MNT/w.json")" "{warn" "validate=warn accepts"
grep -q "accepted w.json .*validate=warn" "$LOG" || fail "no warning logged"
umount_fs
mount_fs -o validate=off
printf '{off' > "$MNT/o.json" || fail "validate=off refused"
grep -q "o.json" "$LOG" && ! grep -q "accepted o.json" "$LOG" || true
umount_fs
ok "warn and off"
