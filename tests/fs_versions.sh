#!/usr/bin/env bash
# Rules 2-5 and 10: commits make immutable versions; no aliasing; rename and
# delete keep history; chmod/chown are versions; attribution.
. "$(dirname "$0")/lib.sh"
mount_fs
cd "$MNT"

# One create-write-close is one version; identical rewrite is none;
# write + fsync + close is one.
printf 'v1\n' > c.conf
expect_eq "$(nversions c.conf)" 1 "cp/> makes exactly one version"
printf 'v1\n' > c.conf
expect_eq "$(nversions c.conf)" 1 "identical rewrite makes no version"
py "
import os
fd=os.open('$MNT/c.conf', os.O_WRONLY|os.O_TRUNC); os.write(fd,b'v2\n'); os.fsync(fd); os.close(fd)"
expect_eq "$(nversions c.conf)" 2 "write+fsync+close is one version"
cp c.conf copy.conf
expect_eq "$(nversions copy.conf)" 1 "cp makes one version"
ok "commit counting"

# Readers never see a draft; a reader handle keeps its version across a commit.
py "
import os
p='$MNT/c.conf'
r=os.open(p, os.O_RDONLY)
w=os.open(p, os.O_WRONLY|os.O_TRUNC)
os.write(w, b'draft')
assert open(p,'rb').read() == b'v2\n', 'a reader saw the draft: %r' % open(p,'rb').read()
os.close(w)
assert open(p,'rb').read() == b'draft'
assert os.pread(r, 100, 0) == b'v2\n', 'old handle lost its version: %r' % os.pread(r, 100, 0)
os.close(r)
"
ok "draft invisible, old reader keeps its version"

# Writers of one path share a draft and read each other's bytes.
py "
import os
p='$MNT/shared.txt'
a=os.open(p, os.O_RDWR|os.O_CREAT, 0o644)
b=os.open(p, os.O_RDWR)
os.pwrite(a, b'from-a', 0)
assert os.pread(b, 100, 0) == b'from-a', os.pread(b, 100, 0)
os.close(a); os.close(b)
"
ok "shared draft"

# A close commits only what the closer wrote: a child that inherited the
# descriptor and never wrote through it (system(3), a helper that exits,
# exec of a descriptor without O_CLOEXEC) must not make the parent's
# half-written file live.  A child that writes and exits commits its bytes.
py "
import os, subprocess
p = '$MNT/inherit.conf'
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'part1\\n')
subprocess.run(['true'], pass_fds=(fd,), check=True)
assert not os.path.exists('$MNT/.versions/inherit.conf') or not os.listdir('$MNT/.versions/inherit.conf'), \\
    'a child that never wrote committed: %r' % open(p, 'rb').read()
pid = os.fork()
if pid == 0:
    os.write(fd, b'child\\n')
    os._exit(0)
os.waitpid(pid, 0)
assert open(p, 'rb').read() == b'part1\\nchild\\n', open(p, 'rb').read()
os.write(fd, b'part2\\n')
os.close(fd)
assert open(p, 'rb').read() == b'part1\\nchild\\npart2\\n', open(p, 'rb').read()
" || fail "commits at close by processes that inherited a descriptor"
expect_eq "$(nversions inherit.conf)" 2 "versions: the writing child's, then the parent's"
# The same for a rewrite in place with ftruncate (the kernel names no
# owner for it).
py "
import os, subprocess
p = '$MNT/inherit.conf'
fd = os.open(p, os.O_WRONLY)
os.ftruncate(fd, 0)
os.write(fd, b'half-')
subprocess.run(['true'], pass_fds=(fd,), check=True)
assert open(p, 'rb').read() == b'part1\\nchild\\npart2\\n', 'a child committed: %r' % open(p, 'rb').read()
os.write(fd, b'done\\n')
os.close(fd)
assert open(p, 'rb').read() == b'half-done\\n', open(p, 'rb').read()
" || fail "commit at close by a child after an ftruncate"
# A writer killed half way closes the file on its way out: that is no
# close of a finished file; the bytes are kept as a rejected version.  A
# writer that exits without closing finished its file: it commits.
py "
import json, os, signal, subprocess, time
p = '$MNT/killed.conf'
open(p, 'w').write('whole\\n')
pid = os.fork()
if pid == 0:
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'half of a')
    os.kill(os.getpid(), signal.SIGKILL)
os.waitpid(pid, 0)
for _ in range(200):
    v = json.loads(subprocess.run(['$VERCONF', '--store', '$STORE', 'log', '--all', '--json', 'killed.conf'],
                                  capture_output=True, check=True).stdout)['versions']
    if len(v) == 2:
        break
    time.sleep(0.05)
assert v[0]['status'] == 'rejected' and 'killed' in v[0]['reason'], v
assert open(p).read() == 'whole\\n', open(p).read()
pid = os.fork()
if pid == 0:
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'complete\\n')
    os._exit(0)
os.waitpid(pid, 0)
for _ in range(200):
    if open(p).read() == 'complete\\n':
        break
    time.sleep(0.05)
assert open(p).read() == 'complete\\n', open(p).read()
" || fail "a writer killed half way, and one that exits without closing"
ok "a close commits only what its process wrote"

# truncate(2) without a handle commits at once
n=$(nversions c.conf); truncate -s 2 c.conf
expect_eq "$(cat c.conf)" "dr" "truncate content"
expect_eq "$(nversions c.conf)" $((n + 1)) "truncate(2) commits a version"
ok "truncate(2)"

# No aliasing: link makes a copy-on-write clone.
printf 'one\n' > v1.conf
ln v1.conf live.conf
expect_eq "$(stat -c %h live.conf)" 1 "st_nlink of a clone"
[ "$(stat -c %i v1.conf)" != "$(stat -c %i live.conf)" ] || fail "clone shares the inode number"
printf 'two\n' > live.conf
expect_eq "$(cat v1.conf)" "one" "editing the clone left the original alone"
printf 'three\n' >> v1.conf
expect_eq "$(cat live.conf)" "two" "editing the original left the clone alone"
expect_eq "$(nversions live.conf)" 2 "clone history is its own"
ok "link is a copy-on-write clone"

# Rename keeps history by path: tmp + rename continues the target's history.
printf 'A\n' > target.conf
printf 'B\n' > .target.tmp
mv .target.tmp target.conf
expect_eq "$(cat target.conf)" "B" "rename over"
expect_eq "$(nversions target.conf)" 2 "target history continues"
old=$(ls "$MNT/.versions/target.conf" | sort -n | head -1)
expect_eq "$(cat "$MNT/.versions/target.conf/$old")" "A" "old version kept"
ok "rename keeps history"

# Delete leaves a tombstone; activating an old id brings the path back.
printf 'keep\n' > gone.conf
id=$(ls "$MNT/.versions/gone.conf")
rm gone.conf
[ ! -e gone.conf ] || fail "still there after rm"
expect_eq "$(cat "$MNT/.versions/gone.conf/$id")" "keep" "history of a deleted path"
echo "activate $id" > .control
expect_eq "$(cat gone.conf)" "keep" "restored by activate"
ok "delete and restore"

# chmod and chown are versions with the same content; utimens is not.
n=$(nversions c.conf)
chmod 600 c.conf
expect_eq "$(nversions c.conf)" $((n + 1)) "chmod makes a version"
chown 7:7 c.conf
expect_eq "$(nversions c.conf)" $((n + 2)) "chown makes a version"
touch -d '2021-01-01' c.conf
expect_eq "$(nversions c.conf)" $((n + 2)) "utimens makes no version"
prev=$(ls "$MNT/.versions/c.conf" | sort -n | tail -3 | head -1)
echo "$prev" > .control
expect_eq "$(stat -c '%a %u' c.conf)" "644 0" "mode and owner rolled back"
ok "chmod/chown versions, rollback of permissions"

# Attribution: the store records uid, pid and process name.
sh -c 'exec printf "by-printf\n"' > who.conf
sqlite3 "$STORE" "select actor_uid, actor_comm from versions v join paths p on p.id=v.path_id where p.path='who.conf'" > "$T/who"
grep -q '^0|' "$T/who" || fail "actor uid not recorded: $(cat "$T/who")"
# A write and fsync from a second thread are its process's, as ps shows.
out=$(python3 -c "
import os, threading
def work():
    fd = os.open('$MNT/thread.conf', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b'from a thread\\n'); os.fsync(fd); os.close(fd)
t = threading.Thread(target=work); t.start(); t.join()
print(os.getpid())")
expect_eq "$(sqlite3 "$STORE" "select distinct actor_pid from versions v join paths p on p.id=v.path_id where p.path='thread.conf'")" "$out" "pid recorded for a thread's commit"
ok "attribution"

# No operation ever changed a stored version's bytes: fsck through the store.
cd /
umount_fs
sqlite3 "$STORE" "pragma integrity_check" | grep -qx ok || fail "integrity_check"
